"""The intent lifecycle as a type: the states, the transitions allowed between them, and the one
function that performs a transition.

```
 pending_approval ──► rejected  (an approver refused it, or its deadline passed undecided)
        │
        ▼ approved
            ┌──────────── rejected  (a check or the simulation refused it; its nonce stays unused)
            │
 received ──┼──► submitted ──► confirmed ──► (submitted again if its block leaves the chain)
            │        │
            │        └──────► failed    (its transaction reverted or was dropped; nonce unused)
            └──► confirmed  (someone else relayed the same signed intent first)
```

`transition` is a compare-and-set on the status (so two finalizers, or two relayer processes, can
never both record an outcome), and writes the history row and the agent's stream event in the same
database transaction. Nothing else writes `Intent.status`.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Final

from sqlalchemy import update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from relayer.store import mirror
from relayer.store.models import Intent, IntentStatus, utcnow


class IntentState(StrEnum):
    # An open or add above its approval threshold (SPEC §5.5): recorded, holding its nonce, nothing sent.
    PENDING_APPROVAL = "pending_approval"
    RECEIVED = "received"  # recorded and answered; waiting for its turn (its predecessor nonce)
    SUBMITTED = "submitted"  # in a recorded transaction (alone or as an item of a batch)
    CONFIRMED = "confirmed"  # its nonce was used by this intent on chain
    REJECTED = "rejected"  # never sent: a check, the simulation or its predecessor refused it
    FAILED = "failed"  # sent, and its transaction reverted or was dropped without using the nonce


TRANSITIONS: Final[Mapping[IntentState, frozenset[IntentState]]] = {
    # approved → received (then the whole pipeline again); refused or expired → rejected.
    IntentState.PENDING_APPROVAL: frozenset({IntentState.RECEIVED, IntentState.REJECTED}),
    IntentState.RECEIVED: frozenset({IntentState.SUBMITTED, IntentState.CONFIRMED, IntentState.REJECTED}),
    IntentState.SUBMITTED: frozenset({IntentState.CONFIRMED, IntentState.FAILED}),
    IntentState.CONFIRMED: frozenset({IntentState.SUBMITTED}),  # a reorg took its block away
    IntentState.REJECTED: frozenset(),
    IntentState.FAILED: frozenset(),
}

# Waiting for an outcome: the nonce is held and the intent counts against the agent's limits. An intent
# pending approval is live for the relayer (its nonce is taken, its USDC counted in the agent's context,
# so later intents queue behind it) though nothing is sent or reserved on chain.
LIVE: Final = frozenset({IntentState.PENDING_APPROVAL, IntentState.RECEIVED, IntentState.SUBMITTED})
# Holding the agent's nonce (the database's partial unique index `uq_intents_live_nonce` agrees).
HOLDS_NONCE: Final = frozenset({*LIVE, IntentState.CONFIRMED})
# Closed without using the nonce: the agent's later intents can never be mined behind it.
CLOSED: Final = frozenset({IntentState.REJECTED, IntentState.FAILED})


class IllegalTransitionError(RuntimeError):
    def __init__(self, intent_id: int, current: IntentState, to: IntentState) -> None:
        super().__init__(f"intent {intent_id}: no transition {current} → {to}")
        self.current = current
        self.to = to


def allowed(current: IntentState, to: IntentState) -> bool:
    return to in TRANSITIONS[current]


def state_of(row: Intent) -> IntentState:
    return IntentState(row.status)


def record(session: Session, row: Intent, state: IntentState = IntentState.RECEIVED) -> Intent:
    """Insert a new intent as `received` or `pending_approval` (with its history row and stream event)."""
    if state not in (IntentState.RECEIVED, IntentState.PENDING_APPROVAL):
        raise ValueError(f"an intent is recorded received or pending_approval, not {state}")
    row.status = state
    session.add(row)
    session.flush()
    if state is IntentState.PENDING_APPROVAL:
        # One approval per intent: its id is the intent's (a typed id in the approvals' paths).
        row.approval_id = str(row.id)
        row.approval = "pending"
        session.flush()
    _log_state(session, row, state, None)
    return row


def transition(
    session: Session,
    row: Intent,
    to: IntentState,
    reason: str | None = None,
    **fields: Any,
) -> bool:
    """Move `row` from the state it was read in to `to`, with `fields` set in the same UPDATE.

    An approval decision's `decided_by` field also goes into the stream event as `decidedBy`, so
    webhooks carry who decided.

    Returns False, changing nothing, when the row is no longer in that state (another finalizer or
    process got there first). Raises IllegalTransitionError for a move the table does not allow: a
    bug, never an input error.
    """
    current = state_of(row)
    if not allowed(current, to):
        raise IllegalTransitionError(row.id, current, to)
    values: dict[str, Any] = {"status": to.value, "updated_at": utcnow(), **fields}
    if reason is not None:
        values["reason"] = reason
    done = session.execute(
        update(Intent)
        .where(Intent.id == row.id, Intent.status == current.value)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        return False
    for key, value in values.items():
        set_committed_value(row, key, value)
    _log_state(session, row, to, reason, fields.get("decided_by"))
    return True


def _log_state(
    session: Session, row: Intent, state: IntentState, reason: str | None, decided_by: str | None = None
) -> None:
    session.add(IntentStatus(intent_id=row.id, status=state.value, reason=reason))
    event: dict[str, Any] = {
        "intentId": str(row.id),
        "status": state.value,
        "nonce": row.nonce,
        "primaryType": row.primary_type,
        "reason": reason,
        "transactionHash": row.tx_hash,
    }
    if row.approval_id is not None:
        event["approvalId"] = row.approval_id
    if decided_by is not None:
        event["decidedBy"] = decided_by
    mirror.append_stream(session, row.agent_id, "intent_status", event)


def intent_json(row: Intent) -> dict[str, Any]:
    """The intent record the API answers (SPEC §2.2, §2.3; `batch` per §5.1)."""
    out: dict[str, Any] = {
        "intentId": str(row.id),
        "agentId": str(row.agent_id),
        "type": row.primary_type,
        "nonce": row.nonce,
        "digest": row.digest,
        "status": row.status,
        "positionId": str(row.position_id) if row.position_id is not None else None,
        "transactionHash": row.tx_hash,
        "blockNumber": row.block_number,
        "createdAt": row.created_at.isoformat(),
        "updatedAt": row.updated_at.isoformat(),
    }
    if row.batch_index is not None and row.batch_size is not None:
        out["batch"] = {"transactionHash": row.tx_hash, "index": row.batch_index, "size": row.batch_size}
    if row.fill is not None:
        out["fill"] = row.fill
    if row.reason is not None:
        out["reason"] = row.reason
    if row.approval_id is not None:
        out["approvalId"] = row.approval_id
    return out
