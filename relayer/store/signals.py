"""Wake-ups between the relayer's processes on one PostgreSQL database (`alphagrid serve
--api-processes N`): PostgreSQL's LISTEN/NOTIFY, on a channel named for the database's schema.

A signal is only ever a hint to look again: what it points at is already committed (a signal is sent
after the commit that made it true), and every receiver also looks on its own timer, so a signal lost
to a dropped connection delays an answer, never changes it. After the listener reconnects it calls
every handler once with no ids ("something may have changed while I was away").

- `received`: API process → engine. A new intent is recorded `received` (or approved): dispatch.
- `sent`: engine → API processes. These intents' transaction is recorded (`submitted`).
- `final`: engine → API processes. These intents are final (confirmed, failed, rejected).
- `indexed`: engine → API processes. The engine's indexer committed up to this block: follow it.
- `subscriptions`: any → all. A webhook subscription changed: reload the outbox's snapshot.

This module is the one seam to NOTIFY: the payload is ``kind`` or ``kind:id,id,…`` (pure functions
`encode` / `decode`, split to stay under PostgreSQL's 8,000-byte payload limit).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from enum import StrEnum
from typing import Any, Final

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

log = logging.getLogger("alphagrid.signals")

MAX_PAYLOAD: Final = 7_900  # PostgreSQL refuses 8,000 bytes and more


class Signal(StrEnum):
    RECEIVED = "received"
    SENT = "sent"
    FINAL = "final"
    INDEXED = "indexed"
    SUBSCRIPTIONS = "subscriptions"


Handler = Callable[[Sequence[int]], None]


def encode(kind: Signal, ids: Iterable[int] = ()) -> list[str]:
    """The payloads for `kind` and `ids`: one without ids, else as few as fit the limit, in order."""
    payloads: list[str] = []
    current = ""
    for i in ids:
        part = str(int(i))
        if current and len(kind) + 1 + len(current) + 1 + len(part) > MAX_PAYLOAD:
            payloads.append(f"{kind}:{current}")
            current = ""
        current = f"{current},{part}" if current else part
    if current or not payloads:
        payloads.append(f"{kind}:{current}" if current else str(kind))
    return payloads


def decode(payload: str) -> tuple[Signal, list[int]] | None:
    """`None` for a payload this version does not know (another version's signal: ignored)."""
    kind, _, rest = payload.partition(":")
    try:
        signal = Signal(kind)
        ids = [int(p) for p in rest.split(",")] if rest else []
    except ValueError:
        return None
    return signal, ids


def channel_name(schema: str) -> str:
    """One channel per schema: NOTIFY is database-wide, and relayers (tests, soaks) share databases
    in schemas of their own."""
    return "alphagrid_" + hashlib.sha256(schema.encode()).hexdigest()[:20]


class Signals:
    """Sends and receives signals on one PostgreSQL database (`engine`)."""

    def __init__(self, engine: Engine) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError("signals between processes need PostgreSQL")
        self.engine = engine
        with engine.connect() as conn:
            # (the search path itself when its schema does not exist yet: never "None" for everyone)
            schema = conn.execute(
                select(func.coalesce(func.current_schema(), func.current_setting("search_path")))
            ).scalar_one()
        self.channel = channel_name(str(schema))
        self._handlers: dict[Signal, list[Handler]] = {}
        self.received_count = 0  # signals handled (tests, diagnostics)

    # ------------------------------------------------------------------ sending

    def send(self, kind: Signal, ids: Iterable[int] = ()) -> None:
        """After the commit that made it true. A failure is logged, not raised: receivers also poll."""
        try:
            with self.engine.connect() as conn:
                for payload in encode(kind, ids):
                    conn.execute(select(func.pg_notify(self.channel, payload)))
                conn.commit()
        except Exception:
            log.warning("signal %s not sent", kind, exc_info=True)

    def within(self, session: Session, kind: Signal, ids: Iterable[int] = ()) -> None:
        """In the caller's transaction: delivered when it commits, dropped if it rolls back."""
        for payload in encode(kind, ids):
            session.execute(select(func.pg_notify(self.channel, payload)))

    # ------------------------------------------------------------------ receiving

    def on(self, kind: Signal, handler: Handler) -> None:
        self._handlers.setdefault(kind, []).append(handler)

    def listen(self, stop: threading.Event, *, ready: threading.Event | None = None) -> None:
        """The listener thread's body: LISTEN on a connection of its own until `stop`; reconnects after
        a failure (then calls every handler with no ids)."""
        first = True
        while not stop.is_set():
            try:
                conn = self._connect()
            except Exception:
                log.warning("signal listener cannot connect; retrying", exc_info=True)
                stop.wait(1.0)
                continue
            try:
                conn.execute(f'LISTEN "{self.channel}"')
                if ready is not None:
                    ready.set()
                if not first:
                    self._dispatch_all()  # what was signalled while it was away
                first = False
                while not stop.is_set():
                    for note in conn.notifies(timeout=0.5):
                        self._dispatch(note.payload)
                        if stop.is_set():
                            break
            except Exception:
                if not stop.is_set():
                    log.warning("signal listener lost its connection; reconnecting", exc_info=True)
                    stop.wait(0.5)
            finally:
                with contextlib.suppress(Exception):  # closing a broken connection
                    conn.close()

    def _connect(self) -> Any:
        """A psycopg connection of its own (outside the pool), autocommit, as the engine connects."""
        import psycopg  # the PostgreSQL driver (only ever imported where PostgreSQL is used)

        args, kwargs = self.engine.dialect.create_connect_args(self.engine.url)
        return psycopg.connect(*args, **{**kwargs, "autocommit": True})

    def _dispatch(self, payload: str) -> None:
        decoded = decode(payload)
        if decoded is None:
            log.debug("ignored signal %r", payload)
            return
        kind, ids = decoded
        self.received_count += 1
        for handler in self._handlers.get(kind, ()):
            try:
                handler(ids)
            except Exception:
                log.exception("signal handler for %s failed", kind)

    def _dispatch_all(self) -> None:
        for kind, handlers in self._handlers.items():
            for handler in handlers:
                try:
                    handler([])
                except Exception:
                    log.exception("signal handler for %s failed", kind)
