"""`alphagrid deploy`: the contracts, the seed tokens with their prices and the default tracks on the
configured chain, and the manifest that says where they are.

Vaults and agents are the operator's to create (`alphagrid vault create`, `alphagrid agent register`),
so the manifest has no `demo` section: that is only for the agents `alphagrid up` creates.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.console import Console
from web3 import Web3

from relayer.chain.admin import Admin
from relayer.chain.seed import deploy_market, manifest_for
from relayer.cli import inputs
from relayer.cli.errors import CliError
from relayer.cli.output import JsonOption, Output, fields, table
from relayer.cli.session import Session, connect, core_of, make_admin, require_safe_keys
from relayer.cli.views import contracts_table, prices_table, read_prices, read_tracks, tracks_table
from relayer.manifest import Manifest


def deploy_contracts(
    admin: Admin,
    *,
    rpc_url: str,
    api_url: str,
    max_price_age_s: int,
    spread_bps: int,
    venue_usdc_base: int = 0,
    progress: Callable[[str], None] = lambda _msg: None,
) -> Manifest:
    """The market (contracts, tokens, prices, tracks) without vaults or agents: `vault create` and
    `agent register` add those."""
    market = deploy_market(
        admin,
        max_price_age_s=max_price_age_s,
        spread_bps=spread_bps,
        venue_usdc_base=venue_usdc_base,
        progress=progress,
    )
    return manifest_for(admin, market, rpc_url=rpc_url, api_url=api_url)


def _refuse_overwrite(session: Session, w3: Web3, chain_id: int) -> None:
    """A manifest that still points at live contracts on this chain is not replaced without --force."""
    path = session.manifest_path
    if not path.exists():
        return
    try:
        old = Manifest.read(path)
    except ValueError:
        return
    if old.chain_id == chain_id and w3.eth.get_code(core_of(old).trade_router):
        raise CliError(
            f"{path} already describes a live deployment on chain {chain_id} "
            f"(TradeRouter {old.contracts.trade_router}); pass --force to deploy anew and replace it"
        )


def deploy(
    force: Annotated[
        bool, typer.Option("--force", help="Replace a manifest that points at live contracts.")
    ] = False,
    spread_bps: Annotated[
        int,
        typer.Option("--spread-bps", min=0, max=1_000, help="The venue's spread around the oracle price."),
    ] = 10,
    venue_usdc: Annotated[
        str, typer.Option("--venue-usdc", help="MockUSDC minted to the venue as sell-side liquidity.")
    ] = "10000000",
    as_json: JsonOption = False,
) -> None:
    """Deploy the contracts to ALPHAGRID_RPC_URL, seed tokens, prices and tracks, write the manifest."""
    out = Output(as_json)
    session = Session.load()
    settings = session.settings
    venue_base = inputs.usdc(venue_usdc, "venue liquidity")
    url = session.explicit_rpc_url() or settings.rpc_url
    w3 = connect(url)
    chain_id = w3.eth.chain_id
    require_safe_keys(settings, chain_id, "operator")
    if not force:
        _refuse_overwrite(session, w3, chain_id)
    admin = make_admin(w3, session.operator_key())
    out.progress(f"deploying to chain {chain_id} at {url} as {admin.account.address}")
    manifest = deploy_contracts(
        admin,
        rpc_url=url,
        api_url=settings.api_url,
        max_price_age_s=settings.max_price_age_s,
        spread_bps=spread_bps,
        venue_usdc_base=venue_base,
        progress=out.progress,
    )
    manifest.write(session.manifest_path)
    prices = read_prices(admin, manifest.tokens)
    tracks = read_tracks(admin)
    doc: dict[str, Any] = {
        "manifestPath": str(session.manifest_path),
        "manifest": manifest.model_dump(by_alias=True, exclude_none=True),
        "prices": prices,
        "tracks": tracks,
    }

    def render(console: Console) -> None:
        console.print(
            fields(
                "Deployment",
                [
                    ("chain", manifest.chain_id),
                    ("rpc", manifest.rpc_url),
                    ("start block", manifest.start_block),
                    ("manifest", session.manifest_path),
                ],
            )
        )
        console.print(contracts_table(manifest))
        console.print(prices_table(prices, "Tokens"))
        console.print(tracks_table(tracks))
        console.print(
            table(
                None,
                ["next"],
                [
                    ["alphagrid vault create --fund 1000000 --allow-all"],
                    ["alphagrid agent register --signer 0x… --vault 1 --track evaluation --allocation 10000"],
                ],
            )
        )

    out.emit(doc, render)
