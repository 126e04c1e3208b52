"""What the webhook outbox costs the hot path (SPEC §5.5): `mirror.append_stream` is called for every
intent status change, in the intent's transaction. Measured per stream event, on SQLite (a file, WAL,
synchronous=FULL as the relayer runs it) and PostgreSQL, for:

- `no hook`: sessions without the outbox hook (the code before webhooks);
- `0 subs`: the hook attached, no subscription (the in-memory lookup only);
- `20 other`: 20 subscriptions, none for this event type or agent;
- `1 match` / `5 match`: the event also writes 1 / 5 outbox rows (and flushes for the event's seq).

Two figures each: the call alone inside an open transaction (CPU of the hook), and one transaction
per event with its commit (what an intent status write costs end to end). Prints figures; asserts
nothing.

    python -m bench.webhooks [--events 1000] [--pg postgresql+psycopg://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from relayer.operators import webhooks
from relayer.operators.outbox import Subscriptions
from relayer.store import mirror
from relayer.store.db import make_engine, make_session_factory
from relayer.store.migrate import upgrade

AGENT = 1
CASES = ("no hook", "0 subs", "20 other", "1 match", "5 match")


@contextmanager
def database(kind: str, pg_url: str) -> Iterator[str]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{Path(tmp) / 'bench.db'}"
        return
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = make_engine(pg_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{pg_url}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def setup(factory: sessionmaker[Session], case: str) -> None:
    if case == "no hook":
        return
    with factory.begin() as session:
        if case == "20 other":
            for i in range(20):
                webhooks.create(session, "http://127.0.0.1:9/", ["fill"], AGENT + 1 + i, None)
        matching = {"1 match": 1, "5 match": 5}.get(case, 0)
        for _ in range(matching):
            webhooks.create(session, "http://127.0.0.1:9/", ["intent_status"], AGENT, None)
    subs = Subscriptions(factory)
    subs.attach()
    subs.reload()


def event(i: int) -> dict[str, object]:
    return {
        "intentId": str(i),
        "status": "submitted",
        "nonce": i,
        "primaryType": "OpenPosition",
        "reason": None,
        "transactionHash": None,
    }


def calls_us(factory: sessionmaker[Session], events: int) -> float:
    """The calls alone, in one open transaction (flushed at the end, as a commit would)."""
    with factory.begin() as session:
        started = time.perf_counter()
        for i in range(events):
            mirror.append_stream(session, AGENT, "intent_status", event(i))
        session.flush()
        return (time.perf_counter() - started) / events * 1e6


def measure(url: str, case: str, events: int, commits: int) -> tuple[float, float]:
    engine = make_engine(url)
    upgrade(engine)
    factory = make_session_factory(engine)
    setup(factory, case)
    calls_us(factory, 200)  # warm-up: statement caches, mapper configuration
    call_us = statistics.median(calls_us(factory, events) for _ in range(3))
    # one transaction per event
    samples = []
    for i in range(commits):
        started = time.perf_counter()
        with factory.begin() as session:
            mirror.append_stream(session, AGENT, "intent_status", event(i))
        samples.append(time.perf_counter() - started)
    engine.dispose()
    return call_us, statistics.median(samples) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--commits", type=int, default=300)
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    print(f"append_stream per event, µs: call in an open transaction (median of 3 × {args.events})")
    print(f"| one transaction per event with its commit (median of {args.commits})")
    for kind in ("sqlite", "postgresql"):
        for case in CASES:
            with database(kind, args.pg) as url:
                call_us, tx_us = measure(url, case, args.events, args.commits)
            print(f"{kind:<10} {case:<9} {call_us:8.1f} | {tx_us:8.1f}")


if __name__ == "__main__":
    main()
