"""Front-running strikes: an agent whose own same-nonce intents, sent straight to the router, make the
relayer's transactions (or batch items) fail is throttled, then suspended (SPEC §2.1 `rate_limited`).

`standing` is the pure decision (tested case by case in tests/unit/intents/test_strikes.py); the rest
reads and writes the `agent_strikes` table, so the counters survive restarts and every relayer
process sees the same ones. An operator clears them (`alphagrid agent clear-strikes`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Final

from sqlalchemy import bindparam, delete, select
from sqlalchemy.orm import Session

from relayer.errors import RelayerError
from relayer.store.models import AgentStrike


@dataclass(frozen=True)
class StrikePolicy:
    throttle_after: int = 3  # strikes within `throttle_window_s` …
    throttle_window_s: int = 3_600
    suspend_after: int = 10  # … and within `suspend_window_s`
    suspend_window_s: int = 86_400

    @property
    def lookback_s(self) -> int:
        return max(self.throttle_window_s, self.suspend_window_s)


class RelayerStatus(StrEnum):
    THROTTLED = "throttled"
    SUSPENDED = "suspended"


@dataclass(frozen=True)
class Standing:
    status: RelayerStatus
    reason: str
    until: datetime  # when the oldest strike that counts leaves its window

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status.value, "reason": self.reason, "until": self.until.isoformat()}

    def error(self, agent_id: int, now: datetime) -> RelayerError:
        retry_after = max(1, int((self.until - now).total_seconds() + 0.999))
        return RelayerError(
            "rate_limited",
            f"agent {agent_id} is {self.status.value} by the relayer: {self.reason}",
            {
                "reason": self.status.value,
                "retryAfterS": retry_after,
                "suggestion": {"retryAfterS": retry_after},
                "relayerStatus": self.to_json(),
            },
        )


def standing(strikes: Sequence[datetime], now: datetime, policy: StrikePolicy) -> Standing | None:
    """Suspended with `suspend_after` strikes in the suspension window, else throttled with
    `throttle_after` in the throttling window, else in good standing (None). A strike lasts its
    window: the agent is let go when enough of them have aged out. Pure."""
    times = sorted(strikes)
    for status, after, window in (
        (RelayerStatus.SUSPENDED, policy.suspend_after, policy.suspend_window_s),
        (RelayerStatus.THROTTLED, policy.throttle_after, policy.throttle_window_s),
    ):
        if after <= 0:
            continue
        recent = [t for t in times if now - t < timedelta(seconds=window)]
        if len(recent) >= after:
            # Below the threshold again once all but `after - 1` of the recent strikes aged out.
            until = recent[len(recent) - after] + timedelta(seconds=window)
            reason = (
                f"{len(recent)} of its relayed intents failed in the last {_span(window)} because "
                f"the agent used their nonces for other intents (limit {after})"
            )
            return Standing(status, reason, until)
    return None


def _span(seconds: int) -> str:
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return "hour" if hours == 1 else f"{hours} hours"
    return f"{seconds} s"


# ---------------------------------------------------------------------- I/O


# Every submit asks this: built once, with bound parameters.
_STRIKES: Final = select(AgentStrike.at).where(
    AgentStrike.agent_id == bindparam("agent_id"), AgentStrike.at > bindparam("since")
)


def strike_times(session: Session, agent_id: int, now: datetime, policy: StrikePolicy) -> list[datetime]:
    since = now - timedelta(seconds=policy.lookback_s)
    return list(session.scalars(_STRIKES, {"agent_id": agent_id, "since": since}))


def standing_of(session: Session, agent_id: int, now: datetime, policy: StrikePolicy) -> Standing | None:
    return standing(strike_times(session, agent_id, now, policy), now, policy)


def record(session: Session, agent_id: int, intent_id: int, reason: str, at: datetime) -> None:
    """One strike for a failed intent (at most one per intent, whoever finalizes it)."""
    exists = session.scalar(select(AgentStrike.id).where(AgentStrike.intent_id == intent_id))
    if exists is not None:
        return
    session.add(AgentStrike(agent_id=agent_id, intent_id=intent_id, reason=reason, at=at))


def clear(session: Session, agent_id: int) -> int:
    """Forget an agent's strikes (an operator's decision); returns how many there were."""
    done = session.execute(delete(AgentStrike).where(AgentStrike.agent_id == agent_id))
    return int(done.rowcount)  # type: ignore[attr-defined]
