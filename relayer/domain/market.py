"""Markets for tokenized equities (SPEC §5.6), pure: statuses, exchange sessions, what a status allows,
when an exit waits, share multipliers and the gap report of a fill.

No I/O and no clock: callers pass ``now`` and the trading days (`relayer.domain.calendar` builds them
from a real exchange calendar). Times are timezone-aware ``datetime``s or unix seconds, as named.

- **Statuses** mirror `IPriceOracle.MarketStatus` (``0 Unknown … 6 Halted``).
- **Sessions** of one trading day, in the exchange's local time (NYSE: America/New_York):
  Overnight from 20:00 the evening before to 04:00, PreMarket 04:00 to the open, Regular from the open
  to the close (13:00 on an early close), PostMarket for four hours after the close (20:00, or 17:00
  after an early close); any other time (weekends, holidays, the evening after an early close) is
  Closed. Overnight precedes only a trading day (Sunday evening does, Friday evening does not).
- **Policies**: `allows` (may an intent go through now?) and `exit_policy` (may a crossed exit fire
  now?), exactly `TradeRouter`'s rules: a token whose feed publishes no status (Unknown) is not
  gated at all; reduces and ladder updates are never blocked; a Halted market allows no open or add
  and holds every exit; otherwise an open or add needs the status in the track's sessions, and an
  exit on a ``hold`` track needs both the status now and the status its price was quoted in there.
- **Multipliers** (ERC-8056 style, 18 decimals): the per-token price is ``sharePrice·multiplier/1e18``
  rounded down, as in `PriceOracle`. A split ``num:den`` (2:1, 1:10) multiplies it by ``num/den``.
- **Gap report** of an exit: ``slippageBps`` of the fill against the trigger, signed, rounded toward
  −∞ (a fill is never reported better than it was).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from enum import IntEnum, StrEnum
from typing import Any, ClassVar, Final
from zoneinfo import ZoneInfo

from relayer.amounts import format_amount

BPS: Final = 10_000
ONE: Final = 10**18  # multiplier 1.0
MIN_MULTIPLIER: Final = 10**9  # PriceOracle.MIN_MULTIPLIER
MAX_MULTIPLIER: Final = 10**27  # PriceOracle.MAX_MULTIPLIER
MULTIPLIER_DECIMALS: Final = 18
NEW_YORK: Final = ZoneInfo("America/New_York")


class MarketError(ValueError):
    """A status, ratio or multiplier that cannot be used; the message is one line."""


# ---------------------------------------------------------------------------------------- statuses


class MarketStatus(IntEnum):
    UNKNOWN = 0
    PRE_MARKET = 1
    REGULAR = 2
    POST_MARKET = 3
    OVERNIGHT = 4
    CLOSED = 5
    HALTED = 6

    @property
    def label(self) -> str:
        """The spec's spelling: ``PreMarket``, ``Regular``, …"""
        return _LABELS[self]

    @classmethod
    def parse(cls, text: str | int) -> MarketStatus:
        """``Regular``, ``regular``, ``pre-market``, ``PRE_MARKET``, ``2`` → the status."""
        if isinstance(text, int) or (isinstance(text, str) and text.strip().isdigit()):
            try:
                return cls(int(text))
            except ValueError:
                raise MarketError(f"market status must be 0..6, got {text}") from None
        key = str(text).strip().lower().replace("-", "").replace("_", "").replace(" ", "")
        status = _BY_KEY.get(key)
        if status is None:
            raise MarketError(f"unknown market status {text!r} (one of {', '.join(_LABELS.values())})")
        return status


_LABELS: Final = {
    MarketStatus.UNKNOWN: "Unknown",
    MarketStatus.PRE_MARKET: "PreMarket",
    MarketStatus.REGULAR: "Regular",
    MarketStatus.POST_MARKET: "PostMarket",
    MarketStatus.OVERNIGHT: "Overnight",
    MarketStatus.CLOSED: "Closed",
    MarketStatus.HALTED: "Halted",
}
_BY_KEY: Final = {label.lower(): s for s, label in _LABELS.items()}

QUOTING: Final = frozenset(
    {MarketStatus.PRE_MARKET, MarketStatus.REGULAR, MarketStatus.POST_MARKET, MarketStatus.OVERNIGHT}
)
"""Statuses in which the market quotes, so prices move (the local feed walks only in these)."""

DEFAULT_SESSIONS: Final = frozenset({MarketStatus.REGULAR})
"""A track's sessions unless it says otherwise (SPEC §5.6)."""


def parse_sessions(text: str | Iterable[str]) -> frozenset[MarketStatus]:
    """``Regular,PreMarket`` → the statuses a track trades in. Halted cannot be one: nothing opens
    in a halt. Empty is refused (a track that can never open is a paused track; say so instead)."""
    parts = text.split(",") if isinstance(text, str) else list(text)
    statuses = frozenset(MarketStatus.parse(p) for p in parts if str(p).strip())
    if not statuses:
        raise MarketError("sessions must name at least one status, e.g. Regular")
    if MarketStatus.HALTED in statuses:
        raise MarketError("Halted cannot be a session: a halted market allows no open or add")
    return statuses


def sessions_mask(sessions: Iterable[MarketStatus]) -> int:
    """Bit ``s`` set for each status ``s``: a uint8 for a track on chain."""
    mask = 0
    for s in sessions:
        mask |= 1 << int(s)
    return mask


def sessions_from_mask(mask: int) -> frozenset[MarketStatus]:
    if not 0 <= mask < 1 << len(MarketStatus):
        raise MarketError(f"sessions mask must be within 0..{(1 << len(MarketStatus)) - 1}, got {mask}")
    return frozenset(s for s in MarketStatus if mask >> int(s) & 1)


def sessions_label(sessions: Iterable[MarketStatus]) -> str:
    return ",".join(s.label for s in sorted(sessions))


# ---------------------------------------------------------------------------------------- sessions


@dataclass(frozen=True)
class TradingDay:
    """One session of the exchange: its local date and its regular open and close (aware)."""

    day: date
    open: datetime
    close: datetime


@dataclass(frozen=True)
class SessionHours:
    """The extended hours around each regular session, in the exchange's local time."""

    tz: ZoneInfo = NEW_YORK
    pre_open: time = time(4, 0)
    post_hours: timedelta = timedelta(hours=4)
    overnight: bool = True
    overnight_start: time = time(20, 0)

    def local(self, day: date, at: time) -> datetime:
        return datetime.combine(day, at, tzinfo=self.tz)


NYSE_HOURS: Final = SessionHours()


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime  # exclusive
    status: MarketStatus

    def contains(self, now: datetime) -> bool:
        return self.start <= now < self.end


def day_windows(day: TradingDay, hours: SessionHours = NYSE_HOURS) -> list[Window]:
    """The quoting windows of one trading day, in time order (DST-proof: built in local time)."""
    pre = hours.local(day.day, hours.pre_open)
    windows = []
    if hours.overnight:
        evening = hours.local(day.day - timedelta(days=1), hours.overnight_start)
        windows.append(Window(evening, pre, MarketStatus.OVERNIGHT))
    windows += [
        Window(pre, day.open, MarketStatus.PRE_MARKET),
        Window(day.open, day.close, MarketStatus.REGULAR),
        Window(day.close, day.close + hours.post_hours, MarketStatus.POST_MARKET),
    ]
    return [w for w in windows if w.start < w.end]


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")


def status_at(now: datetime, days: Iterable[TradingDay], hours: SessionHours = NYSE_HOURS) -> MarketStatus:
    """The calendar's status at ``now``; ``days`` must cover the day before ``now`` to the day after."""
    _require_aware(now)
    for day in days:
        for w in day_windows(day, hours):
            if w.contains(now):
                return w.status
    return MarketStatus.CLOSED


def next_open(
    now: datetime,
    days: Iterable[TradingDay],
    statuses: Iterable[MarketStatus] = DEFAULT_SESSIONS,
    hours: SessionHours = NYSE_HOURS,
) -> datetime | None:
    """The first moment strictly after ``now`` at which a window of ``statuses`` starts, if ``days``
    (in time order) have one; None when they do not reach that far."""
    _require_aware(now)
    wanted = frozenset(statuses)
    starts = [w.start for d in days for w in day_windows(d, hours) if w.status in wanted and w.start > now]
    return min(starts) if starts else None


def format_local(when: datetime, tz: ZoneInfo = NEW_YORK) -> str:
    """``Mon 1 Dec 09:30 ET`` (the abbreviation is ET for New York, the zone's name otherwise)."""
    local = when.astimezone(tz)
    zone = "ET" if tz.key == "America/New_York" else tz.key
    return f"{local:%a} {local.day} {local:%b %H:%M} {zone}"


# ---------------------------------------------------------------------------------------- policies


class IntentKind(StrEnum):
    """The intents' EIP-712 primary types."""

    OPEN = "OpenPosition"
    ADD = "AddToPosition"
    REDUCE = "ReducePosition"
    LADDER = "UpdateExitLadder"


@dataclass(frozen=True)
class Allowed:
    pass


@dataclass(frozen=True)
class MarketClosed:
    """``422 market_closed``: the status is not one the track opens in (or the market is halted)."""

    status: MarketStatus
    next_open: int | None  # unix seconds, when known

    code: ClassVar[str] = "market_closed"

    @property
    def message(self) -> str:
        if self.status is MarketStatus.HALTED:
            return "the market is halted: no open or add until it resumes"
        until = f" until {format_local(_utc(self.next_open))}" if self.next_open is not None else ""
        return f"the market is {self.status.label} and the track does not trade then{until}"

    def details(self) -> dict[str, Any]:
        return {"marketStatus": self.status.label, "nextOpen": self.next_open}


def allows(
    kind: IntentKind,
    status: MarketStatus,
    sessions: Iterable[MarketStatus] = DEFAULT_SESSIONS,
    next_open: int | None = None,
) -> Allowed | MarketClosed:
    """May an intent of ``kind`` go through while the market is ``status``, for a track trading in
    ``sessions``? Reduces and ladder updates always; opens and adds only in the sessions, never in a
    halt; a token with no status (Unknown) is not gated (`TradeRouter._openPrice`). ``next_open``
    (unix s) is passed through for the answer."""
    if kind in (IntentKind.REDUCE, IntentKind.LADDER) or status is MarketStatus.UNKNOWN:
        return Allowed()
    if status is not MarketStatus.HALTED and status in frozenset(sessions):
        return Allowed()
    return MarketClosed(status, None if status is MarketStatus.HALTED else next_open)


class ExitsWhenClosed(StrEnum):
    HOLD = "hold"  # a crossed rule waits for the next price in a session the track trades
    FIRE = "fire"  # it fires on the last price


class HoldReason(StrEnum):
    HALTED = "market_halted"
    CLOSED = "market_closed"
    OUTSIDE_SESSIONS = "outside_sessions"
    QUOTED_OUTSIDE_SESSIONS = "quoted_outside_sessions"  # the last price predates the session


@dataclass(frozen=True)
class Fire:
    pass


@dataclass(frozen=True)
class Hold:
    reason: HoldReason
    status: MarketStatus
    next_open: int | None = None  # unix seconds, when known

    @property
    def message(self) -> str:
        """What the audit says: ``market closed until Mon 1 Dec 09:30 ET``."""
        until = f" until {format_local(_utc(self.next_open))}" if self.next_open is not None else ""
        if self.reason is HoldReason.HALTED:
            return "market halted"
        if self.reason is HoldReason.CLOSED:
            return f"market closed{until}"
        if self.reason is HoldReason.QUOTED_OUTSIDE_SESSIONS:
            quoted = self.status.label
            return f"waiting for a price quoted in the track's sessions (the last was quoted {quoted})"
        return f"market {self.status.label}, outside the track's sessions{until}"


def exit_policy(
    status: MarketStatus,
    exits_when_closed: ExitsWhenClosed,
    sessions: Iterable[MarketStatus] = DEFAULT_SESSIONS,
    next_open: int | None = None,
    *,
    quoted_status: MarketStatus,
) -> Fire | Hold:
    """May a crossed exit rule fire now (`TradeRouter._exitGate`)? ``status`` is the market's status
    now, ``quoted_status`` the one the oracle's latest price was quoted in. A token with no status
    (Unknown) is not gated; a halt holds every exit; a ``fire`` track fires on the last price; a
    ``hold`` track fires only when both statuses are in its sessions: a rule crossed by a closed
    market's last price waits for the next price quoted in a session (never fires on Friday's close at
    Monday's open). The hold's ``status`` is the one the contract reverts with: the status now when it
    is outside the sessions, else the quoted one."""
    if status is MarketStatus.UNKNOWN:
        return Fire()
    if status is MarketStatus.HALTED:
        return Hold(HoldReason.HALTED, status)
    if exits_when_closed is ExitsWhenClosed.FIRE:
        return Fire()
    tradable = frozenset(sessions)
    if status not in tradable:
        reason = HoldReason.CLOSED if status is MarketStatus.CLOSED else HoldReason.OUTSIDE_SESSIONS
        return Hold(reason, status, next_open)
    if quoted_status not in tradable:
        return Hold(HoldReason.QUOTED_OUTSIDE_SESSIONS, quoted_status)
    return Fire()


def _utc(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, tz=ZoneInfo("UTC"))


# ---------------------------------------------------------------------------------------- multipliers


@dataclass(frozen=True)
class SplitRatio:
    """``num`` new shares for ``den`` old ones: 2:1 is a split, 1:10 a reverse split."""

    num: Decimal
    den: Decimal

    def __str__(self) -> str:
        return f"{self.num.normalize():f}:{self.den.normalize():f}"


def parse_ratio(text: str) -> SplitRatio:
    """``2:1``, ``1:10``, ``3:2``, ``1.05:1`` (a reinvested dividend) → the ratio."""
    parts = text.strip().split(":")
    if len(parts) != 2:
        raise MarketError(f"ratio must look like 2:1 or 1:10, got {text!r}")
    try:
        num, den = (Decimal(p.strip()) for p in parts)
    except InvalidOperation:
        raise MarketError(f"ratio must look like 2:1 or 1:10, got {text!r}") from None
    for part in (num, den):
        if not part.is_finite() or part <= 0:
            raise MarketError(f"both sides of the ratio must be more than 0, got {text!r}")
        if part > 10**9 or part != part.quantize(Decimal(1).scaleb(-MULTIPLIER_DECIMALS)):
            raise MarketError(f"ratio sides must be at most 1e9 with at most 18 decimals, got {text!r}")
    if num == den:
        raise MarketError(f"ratio {text} changes nothing")
    return SplitRatio(num, den)


def split_multiplier(current: int, ratio: SplitRatio) -> int:
    """The multiplier after the split, rounded down; refused outside the oracle's bounds."""
    scale = 10**MULTIPLIER_DECIMALS
    num = int(ratio.num * scale)
    den = int(ratio.den * scale)
    new = current * num // den
    if not MIN_MULTIPLIER <= new <= MAX_MULTIPLIER:
        raise MarketError(
            f"a {ratio} split takes the multiplier to {format_multiplier(new)}, outside "
            f"{format_multiplier(MIN_MULTIPLIER)}..{format_multiplier(MAX_MULTIPLIER)}"
        )
    return new


def token_price(share_price: int, multiplier: int) -> int:
    """Per-token price of a per-share price, rounded down (`PriceOracle`'s rule)."""
    return share_price * multiplier // ONE


def rebase_share_price(share_price: int, old_multiplier: int, new_multiplier: int) -> int:
    """The same per-token value quoted under the new multiplier (the post-split share price), rounded
    down and never below one base unit."""
    return max(1, share_price * old_multiplier // new_multiplier)


def format_multiplier(multiplier: int) -> str:
    return format_amount(multiplier, MULTIPLIER_DECIMALS)


@dataclass(frozen=True)
class MultiplierSchedule:
    """`PriceOracle.multiplierSchedule`: ``new`` is epoch ``epoch``'s multiplier, ``old`` epoch−1's."""

    epoch: int = 0
    old: int = ONE
    new: int = ONE
    effective_at: int = 0

    def in_force(self, now: int) -> int:
        return self.new if self.epoch == 0 or now >= self.effective_at else self.old

    def epoch_at(self, now: int) -> int:
        return self.epoch if self.epoch == 0 or now >= self.effective_at else self.epoch - 1

    def pending(self, now: int) -> bool:
        return self.epoch > 0 and now < self.effective_at

    def to_json(self, now: int) -> dict[str, Any]:
        """``multiplier`` on the API: the one in force, and the next one while it is pending."""
        return {
            "current": format_multiplier(self.in_force(now)),
            "next": format_multiplier(self.new) if self.pending(now) else None,
            "effectiveAt": self.effective_at if self.pending(now) else None,
            "epoch": self.epoch_at(now),
        }


def market_json(
    status: MarketStatus, schedule: MultiplierSchedule, share_price: int | None, now: int
) -> dict[str, Any]:
    """A token's market fields as the CLI shows them next to its price."""
    return {
        "marketStatus": status.label,
        "sharePrice": format_amount(share_price, 8) if share_price is not None else None,
        "multiplier": schedule.to_json(now),
    }


# ---------------------------------------------------------------------------------------- gap report


@dataclass(frozen=True)
class GapReport:
    """One exit's honesty: the rule's trigger, the oracle price that fired it, the fill (all 8-decimal
    per-token prices) and the slippage of the fill against the trigger."""

    trigger_price: int
    oracle_price: int
    fill_price: int
    slippage_bps: int  # (fill − trigger) / trigger, signed, rounded toward −∞
    gap_bps: int  # (oracle − trigger) / trigger: how far the market had gapped past the trigger

    def to_json(self) -> dict[str, Any]:
        return {
            "triggerPrice": format_amount(self.trigger_price, 8),
            "oraclePrice": format_amount(self.oracle_price, 8),
            "fillPrice": format_amount(self.fill_price, 8),
            "slippageBps": self.slippage_bps,
            "gapBps": self.gap_bps,
        }


def signed_bps(value: int, reference: int) -> int:
    """``(value − reference)·10000 / reference`` rounded toward −∞ (Python's floor division)."""
    if reference <= 0:
        raise ValueError(f"reference price must be > 0, got {reference}")
    return (value - reference) * BPS // reference


def gap_report(trigger_price: int, oracle_price: int, fill_price: int) -> GapReport:
    """A fill at 95 on a stop at 100 after the market gapped to 96: slippage −500 bps, gap −400 bps."""
    for name, price in (("oracle", oracle_price), ("fill", fill_price)):
        if price < 0:
            raise ValueError(f"{name} price must be ≥ 0, got {price}")
    return GapReport(
        trigger_price,
        oracle_price,
        fill_price,
        signed_bps(fill_price, trigger_price),
        signed_bps(oracle_price, trigger_price),
    )


def fill_price(usdc_out: int, tokens_in: int, token_decimals: int) -> int:
    """The 8-decimal per-token price of a sale of ``tokens_in`` base units for ``usdc_out`` (6 decimals),
    rounded down: value = size·price / 10^(decimals+2), so price = usdc·10^(decimals+2) / size."""
    if tokens_in <= 0:
        raise ValueError("a fill sells at least one base unit")
    scale: int = 10 ** (token_decimals + 2)
    return usdc_out * scale // tokens_in


def exit_gap_json(
    trigger_price: int | None, oracle_price: int, usdc_out: int, tokens_in: int, token_decimals: int
) -> dict[str, Any]:
    """The gap fields of one exit for the API and the event stream: ``triggerPrice`` (the rule's
    exact firing boundary for the position as it stood), ``oraclePrice``, ``fillPrice``
    (``usdcOut / tokensIn``, rounded down) and ``slippageBps`` / ``gapBps`` against the trigger.
    What cannot be known is null: the trigger of a rule the relayer never saw (a mirror older than
    the gap report, or a threshold no oracle price reaches), the fill of a rule that sold nothing."""
    fill = fill_price(usdc_out, tokens_in, token_decimals) if tokens_in > 0 else None
    out: dict[str, Any] = {
        "triggerPrice": format_amount(trigger_price, 8) if trigger_price is not None else None,
        "oraclePrice": format_amount(oracle_price, 8),
        "fillPrice": format_amount(fill, 8) if fill is not None else None,
        "slippageBps": None,
        "gapBps": None,
    }
    if trigger_price is not None and trigger_price > 0:
        out["gapBps"] = signed_bps(oracle_price, trigger_price)
        if fill is not None:
            out["slippageBps"] = gap_report(trigger_price, oracle_price, fill).slippage_bps
    return out


def windows_between(days: Sequence[TradingDay], hours: SessionHours = NYSE_HOURS) -> list[Window]:
    """Every window of ``days`` in time order (for displays and tests)."""
    return sorted((w for d in days for w in day_windows(d, hours)), key=lambda w: w.start)
