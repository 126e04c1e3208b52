"""The SSE stream broker (issue 13, Medium 9): one reader of `stream_events` per process pushes new rows
to every open stream, instead of each connection polling the database every 200 ms.

- One asyncio task per app reads the rows after the last one it has seen (one query, whatever the
  number of streams), when a session of this process commits stream rows (SQLAlchemy session
  events, which see the indexer's and the pipeline's `mirror.append_stream`) and every `POLL_S`, so
  rows committed by another process (a second replica, `alphagrid keeper`) reach the streams too. It
  reads only while someone listens.
- A stream first replays what it missed from the database (`Last-Event-ID`, as before), having
  subscribed first so that nothing committed meanwhile is lost; rows it already sent are skipped by
  `seq`, so each event is sent once and in order.
- Streams are capped per client address and in total (429 `rate_limited` beyond).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker

from relayer.errors import RelayerError
from relayer.store.models import StreamEvent

log = logging.getLogger("alphagrid.streams")

POLL_S = 0.2  # rows committed by another process arrive within this
MIN_INTERVAL_S = 0.02  # a burst of commits costs one read per interval
KEEPALIVE_S = 15.0
PAGE = 500
MAX_STREAMS = 1_000
MAX_STREAMS_PER_CLIENT = 8

Row = tuple[int, str, str]  # seq, type, data as JSON


def _rows(session: Session, after: int, agent_id: int | None) -> list[tuple[int, int, str, str]]:
    query = select(StreamEvent.seq, StreamEvent.agent_id, StreamEvent.type, StreamEvent.data).where(
        StreamEvent.seq > after
    )
    if agent_id is not None:
        query = query.where(StreamEvent.agent_id == agent_id)
    rows = session.execute(query.order_by(StreamEvent.seq).limit(PAGE)).all()
    return [(seq, agent, type_, json.dumps(data, separators=(",", ":"))) for seq, agent, type_, data in rows]


@dataclass(eq=False)
class Subscription:
    agent_id: int
    client: str
    queue: asyncio.Queue[Row] = field(default_factory=asyncio.Queue)


class StreamBroker:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        max_streams: int = MAX_STREAMS,
        max_per_client: int = MAX_STREAMS_PER_CLIENT,
    ) -> None:
        self.sessions = sessions
        self.max_streams = max_streams
        self.max_per_client = max_per_client
        self.queries = 0  # reads of stream_events by the broker (tests, metrics)
        self._subs: dict[int, set[Subscription]] = defaultdict(set)
        self._per_client: dict[str, int] = defaultdict(int)
        self._count = 0
        self._last: int | None = None  # the newest seq the broker has dispatched
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = threading.Lock()
        event.listen(sessions, "after_flush", self._flushed)
        event.listen(sessions, "do_orm_execute", self._executed)
        event.listen(sessions, "after_commit", self._committed)
        event.listen(sessions, "after_rollback", self._rolled_back)

    # ------------------------------------------------------------------ wake-ups

    @staticmethod
    def _flushed(session: Session, _context: Any) -> None:
        if any(isinstance(obj, StreamEvent) for obj in session.new):
            session.info["stream_rows"] = True

    @staticmethod
    def _executed(state: ORMExecuteState) -> None:
        if state.is_insert and getattr(state.statement, "table", None) is StreamEvent.__table__:
            state.session.info["stream_rows"] = True

    @staticmethod
    def _rolled_back(session: Session) -> None:
        session.info.pop("stream_rows", None)

    def _committed(self, session: Session) -> None:
        """After a commit of this process's that wrote stream rows (any thread): the reader looks now."""
        if not session.info.pop("stream_rows", False):
            return
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and self._count and not loop.is_closed():
            loop.call_soon_threadsafe(wake.set)

    # ------------------------------------------------------------------ subscriptions

    async def subscribe(self, agent_id: int, client: str) -> Subscription:
        """Registers a stream (or 429). Once it returns, every row committed after the newest one at
        that moment is queued for it: its replay from the database covers the rest."""
        if self._last is None:
            newest = await asyncio.to_thread(self._newest)
            if self._last is None:
                self._last = newest
        with self._lock:
            if self._count >= self.max_streams:
                raise RelayerError(
                    "rate_limited",
                    f"the relayer serves at most {self.max_streams} event streams",
                    {"retryAfterS": 5, "reason": "too_many_streams"},
                )
            if self._per_client[client] >= self.max_per_client:
                raise RelayerError(
                    "rate_limited",
                    f"at most {self.max_per_client} event streams per client",
                    {"retryAfterS": 5, "reason": "too_many_streams_per_client"},
                )
            self._per_client[client] += 1
            self._count += 1
        sub = Subscription(agent_id, client)
        self._subs[agent_id].add(sub)
        self._ensure_reader()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.agent_id)
        if subs is None or sub not in subs:
            return
        subs.discard(sub)
        if not subs:
            del self._subs[sub.agent_id]
        with self._lock:
            self._count -= 1
            self._per_client[sub.client] -= 1
            if self._per_client[sub.client] <= 0:
                del self._per_client[sub.client]

    @property
    def open_streams(self) -> int:
        return self._count

    # ------------------------------------------------------------------ the one reader

    def _ensure_reader(self) -> None:
        if self._task is None or self._task.done():
            self._loop = asyncio.get_running_loop()
            self._wake = asyncio.Event()
            self._task = self._loop.create_task(self._read_forever(), name="alphagrid-stream-broker")

    async def _read_forever(self) -> None:
        assert self._wake is not None
        while True:
            if self._count:
                try:
                    await asyncio.to_thread(self._read_new)
                except Exception:  # the database away for a moment: the streams wait, the reader goes on
                    log.exception("reading new stream events failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=POLL_S)
            self._wake.clear()
            await asyncio.sleep(MIN_INTERVAL_S)

    def _read_new(self) -> None:
        """One query for every stream: the rows after the last dispatched, handed to their agents'
        subscribers on the event loop."""
        if self._last is None:
            return
        with self.sessions() as session:
            while True:
                last = self._last
                self.queries += 1
                rows = _rows(session, last, None)
                if rows:
                    self._last = rows[-1][0]
                    assert self._loop is not None
                    self._loop.call_soon_threadsafe(self._dispatch, rows)
                if len(rows) < PAGE:
                    return

    def _newest(self) -> int:
        self.queries += 1
        with self.sessions() as session:
            return int(session.scalar(select(func.coalesce(func.max(StreamEvent.seq), 0))) or 0)

    def _dispatch(self, rows: list[tuple[int, int, str, str]]) -> None:
        for seq, agent_id, type_, data in rows:
            for sub in self._subs.get(agent_id, ()):
                sub.queue.put_nowait((seq, type_, data))

    # ------------------------------------------------------------------ one stream

    def replay(self, agent_id: int, after: int) -> list[Row]:
        """A page of the agent's rows after `after` (a stream catching up; runs on a thread)."""
        with self.sessions() as session:
            return [(seq, type_, data) for seq, _agent, type_, data in _rows(session, after, agent_id)]

    async def events(self, sub: Subscription, after: int) -> AsyncIterator[str]:
        """The SSE text of one stream: what it missed since `after`, then what is committed next."""
        try:
            yield "retry: 1000\n\n"
            while True:
                rows = await asyncio.to_thread(self.replay, sub.agent_id, after)
                for seq, type_, data in rows:
                    after = seq
                    yield _frame(seq, type_, data)
                if len(rows) < PAGE:
                    break
            while True:
                try:
                    seq, type_, data = await asyncio.wait_for(sub.queue.get(), timeout=KEEPALIVE_S)
                except TimeoutError:
                    yield ": keepalive\n\n"
                    continue
                if seq <= after:
                    continue  # already replayed
                after = seq
                yield _frame(seq, type_, data)
        finally:
            self.unsubscribe(sub)


def _frame(seq: int, type_: str, data: str) -> str:
    return f"id: {seq}\nevent: {type_}\ndata: {data}\n\n"


def broker_of(state: Any, sessions: sessionmaker[Session], settings: Any) -> StreamBroker:
    """The app's broker (`app.state.stream_broker`), made on first use."""
    broker = getattr(state, "stream_broker", None)
    if broker is None:
        broker = StreamBroker(
            sessions,
            max_streams=getattr(settings, "max_streams", MAX_STREAMS),
            max_per_client=getattr(settings, "max_streams_per_client", MAX_STREAMS_PER_CLIENT),
        )
        state.stream_broker = broker
    return broker
