"""The keeper against a real chain: prices pushed across a ladder's triggers close positions through
executeExit, in the contract's order, and the audit trail says which price fired which rule.

Interleavings that timing alone would leave to chance are forced: Anvil's automine is switched off
so that chosen transactions land in one block in a chosen order (Anvil orders equal tips first come,
first served), the keeper's leadership is gated to pause its evaluations, and the sender's receipt
poll is held back to keep an exit "in flight" after it was mined.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from eth_account import Account
from httpx import Response
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from web3 import Web3

from relayer.chain.seed import price_base
from relayer.devkeys import ANVIL_KEYS, OPERATOR_KEY
from relayer.keeper.leader import Leadership
from relayer.store.models import Intent, TxRequest

from .agentkit import GWEI, body_from_quote, quote, send_raw, sign_typed, trade
from .conftest import Api

TP10_HALF = {"triggerType": "TakeProfit", "triggerBps": 1000, "exitBps": 5000}
SL10_ALL = {"triggerType": "StopLoss", "triggerBps": -1000, "exitBps": 10000}
LADDER = [TP10_HALF, SL10_ALL]
# NVDA is seeded at 182.35: +10 % = 200.585, −10 % = 164.115, −15 % = 154.9975.
ENTRY = Decimal("182.35")

Position = dict[str, Any]


# ---------------------------------------------------------------------- helpers


def _open(api: Api, symbol: str = "NVDA", usdc: str = "1000", exits: list[dict[str, object]] = LADDER) -> str:
    agent_id, key = api.agent(0)
    r = trade(api.client, agent_id, key, "OpenPosition", symbol=symbol, usdcAmount=usdc, exits=exits)
    assert r.status_code == 201, r.text
    position_id = str(r.json()["positionId"])
    # The keeper learns of the ladder from the indexer: wait until it is indexed.
    _wait(lambda: _keeper_knows(api, position_id), "the keeper to index the ladder")
    return position_id


def _keeper_knows(api: Api, position_id: str) -> bool:
    p = api.services.state.positions.get(int(position_id))
    return p is not None and len(p.rules) > 0 and len(api.services.keeper.index) > 0


def _set_price(api: Api, symbol: str, price: str) -> None:
    token = api.stack.manifest.tokens[symbol]
    api.stack.admin.set_prices([token], [price_base(Decimal(price))])


def _position(api: Api, position_id: str) -> Position:
    agent_id, _ = api.agent(0)
    r = api.client.get(f"/agents/{agent_id}/positions/{position_id}")
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def _wait(predicate: Callable[[], object], what: str, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _wait_position(
    api: Api, position_id: str, predicate: Callable[[Position], bool], timeout_s: float = 10
) -> Position:
    deadline = time.monotonic() + timeout_s
    while True:
        p = _position(api, position_id)
        if predicate(p):
            return p
        assert time.monotonic() < deadline, p
        time.sleep(0.05)


def _actions(p: Position) -> list[tuple[int, str]]:
    return [(a["ruleIndex"], a["action"]) for a in p["audit"]]


def _exit_requests(api: Api) -> list[TxRequest]:
    router = Web3.to_checksum_address(api.stack.manifest.contracts.trade_router)
    with api.services.sessions() as session:
        rows = session.scalars(
            select(TxRequest)
            .where(TxRequest.purpose == "exit", TxRequest.to == router)
            .options(selectinload(TxRequest.attempts))
        )
        return list(rows.all())


def _exits(p: Position) -> list[dict[str, Any]]:
    return [h for h in p["history"] if h["kind"] == "exit"]


def _rpc(api: Api, method: str, params: list[Any] | None = None) -> Any:
    response = api.stack.w3.provider.make_request(method, params or [])  # type: ignore[arg-type]
    assert "error" not in response, response
    return response.get("result")


def _indexed_price(api: Api, symbol: str) -> int | None:
    p = api.services.state.prices.get(api.stack.manifest.tokens[symbol])
    return p.price if p is not None else None


@contextmanager
def _manual_mining(api: Api) -> Iterator[None]:
    """Automine off: transactions wait in the pool until `_mine`. Everything is mined on the way out."""
    _rpc(api, "evm_setAutomine", [False])
    try:
        yield
    finally:
        _rpc(api, "evm_setAutomine", [True])
        _rpc(api, "evm_mine")
        api.stack.admin.resync_nonce()


def _mine(api: Api) -> dict[str, Any]:
    _rpc(api, "evm_mine")
    block: dict[str, Any] = _rpc(api, "eth_getBlockByNumber", ["latest", False])
    return block


def _send_raw(api: Api, to: str, data: bytes | str, key: str, tip_wei: int = GWEI) -> str:
    return send_raw(api.stack.w3, to, data, key, tip_wei)


def _send_price(api: Api, symbol: str, price: str, tip_wei: int = GWEI) -> str:
    """The operator's setPrices, not waited for."""
    admin = api.stack.admin
    token = api.stack.manifest.tokens[symbol]
    data = admin.oracle.functions.setPrices([token], [price_base(Decimal(price))])._encode_transaction_data()
    return _send_raw(api, admin.oracle.address, data, OPERATOR_KEY, tip_wei)


class Gate:
    """A leadership that can be withheld: with the gate shut the keeper stops evaluating (it is a
    follower), as when another process holds the lock."""

    def __init__(self, inner: Leadership) -> None:
        self.inner = inner
        self.open = True
        self.refused = 0

    def acquire(self) -> bool:
        if not self.open:
            self.refused += 1
            return False
        return self.inner.acquire()

    def release(self) -> None:
        self.inner.release()


@contextmanager
def _keeper_paused(api: Api) -> Iterator[Gate]:
    keeper = api.services.keeper
    gate = Gate(keeper.leader)
    keeper.leader = gate
    gate.open = False
    # A leading keeper re-checks its leadership about once a second.
    _wait(lambda: gate.refused > 0, "the keeper to step down", timeout_s=5)
    try:
        yield gate
    finally:
        gate.open = True


def _metric(api: Api, name: str) -> float | None:
    text = api.client.get("/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return float(sample.value)
    return None


# ---------------------------------------------------------------------- single moves


def test_stop_loss_closes_the_position(api: Api) -> None:
    position_id = _open(api)
    started = time.monotonic()
    _set_price(api, "NVDA", "160")  # from 182.35: about −12%
    p = _wait_position(
        api,
        position_id,
        lambda p: p["status"] == "closed" and any(a["action"] == "confirmed" for a in p["audit"]),
    )
    elapsed = time.monotonic() - started
    exits = _exits(p)
    assert [e["ruleIndex"] for e in exits] == [1]
    assert exits[0]["oraclePrice"] == "160"
    assert _actions(p) == [(1, "sent"), (1, "confirmed")]
    sent = p["audit"][0]
    assert sent["oraclePrice"] == "160" and sent["triggered"] is True and sent["transactionHash"]
    assert elapsed < 5


def test_take_profit_alone_closes(api: Api) -> None:
    position_id = _open(api, exits=[{**TP10_HALF, "exitBps": 10000}, SL10_ALL])
    opened = _position(api, position_id)
    _set_price(api, "NVDA", "205")  # about +12%
    p = _wait_position(api, position_id, lambda p: p["status"] == "closed")
    exits = _exits(p)
    assert [e["ruleIndex"] for e in exits] == [0]
    assert exits[0]["tokens"] == opened["size"]
    assert Decimal(p["realizedPnl"]) > 0
    assert p["ladder"][0]["fired"] and not p["ladder"][1]["fired"]
    _wait_position(api, position_id, lambda p: (0, "confirmed") in _actions(p))


def test_partial_take_profit_then_stop_on_the_rest(api: Api) -> None:
    position_id = _open(api)
    _set_price(api, "NVDA", "205")  # about +12%: sells half, keeps the stop
    p = _wait_position(api, position_id, lambda p: p["ladder"][0]["fired"])
    assert p["status"] == "open" and not p["ladder"][1]["fired"]
    _set_price(api, "NVDA", "150")
    p = _wait_position(api, position_id, lambda p: p["status"] == "closed")
    assert [h["ruleIndex"] for h in _exits(p)] == [0, 1]
    p = _wait_position(api, position_id, lambda p: _actions(p).count((1, "confirmed")) == 1)
    assert _actions(p) == [(0, "sent"), (0, "confirmed"), (1, "sent"), (1, "confirmed")]


def test_two_rules_fire_on_one_gap_move_in_one_transaction(api: Api) -> None:
    tp5_half = {"triggerType": "TakeProfit", "triggerBps": 500, "exitBps": 5000}
    tp10_all = {"triggerType": "TakeProfit", "triggerBps": 1000, "exitBps": 10000}
    position_id = _open(api, exits=[tp5_half, tp10_all, SL10_ALL])
    _set_price(api, "NVDA", str(ENTRY * Decimal("1.15")))  # a gap straight through both take-profits
    p = _wait_position(api, position_id, lambda p: p["status"] == "closed")
    exits = _exits(p)
    assert [e["ruleIndex"] for e in exits] == [0, 1]
    assert exits[0]["transactionHash"] == exits[1]["transactionHash"]
    assert [r["fired"] for r in p["ladder"]] == [True, True, False]
    p = _wait_position(api, position_id, lambda p: (1, "confirmed") in _actions(p))
    assert _actions(p) == [(0, "sent"), (1, "sent"), (0, "confirmed"), (1, "confirmed")]
    assert len(_exit_requests(api)) == 1


def test_stale_price_fires_nothing(api: Api) -> None:
    position_id = _open(api)
    # The price moves below the stop but the oracle round is already stale when the keeper looks:
    # with the keeper paused, push a price, then age it past maxPriceAge (3600 s).
    with _keeper_paused(api):
        _set_price(api, "NVDA", "150")
        _rpc(api, "evm_increaseTime", [3700])
        _rpc(api, "evm_mine")
        _wait(lambda: _indexed_price(api, "NVDA") == price_base(Decimal("150")), "the price to be indexed")
    p = _wait_position(api, position_id, lambda p: len(p["audit"]) > 0)
    time.sleep(1.0)
    p = _position(api, position_id)
    assert p["status"] == "open"
    assert _exit_requests(api) == []
    # The audit says why, once per oracle round; a stale price is a hold, not a failure to retry.
    assert {a["action"] for a in p["audit"]} == {"held"}, p["audit"]
    assert all("stale" in a["outcome"].lower() for a in p["audit"]), p["audit"]
    assert all(a["oraclePrice"] == "150" for a in p["audit"])

    # A fresh round at the same price fires.
    _set_price(api, "NVDA", "150")
    p = _wait_position(api, position_id, lambda p: p["status"] == "closed")
    assert [e["ruleIndex"] for e in _exits(p)] == [1]


def test_metrics_are_exported(api: Api) -> None:
    position_id = _open(api)
    assert _metric(api, "alphagrid_trigger_index_rules") == 2
    assert _metric(api, "alphagrid_exits_fired_total") == 0
    _set_price(api, "NVDA", "160")
    _wait_position(api, position_id, lambda p: (1, "confirmed") in _actions(p))
    assert _metric(api, "alphagrid_exits_fired_total") == 1
    assert _metric(api, "alphagrid_exits_failed_total") == 0
    latency_count = _metric(api, "alphagrid_exit_latency_seconds_count")
    latency_sum = _metric(api, "alphagrid_exit_latency_seconds_sum")
    assert latency_count == 1 and latency_sum is not None and 0 < latency_sum < 5
    _wait(
        lambda: _metric(api, "alphagrid_trigger_index_rules") == 0, "the closed position to leave the index"
    )


# ---------------------------------------------------------------------- races


def test_price_moving_on_while_an_exit_is_in_flight_is_not_lost(api: Api) -> None:
    """The take-profit's exit is mined but its receipt not yet followed (still "in flight") when the
    price falls through the stop: once the exit settles, the keeper must look again."""
    position_id = _open(api)
    sender = api.services.sender
    real_poll = sender.poll
    held = threading.Event()
    sender.poll = lambda: [] if held.is_set() else real_poll()  # type: ignore[method-assign]
    try:
        held.set()
        _set_price(api, "NVDA", "205")
        _wait_position(api, position_id, lambda p: p["ladder"][0]["fired"])  # mined, not followed
        _set_price(api, "NVDA", "150")
        _wait(lambda: _indexed_price(api, "NVDA") == price_base(Decimal("150")), "the price to be indexed")
        time.sleep(0.3)  # the keeper sees the fall while the take-profit is in flight
        assert _position(api, position_id)["status"] == "open"
        held.clear()
        p = _wait_position(api, position_id, lambda p: p["status"] == "closed", timeout_s=5)
    finally:
        sender.poll = real_poll  # type: ignore[method-assign]
    assert [e["ruleIndex"] for e in _exits(p)] == [0, 1]


RACES = [
    "exit_then_api_update",  # the update's simulation sees the exit in the pool: rejected
    "api_update_then_exit",  # the keeper's simulation sees the update in the pool: nothing sent
    "exit_then_update_same_block",  # both mined in one block, the exit first: the update reverts
    "update_then_exit_same_block",  # both mined in one block, the update first: the exit reverts
]


@pytest.mark.parametrize("race", RACES)
def test_ladder_update_racing_a_trigger_has_one_outcome(api: Api, race: str) -> None:
    """The price crosses the old ladder's stop while the agent replaces the ladder. Whatever the
    interleaving — each side simulated against the other waiting in the pool (Anvil's estimateGas
    runs on the pending block), or both mined in ONE block in either order (an update sent straight
    to the router, its tip choosing its place) — exactly one of them takes effect, no rule fires
    twice, and the keeper neither retries under the old ladder nor stays silent about it."""
    agent_id, _ = api.agent(0)
    position_id = _open(api)
    new_ladder = [TP10_HALF, {**SL10_ALL, "triggerBps": -1500}]  # the −12 % move no longer stops it
    response = None
    direct_hash = None
    with _manual_mining(api):
        if race == "api_update_then_exit":
            with _keeper_paused(api):
                _send_price(api, "NVDA", "160")
                _mine(api)
                _wait(lambda: _indexed_price(api, "NVDA") == price_base(Decimal("160")), "the price")
                response = _update_ladder(api, position_id, new_ladder)
                assert response.status_code == 202, response.text
            # Leading again, the keeper still sees the old ladder triggered; the simulation does not.
            _wait_position(api, position_id, lambda p: len(p["audit"]) > 0)
        else:
            _send_price(api, "NVDA", "160")
            _mine(api)
            _wait_position(api, position_id, lambda p: (1, "sent") in _actions(p))
            if race == "exit_then_api_update":
                response = _update_ladder(api, position_id, new_ladder)
            else:
                data = _signed_update_calldata(api, position_id, new_ladder)
                tip = GWEI // 2 if race == "exit_then_update_same_block" else 5 * GWEI
                router = api.stack.manifest.contracts.trade_router
                direct_hash = _send_raw(api, router, data, ANVIL_KEYS[8], tip)
        block = _mine(api)
    order = [h.lower() for h in block["transactions"]]
    requests = _exit_requests(api)

    if race == "exit_then_api_update":
        assert response is not None and response.status_code == 409, response and response.text
        assert response.json()["code"] == "position_closed"
    if race == "api_update_then_exit":
        assert response is not None
        assert _wait_intent(api, agent_id, response.json()["intentId"])["status"] == "confirmed"
    if direct_hash is not None:
        [request] = requests
        exit_hash = request.attempts[-1].tx_hash.lower()
        assert exit_hash in order and direct_hash in order, "both in one block"
        assert (order.index(exit_hash) < order.index(direct_hash)) == (race == "exit_then_update_same_block")
        receipt = api.stack.w3.eth.wait_for_transaction_receipt(direct_hash, timeout=10)  # type: ignore[arg-type]
        update_ok = receipt["status"] == 1
        assert update_ok == (race == "update_then_exit_same_block")

    if race in ("exit_then_api_update", "exit_then_update_same_block"):
        # The exit won: fired under the old ladder, the update never took effect.
        p = _wait_position(api, position_id, lambda p: (1, "confirmed") in _actions(p))
        assert p["status"] == "closed"
        assert [e["ruleIndex"] for e in _exits(p)] == [1]
        assert [h["kind"] for h in p["history"]].count("ladder") == 1
        assert _actions(p) == [(1, "sent"), (1, "confirmed")]
        assert len(requests) == 1
        return

    # The update won: the new ladder stands, nothing was sold.
    p = _wait_position(api, position_id, lambda p: [r["triggerBps"] for r in p["ladder"]] == [1000, -1500])
    time.sleep(1.5)  # longer than the first back-off: nothing is retried under the old ladder
    p = _position(api, position_id)
    assert p["status"] == "open" and _exits(p) == []
    assert [h["kind"] for h in p["history"]].count("ladder") == 2
    assert "failed" not in {a["action"] for a in p["audit"]}
    if race == "api_update_then_exit":
        assert _exit_requests(api) == []
        audit = [(a["action"], a["outcome"]) for a in p["audit"]]
        assert [action for action, _ in audit] == ["held"], audit
        # Held while the agent's update is in flight (issue 13, item 5), not simulated against it.
        assert "intent" in p["audit"][0]["outcome"] and "in flight" in p["audit"][0]["outcome"]
    else:
        [request] = _exit_requests(api)
        assert request.status == "failed"  # reverted LadderMismatch in the update's block
        assert [a["action"] for a in p["audit"]] == ["sent", "superseded"], p["audit"]
        assert "ladder" in p["audit"][1]["outcome"]


def _update_ladder(api: Api, position_id: str, exits: list[dict[str, object]]) -> Response:
    agent_id, key = api.agent(0)
    return trade(
        api.client,
        agent_id,
        key,
        "UpdateExitLadder",
        headers={"Prefer": "wait=0"},
        positionId=position_id,
        exits=exits,
    )


def _signed_update_calldata(api: Api, position_id: str, exits: list[dict[str, object]]) -> bytes:
    """An UpdateExitLadder signed by the agent, as calldata anyone may send to the router."""
    agent_id, key = api.agent(0)
    q = quote(api.client, agent_id, "UpdateExitLadder", positionId=position_id, exits=exits)
    assert q.status_code == 200, q.text
    body = body_from_quote(q.json(), sign_typed(q.json()["typedData"], key))
    intents = api.services.intents
    return intents.calldata(intents.built(agent_id, "UpdateExitLadder", body))


def _intent_tx_hash(api: Api, intent_id: str) -> str:
    with api.services.sessions() as session:
        intent = session.get(Intent, int(intent_id))
        assert intent is not None and intent.tx_request_id is not None
        request = session.get(TxRequest, intent.tx_request_id)
        assert request is not None
        return request.attempts[-1].tx_hash


def _wait_intent(api: Api, agent_id: int, intent_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        r = api.client.get(f"/agents/{agent_id}/intents/{intent_id}")
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        if body["status"] not in ("received", "submitted"):
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.05)


def test_price_recovering_before_the_send_stops_it(api: Api) -> None:
    """The keeper reads a crossing price while the chain has already moved back: the simulation
    against the newest block finds nothing to fire, and nothing is sent. (The indexer runs one block
    behind the head here, as a relayer waiting for a confirmation does.)"""
    position_id = _open(api)
    api.services.indexer.confirmations = 1
    try:
        _set_price(api, "NVDA", "160")  # below the stop ...
        _set_price(api, "NVDA", "182")  # ... and back before the keeper has seen the first
        p = _wait_position(api, position_id, lambda p: len(p["audit"]) > 0)
        _rpc(api, "evm_mine")
        _wait(lambda: _indexed_price(api, "NVDA") == price_base(Decimal("182")), "the recovery")
    finally:
        api.services.indexer.confirmations = 0
    time.sleep(0.3)
    p = _position(api, position_id)
    assert p["status"] == "open"
    assert _exit_requests(api) == []
    [held] = p["audit"]
    assert (held["ruleIndex"], held["action"], held["oraclePrice"]) == (1, "held", "160")
    assert "ExitNotTriggered" in held["outcome"]


def test_price_recovering_after_the_send_reverts_once_and_is_not_retried(api: Api) -> None:
    """The exit is in the pool when a recovery price is mined ahead of it (higher tip): it reverts
    ExitNotTriggered on chain. The keeper looks again, finds the rule no longer triggered, says so,
    and sends nothing more."""
    position_id = _open(api)
    with _manual_mining(api):
        _send_price(api, "NVDA", "160")
        _mine(api)
        _wait_position(api, position_id, lambda p: (1, "sent") in _actions(p))
        _send_price(api, "NVDA", "182", tip_wei=5 * GWEI)
        _mine(api)
    p = _wait_position(api, position_id, lambda p: len(p["audit"]) >= 3)
    time.sleep(1.5)
    p = _position(api, position_id)
    assert p["status"] == "open"
    [request] = _exit_requests(api)
    assert request.status == "failed"
    actions = [a["action"] for a in p["audit"]]
    assert actions[0] == "sent" and actions[-1] == "held", p["audit"]
    assert "failed" not in actions
    assert "not triggered" in p["audit"][-1]["outcome"]


# ---------------------------------------------------------------------- failures


def _move_usdc(api: Api, holder: str, to: str) -> int:
    """Moves all of `holder`'s USDC to `to`, impersonating it (the venue is a contract)."""
    usdc = api.stack.admin.usdc
    amount = int(usdc.functions.balanceOf(holder).call())
    _rpc(api, "anvil_impersonateAccount", [holder])
    _rpc(api, "anvil_setBalance", [holder, hex(10**18)])
    data = usdc.functions.transfer(to, amount)._encode_transaction_data()
    tx_hash = _rpc(api, "eth_sendTransaction", [{"from": holder, "to": usdc.address, "data": data}])
    _rpc(api, "anvil_stopImpersonatingAccount", [holder])
    # Anvil can answer before it has stored the receipt: wait for it rather than read it once.
    assert api.stack.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=10)["status"] == 1
    return amount


def test_failing_exit_backs_off_gives_up_and_rearms_on_a_new_round(api: Api) -> None:
    keeper = api.services.keeper
    keeper.backoff_s = 0.1
    position_id = _open(api)
    venue = api.stack.manifest.contracts.venue
    sink = Account.from_key(ANVIL_KEYS[9]).address
    _move_usdc(api, venue, sink)  # the venue cannot pay for the stop's sale: InsufficientLiquidity

    _set_price(api, "NVDA", "160")
    p = _wait_position(api, position_id, lambda p: any(a["action"] == "failed" for a in p["audit"]))
    actions = [a["action"] for a in p["audit"]]
    assert actions == ["retry"] * (keeper.max_attempts - 1) + ["failed"], p["audit"]
    assert all("InsufficientLiquidity" in a["outcome"] for a in p["audit"])
    assert f"gave up after {keeper.max_attempts} attempts" in p["audit"][-1]["outcome"]
    # Back-off doubles: 0.1, 0.2, 0.4, 0.8 s between attempts.
    at = [datetime.fromisoformat(a["at"]) for a in p["audit"]]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(at)]
    for i, gap in enumerate(gaps):
        assert gap >= 0.9 * keeper.backoff_s * 2**i, gaps
    assert _exit_requests(api) == []  # every attempt stopped at the simulation: no gas spent
    assert _metric(api, "alphagrid_exits_failed_total") == keeper.max_attempts

    # Given up: not retried, even once the venue can pay again, until something new happens.
    _move_usdc(api, sink, venue)
    time.sleep(1.0)
    p = _position(api, position_id)
    assert p["status"] == "open" and len(p["audit"]) == keeper.max_attempts

    # A new oracle round re-arms the budget.
    _set_price(api, "NVDA", "160")
    p = _wait_position(api, position_id, lambda p: p["status"] == "closed")
    assert [e["ruleIndex"] for e in _exits(p)] == [1]
    p = _wait_position(api, position_id, lambda p: p["audit"][-1]["action"] == "confirmed")


def test_a_rule_that_keeps_failing_gets_a_few_rounds_then_only_a_new_ladder_rearms_it(api: Api) -> None:
    """SPEC §3: retried with back-off and a cap, then reported, never retried forever."""
    keeper = api.services.keeper
    keeper.backoff_s, keeper.max_attempts, keeper.max_rounds = 0.05, 2, 2
    position_id = _open(api)
    venue = api.stack.manifest.contracts.venue
    sink = Account.from_key(ANVIL_KEYS[9]).address
    _move_usdc(api, venue, sink)

    def failed_count(p: Position) -> int:
        return sum(a["action"] == "failed" for a in p["audit"])

    _set_price(api, "NVDA", "160")
    p = _wait_position(api, position_id, lambda p: failed_count(p) == 1)
    assert "(1 of 2)" in p["audit"][-1]["outcome"]
    _set_price(api, "NVDA", "160")  # a new round: the second and last budget
    p = _wait_position(api, position_id, lambda p: failed_count(p) == 2)
    assert "last of 2 rounds" in p["audit"][-1]["outcome"]
    spent = len(p["audit"])

    _move_usdc(api, sink, venue)  # the venue could pay now, but the budget is spent
    _set_price(api, "NVDA", "160")
    time.sleep(1.0)
    p = _position(api, position_id)
    assert p["status"] == "open" and len(p["audit"]) == spent
    assert _metric(api, "alphagrid_exits_failed_total") == 4

    # The agent's new ladder arms it again.
    assert _update_ladder(api, position_id, [TP10_HALF, {**SL10_ALL, "triggerBps": -500}]).status_code in (
        201,
        202,
    )
    p = _wait_position(api, position_id, lambda p: p["status"] == "closed")
    assert [e["ruleIndex"] for e in _exits(p)] == [1]


def test_a_paused_router_holds_exits_and_unpausing_fires_them(api: Api) -> None:
    position_id = _open(api)
    admin = api.stack.admin
    admin.send(admin.router.functions.pause(), "pause")
    try:
        _set_price(api, "NVDA", "160")
        p = _wait_position(api, position_id, lambda p: len(p["audit"]) > 0)
        time.sleep(0.5)
        p = _position(api, position_id)
        assert [(a["action"], a["outcome"]) for a in p["audit"]] == [("held", "the router is paused")]
        assert _exit_requests(api) == []
        assert _metric(api, "alphagrid_exits_failed_total") == 0
    finally:
        admin.send(admin.router.functions.unpause(), "unpause")
    p = _wait_position(api, position_id, lambda p: p["audit"][-1]["action"] == "confirmed")
    assert p["status"] == "closed" and [e["ruleIndex"] for e in _exits(p)] == [1]
    assert [a["action"] for a in p["audit"]] == ["held", "sent", "confirmed"]
