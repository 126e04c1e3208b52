"""The `alphagrid` command (SPEC §4.1): one module per command group, `app` is the console script.

Each command is registered by name, module and one-line help, and imported only when it runs (see
`relayer.cli.app.AlphaGridGroup`): `alphagrid --help` and light commands do not pay for web3, FastAPI or
SQLAlchemy. A new command goes into `COMMANDS`; keep its module's top-level imports light.
"""

from __future__ import annotations

from relayer.cli.app import AlphaGridGroup, app

# name → (module, attribute, the one-line help `alphagrid --help` shows; tests/cli/test_fast.py checks it)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "up": (
        "relayer.cli.up",
        "up",
        "Run the local stack: Anvil, contracts, seed data, price feed, relayer API and keeper.",
    ),
    "deploy": (
        "relayer.cli.deploy",
        "deploy",
        "Deploy the contracts to ALPHAGRID_RPC_URL, seed tokens, prices and tracks, write the manifest.",
    ),
    "serve": (
        "relayer.cli.serve",
        "serve",
        "Relayer API + keeper for the chain in $ALPHAGRID_HOME/deployment.json.",
    ),
    "keeper": (
        "relayer.cli.keeper",
        "keeper",
        "Run the exit-ladder keeper against $ALPHAGRID_HOME/deployment.json until Ctrl-C/SIGTERM.",
    ),
    "positions": (
        "relayer.cli.positions",
        "positions",
        "An agent's positions: size, cost basis, entry and current price, PnL and the exit ladder.",
    ),
    "mcp": (
        "relayer.cli.mcp",
        "mcp",
        "Model Context Protocol server: trading tools for one agent, for LLM clients.",
    ),
    "vault": (
        "relayer.cli.vault",
        "vault_app",
        "Vaults: create, fund (local chain), and the tokens each may trade.",
    ),
    "agent": (
        "relayer.cli.agent",
        "agent_app",
        "Agents: register them and change their track, allocation and status.",
    ),
    "track": ("relayer.cli.track", "track_app", "Tracks: create or change one, list them."),
    "oracle": (
        "relayer.cli.oracle",
        "oracle_app",
        "Oracle prices, market statuses and splits: push, show, keep them moving.",
    ),
    "keys": ("relayer.cli.keys", "keys_app", "Operator API keys: create (shown once), list, revoke."),
    "webhooks": (
        "relayer.cli.webhooks",
        "webhooks_app",
        "Webhook subscriptions: add (secret shown once), list with deliveries, remove, rotate.",
    ),
    "approvals": (
        "relayer.cli.approvals",
        "approvals_app",
        "Human approval: pending intents, approve or reject them, thresholds per track or agent.",
    ),
}
AlphaGridGroup.lazy.update(COMMANDS)

__all__ = ["COMMANDS", "app"]
