"""`alphagrid mcp`: the Model Context Protocol server for LLM agents (SPEC §5.4); see `relayer.mcp.server`."""

from __future__ import annotations

from relayer.mcp.server import READ_ONLY_TOOLS, TOOLS, build, envelope

__all__ = ["READ_ONLY_TOOLS", "TOOLS", "build", "envelope"]
