"""`alphagrid mcp`: serve the MCP tools for one agent over stdio (default) or streamable HTTP (`--http PORT`).

The agent is `ALPHAGRID_AGENT_ID` (or `--agent-id`) and its key `ALPHAGRID_AGENT_KEY` or `--key-file`; the
relayer is `--url`, `ALPHAGRID_API_URL`, or the deployment manifest's `apiUrl`. Over stdio, stdout belongs
to the protocol: nothing else is printed there.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from relayer.cli.errors import BadInput


def _key(key_file: Path | None) -> str:
    if key_file is not None:
        try:
            key = key_file.read_text().strip()
        except OSError as exc:
            raise BadInput(f"cannot read --key-file {key_file}: {exc.strerror}") from None
    else:
        key = os.environ.get("ALPHAGRID_AGENT_KEY", "").strip()
    if not key:
        raise BadInput("no agent key: set ALPHAGRID_AGENT_KEY or give --key-file")
    return key


def _url(url: str | None) -> str:
    if url:
        return url
    if os.environ.get("ALPHAGRID_API_URL"):
        return os.environ["ALPHAGRID_API_URL"]
    from relayer.sdk.core import DEFAULT_URL, Deployment, deployment_path

    path = deployment_path()
    return Deployment.read(path).api_url if path.exists() else DEFAULT_URL


def mcp(
    agent_id: Annotated[
        int | None,
        typer.Option("--agent-id", envvar="ALPHAGRID_AGENT_ID", help="The agent to act for.", min=1),
    ] = None,
    key_file: Annotated[
        Path | None,
        typer.Option("--key-file", help="A file holding the agent's key (else ALPHAGRID_AGENT_KEY)."),
    ] = None,
    url: Annotated[
        str | None,
        typer.Option("--url", help="The relayer (else ALPHAGRID_API_URL, else the manifest's apiUrl)."),
    ] = None,
    http: Annotated[
        int | None,
        typer.Option(
            "--http", metavar="PORT", help="Serve streamable HTTP on PORT (at /mcp) instead of stdio."
        ),
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Address for --http.")] = "127.0.0.1",
) -> None:
    """Model Context Protocol server: trading tools for one agent, for LLM clients."""
    if agent_id is None:
        raise BadInput("no agent: set ALPHAGRID_AGENT_ID or give --agent-id")
    key = _key(key_file)
    from relayer.mcp import build
    from relayer.sdk import AlphaGridError, AsyncAgentClient

    try:
        client = AsyncAgentClient(_url(url), agent_id=agent_id, key=key)
    except AlphaGridError as exc:
        raise BadInput(exc.message) from None
    del key
    server = build(client)
    if http is None:
        server.run("stdio")
    else:
        server.run("streamable-http", host=host, port=http)
