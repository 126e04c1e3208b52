"""`alphagrid up`: the local stack as a real process, stopped by SIGTERM with nothing left behind; its
components in-process; and the port checks that fail before anything starts."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from web3 import Web3

from relayer.chain.admin import CONTRACT_NAMES
from relayer.chain.anvil import free_port, port_is_free
from relayer.config import REPO_ROOT, Settings
from relayer.localstack import LocalStack, StackOptions, build_is_stale
from relayer.manifest import Manifest

from .conftest import fails, invoke, ok_json


def _alphagrid() -> list[str]:
    script = Path(sys.executable).with_name("alphagrid")
    if script.exists():
        return [str(script)]
    found = shutil.which("alphagrid")
    return [found] if found else [sys.executable, "-c", "from relayer.cli import app; app()"]


def _anvil_pids(port: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"anvil") and str(port).encode() in argv:
            pids.append(int(entry.name))
    return pids


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def _wait_for(
    predicate: Callable[[], bool], timeout_s: float, what: str, proc: subprocess.Popen[bytes], log: Path
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        assert proc.poll() is None, f"alphagrid up exited early with {proc.returncode}: {log.read_text()}"
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _rpc_answers(url: str) -> bool:
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
    try:
        answer: dict[str, object] = httpx.post(url, json=body, timeout=1).json()
    except (httpx.HTTPError, ValueError):
        return False
    return answer.get("result") == "0x7a69"


@pytest.fixture
def stack_env(tmp_path: Path) -> dict[str, str]:
    rpc, api = free_port(), free_port()
    while api == rpc:
        api = free_port()
    return {
        "ALPHAGRID_HOME": str(tmp_path / "home"),
        "ALPHAGRID_RPC_PORT": str(rpc),
        "ALPHAGRID_API_PORT": str(api),
    }


def test_up_serves_until_sigterm_and_leaves_nothing_behind(stack_env: dict[str, str], tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALPHAGRID_")} | stack_env
    rpc_port = int(stack_env["ALPHAGRID_RPC_PORT"])
    rpc_url = f"http://127.0.0.1:{rpc_port}"
    manifest_path = Path(stack_env["ALPHAGRID_HOME"]) / "deployment.json"
    with open(tmp_path / "up.out", "wb") as out, open(tmp_path / "up.err", "wb") as err:
        proc = subprocess.Popen(
            [*_alphagrid(), "up", "--no-feed", "--json"], env=env, cwd=tmp_path, stdout=out, stderr=err
        )
    try:
        _wait_for(manifest_path.exists, 90, "the manifest", proc, tmp_path / "up.err")
        _wait_for(lambda: _rpc_answers(rpc_url), 10, "the RPC", proc, tmp_path / "up.err")
        [anvil_pid] = _anvil_pids(rpc_port)

        manifest = Manifest.read(manifest_path)
        assert manifest.rpc_url == rpc_url
        assert manifest.api_url == f"http://127.0.0.1:{stack_env['ALPHAGRID_API_PORT']}"
        assert manifest.demo is not None and len(manifest.demo.agents) >= 2

        home_only = {"ALPHAGRID_HOME": stack_env["ALPHAGRID_HOME"]}  # the manifest says where the chain is
        assert httpx.get(f"{manifest.api_url}/ready", timeout=5).status_code == 200

        # A new user's first trade: the example agent opens NVDA with a −5% stop through the relayer.
        agent = subprocess.run(
            [
                sys.executable,
                str(REPO_ROOT / "examples" / "agent.py"),
                "--manifest",
                str(manifest_path),
                "--symbol",
                "NVDA",
                "--usdc",
                "100",
                "--stop-loss-bps",
                "-500",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert agent.returncode == 0, agent.stdout + agent.stderr
        assert "confirmed" in agent.stdout and "StopLoss" in agent.stdout
        [position] = ok_json(["positions", "1"], home_only)["positions"]

        # The operator pushes the price through the stop; the keeper closes the position on chain.
        assert ok_json(["oracle", "set", "NVDA", "150"], home_only)["price"] == "150"
        closed = lambda: ok_json(["positions", "1", "--status", "closed"], home_only)["positions"] != []  # noqa: E731
        _wait_for(closed, 10, "the stop-loss exit", proc, tmp_path / "up.err")
        [after] = ok_json(["positions", "1", "--status", "closed"], home_only)["positions"]
        assert after["id"] == position["id"]
        p = httpx.get(f"{manifest.api_url}/agents/1/positions/{position['id']}", timeout=5).json()
        fired = [h for h in p["history"] if h["kind"] == "exit"]
        assert fired and fired[-1]["oraclePrice"] == "150", p["history"]

        summary_written = lambda: (tmp_path / "up.out").read_bytes().strip().endswith(b"}")  # noqa: E731
        _wait_for(summary_written, 10, "the summary", proc, tmp_path / "up.err")
        summary = json.loads((tmp_path / "up.out").read_text())
        assert summary["rpcUrl"] == rpc_url and summary["anvilPid"] == anvil_pid
        assert summary["feed"]["running"] is False
        assert [a["agentId"] for a in summary["demoAgents"]] == [a.agent_id for a in manifest.demo.agents]
        assert summary["operator"]["key"] and summary["demoAgents"][0]["signerKey"]
        assert summary["api"]["running"] is True
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    stderr = (tmp_path / "up.err").read_text()
    assert code == 0, stderr
    assert "Traceback" not in stderr
    assert port_is_free("127.0.0.1", rpc_port), "anvil's port is free again"
    assert not _alive(anvil_pid), "no anvil left behind"
    assert _anvil_pids(rpc_port) == []


@pytest.fixture
def listener() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_up_refuses_a_taken_rpc_port(stack_env: dict[str, str], listener: int) -> None:
    line = fails(["up", "--no-feed"], {**stack_env, "ALPHAGRID_RPC_PORT": str(listener)}, 1)
    assert (
        line == f"error: port {listener} on 127.0.0.1 is already in use (set ALPHAGRID_RPC_PORT to another)"
    )
    assert not (Path(stack_env["ALPHAGRID_HOME"]) / "deployment.json").exists()


def test_up_refuses_a_taken_api_port(stack_env: dict[str, str], listener: int) -> None:
    line = fails(["up", "--no-feed"], {**stack_env, "ALPHAGRID_API_PORT": str(listener)}, 1)
    assert (
        line == f"error: port {listener} on 127.0.0.1 is already in use (set ALPHAGRID_API_PORT to another)"
    )
    assert port_is_free("127.0.0.1", int(stack_env["ALPHAGRID_RPC_PORT"])), "anvil was never started"


def test_up_bad_options(stack_env: dict[str, str]) -> None:
    assert "--block-time" in fails(["up", "--block-time", "0"], stack_env, 2)
    assert "--feed-interval" in fails(["up", "--feed-interval", "-1"], stack_env, 2)


def test_local_stack_with_feed_and_block_time(stack_env: dict[str, str]) -> None:
    settings = Settings(
        home=Path(stack_env["ALPHAGRID_HOME"]),
        rpc_port=int(stack_env["ALPHAGRID_RPC_PORT"]),
        api_port=int(stack_env["ALPHAGRID_API_PORT"]),
    )
    stack = LocalStack(settings, StackOptions(feed=True, block_time_s=1, feed_interval_s=0.1))
    try:
        manifest = stack.start()
        assert stack.anvil is not None and stack.anvil.pid is not None
        pid = stack.anvil.pid
        assert Manifest.read(settings.manifest_path) == manifest
        w3 = Web3(Web3.HTTPProvider(manifest.rpc_url))
        assert w3.provider.make_request("anvil_getAutomine", [])["result"] is False  # type: ignore[arg-type]
        oracle = w3.eth.contract(
            address=Web3.to_checksum_address(manifest.contracts.price_oracle),
            abi=stack.admin.oracle.abi if stack.admin else [],
        )
        nvda = manifest.tokens["NVDA"]
        first_round = oracle.functions.latestPrice(nvda).call()[2]
        deadline = time.monotonic() + 10
        while oracle.functions.latestPrice(nvda).call()[2] < first_round + 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        price, _, last_round = oracle.functions.latestPrice(nvda).call()
        assert last_round >= first_round + 2, "the feed keeps pushing"
        assert price > 0
        assert stack.failure() is None
        summary = stack.summary()
        assert summary["feed"]["running"] is True and summary["blockTimeS"] == 1
    finally:
        stack.stop()
    assert not _alive(pid)
    assert port_is_free("127.0.0.1", settings.rpc_port)


def test_local_stack_stops_every_component_even_when_one_fails() -> None:
    stopped: list[str] = []

    class Fake:
        def __init__(self, name: str, broken: bool = False) -> None:
            self.name = name
            self.broken = broken

        def start(self) -> None:
            pass

        def stop(self) -> None:
            stopped.append(self.name)
            if self.broken:
                raise RuntimeError("stuck")

        def failure(self) -> str | None:
            return "died" if self.name == "b" else None

    stack = LocalStack(Settings())
    for name in ("a", "b", "c"):
        stack._launch(Fake(name, broken=name == "b"))
    assert stack.wait(threading.Event(), poll_s=0.01) == "b: died"
    stack.stop()
    assert stopped == ["c", "b", "a"]


def test_build_is_stale(tmp_path: Path) -> None:
    assert build_is_stale(tmp_path), "nothing built"
    for name in CONTRACT_NAMES:
        artifact = tmp_path / "out" / f"{name}.sol" / f"{name}.json"
        artifact.parent.mkdir(parents=True)
        artifact.write_text("{}")
    (tmp_path / "contracts" / "src").mkdir(parents=True)
    source = tmp_path / "contracts" / "src" / "X.sol"
    source.write_text("")
    old = time.time() - 100
    os.utime(source, (old, old))
    assert not build_is_stale(tmp_path)
    source.touch()
    assert build_is_stale(tmp_path), "a source newer than the build"


def test_up_help_runs_without_a_chain() -> None:
    result = invoke(["up", "--help"], {})
    assert result.exit_code == 0 and "--no-feed" in result.stdout
