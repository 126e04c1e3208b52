"""The outbox on both databases, without a chain: rows written in the stream event's transaction (and
rolled back with it), none for a chain event written before, claims that never overlap between
workers, leases that expire, removed subscriptions cancelled."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from relayer.operators import webhooks
from relayer.operators.delivery import WebhookDelivery
from relayer.operators.outbox import Subscriptions
from relayer.store import mirror
from relayer.store.models import StreamEvent, WebhookAttempt, WebhookOutbox


def hooked(factory: sessionmaker[Session], *subs: tuple[list[str], int | None]) -> list[int]:
    with factory.begin() as session:
        ids = [
            webhooks.create(session, "http://127.0.0.1:9/", events, agent, None).id for events, agent in subs
        ]
    s = Subscriptions(factory)
    s.attach()
    s.reload()
    return ids


def count(factory: sessionmaker[Session], model: type[StreamEvent] | type[WebhookOutbox]) -> int:
    with factory() as session:
        return int(session.execute(select(func.count()).select_from(model)).scalar_one())


def test_outbox_rows_share_the_event_transaction(sessions: sessionmaker[Session]) -> None:
    every, fills = hooked(sessions, (["*"], None), (["fill"], 1))
    with sessions.begin() as session:
        mirror.append_stream(session, 1, "fill", {"x": 1}, dedupe_key="0xaa:0")
        mirror.append_stream(session, 2, "fill", {"x": 2}, dedupe_key="0xaa:1")
        mirror.append_stream(session, 1, "intent_status", {"status": "received"})
    with sessions() as session:
        got = session.execute(
            select(WebhookOutbox.subscription_id, WebhookOutbox.event_seq, WebhookOutbox.event_type).order_by(
                WebhookOutbox.id
            )
        ).all()
        seqs = list(session.execute(select(StreamEvent.seq).order_by(StreamEvent.seq)).scalars())
    assert sorted(got) == sorted(
        [
            (every, seqs[0], "fill"),
            (fills, seqs[0], "fill"),
            (every, seqs[1], "fill"),
            (every, seqs[2], "intent_status"),
        ]
    )

    # a chain event written before (another process, a rebuild): no second stream row, no outbox row
    with sessions.begin() as session:
        mirror.append_stream(session, 1, "fill", {"x": 1}, dedupe_key="0xaa:0")
    assert (count(sessions, StreamEvent), count(sessions, WebhookOutbox)) == (3, 4)

    # rolled back together
    with pytest.raises(RuntimeError), sessions.begin() as session:
        mirror.append_stream(session, 1, "fill", {"x": 3}, dedupe_key="0xbb:0")
        mirror.append_stream(session, 1, "intent_status", {"status": "failed"})
        raise RuntimeError("the intent's transaction fails")
    assert (count(sessions, StreamEvent), count(sessions, WebhookOutbox)) == (3, 4)


def test_claims_never_overlap_and_leases_expire(sessions: sessionmaker[Session]) -> None:
    (sub,) = hooked(sessions, (["*"], None))
    with sessions.begin() as session:
        for i in range(40):
            mirror.append_stream(session, 1, "intent_status", {"i": i})
    subs = Subscriptions(sessions)
    workers = [WebhookDelivery(sessions, subs, batch=8) for _ in range(4)]
    claimed: list[list[int]] = [[] for _ in workers]
    barrier = threading.Barrier(len(workers))

    def claim(n: int) -> None:
        barrier.wait()
        for _ in range(3):
            claimed[n].extend(c.id for c in workers[n].claim())

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(len(workers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [i for ids in claimed for i in ids]
    assert len(every) == len(set(every)) == 40  # each row claimed once, by one worker
    assert workers[0].claim() == []  # all leased
    with sessions.begin() as session:  # a crashed worker's lease runs out
        session.execute(
            update(WebhookOutbox)
            .where(WebhookOutbox.id.in_(claimed[0]))
            .values(lease_until=datetime.now(UTC) - timedelta(seconds=1))
        )
    again = sorted(c.id for c in workers[1].claim() + workers[1].claim())
    assert again == sorted(claimed[0])[:16], (claimed, again)

    with sessions.begin() as session:
        webhooks.remove(session, sub)
    with sessions() as session:
        statuses = set(session.execute(select(WebhookOutbox.status)).scalars())
    assert statuses == {"cancelled"}
    for w in workers:
        w.client.close()


def test_a_subscription_removed_elsewhere_is_cancelled_at_claim(sessions: sessionmaker[Session]) -> None:
    (sub,) = hooked(sessions, (["*"], None))
    with sessions.begin() as session:
        mirror.append_stream(session, 1, "intent_status", {"i": 0})
        # removed by another process: its rows are still pending here (and the snapshot is stale)
        row = webhooks.live(session, sub)
        row.deleted_at = datetime.now(UTC)
    worker = WebhookDelivery(sessions, Subscriptions(sessions))
    assert worker.claim() == []
    with sessions() as session:
        assert list(session.execute(select(WebhookOutbox.status)).scalars()) == ["cancelled"]
    worker.client.close()


def test_final_rows_past_the_retention_are_deleted_with_their_attempts(
    sessions: sessionmaker[Session],
) -> None:
    """Delivered, given-up and cancelled rows go once their last attempt (or creation) is older than the
    retention, with their attempts, in chunks; a pending row stays however old it is."""
    hooked(sessions, (["*"], None))
    with sessions.begin() as session:
        for i in range(7):
            mirror.append_stream(session, 1, "intent_status", {"i": i})
    now = datetime.now(UTC)
    day = timedelta(days=1)
    # (status, last attempt) per row, in id order
    plan: list[tuple[str, datetime | None]] = [
        ("delivered", now - 8 * day),  # old and final: deleted
        ("failed", now - 9 * day),  # given up long ago: deleted
        ("cancelled", None),  # never attempted; created 10 days ago below: deleted
        ("pending", now - 30 * day),  # still to deliver: kept, however old
        ("delivered", now - 6 * day),  # inside the retention: kept
        ("delivered", now - 8 * day),
        ("failed", now - 1 * day),  # kept
    ]
    with sessions.begin() as session:
        ids = list(session.execute(select(WebhookOutbox.id).order_by(WebhookOutbox.id)).scalars())
        assert len(ids) == len(plan)
        for outbox_id, (status, last) in zip(ids, plan, strict=True):
            session.execute(
                update(WebhookOutbox)
                .where(WebhookOutbox.id == outbox_id)
                .values(status=status, last_attempt_at=last, created_at=now - 10 * day)
            )
            if last is not None:
                session.add(WebhookAttempt(outbox_id=outbox_id, at=last, status_code=200, duration_ms=3))
    worker = WebhookDelivery(sessions, Subscriptions(sessions), retention=7 * day)
    assert worker.prune(now, chunk=2) == 4
    with sessions() as session:
        left = list(session.execute(select(WebhookOutbox.id).order_by(WebhookOutbox.id)).scalars())
        attempts = set(session.execute(select(WebhookAttempt.outbox_id)).scalars())
    assert left == [ids[3], ids[4], ids[6]]
    assert attempts == {ids[3], ids[4], ids[6]}
    assert worker.prune(now) == 0
