"""EIP-1559 fees for the relayer's transactions: the first offer and the bump of a stuck one.

Pure arithmetic, no I/O. `base_fee_wei` is always the *next* block's base fee (the last entry of
`eth_feeHistory(1, "latest")`), since that is the block the transaction is competing for.

A replacement at the same nonce is accepted by geth-style pools only when BOTH `maxFeePerGas` and
`maxPriorityFeePerGas` rise by at least 10 % (`REPLACEMENT_MIN_BPS`); the relayer bumps by 12.5 %
by default so that rounding never lands it just under the line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

BPS: Final = 10_000
REPLACEMENT_MIN_BPS: Final = 1_000
GWEI: Final = 10**9


@dataclass(frozen=True)
class Fees:
    max_fee_per_gas: int
    max_priority_fee_per_gas: int


@dataclass(frozen=True)
class FeePolicy:
    """What the relayer is willing to pay.

    `max_fee_cap_wei` bounds every attempt (a bump stops there); `None` removes the bound, which
    only makes sense on a development chain.
    """

    tip_wei: int = GWEI
    base_fee_multiplier: int = 2
    bump_bps: int = 1_250
    max_fee_cap_wei: int | None = 500 * GWEI

    def __post_init__(self) -> None:
        if self.tip_wei < 0:
            raise ValueError("tip_wei must be ≥ 0")
        if self.base_fee_multiplier < 1:
            raise ValueError("base_fee_multiplier must be ≥ 1")
        if self.bump_bps < REPLACEMENT_MIN_BPS:
            raise ValueError(f"bump_bps must be ≥ {REPLACEMENT_MIN_BPS}: nodes refuse smaller replacements")
        if self.max_fee_cap_wei is not None and self.max_fee_cap_wei <= 0:
            raise ValueError("max_fee_cap_wei must be > 0 (or None for no cap)")


@dataclass(frozen=True)
class AtCap:
    """No valid replacement fits under the cap: keep the current attempt and wait."""

    current: Fees
    cap_wei: int


def bumped(value: int, bps: int) -> int:
    """`value` raised by `bps` basis points, rounded up (a replacement must reach the threshold)."""
    return (value * (BPS + bps) + BPS - 1) // BPS


def initial_fees(base_fee_wei: int, policy: FeePolicy) -> Fees:
    """maxFee = multiplier·baseFee + tip, maxPriorityFee = tip; both under the cap."""
    tip = policy.tip_wei
    max_fee = policy.base_fee_multiplier * base_fee_wei + tip
    if policy.max_fee_cap_wei is not None and max_fee > policy.max_fee_cap_wei:
        max_fee = policy.max_fee_cap_wei
        tip = min(tip, max_fee)
    return Fees(max_fee_per_gas=max_fee, max_priority_fee_per_gas=tip)


def next_fees(current: Fees, base_fee_wei: int, policy: FeePolicy) -> Fees | AtCap:
    """The fees of a replacement for a stuck attempt.

    Cases:
    - BUMP: both fees rise by `bump_bps` (the tip at least to the policy's tip).
    - CATCH_UP: the base fee outran the old offer; maxFee becomes multiplier·baseFee + tip when that
      is higher than the plain bump.
    - CAPPED: the result is clipped to the cap; still returned while both fees stay ≥ +10 %.
    - AT_CAP: clipping leaves less than the +10 % a node demands: `AtCap`, send nothing new.
    """
    tip = max(bumped(current.max_priority_fee_per_gas, policy.bump_bps), policy.tip_wei)
    max_fee = max(
        bumped(current.max_fee_per_gas, policy.bump_bps),
        policy.base_fee_multiplier * base_fee_wei + tip,
    )
    cap = policy.max_fee_cap_wei
    if cap is not None and max_fee > cap:
        max_fee = cap
        tip = min(tip, max_fee)
        if max_fee < bumped(current.max_fee_per_gas, REPLACEMENT_MIN_BPS) or tip < bumped(
            current.max_priority_fee_per_gas, REPLACEMENT_MIN_BPS
        ):
            return AtCap(current=current, cap_wei=cap)
    return Fees(max_fee_per_gas=max_fee, max_priority_fee_per_gas=tip)
