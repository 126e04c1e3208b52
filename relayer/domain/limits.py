"""Track limits on buys (opens and adds), SPEC §1.5, as ``TradeRouter._checkBuyLimits`` applies them.

Same order (zero amount, daily loss, trade size, headroom, daily turnover), same rounding (every
limit is ``allocation · bps // 10⁴``, rounded down: the stricter side, in the vault's favour), so
the first limit the relayer reports is the one the contract would revert with. Reduces, ladder
exits and ladder updates are never limited, so nothing here applies to them.

All amounts are USDC base units (6 decimals). Pure: no I/O, no clock (callers pass ``now``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final, Literal, TypeAlias

from relayer.amounts import format_amount
from relayer.domain.track import Track

BPS: Final = 10_000
SECONDS_PER_DAY: Final = 86_400
USDC_DECIMALS: Final = 6
_UINT64_MAX: Final = 2**64 - 1

LimitCode: TypeAlias = Literal[
    "daily_loss_limit_reached", "trade_size_exceeded", "headroom_exceeded", "daily_turnover_exceeded"
]


def utc_day(timestamp: int) -> int:
    """The UTC day number the router books turnover and PnL under: ``block.timestamp / 1 days``."""
    return timestamp // SECONDS_PER_DAY


@dataclass(frozen=True)
class AgentBook:
    """An agent's figures for its current day, as ``TradeRouter.agentState`` and the registry give them.

    ``realized_pnl_today`` is signed; the others are non-negative.
    """

    allocation: int
    deployed: int
    turnover_today: int
    realized_pnl_today: int

    def roll_day(self, book_day: int, now: int) -> AgentBook:
        """``_rollDay``: the book as of ``now`` when its figures were for UTC day ``book_day``.

        Any other day, earlier or later (the contract compares with ``!=``), resets turnover and
        realized PnL; deployed capital is not a daily figure and stays.
        """
        if book_day == utc_day(now):
            return self
        return replace(self, turnover_today=0, realized_pnl_today=0)


class LimitExceeded(Exception):  # noqa: N818 - reads as the verdict, like the router's errors
    """A buy the router would reject for a track limit; ``code`` is the API's (SPEC §2.1) and
    ``details`` carry the revert's figures in base units."""

    def __init__(self, code: LimitCode, message: str, details: dict[str, int]) -> None:
        super().__init__(message)
        self.code: LimitCode = code
        self.message = message
        self.details = details


class AmountTooLargeError(ValueError):
    """The router's ``AmountTooLarge``: a figure that does not fit its packed uint64 storage."""


@dataclass(frozen=True)
class Usage:
    """An agent's limits and how much of them is used: the quote's ``allocation`` block (SPEC §2.3)."""

    allocation: int
    deployed: int
    headroom: int
    max_trade_size: int
    turnover_today: int
    max_daily_turnover: int
    realized_pnl_today: int
    max_daily_loss: int

    def to_json(self) -> dict[str, str]:
        """Human USDC decimal strings, as the API shows money (SPEC §2.1)."""
        return {
            "allocation": _usdc(self.allocation),
            "deployed": _usdc(self.deployed),
            "headroom": _usdc(self.headroom),
            "maxTradeSize": _usdc(self.max_trade_size),
            "turnoverToday": _usdc(self.turnover_today),
            "maxDailyTurnover": _usdc(self.max_daily_turnover),
            "realizedPnlToday": _usdc(self.realized_pnl_today),
            "maxDailyLoss": _usdc(self.max_daily_loss),
        }


def _usdc(base: int) -> str:
    return format_amount(base, USDC_DECIMALS)


def usage(book: AgentBook, track: Track) -> Usage:
    """The limits in base units, rounded down as the router rounds them, beside what is used."""
    a = book.allocation
    return Usage(
        allocation=a,
        deployed=book.deployed,
        # The allocation may have been lowered below what is deployed: no headroom, never negative.
        headroom=max(a - book.deployed, 0),
        max_trade_size=a * track.max_trade_size_bps // BPS,
        turnover_today=book.turnover_today,
        max_daily_turnover=a * track.max_daily_turnover_bps // BPS,
        realized_pnl_today=book.realized_pnl_today,
        max_daily_loss=a * track.max_daily_loss_bps // BPS,
    )


def check_buy(book: AgentBook, track: Track, usdc_amount: int) -> None:
    """Raise what ``_checkBuyLimits`` would revert with for an open or add of ``usdc_amount``.

    ``book`` must be rolled to the day the transaction will execute in (``AgentBook.roll_day``).
    Raises ``ValueError`` for a zero amount (the router's ``ZeroAmount``, checked first),
    ``LimitExceeded`` for a track limit, ``AmountTooLargeError`` for turnover past uint64.
    """
    if usdc_amount <= 0:
        raise ValueError(f"usdc_amount must be positive, got {usdc_amount} (the router reverts ZeroAmount)")
    u = usage(book, track)
    # `realized ≤ −limit`, not `<`: reaching the limit exactly already stops further buys.
    if book.realized_pnl_today <= -u.max_daily_loss:
        raise LimitExceeded(
            "daily_loss_limit_reached",
            f"today's realized PnL of {_usdc(book.realized_pnl_today)} USDC has reached the daily loss "
            f"limit of {_usdc(u.max_daily_loss)} USDC; buys resume on the next UTC day",
            {"realizedPnlToday": book.realized_pnl_today, "maxDailyLoss": u.max_daily_loss},
        )
    if usdc_amount > u.max_trade_size:
        raise LimitExceeded(
            "trade_size_exceeded",
            f"{_usdc(usdc_amount)} USDC is above the maximum trade size of {_usdc(u.max_trade_size)} USDC",
            {"usdcAmount": usdc_amount, "maxTradeSize": u.max_trade_size},
        )
    if usdc_amount > u.headroom:
        raise LimitExceeded(
            "headroom_exceeded",
            f"{_usdc(usdc_amount)} USDC is above the allocation headroom of {_usdc(u.headroom)} USDC",
            {"usdcAmount": usdc_amount, "headroom": u.headroom},
        )
    turnover_after = book.turnover_today + usdc_amount
    if turnover_after > u.max_daily_turnover:
        raise LimitExceeded(
            "daily_turnover_exceeded",
            f"today's turnover would reach {_usdc(turnover_after)} USDC, above the daily maximum of "
            f"{_usdc(u.max_daily_turnover)} USDC",
            {"turnoverAfter": turnover_after, "maxDailyTurnover": u.max_daily_turnover},
        )
    if turnover_after > _UINT64_MAX:
        raise AmountTooLargeError(f"turnover {turnover_after} does not fit uint64")


def apply_buy(book: AgentBook, usdc_amount: int) -> AgentBook:
    """The book after a buy that passed ``check_buy``: what the router stores, so intents still in
    flight can be counted before they are mined."""
    return replace(
        book,
        turnover_today=book.turnover_today + usdc_amount,
        deployed=book.deployed + usdc_amount,
    )
