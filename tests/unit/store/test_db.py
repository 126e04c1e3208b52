"""`relayer.store.db`: the engine for a server database (the machine's PostgreSQL)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text

from relayer.store.db import POOL_SIZE, make_engine


@pytest.fixture
def engine(postgres_url: str) -> Iterator[Engine]:
    engine = make_engine(postgres_url)
    yield engine
    engine.dispose()


def test_a_server_database_keeps_its_connections_and_opens_no_more_than_the_pool(engine: Engine) -> None:
    """Connections are kept for the next burst (no connect/disconnect churn) and capped at POOL_SIZE:
    one more concurrent session waits for a connection rather than opening one."""
    held = [engine.connect() for _ in range(POOL_SIZE)]
    for conn in held:
        conn.execute(text("SELECT 1"))
    waiting: list[float] = []

    def one_more() -> None:
        began = time.monotonic()
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        waiting.append(time.monotonic() - began)

    extra = threading.Thread(target=one_more)
    extra.start()
    time.sleep(0.3)
    assert waiting == []  # no 31st connection: it waits for one of the pool's
    held.pop().close()
    extra.join(timeout=5)
    assert waiting and waiting[0] >= 0.25
    for conn in held:
        conn.close()
    assert engine.pool.checkedin() == POOL_SIZE  # all kept open for the next burst
