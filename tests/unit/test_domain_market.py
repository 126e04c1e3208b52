"""relayer.domain.market and relayer.domain.calendar: statuses, NYSE sessions on the real calendar
(a holiday, early closes, both DST changes), the policies, multipliers and the gap report."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relayer.domain.calendar import ExchangeCalendar, exchange_calendar
from relayer.domain.market import (
    DEFAULT_SESSIONS,
    NEW_YORK,
    ONE,
    Allowed,
    ExitsWhenClosed,
    Fire,
    Hold,
    HoldReason,
    IntentKind,
    MarketClosed,
    MarketError,
    MarketStatus,
    MultiplierSchedule,
    SessionHours,
    SplitRatio,
    TradingDay,
    allows,
    exit_policy,
    fill_price,
    format_local,
    gap_report,
    next_open,
    parse_ratio,
    parse_sessions,
    rebase_share_price,
    sessions_from_mask,
    sessions_mask,
    signed_bps,
    split_multiplier,
    status_at,
    token_price,
)

S = MarketStatus


def et(text: str) -> datetime:
    """A New York wall-clock time, ``2025-11-28 13:00``."""
    return datetime.fromisoformat(text).replace(tzinfo=NEW_YORK)


@pytest.fixture(scope="module")
def nyse() -> ExchangeCalendar:
    return exchange_calendar("XNYS")


# ---------------------------------------------------------------------------------------- statuses


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("Regular", S.REGULAR),
        ("regular", S.REGULAR),
        ("pre-market", S.PRE_MARKET),
        ("PRE_MARKET", S.PRE_MARKET),
        ("PostMarket", S.POST_MARKET),
        ("overnight", S.OVERNIGHT),
        ("closed", S.CLOSED),
        ("Halted", S.HALTED),
        ("unknown", S.UNKNOWN),
        ("6", S.HALTED),
        (2, S.REGULAR),
    ],
)
def test_status_parse(text: str | int, status: MarketStatus) -> None:
    assert MarketStatus.parse(text) is status


@pytest.mark.parametrize("text", ["open", "7", "", "Reg ular!"])
def test_status_parse_refuses(text: str) -> None:
    with pytest.raises(MarketError):
        MarketStatus.parse(text)


def test_status_labels_match_the_oracle_enum_order() -> None:
    assert [s.label for s in MarketStatus] == [
        "Unknown",
        "PreMarket",
        "Regular",
        "PostMarket",
        "Overnight",
        "Closed",
        "Halted",
    ]


def test_parse_sessions() -> None:
    assert parse_sessions("Regular,PreMarket") == {S.REGULAR, S.PRE_MARKET}
    assert parse_sessions(["regular"]) == DEFAULT_SESSIONS
    with pytest.raises(MarketError, match="Halted"):
        parse_sessions("Regular,Halted")
    with pytest.raises(MarketError, match="at least one"):
        parse_sessions(" , ")


def test_sessions_mask_round_trips() -> None:
    sessions = frozenset({S.REGULAR, S.POST_MARKET})
    assert sessions_mask(sessions) == 0b1100
    assert sessions_from_mask(0b1100) == sessions
    with pytest.raises(MarketError):
        sessions_from_mask(1 << 7)


# ---------------------------------------------------------------------------------------- sessions (pure)

_DAY = TradingDay(
    date(2025, 6, 16),  # a Monday
    et("2025-06-16 09:30").astimezone(UTC),
    et("2025-06-16 16:00").astimezone(UTC),
)


@pytest.mark.parametrize(
    ("when", "status"),
    [
        ("2025-06-15 19:59", S.CLOSED),  # Sunday evening before the overnight
        ("2025-06-15 20:00", S.OVERNIGHT),
        ("2025-06-16 03:59", S.OVERNIGHT),
        ("2025-06-16 04:00", S.PRE_MARKET),
        ("2025-06-16 09:29", S.PRE_MARKET),
        ("2025-06-16 09:30", S.REGULAR),
        ("2025-06-16 15:59", S.REGULAR),
        ("2025-06-16 16:00", S.POST_MARKET),
        ("2025-06-16 19:59", S.POST_MARKET),
        ("2025-06-16 20:00", S.CLOSED),  # no trading day follows in `days`
    ],
)
def test_status_at_one_day(when: str, status: MarketStatus) -> None:
    assert status_at(et(when), [_DAY]) is status


def test_status_at_without_overnight_hours() -> None:
    assert status_at(et("2025-06-16 02:00"), [_DAY], SessionHours(overnight=False)) is S.CLOSED


def test_status_at_requires_an_aware_time() -> None:
    with pytest.raises(ValueError, match="aware"):
        status_at(datetime(2025, 6, 16, 12), [_DAY])


def test_next_open_is_strictly_after_now() -> None:
    assert next_open(et("2025-06-16 09:30"), [_DAY]) is None
    assert next_open(et("2025-06-16 09:29"), [_DAY]) == _DAY.open
    assert next_open(et("2025-06-16 03:00"), [_DAY], {S.PRE_MARKET}) == et("2025-06-16 04:00")


# ---------------------------------------------------------------------------------------- NYSE calendar


@pytest.mark.parametrize(
    ("when", "status"),
    [
        # Thanksgiving 2025 (Thu 27 Nov): a holiday, then an early close at 13:00 on Friday
        ("2025-11-26 19:00", S.POST_MARKET),
        ("2025-11-26 21:00", S.CLOSED),  # the evening before a holiday has no overnight
        ("2025-11-27 12:00", S.CLOSED),
        ("2025-11-27 20:30", S.OVERNIGHT),  # the holiday's evening leads into Friday
        ("2025-11-28 05:00", S.PRE_MARKET),
        ("2025-11-28 12:59", S.REGULAR),
        ("2025-11-28 13:00", S.POST_MARKET),  # early close
        ("2025-11-28 16:59", S.POST_MARKET),
        ("2025-11-28 17:00", S.CLOSED),  # post-market ends four hours after an early close
        ("2025-11-29 12:00", S.CLOSED),  # weekend
        ("2025-11-30 19:59", S.CLOSED),
        ("2025-11-30 20:00", S.OVERNIGHT),  # Sunday evening leads into Monday
        # Christmas Eve 2025 closes early, Christmas is a holiday
        ("2025-12-24 13:30", S.POST_MARKET),
        ("2025-12-25 10:00", S.CLOSED),
        # DST starts Sun 9 Mar 2025, ends Sun 2 Nov 2025: local hours hold on both sides
        ("2025-03-07 09:30", S.REGULAR),
        ("2025-03-10 09:30", S.REGULAR),
        ("2025-03-10 09:29", S.PRE_MARKET),
        ("2025-10-31 15:59", S.REGULAR),
        ("2025-11-03 09:30", S.REGULAR),
        ("2025-11-03 16:00", S.POST_MARKET),
    ],
)
def test_nyse_status(nyse: ExchangeCalendar, when: str, status: MarketStatus) -> None:
    assert nyse.status_at(et(when)) is status


def test_nyse_open_moves_in_utc_across_dst(nyse: ExchangeCalendar) -> None:
    before = nyse.trading_days(date(2025, 3, 7), date(2025, 3, 7))[0]
    after = nyse.trading_days(date(2025, 3, 10), date(2025, 3, 10))[0]
    assert before.open.astimezone(UTC).hour == 14  # 09:30 EST
    assert after.open.astimezone(UTC).hour == 13  # 09:30 EDT
    autumn = nyse.trading_days(date(2025, 11, 3), date(2025, 11, 3))[0]
    assert autumn.open.astimezone(UTC).hour == 14


def test_nyse_next_open_skips_weekend_and_holiday(nyse: ExchangeCalendar) -> None:
    # Friday after Thanksgiving, after the early close → Monday 09:30 ET
    assert nyse.next_open(et("2025-11-28 13:30")) == et("2025-12-01 09:30")
    # Christmas Eve afternoon → Friday 26th
    assert nyse.next_open(et("2025-12-24 14:00")) == et("2025-12-26 09:30")
    # the next pre-market, for a track trading PreMarket
    assert nyse.next_open(et("2025-11-29 12:00"), frozenset({S.PRE_MARKET})) == et("2025-12-01 04:00")


def test_nyse_next_open_remembered_answers_as_computed() -> None:
    """`next_open` keeps its last answer for the rest of that day until that open: moments asked in
    order (answered from memory where it holds) answer as the same moments asked newest first (an
    earlier moment is never answered from memory: each is computed)."""
    times = [et("2025-11-28 11:00") + timedelta(minutes=m) for m in range(0, 4 * 24 * 60, 17)]
    for statuses in (frozenset({S.REGULAR}), frozenset({S.PRE_MARKET})):
        forward, backward = ExchangeCalendar("XNYS"), ExchangeCalendar("XNYS")
        in_order = [forward.next_open(t, statuses) for t in times]
        computed = [backward.next_open(t, statuses) for t in reversed(times)][::-1]
        assert in_order == computed
        assert len(set(in_order)) > 1  # the walk crosses opens


def test_nyse_knows_nothing_outside_its_span(nyse: ExchangeCalendar) -> None:
    far = datetime(2090, 1, 2, 15, tzinfo=UTC)
    assert nyse.status_at(far) is S.UNKNOWN
    assert nyse.next_open(far) is None


def test_format_local() -> None:
    assert format_local(et("2025-12-01 09:30")) == "Mon 1 Dec 09:30 ET"


# ---------------------------------------------------------------------------------------- allows


@pytest.mark.parametrize("kind", list(IntentKind))
@pytest.mark.parametrize("status", list(MarketStatus))
def test_allows_every_kind_and_status(kind: IntentKind, status: MarketStatus) -> None:
    decision = allows(kind, status, DEFAULT_SESSIONS, next_open=1_000)
    if kind in (IntentKind.REDUCE, IntentKind.LADDER) or status in (S.REGULAR, S.UNKNOWN):
        assert decision == Allowed()
    else:
        assert decision == MarketClosed(status, None if status is S.HALTED else 1_000)


def test_allows_unknown_status_is_ungated_whatever_the_sessions() -> None:
    # a feed that publishes no status: the router does not gate it (the lead's decision, SPEC §5.6)
    assert allows(IntentKind.OPEN, S.UNKNOWN, {S.PRE_MARKET}) == Allowed()
    assert allows(IntentKind.ADD, S.UNKNOWN, {S.CLOSED}) == Allowed()


def test_allows_extended_sessions() -> None:
    sessions = parse_sessions("Regular,PreMarket,PostMarket")
    assert allows(IntentKind.OPEN, S.PRE_MARKET, sessions) == Allowed()
    assert allows(IntentKind.ADD, S.OVERNIGHT, sessions) == MarketClosed(S.OVERNIGHT, None)


def test_allows_never_in_a_halt_even_if_listed() -> None:
    # parse_sessions refuses Halted; a hand-built set still cannot open in a halt
    assert isinstance(allows(IntentKind.OPEN, S.HALTED, {S.HALTED}), MarketClosed)


def test_market_closed_message_and_details() -> None:
    closed = MarketClosed(S.CLOSED, int(et("2025-12-01 09:30").timestamp()))
    assert closed.code == "market_closed"
    assert "until Mon 1 Dec 09:30 ET" in closed.message
    assert closed.details() == {"marketStatus": "Closed", "nextOpen": int(et("2025-12-01 09:30").timestamp())}
    assert "halted" in MarketClosed(S.HALTED, None).message


# ---------------------------------------------------------------------------------------- exit_policy

HOLD, FIRE = ExitsWhenClosed.HOLD, ExitsWhenClosed.FIRE


Q = HoldReason.QUOTED_OUTSIDE_SESSIONS


@pytest.mark.parametrize(
    ("status", "quoted", "policy", "expected"),
    [
        (S.REGULAR, S.REGULAR, HOLD, Fire()),
        (S.REGULAR, S.REGULAR, FIRE, Fire()),
        # the Monday open before a new price: Friday's close must not fire a hold track
        (S.REGULAR, S.CLOSED, HOLD, Hold(Q, S.CLOSED)),
        (S.REGULAR, S.CLOSED, FIRE, Fire()),
        (S.REGULAR, S.POST_MARKET, HOLD, Hold(Q, S.POST_MARKET)),
        (S.REGULAR, S.UNKNOWN, HOLD, Hold(Q, S.UNKNOWN)),  # a price from before statuses were published
        (S.HALTED, S.REGULAR, FIRE, Hold(HoldReason.HALTED, S.HALTED)),  # a halt holds every exit
        (S.HALTED, S.REGULAR, HOLD, Hold(HoldReason.HALTED, S.HALTED)),
        (S.HALTED, S.HALTED, FIRE, Hold(HoldReason.HALTED, S.HALTED)),
        (S.CLOSED, S.REGULAR, HOLD, Hold(HoldReason.CLOSED, S.CLOSED, 7)),
        (S.CLOSED, S.CLOSED, HOLD, Hold(HoldReason.CLOSED, S.CLOSED, 7)),  # the status now is reported first
        (S.CLOSED, S.REGULAR, FIRE, Fire()),
        (S.CLOSED, S.CLOSED, FIRE, Fire()),
        (S.POST_MARKET, S.POST_MARKET, HOLD, Hold(HoldReason.OUTSIDE_SESSIONS, S.POST_MARKET, 7)),
        (S.POST_MARKET, S.REGULAR, FIRE, Fire()),
        (S.OVERNIGHT, S.OVERNIGHT, HOLD, Hold(HoldReason.OUTSIDE_SESSIONS, S.OVERNIGHT, 7)),
        (S.PRE_MARKET, S.REGULAR, HOLD, Hold(HoldReason.OUTSIDE_SESSIONS, S.PRE_MARKET, 7)),
        # no status published: ungated, whatever the price was quoted in and the policy
        (S.UNKNOWN, S.UNKNOWN, HOLD, Fire()),
        (S.UNKNOWN, S.CLOSED, HOLD, Fire()),
        (S.UNKNOWN, S.HALTED, FIRE, Fire()),
    ],
)
def test_exit_policy(
    status: MarketStatus, quoted: MarketStatus, policy: ExitsWhenClosed, expected: Fire | Hold
) -> None:
    assert exit_policy(status, policy, DEFAULT_SESSIONS, next_open=7, quoted_status=quoted) == expected


def test_exit_policy_fires_in_any_session_of_the_track() -> None:
    sessions = parse_sessions("Regular,PostMarket")
    assert exit_policy(S.POST_MARKET, HOLD, sessions, quoted_status=S.REGULAR) == Fire()
    assert exit_policy(S.REGULAR, HOLD, sessions, quoted_status=S.POST_MARKET) == Fire()
    assert exit_policy(S.POST_MARKET, HOLD, sessions, quoted_status=S.OVERNIGHT) == Hold(Q, S.OVERNIGHT)


def test_exit_policy_held_exit_released_by_a_price_quoted_in_session() -> None:
    # Friday's close crossed the stop; Monday opens (Regular) with that price: held; the first
    # Regular price releases it.
    assert isinstance(exit_policy(S.CLOSED, HOLD, quoted_status=S.CLOSED), Hold)
    assert exit_policy(S.REGULAR, HOLD, quoted_status=S.CLOSED) == Hold(Q, S.CLOSED)
    assert exit_policy(S.REGULAR, HOLD, quoted_status=S.REGULAR) == Fire()


def test_hold_messages() -> None:
    monday = int(et("2025-12-01 09:30").timestamp())
    assert Hold(HoldReason.CLOSED, S.CLOSED, monday).message == "market closed until Mon 1 Dec 09:30 ET"
    assert Hold(HoldReason.HALTED, S.HALTED).message == "market halted"
    assert "PostMarket" in Hold(HoldReason.OUTSIDE_SESSIONS, S.POST_MARKET).message
    assert Hold(Q, S.CLOSED).message == (
        "waiting for a price quoted in the track's sessions (the last was quoted Closed)"
    )


# ---------------------------------------------------------------------------------------- multipliers


@pytest.mark.parametrize(
    ("text", "num", "den"),
    [("2:1", 2, 1), ("1:10", 1, 10), (" 3 : 2 ", 3, 2), ("1.05:1", Decimal("1.05"), 1)],
)
def test_parse_ratio(text: str, num: Decimal | int, den: int) -> None:
    assert parse_ratio(text) == SplitRatio(Decimal(num), Decimal(den))


@pytest.mark.parametrize("text", ["2", "2:1:1", "0:1", "-2:1", "a:b", "1:1", "2e10:1", "inf:1"])
def test_parse_ratio_refuses(text: str) -> None:
    with pytest.raises(MarketError):
        parse_ratio(text)


def test_split_multiplier() -> None:
    assert split_multiplier(ONE, parse_ratio("2:1")) == 2 * ONE
    assert split_multiplier(ONE, parse_ratio("1:10")) == ONE // 10
    assert split_multiplier(ONE, parse_ratio("1:3")) == 333_333_333_333_333_333  # floor
    with pytest.raises(MarketError, match="outside"):
        split_multiplier(10**9, parse_ratio("1:10"))


def test_schedule_in_force_switches_at_effective_at() -> None:
    s = MultiplierSchedule(epoch=1, old=ONE, new=2 * ONE, effective_at=100)
    assert (s.in_force(99), s.epoch_at(99), s.pending(99)) == (ONE, 0, True)
    assert (s.in_force(100), s.epoch_at(100), s.pending(100)) == (2 * ONE, 1, False)
    assert s.to_json(99) == {"current": "1", "next": "2", "effectiveAt": 100, "epoch": 0}
    assert s.to_json(100) == {"current": "2", "next": None, "effectiveAt": None, "epoch": 1}
    assert MultiplierSchedule().in_force(0) == ONE


@given(
    share=st.integers(10**6, 10**14),  # ≥ $0.01·num: the rebased share price keeps 6 digits
    num=st.integers(1, 100),
    den=st.integers(1, 100),
    prior=st.integers(10**15, 10**21),
)
def test_rebase_keeps_the_token_price(share: int, num: int, den: int, prior: int) -> None:
    """The local feed's rebase at a split: the per-token price moves down by < 0.1 bps (+2 units)."""
    share *= num
    new = prior * num // den
    before = token_price(share, prior)
    after = token_price(rebase_share_price(share, prior, new), new)
    assert after <= before
    assert before - after <= before // 100_000 + 2


# ---------------------------------------------------------------------------------------- gap report


def test_gap_report_stop_after_a_gap() -> None:
    r = gap_report(trigger_price=100_00000000, oracle_price=96_00000000, fill_price=95_90000000)
    assert (r.slippage_bps, r.gap_bps) == (-410, -400)
    assert r.to_json() == {
        "triggerPrice": "100",
        "oraclePrice": "96",
        "fillPrice": "95.9",
        "slippageBps": -410,
        "gapBps": -400,
    }


def test_gap_report_rounds_toward_minus_infinity() -> None:
    assert signed_bps(99_999, 100_000) == -1  # −0.1 bps reported as −1, never 0
    assert signed_bps(100_001, 100_000) == 0  # +0.1 bps reported as 0, never +1
    assert signed_bps(100_000, 100_000) == 0
    with pytest.raises(ValueError):
        signed_bps(1, 0)


@given(trigger=st.integers(1, 10**16), fill=st.integers(0, 10**16))
def test_gap_report_never_flatters(trigger: int, fill: int) -> None:
    bps = gap_report(trigger, trigger, fill).slippage_bps
    assert bps * trigger <= (fill - trigger) * 10_000 < (bps + 1) * trigger


def test_fill_price() -> None:
    # 0.5 NVDA (18 decimals) sold for 90 USDC → 180.00000000
    assert fill_price(90_000_000, 5 * 10**17, 18) == 180_00000000
    assert fill_price(1, 3, 0) == 33  # 1e-6 USDC for 3 units of a 0-decimal token, floor
    with pytest.raises(ValueError):
        fill_price(1, 0, 18)


def test_calendar_cache_returns_one_instance() -> None:
    assert exchange_calendar("XNYS") is exchange_calendar("XNYS")


def test_weekday_windows_are_contiguous(nyse: ExchangeCalendar) -> None:
    """Tue 04:00 ET → Wed 20:00 ET is one run of quoting windows with no gap (a plain week)."""
    t = et("2025-06-17 04:00")
    while t < et("2025-06-18 20:00"):
        assert nyse.status_at(t) is not S.CLOSED, t
        t += timedelta(minutes=30)
