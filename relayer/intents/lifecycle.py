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

`transition` (`transition_all` for a batch's rows) is a compare-and-set on the status (so two
finalizers, or two relayer processes, can never both record an outcome), and writes the history row
and the agent's stream event in the same database transaction. Nothing else writes `Intent.status`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any, Final

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session, load_only, make_transient_to_detached
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
    # A Core INSERT of the attributes set (an ORM flush of one new object cost several times the
    # statement), then the row joins the session as if loaded: persistent, every column known.
    values = {k: v for k, v in row.__dict__.items() if k in _COLUMNS and k != "id"}
    now = utcnow()
    values.setdefault("created_at", now)
    values.setdefault("updated_at", now)
    values["status"] = state.value
    if state is IntentState.PENDING_APPROVAL:
        values["approval"] = "pending"
    intent_id = session.execute(_INTENT_INSERT, values).scalar_one()
    if state is IntentState.PENDING_APPROVAL:
        # One approval per intent: its id is the intent's (a typed id in the approvals' paths).
        values["approval_id"] = str(intent_id)
        session.execute(_update_own(("approval_id",)), {"_id": intent_id, "v_approval_id": str(intent_id)})
    row.id = intent_id
    make_transient_to_detached(row)
    session.add(row)
    for key in _COLUMNS:
        if key != "id":
            set_committed_value(row, key, values.get(key))
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
    return bool(transition_all(session, [row], to, reason, **fields))


# What a transition reads and writes of a row, and `intent_json` shows: no request, message or signature
# (JSON to parse per row that a batch recorded or settled never looks at).
_TRANSITION_COLUMNS: Final = (
    "agent_id",
    "primary_type",
    "nonce",
    "digest",
    "status",
    "reason",
    "error",
    "position_id",
    "tx_request_id",
    "tx_hash",
    "block_number",
    "fill",
    "batch_index",
    "batch_size",
    "approval_id",
    "approval",
    "deadline",
    "created_at",
    "updated_at",
)


_NARROW = load_only(*(getattr(Intent, c) for c in _TRANSITION_COLUMNS))
_BY_IDS: Final = select(Intent).where(Intent.id.in_(bindparam("ids", expanding=True))).options(_NARROW)
_BY_ID: Final = select(Intent).where(Intent.id == bindparam("id")).options(_NARROW)


def for_transition(session: Session, ids: Sequence[int]) -> list[Intent]:
    """The rows `ids` as `transition_all` needs them and `intent_json` shows them (the rest of a row
    loads if touched)."""
    return list(session.scalars(_BY_IDS, {"ids": list(ids)}).all())


def read(session: Session, intent_id: int) -> Intent | None:
    """One intent as `intent_json` shows it (its request, message and signature load if touched)."""
    return session.scalars(_BY_ID, {"id": intent_id}).first()


def transition_all(
    session: Session,
    rows: Sequence[Intent],
    to: IntentState,
    reason: str | None = None,
    *,
    each: Mapping[int, Mapping[str, Any]] | None = None,
    **fields: Any,
) -> list[Intent]:
    """`transition` for many rows at once (a batch recorded or settled): each row moves from the state
    it was read in to `to`, with `fields` and its own `each[row.id]` set, as a compare-and-set per row.
    A few statements whatever the number of rows: one UPDATE … WHERE id IN (…) AND status = the state
    read (per state read), one executemany UPDATE for the rows' own fields, one executemany INSERT
    each for the history and the stream.

    Returns the rows moved, in the order given; a row no longer in the state it was read in is left
    unchanged (as `transition` leaves it). Raises IllegalTransitionError, writing nothing, if any
    move is not in the table."""
    for row in rows:
        current = state_of(row)
        if not allowed(current, to):
            raise IllegalTransitionError(row.id, current, to)
    if not rows:
        return []
    # What the ORM would have flushed before its UPDATE (cheap when nothing is pending).
    session.flush()
    values: dict[str, Any] = {"status": to.value, "updated_at": utcnow(), **fields}
    if reason is not None:
        values["reason"] = reason
    own = each or {}
    moved_ids: set[int] = set()
    by_state: dict[str, list[Intent]] = {}
    for row in rows:
        by_state.setdefault(row.status, []).append(row)
    for read_as, group in by_state.items():
        if len(group) == 1:
            row = group[0]
            mine = {**values, **own.get(row.id, {})}
            done = session.execute(_update_one(tuple(mine)), {"_id": row.id, "_from": read_as, **_v(mine)})
            if done.rowcount == 1:  # type: ignore[attr-defined]
                moved_ids.add(row.id)
            continue
        ids = [row.id for row in group]
        moved_ids.update(
            session.execute(
                _update_many(tuple(values)), {"_ids": ids, "_from": read_as, **_v(values)}
            ).scalars()
        )
        _set_own(session, [row for row in group if row.id in moved_ids], own)
    moved = [row for row in rows if row.id in moved_ids]
    for row in moved:
        for key, value in values.items():
            set_committed_value(row, key, value)
        for key, value in own.get(row.id, {}).items():
            set_committed_value(row, key, value)
    _log_states(session, moved, to, reason, fields.get("decided_by"))
    return moved


# The statements are built once per set of columns (building an UPDATE per row cost more CPU than
# running it). Bound names carry a prefix: SQLAlchemy reserves a column's own name in SET.
_INTENTS = Intent.__table__.c
_COLUMNS: Final = frozenset(c.key for c in Intent.__table__.columns)
_INTENT_INSERT = insert(Intent.__table__).returning(_INTENTS.id)  # type: ignore[arg-type]
_HISTORY_INSERT = insert(IntentStatus.__table__)  # type: ignore[arg-type]


def _v(values: Mapping[str, Any]) -> dict[str, Any]:
    return {f"v_{k}": v for k, v in values.items()}


@functools.lru_cache(maxsize=64)
def _update_one(columns: tuple[str, ...]) -> Any:
    return (
        update(Intent.__table__)  # type: ignore[arg-type]
        .where(_INTENTS.id == bindparam("_id"), _INTENTS.status == bindparam("_from"))
        .values({c: bindparam(f"v_{c}") for c in columns})
    )


@functools.lru_cache(maxsize=64)
def _update_many(columns: tuple[str, ...]) -> Any:
    return (
        update(Intent.__table__)  # type: ignore[arg-type]
        .where(_INTENTS.id.in_(bindparam("_ids", expanding=True)), _INTENTS.status == bindparam("_from"))
        .values({c: bindparam(f"v_{c}") for c in columns})
        .returning(_INTENTS.id)
    )


@functools.lru_cache(maxsize=64)
def _update_own(columns: tuple[str, ...]) -> Any:
    return (
        update(Intent.__table__)  # type: ignore[arg-type]
        .where(_INTENTS.id == bindparam("_id"))
        .values({c: bindparam(f"v_{c}") for c in columns})
    )


def _set_own(session: Session, rows: Sequence[Intent], own: Mapping[int, Mapping[str, Any]]) -> None:
    """The rows' own fields (they moved in this database transaction: no one else writes them now)."""
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        mine = own.get(row.id)
        if mine:
            by_columns.setdefault(tuple(mine), []).append({"_id": row.id, **_v(mine)})
    for columns, params in by_columns.items():
        session.execute(_update_own(columns), params)


def _log_states(
    session: Session, rows: Sequence[Intent], state: IntentState, reason: str | None, decided_by: str | None
) -> None:
    if not rows:
        return
    history = [{"intent_id": row.id, "status": state.value, "reason": reason} for row in rows]
    # One row: a plain execute (an executemany's machinery costs more than the row).
    session.execute(_HISTORY_INSERT, history[0] if len(history) == 1 else history)
    events: list[tuple[int, str, dict[str, Any]]] = []
    for row in rows:
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
        events.append((row.agent_id, "intent_status", event))
    mirror.append_streams(session, events)


def _log_state(
    session: Session, row: Intent, state: IntentState, reason: str | None, decided_by: str | None = None
) -> None:
    _log_states(session, [row], state, reason, decided_by)


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
