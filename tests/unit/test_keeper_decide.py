"""relayer/keeper/keeper.py `decide`: the keeper's pure verdict for one position at one oracle price —
what `executeExit` will fire, or why it holds. Expected fills are worked out here in human units with
exact fractions (venue: oracle price minus the spread, rounded down to a USDC base unit)."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from math import floor

import pytest

from relayer.domain.exits import Fire
from relayer.eip712 import ExitRule, TriggerType
from relayer.keeper.keeper import Hold, decide
from relayer.state import PositionInfo, PriceInfo

SL, TP = TriggerType.STOP_LOSS, TriggerType.TAKE_PROFIT
TOKEN = 10**18
USDC = 10**6
PRICE = 10**8
SPREAD_BPS = 10
MAX_AGE_S = 3600
UPDATED_AT = 1_700_000_000
NOW = UPDATED_AT + 60

LADDER = (ExitRule(TP, 1000, 5000), ExitRule(SL, -1000, 10_000))  # +10 %: sell half; −10 %: sell all
GAP_LADDER = (ExitRule(TP, 500, 5000), ExitRule(TP, 1000, 10_000), ExitRule(SL, -1000, 10_000))

# 10 tokens for 1000 USDC: entry price 100 USD.
POSITION = PositionInfo(
    position_id=7,
    agent_id=1,
    token="0x" + "11" * 20,
    size=10 * TOKEN,
    cost_basis=1000 * USDC,
    exits_hash="0x" + "ab" * 32,
    rules=LADDER,
    fired_mask=0,
    open=True,
    opened_at=UPDATED_AT - 100,
    open_tx="0x" + "cd" * 32,
)


def usd_price(dollars: str) -> PriceInfo:
    return PriceInfo(price=int(Fraction(dollars) * PRICE), updated_at=UPDATED_AT, round_id=3)


def sale_usdc(tokens: int, dollars: str) -> int:
    """USDC base units the venue pays for `tokens` base units at `dollars` minus the spread."""
    return floor(Fraction(tokens, TOKEN) * Fraction(dollars) * Fraction(10_000 - SPREAD_BPS, 10_000) * USDC)


def verdict(p: PositionInfo, price: PriceInfo, now: int = NOW) -> list[Fire] | Hold:
    return decide(p, price, now=now, max_price_age_s=MAX_AGE_S, spread_bps=SPREAD_BPS, token_decimals=18)


# --- holds -----------------------------------------------------------------------------------------


def test_closed_position_holds() -> None:
    closed = replace(POSITION, open=False)
    assert verdict(closed, usd_price("50")) == Hold("position closed")


def test_closed_wins_over_a_stale_price() -> None:
    closed = replace(POSITION, open=False)
    assert verdict(closed, usd_price("50"), now=UPDATED_AT + MAX_AGE_S + 1) == Hold("position closed")


def test_price_exactly_at_the_age_limit_is_fresh() -> None:
    # The router reverts only when block.timestamp > updatedAt + maxPriceAge.
    fires = verdict(POSITION, usd_price("85"), now=UPDATED_AT + MAX_AGE_S)
    assert isinstance(fires, list)
    assert [f.rule_index for f in fires] == [1]


def test_price_one_second_past_the_age_limit_is_stale() -> None:
    held = verdict(POSITION, usd_price("85"), now=UPDATED_AT + MAX_AGE_S + 1)
    assert isinstance(held, Hold)
    assert held.reason.startswith("stale price")
    assert str(UPDATED_AT) in held.reason and str(MAX_AGE_S) in held.reason


@pytest.mark.parametrize("dollars", ["100", "109.99", "90.01", "100.5"])
def test_not_triggered_holds(dollars: str) -> None:
    assert verdict(POSITION, usd_price(dollars)) == Hold("not triggered")


def test_fired_rule_is_not_fired_again() -> None:
    half = replace(POSITION, size=5 * TOKEN, cost_basis=500 * USDC, fired_mask=0b01)
    assert verdict(half, usd_price("130")) == Hold("not triggered")


def test_all_rules_fired_holds_whatever_the_price() -> None:
    spent = replace(POSITION, fired_mask=0b11)
    for dollars in ("1", "100", "1000"):
        assert verdict(spent, usd_price(dollars)) == Hold("not triggered")


# --- fires -----------------------------------------------------------------------------------------


def test_stop_loss_sells_everything() -> None:
    usdc = sale_usdc(10 * TOKEN, "90")  # 900 · 0.999 = 899.1 USDC
    assert usdc == 899_100_000
    assert verdict(POSITION, usd_price("90")) == [
        Fire(
            rule_index=1,
            tokens_in=10 * TOKEN,
            usdc_out=usdc,
            realized_pnl=usdc - 1000 * USDC,
            size_after=0,
            cost_basis_after=0,
        )
    ]


def test_take_profit_sells_half_and_keeps_the_stop() -> None:
    usdc = sale_usdc(5 * TOKEN, "110")  # 550 · 0.999 = 549.45 USDC
    assert verdict(POSITION, usd_price("110")) == [
        Fire(
            rule_index=0,
            tokens_in=5 * TOKEN,
            usdc_out=usdc,
            realized_pnl=usdc - 500 * USDC,
            size_after=5 * TOKEN,
            cost_basis_after=500 * USDC,
        )
    ]


def test_take_profit_boundary_is_the_exact_entry_plus_bps() -> None:
    # value 1100 USDC = basis · 1.1 exactly: pnlBps == triggerBps is triggered.
    fires = verdict(POSITION, usd_price("110"))
    assert isinstance(fires, list) and fires[0].rule_index == 0
    assert verdict(POSITION, usd_price("109.99999999")) == Hold("not triggered")


def test_two_rules_fire_on_one_gap_move_in_array_order() -> None:
    p = replace(POSITION, rules=GAP_LADDER)
    first = sale_usdc(5 * TOKEN, "115")
    second = sale_usdc(5 * TOKEN, "115")
    assert verdict(p, usd_price("115")) == [
        Fire(0, 5 * TOKEN, first, first - 500 * USDC, 5 * TOKEN, 500 * USDC),
        Fire(1, 5 * TOKEN, second, second - 500 * USDC, 0, 0),
    ]


def test_gap_move_past_the_first_rung_only_fires_it() -> None:
    p = replace(POSITION, rules=GAP_LADDER)
    fires = verdict(p, usd_price("107"))
    assert isinstance(fires, list)
    assert [f.rule_index for f in fires] == [0]


def test_fired_mask_skips_to_the_next_armed_rule() -> None:
    # Rule 0 fired earlier: a +15 % move now fires only rule 1, on what is left.
    p = replace(POSITION, rules=GAP_LADDER, size=5 * TOKEN, cost_basis=500 * USDC, fired_mask=0b001)
    usdc = sale_usdc(5 * TOKEN, "115")
    assert verdict(p, usd_price("115")) == [Fire(1, 5 * TOKEN, usdc, usdc - 500 * USDC, 0, 0)]


def test_stop_after_a_partial_take_profit_sells_the_rest() -> None:
    half = replace(POSITION, size=5 * TOKEN, cost_basis=500 * USDC, fired_mask=0b01)
    usdc = sale_usdc(5 * TOKEN, "80")
    assert verdict(half, usd_price("80")) == [Fire(1, 5 * TOKEN, usdc, usdc - 500 * USDC, 0, 0)]


def test_crash_through_the_stop_never_fires_the_take_profit() -> None:
    fires = verdict(POSITION, usd_price("1"))
    assert isinstance(fires, list)
    assert [f.rule_index for f in fires] == [1]


def test_dust_rung_fires_without_selling_and_the_next_rung_closes() -> None:
    # One base unit is worth 0 USDC at any sane price, so every stop is triggered; half of one unit
    # rounds down to nothing: rule 0 is spent selling 0, rule 1 sells the unit for 0 USDC.
    dust = replace(
        POSITION,
        size=1,
        cost_basis=1,
        rules=(ExitRule(SL, -1000, 5000), ExitRule(SL, -2000, 10_000)),
    )
    assert verdict(dust, usd_price("100")) == [
        Fire(0, 0, 0, 0, 1, 1),
        Fire(1, 1, 0, -1, 0, 0),
    ]


def test_empty_position_holds() -> None:
    # A position whose size reached 0 without its close being seen yet: nothing left to sell.
    empty = replace(POSITION, size=0, cost_basis=0)
    assert verdict(empty, usd_price("50")) == Hold("not triggered")


def test_decide_reads_only_its_arguments() -> None:
    # Same inputs, same answer; the position is not mutated.
    before = replace(POSITION)
    assert verdict(POSITION, usd_price("90")) == verdict(POSITION, usd_price("90"))
    assert before == POSITION
