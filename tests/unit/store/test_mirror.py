"""The mirror's buffered writes (`mirror.buffered`, the indexer's per-batch executemany) leave the state
the same writes one by one leave: an upsert's last values, an insert-if-absent's first — on SQLite and
on PostgreSQL (where one statement must never touch a row twice)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from relayer.state import Counters, PositionInfo
from relayer.store import mirror
from relayer.store.models import AgentCounters, NonceUse, Position, PositionEvent, StreamEvent


@pytest.fixture
def sessions(both_databases: sessionmaker[Session]) -> sessionmaker[Session]:
    return both_databases


def position(size: int, *, open_: bool = True) -> PositionInfo:
    return PositionInfo(7, 1, "0x" + "11" * 20, size, size * 2, "0x" + "00" * 32, (), 0, open_, 100, "0xaa")


def event(session: Session, log_index: int, kind: str) -> None:
    mirror.add_position_event(
        session,
        7,
        kind,
        block_number=5,
        block_timestamp=100,
        tx_hash="0xaa",
        log_index=log_index,
        data={"kind": kind},
    )


def writes(session: Session) -> None:
    """A batch's writes, rows written more than once among them."""
    mirror.upsert_counters(session, 1, Counters(next_nonce=1, deployed=10))
    mirror.record_nonce_use(session, 1, 0, "0x" + "01" * 32, "0xaa", 5)
    mirror.upsert_position(session, position(10))
    event(session, 0, "opened")
    mirror.upsert_counters(session, 2, Counters(next_nonce=1))
    mirror.upsert_counters(session, 1, Counters(next_nonce=2, deployed=4))
    mirror.record_nonce_use(session, 1, 0, "0x" + "02" * 32, "0xbb", 6)  # already there: kept as first
    event(session, 0, "again")  # already there: kept as first
    event(session, 1, "reduced")
    mirror.upsert_position(session, position(4, open_=False))


def state(session: Session) -> dict[str, Any]:
    return {
        "counters": sorted(
            tuple(r)
            for r in session.execute(
                select(AgentCounters.agent_id, AgentCounters.next_nonce, AgentCounters.deployed)
            )
        ),
        "nonces": [
            tuple(r) for r in session.execute(select(NonceUse.agent_id, NonceUse.nonce, NonceUse.digest))
        ],
        "positions": [tuple(r) for r in session.execute(select(Position.id, Position.size, Position.status))],
        "events": sorted(
            tuple(r) for r in session.execute(select(PositionEvent.log_index, PositionEvent.kind))
        ),
    }


@pytest.mark.parametrize("batched", [False, True])
def test_buffered_writes_leave_what_one_by_one_leaves(sessions: sessionmaker[Session], batched: bool) -> None:
    with sessions.begin() as session:
        if batched:
            with mirror.buffered(session):
                writes(session)
                # Nothing is written before the end of the block.
                assert session.scalar(select(AgentCounters.agent_id)) is None
        else:
            writes(session)
    with sessions() as session:
        assert state(session) == {
            "counters": [(1, 2, 4), (2, 1, 0)],
            "nonces": [(1, 0, "0x" + "01" * 32)],
            "positions": [(7, 4, "closed")],
            "events": [(0, "opened"), (1, "reduced")],
        }


def test_an_error_inside_writes_nothing(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        with pytest.raises(RuntimeError), mirror.buffered(session):
            writes(session)
            raise RuntimeError("boom")
        assert "alphagrid.mirror_buffer" not in session.info  # later writes go straight out
        mirror.upsert_counters(session, 3, Counters(next_nonce=9))
        session.commit()
    with sessions() as session:
        assert state(session)["counters"] == [(3, 9, 0)] and state(session)["nonces"] == []


class Hook:
    """A webhook subscription that wants the `wanted` events (the outbox's side, in memory)."""

    def __init__(self) -> None:
        self.enqueued: list[int] = []

    def matching(self, type_: str, agent_id: int) -> list[int]:
        return [1] if type_ == "wanted" else []

    def enqueue(
        self, session: Session, subscription_ids: Any, seq: int, agent_id: int, type_: str, data: Any
    ) -> None:
        self.enqueued.append(seq)


def test_buffered_stream_keeps_the_order_of_its_events(sessions: sessionmaker[Session]) -> None:
    """Chain events wait in the buffer; one a webhook wants is written at once, after those before it;
    the relayer's own events likewise. The stream's order is the order appended."""
    hook = Hook()
    order = ["a", "b", "wanted-c", "d", "own-e", "f"]
    with sessions.begin() as session:
        session.info[mirror.HOOK_KEY] = hook
        with mirror.buffered(session):
            for name in order:
                if name.startswith("own-"):
                    mirror.append_stream(session, 1, "note", {"name": name})
                else:
                    type_ = "wanted" if name.startswith("wanted") else "note"
                    mirror.append_stream(session, 1, type_, {"name": name}, dedupe_key=f"0xaa:{name}")
            mirror.append_stream(session, 1, "note", {"name": "a"}, dedupe_key="0xaa:a")  # again: once
    with sessions() as session:
        rows = session.execute(select(StreamEvent.seq, StreamEvent.data).order_by(StreamEvent.seq)).all()
    assert [r.data["name"] for r in rows] == order
    assert hook.enqueued == [rows[2].seq]
