"""The webhook outbox's write side: which live subscriptions want a stream event, and the outbox rows
for them, written by `relayer.store.mirror.append_stream` in the transaction that writes the event
(so an event and its deliveries commit or roll back together).

The subscriptions are held in memory (`Subscriptions`) so that the hot path — every intent status
change writes a stream event — asks no query: it looks the event type up in a dict. The snapshot is
reloaded when this process changes a subscription and every `refresh_s` by the delivery worker (for
changes made by the CLI or another relayer process), so a new subscription sees events from at most
that long after it was made.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session, sessionmaker

from relayer.operators.webhooks import ALL
from relayer.store.mirror import HOOK_KEY
from relayer.store.models import WebhookOutbox, WebhookSubscription

# event type → ((subscription id, agent filter or None), …)
Snapshot = dict[str, tuple[tuple[int, int | None], ...]]


def index(rows: Sequence[tuple[int, Sequence[str], int | None]]) -> Snapshot:
    """Pure: the lookup table for (id, events, agent filter) rows; "*" is kept under its own key."""
    table: dict[str, list[tuple[int, int | None]]] = {}
    for sub_id, events, agent_id in rows:
        for event in events:
            table.setdefault(event, []).append((sub_id, agent_id))
    return {event: tuple(subs) for event, subs in table.items()}


def match(snapshot: Snapshot, type_: str, agent_id: int) -> list[int]:
    """Pure: the subscriptions that want an event of `type_` for `agent_id`."""
    found: list[int] = []
    for key in (type_, ALL):
        for sub_id, wanted in snapshot.get(key, ()):
            if (wanted is None or wanted == agent_id) and sub_id not in found:
                found.append(sub_id)
    return found


def body(seq: int, agent_id: int, type_: str, data: dict[str, Any], at: datetime) -> str:
    """The delivered JSON (Standard Webhooks' `type` / `timestamp` / `data`, plus the stream's event id
    and the agent), fixed when the row is written so every retry signs the same bytes."""
    doc = {
        "type": type_,
        "timestamp": at.isoformat().replace("+00:00", "Z"),
        "eventId": seq,
        "agentId": str(agent_id),
        "data": data,
    }
    return json.dumps(doc, separators=(",", ":"), sort_keys=True)


_OUTBOX_INSERT = insert(cast(Table, WebhookOutbox.__table__))


class Subscriptions:
    """The in-memory snapshot and the `append_stream` hook (`relayer.store.mirror.StreamHook`)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        self._snapshot: Snapshot = {}
        self._lock = threading.Lock()

    def attach(self) -> None:
        """Every session of the factory carries this hook from now on."""
        info = dict(self.sessions.kw.get("info") or {})
        info[HOOK_KEY] = self
        self.sessions.configure(info=info)

    def reload(self) -> None:
        with self._lock, self.sessions() as session:
            sub = WebhookSubscription
            rows = session.execute(
                select(sub.id, sub.events, sub.agent_id).where(sub.deleted_at.is_(None))
            ).all()
            self._snapshot = index([(r[0], r[1], r[2]) for r in rows])  # swapped whole: readers never lock

    # ------------------------------------------------------------------ the hook

    def matching(self, type_: str, agent_id: int) -> Sequence[int]:
        snapshot = self._snapshot
        if not snapshot:
            return ()
        return match(snapshot, type_, agent_id)

    def enqueue(
        self,
        session: Session,
        subscription_ids: Sequence[int],
        seq: int,
        agent_id: int,
        type_: str,
        data: dict[str, Any],
    ) -> None:
        text = body(seq, agent_id, type_, data, datetime.now(UTC))
        session.execute(
            _OUTBOX_INSERT,  # a Core statement on the table: no ORM bulk machinery per event
            [
                {
                    "subscription_id": sub_id,
                    "webhook_id": f"msg_{secrets.token_hex(12)}",
                    "event_seq": seq,
                    "event_type": type_,
                    "body": text,
                }
                for sub_id in subscription_ids
            ],
        )
