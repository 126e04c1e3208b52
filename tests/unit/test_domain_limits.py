"""relayer/domain/limits.py: TradeRouter._checkBuyLimits's order and rounding, case by case."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relayer.domain.limits import (
    AgentBook,
    AmountTooLargeError,
    LimitExceeded,
    Usage,
    apply_buy,
    check_buy,
    usage,
    utc_day,
)
from relayer.domain.track import DEFAULT_TRACKS, Track

USDC = 10**6
# funded: trade size 20%, turnover 400%, daily loss 5% of the allocation
FUNDED = DEFAULT_TRACKS["funded"]
ALLOCATION = 100_000 * USDC
FRESH = AgentBook(allocation=ALLOCATION, deployed=0, turnover_today=0, realized_pnl_today=0)


def test_usage_rounds_every_limit_down() -> None:
    track = replace(FUNDED, max_trade_size_bps=3333, max_daily_turnover_bps=7, max_daily_loss_bps=1)
    book = AgentBook(allocation=12_345, deployed=2_000, turnover_today=55, realized_pnl_today=-3)
    assert usage(book, track) == Usage(
        allocation=12_345,
        deployed=2_000,
        headroom=10_345,
        max_trade_size=4_114,  # 4114.4385
        turnover_today=55,
        max_daily_turnover=8,  # 8.6415
        realized_pnl_today=-3,
        max_daily_loss=1,  # 1.2345
    )


def test_usage_headroom_is_never_negative() -> None:
    # The operator lowered the allocation below what is deployed.
    assert usage(replace(FRESH, deployed=ALLOCATION + 1), FUNDED).headroom == 0


def test_usage_json_is_the_quote_allocation_block() -> None:
    book = AgentBook(ALLOCATION, 2_500 * USDC, 300 * USDC, -12_500_000)
    assert usage(book, FUNDED).to_json() == {
        "allocation": "100000",
        "deployed": "2500",
        "headroom": "97500",
        "maxTradeSize": "20000",
        "turnoverToday": "300",
        "maxDailyTurnover": "400000",
        "realizedPnlToday": "-12.5",
        "maxDailyLoss": "5000",
    }


MAX_TRADE = 20_000 * USDC
MAX_LOSS = 5_000 * USDC
MAX_TURNOVER = 400_000 * USDC

PASSES: list[Any] = [
    pytest.param(FRESH, 1, id="one_base_unit"),
    pytest.param(FRESH, MAX_TRADE, id="exactly_max_trade_size"),
    pytest.param(replace(FRESH, realized_pnl_today=-MAX_LOSS + 1), 1, id="loss_one_unit_short_of_limit"),
    pytest.param(replace(FRESH, realized_pnl_today=10**12), MAX_TRADE, id="profit_today"),
    pytest.param(replace(FRESH, deployed=ALLOCATION - 5), 5, id="exactly_the_headroom"),
    pytest.param(replace(FRESH, turnover_today=MAX_TURNOVER - MAX_TRADE), MAX_TRADE, id="turnover_to_max"),
]


@pytest.mark.parametrize(("book", "amount"), PASSES)
def test_buy_within_limits(book: AgentBook, amount: int) -> None:
    check_buy(book, FUNDED, amount)


FAILS: list[Any] = [
    pytest.param(
        replace(FRESH, realized_pnl_today=-MAX_LOSS),
        1,
        "daily_loss_limit_reached",
        {"realizedPnlToday": -MAX_LOSS, "maxDailyLoss": MAX_LOSS},
        id="loss_exactly_at_limit",
    ),
    pytest.param(
        replace(FRESH, realized_pnl_today=-MAX_LOSS - 1),
        1,
        "daily_loss_limit_reached",
        {"realizedPnlToday": -MAX_LOSS - 1, "maxDailyLoss": MAX_LOSS},
        id="loss_beyond_limit",
    ),
    pytest.param(
        FRESH,
        MAX_TRADE + 1,
        "trade_size_exceeded",
        {"usdcAmount": MAX_TRADE + 1, "maxTradeSize": MAX_TRADE},
        id="one_above_max_trade",
    ),
    pytest.param(
        replace(FRESH, deployed=ALLOCATION - 5),
        6,
        "headroom_exceeded",
        {"usdcAmount": 6, "headroom": 5},
        id="one_above_headroom",
    ),
    pytest.param(
        replace(FRESH, deployed=ALLOCATION + 7),
        1,
        "headroom_exceeded",
        {"usdcAmount": 1, "headroom": 0},
        id="over_deployed_has_no_headroom",
    ),
    pytest.param(
        replace(FRESH, turnover_today=MAX_TURNOVER - 9),
        10,
        "daily_turnover_exceeded",
        {"turnoverAfter": MAX_TURNOVER + 1, "maxDailyTurnover": MAX_TURNOVER},
        id="turnover_one_over",
    ),
    # Order: the first failing check in the contract's order is the one reported.
    pytest.param(
        AgentBook(ALLOCATION, ALLOCATION, MAX_TURNOVER, -MAX_LOSS),
        MAX_TRADE + 1,
        "daily_loss_limit_reached",
        {"realizedPnlToday": -MAX_LOSS, "maxDailyLoss": MAX_LOSS},
        id="loss_before_everything",
    ),
    pytest.param(
        AgentBook(ALLOCATION, ALLOCATION, MAX_TURNOVER, 0),
        MAX_TRADE + 1,
        "trade_size_exceeded",
        {"usdcAmount": MAX_TRADE + 1, "maxTradeSize": MAX_TRADE},
        id="trade_size_before_headroom",
    ),
    pytest.param(
        AgentBook(ALLOCATION, ALLOCATION, MAX_TURNOVER, 0),
        1,
        "headroom_exceeded",
        {"usdcAmount": 1, "headroom": 0},
        id="headroom_before_turnover",
    ),
    # allocation 0 makes every limit 0, and `0 ≤ −0` trips the loss check first.
    pytest.param(
        AgentBook(0, 0, 0, 0),
        1,
        "daily_loss_limit_reached",
        {"realizedPnlToday": 0, "maxDailyLoss": 0},
        id="zero_allocation_reads_as_loss_limit",
    ),
    # 1999 · 5 / 10⁴ rounds to 0: a tiny allocation is blocked from the start of the day.
    pytest.param(
        AgentBook(1_999, 0, 0, 0),
        1,
        "daily_loss_limit_reached",
        {"realizedPnlToday": 0, "maxDailyLoss": 0},
        id="loss_limit_rounding_to_zero",
    ),
]


@pytest.mark.parametrize(("book", "amount", "code", "details"), FAILS)
def test_buy_beyond_limits(book: AgentBook, amount: int, code: str, details: dict[str, int]) -> None:
    track = replace(FUNDED, max_daily_loss_bps=5) if book.allocation == 1_999 else FUNDED
    with pytest.raises(LimitExceeded) as info:
        check_buy(book, track, amount)
    assert (info.value.code, info.value.details) == (code, details)
    assert info.value.message == str(info.value)


def test_messages_are_in_usdc() -> None:
    with pytest.raises(LimitExceeded) as info:
        check_buy(FRESH, FUNDED, MAX_TRADE + 500_000)
    assert str(info.value) == "20000.5 USDC is above the maximum trade size of 20000 USDC"


@pytest.mark.parametrize("amount", [0, -1])
def test_zero_amount_is_refused_first(amount: int) -> None:
    # ZeroAmount comes before every limit, even on a book that has hit its loss limit.
    with pytest.raises(ValueError, match="ZeroAmount"):
        check_buy(replace(FRESH, realized_pnl_today=-(10**12)), FUNDED, amount)


def test_turnover_past_uint64_is_amount_too_large() -> None:
    huge = Track(10_000, 2**32 - 1, 10_000, 1000, 100, 1000, True, False)
    book = AgentBook(2**64 - 1, 0, 2**64 - 1, 0)
    with pytest.raises(AmountTooLargeError):
        check_buy(book, huge, 1)


# --- days ------------------------------------------------------------------------------------------

DAYS: list[Any] = [
    pytest.param(0, 0, id="epoch"),
    pytest.param(86_399, 0, id="last_second_of_day_0"),
    pytest.param(86_400, 1, id="first_second_of_day_1"),
    pytest.param(1_735_689_600, 20_089, id="2025_01_01"),
]


@pytest.mark.parametrize(("timestamp", "day"), DAYS)
def test_utc_day(timestamp: int, day: int) -> None:
    assert utc_day(timestamp) == day


BUSY = AgentBook(
    ALLOCATION, deployed=30_000 * USDC, turnover_today=90_000 * USDC, realized_pnl_today=-MAX_LOSS
)


def test_same_day_keeps_the_book() -> None:
    assert BUSY.roll_day(20_089, 1_735_689_600 + 86_399) is BUSY


def test_new_day_resets_turnover_and_pnl_but_not_deployed() -> None:
    rolled = BUSY.roll_day(20_089, 1_735_689_600 + 86_400)
    assert rolled == AgentBook(ALLOCATION, 30_000 * USDC, 0, 0)
    check_buy(rolled, FUNDED, 1)  # the loss limit no longer blocks


def test_any_other_day_resets_even_an_earlier_one() -> None:
    # `_rollDay` compares with `!=`: a book from a later day than `now` is reset too.
    assert BUSY.roll_day(20_090, 1_735_689_600) == AgentBook(ALLOCATION, 30_000 * USDC, 0, 0)


def test_apply_buy_books_turnover_and_deployed() -> None:
    assert apply_buy(BUSY, 5) == replace(BUSY, deployed=30_000 * USDC + 5, turnover_today=90_000 * USDC + 5)


# --- properties ------------------------------------------------------------------------------------

tracks = st.builds(
    Track,
    max_trade_size_bps=st.integers(1, 10_000),
    max_daily_turnover_bps=st.integers(1, 100_000),
    max_daily_loss_bps=st.integers(1, 10_000),
    max_stop_loss_bps=st.just(1000),
    min_take_profit_bps=st.just(100),
    max_take_profit_bps=st.just(1000),
    require_stop_loss=st.just(True),
    require_take_profit=st.just(False),
)
allocations = st.integers(0, 10**12)
books = st.builds(
    AgentBook,
    allocation=allocations,
    deployed=st.integers(0, 10**12),
    turnover_today=st.integers(0, 10**13),
    realized_pnl_today=st.integers(-(10**12), 10**12),
)


@given(books, tracks, st.integers(1, 10**12))
def test_check_buy_reports_the_first_violated_limit_in_contract_order(
    book: AgentBook, track: Track, amount: int
) -> None:
    # SPEC §1.5, each limit on its own; for an integer n, `n > ⌊x⌋ ⇔ n > x`, so the trade size and
    # turnover limits are compared as exact products here rather than with the module's floors.
    a = book.allocation
    checks = [
        ("daily_loss_limit_reached", book.realized_pnl_today <= -(a * track.max_daily_loss_bps // 10_000)),
        ("trade_size_exceeded", amount * 10_000 > a * track.max_trade_size_bps),
        ("headroom_exceeded", amount > a - book.deployed),
        (
            "daily_turnover_exceeded",
            (book.turnover_today + amount) * 10_000 > a * track.max_daily_turnover_bps,
        ),
    ]
    violated = [code for code, broken in checks if broken]
    try:
        check_buy(book, track, amount)
    except LimitExceeded as exc:
        assert violated and exc.code == violated[0]
    else:
        assert not violated
        after = apply_buy(book, amount)
        assert after.deployed <= a
        assert after.turnover_today <= a * track.max_daily_turnover_bps // 10_000
