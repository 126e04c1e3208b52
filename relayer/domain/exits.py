"""Exit-ladder arithmetic and the exit decision, as exact integer mirrors of the contracts.

Every formula here is the Solidity one with the same rounding (``Math.mulDiv`` and ``/`` round
down): ``TradeRouter.executeExit`` / ``_fireRule`` / ``_applySale``, ``ExitLadder.isTriggered`` /
``firstTriggered``, ``OraclePriceVenue.quoteBuy`` / ``quoteSell`` and the router's slippage checks.
The keeper fires only what ``decide_exits`` says the contract will fire, so a rounding difference
would be a revert paid for, or a stop that is not sent. ``tests/integration/test_domain_vs_contract.py``
compares the two fill by fill.

Units: sizes in token base units, money in USDC base units (6 decimals), prices in the oracle's
8 decimals. ``value = size · price / 10^(decimals + 2)`` converts the first into the second.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Final

from relayer.eip712 import ExitRule, TriggerType

BPS: Final = 10_000
PRICE_DECIMALS: Final = 8
USDC_DECIMALS: Final = 6
# What PriceOracle can report: `setPrice` rejects 0 and anything above uint128.
MIN_PRICE: Final = 1
MAX_PRICE: Final = 2**128 - 1


def _scale(token_decimals: int) -> int:
    """``TradeRouter._scale``: 10^decimals (token) · 10^8 (oracle) / 10^6 (USDC)."""
    scale: int = 10 ** (token_decimals + PRICE_DECIMALS - USDC_DECIMALS)
    return scale


def position_value(size: int, price: int, token_decimals: int) -> int:
    """USDC base units, rounded down: ``Math.mulDiv(size, price, scale)``."""
    return size * price // _scale(token_decimals)


def _factor(rule: ExitRule) -> int:
    # 10⁴ + triggerBps, floored at 0 as the contract does so a stop below −100% stays defined.
    return max(0, BPS + rule.trigger_bps)


def is_triggered(rule: ExitRule, value: int, cost_basis: int) -> bool:
    """``ExitLadder.isTriggered``: ``pnlBps ≤ / ≥ triggerBps`` cross-multiplied, nothing rounded."""
    threshold = cost_basis * _factor(rule)
    scaled_value = value * BPS
    if rule.trigger_type == TriggerType.STOP_LOSS:
        return scaled_value <= threshold
    return scaled_value >= threshold


def first_triggered(rules: Sequence[ExitRule], fired_mask: int, value: int, cost_basis: int) -> int | None:
    """``ExitLadder.firstTriggered``: the lowest-index armed (bit not set) triggered rule, or None."""
    for i, rule in enumerate(rules):
        if fired_mask & (1 << i) == 0 and is_triggered(rule, value, cost_basis):
            return i
    return None


def sale_basis_removed(cost_basis: int, size: int, sold: int) -> int:
    """``_applySale``: the basis leaves in proportion, rounded down (so what remains rounds up);
    selling everything removes all of it."""
    if sold == size:
        return cost_basis
    return cost_basis * sold // size


def exit_tokens(size: int, exit_bps: int) -> int:
    """``_fireRule``: ``exitBps`` of the remaining size, rounded down; 10000 is exactly all of it."""
    if exit_bps == BPS:
        return size
    return size * exit_bps // BPS


def venue_buy_out(usdc_in: int, price: int, spread_bps: int, token_decimals: int) -> int:
    """``OraclePriceVenue.quoteBuy``: tokens for ``usdc_in`` at the oracle price plus the spread."""
    return usdc_in * (_scale(token_decimals) * BPS) // (price * (BPS + spread_bps))


def venue_sell_out(tokens_in: int, price: int, spread_bps: int, token_decimals: int) -> int:
    """``OraclePriceVenue.quoteSell``: USDC for ``tokens_in`` at the oracle price minus the spread."""
    return tokens_in * (price * (BPS - spread_bps)) // (_scale(token_decimals) * BPS)


def _check_slippage_bps(max_slippage_bps: int) -> None:
    if not 0 <= max_slippage_bps <= BPS:
        # The router reverts InvalidSlippageBps before it compares anything.
        raise ValueError(f"max_slippage_bps must be within 0..{BPS}, got {max_slippage_bps}")


def buy_within_slippage(
    usdc_in: int, tokens_out: int, price: int, max_slippage_bps: int, token_decimals: int
) -> bool:
    """``_buy``: fill price ``usdc_in / tokens_out ≤ price · (1 + bps/10⁴)``, cross-multiplied."""
    _check_slippage_bps(max_slippage_bps)
    lhs = usdc_in * _scale(token_decimals) * BPS
    return not lhs > tokens_out * price * (BPS + max_slippage_bps)


def sell_within_slippage(
    tokens_in: int, usdc_out: int, price: int, max_slippage_bps: int, token_decimals: int
) -> bool:
    """``reducePosition``: fill price ``usdc_out / tokens_in ≥ price · (1 − bps/10⁴)``, cross-multiplied."""
    _check_slippage_bps(max_slippage_bps)
    lhs = usdc_out * _scale(token_decimals) * BPS
    return not lhs < tokens_in * price * (BPS - max_slippage_bps)


@dataclass(frozen=True)
class PositionState:
    """What an exit decision reads: ``TradeRouter.position(id)``'s size, cost basis and fired
    rules (bit i = rule i fired since the ladder was set), and the token's decimals."""

    size: int
    cost_basis: int
    fired_mask: int
    token_decimals: int


@dataclass(frozen=True)
class Fire:
    """One rule firing, as the contract's ``ExitExecuted`` fill will report it."""

    rule_index: int
    tokens_in: int
    usdc_out: int
    realized_pnl: int
    size_after: int
    cost_basis_after: int


def decide_exits(
    position: PositionState, rules: Sequence[ExitRule], price: int, spread_bps: int
) -> list[Fire]:
    """What one ``executeExit`` at oracle ``price`` will do: the fills in order, or ``[]`` to hold.

    The contract's loop exactly: while any size is left, value the position at the current size
    (rounded down), fire the lowest-index armed triggered rule, sell ``exitBps`` of what is left
    through the venue, remove basis in proportion, and look again with the new size and basis. A
    rule whose share rounds to zero tokens still fires (and is spent) without selling anything.
    ``[]`` is exactly the case in which the contract reverts ``ExitNotTriggered``.
    """
    size, cost, mask = position.size, position.cost_basis, position.fired_mask
    fires: list[Fire] = []
    while size != 0:
        value = position_value(size, price, position.token_decimals)
        i = first_triggered(rules, mask, value, cost)
        if i is None:
            break
        mask |= 1 << i
        tokens = exit_tokens(size, rules[i].exit_bps)
        usdc = 0 if tokens == 0 else venue_sell_out(tokens, price, spread_bps, position.token_decimals)
        removed = sale_basis_removed(cost, size, tokens)
        size -= tokens
        cost -= removed
        fires.append(Fire(i, tokens, usdc, usdc - removed, size, cost))
    return fires


def trigger_threshold(rule: ExitRule, size: int, cost_basis: int, token_decimals: int) -> int | None:
    """The exact oracle price where ``rule`` starts to be triggered for this size and basis.

    StopLoss: the largest price at which it is triggered (triggered ⇔ ``price ≤ threshold``);
    TakeProfit: the smallest (triggered ⇔ ``price ≥ threshold``). Prices range over what the
    oracle can report, ``MIN_PRICE..MAX_PRICE``; ``None`` means triggered at none of them. It
    depends on size and basis, not only on their ratio, so it changes with every fill, add or reduce.

    Derived from the floors, not approximated. With ``S = 10^(decimals+2)``, ``C = cost·factor``:
    a stop holds ⇔ ``⌊size·p/S⌋·10⁴ ≤ C`` ⇔ ``⌊size·p/S⌋ ≤ ⌊C/10⁴⌋ = V`` ⇔ ``size·p < (V+1)·S``
    ⇔ ``p ≤ ((V+1)·S − 1) // size``; a take-profit holds ⇔ ``⌊size·p/S⌋ ≥ ⌈C/10⁴⌉ = W``
    ⇔ ``size·p ≥ W·S`` ⇔ ``p ≥ ⌈W·S/size⌉``.
    """
    scale = _scale(token_decimals)
    c = cost_basis * _factor(rule)
    if rule.trigger_type == TriggerType.STOP_LOSS:
        if size == 0:
            return MAX_PRICE  # a value of 0 is at or below any non-negative threshold
        highest = ((c // BPS + 1) * scale - 1) // size
        return None if highest < MIN_PRICE else min(highest, MAX_PRICE)
    w = -(-c // BPS)
    if size == 0:
        return MIN_PRICE if w == 0 else None
    lowest = -(-(w * scale) // size)
    return None if lowest > MAX_PRICE else max(lowest, MIN_PRICE)


def display_trigger_price(rule: ExitRule, size: int, cost_basis: int, token_decimals: int) -> Decimal:
    """SPEC §3's trigger price for people: ``entryPrice · (10⁴ + triggerBps) / 10⁴`` in USD,
    rounded half-even to the oracle's 8 decimals. Not the firing boundary: ``trigger_threshold`` is,
    and it sits up to ``10^(decimals+2) / size`` price units away because the contract rounds the
    value down to whole USDC units (10 tokens at 100 USD, stop −5 %: 95.00000000 shown, fires at
    or below 95.00000009)."""
    if size <= 0:
        raise ValueError("a position without size has no entry price")
    # entry price (USD per whole token) = (cost / 10^6) / (size / 10^decimals)
    exact = Fraction(cost_basis * 10**token_decimals, size * 10**USDC_DECIMALS) * Fraction(_factor(rule), BPS)
    # round() on a Fraction is exact and rounds half to even: no double rounding through a context.
    return Decimal(round(exact * 10**PRICE_DECIMALS)).scaleb(-PRICE_DECIMALS)
