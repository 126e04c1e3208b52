"""The human approval gate (SPEC §5.5): thresholds per track or agent, and the decisions on intents
waiting for one. Shared by the API (`IntentService.approve/reject`, which also re-runs the checks) and
the CLI (`alphagrid approvals`, which decides on the operator's database; the dispatcher re-runs every
check on an approved intent right before it sends it).

An intent pending approval holds its nonce, so the agent's later intents queue behind it; it counts
in the relayer's view of the agent's limits (the quote and submit context), while nothing is sent or
reserved on chain. A decision is a compare-and-set on the intent's status: of two approvers racing,
one wins and the other is told what was decided (409 `approval_decided`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from sqlalchemy import bindparam, delete, select
from sqlalchemy.orm import Session

from relayer.amounts import format_amount
from relayer.errors import RelayerError, invalid_request
from relayer.intents.checks import DEADLINE_MARGIN_S
from relayer.intents.finalize import close
from relayer.intents.lifecycle import IntentState, intent_json, transition
from relayer.store.models import ApprovalPolicy, Intent, utcnow

USDC_DECIMALS: Final = 6
# Only what may spend the vault's USDC waits: reduces, exits and ladder updates never do.
GATED_TYPES: Final = frozenset({"OpenPosition", "AddToPosition"})
MAX_REASON_CHARS: Final = 500


class PolicyScope(StrEnum):
    TRACK = "track"
    AGENT = "agent"


class ApprovalStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"


# ---------------------------------------------------------------------- pure decisions


def needs_approval(primary_type: str, usdc_amount: int, threshold: int | None) -> bool:
    """Judged on the intent's worst case: the USDC it may spend (`usdcAmount` of an open or add)."""
    return primary_type in GATED_TYPES and threshold is not None and usdc_amount > threshold


def effective_threshold(agent_policy: int | None, track_policy: int | None) -> int | None:
    """The agent's own policy overrides its track's."""
    return agent_policy if agent_policy is not None else track_policy


def expired(deadline: int | None, now: int) -> bool:
    """Past the point where it could still be sent in time (the deadline check's margin)."""
    return deadline is not None and deadline < now + DEADLINE_MARGIN_S


# ---------------------------------------------------------------------- policies


def _target(scope: PolicyScope, target: str | int) -> str:
    return str(int(target)) if scope is PolicyScope.AGENT else str(target)


def set_policy(
    session: Session, scope: PolicyScope, target: str | int, above: int, by: str | None
) -> ApprovalPolicy:
    if above < 0:
        raise invalid_request("the threshold cannot be negative", field="above")
    key = _target(scope, target)
    row = session.scalar(
        select(ApprovalPolicy).where(ApprovalPolicy.scope == scope.value, ApprovalPolicy.target == key)
    )
    if row is None:
        row = ApprovalPolicy(scope=scope.value, target=key, above=above, set_by=by)
        session.add(row)
    else:
        row.above, row.set_by, row.updated_at = above, by, utcnow()
    session.flush()
    return row


def clear_policy(session: Session, scope: PolicyScope, target: str | int) -> bool:
    done = session.execute(
        delete(ApprovalPolicy).where(
            ApprovalPolicy.scope == scope.value, ApprovalPolicy.target == _target(scope, target)
        )
    )
    return bool(done.rowcount)  # type: ignore[attr-defined]


def policies(session: Session) -> list[dict[str, Any]]:
    rows = session.scalars(select(ApprovalPolicy).order_by(ApprovalPolicy.scope, ApprovalPolicy.target)).all()
    return [policy_json(r) for r in rows]


def policy_json(row: ApprovalPolicy) -> dict[str, Any]:
    return {
        "scope": row.scope,
        "target": row.target,
        "aboveUsdc": format_amount(row.above, USDC_DECIMALS),
        "setBy": row.set_by,
        "updatedAt": row.updated_at.isoformat(),
    }


# Every gated submit asks this: built once, with bound parameters.
_THRESHOLDS: Final = select(ApprovalPolicy.scope, ApprovalPolicy.above).where(
    ((ApprovalPolicy.scope == PolicyScope.AGENT.value) & (ApprovalPolicy.target == bindparam("agent")))
    | ((ApprovalPolicy.scope == PolicyScope.TRACK.value) & (ApprovalPolicy.target == bindparam("track")))
)


def threshold_for(session: Session, agent_id: int, track_name: str) -> int | None:
    rows = session.execute(_THRESHOLDS, {"agent": str(agent_id), "track": track_name}).all()
    by_scope = {scope: int(above) for scope, above in rows}
    return effective_threshold(by_scope.get(PolicyScope.AGENT.value), by_scope.get(PolicyScope.TRACK.value))


# ---------------------------------------------------------------------- approvals


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def approval_json(row: Intent) -> dict[str, Any]:
    usdc = row.message.get("usdcAmount")
    return {
        "approvalId": row.approval_id,
        "status": row.approval,
        "intentId": str(row.id),
        "agentId": str(row.agent_id),
        "type": row.primary_type,
        "nonce": row.nonce,
        "usdcAmount": format_amount(int(usdc), USDC_DECIMALS) if usdc is not None else None,
        "deadline": row.deadline,
        "createdAt": row.created_at.isoformat(),
        "decidedBy": row.decided_by,
        "decidedAt": _iso(row.decided_at),
        "reason": row.reason if row.approval != ApprovalStatus.PENDING else None,
        "intent": intent_json(row),
    }


def list_approvals(
    session: Session, status: ApprovalStatus | None = None, limit: int = 200
) -> Sequence[Intent]:
    query = select(Intent).where(Intent.approval_id.is_not(None))
    if status is ApprovalStatus.PENDING:
        query = query.where(Intent.status == IntentState.PENDING_APPROVAL.value)
    elif status is not None:
        query = query.where(Intent.approval == status.value)
    return session.scalars(query.order_by(Intent.id.desc()).limit(limit)).all()


def find(session: Session, approval_id: int) -> Intent:
    """An approval's id is its intent's (`approvalId` in the intent record)."""
    row = session.get(Intent, approval_id)
    if row is None or row.approval_id is None:
        raise RelayerError(
            "approval_not_found", f"no approval {approval_id}", {"approvalId": str(approval_id)}
        )
    return row


def decided_error(row: Intent) -> RelayerError:
    """What the loser of a race (or a late decision) is told: the decision that stands."""
    return RelayerError(
        "approval_decided",
        f"approval {row.approval_id} was already decided: {row.approval}"
        + (f" by {row.decided_by}" if row.decided_by else ""),
        {
            "approvalId": row.approval_id,
            "intentId": str(row.id),
            "approval": row.approval,
            "status": row.status,
            "decidedBy": row.decided_by,
            "decidedAt": _iso(row.decided_at),
            "reason": row.reason,
        },
    )


def expiry_error(row: Intent, now: int) -> RelayerError:
    return RelayerError(
        "deadline_expired",
        f"approval {row.approval_id} was not decided before the intent's deadline {row.deadline} "
        f"(chain time {now}): silence is never consent",
        {"approvalId": row.approval_id, "intentId": str(row.id), "deadline": row.deadline, "now": now},
    )


def expire(session: Session, row: Intent, now: int) -> bool:
    """Reject an undecided intent whose deadline passed (`deadline_expired`)."""
    error = expiry_error(row, now)
    return close(
        session,
        row,
        IntentState.REJECTED,
        f"deadline_expired: {error.message}",
        error.to_json(),
        approval=ApprovalStatus.EXPIRED.value,
        decided_at=utcnow(),
    )


def reject(session: Session, row: Intent, by: str, reason: str) -> bool:
    """An approver's refusal: rejected with `approval_rejected` (the later intents it held up too)."""
    error = RelayerError(
        "approval_rejected",
        f"rejected by {by}: {reason}",
        {"approvalId": row.approval_id, "decidedBy": by, "reason": reason},
    )
    return close(
        session,
        row,
        IntentState.REJECTED,
        f"approval_rejected: rejected by {by}: {reason}",
        error.to_json(),
        approval=ApprovalStatus.REJECTED.value,
        decided_by=by,
        decided_at=utcnow(),
    )


def refuse_on_check(session: Session, row: Intent, by: str, error: RelayerError) -> bool:
    """Approved, but a check on the state of that moment fails: rejected with that check's code."""
    return close(
        session,
        row,
        IntentState.REJECTED,
        f"{error.code}: approved by {by}, then {error.message}",
        error.to_json(),
        approval=ApprovalStatus.APPROVED.value,
        decided_by=by,
        decided_at=utcnow(),
    )


def approve(session: Session, row: Intent, by: str) -> bool:
    """pending_approval → received: the dispatcher takes it from there (and checks it again)."""
    return transition(
        session,
        row,
        IntentState.RECEIVED,
        f"approved by {by}",
        approval=ApprovalStatus.APPROVED.value,
        decided_by=by,
        decided_at=utcnow(),
    )


def check_reason(reason: str) -> str:
    text = reason.strip()
    if not text:
        raise invalid_request("a rejection needs a reason", field="reason")
    if len(text) > MAX_REASON_CHARS:
        raise invalid_request(f"reason: at most {MAX_REASON_CHARS} characters", field="reason")
    return text


def decide_offline(
    session: Session, approval_id: int, by: str, now: int, *, reason: str | None
) -> tuple[Intent, RelayerError | None]:
    """The CLI's decision on the operator's database: approve (reason None) or reject. An expired one
    is rejected as expired and refused (the error returned, to raise once this is committed); a decided
    one is refused with the decision that stands."""
    row = find(session, approval_id)
    if row.status != IntentState.PENDING_APPROVAL:
        raise decided_error(row)
    if reason is not None:
        done = reject(session, row, by, check_reason(reason))
    elif expired(row.deadline, now):
        if expire(session, row, now):
            return row, expiry_error(row, now)
        done = False
    else:
        done = approve(session, row, by)
    if not done:
        session.expire(row)
        raise decided_error(find(session, approval_id))
    return row, None
