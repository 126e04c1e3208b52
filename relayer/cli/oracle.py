"""`alphagrid oracle set | show | feed`: the PriceOracle's prices (USD, 8 decimals)."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from relayer.cli import inputs
from relayer.cli.errors import BadInput, CliError
from relayer.cli.output import JsonOption, Output, fields

if TYPE_CHECKING:
    from rich.console import Console

    from relayer.chain.admin import Admin
    from relayer.cli import rpc
    from relayer.cli.session import Deployment
    from relayer.feed import PriceSource, Tick
    from relayer.manifest import Manifest

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
    # The ordinary case without web3 (starts in a fraction of the time); anything else takes the web3 path.
    doc = _set_price_light(sym, price_base)
    if doc is None:
        from relayer.cli.session import Session
        from relayer.cli.views import read_prices

        dep = Session.load().deployment()
        token = dep.token(sym)
        dep.admin.set_prices([token], [price_base])
        doc = read_prices(dep.admin, {sym: token})[0]

    def render(console: Console) -> None:
        from relayer.cli.views import prices_table

        console.print(prices_table([doc], f"{sym} price set"))

    out.emit(doc, render)


def _set_price_light(symbol: str, price_base: int) -> dict[str, Any] | None:
    """`oracle set` over raw JSON-RPC (relayer.cli.rpc): the same checks, transaction and answer as the
    web3 path. None, before anything is sent, when something is not as expected."""
    from relayer.cli import rpc
    from relayer.config import Settings
    from relayer.manifest import Manifest

    settings = Settings()
    if not settings.manifest_path.exists():
        return None
    try:
        manifest = Manifest.read(settings.manifest_path)
    except (OSError, ValueError):
        return None
    try:
        signer = rpc.RawSigner(settings.operator_key.get_secret_value())
        node = rpc.Rpc(rpc.explicit_rpc_url() or manifest.rpc_url)
    except rpc.Unexpected:
        return None
    try:
        return _push_light(node, signer, manifest, symbol, price_base)
    finally:
        node.close()


def _push_light(
    node: rpc.Rpc, signer: rpc.RawSigner, manifest: Manifest, symbol: str, price_base: int
) -> dict[str, Any] | None:
    from relayer.amounts import format_amount
    from relayer.cli import rpc

    c = manifest.contracts
    try:
        tokenof = rpc.call_string("tokenOf(string)", symbol)
        chain_id, code, token_word, nonce, block = node.batch(
            [
                ("eth_chainId", []),
                ("eth_getCode", [c.trade_router, "latest"]),
                ("eth_call", [{"to": c.token_registry, "data": "0x" + tokenof.hex()}, "latest"]),
                ("eth_getTransactionCount", [signer.address, "pending"]),
                ("eth_getBlockByNumber", ["latest", False]),
            ]
        )
        token_int = (rpc.words(token_word) or [0])[0]
        if int(chain_id, 16) != manifest.chain_id or len(code) <= 2 or token_int == 0:
            return None
        token = rpc.checksum(f"{token_int:040x}")
        data = rpc.call_address_and_uint_arrays("setPrices(address[],uint256[])", [token], [price_base])
        tx = {"from": signer.address, "to": c.price_oracle, "data": "0x" + data.hex()}
        gas = int(int(node.call("eth_estimateGas", [tx]), 16) * 1.2) + 10_000
    except rpc.Unexpected:
        return None
    tip = rpc.GWEI
    raw = signer.sign(
        chain_id=int(chain_id, 16),
        nonce=int(nonce, 16),
        tip=tip,
        max_fee=2 * int(block.get("baseFeePerGas") or "0x0", 16) + tip,
        gas=gas,
        to=c.price_oracle,
        data=data,
    )
    try:
        tx_hash = node.call("eth_sendRawTransaction", ["0x" + raw.hex()])
    except rpc.Unexpected as exc:
        raise CliError(f"the chain refused the request: {exc}") from None
    receipt = node.wait_receipt(tx_hash)
    if int(receipt.get("status", "0x0"), 16) != 1:
        raise CliError(f"setting prices reverted in transaction {tx_hash}")
    try:
        max_age, latest, quote = node.batch(
            [
                (
                    "eth_call",
                    [{"to": c.trade_router, "data": "0x" + rpc.selector("maxPriceAge()").hex()}, "latest"],
                ),
                ("eth_getBlockByNumber", ["latest", False]),
                (
                    "eth_call",
                    [
                        {
                            "to": c.price_oracle,
                            "data": "0x" + rpc.call_address("latestPrice(address)", token).hex(),
                        },
                        "latest",
                    ],
                ),
            ]
        )
    except rpc.Unexpected as exc:
        raise CliError(f"the price was set (tx {tx_hash}) but reading it back failed: {exc}") from None
    price_now, updated_at, round_id = rpc.words(quote)[:3]
    now = int(latest["timestamp"], 16)
    return {
        "symbol": symbol,
        "token": token,
        "price": format_amount(price_now, inputs.PRICE_DECIMALS),
        "updatedAt": updated_at,
        "ageS": max(0, now - updated_at),
        "roundId": round_id,
        "stale": now - updated_at > rpc.words(max_age)[0],
    }


@oracle_app.command("show")
def show(symbols: SymbolsOption = None, as_json: JsonOption = False) -> None:
    """The oracle's current prices, their age and whether the router would take them as fresh."""
    from relayer.cli.session import Session
    from relayer.cli.views import prices_table, read_prices

    out = Output(as_json)
    dep = Session.load().deployment()
    prices = read_prices(dep.admin, _selected(dep, symbols))
    out.emit({"prices": prices}, lambda console: console.print(prices_table(prices)))


def _feed_admin(dep: Deployment) -> Admin:
    """On a local chain the feed's own key when it may push (as under `alphagrid up`): no nonce races
    with the operator's commands. Otherwise the operator key."""
    from relayer.cli.session import make_admin
    from relayer.feed import LOCAL_FEEDER_KEY, may_push

    if dep.is_local:
        feeder = make_admin(dep.w3, LOCAL_FEEDER_KEY, dep.admin.core)
        if may_push(dep.admin, feeder.account.address):
            return feeder
    return dep.admin


def _start_prices(dep: Deployment, tokens: dict[str, str]) -> Tick:
    from web3.exceptions import ContractCustomError, ContractLogicError

    from relayer.feed import current_prices

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
    from relayer.cli.session import Session
    from relayer.cli.signals import on_stop_signal
    from relayer.feed import CsvReplay, OraclePusher, PriceFeed, RandomWalk, format_tick, load_csv

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
