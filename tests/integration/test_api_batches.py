"""Batches (SPEC §5.1) over HTTP: intents of many agents that become ready together go out in one
`executeIntents` transaction; an agent's pipelined nonces ride in one batch; an item the batch's
simulation refuses is rejected with its own reason and never sent; an item that fails on chain fails
alone. Real Anvil, real contracts, real signatures, both databases."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from eth_account import Account
from sqlalchemy import select

from relayer.store.models import Intent, TxRequest

from .agentkit import body_from_quote, quote, send_raw, sign_typed
from .conftest import Api
from .test_api_idempotency import nonces_used
from .test_api_rejections import LADDER, rpc

NO_WAIT = {"Prefer": "wait=0"}


def register_agents(api: Api, n: int, allocation_usdc: int = 50_000) -> list[tuple[int, str]]:
    """`n` fresh agents on the demo vault, visible to the relayer's view once this returns."""
    vault_id = api.stack.manifest.vaults[0].vault_id
    out = []
    for i in range(n):
        key = "0x" + (0xA11CE000 + i).to_bytes(32, "big").hex()
        agent_id = api.stack.admin.register_agent(
            Account.from_key(key).address, vault_id, "prime", allocation_usdc * 10**6
        )
        out.append((agent_id, key))
    deadline = time.monotonic() + 20
    for agent_id, _key in out:
        while api.client.get(f"/agents/{agent_id}").status_code != 200:
            assert time.monotonic() < deadline, f"agent {agent_id} never indexed"
            time.sleep(0.05)
    return out


def signed_open(api: Api, agent_id: int, key: str, symbol: str = "NVDA", usdc: str = "100") -> dict[str, Any]:
    q = quote(api.client, agent_id, "OpenPosition", symbol=symbol, usdcAmount=usdc, exits=LADDER)
    assert q.status_code == 200, q.text
    return body_from_quote(q.json(), sign_typed(q.json()["typedData"], key))


def post(
    api: Api, agent_id: int, path: str, body: dict[str, Any], headers: dict[str, str] | None = None
) -> httpx.Response:
    return api.client.post(f"/agents/{agent_id}/{path}", json=body, headers=headers or {})


def record(api: Api, agent_id: int, intent_id: str, timeout_s: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        r = api.client.get(f"/agents/{agent_id}/intents/{intent_id}").json()
        if r["status"] in ("confirmed", "failed", "rejected"):
            return r  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, r
        time.sleep(0.05)


def intent_rows(api: Api) -> list[Intent]:
    with api.services.sessions() as session:
        return list(session.scalars(select(Intent).order_by(Intent.id)).all())


def test_opens_of_many_agents_ready_together_go_out_in_one_batch(api: Api) -> None:
    agents = register_agents(api, 6)
    bodies = [(agent_id, signed_open(api, agent_id, key)) for agent_id, key in agents]
    rpc(api, "evm_setAutomine", False)  # what is sent stays in flight: the rest becomes ready meanwhile
    try:
        with ThreadPoolExecutor(len(bodies)) as pool:
            answers = list(pool.map(lambda ab: post(api, ab[0], "trade-intents", ab[1], NO_WAIT), bodies))
        assert all(a.status_code == 202 for a in answers), [a.text for a in answers]
        # One transaction is in flight; everything else waits for the next one (max_in_flight = 1).
        deadline = time.monotonic() + 30
        while not any(r.status == "submitted" for r in intent_rows(api)):
            assert time.monotonic() < deadline, [(r.id, r.status) for r in intent_rows(api)]
            time.sleep(0.05)
        in_flight = {r.tx_request_id for r in intent_rows(api) if r.status == "submitted"}
        assert len(in_flight) == 1, [(r.id, r.status, r.tx_request_id) for r in intent_rows(api)]
    finally:
        rpc(api, "evm_setAutomine", True)
    rpc(api, "evm_mine")
    records = [
        record(api, agent_id, a.json()["intentId"]) for (agent_id, _b), a in zip(bodies, answers, strict=True)
    ]
    assert all(r["status"] == "confirmed" for r in records), records
    by_tx: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_tx.setdefault(r["transactionHash"], []).append(r)
    assert len(by_tx) < len(records), by_tx  # fewer transactions than intents
    for tx_records in by_tx.values():
        if len(tx_records) == 1:
            assert "batch" not in tx_records[0]  # alone: through the single-intent function
            continue
        assert sorted(r["batch"]["index"] for r in tx_records) == list(range(len(tx_records)))
        assert {r["batch"]["size"] for r in tx_records} == {len(tx_records)}
        assert {r["batch"]["transactionHash"] for r in tx_records} == {tx_records[0]["transactionHash"]}
    for agent_id, _key in agents:
        assert nonces_used(api, agent_id) == [0]
        positions = api.client.get(f"/agents/{agent_id}/positions").json()["positions"]
        assert len(positions) == 1 and positions[0]["symbol"] == "NVDA"


def test_an_agents_pipelined_nonces_ride_in_one_batch_in_order(api: Api) -> None:
    agent_id, key = register_agents(api, 1)[0]
    rpc(api, "evm_setAutomine", False)
    try:
        bodies = []
        answers = []
        for symbol in ("NVDA", "AAPL", "TSLA"):
            body = signed_open(api, agent_id, key, symbol)
            bodies.append(body)
            answers.append(post(api, agent_id, "trade-intents", body, NO_WAIT))
        assert [b["nonce"] for b in bodies] == [0, 1, 2]
        assert all(a.status_code == 202 for a in answers), [a.text for a in answers]
    finally:
        rpc(api, "evm_setAutomine", True)
    rpc(api, "evm_mine")
    records = [record(api, agent_id, a.json()["intentId"]) for a in answers]
    assert [r["status"] for r in records] == ["confirmed"] * 3, records
    # Nonce 0 went alone; 1 and 2 waited behind it and then went together, in nonce order.
    assert "batch" not in records[0]
    assert [r["batch"]["index"] for r in records[1:]] == [0, 1], records
    assert records[1]["transactionHash"] == records[2]["transactionHash"]
    assert nonces_used(api, agent_id) == [0, 1, 2]


def test_an_item_the_simulation_refuses_is_rejected_with_its_reason_and_never_sent(api: Api) -> None:
    """Three agents queue behind a transaction in flight; meanwhile the operator deactivates one. The
    next batch's simulation refuses that agent's item (agent_inactive): it is rejected, its nonce stays
    unused, and the other two go out together."""
    (a1, k1), (a2, k2), (a3, k3) = register_agents(api, 3)
    (a0, k0) = register_agents(api, 1)[0]
    rpc(api, "evm_setAutomine", False)
    try:
        lead = post(api, a0, "trade-intents", signed_open(api, a0, k0), NO_WAIT)  # in flight, alone
        assert lead.status_code == 202 and lead.json()["status"] == "submitted", lead.text
        answers = {}
        for agent_id, key in ((a1, k1), (a2, k2), (a3, k3)):
            answers[agent_id] = post(api, agent_id, "trade-intents", signed_open(api, agent_id, key), NO_WAIT)
            assert answers[agent_id].status_code == 202, answers[agent_id].text
        router = api.stack.admin.agents
        send_raw(
            api.stack.w3,
            router.address,
            router.encode_abi("setActive", [a2, False]),
            api.stack.manifest.demo.operator_key,  # type: ignore[union-attr]
        )
    finally:
        rpc(api, "evm_setAutomine", True)
    rpc(api, "evm_mine")
    assert record(api, a0, lead.json()["intentId"])["status"] == "confirmed"
    refused = record(api, a2, answers[a2].json()["intentId"])
    assert refused["status"] == "rejected" and "agent_inactive" in refused["reason"], refused
    kept = [record(api, a, answers[a].json()["intentId"]) for a in (a1, a3)]
    assert [r["status"] for r in kept] == ["confirmed", "confirmed"], kept
    assert kept[0]["transactionHash"] == kept[1]["transactionHash"]
    assert [r["batch"]["size"] for r in kept] == [2, 2]
    assert nonces_used(api, a2) == []
    with api.services.sessions() as session:
        row = session.get(Intent, int(refused["intentId"]))
        assert row is not None and row.tx_request_id is None  # never in a transaction


def test_an_item_that_fails_on_chain_fails_alone(api: Api) -> None:
    """Simulation passed, but the agent was deactivated by a transaction ordered before the batch in
    the same block: its item emits IntentFailed and changes nothing; the others are confirmed."""
    (a0, k0), (a1, k1), (a2, k2), (a3, k3) = register_agents(api, 4)
    rpc(api, "evm_setAutomine", False)
    try:
        lead = post(api, a0, "trade-intents", signed_open(api, a0, k0), NO_WAIT)
        assert lead.json()["status"] == "submitted", lead.text
        answers = {
            a: post(api, a, "trade-intents", signed_open(api, a, k), NO_WAIT)
            for a, k in ((a1, k1), (a2, k2), (a3, k3))
        }
        rpc(api, "evm_mine")  # the lead is mined; the three go out together into the pool
        deadline = time.monotonic() + 10
        while True:
            statuses = {
                a: r.json()["status"]
                for a, r in (
                    (a, api.client.get(f"/agents/{a}/intents/{answers[a].json()['intentId']}"))
                    for a in answers
                )
            }
            if all(s == "submitted" for s in statuses.values()):
                break
            assert time.monotonic() < deadline, statuses
            time.sleep(0.05)
        registry = api.stack.admin.agents
        send_raw(
            api.stack.w3,
            registry.address,
            registry.encode_abi("setActive", [a2, False]),
            api.stack.manifest.demo.operator_key,  # type: ignore[union-attr]
            tip_wei=50 * 10**9,  # ordered before the batch in the block
        )
    finally:
        rpc(api, "evm_setAutomine", True)
    rpc(api, "evm_mine")
    failed = record(api, a2, answers[a2].json()["intentId"])
    assert failed["status"] == "failed" and "agent_inactive" in failed["reason"], failed
    kept = [record(api, a, answers[a].json()["intentId"]) for a in (a1, a3)]
    assert [r["status"] for r in kept] == ["confirmed", "confirmed"], kept
    assert failed["batch"]["transactionHash"] == kept[0]["transactionHash"]
    assert failed["transactionHash"] == kept[0]["transactionHash"]  # the hash it failed in
    with api.services.sessions() as session:
        row = session.get(Intent, int(failed["intentId"]))
        assert row is not None and row.error is not None
        assert row.error["code"] == "agent_inactive", row.error
        assert row.error["details"]["onChain"] == "item_failed", row.error
    assert nonces_used(api, a2) == []
    assert [nonces_used(api, a) for a in (a1, a3)] == [[0], [0]]
    with api.services.sessions() as session:
        requests = session.scalars(select(TxRequest).where(TxRequest.purpose == "intent")).all()
        assert [r.status for r in requests] == ["mined", "mined"]  # the lead's and the batch's


@pytest.mark.parametrize("n", [8])
def test_concurrent_submits_with_waiting_all_confirm_exactly_once(api: Api, n: int) -> None:
    """Automine on, many agents submitting at once and waiting for the answer: every one is answered
    201 with its own fill, and each nonce is used once."""
    agents = register_agents(api, n)
    bodies = [(agent_id, signed_open(api, agent_id, key, usdc="50")) for agent_id, key in agents]
    with ThreadPoolExecutor(n) as pool:
        answers = list(pool.map(lambda ab: post(api, ab[0], "trade-intents", ab[1]), bodies))
    assert [a.status_code for a in answers] == [201] * n, [a.text for a in answers]
    assert all(a.json()["fill"]["usdc"] == "50" for a in answers)
    for agent_id, _key in agents:
        assert nonces_used(api, agent_id) == [0]
