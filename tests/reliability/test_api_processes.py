"""`alphagrid serve --api-processes 2` as an operator runs it (PostgreSQL): one engine process and two
API processes on one port. Intents submitted through any of them are sent by the engine exactly once;
an engine or an API process killed with SIGKILL is started again by the supervisor, and nothing an
agent was answered 2xx for is lost or executed twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from relayer.chain.anvil import free_port
from relayer.service import Role
from relayer.store.db import make_engine, make_session_factory
from relayer.store.models import Intent
from relayer.supervisor import supervised
from tests.integration.agentkit import body_from_quote, quote, sign_typed
from tests.integration.test_api_rejections import LADDER

from .harness import Stack
from .test_crash import nonces_used, wait_for

NO_WAIT = {"Prefer": "wait=0"}


class Serve:
    def __init__(self, proc: subprocess.Popen[bytes], url: str) -> None:
        self.proc = proc
        self.url = url

    def children(self) -> dict[str, int]:
        """role → pid of the supervisor's live children (`api` roles numbered by pid order)."""
        found = supervised(self.proc.pid)
        apis = sorted(pid for pid, role in found.items() if role is Role.API)
        out = {f"api-{i}": pid for i, pid in enumerate(apis)}
        out |= {str(role): pid for pid, role in found.items() if role is Role.ENGINE}
        return out

    def call(self, what: Callable[[httpx.Client], httpx.Response]) -> httpx.Response:
        """On a new connection each time (the kernel spreads connections over the API processes); a
        connection refused or reset by a process that just died is tried again, as a client would."""
        for _attempt in range(50):
            try:
                with httpx.Client(base_url=self.url, timeout=30) as client:
                    return what(client)
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError("no API process answered")

    def post(self, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> httpx.Response:
        return self.call(lambda client: client.post(path, json=body, headers=headers or {}))

    def get(self, path: str) -> httpx.Response:
        return self.call(lambda client: client.get(path))


@contextmanager
def serve(chain: Stack, db_url: str, home: Path, api_processes: int = 2) -> Iterator[Serve]:
    port = free_port()
    home.mkdir(parents=True, exist_ok=True)
    chain.manifest.write(home / "deployment.json")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALPHAGRID_")}
    env |= {
        "ALPHAGRID_HOME": str(home),
        "ALPHAGRID_API_PORT": str(port),
        "ALPHAGRID_RPC_URL": chain.anvil.url,
        "ALPHAGRID_DATABASE_URL": db_url,
    }
    log = open(home / "serve.log", "wb")  # noqa: SIM115  (closed below)
    args = ["serve", "--no-keeper", "--json", "--api-processes", str(api_processes)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "relayer.cli", *args],
        env=env,
        cwd=home,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = Serve(proc, f"http://127.0.0.1:{port}")
    try:
        wait_for(
            "serve --api-processes to start",
            lambda: proc.poll() is not None or len(server.children()) == 1 + api_processes,
            timeout_s=90,
        )
        assert proc.poll() is None, (home / "serve.log").read_text()
        wait_for("/ready", lambda: server.get("/ready").status_code == 200, timeout_s=60)
        yield server
        assert proc.poll() is None, (home / "serve.log").read_text()  # the supervisor never gave up
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()
    # SIGTERM stopped the children too: nothing of the relayer is left.
    assert server.children() == {}


def signed_open(chain: Stack, server: Serve, index: int, symbol: str = "NVDA") -> tuple[int, dict[str, Any]]:
    assert chain.manifest.demo is not None
    agent = chain.manifest.demo.agents[index]
    params = {"symbol": symbol, "usdcAmount": "100", "exits": LADDER}
    q = server.call(lambda client: quote(client, agent.agent_id, "OpenPosition", **params))
    assert q.status_code == 200, q.text
    return agent.agent_id, body_from_quote(q.json(), sign_typed(q.json()["typedData"], agent.signer_key))


def intents(db_url: str) -> list[tuple[int, int, str]]:
    engine = make_engine(db_url)
    try:
        with make_session_factory(engine)() as session:
            rows = session.execute(select(Intent.agent_id, Intent.nonce, Intent.status).order_by(Intent.id))
            return [(a, n, s) for a, n, s in rows]
    finally:
        engine.dispose()


def test_intents_through_two_api_processes_are_each_sent_once(
    chain: Stack, pg_url: str, tmp_path: Path
) -> None:
    with serve(chain, pg_url, tmp_path / "home") as server:
        assert set(server.children()) == {"engine", "api-0", "api-1"}
        answers: dict[int, list[httpx.Response]] = {0: [], 1: []}

        def trade(index: int) -> None:
            for symbol in ("NVDA", "AAPL", "TSLA"):  # one position per token and agent
                agent_id, body = signed_open(chain, server, index, symbol)
                answers[index].append(server.post(f"/agents/{agent_id}/trade-intents", body))

        threads = [threading.Thread(target=trade, args=(i,)) for i in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        for responses in answers.values():
            assert [r.status_code for r in responses] == [201, 201, 201], [r.text for r in responses]
            # Answered once its own process had indexed the block: the next quote already saw it.
            assert [r.json()["nonce"] for r in responses] == [0, 1, 2]
    demo = chain.manifest.demo
    assert demo is not None
    for agent in demo.agents[:2]:
        assert nonces_used(chain, agent.agent_id) == [0, 1, 2]
    assert sorted(intents(pg_url)) == sorted(
        (a.agent_id, n, "confirmed") for a in demo.agents[:2] for n in range(3)
    )


def test_sigkilled_engine_and_api_processes_are_restarted_and_nothing_is_lost(
    chain: Stack, pg_url: str, tmp_path: Path
) -> None:
    with serve(chain, pg_url, tmp_path / "home") as server:
        before = server.children()
        # The engine dies. The API processes still take submits: recorded, answered 202 (not sent yet).
        os.kill(before["engine"], signal.SIGKILL)
        agent_id, body = signed_open(chain, server, 0)
        r = server.post(f"/agents/{agent_id}/trade-intents", body, NO_WAIT)
        assert r.status_code == 202, r.text
        intent_id = r.json()["intentId"]
        # The supervisor starts a new engine, which sends what was recorded meanwhile.
        wait_for(
            "a new engine",
            lambda: server.children().get("engine") not in (None, before["engine"]),
            timeout_s=60,
        )

        def confirmed() -> bool:
            doc = server.get(f"/agents/{agent_id}/intents/{intent_id}").json()
            assert doc["status"] not in ("failed", "rejected"), doc
            return bool(doc["status"] == "confirmed")

        wait_for("the intent recorded while the engine was down", confirmed, timeout_s=60)

        # An API process dies: the other serves; the supervisor starts a new one.
        live = server.children()
        os.kill(live["api-0"], signal.SIGKILL)
        agent_id, body = signed_open(chain, server, 0, "AAPL")
        r = server.post(f"/agents/{agent_id}/trade-intents", body)
        assert r.status_code == 201, r.text
        wait_for(
            "a new API process",
            lambda: len(server.children()) == 3 and live["api-0"] not in server.children().values(),
            timeout_s=60,
        )
        # The same signed intent again, through whichever process: the record it already has.
        again = server.post(f"/agents/{agent_id}/trade-intents", body)
        assert again.status_code == 200 and again.json()["intentId"] == r.json()["intentId"]
    assert nonces_used(chain, agent_id) == [0, 1]
    assert intents(pg_url) == [(agent_id, 0, "confirmed"), (agent_id, 1, "confirmed")]
    engine = make_engine(pg_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(Intent)).scalar_one() == 2
    finally:
        engine.dispose()
