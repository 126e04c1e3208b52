"""relayer/domain/exits.py: the contracts' exit arithmetic and executeExit's loop, case by case and by
property. Expected figures are worked out in human units with exact fractions, not with the module's
own integer formulas."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from math import floor
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from relayer.domain.exits import (
    MAX_PRICE,
    MIN_PRICE,
    Fire,
    PositionState,
    buy_within_slippage,
    decide_exits,
    display_trigger_price,
    exit_tokens,
    first_triggered,
    is_triggered,
    position_value,
    sale_basis_removed,
    sell_within_slippage,
    trigger_threshold,
    venue_buy_out,
    venue_sell_out,
)
from relayer.eip712 import ExitRule, TriggerType

SL, TP = TriggerType.STOP_LOSS, TriggerType.TAKE_PROFIT
TOKEN = 10**18  # one whole equity token
USDC = 10**6
PRICE = 10**8  # one USD in oracle units


def sl(bps: int, exit_bps: int = 10_000) -> ExitRule:
    return ExitRule(SL, bps, exit_bps)


def tp(bps: int, exit_bps: int = 10_000) -> ExitRule:
    return ExitRule(TP, bps, exit_bps)


# --- value and triggers ----------------------------------------------------------------------------

VALUES: list[Any] = [
    pytest.param(TOKEN, 182_35 * PRICE // 100, 18, 182_350_000, id="one_nvda"),
    pytest.param(10 * TOKEN, 100 * PRICE, 18, 1_000 * USDC, id="ten_at_100"),
    pytest.param(1, 99 * PRICE, 18, 0, id="one_wei_rounds_to_zero"),
    pytest.param(10**12 - 1, PRICE, 18, 0, id="just_below_one_usdc_unit"),
    pytest.param(10**12, PRICE, 18, 1, id="exactly_one_usdc_unit"),
    pytest.param(3, 1, 0, 0, id="zero_decimals_floor"),
    pytest.param(3, 34, 0, 1, id="zero_decimals_102_hundredths"),
]


@pytest.mark.parametrize(("size", "price", "decimals", "value"), VALUES)
def test_position_value_rounds_down(size: int, price: int, decimals: int, value: int) -> None:
    assert position_value(size, price, decimals) == value


TRIGGERS: list[Any] = [
    pytest.param(sl(-500), 950_000, 1_000_000, True, id="stop_exactly_at_minus_5pct"),
    pytest.param(sl(-500), 950_001, 1_000_000, False, id="stop_one_unit_above"),
    pytest.param(sl(-500), 0, 1_000_000, True, id="stop_at_zero_value"),
    pytest.param(tp(1000), 1_100_000, 1_000_000, True, id="take_exactly_at_plus_10pct"),
    pytest.param(tp(1000), 1_099_999, 1_000_000, False, id="take_one_unit_below"),
    pytest.param(sl(-10_000), 0, 1_000_000, True, id="stop_at_minus_100pct_only_at_zero"),
    pytest.param(sl(-10_000), 1, 1_000_000, False, id="stop_at_minus_100pct_not_above_zero"),
    pytest.param(sl(-(2**31)), 0, 1_000_000, True, id="factor_clamped_to_zero_for_stop"),
    pytest.param(sl(-(2**31)), 1, 1_000_000, False, id="clamped_stop_needs_zero_value"),
    pytest.param(tp(-20_000), 0, 1_000_000, True, id="factor_clamped_take_always_triggered"),
    pytest.param(tp(1), 1, 0, True, id="zero_basis_take_always"),
    pytest.param(sl(-1), 1, 0, False, id="zero_basis_stop_needs_zero_value"),
]


@pytest.mark.parametrize(("rule", "value", "cost", "expected"), TRIGGERS)
def test_is_triggered(rule: ExitRule, value: int, cost: int, expected: bool) -> None:
    assert is_triggered(rule, value, cost) is expected


def test_first_triggered_takes_the_lowest_armed_index() -> None:
    ladder = [tp(1000, 5000), tp(500, 5000), sl(-500)]
    assert first_triggered(ladder, 0b000, 1_200_000, 1_000_000) == 0
    assert first_triggered(ladder, 0b001, 1_200_000, 1_000_000) == 1
    assert first_triggered(ladder, 0b011, 1_200_000, 1_000_000) is None
    assert first_triggered(ladder, 0b000, 1_000_000, 1_000_000) is None
    assert first_triggered(ladder, 0b000, 900_000, 1_000_000) == 2


SALES: list[Any] = [
    pytest.param(1_000, 10, 10, 1_000, id="all_sold_removes_all"),
    pytest.param(1_000, 3, 1, 333, id="third_rounds_down"),
    pytest.param(1_000, 3, 2, 666, id="two_thirds_rounds_down"),
    pytest.param(7, 5, 2, 2, id="small_figures"),
    pytest.param(1_000, 10, 0, 0, id="nothing_sold"),
]


@pytest.mark.parametrize(("cost", "size", "sold", "removed"), SALES)
def test_sale_basis_removed(cost: int, size: int, sold: int, removed: int) -> None:
    assert sale_basis_removed(cost, size, sold) == removed


EXITS: list[Any] = [
    pytest.param(10_001, 10_000, 10_001, id="full_exit_is_the_whole_size"),
    pytest.param(10_001, 5_000, 5_000, id="half_rounds_down"),
    pytest.param(3, 3_333, 0, id="dust_rounds_to_zero"),
    pytest.param(10**18, 3_333, 333_300_000_000_000_000, id="a_third_of_a_token"),
    pytest.param(1, 9_999, 0, id="one_unit_never_partially_sold"),
]


@pytest.mark.parametrize(("size", "exit_bps", "tokens"), EXITS)
def test_exit_tokens(size: int, exit_bps: int, tokens: int) -> None:
    assert exit_tokens(size, exit_bps) == tokens


# --- venue and slippage ----------------------------------------------------------------------------


def human_buy(usdc_in: int, price: int, spread: int, decimals: int) -> int:
    tokens = Fraction(usdc_in, USDC) / (Fraction(price, PRICE) * Fraction(10_000 + spread, 10_000))
    return floor(tokens * Fraction(10) ** decimals)


def human_sell(tokens_in: int, price: int, spread: int, decimals: int) -> int:
    usd = Fraction(tokens_in, 10**decimals) * Fraction(price, PRICE) * Fraction(10_000 - spread, 10_000)
    return floor(usd * USDC)


VENUE: list[Any] = [
    pytest.param(1_000 * USDC, 182_35 * PRICE // 100, 10, 18, id="nvda_1000_usdc_10bps"),
    pytest.param(1, 598_40 * PRICE // 100, 1_000, 18, id="one_usdc_unit_max_spread"),
    pytest.param(10**11, 1, 0, 18, id="price_of_one_unit"),
    pytest.param(123_456, 3 * PRICE, 7, 0, id="zero_decimals"),
]


@pytest.mark.parametrize(("amount", "price", "spread", "decimals"), VENUE)
def test_venue_fills_at_the_oracle_price_with_the_spread(
    amount: int, price: int, spread: int, decimals: int
) -> None:
    assert venue_buy_out(amount, price, spread, decimals) == human_buy(amount, price, spread, decimals)
    tokens = amount * 10**12
    assert venue_sell_out(tokens, price, spread, decimals) == human_sell(tokens, price, spread, decimals)


def test_venue_known_figures() -> None:
    # 1000 USDC of NVDA at 182.35 + 0.1 %: 5.478... tokens; 1 token back at 182.35 − 0.1 %: 182.16765 USDC
    assert venue_buy_out(1_000 * USDC, 18_235_000_000, 10, 18) == 5_478_480_937_762_539_078
    assert venue_sell_out(TOKEN, 18_235_000_000, 10, 18) == 182_167_650


SLIPPAGE: list[Any] = [
    # buy: fill = usdc_in / tokens_out must be ≤ price · (1 + bps)
    pytest.param("buy", 101 * USDC, TOKEN, 100 * PRICE, 100, True, id="buy_fill_exactly_at_1pct"),
    pytest.param("buy", 101 * USDC + 1, TOKEN, 100 * PRICE, 100, False, id="buy_one_unit_over"),
    pytest.param("buy", 100 * USDC, TOKEN, 100 * PRICE, 0, True, id="buy_at_oracle_with_zero_bps"),
    pytest.param("buy", 1, 0, 100 * PRICE, 10_000, False, id="buy_nothing_received"),
    # sell: fill = usdc_out / tokens_in must be ≥ price · (1 − bps)
    pytest.param("sell", TOKEN, 99 * USDC, 100 * PRICE, 100, True, id="sell_fill_exactly_at_1pct"),
    pytest.param("sell", TOKEN, 99 * USDC - 1, 100 * PRICE, 100, False, id="sell_one_unit_under"),
    pytest.param("sell", TOKEN, 0, 100 * PRICE, 10_000, True, id="sell_for_nothing_at_100pct"),
]


@pytest.mark.parametrize(("side", "amount_in", "amount_out", "price", "bps", "ok"), SLIPPAGE)
def test_slippage(side: str, amount_in: int, amount_out: int, price: int, bps: int, ok: bool) -> None:
    check = buy_within_slippage if side == "buy" else sell_within_slippage
    assert check(amount_in, amount_out, price, bps, 18) is ok


@pytest.mark.parametrize("bps", [-1, 10_001])
def test_slippage_bps_beyond_100pct_is_refused(bps: int) -> None:
    # The router reverts InvalidSlippageBps before comparing; the sell formula would underflow.
    with pytest.raises(ValueError, match="max_slippage_bps"):
        buy_within_slippage(1, 1, 1, bps, 18)
    with pytest.raises(ValueError, match="max_slippage_bps"):
        sell_within_slippage(1, 1, 1, bps, 18)


@given(
    st.integers(1, 10**15),
    st.integers(1, 10**25),
    st.integers(1, 10**13),
    st.integers(0, 10_000),
)
def test_slippage_is_the_fill_price_bound(amount_in: int, amount_out: int, price: int, bps: int) -> None:
    oracle = Fraction(price, PRICE)
    buy_fill = Fraction(amount_in, USDC) / Fraction(amount_out, TOKEN)
    assert buy_within_slippage(amount_in, amount_out, price, bps, 18) == (
        buy_fill <= oracle * (1 + Fraction(bps, 10_000))
    )
    sell_fill = Fraction(amount_out, USDC) / Fraction(amount_in, TOKEN)
    assert sell_within_slippage(amount_in, amount_out, price, bps, 18) == (
        sell_fill >= oracle * (1 - Fraction(bps, 10_000))
    )


# --- decide_exits ----------------------------------------------------------------------------------

# 10 tokens bought for 1000 USDC: entry price 100 USD
TEN_AT_100 = PositionState(size=10 * TOKEN, cost_basis=1_000 * USDC, fired_mask=0, token_decimals=18)
SPEC_LADDER = [tp(1000, 5000), sl(-1000)]
TWO_TAKES = [tp(1000, 5000), tp(2000, 5000), sl(-1000)]

DECISIONS: list[Any] = [
    pytest.param(TEN_AT_100, [sl(-500), tp(1000)], 100 * PRICE, 10, [], id="hold_at_entry"),
    pytest.param(TEN_AT_100, [sl(-500), tp(1000)], 10_999_999_999, 10, [], id="hold_one_unit_below_take"),
    pytest.param(
        TEN_AT_100,
        SPEC_LADDER,
        110 * PRICE,
        10,
        [Fire(0, 5 * TOKEN, 549_450_000, 49_450_000, 5 * TOKEN, 500 * USDC)],
        id="spec_example_plus_10pct_sells_half_keeps_the_stop",
    ),
    pytest.param(
        TEN_AT_100,
        SPEC_LADDER,
        90 * PRICE,
        10,
        [Fire(1, 10 * TOKEN, 899_100_000, -100_900_000, 0, 0)],
        id="spec_example_minus_10pct_sells_all_take_never_fires",
    ),
    pytest.param(
        TEN_AT_100,
        TWO_TAKES,
        125 * PRICE,
        10,
        [
            Fire(0, 5 * TOKEN, 624_375_000, 124_375_000, 5 * TOKEN, 500 * USDC),
            Fire(
                1, 2_500_000_000_000_000_000, 312_187_500, 62_187_500, 2_500_000_000_000_000_000, 250 * USDC
            ),
        ],
        id="two_takes_cascade_in_one_call",
    ),
    pytest.param(
        PositionState(10 * TOKEN, 1_000 * USDC, 0b001, 18),
        TWO_TAKES,
        125 * PRICE,
        10,
        [Fire(1, 5 * TOKEN, 624_375_000, 124_375_000, 5 * TOKEN, 500 * USDC)],
        id="fired_rule_stays_disarmed",
    ),
    pytest.param(
        PositionState(10 * TOKEN, 1_000 * USDC, 0b011, 18),
        TWO_TAKES,
        125 * PRICE,
        10,
        [],
        id="all_takes_spent",
    ),
    pytest.param(
        TEN_AT_100,
        [tp(1000), sl(-500)],
        150 * PRICE,
        0,
        [Fire(0, 10 * TOKEN, 1_500 * USDC, 500 * USDC, 0, 0)],
        id="full_exit_in_the_middle_ends_the_loop",
    ),
    pytest.param(
        # 1 unit of a 0-decimals token: half of it rounds to nothing, yet the rule is spent.
        PositionState(size=1, cost_basis=100, fired_mask=0, token_decimals=0),
        [tp(1000, 5000), tp(2000)],
        12_000,
        0,
        [Fire(0, 0, 0, 0, 1, 100), Fire(1, 1, 120, 20, 0, 0)],
        id="dust_fires_without_selling",
    ),
    pytest.param(
        # Value ⌊5·163/100⌋ = 8 ≥ 7·1.01 fires the take-profit; 2 sold, basis 7 → 5 (rounded up),
        # and the rest, worth ⌊3·163/100⌋ = 4 ≤ 5·0.99, now trips the stop at the same price.
        PositionState(size=5, cost_basis=7, fired_mask=0, token_decimals=0),
        [tp(100, 5000), sl(-100)],
        163,
        0,
        [Fire(0, 2, 3, 1, 3, 5), Fire(1, 3, 4, -1, 0, 0)],
        id="rounding_after_a_take_profit_trips_the_stop",
    ),
]


@pytest.mark.parametrize(("position", "rules", "price", "spread", "fires"), DECISIONS)
def test_decide_exits(
    position: PositionState, rules: list[ExitRule], price: int, spread: int, fires: list[Fire]
) -> None:
    assert decide_exits(position, rules, price, spread) == fires


# --- trigger thresholds ----------------------------------------------------------------------------

THRESHOLDS: list[Any] = [
    # ⌊10·p/10²⁰·10¹⁸⌋ ≤ 950 USDC holds up to p = 95.00000009: the value rounds down.
    pytest.param(sl(-500), 10 * TOKEN, 1_000 * USDC, 18, 9_500_000_009, id="stop_minus_5pct"),
    pytest.param(tp(1000), 10 * TOKEN, 1_000 * USDC, 18, 11_000_000_000, id="take_plus_10pct"),
    pytest.param(tp(1000), 3 * TOKEN, 100 * USDC, 18, 3_666_666_667, id="take_rounds_price_up"),
    pytest.param(sl(-10_000), 10 * TOKEN, 1_000 * USDC, 18, 9, id="stop_minus_100pct_at_zero_value"),
    pytest.param(sl(-500), 10**30, 1, 18, None, id="stop_never_when_one_unit_prices_above"),
    pytest.param(tp(2**31 - 1), 1, 2**64 - 1, 18, None, id="take_never_below_max_price"),
    pytest.param(tp(-20_000), TOKEN, 1_000 * USDC, 18, MIN_PRICE, id="clamped_take_from_min_price"),
    pytest.param(sl(-500), 1, 2**64 - 1, 18, MAX_PRICE, id="stop_up_to_max_price"),
    pytest.param(sl(-500), 0, 1_000 * USDC, 18, MAX_PRICE, id="no_size_stop_always"),
    pytest.param(tp(1000), 0, 1_000 * USDC, 18, None, id="no_size_take_never"),
    pytest.param(tp(1000), 0, 0, 18, MIN_PRICE, id="no_size_no_basis_take_always"),
]


@pytest.mark.parametrize(("rule", "size", "cost", "decimals", "threshold"), THRESHOLDS)
def test_trigger_threshold(
    rule: ExitRule, size: int, cost: int, decimals: int, threshold: int | None
) -> None:
    assert trigger_threshold(rule, size, cost, decimals) == threshold


DISPLAY: list[Any] = [
    pytest.param(sl(-500), 10 * TOKEN, 1_000 * USDC, "95.00000000", id="stop_minus_5pct"),
    pytest.param(tp(1000), 10 * TOKEN, 1_000 * USDC, "110.00000000", id="take_plus_10pct"),
    pytest.param(sl(-500), TOKEN, 182_350_000, "173.23250000", id="nvda_entry"),
    pytest.param(tp(1000), 3 * TOKEN, 100 * USDC, "36.66666667", id="repeating_rounds_to_8_places"),
    pytest.param(sl(0), 2 * 10**20, 1, "0E-8", id="half_rounds_to_even_down"),
    pytest.param(sl(0), 2 * 10**20, 3, "2E-8", id="half_rounds_to_even_up"),
]


@pytest.mark.parametrize(("rule", "size", "cost", "text"), DISPLAY)
def test_display_trigger_price(rule: ExitRule, size: int, cost: int, text: str) -> None:
    price = display_trigger_price(rule, size, cost, 18)
    assert price == Decimal(text) and str(price) == text


def test_display_trigger_price_needs_a_size() -> None:
    with pytest.raises(ValueError, match="entry price"):
        display_trigger_price(sl(-500), 0, 1, 18)


# --- properties ------------------------------------------------------------------------------------

sizes = st.integers(1, 10**30)
costs = st.integers(1, 2**64 - 1)
any_rule = st.builds(
    ExitRule,
    trigger_type=st.sampled_from(TriggerType),
    trigger_bps=st.one_of(st.integers(-12_000, 60_000), st.integers(-(2**31), 2**31 - 1)),
    exit_bps=st.just(10_000),
)


def triggered_at(rule: ExitRule, size: int, cost: int, price: int) -> bool:
    return is_triggered(rule, position_value(size, price, 18), cost)


@given(any_rule, sizes, costs, st.data())
def test_threshold_is_the_exact_boundary(rule: ExitRule, size: int, cost: int, data: st.DataObject) -> None:
    t = trigger_threshold(rule, size, cost, 18)
    probe = data.draw(st.integers(MIN_PRICE, MAX_PRICE) | st.integers(MIN_PRICE, 10**14), label="price")
    if t is None:
        for p in (MIN_PRICE, MAX_PRICE, probe):
            assert not triggered_at(rule, size, cost, p)
        return
    assert MIN_PRICE <= t <= MAX_PRICE
    assert triggered_at(rule, size, cost, t)
    if rule.trigger_type == SL:
        if t < MAX_PRICE:
            assert not triggered_at(rule, size, cost, t + 1)
        assert triggered_at(rule, size, cost, probe) == (probe <= t)
    else:
        if t > MIN_PRICE:
            assert not triggered_at(rule, size, cost, t - 1)
        assert triggered_at(rule, size, cost, probe) == (probe >= t)


@given(any_rule, sizes, costs, st.integers(MIN_PRICE, 10**14), st.integers(MIN_PRICE, 10**14))
def test_triggering_is_monotone_in_price(rule: ExitRule, size: int, cost: int, p1: int, p2: int) -> None:
    low, high = sorted((p1, p2))
    if rule.trigger_type == SL:
        assert triggered_at(rule, size, cost, high) <= triggered_at(rule, size, cost, low)
    else:
        assert triggered_at(rule, size, cost, low) <= triggered_at(rule, size, cost, high)


ladder_rules = st.builds(
    ExitRule,
    trigger_type=st.sampled_from(TriggerType),
    trigger_bps=st.one_of(st.integers(-10_000, -1), st.integers(1, 20_000)),
    exit_bps=st.integers(1, 10_000) | st.sampled_from([1, 3333, 5000, 9999, 10_000]),
)
ladders = st.lists(ladder_rules, min_size=0, max_size=7).map(
    lambda rs: [*rs, ExitRule(TriggerType.STOP_LOSS, -500, 10_000)]
)
positions = st.builds(
    PositionState,
    size=st.integers(1, 10**24) | st.integers(1, 100),
    cost_basis=st.integers(1, 10**12),
    fired_mask=st.integers(0, 255),
    token_decimals=st.sampled_from([18, 18, 6, 0]),
)


@given(positions, ladders, st.integers(MIN_PRICE, 10**13), st.integers(0, 1000))
def test_decide_exits_is_executeexits_loop(
    position: PositionState, rules: list[ExitRule], price: int, spread: int
) -> None:
    fires = decide_exits(position, rules, price, spread)
    size, cost, mask = position.size, position.cost_basis, position.fired_mask
    for fire in fires:
        rule = rules[fire.rule_index]
        # it was the lowest armed rule triggered at the state before it
        value = position_value(size, price, position.token_decimals)
        assert first_triggered(rules, mask, value, cost) == fire.rule_index
        assert 0 <= fire.tokens_in <= size
        removed = fire.usdc_out - fire.realized_pnl
        assert 0 <= removed <= cost
        assert fire.usdc_out == venue_sell_out(fire.tokens_in, price, spread, position.token_decimals)
        size, cost, mask = size - fire.tokens_in, cost - removed, mask | 1 << fire.rule_index
        assert (fire.size_after, fire.cost_basis_after) == (size, cost)
        if rule.exit_bps == 10_000:
            assert size == 0 and cost == 0
        assert (size == 0) == (cost == 0), "basis remains exactly while tokens do"
    assert sum(f.tokens_in for f in fires) <= position.size
    assert sum(f.usdc_out - f.realized_pnl for f in fires) <= position.cost_basis
    assert len({f.rule_index for f in fires}) == len(fires)
    if size:
        # nothing more would fire: the contract's loop stopped here too
        value = position_value(size, price, position.token_decimals)
        assert first_triggered(rules, mask, value, cost) is None


@given(st.integers(3, 10**30), costs, st.integers(0, 1000))
def test_three_rung_ladder_leaves_no_dust(size: int, cost: int, spread: int) -> None:
    rungs = [tp(100, 3333), tp(200, 3333), tp(300)]
    position = PositionState(size, cost, 0, 18)
    # A price far above every rung fires all three in one call: even the third of the size left
    # for the last rung is worth over 4/3 of the whole basis, rounding included.
    high = (cost * 4 + 4) * 10**20 // size + 1
    assume(high <= MAX_PRICE)
    fires = decide_exits(position, rungs, high, spread)
    assert [f.rule_index for f in fires] == [0, 1, 2]
    assert sum(f.tokens_in for f in fires) == size
    assert (fires[-1].size_after, fires[-1].cost_basis_after) == (0, 0)
    assert sum(f.usdc_out - f.realized_pnl for f in fires) == cost


@given(st.integers(3, 10**30), st.integers(1, 10**12))
def test_three_rung_ladder_rung_by_rung_leaves_no_dust(size: int, cost: int) -> None:
    rungs = [tp(100, 3333), tp(200, 3333), tp(300)]
    position = PositionState(size, cost, 0, 18)
    sold = 0
    while position.size:
        # walk the price up to the next armed rung's exact threshold
        i = next(j for j in range(len(rungs)) if not position.fired_mask & 1 << j)
        t = trigger_threshold(rungs[i], position.size, position.cost_basis, 18)
        assume(t is not None)
        assert t is not None
        fires = decide_exits(position, rungs, t, 0)
        assert fires and fires[0].rule_index == i
        last = fires[-1]
        sold += sum(f.tokens_in for f in fires)
        mask = position.fired_mask | sum(1 << f.rule_index for f in fires)
        position = PositionState(last.size_after, last.cost_basis_after, mask, 18)
    assert (position.cost_basis, sold) == (0, size)
