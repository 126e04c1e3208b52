"""`alphagrid oracle set | show | feed`: the PriceOracle's prices (USD, 8 decimals)."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from web3.exceptions import ContractCustomError, ContractLogicError

from relayer.chain.admin import Admin
from relayer.cli import inputs
from relayer.cli.errors import BadInput, CliError
from relayer.cli.output import JsonOption, Output, fields
from relayer.cli.session import Deployment, Session, make_admin
from relayer.cli.signals import on_stop_signal
from relayer.cli.views import prices_table, read_prices
from relayer.feed import (
    LOCAL_FEEDER_KEY,
    CsvReplay,
    OraclePusher,
    PriceFeed,
    PriceSource,
    RandomWalk,
    Tick,
    current_prices,
    format_tick,
    load_csv,
    may_push,
)

oracle_app = typer.Typer(help="Oracle prices: push one, show them, keep them moving.", no_args_is_help=True)

SymbolsOption = Annotated[
    list[str] | None,
    typer.Option("--symbols", metavar="SYMBOLS", help="Only these symbols (comma-separated or repeated)."),
]


def _selected(dep: Deployment, symbols: list[str] | None) -> dict[str, str]:
    wanted = inputs.symbols(symbols or [])
    if not wanted:
        return dict(dep.token_list)
    return {s: dep.token(s) for s in wanted}


@oracle_app.command("set")
def set_price(
    symbol: Annotated[str, typer.Argument(metavar="SYMBOL", help="Token symbol, e.g. NVDA")],
    price: Annotated[str, typer.Argument(metavar="PRICE", help="USD price, at most 8 decimals, e.g. 182.35")],
    as_json: JsonOption = False,
) -> None:
    """Push one oracle price (operator key)."""
    out = Output(as_json)
    sym = inputs.symbol(symbol)
    price_base = inputs.price(price)
    dep = Session.load().deployment()
    token = dep.token(sym)
    dep.admin.set_prices([token], [price_base])
    doc = read_prices(dep.admin, {sym: token})[0]
    out.emit(doc, lambda console: console.print(prices_table([doc], f"{sym} price set")))


@oracle_app.command("show")
def show(symbols: SymbolsOption = None, as_json: JsonOption = False) -> None:
    """The oracle's current prices, their age and whether the router would take them as fresh."""
    out = Output(as_json)
    dep = Session.load().deployment(signs="nothing")
    prices = read_prices(dep.admin, _selected(dep, symbols))
    out.emit({"prices": prices}, lambda console: console.print(prices_table(prices)))


def _feed_admin(dep: Deployment) -> Admin:
    """On a local chain the feed's own key when it may push (as under `alphagrid up`): no nonce races
    with the operator's commands. Otherwise the operator key."""
    if dep.is_local:
        feeder = make_admin(dep.w3, LOCAL_FEEDER_KEY, dep.admin.core)
        if may_push(dep.admin, feeder.account.address):
            return feeder
    return dep.admin


def _start_prices(dep: Deployment, tokens: dict[str, str]) -> Tick:
    try:
        return current_prices(dep.admin, tokens)
    except (ContractCustomError, ContractLogicError):
        missing = []
        for s, t in tokens.items():
            try:
                current_prices(dep.admin, {s: t})
            except (ContractCustomError, ContractLogicError):
                missing.append(s)
        raise CliError(
            f"no price yet for {', '.join(missing)}: set one first with `alphagrid oracle set SYMBOL PRICE`"
        ) from None


@oracle_app.command("feed")
def feed(
    interval: Annotated[
        float, typer.Option("--interval", min=0.0, metavar="S", help="Seconds between updates.")
    ] = 5.0,
    volatility: Annotated[
        int, typer.Option("--volatility", min=0, max=5_000, metavar="BPS", help="Random walk: σ of one step.")
    ] = 25,
    csv_file: Annotated[
        Path | None,
        typer.Option(
            "--csv", metavar="FILE", help="Replay rows timestamp,symbol,price instead of a random walk."
        ),
    ] = None,
    symbols: SymbolsOption = None,
    count: Annotated[
        int | None,
        typer.Option(
            "--count", min=1, metavar="N", help="Stop after N updates (default: run until stopped)."
        ),
    ] = None,
    loop: Annotated[bool, typer.Option("--loop", help="CSV replay: start over at the end.")] = False,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Random walk: seed, for a repeatable run.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Keep prices moving until Ctrl-C: a random walk from the current prices, or a CSV replay."""
    out = Output(as_json)
    dep = Session.load().deployment()
    tokens = _selected(dep, symbols)
    source: PriceSource
    if csv_file is not None:
        ticks = load_csv(csv_file)
        known = dict(dep.token_list)
        unknown = sorted({s for t in ticks for s in t} - set(known))
        if unknown:
            raise BadInput(f"{csv_file}: unknown symbol {unknown[0]} (known: {', '.join(known)})")
        if symbols:
            ticks = [{s: p for s, p in t.items() if s in tokens} for t in ticks]
        else:
            tokens = {s: t for s, t in known.items() if any(s in tick for tick in ticks)}
        source = CsvReplay(ticks, loop=loop)
        what = f"replaying {len(ticks)} ticks from {csv_file}"
    else:
        source = RandomWalk(_start_prices(dep, tokens), volatility, random.Random(seed))
        what = f"random walk of {', '.join(tokens)} (σ {volatility} bps per step)"

    def on_tick(tick: Tick) -> None:
        if not as_json:
            stamp = time.strftime("%H:%M:%S")
            out.out.print(stamp + "  " + "  ".join(f"{s} {p}" for s, p in format_tick(tick).items()))

    stop = threading.Event()
    runner = PriceFeed(
        source, OraclePusher(_feed_admin(dep), tokens), interval_s=interval, max_ticks=count, on_tick=on_tick
    )
    out.progress(f"{what}, every {interval:g} s; Ctrl-C stops")
    with on_stop_signal(lambda _sig: stop.set()):
        result = runner.run(stop)
    doc: dict[str, Any] = {
        "source": "csv" if csv_file is not None else "random-walk",
        "ticks": result.ticks,
        "failures": result.failures,
        "exhausted": result.exhausted,
        "prices": format_tick(result.last),
    }

    def render(console: Console) -> None:
        console.print(
            fields(
                "Feed stopped",
                [
                    ("updates", result.ticks),
                    ("failed pushes", result.failures),
                    ("last", "  ".join(f"{s} {p}" for s, p in doc["prices"].items()) or "-"),
                ],
            )
        )

    out.emit(doc, render)
