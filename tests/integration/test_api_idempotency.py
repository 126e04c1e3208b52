"""Idempotency (SPEC §2.3): an intent is identified by its EIP-712 digest, so posting it again — at the
same moment from 20 threads, after it confirmed, under an Idempotency-Key, or with its signature
malleated — never executes it twice."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from .conftest import Api
from .test_api_rejections import (
    LADDER,
    assert_error,
    high_s_twin,
    intents_of,
    nothing_sent,
    settle,
    signed,
    submit,
)


def nonces_used(api: Api, agent_id: int) -> list[int]:
    """The nonces the router consumed for the agent, from its NonceUsed events."""
    router = api.stack.admin.router
    logs = router.events.NonceUsed().get_logs(from_block=0, argument_filters={"agentId": agent_id})
    return [int(log["args"]["nonce"]) for log in logs]


def positions_on_chain(api: Api) -> int:
    return int(api.stack.admin.router.functions.positionCount().call())


def test_one_intent_posted_20_times_at_once_executes_once(api: Api) -> None:
    agent_id, _ = api.agent(0)
    _q, body = signed(api, 0, "OpenPosition", symbol="NVDA", usdcAmount="1000", exits=LADDER)
    start = threading.Barrier(20)

    def post(_: int) -> httpx.Response:
        with httpx.Client(base_url=api.url, timeout=30) as client:
            start.wait()
            return client.post(f"/agents/{agent_id}/trade-intents", json=body)

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(post, range(20)))
    statuses = sorted(r.status_code for r in answers)
    outcomes = Counter((r.status_code, r.json().get("message", "")) for r in answers)
    # A duplicate that loses the race must still get the record, never a 409 for its own nonce.
    assert all(s in (200, 201, 202) for s in statuses), outcomes
    assert sum(s in (201, 202) for s in statuses) == 1, statuses
    assert {r.json()["intentId"] for r in answers} == {answers[0].json()["intentId"]}
    assert {r.json()["digest"] for r in answers} == {answers[0].json()["digest"]}
    settle(api)
    assert nonces_used(api, agent_id) == [0]
    assert positions_on_chain(api) == 1
    assert len(intents_of(api, agent_id)) == 1


def test_a_resubmission_after_confirmation_returns_the_same_record(api: Api) -> None:
    agent_id, _ = api.agent(0)
    _q, body = signed(api, 0, "OpenPosition", symbol="NVDA", usdcAmount="1000", exits=LADDER)
    first = submit(api, agent_id, "OpenPosition", body)
    assert first.status_code == 201, first.text
    settle(api)
    with nothing_sent(api):
        again = submit(api, agent_id, "OpenPosition", body)
        assert again.status_code == 200, again.text
        record: dict[str, Any] = again.json()
        for field in ("intentId", "digest", "status", "positionId", "transactionHash", "blockNumber", "fill"):
            assert record[field] == first.json()[field], field
        # The Idempotency-Key is optional: the digest alone identifies the intent.
        keyed = submit(api, agent_id, "OpenPosition", body, headers={"Idempotency-Key": "late-key"})
        assert keyed.status_code == 200 and keyed.json()["intentId"] == record["intentId"]
    assert nonces_used(api, agent_id) == [0]


def test_idempotency_key_same_intent_same_record_different_intent_400(api: Api) -> None:
    agent_id, _ = api.agent(0)
    other_id, _ = api.agent(1)
    _q, body = signed(api, 0, "OpenPosition", symbol="NVDA", usdcAmount="1000", exits=LADDER)
    key = {"Idempotency-Key": "order-7f3a"}
    first = submit(api, agent_id, "OpenPosition", body, headers={**key, "Prefer": "wait=0"})
    assert first.status_code in (201, 202), first.text
    intent_id = first.json()["intentId"]
    second = submit(api, agent_id, "OpenPosition", body, headers=key)
    assert second.status_code == 200 and second.json()["intentId"] == intent_id, second.text
    settle(api)
    _q, different = signed(api, 0, "OpenPosition", symbol="AAPL", usdcAmount="500", exits=LADDER)
    with nothing_sent(api):
        assert_error(
            submit(api, agent_id, "OpenPosition", different, headers=key),
            400,
            "invalid_request",
            intentId=intent_id,
        )
    # Keys are per agent: another agent may use the same one for its own intent.
    _q, theirs = signed(
        api,
        1,
        "OpenPosition",
        symbol="AAPL",
        usdcAmount="100",
        exits=[{"triggerType": "StopLoss", "triggerBps": -500, "exitBps": 10000}],
    )
    r = submit(api, other_id, "OpenPosition", theirs, headers=key)
    assert r.status_code == 201 and r.json()["intentId"] != intent_id, r.text
    # The rejected intent itself is still welcome under no key (or a fresh one).
    r = submit(api, agent_id, "OpenPosition", different, headers={"Idempotency-Key": "order-7f3b"})
    assert r.status_code == 201, r.text
    assert nonces_used(api, agent_id) == [0, 1]


def test_the_malleated_twin_of_an_executed_signature_is_rejected_and_never_executes(api: Api) -> None:
    agent_id, _ = api.agent(0)
    _q, body = signed(api, 0, "OpenPosition", symbol="NVDA", usdcAmount="1000", exits=LADDER)
    assert submit(api, agent_id, "OpenPosition", body).status_code == 201
    settle(api)
    twin = {**body, "signature": high_s_twin(body["signature"])}
    raw = bytes.fromhex(body["signature"][2:])
    v_as_01 = {**body, "signature": "0x" + (raw[:64] + bytes([raw[64] - 27])).hex()}
    with nothing_sent(api):
        for bad in (twin, v_as_01):
            for _ in range(2):
                assert_error(
                    submit(api, agent_id, "OpenPosition", bad), 400, "invalid_request", field="signature"
                )
    # Even before its original: a twin submitted first is refused, so it can never be the one that runs.
    _q, add = signed(api, 0, "AddToPosition", positionId="1", usdcAmount="100")
    with nothing_sent(api):
        assert_error(
            submit(api, agent_id, "AddToPosition", {**add, "signature": high_s_twin(add["signature"])}),
            400,
            "invalid_request",
            reason="high_s",
        )
    assert submit(api, agent_id, "AddToPosition", add).status_code == 201
    settle(api)
    assert nonces_used(api, agent_id) == [0, 1]
    assert positions_on_chain(api) == 1
    assert len(intents_of(api, agent_id)) == 2
