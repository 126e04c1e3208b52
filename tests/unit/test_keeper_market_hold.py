"""`relayer.keeper.keeper.market_hold`: the keeper holds what the router's market gate would refuse
(SPEC §5.6), and says until when."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from relayer.domain.calendar import ExchangeCalendar, exchange_calendar
from relayer.domain.market import DEFAULT_SESSIONS, ExitsWhenClosed, HoldReason
from relayer.domain.market import Hold as MarketHold
from relayer.domain.market import MarketStatus as S
from relayer.keeper.keeper import market_hold

HOLD, FIRE = ExitsWhenClosed.HOLD, ExitsWhenClosed.FIRE
NEW_YORK = ZoneInfo("America/New_York")


def et(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=NEW_YORK).timestamp())


@pytest.fixture(scope="module")
def nyse() -> ExchangeCalendar:
    return exchange_calendar("XNYS")


@pytest.mark.parametrize(
    ("status", "quoted", "policy", "held"),
    [
        (S.UNKNOWN, S.UNKNOWN, HOLD, False),  # no status published: ungated
        (S.REGULAR, S.REGULAR, HOLD, False),
        (S.REGULAR, S.CLOSED, HOLD, True),  # Friday's close at Monday's open: waits for a new price
        (S.REGULAR, S.CLOSED, FIRE, False),
        (S.CLOSED, S.CLOSED, HOLD, True),
        (S.CLOSED, S.CLOSED, FIRE, False),  # fire: the last price
        (S.HALTED, S.REGULAR, FIRE, True),  # a halt holds every exit
        (S.PRE_MARKET, S.PRE_MARKET, HOLD, True),
    ],
)
def test_market_hold_without_a_calendar(status: S, quoted: S, policy: ExitsWhenClosed, held: bool) -> None:
    verdict = market_hold(status, quoted, policy, DEFAULT_SESSIONS, now=0, calendar=None)
    assert (verdict is not None) is held
    if verdict is not None:
        assert verdict.next_open is None


def test_market_hold_says_until_the_next_open(nyse: ExchangeCalendar) -> None:
    saturday = et("2025-12-06T12:00")
    verdict = market_hold(S.CLOSED, S.CLOSED, HOLD, DEFAULT_SESSIONS, saturday, nyse)
    assert verdict == MarketHold(HoldReason.CLOSED, S.CLOSED, et("2025-12-08T09:30"))
    assert verdict.message == "market closed until Mon 8 Dec 09:30 ET"


def test_market_hold_in_a_halt_names_no_open(nyse: ExchangeCalendar) -> None:
    verdict = market_hold(S.HALTED, S.REGULAR, HOLD, DEFAULT_SESSIONS, et("2025-12-03T11:00"), nyse)
    assert verdict == MarketHold(HoldReason.HALTED, S.HALTED) and verdict.message == "market halted"


def test_market_hold_for_a_pre_market_track_names_the_pre_market(nyse: ExchangeCalendar) -> None:
    sessions = frozenset({S.PRE_MARKET, S.REGULAR})
    verdict = market_hold(S.CLOSED, S.CLOSED, HOLD, sessions, et("2025-12-06T12:00"), nyse)
    assert verdict is not None and verdict.next_open == et("2025-12-08T04:00")
