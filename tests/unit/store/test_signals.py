"""`relayer.store.signals`: the payloads (pure), and NOTIFY on the machine's real PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence

import pytest
from sqlalchemy import Engine, text

from relayer.store.db import make_engine, make_session_factory
from relayer.store.signals import MAX_PAYLOAD, Signal, Signals, channel_name, decode, encode

# ---------------------------------------------------------------------- payloads


def test_a_signal_without_ids_is_its_kind() -> None:
    assert encode(Signal.RECEIVED) == ["received"]
    assert decode("received") == (Signal.RECEIVED, [])


def test_ids_round_trip_in_order() -> None:
    payloads = encode(Signal.FINAL, [3, 1, 2])
    assert payloads == ["final:3,1,2"]
    assert decode(payloads[0]) == (Signal.FINAL, [3, 1, 2])


def test_many_ids_are_split_under_the_payload_limit_and_lose_none() -> None:
    ids = list(range(10**9, 10**9 + 3_000))  # 3,000 ten-digit ids: ~33 kB
    payloads = encode(Signal.SENT, ids)
    assert len(payloads) > 1
    assert all(len(p.encode()) <= MAX_PAYLOAD for p in payloads)
    back: list[int] = []
    for p in payloads:
        decoded = decode(p)
        assert decoded is not None and decoded[0] is Signal.SENT
        back += decoded[1]
    assert back == ids


@pytest.mark.parametrize("payload", ["", "shutdown", "final:1,x", "final:,", "sent:1;2"])
def test_an_unknown_or_malformed_payload_is_ignored(payload: str) -> None:
    assert decode(payload) is None


def test_channels_are_per_schema_and_valid_identifiers() -> None:
    a, b = channel_name("t_one"), channel_name("t_two")
    assert a != b
    assert a == channel_name("t_one")
    assert a.isidentifier() and len(a) < 63


# ---------------------------------------------------------------------- on PostgreSQL


Calls = list[tuple[Signal, list[int]]]


class Heard:
    def __init__(self) -> None:
        self.calls: Calls = []
        self.changed = threading.Condition()

    def handler(self, kind: Signal) -> Callable[[Sequence[int]], None]:
        def on(ids: Sequence[int]) -> None:
            with self.changed:
                self.calls.append((kind, list(ids)))
                self.changed.notify_all()

        return on

    def wait_for(self, predicate: Callable[[Calls], bool], timeout: float = 5) -> None:
        deadline = time.monotonic() + timeout
        with self.changed:
            while not predicate(self.calls):
                left = deadline - time.monotonic()
                assert left > 0, f"not heard: {self.calls}"
                self.changed.wait(left)


@pytest.fixture
def engine(postgres_url: str) -> Iterator[Engine]:
    engine = make_engine(postgres_url)
    yield engine
    engine.dispose()


@pytest.fixture
def listening(engine: Engine) -> Iterator[tuple[Signals, Heard]]:
    receiver = Signals(engine)
    heard = Heard()
    for kind in Signal:
        receiver.on(kind, heard.handler(kind))
    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(target=receiver.listen, args=(stop,), kwargs={"ready": ready}, daemon=True)
    thread.start()
    assert ready.wait(10)
    yield receiver, heard
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()


def test_a_sent_signal_reaches_a_listener_of_the_same_schema(
    engine: Engine, listening: tuple[Signals, Heard]
) -> None:
    _receiver, heard = listening
    Signals(engine).send(Signal.FINAL, [7, 8])
    heard.wait_for(lambda calls: (Signal.FINAL, [7, 8]) in calls)


def test_a_signal_in_a_transaction_arrives_on_commit_and_never_on_rollback(
    engine: Engine, listening: tuple[Signals, Heard]
) -> None:
    _receiver, heard = listening
    sender = Signals(engine)
    sessions = make_session_factory(engine)
    with sessions() as session:
        sender.within(session, Signal.SENT, [1])
        session.rollback()
    with sessions.begin() as session:
        sender.within(session, Signal.SENT, [2])
        time.sleep(0.2)
        assert heard.calls == []  # not before the commit
    heard.wait_for(lambda calls: (Signal.SENT, [2]) in calls)
    Signals(engine).send(Signal.RECEIVED)  # a marker: everything sent before it has arrived
    heard.wait_for(lambda calls: (Signal.RECEIVED, []) in calls)
    assert (Signal.SENT, [1]) not in heard.calls


def test_another_schemas_signals_are_not_heard(
    engine: Engine, postgres_url: str, listening: tuple[Signals, Heard]
) -> None:
    _receiver, heard = listening
    other = make_engine(postgres_url.replace("options=-csearch_path%3D", "options=-csearch_path%3Dother_"))
    try:
        stranger = Signals(other)
        assert stranger.channel != Signals(engine).channel
        stranger.send(Signal.FINAL, [99])
    finally:
        other.dispose()
    Signals(engine).send(Signal.RECEIVED)
    heard.wait_for(lambda calls: (Signal.RECEIVED, []) in calls)
    assert all(kind is not Signal.FINAL for kind, _ids in heard.calls)


def test_a_listener_whose_connection_dies_reconnects_and_says_it_may_have_missed_some(
    engine: Engine, listening: tuple[Signals, Heard]
) -> None:
    receiver, heard = listening
    with engine.begin() as conn:  # the listener's backend, cut off as a database restart would
        killed = conn.execute(
            text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN %'"
                 " AND pid <> pg_backend_pid() AND query LIKE :channel"),
            {"channel": f"%{receiver.channel}%"},
        ).all()
    assert killed == [(True,)]
    # Every handler is called once with no ids: the receivers look at everything again.
    heard.wait_for(lambda calls: {kind for kind, ids in calls if ids == []} == set(Signal))
    Signals(engine).send(Signal.FINAL, [5])
    heard.wait_for(lambda calls: (Signal.FINAL, [5]) in calls)


def test_signals_need_postgresql(tmp_path: object) -> None:
    engine = make_engine("sqlite://")
    try:
        with pytest.raises(ValueError, match="PostgreSQL"):
            Signals(engine)
    finally:
        engine.dispose()

