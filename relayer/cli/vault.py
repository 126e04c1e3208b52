"""`alphagrid vault create | fund | allow-token`."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console

from relayer.amounts import format_amount
from relayer.chain.admin import USDC_DECIMALS
from relayer.cli import inputs
from relayer.cli.output import JsonOption, Output, fields
from relayer.cli.session import Deployment, Session
from relayer.manifest import VaultEntry

vault_app = typer.Typer(
    help="Vaults: create, fund (local chain), and the tokens each may trade.", no_args_is_help=True
)

VaultId = Annotated[int, typer.Argument(min=1, metavar="VAULT_ID", help="The vault's id (AgentRegistry).")]


def _balance(dep: Deployment, vault: str) -> str:
    return format_amount(int(dep.admin.usdc.functions.balanceOf(vault).call()), USDC_DECIMALS)


def _allowed(dep: Deployment, vault_id: int) -> list[str]:
    return [s for s, t in dep.token_list.items() if dep.admin.tokens.functions.isAllowed(vault_id, t).call()]


def _vault_json(dep: Deployment, vault_id: int, vault: str) -> dict[str, Any]:
    return {
        "vaultId": vault_id,
        "address": vault,
        "usdc": _balance(dep, vault),
        "tokens": _allowed(dep, vault_id),
    }


def _render(title: str, doc: dict[str, Any]) -> Any:
    def render(console: Console) -> None:
        console.print(
            fields(
                title,
                [
                    ("vault", doc["vaultId"]),
                    ("address", doc["address"]),
                    ("USDC", doc["usdc"]),
                    ("tradable", ", ".join(doc["tokens"]) or "none (alphagrid vault allow-token)"),
                ],
            )
        )

    return render


@vault_app.command("create")
def create(
    fund: Annotated[
        str | None,
        typer.Option("--fund", metavar="AMOUNT", help="Mint this much MockUSDC into it (local chain)."),
    ] = None,
    allow_all: Annotated[
        bool, typer.Option("--allow-all", help="Allow every registered token for trading.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Deploy a new vault, register it, and add it to the manifest."""
    out = Output(as_json)
    fund_base = inputs.usdc(fund, "--fund amount", positive=True) if fund is not None else 0
    dep = Session.load().deployment()
    if fund_base:
        dep.require_local("--fund")
    vault_id, vault = dep.admin.create_vault()
    out.progress(f"vault {vault_id} deployed at {vault}")
    if fund_base:
        dep.admin.mint_usdc(vault, fund_base)
    if allow_all:
        for token in dep.token_list.values():
            dep.admin.allow_token(vault_id, token)
    manifest = dep.manifest.model_copy(deep=True)
    manifest.vaults = [v for v in manifest.vaults if v.vault_id != vault_id]
    manifest.vaults.append(VaultEntry(vaultId=vault_id, address=vault))
    dep.save_manifest(manifest)
    doc = _vault_json(dep, vault_id, vault)
    out.emit(doc, _render("Vault created", doc))


@vault_app.command("fund")
def fund(
    vault_id: VaultId,
    amount: Annotated[str, typer.Argument(metavar="AMOUNT", help="USDC, e.g. 1000 or 0.5")],
    as_json: JsonOption = False,
) -> None:
    """Mint MockUSDC into a vault (local chain only)."""
    out = Output(as_json)
    base = inputs.usdc(amount, positive=True)
    dep = Session.load().deployment()
    vault = dep.vault(vault_id)
    dep.require_local("vault fund")
    dep.admin.mint_usdc(vault, base)
    doc = {**_vault_json(dep, vault_id, vault), "funded": format_amount(base, USDC_DECIMALS)}
    out.emit(doc, _render(f"Vault funded with {doc['funded']} USDC", doc))


@vault_app.command("allow-token")
def allow_token(
    vault_id: VaultId,
    symbol: Annotated[str, typer.Argument(metavar="SYMBOL", help="Token symbol, e.g. NVDA")],
    disallow: Annotated[
        bool, typer.Option("--disallow", help="Remove the token from the allowlist.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Allow (or with --disallow, forbid) trading a token from a vault."""
    out = Output(as_json)
    sym = inputs.symbol(symbol)
    dep = Session.load().deployment()
    vault = dep.vault(vault_id)
    token = dep.token(sym)
    dep.admin.allow_token(vault_id, token, not disallow)
    doc = {**_vault_json(dep, vault_id, vault), "symbol": sym, "token": token, "allowed": not disallow}
    out.emit(doc, _render(f"{sym} {'allowed' if not disallow else 'disallowed'} for vault {vault_id}", doc))
