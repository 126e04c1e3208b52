"""The reliability suite breaks things on purpose against a real Anvil and the real relayer. It reuses
the integration fixtures: a seeded Anvil per session, an EVM snapshot per test, SQLite and PostgreSQL
via `db_url`, the relayer over HTTP as `api`. `harness` has what the faults need."""

from tests.integration.conftest import (  # noqa: F401  (fixtures, re-exported for this directory)
    anvil,
    api,
    chain,
    db_url,
    pg_url,
    sessions,
    stack,
)
