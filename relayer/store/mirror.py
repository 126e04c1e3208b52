"""Writes of the chain mirror: positions, their history, agent counters, the stream, the cursor.

Every write is an upsert or an insert-if-absent (`ON CONFLICT`, which SQLite and PostgreSQL both
have): several relayer processes index the same chain into one database, and each must be able to
write what another already wrote without failing.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from relayer.domain.ladder import exits_to_json
from relayer.state import Counters, PositionInfo
from relayer.store.models import AgentCounters, Base, IndexerCursor, Position, PositionEvent, StreamEvent

CURSOR = "router"


def _insert(session: Session, model: type[Base]) -> Any:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return pg_insert(model)
    if dialect == "sqlite":
        return sqlite_insert(model)
    raise NotImplementedError(f"no upsert for {dialect}")


def _upsert(session: Session, model: type[Base], key: str, values: dict[str, Any]) -> None:
    stmt = _insert(session, model).values(**values)
    updates = {k: stmt.excluded[k] for k in values if k != key}
    session.execute(stmt.on_conflict_do_update(index_elements=[key], set_=updates))


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
    stmt = _insert(session, PositionEvent).values(
        position_id=position_id,
        kind=kind,
        block_number=block_number,
        block_timestamp=block_timestamp,
        tx_hash=tx_hash,
        log_index=log_index,
        data=data,
    )
    session.execute(stmt.on_conflict_do_nothing(index_elements=["tx_hash", "log_index"]))


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


def append_stream(
    session: Session, agent_id: int, type_: str, data: dict[str, Any], dedupe_key: str | None = None
) -> None:
    if dedupe_key is None:
        session.add(StreamEvent(agent_id=agent_id, type=type_, data=data))
        return
    stmt = _insert(session, StreamEvent).values(
        agent_id=agent_id, type=type_, data=data, dedupe_key=dedupe_key
    )
    session.execute(stmt.on_conflict_do_nothing(index_elements=["dedupe_key"]))


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
    for model in (PositionEvent, Position, AgentCounters, IndexerCursor):
        session.execute(delete(model))
