"""The relayer process killed with SIGKILL (no shutdown code runs) at the two worst moments — after
an intent and its signed transaction are committed but before the node has them, and after the
broadcast but before the receipt — then started again on the same database. The intent executes
exactly once either way. The relayer is `alphagrid serve` in a subprocess, as an operator runs it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from eth_account import Account
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from relayer.chain.anvil import free_port
from relayer.devkeys import RELAYER_KEYS
from relayer.store.db import make_engine, make_session_factory
from relayer.store.models import TxRequest
from tests.integration.agentkit import body_from_quote, quote, sign_typed
from tests.integration.test_api_rejections import LADDER

from .harness import Stack, first_only, rpc_proxy

NO_WAIT = {"Prefer": "wait=0"}


@contextmanager
def serve(
    chain: Stack, db_url: str, home: Path, rpc_url: str
) -> Iterator[tuple[subprocess.Popen[bytes], httpx.Client]]:
    """`alphagrid serve` on a free port; SIGKILLed on the way out if the test has not killed it."""
    port = free_port()
    chain.manifest.write(home / "deployment.json")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALPHAGRID_")}
    env |= {
        "ALPHAGRID_HOME": str(home),
        "ALPHAGRID_API_PORT": str(port),
        "ALPHAGRID_RPC_URL": rpc_url,
        "ALPHAGRID_DATABASE_URL": db_url,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "relayer.cli", "serve", "--no-keeper", "--json"],
        env=env,
        cwd=home,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                try:
                    if client.get("/ready", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "serve never became ready"
                time.sleep(0.1)
            yield proc, client
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def sign_open(chain: Stack, client: httpx.Client) -> tuple[int, dict[str, Any]]:
    assert chain.manifest.demo is not None
    agent = chain.manifest.demo.agents[0]
    q = quote(client, agent.agent_id, "OpenPosition", symbol="NVDA", usdcAmount="1000", exits=LADDER)
    assert q.status_code == 200, q.text
    return agent.agent_id, body_from_quote(q.json(), sign_typed(q.json()["typedData"], agent.signer_key))


def wait_for(what: str, done: Any, timeout_s: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (result := done()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return result


def final_intent(client: httpx.Client, agent_id: int) -> dict[str, Any]:
    def confirmed() -> dict[str, Any] | None:
        intents = client.get(f"/agents/{agent_id}/intents").json()["intents"]
        assert len(intents) == 1, intents
        return intents[0] if intents[0]["status"] in ("confirmed", "failed", "rejected") else None

    result: dict[str, Any] = wait_for("the intent's outcome", confirmed, timeout_s=30)
    return result


def nonces_used(chain: Stack, agent_id: int) -> list[int]:
    logs = chain.admin.router.events.NonceUsed().get_logs(
        from_block=0, argument_filters={"agentId": agent_id}
    )
    return [int(log["args"]["nonce"]) for log in logs]


def relayer_nonce(chain: Stack) -> int:
    return sum(chain.w3.eth.get_transaction_count(Account.from_key(k).address) for k in RELAYER_KEYS)


def requests(db_url: str) -> list[TxRequest]:
    engine = make_engine(db_url)
    try:
        with make_session_factory(engine)() as session:
            return list(session.scalars(select(TxRequest).options(selectinload(TxRequest.attempts))))
    finally:
        engine.dispose()


def test_sigkill_between_record_and_broadcast(chain: Stack, db_url: str, tmp_path: Path) -> None:
    """The proxy holds eth_sendRawTransaction (the node never sees it) while the relayer waits in the
    broadcast: the intent and its signed transaction are committed. SIGKILL. The next relayer sends the
    recorded transaction — the same bytes, not a new one — and the intent confirms once."""
    sent_before = relayer_nonce(chain)
    with (
        rpc_proxy(chain.anvil.url, first_only("eth_sendRawTransaction", "hold")) as proxy,
        serve(chain, db_url, tmp_path / "first", proxy.url) as (proc, client),
    ):
        agent_id, body = sign_open(chain, client)
        answers: list[httpx.Response | BaseException] = []

        def post() -> None:
            try:
                answers.append(client.post(f"/agents/{agent_id}/trade-intents", json=body, headers=NO_WAIT))
            except BaseException as exc:
                answers.append(exc)

        threading.Thread(target=post, daemon=True).start()
        wait_for("the held broadcast", lambda: proxy.faults)
        (recorded,) = requests(db_url)
        assert recorded.attempts[0].broadcast_at is None and recorded.status == "pending"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        wait_for("the agent's dropped request", lambda: answers)
        assert isinstance(answers[0], httpx.HTTPError), answers  # the agent never got an answer
    assert relayer_nonce(chain) == sent_before  # nothing reached the node
    with serve(chain, db_url, tmp_path / "second", chain.anvil.url) as (_proc, client):
        record = final_intent(client, agent_id)
        assert record["status"] == "confirmed", record
        again = client.post(f"/agents/{agent_id}/trade-intents", json=body)
        assert again.status_code == 200 and again.json()["intentId"] == record["intentId"]
    (request,) = requests(db_url)
    assert request.status == "mined" and len(request.attempts) == 1
    assert request.mined_hash == recorded.attempts[0].tx_hash
    assert relayer_nonce(chain) == sent_before + 1
    assert nonces_used(chain, agent_id) == [0]


def test_sigkill_between_broadcast_and_receipt(chain: Stack, db_url: str, tmp_path: Path) -> None:
    """Broadcast, answered 202, waiting in the pool (no automine) when the relayer is SIGKILLed; the
    block is mined while it is down. The next relayer finds the receipt: confirmed, nothing sent again."""
    sent_before = relayer_nonce(chain)
    chain.w3.provider.make_request("evm_setAutomine", [False])  # type: ignore[arg-type]
    try:
        with serve(chain, db_url, tmp_path / "first", chain.anvil.url) as (proc, client):
            agent_id, body = sign_open(chain, client)
            r = client.post(f"/agents/{agent_id}/trade-intents", json=body, headers=NO_WAIT)
            assert r.status_code == 202 and r.json()["status"] == "submitted", r.text
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    finally:
        chain.w3.provider.make_request("evm_setAutomine", [True])  # type: ignore[arg-type]
    chain.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    assert nonces_used(chain, agent_id) == [0]
    with serve(chain, db_url, tmp_path / "second", chain.anvil.url) as (_proc, client):
        record = final_intent(client, agent_id)
        assert record["status"] == "confirmed" and record["intentId"] == r.json()["intentId"], record
    (request,) = requests(db_url)
    assert request.status == "mined" and len(request.attempts) == 1
    assert relayer_nonce(chain) == sent_before + 1
    assert nonces_used(chain, agent_id) == [0]
