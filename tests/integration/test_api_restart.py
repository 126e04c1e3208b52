"""Durability across restarts (SPEC §2.3): once a submit is answered 2xx, the intent is mined or
reported failed even if the relayer stops in between. Each test stops the fixture's relayer at a chosen
point (Anvil's automine off holds its transaction in the mempool), moves the chain on without it, and
starts a new relayer on the same database."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn

from relayer.api.app import create_app
from relayer.chain.anvil import free_port
from relayer.service import Services, build_services

from .conftest import Api
from .test_api_idempotency import nonces_used
from .test_api_rejections import LADDER, SL, TP, open_position, rpc, signed, submit

NO_WAIT = {"Prefer": "wait=0"}


@contextmanager
def new_relayer(api: Api) -> Iterator[tuple[Services, httpx.Client]]:
    """A second relayer process, as after a restart: same settings and database, a new port."""
    settings = api.services.settings.model_copy(update={"api_port": free_port()})
    services = build_services(settings, api.stack.manifest)
    services.start()
    server = uvicorn.Server(
        uvicorn.Config(create_app(services), host="127.0.0.1", port=settings.api_port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    try:
        with httpx.Client(base_url=settings.api_url, timeout=30) as client:
            yield services, client
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        services.close()


def final(client: httpx.Client, agent_id: int, intent_id: str, timeout_s: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        record: dict[str, Any] = client.get(f"/agents/{agent_id}/intents/{intent_id}").json()
        if record["status"] in ("confirmed", "failed", "rejected"):
            return record
        assert time.monotonic() < deadline, record
        time.sleep(0.05)


def statuses(record: dict[str, Any]) -> list[str]:
    return [h["status"] for h in record["history"]]


def pending_nonces(api: Api) -> dict[str, int]:
    w3 = api.stack.w3
    return {
        a: w3.eth.get_transaction_count(a, "pending") - w3.eth.get_transaction_count(a, "latest")
        for a in api.services.sender.senders
    }


def test_a_sent_intent_confirms_exactly_once_after_a_restart(api: Api) -> None:
    agent_id, _ = api.agent(0)
    rpc(api, "evm_setAutomine", False)
    try:
        _q, body = signed(api, 0, "OpenPosition", symbol="NVDA", usdcAmount="1000", exits=LADDER)
        r = submit(api, agent_id, "OpenPosition", body, headers=NO_WAIT)
        assert r.status_code == 202 and r.json()["status"] == "submitted", r.text
        intent_id = r.json()["intentId"]
        assert sum(pending_nonces(api).values()) == 1  # in the mempool, not mined
        api.services.close()  # the relayer stops between "submitted" and "confirmed"
    finally:
        rpc(api, "evm_setAutomine", True)
    rpc(api, "evm_mine")
    with new_relayer(api) as (_services, client):
        record = final(client, agent_id, intent_id)
        assert record["status"] == "confirmed" and record["positionId"] == "1", record
        assert statuses(record) == ["received", "submitted", "confirmed"], record["history"]
        assert record["fill"]["usdc"] == "1000"
        # Submitting it again to the new relayer is still the same intent.
        again = client.post(f"/agents/{agent_id}/trade-intents", json=body)
        assert again.status_code == 200 and again.json()["intentId"] == intent_id
        assert len(client.get(f"/agents/{agent_id}/intents").json()["intents"]) == 1
    assert nonces_used(api, agent_id) == [0]


def test_a_received_successor_is_sent_by_the_next_relayer(api: Api) -> None:
    agent_id, _ = api.agent(0)
    position_id = open_position(api)
    rpc(api, "evm_setAutomine", False)
    try:
        _q, add = signed(api, 0, "AddToPosition", positionId=position_id, usdcAmount="500")
        first = submit(api, agent_id, "AddToPosition", add, headers=NO_WAIT)
        assert first.status_code == 202 and first.json()["status"] == "submitted", first.text
        _q, ladder = signed(
            api, 0, "UpdateExitLadder", positionId=position_id, exits=[{**TP, "triggerBps": 3000}, SL]
        )
        second = submit(api, agent_id, "UpdateExitLadder", ladder, headers=NO_WAIT)
        assert second.status_code == 202 and second.json()["status"] == "received", second.text
        api.services.close()  # the successor is recorded but never sent by this relayer
    finally:
        rpc(api, "evm_setAutomine", True)
    rpc(api, "evm_mine")
    with new_relayer(api) as (_services, client):
        done = [final(client, agent_id, r.json()["intentId"]) for r in (first, second)]
        assert [d["status"] for d in done] == ["confirmed", "confirmed"], done
        assert statuses(done[1]) == ["received", "submitted", "confirmed"], done[1]["history"]
        assert done[0]["blockNumber"] < done[1]["blockNumber"]
    assert nonces_used(api, agent_id) == [0, 1, 2]


def test_a_transaction_the_node_forgot_while_the_relayer_was_down_is_sent_again(api: Api) -> None:
    agent_id, _ = api.agent(0)
    rpc(api, "evm_setAutomine", False)
    try:
        _q, body = signed(api, 0, "OpenPosition", symbol="NVDA", usdcAmount="1000", exits=LADDER)
        r = submit(api, agent_id, "OpenPosition", body, headers=NO_WAIT)
        assert r.status_code == 202, r.text
        api.services.close()
        rpc(api, "anvil_dropAllTransactions")
        assert sum(pending_nonces(api).values()) == 0
    finally:
        rpc(api, "evm_setAutomine", True)
    with new_relayer(api) as (_services, client):
        record = final(client, agent_id, r.json()["intentId"])
        assert record["status"] == "confirmed", record
    assert nonces_used(api, agent_id) == [0]
