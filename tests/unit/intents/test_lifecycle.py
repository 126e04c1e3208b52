"""The intent lifecycle: its transition table and the one function that performs a transition
(compare-and-set, history row, stream event), on a real SQLite database (and PostgreSQL for the
batch form)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from relayer.intents.lifecycle import (
    CLOSED,
    HOLDS_NONCE,
    LIVE,
    TRANSITIONS,
    IllegalTransitionError,
    IntentState,
    allowed,
    intent_json,
    record,
    transition,
    transition_all,
)
from relayer.store.db import make_engine, make_session_factory
from relayer.store.migrate import upgrade
from relayer.store.models import LIVE_NONCE_WHERE, Intent, IntentStatus, StreamEvent


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'lifecycle.db'}")
    upgrade(engine)
    yield make_session_factory(engine)
    engine.dispose()


def new_intent(session: Session, nonce: int = 0) -> Intent:
    row = Intent(
        agent_id=1,
        primary_type="OpenPosition",
        nonce=nonce,
        digest="0x" + f"{nonce:064x}",
        request={},
        message={},
        signature="0x",
    )
    return record(session, row)


def test_the_table_covers_every_state() -> None:
    assert set(TRANSITIONS) == set(IntentState)


def test_closed_states_are_final() -> None:
    for state in CLOSED:
        assert TRANSITIONS[state] == frozenset()


def test_live_states_hold_the_nonce_and_closed_ones_do_not() -> None:
    assert LIVE < HOLDS_NONCE
    assert not (HOLDS_NONCE & CLOSED)


@pytest.mark.parametrize(
    ("current", "to", "ok"),
    [
        (IntentState.RECEIVED, IntentState.SUBMITTED, True),
        (IntentState.RECEIVED, IntentState.REJECTED, True),
        (IntentState.RECEIVED, IntentState.CONFIRMED, True),  # relayed by someone else first
        (IntentState.RECEIVED, IntentState.FAILED, False),  # never sent: it cannot have failed
        (IntentState.SUBMITTED, IntentState.CONFIRMED, True),
        (IntentState.SUBMITTED, IntentState.FAILED, True),
        (IntentState.SUBMITTED, IntentState.REJECTED, False),
        (IntentState.CONFIRMED, IntentState.SUBMITTED, True),  # reorg
        (IntentState.CONFIRMED, IntentState.FAILED, False),
        (IntentState.REJECTED, IntentState.RECEIVED, False),
        (IntentState.FAILED, IntentState.SUBMITTED, False),
        (IntentState.PENDING_APPROVAL, IntentState.RECEIVED, True),  # approved
        (IntentState.PENDING_APPROVAL, IntentState.REJECTED, True),  # refused, or its deadline passed
        (IntentState.PENDING_APPROVAL, IntentState.SUBMITTED, False),  # nothing is sent while pending
        (IntentState.PENDING_APPROVAL, IntentState.CONFIRMED, False),
        (IntentState.PENDING_APPROVAL, IntentState.FAILED, False),
        (IntentState.RECEIVED, IntentState.PENDING_APPROVAL, False),  # a decision is final
        (IntentState.REJECTED, IntentState.PENDING_APPROVAL, False),
    ],
)
def test_allowed(current: IntentState, to: IntentState, ok: bool) -> None:
    assert allowed(current, to) is ok


def test_record_writes_received_with_history_and_event(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        row = new_intent(session)
        intent_id = row.id
    with sessions() as session:
        assert session.get(Intent, intent_id).status == "received"  # type: ignore[union-attr]
        history = session.scalars(
            select(IntentStatus.status).where(IntentStatus.intent_id == intent_id)
        ).all()
        assert history == ["received"]
        events = session.scalars(select(StreamEvent)).all()
        assert [(e.type, e.data["status"]) for e in events] == [("intent_status", "received")]


def test_transition_sets_fields_and_logs_once(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        row = new_intent(session)
        assert transition(session, row, IntentState.SUBMITTED, tx_hash="0xaa", batch_index=2, batch_size=5)
        assert row.status == "submitted" and row.batch_index == 2
        out = intent_json(row)
        assert out["batch"] == {"transactionHash": "0xaa", "index": 2, "size": 5}
        intent_id = row.id
    with sessions() as session:
        stored = session.get(Intent, intent_id)
        assert stored is not None and (stored.status, stored.tx_hash, stored.batch_size) == (
            "submitted",
            "0xaa",
            5,
        )
        history = session.scalars(
            select(IntentStatus.status).where(IntentStatus.intent_id == intent_id)
        ).all()
        assert history == ["received", "submitted"]
        last = session.scalars(select(StreamEvent).order_by(StreamEvent.seq.desc())).first()
        assert last is not None and last.data["transactionHash"] == "0xaa"


def test_transition_is_a_compare_and_set(sessions: sessionmaker[Session]) -> None:
    """Two finalizers read the intent as submitted; only the first records an outcome."""
    with sessions.begin() as session:
        row = new_intent(session)
        transition(session, row, IntentState.SUBMITTED)
        intent_id = row.id
    with sessions() as first, sessions() as second:
        a = first.get(Intent, intent_id)
        b = second.get(Intent, intent_id)
        assert a is not None and b is not None
        assert transition(first, a, IntentState.CONFIRMED, tx_hash="0x01")
        first.commit()
        assert not transition(second, b, IntentState.FAILED, "reverted")
        second.commit()
    with sessions() as session:
        stored = session.get(Intent, intent_id)
        assert stored is not None and stored.status == "confirmed" and stored.reason is None
        history = session.scalars(
            select(IntentStatus.status).where(IntentStatus.intent_id == intent_id)
        ).all()
        assert history == ["received", "submitted", "confirmed"]


def test_an_illegal_transition_is_a_bug_not_a_write(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        row = new_intent(session)
        with pytest.raises(IllegalTransitionError):
            transition(session, row, IntentState.FAILED)
        assert row.status == "received"


def test_reason_is_stored_with_the_history(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        row = new_intent(session)
        transition(session, row, IntentState.REJECTED, "slippage_exceeded: would revert", error={"code": "x"})
        intent_id = row.id
    with sessions() as session:
        stored = session.get(Intent, intent_id)
        assert stored is not None and stored.reason == "slippage_exceeded: would revert"
        assert stored.error == {"code": "x"}
        reasons = session.scalars(
            select(IntentStatus.reason).where(IntentStatus.intent_id == intent_id)
        ).all()
        assert reasons == [None, "slippage_exceeded: would revert"]


def test_pending_approval_holds_the_nonce_and_the_database_index_agrees() -> None:
    assert IntentState.PENDING_APPROVAL in LIVE and IntentState.PENDING_APPROVAL in HOLDS_NONCE
    listed = set(re.findall(r"'([a-z_]+)'", LIVE_NONCE_WHERE))
    assert listed == {s.value for s in HOLDS_NONCE}


def test_record_pending_approval_gets_an_approval_id(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        row = record(session, _intent(0), IntentState.PENDING_APPROVAL)
        intent_id = row.id
        assert intent_json(row)["approvalId"] == str(intent_id)
    with sessions() as session:
        stored = session.get(Intent, intent_id)
        assert stored is not None and (stored.status, stored.approval) == ("pending_approval", "pending")
        event = session.scalars(select(StreamEvent)).one()
        assert event.data["status"] == "pending_approval" and event.data["approvalId"] == str(intent_id)


def test_record_refuses_other_starting_states(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session, pytest.raises(ValueError):
        record(session, _intent(0), IntentState.SUBMITTED)


def test_a_pending_intent_holds_its_nonce_in_the_database(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        record(session, _intent(0), IntentState.PENDING_APPROVAL)
    with pytest.raises(IntegrityError), sessions.begin() as session:
        record(session, _intent(0, digest_salt=1))


def test_a_decision_carries_who_decided_into_the_event(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        row = record(session, _intent(0), IntentState.PENDING_APPROVAL)
        assert transition(session, row, IntentState.RECEIVED, "approved by alice", decided_by="alice")
    with sessions() as session:
        last = session.scalars(select(StreamEvent).order_by(StreamEvent.seq.desc())).first()
        assert last is not None and last.data["decidedBy"] == "alice" and last.data["status"] == "received"


def _intent(nonce: int, digest_salt: int = 0) -> Intent:
    return Intent(
        agent_id=1,
        primary_type="OpenPosition",
        nonce=nonce,
        digest="0x" + f"{nonce + (digest_salt << 128):064x}",
        request={},
        message={},
        signature="0x",
    )


# ---------------------------------------------------------------------- many rows at once (both databases)

@pytest.fixture
def both(both_databases: sessionmaker[Session]) -> sessionmaker[Session]:
    """`transition_all` uses UPDATE … RETURNING and executemany: on SQLite and on PostgreSQL."""
    return both_databases


def test_transition_all_moves_each_row_with_its_own_fields(both: sessionmaker[Session]) -> None:
    with both.begin() as session:
        rows = [new_intent(session, nonce) for nonce in range(3)]
        moved = transition_all(
            session,
            rows,
            IntentState.SUBMITTED,
            each={r.id: {"batch_index": i} for i, r in enumerate(rows)},
            tx_hash="0xbb",
            batch_size=3,
        )
        assert moved == rows
        assert [(r.status, r.batch_index, r.batch_size, r.tx_hash) for r in rows] == [
            ("submitted", i, 3, "0xbb") for i in range(3)
        ]
        ids = [r.id for r in rows]
    with both() as session:
        stored = session.scalars(select(Intent).where(Intent.id.in_(ids)).order_by(Intent.id)).all()
        assert [(r.status, r.batch_index, r.batch_size, r.tx_hash) for r in stored] == [
            ("submitted", i, 3, "0xbb") for i in range(3)
        ]
        history = session.execute(
            select(IntentStatus.intent_id, IntentStatus.status).order_by(IntentStatus.id)
        ).all()
        assert [tuple(h) for h in history] == [(i, "received") for i in ids] + [(i, "submitted") for i in ids]
        events = session.scalars(select(StreamEvent).order_by(StreamEvent.seq)).all()
        assert [(e.data["intentId"], e.data["status"]) for e in events] == [
            (str(i), "received") for i in ids
        ] + [(str(i), "submitted") for i in ids]
        assert all(e.data["transactionHash"] == "0xbb" for e in events[3:])


def test_transition_all_is_a_compare_and_set_per_row(both: sessionmaker[Session]) -> None:
    """A row another finalizer settled meanwhile is left as it is; the others move."""
    with both.begin() as session:
        rows = [new_intent(session, nonce) for nonce in range(3)]
        transition_all(session, rows, IntentState.SUBMITTED)
        ids = [r.id for r in rows]
    with both() as first, both() as second:
        mine = first.scalars(select(Intent).where(Intent.id.in_(ids)).order_by(Intent.id)).all()
        theirs = second.get(Intent, ids[1])
        assert theirs is not None
        assert transition(second, theirs, IntentState.FAILED, "reverted")
        second.commit()
        moved = transition_all(
            first,
            mine,
            IntentState.CONFIRMED,
            each={i: {"fill": {"usdc": str(i)}, "block_number": 7} for i in ids},
            tx_hash="0x01",
        )
        first.commit()
        assert [r.id for r in moved] == [ids[0], ids[2]]
        assert mine[1].status == "submitted"  # as read: not moved, not overwritten
    with both() as session:
        stored = {r.id: r for r in session.scalars(select(Intent).where(Intent.id.in_(ids))).all()}
        assert [stored[i].status for i in ids] == ["confirmed", "failed", "confirmed"]
        assert stored[ids[0]].fill == {"usdc": str(ids[0])} and stored[ids[0]].block_number == 7
        assert stored[ids[1]].fill is None and stored[ids[1]].reason == "reverted"
        history = session.scalars(
            select(IntentStatus.status).where(IntentStatus.intent_id == ids[1]).order_by(IntentStatus.id)
        ).all()
        assert history == ["received", "submitted", "failed"]


def test_transition_all_writes_nothing_for_an_illegal_move(both: sessionmaker[Session]) -> None:
    with both.begin() as session:
        rows = [new_intent(session, nonce) for nonce in range(2)]
        transition(session, rows[1], IntentState.SUBMITTED)
        with pytest.raises(IllegalTransitionError):
            transition_all(session, rows[::-1], IntentState.FAILED)  # submitted → failed alone is legal
        assert [r.status for r in rows] == ["received", "submitted"]
        ids = [r.id for r in rows]
    with both() as session:
        stored = session.scalars(select(Intent.status).where(Intent.id.in_(ids)).order_by(Intent.id)).all()
        assert stored == ["received", "submitted"]
