"""Fixtures for the unit tests that need a real database: SQLite and the machine's PostgreSQL."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from relayer.store.db import make_engine, make_session_factory
from relayer.store.migrate import upgrade
from tests.pg import fresh_schema


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh schema on the machine's PostgreSQL (dropped afterwards), unmigrated."""
    with fresh_schema() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def both_databases(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """A migrated database on SQLite, then on PostgreSQL (a fresh schema, dropped afterwards)."""
    with fresh_schema() if request.param == "postgresql" else _sqlite(tmp_path) as url:
        engine = make_engine(url)
        try:
            upgrade(engine)
            yield make_session_factory(engine)
        finally:
            engine.dispose()


def _sqlite(tmp_path: Path) -> contextlib.AbstractContextManager[str]:
    return contextlib.nullcontext(f"sqlite:///{tmp_path / 'unit.db'}")
