"""Event streams (issue 13, Medium 9): pushed by one reader per process, not polled per connection;
rows committed by another process reach the streams; streams are capped per client and in total."""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event

from relayer.api.streams import POLL_S
from relayer.store.db import make_engine, make_session_factory
from relayer.store.models import StreamEvent
from tests.integration.test_api_rejections import LADDER, assert_error, signed, submit

from .harness import Api

IDLE_STREAMS = 150
IDLE_S = 2.0


@contextmanager
def counting_stream_queries(api: Api) -> Iterator[list[int]]:
    """Counts the statements that read `stream_events` on the relayer's engine."""
    count = [0]
    lock = threading.Lock()

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "stream_events" in statement and statement.lstrip().upper().startswith("SELECT"):
            with lock:
                count[0] += 1

    event.listen(api.services.engine, "before_cursor_execute", before)
    try:
        yield count
    finally:
        event.remove(api.services.engine, "before_cursor_execute", before)


@dataclass
class Stream:
    sock: socket.socket
    status: int


@contextmanager
def open_stream(api: Api, agent_id: int, last_event_id: str | None = None) -> Iterator[Stream]:
    """A raw SSE connection, yielded once the stream has started (its `retry:` line arrived) or was
    refused (an error body)."""
    host, port = api.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        extra = f"Last-Event-ID: {last_event_id}\r\n" if last_event_id else ""
        s.sendall(f"GET /agents/{agent_id}/events HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode())
        head = b""
        while b"retry: 1000" not in head and b"\r\n\r\n{" not in head:
            chunk = s.recv(4096)
            assert chunk, head
            head += chunk
        s.setblocking(False)
        yield Stream(s, int(head.split(b" ", 2)[1]))


def read_until(streams: list[Stream], marker: bytes, timeout_s: float) -> set[int]:
    """The indexes of `streams` whose text contained `marker` before the time was up."""
    seen = [b""] * len(streams)
    done: set[int] = set()
    by_sock = {st.sock: i for i, st in enumerate(streams)}
    deadline = time.monotonic() + timeout_s
    while len(done) < len(streams) and time.monotonic() < deadline:
        pending = [st.sock for i, st in enumerate(streams) if i not in done]
        readable, _, _ = select.select(pending, [], [], 0.2)
        for sock in readable:
            i = by_sock[sock]
            seen[i] += sock.recv(65536)
            if marker in seen[i]:
                done.add(i)
    return done


def test_150_idle_streams_cost_a_constant_number_of_queries(api: Api) -> None:
    """Each stream used to poll the database every 200 ms: 150 idle streams made 750 queries a second
    (81–87 % of a core). Now one reader serves them all: the queries while idle do not grow with the
    number of streams, and a new event reaches every one of them."""
    agent_id, _ = api.agent(0)
    api.services.settings.max_streams_per_client = IDLE_STREAMS
    with ExitStack() as stack:
        streams = [stack.enter_context(open_stream(api, agent_id)) for _ in range(IDLE_STREAMS)]
        assert {s.status for s in streams} == {200}
        with counting_stream_queries(api) as idle:
            time.sleep(IDLE_S)
        per_connection_per_tick = IDLE_STREAMS * IDLE_S / POLL_S  # what polling per connection costs
        assert idle[0] <= IDLE_S / POLL_S * 4, (idle[0], per_connection_per_tick)
        with counting_stream_queries(api) as busy:
            _q, body = signed(api, 0, "OpenPosition", symbol="NVDA", usdcAmount="100", exits=LADDER)
            assert submit(api, agent_id, "OpenPosition", body).status_code == 201
            got = read_until(streams, b'"status":"confirmed"', timeout_s=15)
        assert len(got) == IDLE_STREAMS, f"{IDLE_STREAMS - len(got)} streams missed the event"
        assert busy[0] < IDLE_STREAMS, busy[0]


def test_rows_committed_by_another_process_reach_the_streams(api: Api) -> None:
    """The reader also looks every POLL_S: a row written through another engine (as by a second
    replica or `alphagrid keeper`) reaches an open stream, and resuming after it skips it."""
    agent_id, _ = api.agent(0)
    with ExitStack() as stack:
        s = stack.enter_context(open_stream(api, agent_id))
        engine = make_engine(str(api.services.engine.url.render_as_string(hide_password=False)))
        stack.callback(engine.dispose)
        with make_session_factory(engine).begin() as session:
            row = StreamEvent(agent_id=agent_id, type="note", data={"from": "elsewhere"})
            session.add(row)
            session.flush()
            seq = row.seq
        assert read_until([s], b'"from":"elsewhere"', timeout_s=5) == {0}
        with open_stream(api, agent_id, last_event_id=str(seq)) as resumed:
            assert read_until([resumed], b'"from":"elsewhere"', timeout_s=1) == set()


def test_streams_are_capped_per_client(api: Api) -> None:
    agent_id, _ = api.agent(0)
    with ExitStack() as stack:
        streams = [stack.enter_context(open_stream(api, agent_id)) for _ in range(8)]
        assert {s.status for s in streams} == {200}
        refused = api.client.get(f"/agents/{agent_id}/events")
        error = assert_error(refused, 429, "rate_limited", reason="too_many_streams_per_client")
        assert error["details"]["retryAfterS"] > 0
        streams[0].sock.close()
        deadline = time.monotonic() + 5
        while True:  # the server notices the close
            with open_stream(api, agent_id) as again:
                if again.status == 200:
                    break
            assert time.monotonic() < deadline, "a closed stream's place was never freed"
            time.sleep(0.1)


def test_streams_are_capped_in_total(api: Api) -> None:
    agent_id, _ = api.agent(0)
    other_id, _ = api.agent(1)
    api.services.settings.max_streams = 3
    with ExitStack() as stack:
        streams = [stack.enter_context(open_stream(api, a)) for a in (agent_id, other_id, agent_id)]
        assert {s.status for s in streams} == {200}
        assert_error(
            api.client.get(f"/agents/{other_id}/events"), 429, "rate_limited", reason="too_many_streams"
        )
