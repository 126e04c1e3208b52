"""The human approval gate (SPEC §5.5) on a real Anvil, both databases, over HTTP: an open or add above
its threshold waits (`202 pending_approval`, nothing sent), then is approved (every check again, the
normal pipeline), rejected (`approval_rejected`) or expires (`deadline_expired`: silence is never
consent); two approvers racing get one decision; a pending intent survives a restart; an agent's
pipelined successor waits behind it; the CLI sets policies and decides."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from relayer.cli import app
from relayer.operators import approvals, keys
from relayer.store.models import StreamEvent
from tests.integration.test_api_idempotency import nonces_used
from tests.integration.test_api_pipelining import follow
from tests.integration.test_api_rejections import (
    LADDER,
    chain_time,
    open_position,
    rpc,
    settle,
    signed,
    submit,
)
from tests.integration.test_api_restart import new_relayer

from .conftest import Api, Receiver, bearer, make_key
from .test_webhooks import subscribe, verified

NO_WAIT = {"Prefer": "wait=0"}
USDC = 10**6


def policy(api: Api, *, track: str | None = None, agent: int | None = None, above: int) -> None:
    with api.services.sessions.begin() as session:
        if track is not None:
            approvals.set_policy(session, approvals.PolicyScope.TRACK, track, above * USDC, "test")
        else:
            assert agent is not None
            approvals.set_policy(session, approvals.PolicyScope.AGENT, agent, above * USDC, "test")


def track_of(api: Api, index: int = 0) -> str:
    assert api.stack.manifest.demo is not None
    return api.stack.manifest.demo.agents[index].track


def pending_open(api: Api, usdc: str = "1000", symbol: str = "NVDA", **message: Any) -> dict[str, Any]:
    agent_id, _ = api.agent(0)
    _q, body = signed(api, 0, "OpenPosition", symbol=symbol, usdcAmount=usdc, exits=LADDER, message=message)
    r = submit(api, agent_id, "OpenPosition", body)
    assert r.status_code == 202, r.text
    doc: dict[str, Any] = r.json()
    assert doc["status"] == "pending_approval" and doc["approvalId"] == doc["intentId"], doc
    return doc


def record(client: httpx.Client, agent_id: int, intent_id: str) -> dict[str, Any]:
    r = client.get(f"/agents/{agent_id}/intents/{intent_id}")
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_approve_sends_it_through_the_normal_pipeline(api: Api) -> None:
    agent_id, _ = api.agent(0)
    policy(api, track=track_of(api), above=500)
    alice = make_key(api.services.sessions, "alice", keys.Scope.APPROVER)
    doc = pending_open(api)
    time.sleep(0.5)  # a few dispatcher passes: nothing may be sent
    assert nonces_used(api, agent_id) == []
    assert record(api.client, agent_id, doc["intentId"])["status"] == "pending_approval"

    assert api.client.get("/approvals?status=pending").status_code == 401
    listed = api.client.get("/approvals?status=pending", headers=bearer(alice))
    assert listed.status_code == 200, listed.text
    [pending] = listed.json()["approvals"]
    assert (pending["approvalId"], pending["status"], pending["usdcAmount"]) == (
        doc["approvalId"],
        "pending",
        "1000",
    )

    r = api.client.post(f"/approvals/{doc['approvalId']}/approve", headers=bearer(alice))
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["decidedBy"]) == ("approved", "alice")
    final = follow(api, agent_id, doc["intentId"])
    assert final["status"] == "confirmed" and final["approvalId"] == doc["approvalId"], final
    history = record(api.client, agent_id, doc["intentId"])["history"]
    assert [h["status"] for h in history] == ["pending_approval", "received", "submitted", "confirmed"]
    assert history[1]["reason"] == "approved by alice"
    assert nonces_used(api, agent_id) == [0]
    with api.services.sessions() as session:
        events = [
            e.data for e in session.scalars(select(StreamEvent).where(StreamEvent.type == "intent_status"))
        ]
    decided = [e for e in events if e["intentId"] == doc["intentId"] and e["status"] == "received"]
    assert decided and decided[0]["decidedBy"] == "alice" and decided[0]["approvalId"] == doc["approvalId"]
    # Decided: a second decision is refused with the one that stands.
    again = api.client.post(
        f"/approvals/{doc['approvalId']}/reject", headers=bearer(alice), json={"reason": "x"}
    )
    assert again.status_code == 409 and again.json()["code"] == "approval_decided", again.text
    assert again.json()["details"]["decidedBy"] == "alice"
    # Below the threshold an open goes at once.
    _q, body = signed(api, 0, "OpenPosition", symbol="AAPL", usdcAmount="400", exits=LADDER)
    assert submit(api, agent_id, "OpenPosition", body).status_code == 201


def test_reject_ends_it_rejected_with_approval_rejected(api: Api, receiver: Receiver) -> None:
    agent_id, _ = api.agent(0)
    policy(api, agent=agent_id, above=0)  # 0: every open and add
    ops = make_key(api.services.sessions, "ops", keys.Scope.OPERATOR)  # operators may decide too
    hook = subscribe(api, ops, receiver.url(), ["intent_status"])
    doc = pending_open(api, usdc="10")
    url = f"/approvals/{doc['approvalId']}/reject"
    assert api.client.post(url, headers=bearer(ops), json={}).status_code == 400
    r = api.client.post(url, headers=bearer(ops), json={"reason": "too big for a Friday"})
    assert r.status_code == 200 and r.json()["status"] == "rejected", r.text
    final = record(api.client, agent_id, doc["intentId"])
    assert final["status"] == "rejected" and final["reason"].startswith("approval_rejected: rejected by ops")
    assert "too big for a Friday" in final["history"][-1]["reason"]
    assert api.client.post("/approvals/999999/approve", headers=bearer(ops)).status_code == 404
    # Its nonce was never used: the agent's next open takes it.
    q, _body = signed(api, 0, "OpenPosition", symbol="AAPL", usdcAmount="10", exits=LADDER)
    assert q["nonce"] == 0
    rejected = api.client.get("/approvals?status=rejected", headers=bearer(ops)).json()["approvals"]
    assert [a["approvalId"] for a in rejected] == [doc["approvalId"]]
    # Webhooks carry who decided. Deliveries are at least once and may arrive out of order (the worker
    # sends several at once): a receiver orders them by `eventId`, the stream's sequence.
    got = receiver.wait_for(lambda ds: len(ds) >= 2)
    events = sorted((verified(hook["secret"], d) for d in got), key=lambda e: int(e["eventId"]))
    data = [e["data"] for e in events]
    assert [d["status"] for d in data] == ["pending_approval", "rejected"], data
    assert data[1]["decidedBy"] == "ops" and data[1]["approvalId"] == doc["approvalId"]


def test_approval_checks_again_on_the_state_of_that_moment(api: Api) -> None:
    agent_id, _ = api.agent(0)
    policy(api, agent=agent_id, above=500)
    alice = make_key(api.services.sessions, "alice", keys.Scope.APPROVER)
    doc = pending_open(api)
    admin = api.stack.admin
    admin.set_active(agent_id, False)  # after the submit: its checks passed then
    settle(api)
    r = api.client.post(f"/approvals/{doc['approvalId']}/approve", headers=bearer(alice))
    assert r.status_code == 422 and r.json()["code"] == "agent_inactive", r.text
    assert r.json()["details"]["status"] == "rejected"
    final = record(api.client, agent_id, doc["intentId"])
    assert final["status"] == "rejected" and final["reason"].startswith("agent_inactive: approved by alice")
    listed = api.client.get("/approvals?status=approved", headers=bearer(alice)).json()["approvals"]
    assert [(a["approvalId"], a["decidedBy"]) for a in listed] == [(doc["approvalId"], "alice")]
    admin.set_active(agent_id, True)
    assert nonces_used(api, agent_id) == []


def test_undecided_past_its_deadline_is_rejected_and_cannot_be_approved(api: Api) -> None:
    agent_id, _ = api.agent(0)
    policy(api, track=track_of(api), above=500)
    alice = make_key(api.services.sessions, "alice", keys.Scope.APPROVER)
    doc = pending_open(api, deadline=chain_time(api) + 30)
    rpc(api, "evm_increaseTime", 60)
    rpc(api, "evm_mine")
    settle(api)
    r = api.client.post(f"/approvals/{doc['approvalId']}/approve", headers=bearer(alice))
    # The dispatcher's sweep or the approval itself: refused either way, never sent.
    assert (r.status_code, r.json()["code"]) in ((409, "approval_decided"), (422, "deadline_expired")), r.text
    final = follow(api, agent_id, doc["intentId"])
    assert final["status"] == "rejected" and final["reason"].startswith("deadline_expired"), final
    expired = api.client.get("/approvals?status=expired", headers=bearer(alice)).json()["approvals"]
    assert [(a["approvalId"], a["decidedBy"]) for a in expired] == [(doc["approvalId"], None)]
    assert nonces_used(api, agent_id) == []


def test_the_sweep_expires_it_without_anyone_asking(api: Api) -> None:
    agent_id, _ = api.agent(0)
    policy(api, track=track_of(api), above=500)
    doc = pending_open(api, deadline=chain_time(api) + 30)
    rpc(api, "evm_increaseTime", 60)
    rpc(api, "evm_mine")
    final = follow(api, agent_id, doc["intentId"])
    assert final["status"] == "rejected" and final["reason"].startswith("deadline_expired"), final


def test_two_approvers_racing_get_one_decision(api: Api) -> None:
    policy(api, track=track_of(api), above=500)
    alice = make_key(api.services.sessions, "alice", keys.Scope.APPROVER)
    bob = make_key(api.services.sessions, "bob", keys.Scope.APPROVER)
    doc = pending_open(api)
    start = threading.Barrier(2)
    answers: dict[str, httpx.Response] = {}

    def decide(name: str, key: str, action: str) -> None:
        with httpx.Client(base_url=api.url, timeout=30) as client:
            start.wait()
            body = {"reason": "no"} if action == "reject" else None
            answers[name] = client.post(
                f"/approvals/{doc['approvalId']}/{action}", headers=bearer(key), json=body
            )

    threads = [
        threading.Thread(target=decide, args=("alice", alice, "approve")),
        threading.Thread(target=decide, args=("bob", bob, "reject")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(r.status_code for r in answers.values())
    assert codes == [200, 409], {n: r.text for n, r in answers.items()}
    winner = next(n for n, r in answers.items() if r.status_code == 200)
    loser = answers["bob" if winner == "alice" else "alice"].json()
    assert loser["code"] == "approval_decided" and loser["details"]["decidedBy"] == winner
    agent_id, _ = api.agent(0)
    final = follow(api, agent_id, doc["intentId"])
    assert final["status"] == ("confirmed" if winner == "alice" else "rejected"), final


def test_pending_survives_a_restart_and_is_approvable_after_it(api: Api) -> None:
    agent_id, _ = api.agent(0)
    policy(api, track=track_of(api), above=500)
    alice = make_key(api.services.sessions, "alice", keys.Scope.APPROVER)
    doc = pending_open(api)
    api.services.close()
    with new_relayer(api) as (_services, client):
        assert record(client, agent_id, doc["intentId"])["status"] == "pending_approval"
        r = client.post(f"/approvals/{doc['approvalId']}/approve", headers=bearer(alice))
        assert r.status_code == 200, r.text
        deadline = time.monotonic() + 20
        while (status := record(client, agent_id, doc["intentId"])["status"]) != "confirmed":
            assert status in ("received", "submitted") and time.monotonic() < deadline, status
            time.sleep(0.05)


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_a_pipelined_successor_waits_behind_a_pending_intent(api: Api, decision: str) -> None:
    agent_id, _ = api.agent(0)
    policy(api, agent=agent_id, above=500)
    alice = make_key(api.services.sessions, "alice", keys.Scope.APPROVER)
    doc = pending_open(api, usdc="1000")
    q, body = signed(api, 0, "OpenPosition", symbol="AAPL", usdcAmount="100", exits=LADDER)
    assert q["nonce"] == 1  # the pending intent holds nonce 0
    r = submit(api, agent_id, "OpenPosition", body, headers=NO_WAIT)
    assert r.status_code == 202 and r.json()["status"] == "received", r.text
    successor = r.json()["intentId"]
    time.sleep(0.5)  # dispatcher passes: it waits (neither sent nor orphaned)
    assert record(api.client, agent_id, successor)["status"] == "received"
    assert nonces_used(api, agent_id) == []
    if decision == "approve":
        assert (
            api.client.post(f"/approvals/{doc['approvalId']}/approve", headers=bearer(alice)).status_code
            == 200
        )
        records = [follow(api, agent_id, i) for i in (doc["intentId"], successor)]
        assert [r["status"] for r in records] == ["confirmed", "confirmed"], records
        settle(api)
        assert nonces_used(api, agent_id) == [0, 1]
    else:
        url = f"/approvals/{doc['approvalId']}/reject"
        assert api.client.post(url, headers=bearer(alice), json={"reason": "no"}).status_code == 200
        after = follow(api, agent_id, successor)
        assert after["status"] == "rejected" and f"intent {doc['intentId']}" in after["reason"], after
        assert nonces_used(api, agent_id) == []


def test_worst_case_notional_an_add_waits_a_reduce_never(api: Api) -> None:
    agent_id, _ = api.agent(0)
    position_id = open_position(api, usdc="400")  # before any policy
    policy(api, track=track_of(api), above=0)  # the track: every open and add …
    policy(api, agent=agent_id, above=500)  # … but this agent's own policy overrides it
    _q, add = signed(api, 0, "AddToPosition", positionId=position_id, usdcAmount="300")
    assert submit(api, agent_id, "AddToPosition", add).status_code == 201  # 300 ≤ 500
    _q, add = signed(api, 0, "AddToPosition", positionId=position_id, usdcAmount="600")
    r = submit(api, agent_id, "AddToPosition", add)
    assert r.status_code == 202 and r.json()["status"] == "pending_approval", r.text
    with api.services.sessions.begin() as session:
        row = approvals.find(session, int(r.json()["approvalId"]))
        assert approvals.reject(session, row, "test", "not now")
    settle(api)
    _q, reduce = signed(api, 0, "ReducePosition", positionId=position_id, tokenAmount="0.1")
    done = submit(api, agent_id, "ReducePosition", reduce)
    assert done.status_code == 201 and "approvalId" not in done.json(), done.text
    _q, ladder = signed(api, 0, "UpdateExitLadder", positionId=position_id, exits=LADDER)
    assert submit(api, agent_id, "UpdateExitLadder", ladder).status_code == 201


# ---------------------------------------------------------------------- the CLI


@pytest.fixture
def cli_env(api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for key in list(os.environ):
        if key.startswith("ALPHAGRID_"):
            monkeypatch.delenv(key)
    return {"ALPHAGRID_DATABASE_URL": api.services.settings.database_url, "ALPHAGRID_HOME": str(tmp_path)}


def cli(env: dict[str, str], *args: str) -> tuple[int, Any, str]:
    result = CliRunner().invoke(app, ["approvals", *args, "--json"], env=env)
    assert "Traceback" not in result.stdout + result.stderr
    doc = json.loads(result.stdout) if result.exit_code == 0 else None
    return result.exit_code, doc, result.stderr


def test_policy_and_decisions_from_the_cli(api: Api, cli_env: dict[str, str]) -> None:
    agent_id, _ = api.agent(0)
    code, doc, _ = cli(cli_env, "policy", "set", "--track", track_of(api), "--above", "500")
    assert code == 0 and (doc["scope"], doc["aboveUsdc"]) == ("track", "500")
    code, _, err = cli(cli_env, "policy", "set", "--above", "5")
    assert code == 2 and "--track" in err
    code, _, err = cli(cli_env, "policy", "set", "--agent", "1", "--above", "-1")
    assert code == 2
    first = pending_open(api)
    code, doc, _ = cli(cli_env, "list")
    assert code == 0 and [a["approvalId"] for a in doc["approvals"]] == [first["approvalId"]]
    code, doc, _ = cli(cli_env, "approve", first["approvalId"], "--as", "carol")
    assert code == 0 and (doc["status"], doc["decidedBy"]) == ("approved", "carol"), doc
    # The running relayer checks it again and sends it.
    assert follow(api, agent_id, first["intentId"])["status"] == "confirmed"
    code, _, err = cli(cli_env, "reject", first["approvalId"], "--reason", "late")
    assert code == 2 and "already decided" in err

    second = pending_open(api, symbol="AAPL")
    code, doc, _ = cli(cli_env, "reject", second["approvalId"], "--reason", "no thanks")
    assert code == 0 and doc["status"] == "rejected" and doc["decidedBy"].startswith("cli:")
    assert follow(api, agent_id, second["intentId"])["reason"].startswith("approval_rejected")

    code, doc, _ = cli(cli_env, "policy", "list")
    assert code == 0 and [(p["scope"], p["target"]) for p in doc["policies"]] == [("track", track_of(api))]
    code, doc, _ = cli(cli_env, "policy", "clear", "--track", track_of(api))
    assert code == 0 and doc["cleared"]
    code, _, _ = cli(cli_env, "policy", "clear", "--track", track_of(api))
    assert code == 2
    _q, body = signed(api, 0, "OpenPosition", symbol="TSLA", usdcAmount="1000", exits=LADDER)
    assert submit(api, agent_id, "OpenPosition", body).status_code == 201  # no policy: it goes
