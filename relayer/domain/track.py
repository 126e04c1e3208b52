"""Tracks: the named risk policies an operator puts agents on (SPEC §1.5)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Final


@dataclass(frozen=True)
class Track:
    """Limits in bps; the first three are bps of the agent's allocation. Mirrors IAgentRegistry.Track."""

    max_trade_size_bps: int
    max_daily_turnover_bps: int
    max_daily_loss_bps: int
    max_stop_loss_bps: int
    min_take_profit_bps: int
    max_take_profit_bps: int
    require_stop_loss: bool
    require_take_profit: bool

    def as_tuple(self) -> tuple[int, int, int, int, int, int, bool, bool]:
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
        )

    @classmethod
    def from_tuple(cls, t: tuple[int, int, int, int, int, int, bool, bool]) -> Track:
        return cls(*t)

    def to_json(self) -> dict[str, int | bool]:
        snake = asdict(self)
        return {_camel(k): v for k, v in snake.items()}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


# Seeded on a local chain (SPEC §1.5): evaluation requires a stop-loss; funded and prime require both.
DEFAULT_TRACKS: Final[dict[str, Track]] = {
    "evaluation": Track(1_000, 20_000, 300, 1_000, 100, 3_000, True, False),
    "funded": Track(2_000, 40_000, 500, 1_500, 100, 5_000, True, True),
    "prime": Track(5_000, 100_000, 1_000, 2_500, 50, 10_000, True, True),
}
