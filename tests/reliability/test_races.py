"""Races the relayer must not lose gas to (issue 13, medium 5–7), forced deterministically against a
real Anvil and the real relayer (SQLite and PostgreSQL):

- an agent's intent and a keeper exit on the same position: whichever is on its way first, the other
  waits for it (never both sent, one reverting);
- the chain moving between the simulation and the inclusion: counted, by reason, in the metrics;
- an agent front-running its own relayed intents with same-nonce intents sent straight to the router:
  each such failure is a strike; past the thresholds the agent is throttled, then suspended, visibly,
  until an operator clears its strikes.

The interleavings are forced by holding one side at the exact point of the race: the keeper's
`sender.submit` (its exit simulated, not sent yet) or the dispatcher's `sender.broadcast` (the intent
recorded `submitted`, not broadcast yet).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from typer.testing import CliRunner

from relayer.cli import app as cli_app
from relayer.intents.strikes import StrikePolicy
from relayer.store.models import TxRequest
from tests.integration.test_api_rejections import LADDER, open_position, rpc, settle, signed, submit
from tests.integration.test_api_restart import final
from tests.integration.test_keeper import _send_price, _set_price

from .harness import Api

NO_WAIT = {"Prefer": "wait=0"}
GWEI = 10**9


def _wait(predicate: Callable[[], object], what: str, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _position(api: Api, position_id: str) -> dict[str, Any]:
    agent_id, _ = api.agent(0)
    r = api.client.get(f"/agents/{agent_id}/positions/{position_id}")
    assert r.status_code == 200, r.text
    return dict(r.json())


def _actions(p: dict[str, Any]) -> list[tuple[int, str]]:
    return [(a["ruleIndex"], a["action"]) for a in p["audit"]]


def _intent(api: Api, intent_id: str) -> dict[str, Any]:
    agent_id, _ = api.agent(0)
    return dict(api.client.get(f"/agents/{agent_id}/intents/{intent_id}").json())


def _failed_requests(api: Api) -> list[tuple[str, str | None]]:
    """The relayer's transactions that reverted on chain (purpose, hash)."""
    with api.services.sessions() as session:
        rows = session.execute(
            select(TxRequest.purpose, TxRequest.mined_hash).where(TxRequest.status == "failed")
        ).all()
    return [(p, h) for p, h in rows]


def _keeper_knows(api: Api, position_id: str) -> None:
    def known() -> bool:
        p = api.services.state.positions.get(int(position_id))
        return p is not None and len(p.rules) > 0 and len(api.services.keeper.index) > 0

    _wait(known, "the keeper to index the ladder")


def _samples(api: Api, name: str) -> dict[str, float]:
    """A labelled counter's samples: reason → value."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(api.client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == name:
                out[sample.labels.get("reason", "")] = float(sample.value)
    return out


class _Held:
    """Wraps the relayer's TxSender for one side of the race: `method` blocks (after `reached` is set)
    until `go` is set. Everything else goes straight through."""

    def __init__(self, inner: Any, method: str) -> None:
        self._inner = inner
        self._method = method
        self.reached = threading.Event()
        self.go = threading.Event()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name != self._method:
            return attr

        def held(*args: Any, **kwargs: Any) -> Any:
            self.reached.set()
            assert self.go.wait(30), "the test never let the held call go"
            return attr(*args, **kwargs)

        return held


@contextmanager
def _keeper_exit_held(api: Api) -> Iterator[_Held]:
    """The keeper's exits are simulated, then wait before they are sent."""
    keeper = api.services.keeper
    held = _Held(keeper.sender, "submit")
    keeper.sender = held  # type: ignore[assignment]
    try:
        yield held
    finally:
        held.go.set()
        keeper.sender = held._inner


@contextmanager
def _intent_broadcast_held(api: Api) -> Iterator[_Held]:
    """The dispatcher's transactions are simulated and recorded (`submitted`), then wait before they
    are broadcast."""
    dispatcher = api.services.intents.dispatcher
    held = _Held(dispatcher.sender, "broadcast")
    dispatcher.sender = held
    try:
        yield held
    finally:
        held.go.set()
        dispatcher.sender = held._inner


# ------------------------------------------------ 5: intent and exit on one position


def test_a_reduce_racing_a_stop_waits_for_the_exit_and_nothing_reverts(api: Api) -> None:
    """The price crosses the stop; the keeper has simulated its exit (closing the position) when the
    agent's reduce of the whole position arrives and passes its own simulation. The dispatcher must
    hold the reduce (`received`, not sent) while the exit is on its way, then judge it on what the
    exit left: refused (the position is closed), no transaction. Without the hold both are sent and
    the second reverts on chain (PositionNotOpen)."""
    agent_id, _ = api.agent(0)
    position_id = open_position(api, exits=LADDER)
    _keeper_knows(api, position_id)
    with _keeper_exit_held(api) as exit_held:
        _set_price(api, "NVDA", "160")  # −12 %: the −10 % stop (sell all)
        _wait(exit_held.reached.is_set, "the keeper to simulate its exit")
        _q, body = signed(api, 0, "ReducePosition", positionId=position_id)
        r = submit(api, agent_id, "ReducePosition", body, headers=NO_WAIT)
        assert r.status_code in (201, 202), r.text
        intent_id = r.json()["intentId"]
        time.sleep(1.0)  # the dispatcher's chances (it passes every 50 ms) to send it anyway
        assert _intent(api, intent_id)["status"] == "received", _intent(api, intent_id)
        exit_held.go.set()
        record = final(api.client, agent_id, intent_id)
    assert record["status"] == "rejected", record
    assert "position_closed" in record["reason"] or "PositionNotOpen" in record["reason"], record
    assert record["transactionHash"] is None
    p = _position(api, position_id)
    assert p["status"] == "closed"
    assert _actions(p) == [(1, "sent"), (1, "confirmed")], p["audit"]
    assert _failed_requests(api) == []


def test_a_stop_crossed_while_a_reduce_is_in_flight_waits_for_it_then_fires(api: Api) -> None:
    """The agent's reduce of half the position is recorded and on its way when the price crosses the
    stop. The keeper must hold the exit (audited `held`, naming the intent) until the reduce settles,
    then fire on what is left. Without the hold the exit closes the position first and the reduce
    reverts on chain (PositionNotOpen)."""
    agent_id, _ = api.agent(0)
    position_id = open_position(api, exits=LADDER)
    _keeper_knows(api, position_id)
    size = Decimal(_position(api, position_id)["size"])
    with _intent_broadcast_held(api) as broadcast_held:
        # Slippage room for the −12 % move that comes while it waits to be broadcast.
        _q, body = signed(
            api,
            0,
            "ReducePosition",
            positionId=position_id,
            tokenAmount=str(size / 2),
            maxSlippageBps=2000,
        )
        answer: dict[str, Any] = {}
        thread = threading.Thread(
            target=lambda: answer.update(r=submit(api, agent_id, "ReducePosition", body, headers=NO_WAIT))
        )
        thread.start()
        _wait(broadcast_held.reached.is_set, "the dispatcher to record the reduce")
        _set_price(api, "NVDA", "160")
        _wait(lambda: (1, "held") in _actions(_position(api, position_id)), "the keeper to hold its exit")
        held = _position(api, position_id)["audit"][0]
        assert held["action"] == "held" and "intent" in held["outcome"] and "in flight" in held["outcome"]
        time.sleep(0.5)  # the keeper's chances (every step) to send it anyway
        assert _actions(_position(api, position_id)) == [(1, "held")]
        broadcast_held.go.set()
        thread.join(30)
    r = answer["r"]
    assert r.status_code in (201, 202), r.text
    record = final(api.client, agent_id, r.json()["intentId"])
    assert record["status"] == "confirmed", record
    _wait(lambda: (1, "confirmed") in _actions(_position(api, position_id)), "the stop to fire on the rest")
    p = _position(api, position_id)
    assert p["status"] == "closed"
    assert _actions(p) == [(1, "held"), (1, "sent"), (1, "confirmed")], p["audit"]
    assert _failed_requests(api) == []


# ------------------------------------------------ 6: the chain moving after the simulation


def test_an_open_failing_after_its_simulation_is_counted_by_reason(api: Api) -> None:
    """An open with a tight minTokenOut passes its simulation and waits in the pool; a price rise is
    mined ahead of it (a higher tip) and it reverts on chain. The metrics count it by the router's
    reason."""
    agent_id, _ = api.agent(0)
    name = "alphagrid_intents_failed_after_simulation_total"
    assert _samples(api, name) == {}
    rpc(api, "evm_setAutomine", False)
    try:
        _q, body = signed(
            api, 0, "OpenPosition", symbol="NVDA", usdcAmount="1000", maxSlippageBps=30, exits=LADDER
        )
        r = submit(api, agent_id, "OpenPosition", body, headers=NO_WAIT)
        assert r.status_code == 202 and r.json()["status"] == "submitted", r.text
        _send_price(api, "NVDA", "200", tip_wei=50 * GWEI)  # +10 %: fewer tokens than the minimum
        rpc(api, "evm_mine")
    finally:
        rpc(api, "evm_setAutomine", True)
        api.stack.admin.resync_nonce()
    record = final(api.client, agent_id, r.json()["intentId"])
    assert record["status"] == "failed", record
    counted = _samples(api, name)
    assert sum(counted.values()) == 1, counted
    (reason,) = counted
    assert reason in record["reason"], (reason, record["reason"])


def test_an_exit_failing_after_its_simulation_is_counted_by_reason(api: Api) -> None:
    """The keeper's exit is in the pool when a recovery price is mined ahead of it: it reverts
    ExitNotTriggered on chain, and the metrics count it by that reason."""
    position_id = open_position(api, exits=LADDER)
    _keeper_knows(api, position_id)
    name = "alphagrid_exits_failed_after_simulation_total"
    rpc(api, "evm_setAutomine", False)
    try:
        _send_price(api, "NVDA", "160")
        rpc(api, "evm_mine")
        _wait(lambda: (1, "sent") in _actions(_position(api, position_id)), "the exit to be sent")
        _send_price(api, "NVDA", "182", tip_wei=5 * GWEI)
        rpc(api, "evm_mine")
    finally:
        rpc(api, "evm_setAutomine", True)
        api.stack.admin.resync_nonce()
    _wait(lambda: _samples(api, name), "the failed exit to be counted")
    assert _samples(api, name) == {"ExitNotTriggered": 1.0}


# ------------------------------------------------ 7: front-running griefing


def _front_run(api: Api, agent_id: int, position_id: str, ladder: list[dict[str, Any]]) -> str:
    """The agent's relayed ladder update waits in the pool; the agent signs another update with the
    same nonce and sends it straight to the router with a higher tip. Returns the relayed intent's id."""
    from tests.reliability.test_tx_lifecycle import send_as_stranger

    q, body = signed(api, 0, "UpdateExitLadder", positionId=position_id, exits=ladder)
    nonce = int(q["typedData"]["message"]["nonce"])
    r = submit(api, agent_id, "UpdateExitLadder", body, headers=NO_WAIT)
    assert r.status_code == 202 and r.json()["status"] == "submitted", r.text
    other = [{**rule, "triggerBps": rule["triggerBps"] - 100} for rule in ladder]
    _q, theirs = signed(
        api, 0, "UpdateExitLadder", positionId=position_id, exits=other, message={"nonce": nonce}
    )
    intents = api.services.intents
    data = intents.calldata(intents.built(agent_id, "UpdateExitLadder", theirs))
    send_as_stranger(api.stack.w3, intents.router, data, 400_000, tip_gwei=50)
    rpc(api, "evm_mine")
    return str(r.json()["intentId"])


def test_an_agent_front_running_its_own_intents_is_throttled_then_suspended(api: Api) -> None:
    """Each relayed intent that fails because the agent used its nonce for another intent is a strike
    (in the database). Past the throttling threshold the agent's submits get 429 `rate_limited`
    (`reason: throttled`), past the suspension threshold `reason: suspended`; `GET /agents/{id}` shows
    it as `relayerStatus`, and `alphagrid agent clear-strikes` lets it trade again."""
    agent_id, _ = api.agent(0)
    position_id = open_position(api, exits=LADDER)
    api.services.intents.strike_policy = StrikePolicy(throttle_after=2, suspend_after=3)
    assert api.client.get(f"/agents/{agent_id}").json()["relayerStatus"] is None
    for round_ in range(3):
        rpc(api, "evm_setAutomine", False)
        try:
            intent_id = _front_run(api, agent_id, position_id, LADDER)
        finally:
            rpc(api, "evm_setAutomine", True)
        record = final(api.client, agent_id, intent_id)
        assert record["status"] == "failed", record
        settle(api)
        status = api.client.get(f"/agents/{agent_id}").json()["relayerStatus"]
        if round_ == 0:
            assert status is None
            continue
        expected = "throttled" if round_ == 1 else "suspended"
        assert status is not None and status["status"] == expected, status
        assert "nonces for other intents" in status["reason"] and status["until"]
        # Its next submit is refused before anything is recorded or sent.
        _q, body = signed(api, 0, "UpdateExitLadder", positionId=position_id, exits=LADDER)
        refused = submit(api, agent_id, "UpdateExitLadder", body)
        assert refused.status_code == 429, refused.text
        error = refused.json()
        assert error["code"] == "rate_limited" and error["details"]["reason"] == expected, error
        assert error["details"]["suggestion"]["retryAfterS"] > 0
        assert int(refused.headers["Retry-After"]) >= 1
        if round_ == 1:  # let it through once more (the third round is its third strike)
            api.services.intents.strike_policy = StrikePolicy(throttle_after=3, suspend_after=3)
    # The operator sees it, and clears it.
    runner = CliRunner()
    env = {"ALPHAGRID_DATABASE_URL": api.services.settings.database_url}
    cleared = runner.invoke(cli_app, ["agent", "clear-strikes", str(agent_id), "--json"], env=env)
    assert cleared.exit_code == 0, cleared.output
    assert '"cleared": 3' in cleared.output
    assert api.client.get(f"/agents/{agent_id}").json()["relayerStatus"] is None
    _q, body = signed(api, 0, "UpdateExitLadder", positionId=position_id, exits=LADDER)
    assert submit(api, agent_id, "UpdateExitLadder", body).status_code == 201
