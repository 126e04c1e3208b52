"""The machine's PostgreSQL for tests: a fresh schema per use, dropped afterwards (a test's relayer
sees only its own tables, and NOTIFY channels are named per schema)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from relayer.store.db import make_engine

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@contextlib.contextmanager
def fresh_schema() -> Iterator[str]:
    """A database URL whose search path is a new, empty schema; fails the test if PostgreSQL is away."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = make_engine(PG_URL)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception:
        admin.dispose()
        pytest.fail("PostgreSQL at 127.0.0.1:5432 (database test) is required for the test suite")
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
