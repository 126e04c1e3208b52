"""`alphagrid up`: the local stack in the foreground until Ctrl-C or SIGTERM (`relayer.localstack`)."""

from __future__ import annotations

import threading
from typing import Annotated, Any

import typer
from rich.console import Console

from relayer.cli.errors import CliError
from relayer.cli.oracle import checked_calendar
from relayer.cli.output import JsonOption, Output, fields, table
from relayer.cli.session import Session
from relayer.cli.signals import on_stop_signal
from relayer.cli.views import read_tracks, tracks_table
from relayer.localstack import LocalStack, StackOptions


class _Interrupted(BaseException):
    """A stop signal while the stack was still starting (a BaseException, like KeyboardInterrupt, so no
    library's `except Exception` swallows it)."""


def _render(doc: dict[str, Any]) -> Any:
    def render(console: Console) -> None:
        console.print(
            fields(
                "AlphaGrid local stack",
                [
                    (
                        "RPC",
                        f"{doc['rpcUrl']} (chain {doc['chainId']}"
                        + (
                            f", a block every {doc['blockTimeS']:g} s)"
                            if doc["blockTimeS"]
                            else ", automine)"
                        ),
                    ),
                    (
                        "API",
                        doc["apiUrl"] + "  (docs: " + doc["apiUrl"] + "/docs)",
                    ),
                    ("manifest", doc["manifestPath"]),
                    (
                        "price feed",
                        f"every {doc['feed']['intervalS']:g} s, σ {doc['feed']['volatilityBps']} bps, "
                        f"{doc['feed']['sessions']}, signed by {doc['feed']['signer']}"
                        if doc["feed"]["running"]
                        else "off (--no-feed)",
                    ),
                ],
            )
        )
        console.print(contracts_table_from(doc))
        console.print(
            table(
                "Tokens",
                ["symbol", "price (USD)", "address"],
                [[t["symbol"], t["price"], t["address"]] for t in doc["tokens"]],
            )
        )
        console.print(tracks_table(doc["tracks"]))
        console.print(
            table("Vaults", ["vault", "address"], [[v["vaultId"], v["address"]] for v in doc["vaults"]])
        )
        console.print(
            table(
                "Demo agents",
                ["agent", "track", "allocation (USDC)", "signer address", "signer key"],
                [
                    [a["agentId"], a["track"], a["allocation"], a["address"], a["signerKey"]]
                    for a in doc["demoAgents"]
                ],
            )
        )
        console.print(
            fields(
                None,
                [
                    (
                        "operator",
                        f"{doc['operator']['address']}  key {doc['operator']['key']}"
                        if doc["operator"]["key"]
                        else f"{doc['operator']['address']}  (your own key: not shown)",
                    ),
                    ("", "Anvil development keys: public, for this local chain only."),
                ],
            )
        )
        console.print("Ctrl-C stops everything.")

    return render


def contracts_table_from(doc: dict[str, Any]) -> Any:
    return table("Contracts", ["contract", "address"], sorted(doc["contracts"].items()))


def up(
    no_feed: Annotated[bool, typer.Option("--no-feed", help="Do not keep prices moving.")] = False,
    block_time: Annotated[
        int | None,
        typer.Option(
            "--block-time", min=1, metavar="N", help="Mine a block every N seconds (default: on each tx)."
        ),
    ] = None,
    feed_interval: Annotated[
        float, typer.Option("--feed-interval", min=0.1, metavar="S", help="Seconds between price updates.")
    ] = 5.0,
    feed_volatility: Annotated[
        int, typer.Option("--feed-volatility", min=0, max=5_000, metavar="BPS", help="σ of one price step.")
    ] = 25,
    calendar: Annotated[
        str | None,
        typer.Option(
            "--calendar",
            metavar="MIC",
            help="The feed follows this exchange calendar (XNYS) instead of staying open for demos.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Run the local stack: Anvil, contracts, seed data, price feed, relayer API and keeper.

    The feed keeps the market open (Regular) at any hour, so demos trade; --calendar XNYS makes it
    follow NYSE sessions, holidays and early closes instead."""
    out = Output(as_json)
    session = Session.load()
    stack = LocalStack(
        session.settings,
        StackOptions(
            feed=not no_feed,
            block_time_s=block_time,
            feed_interval_s=feed_interval,
            feed_volatility_bps=feed_volatility,
            feed_calendar=checked_calendar(calendar).code if calendar else None,
        ),
        progress=out.progress,
    )
    stop = threading.Event()
    phase = {"starting": True}

    def on_signal(_signum: int) -> None:
        stop.set()
        if phase["starting"]:
            phase["starting"] = False
            raise _Interrupted

    failure: str | None = None
    interrupted = False
    with on_stop_signal(on_signal):
        try:
            stack.start()
            doc = stack.summary()
            assert stack.admin is not None
            doc["tracks"] = read_tracks(stack.admin)
            phase["starting"] = False
            out.emit(doc, _render(doc))
            if not doc["api"]["running"]:
                out.err.print(f"[yellow]note:[/yellow] {doc['api']['note']}")
            failure = stack.wait(stop)
        except _Interrupted:
            interrupted = True
        finally:
            phase["starting"] = False
            stack.stop()
    if failure:
        raise CliError(failure)
    # A stop requested while starting is still a clean stop: everything started was stopped.
    out.progress("stopped before the stack was up" if interrupted else "stopped")
