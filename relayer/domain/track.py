"""Tracks: the named risk policies an operator puts agents on (SPEC §1.5)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from relayer.domain.market import (
    DEFAULT_SESSIONS,
    ExitsWhenClosed,
    MarketStatus,
    sessions_from_mask,
    sessions_mask,
)

# IAgentRegistry.ExitsWhenClosed: Hold = 0, Fire = 1.
EXITS_WHEN_CLOSED_CODES: Final = {ExitsWhenClosed.HOLD: 0, ExitsWhenClosed.FIRE: 1}
_EXITS_WHEN_CLOSED_BY_CODE: Final = {v: k for k, v in EXITS_WHEN_CLOSED_CODES.items()}

TrackTuple = tuple[int, int, int, int, int, int, bool, bool, int, int]


@dataclass(frozen=True)
class Track:
    """Limits in bps; the first three are bps of the agent's allocation. Mirrors IAgentRegistry.Track.

    ``sessions``: the market statuses in which opens and adds are allowed (on chain a bitmask, bit s
    for status s); ``exits_when_closed``: what a crossed exit rule does outside them (SPEC §5.6)."""

    max_trade_size_bps: int
    max_daily_turnover_bps: int
    max_daily_loss_bps: int
    max_stop_loss_bps: int
    min_take_profit_bps: int
    max_take_profit_bps: int
    require_stop_loss: bool
    require_take_profit: bool
    sessions: frozenset[MarketStatus] = DEFAULT_SESSIONS
    exits_when_closed: ExitsWhenClosed = ExitsWhenClosed.HOLD

    def as_tuple(self) -> TrackTuple:
        """In the struct's field order, for ABI encoding."""
        return (
            self.max_trade_size_bps,
            self.max_daily_turnover_bps,
            self.max_daily_loss_bps,
            self.max_stop_loss_bps,
            self.min_take_profit_bps,
            self.max_take_profit_bps,
            self.require_stop_loss,
            self.require_take_profit,
            sessions_mask(self.sessions),
            EXITS_WHEN_CLOSED_CODES[self.exits_when_closed],
        )

    @classmethod
    def from_tuple(cls, t: tuple[Any, ...]) -> Track:
        """From the struct as web3 decodes it (a call's result or an event's tuple)."""
        if len(t) != len(_FIELDS):
            raise ValueError(f"a track has {len(_FIELDS)} fields, got {len(t)}")
        return cls(
            max_trade_size_bps=int(t[0]),
            max_daily_turnover_bps=int(t[1]),
            max_daily_loss_bps=int(t[2]),
            max_stop_loss_bps=int(t[3]),
            min_take_profit_bps=int(t[4]),
            max_take_profit_bps=int(t[5]),
            require_stop_loss=bool(t[6]),
            require_take_profit=bool(t[7]),
            sessions=sessions_from_mask(int(t[8])),
            exits_when_closed=_EXITS_WHEN_CLOSED_BY_CODE[int(t[9])],
        )

    @classmethod
    def from_event(cls, t: dict[str, Any]) -> Track:
        """From a `TrackSet` event's decoded struct (field names as in Solidity)."""
        return cls.from_tuple(tuple(t[name] for name in _FIELDS))

    def to_json(self) -> dict[str, Any]:
        """``sessions: ["Regular"]`` (in status order), ``exitsWhenClosed: "hold"``; the limits as numbers."""
        out: dict[str, Any] = {}
        for field in _FIELDS[:-2]:
            out[field] = getattr(self, _snake(field))
        out["sessions"] = [s.label for s in sorted(self.sessions)]
        out["exitsWhenClosed"] = self.exits_when_closed.value
        return out


_FIELDS: Final = (
    "maxTradeSizeBps",
    "maxDailyTurnoverBps",
    "maxDailyLossBps",
    "maxStopLossBps",
    "minTakeProfitBps",
    "maxTakeProfitBps",
    "requireStopLoss",
    "requireTakeProfit",
    "sessions",
    "exitsWhenClosed",
)


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


# Seeded on a local chain (SPEC §1.5): evaluation requires a stop-loss; funded and prime require both.
# All trade the Regular session and hold exits while the market is closed (SPEC §5.6 defaults).
DEFAULT_TRACKS: Final[dict[str, Track]] = {
    "evaluation": Track(1_000, 20_000, 300, 1_000, 100, 3_000, True, False),
    "funded": Track(2_000, 40_000, 500, 1_500, 100, 5_000, True, True),
    "prime": Track(5_000, 100_000, 1_000, 2_500, 50, 10_000, True, True),
}
