"""The gap report of an exit as the indexer records it (SPEC §5.6): the trigger of the ladder in force
when the rule fired, computed before the fill applies, stored with the event; the history view and the
stream event derive fillPrice and slippageBps from it. Events are built with the contracts' own
arithmetic (`decide_exits`), applied through the real indexer step into a real SQLite mirror."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from relayer.amounts import format_amount
from relayer.chain.events import DecodedLog
from relayer.domain.exits import PositionState, decide_exits, trigger_threshold, venue_buy_out
from relayer.domain.market import exit_gap_json
from relayer.eip712 import ExitRule, TriggerType
from relayer.indexer import Indexer, exit_trigger_price
from relayer.state import ChainState, PositionInfo
from relayer.store.db import make_engine, make_session_factory
from relayer.store.migrate import upgrade
from relayer.store.models import PositionEvent, StreamEvent
from relayer.views import history_json

TOKEN = "0x00000000000000000000000000000000000000A1"
DECIMALS = 18
SPREAD = 30
ENTRY = 182_35000000  # 182.35 USD
STOP = ExitRule(TriggerType.STOP_LOSS, -500, 10_000)


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'relayer.db'}")
    upgrade(engine)
    yield make_session_factory(engine)
    engine.dispose()


class Chain:
    """Feeds decoded events through `Indexer._apply`, one transaction per event, as a poll does."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.state = ChainState()
        self.sessions = sessions
        self.indexer = Indexer(None, sessions, self.state, None, [], 0)  # type: ignore[arg-type]
        self.block = 0

    def emit(self, name: str, **args: Any) -> None:
        self.block += 1
        log = DecodedLog(name, "0x0", args, self.block, f"0x{self.block:064x}", f"0x{self.block:064x}", 0)
        with self.state.lock, self.sessions.begin() as session:
            self.indexer._apply(session, log, 1_700_000_000 + self.block)

    def open(self, usdc: int, rules: tuple[ExitRule, ...]) -> PositionInfo:
        self.emit("TokenRegistered", token=TOKEN, symbol="NVDA", decimals=DECIMALS)
        self.emit("SpreadSet", spreadBps=SPREAD)
        tokens = venue_buy_out(usdc, ENTRY, SPREAD, DECIMALS)
        self.emit("PositionOpened", positionId=1, agentId=1, token=TOKEN, usdcIn=usdc, tokensOut=tokens)
        self.ladder(rules)
        return self.state.positions[1]

    def ladder(self, rules: tuple[ExitRule, ...]) -> None:
        raw = [
            {"triggerType": int(r.trigger_type), "triggerBps": r.trigger_bps, "exitBps": r.exit_bps}
            for r in rules
        ]
        self.emit("ExitLadderSet", positionId=1, agentId=1, exitsHash="0x" + "11" * 32, rules=raw)

    def exit_at(self, price: int) -> int:
        """One `executeExit` at ``price``: every fill the contract would emit, in order."""
        p = self.state.positions[1]
        fires = decide_exits(
            PositionState(p.size, p.cost_basis, p.fired_mask, DECIMALS), p.rules, price, SPREAD
        )
        assert fires, "the price must trigger a rule"
        for f in fires:
            fill = {
                "ruleIndex": f.rule_index,
                "tokensIn": f.tokens_in,
                "usdcOut": f.usdc_out,
                "oraclePrice": price,
                "oracleRoundId": 7,
                "realizedPnl": f.realized_pnl,
                "size": f.size_after,
                "costBasis": f.cost_basis_after,
            }
            self.emit("ExitExecuted", positionId=1, agentId=1, fill=fill)
        return len(fires)

    def exits(self) -> list[dict[str, Any]]:
        with self.sessions() as session:
            rows = session.scalars(select(PositionEvent).where(PositionEvent.kind == "exit")).all()
            p = self.state.positions[1]
            return [history_json(self.state, p, e) for e in rows]

    def stream(self) -> list[dict[str, Any]]:
        with self.sessions() as session:
            rows = session.scalars(select(StreamEvent).where(StreamEvent.type == "exit_fired")).all()
            return [dict(r.data) for r in rows]


def _bps_floor(value: Fraction) -> int:
    return int(value * 10_000 // 1)


def test_a_stop_filled_at_its_trigger_slips_by_the_venue_spread_only(sessions: sessionmaker[Session]) -> None:
    chain = Chain(sessions)
    p = chain.open(1_000_000000, (STOP,))
    trigger = trigger_threshold(STOP, p.size, p.cost_basis, DECIMALS)
    assert trigger is not None
    assert chain.exit_at(trigger) == 1

    [gap] = chain.exits()
    assert gap["triggerPrice"] == gap["oraclePrice"]
    assert gap["gapBps"] == 0
    # The venue sells at the oracle price less 30 bps; the fill's rounding down can only cost one more.
    assert -SPREAD - 1 <= gap["slippageBps"] <= -SPREAD
    [event] = chain.stream()
    for key in ("triggerPrice", "oraclePrice", "fillPrice", "slippageBps", "gapBps"):
        assert event[key] == gap[key]


def test_a_weekend_gap_through_the_stop_is_reported_as_large_negative_slippage(
    sessions: sessionmaker[Session],
) -> None:
    chain = Chain(sessions)
    p = chain.open(1_000_000000, (STOP,))
    trigger = trigger_threshold(STOP, p.size, p.cost_basis, DECIMALS)
    assert trigger is not None
    # −5 % of the entry, which is 182.35 plus the 30 bps spread paid: 182.35 · 1.003 · 0.95 = 173.75
    assert 173_75_000000 <= trigger < 173_76_000000
    chain.exit_at(160_00000000)

    [gap] = chain.exits()
    with sessions() as session:
        row = session.scalars(select(PositionEvent).where(PositionEvent.kind == "exit")).one()
        assert row.data["triggerPrice"] == trigger  # stored raw, at index time
        f = row.data["fill"]
    fill = f["usdcOut"] * 10**20 // f["tokensIn"]  # 8 decimals, rounded down
    assert gap["triggerPrice"] == format_amount(trigger, 8)
    assert gap["oraclePrice"] == "160"
    assert gap["fillPrice"] == format_amount(fill, 8)
    assert Fraction(gap["fillPrice"]) <= Fraction(f["usdcOut"] * 10**12, f["tokensIn"])  # never better
    assert gap["slippageBps"] == _bps_floor(Fraction(fill - trigger, trigger))
    assert gap["gapBps"] == _bps_floor(Fraction(160_00000000 - trigger, trigger))
    assert gap["slippageBps"] < -790  # 160 · (1 − 0.3 %) against 173.23…: about −7.9 %
    assert gap["slippageBps"] < gap["gapBps"]  # the spread comes on top of the gap


def test_each_fill_of_one_exit_uses_the_position_as_it_stood_before_it(
    sessions: sessionmaker[Session],
) -> None:
    half = ExitRule(TriggerType.STOP_LOSS, -500, 5_000)
    rest = ExitRule(TriggerType.STOP_LOSS, -800, 10_000)
    chain = Chain(sessions)
    p = chain.open(1_000_000000, (half, rest))
    first = trigger_threshold(half, p.size, p.cost_basis, DECIMALS)
    assert chain.exit_at(150_00000000) == 2  # both rules in one executeExit

    with sessions() as session:
        rows = session.scalars(
            select(PositionEvent).where(PositionEvent.kind == "exit").order_by(PositionEvent.id)
        ).all()
        triggers = [r.data["triggerPrice"] for r in rows]
        f0 = rows[0].data["fill"]
    # The second rule's trigger is on the size and basis left after the first fill.
    after_first = PositionInfo(1, 1, TOKEN, f0["size"], f0["costBasis"], "0x", (half, rest), 1, True, 0, "0x")
    assert triggers == [first, exit_trigger_price(after_first, 1, DECIMALS)]
    assert triggers[1] == trigger_threshold(rest, f0["size"], f0["costBasis"], DECIMALS)


def test_the_trigger_is_the_ladders_in_force_when_the_rule_fired(sessions: sessionmaker[Session]) -> None:
    partial = ExitRule(TriggerType.STOP_LOSS, -500, 5_000)
    chain = Chain(sessions)
    p = chain.open(1_000_000000, (partial,))
    trigger = trigger_threshold(partial, p.size, p.cost_basis, DECIMALS)
    chain.exit_at(170_00000000)
    chain.ladder((ExitRule(TriggerType.STOP_LOSS, -2_000, 10_000),))  # a new ladder afterwards

    [gap] = chain.exits()
    assert gap["triggerPrice"] == exit_gap_json(trigger, 170_00000000, 1, 1, DECIMALS)["triggerPrice"]


def test_unknown_trigger_and_empty_fill_are_null() -> None:
    assert exit_trigger_price(None, 0, DECIMALS) is None
    gap = exit_gap_json(None, 160_00000000, 0, 0, DECIMALS)
    assert gap == {
        "triggerPrice": None,
        "oraclePrice": "160",
        "fillPrice": None,
        "slippageBps": None,
        "gapBps": None,
    }
    # A fill at 95 on a trigger at 100 after a gap to 96: −500 and −400 bps, never rounded up.
    gap = exit_gap_json(100_00000000, 96_00000000, 95_000000, 10**18, DECIMALS)
    assert (gap["fillPrice"], gap["slippageBps"], gap["gapBps"]) == ("95", -500, -400)
    assert exit_gap_json(100_00000000, 100_00000000, 99_999999, 10**18, DECIMALS)["slippageBps"] == -1
