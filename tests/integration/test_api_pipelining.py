"""Pipelining (SPEC §2.3): the quote's nonce counts the agent's intents in flight, so an agent can sign
n, n+1, n+2 without waiting; the relayer sends them in nonce order and each one confirms."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from httpx import Response

from relayer.intents.checks import DEADLINE_MARGIN_S
from relayer.intents.lifecycle import IntentState

from .conftest import Api
from .test_api_idempotency import nonces_used
from .test_api_rejections import LADDER, SL, TP, open_position, rpc, settle, signed, submit

NO_WAIT = {"Prefer": "wait=0"}


def add_sent_and_ladder_waiting(
    api: Api, agent_id: int, position_id: str, ladder_message: dict[str, Any] | None = None
) -> tuple[Response, Response, dict[str, Any]]:
    """With automine off: an add sent and in the pool (`submitted`), and a ladder update queued behind
    it (`received`). Returns both answers and the ladder update's body."""
    _q, add = signed(api, 0, "AddToPosition", positionId=position_id, usdcAmount="100")
    first = submit(api, agent_id, "AddToPosition", add, headers=NO_WAIT)
    assert first.status_code == 202 and first.json()["status"] == "submitted", first.text
    extra = {"message": ladder_message} if ladder_message is not None else {}
    _q, ladder = signed(api, 0, "UpdateExitLadder", positionId=position_id, exits=LADDER, **extra)
    second = submit(api, agent_id, "UpdateExitLadder", ladder, headers=NO_WAIT)
    assert second.status_code == 202 and second.json()["status"] == "received", second.text
    return first, second, ladder


def follow(api: Api, agent_id: int, intent_id: str, timeout_s: float = 20.0) -> dict[str, Any]:
    """Polls GET …/intents/{id} until the intent is final; returns the record."""
    deadline = time.monotonic() + timeout_s
    while True:
        r = api.client.get(f"/agents/{agent_id}/intents/{intent_id}")
        assert r.status_code == 200, r.text
        record: dict[str, Any] = r.json()
        if record["status"] in ("confirmed", "failed", "rejected"):
            return record
        assert time.monotonic() < deadline, (
            f"intent {intent_id} still {record['status']} after {timeout_s} s: {record}"
        )
        time.sleep(0.05)


def test_three_opens_signed_back_to_back_confirm_in_nonce_order(api: Api) -> None:
    agent_id, _ = api.agent(0)
    accepted = []
    for symbol in ("NVDA", "AAPL", "TSLA"):
        q, body = signed(api, 0, "OpenPosition", symbol=symbol, usdcAmount="1000", exits=LADDER)
        assert q["nonce"] == len(accepted)  # counts the intents in flight, not only the mined ones
        r = submit(api, agent_id, "OpenPosition", body, headers=NO_WAIT)
        if r.status_code == 201:  # only the first can be mined already: the others wait for it
            assert not accepted and r.json()["status"] == "confirmed", r.text
        else:
            assert r.status_code == 202, r.text
            assert r.json()["status"] in ("received", "submitted"), r.text
        assert r.json()["nonce"] == q["nonce"]
        accepted.append(r.json()["intentId"])
    records = [follow(api, agent_id, i) for i in accepted]
    assert [r["status"] for r in records] == ["confirmed"] * 3, records
    assert [r["nonce"] for r in records] == [0, 1, 2]
    # In nonce order on chain: later blocks, or the same batch transaction in item order.
    order = [(r["blockNumber"], r.get("batch", {}).get("index", 0)) for r in records]
    assert order == sorted(order) and len(set(order)) == 3, records
    settle(api)
    assert nonces_used(api, agent_id) == [0, 1, 2]
    assert api.client.get(f"/agents/{agent_id}").json()["nextNonce"] == 3
    positions = api.client.get(f"/agents/{agent_id}/positions").json()["positions"]
    assert sorted(p["symbol"] for p in positions) == ["AAPL", "NVDA", "TSLA"]


def test_mixed_intents_pipelined_and_their_limits_counted_in_flight(api: Api) -> None:
    agent_id, _ = api.agent(0)
    position_id = open_position(api, usdc="1000")
    rpc(api, "evm_setAutomine", False)  # hold everything in the mempool: all four are in flight at once
    try:
        plan: list[tuple[str, dict[str, Any]]] = [
            ("OpenPosition", {"symbol": "AAPL", "usdcAmount": "2000", "exits": LADDER}),
            ("AddToPosition", {"positionId": position_id, "usdcAmount": "500"}),
            ("UpdateExitLadder", {"positionId": position_id, "exits": [{**TP, "triggerBps": 3000}, SL]}),
            ("ReducePosition", {"positionId": position_id, "tokenAmount": "1"}),
        ]
        accepted = []
        for n, (primary_type, params) in enumerate(plan, start=1):
            q, body = signed(api, 0, primary_type, **params)
            assert q["nonce"] == n
            if primary_type == "AddToPosition":  # the open of 2,000 in flight already counts
                assert q["allocation"]["deployed"] == "3000" and q["allocation"]["turnoverToday"] == "3000"
            r = submit(api, agent_id, primary_type, body, headers=NO_WAIT)
            assert r.status_code == 202, r.text
            accepted.append(r.json()["intentId"])
        assert api.client.get(f"/agents/{agent_id}").json()["nextNonce"] == 5
        assert nonces_used(api, agent_id) == [0]
    finally:
        rpc(api, "evm_setAutomine", True)
    rpc(api, "evm_mine")
    records = [follow(api, agent_id, i) for i in accepted]
    assert [(r["type"], r["status"]) for r in records] == [(t, "confirmed") for t, _ in plan], records
    blocks = [r["blockNumber"] for r in records]
    assert blocks == sorted(blocks), blocks
    settle(api)
    assert nonces_used(api, agent_id) == [0, 1, 2, 3, 4]
    p = api.client.get(f"/agents/{agent_id}/positions/{position_id}").json()
    assert [r["triggerBps"] for r in p["ladder"]] == [3000, -1000]
    assert [h["kind"] for h in p["history"]] == ["opened", "ladder", "increased", "ladder", "reduced"]


def test_a_predecessor_that_fails_does_not_strand_its_successors(api: Api) -> None:
    """SPEC §2.3: a 2xx intent is mined or reported failed. When n+1 can no longer be sent (its deadline
    passed while n was pending), n+2 cannot be mined either; it must be reported, and the agent's next
    quote must offer n+1 again rather than a nonce behind a gap that can never close."""
    agent_id, _ = api.agent(0)
    rpc(api, "evm_setAutomine", False)
    try:
        _q, first = signed(api, 0, "OpenPosition", symbol="NVDA", usdcAmount="1000", exits=LADDER)
        r0 = submit(api, agent_id, "OpenPosition", first, headers=NO_WAIT)
        assert r0.status_code == 202, r0.text
        now = api.services.intents.chain_now()
        _q, short = signed(
            api,
            0,
            "OpenPosition",
            symbol="AAPL",
            usdcAmount="1000",
            exits=LADDER,
            message={"deadline": now + DEADLINE_MARGIN_S},  # the earliest accepted
        )
        r1 = submit(api, agent_id, "OpenPosition", short, headers=NO_WAIT)
        assert r1.status_code == 202, r1.text
        _q, third = signed(api, 0, "OpenPosition", symbol="TSLA", usdcAmount="1000", exits=LADDER)
        r2 = submit(api, agent_id, "OpenPosition", third, headers=NO_WAIT)
        assert r2.status_code == 202 and r2.json()["nonce"] == 2, r2.text
        rpc(api, "evm_setNextBlockTimestamp", now + 10)  # n mines after n+1's deadline
    finally:
        rpc(api, "evm_setAutomine", True)
    rpc(api, "evm_mine")
    assert follow(api, agent_id, r0.json()["intentId"])["status"] == "confirmed"
    stale = follow(api, agent_id, r1.json()["intentId"])
    assert stale["status"] == "rejected" and "deadline_expired" in stale["reason"], stale
    stranded = follow(api, agent_id, r2.json()["intentId"], timeout_s=5)
    assert stranded["status"] in ("rejected", "failed") and stranded["reason"], stranded
    q, _body = signed(api, 0, "OpenPosition", symbol="MSFT", usdcAmount="100", exits=LADDER)
    assert q["nonce"] == 1


def test_a_successor_recorded_while_its_predecessor_is_rejected_is_not_stranded(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by the soak (bench/soak): the dispatcher rejects n+1 (and the successors it sees) while a
    submit of n+2 — whose checks still counted n+1 as in flight — is between its checks and its commit.
    n+2 is recorded `received` after that sweep. Nothing will ever use n+1, so n+2 must be reported
    rather than wait for ever, and the agent's next quote must offer n+1 again."""
    agent_id, _ = api.agent(0)
    position_id = open_position(api, usdc="1000")
    intents = api.services.intents
    rpc(api, "evm_setAutomine", False)
    try:
        first, waiting, _ladder = add_sent_and_ladder_waiting(api, agent_id, position_id)
        waiting_id = int(waiting.json()["intentId"])

        real_context = intents.context

        def context_then_predecessor_rejected(*args: Any, **kwargs: Any) -> Any:
            ctx = real_context(*args, **kwargs)  # still counts the waiting intent as in flight
            reason = "slippage_exceeded: the router would revert"
            intents.close(waiting_id, IntentState.REJECTED, reason, None)
            return ctx

        _q, late = signed(
            api, 0, "UpdateExitLadder", positionId=position_id, exits=[{**TP, "triggerBps": 3000}, SL]
        )
        monkeypatch.setattr(intents, "context", context_then_predecessor_rejected)
        r = submit(api, agent_id, "UpdateExitLadder", late, headers=NO_WAIT)
        monkeypatch.setattr(intents, "context", real_context)
        assert r.status_code == 202 and r.json()["nonce"] == 3, r.text
    finally:
        rpc(api, "evm_setAutomine", True)
    rpc(api, "evm_mine")
    assert follow(api, agent_id, first.json()["intentId"])["status"] == "confirmed"
    stranded = follow(api, agent_id, r.json()["intentId"], timeout_s=5)
    assert stranded["status"] == "rejected", stranded
    assert f"intent {waiting_id} (nonce 2) was rejected" in stranded["reason"], stranded
    settle(api)
    assert nonces_used(api, agent_id) == [0, 1]
    q, _body = signed(api, 0, "UpdateExitLadder", positionId=position_id, exits=LADDER)
    assert q["nonce"] == 2


def test_a_waiting_submit_queued_behind_its_predecessor_answers_201_once_sent_and_confirmed(api: Api) -> None:
    """`Prefer: wait` on an intent that waits `received` for n to be mined: the dispatcher sends it
    later, and the waiting request learns of that transaction settling (it did not know its id when it
    began to wait) and answers 201 with the confirmed record, indexed by this relayer."""
    agent_id, _ = api.agent(0)
    rpc(api, "evm_setAutomine", False)
    try:
        _q, first = signed(api, 0, "OpenPosition", symbol="NVDA", usdcAmount="1000", exits=LADDER)
        r0 = submit(api, agent_id, "OpenPosition", first, headers=NO_WAIT)
        assert r0.status_code == 202 and r0.json()["status"] == "submitted", r0.text
        _q, second = signed(api, 0, "OpenPosition", symbol="AAPL", usdcAmount="1000", exits=LADDER)
        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(submit, api, agent_id, "OpenPosition", second, {"Prefer": "wait=30"})
            time.sleep(0.5)
            assert not waiting.done()  # n is not mined, so n+1 is not even sent
            rpc(api, "evm_setAutomine", True)
            rpc(api, "evm_mine")
            r1 = waiting.result(timeout=40)
    finally:
        rpc(api, "evm_setAutomine", True)
    assert r1.status_code == 201, r1.text
    record = r1.json()
    assert record["status"] == "confirmed" and record["nonce"] == 1 and record["fill"], record
    assert api.services.state.block_number >= record["blockNumber"]
    assert follow(api, agent_id, r0.json()["intentId"])["status"] == "confirmed"
