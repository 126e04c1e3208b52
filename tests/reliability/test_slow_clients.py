"""Slow clients (issue 13, High 2), against `alphagrid serve` in a subprocess, on loopback only and
bounded in count and time.

- Stalled request headers, a stalled body and idle keep-alive connections are closed after their
  timeouts (the body's with 408), while `/health` keeps answering other clients.
- With the descriptor limit lowered to 200, a flood of 300 stalled connections neither stops
  `/health` from answering (a new connection takes the place of the oldest idle one) nor a crossed
  stop-loss from firing: HTTP connections are capped below the limit, so the keeper and the sender
  keep the descriptors they need to reach the node.
"""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest

from relayer.chain.anvil import free_port
from tests.integration.agentkit import trade
from tests.integration.test_api_rejections import LADDER

from .harness import Stack

TIMEOUT_S = 2


@contextmanager
def serve(home: Path, chain: Stack, env: dict[str, str], nofile: int | None = None) -> Iterator[httpx.Client]:
    """`alphagrid serve` (with its keeper) on a free port, optionally with RLIMIT_NOFILE lowered."""
    port = free_port()
    home.mkdir(parents=True, exist_ok=True)
    chain.manifest.write(home / "deployment.json")
    full = {k: v for k, v in os.environ.items() if not k.startswith("ALPHAGRID_")}
    full |= {
        "ALPHAGRID_HOME": str(home),
        "ALPHAGRID_API_PORT": str(port),
        "ALPHAGRID_RPC_URL": chain.anvil.url,
    }
    full |= env

    def limit() -> None:
        if nofile is not None:
            _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, hard))

    proc = subprocess.Popen(
        [sys.executable, "-m", "relayer.cli", "serve", "--json"],
        env=full,
        cwd=home,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=limit,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, "serve exited"
                try:
                    if client.get("/ready", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "serve never became ready"
                time.sleep(0.1)
            yield client
    finally:
        proc.kill()
        proc.wait()


def _connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.setblocking(True)
    return s


def _closed_by_server(s: socket.socket, deadline: float) -> bytes | None:
    """What the server sent before closing the connection, or None if it was still open at `deadline`."""
    received = b""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        s.settimeout(remaining)
        try:
            chunk = s.recv(4096)
        except TimeoutError:
            return None
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk


def test_stalled_headers_bodies_and_keepalives_are_closed_while_health_answers(
    chain: Stack, tmp_path: Path
) -> None:
    timeouts = {
        "ALPHAGRID_HEADER_TIMEOUT_S": str(TIMEOUT_S),
        "ALPHAGRID_BODY_TIMEOUT_S": str(TIMEOUT_S),
        "ALPHAGRID_KEEPALIVE_TIMEOUT_S": str(TIMEOUT_S),
    }
    with serve(tmp_path / "home", chain, timeouts) as client, ExitStack() as sockets:
        port = int(str(client.base_url).rsplit(":", 1)[1].rstrip("/"))
        kinds: dict[str, list[socket.socket]] = {"headers": [], "body": [], "keepalive": [], "silent": []}
        for _ in range(20):
            s = sockets.enter_context(_connect(port))
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # the headers never end
            kinds["headers"].append(s)
            s = sockets.enter_context(_connect(port))
            s.sendall(
                b"POST /agents/1/trade-intents HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
                b'content-length: 100\r\n\r\n{"symbol":'
            )  # 10 of 100 bytes
            kinds["body"].append(s)
            s = sockets.enter_context(_connect(port))
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            kinds["keepalive"].append(s)
            kinds["silent"].append(sockets.enter_context(_connect(port)))  # connects, sends nothing
        opened = time.monotonic()
        # Others are served while the stalled connections are open.
        for _ in range(5):
            assert client.get("/health", timeout=2).status_code == 200
            time.sleep(0.1)
        assert time.monotonic() - opened < TIMEOUT_S, "the box is too slow for this test's timing"
        deadline = opened + TIMEOUT_S + 5
        for kind, group in kinds.items():
            for s in group:
                received = _closed_by_server(s, deadline)
                assert received is not None, f"a stalled '{kind}' connection is still open"
                if kind == "body":
                    assert received.startswith(b"HTTP/1.1 408"), received[:200]
                if kind == "keepalive":
                    assert received.startswith(b"HTTP/1.1 200"), received[:200]
        assert client.get("/health", timeout=2).status_code == 200


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_NOFILE via preexec_fn")
def test_a_flood_of_stalled_connections_does_not_stop_a_stop_loss(chain: Stack, tmp_path: Path) -> None:
    assert chain.manifest.demo is not None
    agent = chain.manifest.demo.agents[0]
    # Stalled connections are held for the whole test: the cap, not the timeout, must protect the keeper.
    held = {"ALPHAGRID_HEADER_TIMEOUT_S": "120", "ALPHAGRID_BODY_TIMEOUT_S": "120"}
    with serve(tmp_path / "home", chain, held, nofile=200) as client, ExitStack() as sockets:
        r = trade(
            client,
            agent.agent_id,
            agent.signer_key,
            "OpenPosition",
            symbol="NVDA",
            usdcAmount="1000",
            exits=LADDER,
        )
        assert r.status_code == 201, r.text
        position_id = int(r.json()["positionId"])
        time.sleep(1.0)  # the keeper indexes the ladder
        port = int(str(client.base_url).rsplit(":", 1)[1].rstrip("/"))
        flood = 0
        for _ in range(300):
            try:
                s = sockets.enter_context(_connect(port))
                s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
                flood += 1
            except OSError:
                pass
        # Clients that send their request at once are still served (each takes an idle one's place).
        for _ in range(5):  # each on a new connection (the test's client holds a pooled one)
            assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
        token = chain.manifest.tokens["NVDA"]
        price = int(chain.admin.oracle.functions.latestPrice(token).call()[0])
        from_block = chain.w3.eth.block_number
        chain.admin.set_prices([token], [price * 88 // 100])  # −12 %: the −10 % stop is crossed
        deadline = time.monotonic() + 20
        while True:
            fired = chain.admin.router.events.ExitExecuted().get_logs(
                from_block=from_block, argument_filters={"positionId": position_id}
            )
            if fired:
                break
            assert time.monotonic() < deadline, (
                f"the stop-loss did not fire under a flood of {flood} connections"
            )
            time.sleep(0.2)
