"""Writes of the chain mirror: positions, their history, agent counters, the stream, the cursor."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from relayer.domain.ladder import exits_to_json
from relayer.state import Counters, PositionInfo
from relayer.store.models import AgentCounters, IndexerCursor, Position, PositionEvent, StreamEvent

CURSOR = "router"


def upsert_position(session: Session, p: PositionInfo) -> None:
    row = session.get(Position, p.position_id)
    if row is None:
        row = Position(id=p.position_id)
        session.add(row)
    row.agent_id = p.agent_id
    row.token = p.token
    row.status = "open" if p.open else "closed"
    row.size = p.size
    row.cost_basis = p.cost_basis
    row.realized_pnl = p.realized_pnl
    row.exits_hash = p.exits_hash
    row.rules = exits_to_json(p.rules)
    row.fired_mask = p.fired_mask
    row.opened_at = p.opened_at
    row.open_tx = p.open_tx
    row.closed_at = p.closed_at
    row.close_tx = p.close_tx


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
    session.add(
        PositionEvent(
            position_id=position_id,
            kind=kind,
            block_number=block_number,
            block_timestamp=block_timestamp,
            tx_hash=tx_hash,
            log_index=log_index,
            data=data,
        )
    )


def upsert_counters(session: Session, agent_id: int, c: Counters) -> None:
    row = session.get(AgentCounters, agent_id)
    if row is None:
        row = AgentCounters(agent_id=agent_id)
        session.add(row)
    row.next_nonce = c.next_nonce
    row.deployed = c.deployed
    row.day = c.day
    row.turnover_today = c.turnover_today
    row.realized_pnl_today = c.realized_pnl_today


def append_stream(
    session: Session, agent_id: int, type_: str, data: dict[str, Any], dedupe_key: str | None = None
) -> None:
    if (
        dedupe_key is not None
        and session.scalar(select(StreamEvent.seq).where(StreamEvent.dedupe_key == dedupe_key)) is not None
    ):
        return
    session.add(StreamEvent(agent_id=agent_id, type=type_, data=data, dedupe_key=dedupe_key))


def cursor(session: Session) -> IndexerCursor | None:
    return session.get(IndexerCursor, CURSOR)


def set_cursor(session: Session, block_number: int, block_hash: str) -> None:
    row = session.get(IndexerCursor, CURSOR)
    if row is None:
        session.add(IndexerCursor(name=CURSOR, block_number=block_number, block_hash=block_hash))
    else:
        row.block_number = block_number
        row.block_hash = block_hash


def clear(session: Session) -> None:
    """Forget the mirror (not intents, transactions or the stream): it is rebuilt from events."""
    for model in (PositionEvent, Position, AgentCounters, IndexerCursor):
        session.execute(delete(model))
