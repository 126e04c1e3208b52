"""Writes of the chain mirror: positions, their history, agent counters, the stream, the cursor.

Every write is an upsert or an insert-if-absent (`ON CONFLICT`, which SQLite and PostgreSQL both
have): several relayer processes index the same chain into one database, and each must be able to
write what another already wrote without failing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

from sqlalchemy import Table, delete, insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from relayer.domain.ladder import exits_to_json
from relayer.state import Counters, PositionInfo
from relayer.store.models import (
    AgentCounters,
    Base,
    IndexerCursor,
    NonceUse,
    Position,
    PositionEvent,
    StreamEvent,
)

CURSOR = "router"


_INSERTS: dict[str, Callable[[Table], Any]] = {"postgresql": pg_insert, "sqlite": sqlite_insert}


def _dialect(session: Session) -> str:
    name = session.get_bind().dialect.name
    if name not in _INSERTS:
        raise NotImplementedError(f"no upsert for {name}")
    return name


# The statements are built once per dialect, table and column set, and executed with the row as
# parameters: building an `insert … on conflict` (and its `excluded` alias) per row cost more CPU
# than the write itself. They are Core statements on the table, so no ORM bulk-insert machinery runs
# per row either; every write here is a statement, so there is nothing pending to autoflush first.
@functools.lru_cache(maxsize=64)
def _upsert_stmt(dialect: str, table: Table, key: str, columns: tuple[str, ...]) -> Any:
    stmt = _INSERTS[dialect](table)
    return stmt.on_conflict_do_update(
        index_elements=[key], set_={c: stmt.excluded[c] for c in columns if c != key}
    )


@functools.lru_cache(maxsize=64)
def _insert_absent_stmt(dialect: str, table: Table, conflict: tuple[str, ...]) -> Any:
    return _INSERTS[dialect](table).on_conflict_do_nothing(index_elements=list(conflict))


_BUFFER_KEY = "alphagrid.mirror_buffer"
# (statement, columns) → row key → the row's values, in the order written.
_Buffer = dict[tuple[Any, tuple[str, ...]], dict[tuple[Any, ...], dict[str, Any]]]


@contextmanager
def buffered(session: Session) -> Iterator[None]:
    """The mirror's row writes inside (positions, their events, counters, nonce uses, chain events of the
    stream) are sent when the block ends without an error: one executemany per statement, each row once with
    the values it was last written with (an upsert) or first (an insert-if-absent) — the state the
    writes one by one would leave. Nothing inside may read those tables back before the end."""
    buffer: _Buffer = {}
    session.info[_BUFFER_KEY] = buffer
    try:
        yield
    finally:
        session.info.pop(_BUFFER_KEY, None)
    for (stmt, _columns), rows in buffer.items():
        session.execute(stmt, list(rows.values()))


def _send_buffered(session: Session, stmt: Any) -> None:
    """Send now what a `buffered` block holds for `stmt` (before a write of the same table that cannot
    wait, so the table's rows keep the order of their writes)."""
    buffer: _Buffer | None = session.info.get(_BUFFER_KEY)
    if buffer is None:
        return
    for key in [k for k in buffer if k[0] is stmt]:
        session.execute(stmt, list(buffer.pop(key).values()))


def _upsert(session: Session, model: type[Base], key: str, values: dict[str, Any]) -> None:
    columns = tuple(values)
    stmt = _upsert_stmt(_dialect(session), model.__table__, key, columns)
    buffer: _Buffer | None = session.info.get(_BUFFER_KEY)
    if buffer is None:
        session.execute(stmt, values)
        return
    rows = buffer.setdefault((stmt, columns), {})
    rows.pop((values[key],), None)  # the last write wins, in its own place in the order
    rows[(values[key],)] = values


def _insert_absent(
    session: Session,
    model: type[Base],
    conflict: tuple[str, ...],
    values: dict[str, Any],
) -> None:
    stmt = _insert_absent_stmt(_dialect(session), model.__table__, conflict)
    buffer: _Buffer | None = session.info.get(_BUFFER_KEY)
    if buffer is None:
        session.execute(stmt, values)
        return
    rows = buffer.setdefault((stmt, tuple(values)), {})
    rows.setdefault(tuple(values[c] for c in conflict), values)  # the first write wins


def upsert_position(session: Session, p: PositionInfo) -> None:
    _upsert(
        session,
        Position,
        "id",
        {
            "id": p.position_id,
            "agent_id": p.agent_id,
            "token": p.token,
            "status": "open" if p.open else "closed",
            "size": p.size,
            "cost_basis": p.cost_basis,
            "realized_pnl": p.realized_pnl,
            "exits_hash": p.exits_hash,
            "rules": exits_to_json(p.rules),
            "fired_mask": p.fired_mask,
            "opened_at": p.opened_at,
            "open_tx": p.open_tx,
            "closed_at": p.closed_at,
            "close_tx": p.close_tx,
        },
    )


def add_position_event(
    session: Session,
    position_id: int,
    kind: str,
    *,
    block_number: int,
    block_timestamp: int,
    tx_hash: str,
    log_index: int,
    data: dict[str, Any],
) -> None:
    _insert_absent(
        session,
        PositionEvent,
        ("tx_hash", "log_index"),
        {
            "position_id": position_id,
            "kind": kind,
            "block_number": block_number,
            "block_timestamp": block_timestamp,
            "tx_hash": tx_hash,
            "log_index": log_index,
            "data": data,
        },
    )


def upsert_counters(session: Session, agent_id: int, c: Counters) -> None:
    _upsert(
        session,
        AgentCounters,
        "agent_id",
        {
            "agent_id": agent_id,
            "next_nonce": c.next_nonce,
            "deployed": c.deployed,
            "day": c.day,
            "turnover_today": c.turnover_today,
            "realized_pnl_today": c.realized_pnl_today,
        },
    )


class StreamHook(Protocol):
    """Told of each stream event in its transaction (the webhook outbox, relayer/operators/outbox.py).
    A session factory carries it in `Session.info[HOOK_KEY]`; sessions without one write the stream
    exactly as before."""

    def matching(self, type_: str, agent_id: int) -> Sequence[int]: ...

    def enqueue(
        self,
        session: Session,
        subscription_ids: Sequence[int],
        seq: int,
        agent_id: int,
        type_: str,
        data: dict[str, Any],
    ) -> None: ...


HOOK_KEY = "alphagrid.stream_hook"


@functools.lru_cache(maxsize=8)
def _insert_absent_returning_stmt(dialect: str) -> Any:
    table = StreamEvent.__table__
    return _insert_absent_stmt(dialect, table, ("dedupe_key",)).returning(table.c.seq)


# The relayer's own events (no dedupe key): a Core insert on the table, written at once and so in the
# order they are appended (an ORM object would wait for the next flush, behind later statements).
_STREAM_INSERT = insert(StreamEvent.__table__)  # type: ignore[arg-type]
_STREAM_INSERT_SEQ = _STREAM_INSERT.returning(StreamEvent.__table__.c.seq)


def append_stream(
    session: Session, agent_id: int, type_: str, data: dict[str, Any], dedupe_key: str | None = None
) -> None:
    """Appends to the agent's SSE stream and, in the same transaction, to the webhook outbox of every
    subscription that wants the event (the hook's in-memory lookup; no query when none does)."""
    hook: StreamHook | None = session.info.get(HOOK_KEY)
    wanted = hook.matching(type_, agent_id) if hook is not None else ()
    if dedupe_key is None:
        if _BUFFER_KEY in session.info:  # the chain's events held in a `buffered` block come first
            _send_buffered(
                session, _insert_absent_stmt(_dialect(session), StreamEvent.__table__, ("dedupe_key",))
            )
        values = {"agent_id": agent_id, "type": type_, "data": data}
        if wanted and hook is not None:
            seq = session.execute(_STREAM_INSERT_SEQ, values).scalar_one()  # the webhook body carries it
            hook.enqueue(session, wanted, seq, agent_id, type_, data)
        else:
            session.execute(_STREAM_INSERT, values)
        return
    values = {"agent_id": agent_id, "type": type_, "data": data, "dedupe_key": dedupe_key}
    if not wanted or hook is None:
        # Deferred in a `buffered` block too, in order (the buffer keeps it; a hooked event below sends
        # what waits before it).
        _insert_absent(session, StreamEvent, ("dedupe_key",), values)
        return
    _send_buffered(session, _insert_absent_stmt(_dialect(session), StreamEvent.__table__, ("dedupe_key",)))
    seq = session.execute(_insert_absent_returning_stmt(_dialect(session)), values).scalar_one_or_none()
    # None: this chain event was written before (another process indexing the same chain, or a
    # rebuild after a reorg), and its outbox rows with it.
    if seq is not None:
        hook.enqueue(session, wanted, seq, agent_id, type_, data)


def append_streams(session: Session, events: Sequence[tuple[int, str, dict[str, Any]]]) -> None:
    """`append_stream` for several (agent id, type, data) events, in order: one executemany INSERT
    when no webhook subscription wants any of them."""
    hook: StreamHook | None = session.info.get(HOOK_KEY)
    if hook is not None and any(hook.matching(t, a) for a, t, _d in events):
        for agent_id, type_, data in events:
            append_stream(session, agent_id, type_, data)
        return
    rows = [{"agent_id": a, "type": t, "data": d} for a, t, d in events]
    if rows:
        session.execute(_STREAM_INSERT, rows[0] if len(rows) == 1 else rows)


def record_nonce_use(
    session: Session, agent_id: int, nonce: int, digest: str, tx_hash: str, block_number: int
) -> None:
    """Index a `NonceUsed` event (a nonce is used once; a reorg clears the mirror before re-reading)."""
    _insert_absent(
        session,
        NonceUse,
        ("agent_id", "nonce"),
        {
            "agent_id": agent_id,
            "nonce": nonce,
            "digest": digest,
            "tx_hash": tx_hash,
            "block_number": block_number,
        },
    )


def cursor(session: Session) -> IndexerCursor | None:
    return session.get(IndexerCursor, CURSOR)


def set_cursor(session: Session, block_number: int, block_hash: str) -> None:
    _upsert(
        session,
        IndexerCursor,
        "name",
        {"name": CURSOR, "block_number": block_number, "block_hash": block_hash},
    )


def clear(session: Session) -> None:
    """Forget the mirror (not intents, transactions or the stream): it is rebuilt from events."""
    for model in (PositionEvent, Position, AgentCounters, NonceUse, IndexerCursor):
        session.execute(delete(model))
