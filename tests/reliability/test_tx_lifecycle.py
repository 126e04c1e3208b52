"""The transaction between the relayer and the chain, broken on purpose: an answer lost on the wire,
the intent relayed by a stranger first, the deadline or the chain's state moving while the transaction
waits in the pool. In every case the intent ends `confirmed` exactly once, or `failed`/`rejected` with a
reason — and the relayer never sends a second transaction for one intent."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from web3 import Web3

from relayer.chain.sender import read_next_base_fee
from relayer.devkeys import ANVIL_KEYS
from relayer.store.models import Intent, TxRequest
from tests.integration.test_api_idempotency import nonces_used, positions_on_chain
from tests.integration.test_api_pipelining import add_sent_and_ladder_waiting
from tests.integration.test_api_rejections import (
    LADDER,
    assert_error,
    chain_time,
    intents_of,
    open_position,
    rpc,
    settle,
    signed,
    submit,
    wallets,
)
from tests.integration.test_api_restart import final

from .harness import Api, Stack, first_only, relayer, rpc_proxy

NO_WAIT = {"Prefer": "wait=0"}
STRANGER_KEY = ANVIL_KEYS[9]  # funded on Anvil, nobody's role: a third party with gas to spend
GWEI = 10**9


def relayer_nonces(api: Api) -> int:
    return sum(nonce for _balance, nonce, _pending in wallets(api).values())


def requests_of(api: Api, intent_id: str) -> list[TxRequest]:
    """The transaction requests behind an intent (one, unless something sent it twice)."""
    with api.services.sessions() as session:
        row = session.get(Intent, int(intent_id))
        assert row is not None
        if row.tx_request_id is None:
            return []
        return list(
            session.scalars(
                select(TxRequest)
                .where(TxRequest.id == row.tx_request_id)
                .options(selectinload(TxRequest.attempts))
            )
        )


def pending_call(api: Api, intent_id: str) -> dict[str, Any]:
    """The relayer's transaction for an intent as it sits in the node's pool."""
    (request,) = requests_of(api, intent_id)
    tx = api.stack.w3.eth.get_transaction(request.attempts[-1].tx_hash)
    return {"to": tx["to"], "input": tx["input"], "gas": tx["gas"]}


def send_as_stranger(
    w3: Web3, to: str, data: bytes | str, gas: int, tip_gwei: int = 50, max_fee: int = 1000 * GWEI
) -> str:
    stranger = Account.from_key(STRANGER_KEY)
    signed_tx = stranger.sign_transaction(
        {
            "chainId": w3.eth.chain_id,
            "nonce": w3.eth.get_transaction_count(stranger.address, "pending"),
            "to": to,
            "data": data,
            "gas": gas,
            "value": 0,
            "maxFeePerGas": max_fee,
            "maxPriorityFeePerGas": tip_gwei * GWEI,
        }
    )
    return "0x" + bytes(w3.eth.send_raw_transaction(signed_tx.raw_transaction)).hex()


def receipt_status(w3: Web3, tx_hash: str) -> int:
    return int(w3.eth.get_transaction_receipt(tx_hash)["status"])  # type: ignore[arg-type]


# ---------------------------------------------------------------------- a lost answer


def test_a_send_whose_answer_is_lost_executes_once(chain: Stack, db_url: str, tmp_path: Path) -> None:
    """The node takes the first eth_sendRawTransaction but the answer never arrives (the proxy closes the
    connection after forwarding it). The relayer must treat it as maybe-sent and follow it by hash: one
    transaction, one NonceUsed, the intent confirmed — not failed, not sent again under a new nonce."""
    with (
        rpc_proxy(chain.anvil.url, first_only("eth_sendRawTransaction", "lose")) as proxy,
        relayer(chain, db_url, tmp_path / "home", rpc_url=proxy.url) as api,
    ):
        agent_id, _ = api.agent(0)
        sent_before = relayer_nonces(api)
        _q, body = signed(api, 0, "OpenPosition", symbol="NVDA", usdcAmount="1000", exits=LADDER)
        r = submit(api, agent_id, "OpenPosition", body)
        assert r.status_code == 201, r.text
        assert proxy.faults == [("eth_sendRawTransaction", "lose")]
        record = final(api.client, agent_id, r.json()["intentId"])
        assert record["status"] == "confirmed", record
        (request,) = requests_of(api, record["intentId"])
        assert len(request.attempts) == 1 and request.mined_hash == record["transactionHash"]
        assert relayer_nonces(api) == sent_before + 1  # one transaction left the relayer's keys
        assert nonces_used(api, agent_id) == [0]
        assert positions_on_chain(api) == 1
        # The agent resubmits after its own timeout: the same record, nothing sent.
        again = submit(api, agent_id, "OpenPosition", body)
        assert again.status_code == 200 and again.json()["intentId"] == record["intentId"]
        assert relayer_nonces(api) == sent_before + 1


# ---------------------------------------------------------------------- relayed by someone else first


def test_an_intent_relayed_by_a_stranger_first_is_recorded_as_confirmed(api: Api) -> None:
    """A third party copies the relayer's pending call and gets it mined first (a higher tip). The
    relayer's own transaction then reverts (NonceMismatch) — at most one reverted attempt — and the
    relayer notices the intent did execute (its digest in the NonceUsed event) and records it confirmed
    with the stranger's transaction, instead of reporting a failure or retrying."""
    agent_id, _ = api.agent(0)
    w3 = api.stack.w3
    sent_before = relayer_nonces(api)
    rpc(api, "evm_setAutomine", False)
    try:
        _q, body = signed(api, 0, "OpenPosition", symbol="NVDA", usdcAmount="1000", exits=LADDER)
        r = submit(api, agent_id, "OpenPosition", body, headers=NO_WAIT)
        assert r.status_code == 202 and r.json()["status"] == "submitted", r.text
        intent_id = r.json()["intentId"]
        call = pending_call(api, intent_id)
        theirs = send_as_stranger(w3, call["to"], call["input"], call["gas"])
        rpc(api, "evm_mine")
    finally:
        rpc(api, "evm_setAutomine", True)
    assert receipt_status(w3, theirs) == 1
    record = final(api.client, agent_id, intent_id)
    assert record["status"] == "confirmed", record
    assert record["transactionHash"] == theirs and record["positionId"] == "1", record
    (request,) = requests_of(api, intent_id)
    assert request.status == "failed" and len(request.attempts) == 1  # ours reverted, once
    time.sleep(0.3)  # the sender and dispatcher have had their chance to (wrongly) try again
    assert relayer_nonces(api) == sent_before + 1
    assert nonces_used(api, agent_id) == [0]
    assert positions_on_chain(api) == 1
    settle(api)
    # The agent carries on at nonce 1, as after any confirmed intent.
    _q, add = signed(api, 0, "AddToPosition", positionId="1", usdcAmount="100")
    assert add["nonce"] == 1
    assert submit(api, agent_id, "AddToPosition", add).status_code == 201


def test_a_waiting_intent_relayed_by_a_stranger_is_confirmed_without_a_transaction(api: Api) -> None:
    """The intent waits for its predecessor (`received`) when a stranger relays it straight to the
    router, right behind the predecessor in the same block. The relayer must not send it at all: it
    finds its digest in NonceUsed and records it confirmed with the stranger's transaction."""
    agent_id, _ = api.agent(0)
    position_id = open_position(api)
    w3 = api.stack.w3
    sent_before = relayer_nonces(api)
    rpc(api, "evm_setAutomine", False)
    try:
        first, second, ladder = add_sent_and_ladder_waiting(api, agent_id, position_id)
        intents = api.services.intents
        data = intents.calldata(intents.built(agent_id, "UpdateExitLadder", ladder))
        # Fees below the relayer's (Anvil orders its pool by them), so the predecessor runs first.
        base_fee = read_next_base_fee(w3)
        theirs = send_as_stranger(w3, intents.router, data, 300_000, tip_gwei=0, max_fee=base_fee + 1)
        rpc(api, "evm_mine")
    finally:
        rpc(api, "evm_setAutomine", True)
    assert receipt_status(w3, theirs) == 1
    done = [final(api.client, agent_id, x.json()["intentId"]) for x in (first, second)]
    assert [d["status"] for d in done] == ["confirmed", "confirmed"], done
    assert done[1]["transactionHash"] == theirs
    assert requests_of(api, second.json()["intentId"]) == []  # never sent by the relayer
    time.sleep(0.3)
    assert relayer_nonces(api) == sent_before + 1  # the add only
    assert nonces_used(api, agent_id) == [0, 1, 2]


# ---------------------------------------------------------------------- the world moves while it waits


def test_a_deadline_passing_while_the_transaction_waits_is_failed_with_the_reason(api: Api) -> None:
    """Sent in time, mined after its deadline: the router reverts. The intent is `failed` naming the
    deadline, the relayer does not try again, and the nonce stays the agent's to use."""
    agent_id, _ = api.agent(0)
    sent_before = relayer_nonces(api)
    deadline = max(int(time.time()), chain_time(api)) + 120
    rpc(api, "evm_setAutomine", False)
    try:
        _q, body = signed(
            api,
            0,
            "OpenPosition",
            symbol="NVDA",
            usdcAmount="1000",
            exits=LADDER,
            message={"deadline": deadline},
        )
        r = submit(api, agent_id, "OpenPosition", body, headers=NO_WAIT)
        assert r.status_code == 202 and r.json()["status"] == "submitted", r.text
        rpc(api, "evm_setNextBlockTimestamp", deadline + 1)
        rpc(api, "evm_mine")
    finally:
        rpc(api, "evm_setAutomine", True)
    record = final(api.client, agent_id, r.json()["intentId"])
    assert record["status"] == "failed", record
    assert "DeadlineExpired" in record["reason"], record
    time.sleep(0.3)
    assert relayer_nonces(api) == sent_before + 1  # one (reverted) transaction, no retry
    assert nonces_used(api, agent_id) == []
    settle(api)
    _q, again = signed(api, 0, "OpenPosition", symbol="NVDA", usdcAmount="1000", exits=LADDER)
    assert again["nonce"] == 0
    assert submit(api, agent_id, "OpenPosition", again).status_code == 201


def test_a_waiting_intent_whose_deadline_passes_is_rejected_without_a_transaction(api: Api) -> None:
    """Pipelined behind a predecessor still in the pool, an intent's deadline passes before its turn:
    the dispatcher re-checks it on chain time and rejects it — no transaction that would revert."""
    agent_id, _ = api.agent(0)
    position_id = open_position(api)
    sent_before = relayer_nonces(api)
    deadline = max(int(time.time()), chain_time(api)) + 120
    rpc(api, "evm_setAutomine", False)
    try:
        first, second, _ladder = add_sent_and_ladder_waiting(
            api, agent_id, position_id, ladder_message={"deadline": deadline}
        )
        rpc(api, "evm_setNextBlockTimestamp", deadline + 1)
        rpc(api, "evm_mine")
    finally:
        rpc(api, "evm_setAutomine", True)
    done = [final(api.client, agent_id, x.json()["intentId"]) for x in (first, second)]
    assert done[0]["status"] == "confirmed", done[0]
    assert done[1]["status"] == "rejected" and "deadline_expired" in done[1]["reason"], done[1]
    time.sleep(0.3)
    assert relayer_nonces(api) == sent_before + 1  # the add only
    assert nonces_used(api, agent_id) == [0, 1]


def test_state_changing_between_simulation_and_inclusion_fails_once_with_the_reason(api: Api) -> None:
    """Simulated fine, then the operator pauses the router in the same block, ahead of the relayer's
    transaction. It reverts once; the intent is `failed` with the router's reason and not retried."""
    agent_id, _ = api.agent(0)
    position_id = open_position(api)
    admin = api.stack.admin
    w3 = api.stack.w3
    sent_before = relayer_nonces(api)
    rpc(api, "evm_setAutomine", False)
    try:
        _q, add = signed(api, 0, "AddToPosition", positionId=position_id, usdcAmount="100")
        r = submit(api, agent_id, "AddToPosition", add, headers=NO_WAIT)
        assert r.status_code == 202 and r.json()["status"] == "submitted", r.text
        pause = admin.router.functions.pause().build_transaction(
            {
                "from": admin.account.address,
                "nonce": w3.eth.get_transaction_count(admin.account.address, "pending"),
                "gas": 100_000,
                "maxFeePerGas": 1000 * GWEI,
                "maxPriorityFeePerGas": 100 * GWEI,
            }
        )
        w3.eth.send_raw_transaction(admin.account.sign_transaction(pause).raw_transaction)
        rpc(api, "evm_mine")
    finally:
        rpc(api, "evm_setAutomine", True)
        admin.resync_nonce()
    record = final(api.client, agent_id, r.json()["intentId"])
    assert record["status"] == "failed" and "EnforcedPause" in record["reason"], record
    time.sleep(0.3)
    assert relayer_nonces(api) == sent_before + 1
    (request,) = requests_of(api, record["intentId"])
    assert len(request.attempts) == 1
    assert nonces_used(api, agent_id) == [0]
    assert len(intents_of(api, agent_id)) == 2
    # The same signed intent again is its failed record (idempotency); a new one is refused before
    # anything is sent, the router being paused now.
    again = submit(api, agent_id, "AddToPosition", add)
    assert again.status_code == 200 and again.json()["status"] == "failed", again.text
    settle(api)
    _q, retry = signed(api, 0, "AddToPosition", positionId=position_id, usdcAmount="101")
    assert_error(submit(api, agent_id, "AddToPosition", retry), 422, "paused")
    assert relayer_nonces(api) == sent_before + 1


# ---------------------------------------------------------------------- the relayer out of gas money


def test_a_drained_relayer_refuses_new_work_keeps_what_it_accepted_and_resumes_when_funded(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    """The relayer's keys are emptied (anvil_setBalance 0) while one intent waits in the pool and its
    successor waits for its turn. New submits get 503 chain_unavailable and leave nothing behind; the
    two accepted intents are neither failed nor lost, and both confirm, in order, once funded."""
    agent_id, _ = api.agent(0)
    position_id = open_position(api)
    w3 = api.stack.w3
    senders = api.services.sender.senders
    funded = {s: w3.eth.get_balance(s) for s in senders}
    rpc(api, "evm_setAutomine", False)
    try:
        first, second, _ladder = add_sent_and_ladder_waiting(api, agent_id, position_id)
        for sender in senders:
            rpc(api, "anvil_setBalance", sender, "0x0")
        rpc(api, "evm_mine")  # the pool's transaction cannot pay: nothing of ours is mined
    finally:
        rpc(api, "evm_setAutomine", True)
    assert nonces_used(api, agent_id) == [0]
    _q, more = signed(api, 0, "OpenPosition", symbol="AAPL", usdcAmount="100", exits=LADDER)
    assert more["nonce"] == 3
    before = intents_of(api, agent_id)
    assert_error(
        submit(api, agent_id, "OpenPosition", more), 503, "chain_unavailable", reason="relayer_unfunded"
    )
    with caplog.at_level(logging.INFO, logger="relayer.chain.sender"):
        time.sleep(1.5)  # the workers keep trying meanwhile; nothing may be given up
    assert intents_of(api, agent_id) == before
    # … but calmly: a refused transaction is retried every `rejected_retry_s`, not on every poll.
    refused = [r for r in caplog.records if "broadcast rejected" in r.getMessage()]
    assert len(refused) <= 2, len(refused)
    assert [i["status"] for i in before[:2]] == ["received", "submitted"]

    for sender in senders:
        rpc(api, "anvil_setBalance", sender, hex(funded[sender]))
    done = [final(api.client, agent_id, x.json()["intentId"], timeout_s=30) for x in (first, second)]
    assert [d["status"] for d in done] == ["confirmed", "confirmed"], done
    assert done[0]["blockNumber"] < done[1]["blockNumber"]
    assert nonces_used(api, agent_id) == [0, 1, 2]
    settle(api)
    r = submit(api, agent_id, "OpenPosition", more)
    assert r.status_code == 201, r.text


# ---------------------------------------------------------------------- reorgs


@pytest.mark.parametrize("how", ["anvil_rollback", "anvil_reorg"])
def test_a_confirmed_intent_whose_block_is_reorganised_away_executes_once_again(api: Api, how: str) -> None:
    """The block holding a confirmed intent's transaction leaves the chain (rolled back, or replaced by
    an empty block of the same height). Even at the local default of 0 confirmations the relayer must
    notice and send its recorded transaction again — the same bytes, so it cannot run twice — and the
    chain ends with the intent executed exactly once."""
    agent_id, _ = api.agent(0)
    w3 = api.stack.w3
    sent_before = relayer_nonces(api)
    _q, body = signed(api, 0, "OpenPosition", symbol="NVDA", usdcAmount="1000", exits=LADDER)
    r = submit(api, agent_id, "OpenPosition", body)
    assert r.status_code == 201, r.text
    settle(api)
    mined_in = r.json()["blockNumber"]
    assert w3.eth.block_number == mined_in
    if how == "anvil_rollback":
        rpc(api, "anvil_rollback", 1)
    else:
        rpc(api, "anvil_reorg", 1, [])
    deadline = time.monotonic() + 20
    while nonces_used(api, agent_id) != [0]:
        assert time.monotonic() < deadline, "the lost transaction was never sent again"
        time.sleep(0.05)
    (request,) = requests_of(api, r.json()["intentId"])
    assert request.attempts[-1].tx_hash == r.json()["transactionHash"] and len(request.attempts) == 1
    time.sleep(0.3)
    assert nonces_used(api, agent_id) == [0]
    assert positions_on_chain(api) == 1
    assert relayer_nonces(api) == sent_before + 1
    record = final(api.client, agent_id, r.json()["intentId"])
    assert record["status"] == "confirmed", record
    # The relayer's view agrees with the chain: one position, counted once.
    settle(api)
    agent = api.client.get(f"/agents/{agent_id}").json()
    assert agent["deployed"] == "1000" and agent["nextNonce"] == 1, agent
    assert api.client.get(f"/agents/{agent_id}/positions/1").json()["costBasis"] == "1000"


def test_a_reorganised_intent_that_reverts_when_sent_again_is_failed_not_left_confirmed(api: Api) -> None:
    """The block of a confirmed intent is rolled back, and by the time its transaction is mined again
    the deadline has passed: it reverts. The intent must not stay `confirmed` on the strength of a
    block that no longer exists — it goes back to `submitted`, then `failed` with the reason."""
    agent_id, _ = api.agent(0)
    w3 = api.stack.w3
    deadline = max(int(time.time()), chain_time(api)) + 120
    _q, body = signed(
        api, 0, "OpenPosition", symbol="NVDA", usdcAmount="1000", exits=LADDER, message={"deadline": deadline}
    )
    r = submit(api, agent_id, "OpenPosition", body)
    assert r.status_code == 201, r.text
    intent_id, tx_hash = r.json()["intentId"], r.json()["transactionHash"]
    settle(api)
    rpc(api, "evm_setAutomine", False)
    try:
        rpc(api, "anvil_rollback", 1)
        deadline_at = time.monotonic() + 20
        while not (
            api.client.get(f"/agents/{agent_id}/intents/{intent_id}").json()["status"] == "submitted"
            and (w3.provider.make_request("eth_getTransactionByHash", [tx_hash]).get("result") or {}).get(
                "hash"
            )  # type: ignore[arg-type]
        ):
            assert time.monotonic() < deadline_at, "the rolled-back intent was not followed again"
            time.sleep(0.05)
        rpc(api, "evm_setNextBlockTimestamp", deadline + 1)
        rpc(api, "evm_mine")
    finally:
        rpc(api, "evm_setAutomine", True)
    record = final(api.client, agent_id, intent_id)
    assert record["status"] == "failed" and "DeadlineExpired" in record["reason"], record
    assert [h["status"] for h in record["history"]] == [
        "received",
        "submitted",
        "confirmed",
        "submitted",
        "failed",
    ]
    assert nonces_used(api, agent_id) == []
    assert positions_on_chain(api) == 0


def test_the_relayers_view_follows_a_rolled_back_open(api: Api) -> None:
    """After the open's block is rolled back and its re-send fails, the chain has no position; the
    relayer's view (GET /agents/…/positions, the agent's deployed capital) must not show one either."""
    test_a_reorganised_intent_that_reverts_when_sent_again_is_failed_not_left_confirmed(api)
    agent_id, _ = api.agent(0)
    settle(api)
    time.sleep(0.5)
    assert api.client.get(f"/agents/{agent_id}/positions").json()["positions"] == []
    assert api.client.get(f"/agents/{agent_id}").json()["deployed"] == "0"
