"""Webhooks end to end on both databases: the real relayer, a real intent on Anvil, a real receiver on
loopback; every delivery checked with the standardwebhooks library's verifier."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from sqlalchemy import func, select
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from relayer.operators import keys
from relayer.store.models import StreamEvent, WebhookAttempt, WebhookOutbox
from tests.integration.agentkit import trade
from tests.integration.test_api_happy_paths import LADDER

from .conftest import Api, Delivery, Receiver, bearer, make_key

T = TypeVar("T")


def eventually(probe: Callable[[], T | None], timeout_s: float = 30.0) -> T:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = probe()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout_s} s")


def subscribe(api: Api, key: str, url: str, events: list[str], agent_id: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"url": url, "events": events}
    if agent_id is not None:
        body["agentId"] = agent_id
    r = api.client.post("/webhooks", json=body, headers=bearer(key))
    assert r.status_code == 201, r.text
    return dict(r.json())


def open_position(api: Api, index: int = 0) -> dict[str, Any]:
    agent_id, signer = api.agent(index)
    r = trade(api.client, agent_id, signer, "OpenPosition", symbol="NVDA", usdcAmount="1000", exits=LADDER)
    assert r.status_code == 201, r.text
    return dict(r.json())


def verified(secret: str, d: Delivery) -> dict[str, Any]:
    doc: dict[str, Any] = Webhook(secret).verify(d.body, d.headers)
    return doc


def outbox(api: Api, subscription_id: str) -> list[WebhookOutbox]:
    with api.services.sessions() as session:
        return list(
            session.execute(
                select(WebhookOutbox).where(WebhookOutbox.subscription_id == int(subscription_id))
            ).scalars()
        )


def settled(api: Api, subscription_id: str) -> list[WebhookOutbox] | None:
    rows = outbox(api, subscription_id)
    return rows if rows and all(r.status != "pending" for r in rows) else None


def test_deliveries_verify_and_follow_the_filters(api: Api, receiver: Receiver) -> None:
    key = make_key(api.services.sessions, "ops", keys.Scope.OPERATOR)
    agent_id, _ = api.agent(0)
    other_agent, _ = api.agent(1)
    with api.services.sessions() as session:
        seq_before = session.execute(select(func.coalesce(func.max(StreamEvent.seq), 0))).scalar_one()
    every = subscribe(api, key, receiver.url("/all"), ["*"])
    fills = subscribe(api, key, receiver.url("/fills"), ["fill"], agent_id=agent_id)
    other = subscribe(api, key, receiver.url("/other"), ["*"], agent_id=other_agent)
    assert every["secret"].startswith("whsec_") and len({every["id"], fills["id"], other["id"]}) == 3

    opened = open_position(api)
    eventually(
        lambda: (
            settled(api, every["id"])
            if any(json.loads(r.body)["type"] == "ladder_updated" for r in outbox(api, every["id"]))
            else None
        )
    )
    eventually(lambda: settled(api, fills["id"]))

    # "*": exactly the agent's SSE stream since the subscription, each event once, all verified
    got = [verified(every["secret"], d) for d in receiver.received("/all")]
    with api.services.sessions() as session:
        stream = session.execute(
            select(StreamEvent.seq, StreamEvent.type, StreamEvent.data)
            .where(StreamEvent.seq > seq_before)
            .order_by(StreamEvent.seq)
        ).all()
    assert sorted(g["eventId"] for g in got) == [s.seq for s in stream]
    assert {g["eventId"]: (g["type"], g["data"]) for g in got} == {s.seq: (s.type, s.data) for s in stream}
    assert {"intent_status", "fill", "ladder_updated"} <= {g["type"] for g in got}
    assert any(
        g["type"] == "intent_status"
        and g["data"]["status"] == "confirmed"
        and g["data"]["intentId"] == opened["intentId"]
        for g in got
    )
    assert len({d.headers["webhook-id"] for d in receiver.received("/all")}) == len(got)

    # type filter + agent filter
    fill_docs = [verified(fills["secret"], d) for d in receiver.received("/fills")]
    assert [d["type"] for d in fill_docs] == ["fill"]
    assert fill_docs[0]["agentId"] == str(agent_id) and str(fill_docs[0]["data"]["positionId"]) == str(
        opened["positionId"]
    )
    with pytest.raises(WebhookVerificationError):  # another subscription's secret does not verify
        verified(every["secret"], receiver.received("/fills")[0])
    assert receiver.received("/other") == [] and outbox(api, other["id"]) == []

    listed = {w["id"]: w for w in api.client.get("/webhooks", headers=bearer(key)).json()["webhooks"]}
    assert listed[fills["id"]]["deliveries"] == {"pending": 0, "delivered": 1, "failed": 0, "retrying": 0}
    assert listed[fills["id"]]["lastAttempt"]["statusCode"] == 204
    assert listed[fills["id"]]["agentId"] == str(agent_id) and listed[fills["id"]]["createdBy"] == "ops"
    assert "secret" not in listed[fills["id"]]


def test_receiver_down_then_back_same_webhook_id(api: Api, receiver: Receiver) -> None:
    key = make_key(api.services.sessions, "ops", keys.Scope.OPERATOR)
    sub = subscribe(api, key, receiver.url(), ["fill"])
    receiver.down()
    open_position(api)
    # at least two failed attempts, visible in the list
    row = eventually(lambda: next((r for r in outbox(api, sub["id"]) if r.attempts >= 2), None))
    listed = api.client.get("/webhooks", headers=bearer(key)).json()["webhooks"][0]
    assert listed["deliveries"]["retrying"] == 1 and listed["deliveries"]["delivered"] == 0
    assert listed["lastAttempt"]["statusCode"] is None and "ConnectError" in listed["lastAttempt"]["error"]

    receiver.up()
    [delivery] = receiver.wait_for(lambda got: len(got) >= 1, timeout_s=30)
    assert delivery.headers["webhook-id"] == row.webhook_id
    assert verified(sub["secret"], delivery)["type"] == "fill"
    done = eventually(lambda: settled(api, sub["id"]))
    assert [(r.status, r.webhook_id) for r in done] == [("delivered", row.webhook_id)]
    with api.services.sessions() as session:
        attempts = session.execute(
            select(WebhookAttempt.status_code, WebhookAttempt.error)
            .where(WebhookAttempt.outbox_id == row.id)
            .order_by(WebhookAttempt.id)
        ).all()
    assert len(attempts) >= 3 and attempts[-1] == (204, None)
    assert all(code is None and error for code, error in attempts[:-1])


def test_rotate_secret(api: Api, receiver: Receiver) -> None:
    key = make_key(api.services.sessions, "ops", keys.Scope.OPERATOR)
    sub = subscribe(api, key, receiver.url(), ["fill"])
    c = api.client
    r = c.post(f"/webhooks/{sub['id']}/rotate-secret", json={"graceS": 0}, headers=bearer(key))
    assert r.status_code == 200, r.text
    cut = r.json()["secret"]
    assert cut != sub["secret"] and r.json()["id"] == sub["id"]
    open_position(api, 0)
    [first] = receiver.wait_for(lambda got: len(got) >= 1)
    assert verified(cut, first)["type"] == "fill"
    with pytest.raises(WebhookVerificationError):
        verified(sub["secret"], first)

    r = c.post(f"/webhooks/{sub['id']}/rotate-secret", headers=bearer(key))  # default grace: both sign
    graced = r.json()["secret"]
    open_position(api, 1)
    second = receiver.wait_for(lambda got: len(got) >= 2)[1]
    assert verified(graced, second)["type"] == "fill" and verified(cut, second)["type"] == "fill"


def test_remove_and_bad_requests(api: Api, receiver: Receiver) -> None:
    key = make_key(api.services.sessions, "ops", keys.Scope.OPERATOR)
    c = api.client
    for bad in (
        {"url": "ftp://x", "events": ["fill"]},
        {"url": receiver.url(), "events": []},
        {"url": receiver.url(), "events": ["fills"]},
        {"url": receiver.url(), "events": ["fill"], "agentId": -1},
        {"url": receiver.url(), "events": ["fill"], "extra": 1},
    ):
        r = c.post("/webhooks", json=bad, headers=bearer(key))
        assert r.status_code == 400 and r.json()["code"] == "invalid_request", (bad, r.text)

    sub = subscribe(api, key, receiver.url(), ["fill"])
    receiver.down()
    open_position(api)
    eventually(lambda: next((r for r in outbox(api, sub["id"]) if r.attempts >= 1), None))
    r = c.delete(f"/webhooks/{sub['id']}", headers=bearer(key))
    assert r.status_code == 200 and r.json() == {"id": sub["id"], "deleted": True}
    assert [r.status for r in outbox(api, sub["id"])] == ["cancelled"]
    assert c.get("/webhooks", headers=bearer(key)).json() == {"webhooks": []}
    for method, path in (
        ("DELETE", f"/webhooks/{sub['id']}"),
        ("POST", f"/webhooks/{sub['id']}/rotate-secret"),
    ):
        r = c.request(method, path, headers=bearer(key))
        assert r.status_code == 404 and r.json()["code"] == "webhook_not_found"
