"""The MCP server against the real stack: the integration suite's Anvil, relayer and databases (both)."""

from __future__ import annotations

from tests.integration.conftest import anvil, api, chain, db_url, sessions, stack

__all__ = ["anvil", "api", "chain", "db_url", "sessions", "stack"]
