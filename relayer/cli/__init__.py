"""The `alphagrid` command (SPEC §4.1): one module per command group, `app` is the console script."""

from __future__ import annotations

from relayer.cli.agent import agent_app
from relayer.cli.app import app
from relayer.cli.deploy import deploy
from relayer.cli.keeper import keeper
from relayer.cli.keys import keys_app
from relayer.cli.oracle import oracle_app
from relayer.cli.positions import positions
from relayer.cli.serve import serve
from relayer.cli.track import track_app
from relayer.cli.up import up
from relayer.cli.vault import vault_app
from relayer.cli.webhooks import webhooks_app

app.command("up")(up)
app.command("deploy")(deploy)
app.command("serve")(serve)
app.command("keeper")(keeper)
app.add_typer(vault_app, name="vault")
app.add_typer(agent_app, name="agent")
app.add_typer(track_app, name="track")
app.add_typer(oracle_app, name="oracle")
app.command("positions")(positions)
app.add_typer(keys_app, name="keys")  # keys and webhooks import only typer until a command runs
app.add_typer(webhooks_app, name="webhooks")

__all__ = ["app"]
