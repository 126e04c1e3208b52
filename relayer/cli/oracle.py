"""`alphagrid oracle set | status | split | show | feed`: the PriceOracle's prices (USD, 8 decimals,
pushed per share), market statuses and share multipliers (SPEC §5.6)."""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime
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
    from relayer.domain.calendar import ExchangeCalendar
    from relayer.domain.market import MarketStatus
    from relayer.feed import Clock, PriceSource, Sessions, Tick
    from relayer.manifest import Manifest

oracle_app = typer.Typer(
    help="Oracle prices, market statuses and splits: push, show, keep them moving.", no_args_is_help=True
)

SymbolsOption = Annotated[
    list[str] | None,
    typer.Option("--symbols", metavar="SYMBOLS", help="Only these symbols (comma-separated or repeated)."),
]


def _selected(dep: Deployment, symbols: list[str] | None) -> dict[str, str]:
    wanted = inputs.symbols(symbols or [])
    if not wanted:
        return dict(dep.token_list)
    return {s: dep.token(s) for s in wanted}


def _status(text: str) -> MarketStatus:
    from relayer.domain.market import MarketError, MarketStatus

    try:
        return MarketStatus.parse(text)
    except MarketError as exc:
        raise BadInput(str(exc)) from None


@oracle_app.command("set")
def set_price(
    symbol: Annotated[str, typer.Argument(metavar="SYMBOL", help="Token symbol, e.g. NVDA")],
    price: Annotated[
        str, typer.Argument(metavar="PRICE", help="USD price per share, at most 8 decimals, e.g. 182.35")
    ],
    status: Annotated[
        str | None,
        typer.Option(
            "--status", metavar="STATUS", help="Market status with it (Regular, Closed, Halted, …)."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Push one oracle price per share (operator key).

    It is quoted under the multiplier in force; the per-token price is that times the multiplier.
    The market status is kept unless --status is given."""
    out = Output(as_json)
    sym = inputs.symbol(symbol)
    price_base = inputs.price(price)
    wanted = _status(status) if status is not None else None
    # The ordinary case without web3 (starts in a fraction of the time); anything else takes the web3 path.
    doc = _set_price_light(sym, price_base) if wanted is None else None
    if doc is None:
        from relayer.cli.session import Session
        from relayer.cli.views import read_prices
        from relayer.feed import chain_time, read_market

        dep = Session.load().deployment()
        token = dep.token(sym)
        if wanted is None:
            dep.admin.set_prices([token], [price_base])  # tagged with the multiplier in force
        else:
            epoch = read_market(dep.admin, token).schedule.epoch_at(chain_time(dep.admin))
            dep.admin.send(
                dep.admin.oracle.functions.setQuote(token, price_base, epoch, int(wanted)),
                "setting the price",
            )
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
    from relayer.devkeys import unsafe_keys
    from relayer.manifest import Manifest

    settings = Settings()
    if not settings.manifest_path.exists():
        return None
    try:
        manifest = Manifest.read(settings.manifest_path)
    except (OSError, ValueError):
        return None
    keys = settings.signing_keys(operator=True, relayer=False)
    if unsafe_keys(manifest.chain_id, settings.dev_chain_id, keys):
        return None  # the web3 path refuses it with the reason (`Session.deployment`)
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
    from relayer.domain.market import MarketStatus, MultiplierSchedule, market_json

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

        def oracle_call(signature: str) -> tuple[str, list[Any]]:
            data = "0x" + rpc.call_address(signature, token).hex()
            return ("eth_call", [{"to": c.price_oracle, "data": data}, "latest"])

        max_age, latest, quote, status, schedule = node.batch(
            [
                (
                    "eth_call",
                    [{"to": c.trade_router, "data": "0x" + rpc.selector("maxPriceAge()").hex()}, "latest"],
                ),
                ("eth_getBlockByNumber", ["latest", False]),
                oracle_call("latestQuote(address)"),
                oracle_call("marketStatus(address)"),
                oracle_call("multiplierSchedule(address)"),
            ]
        )
    except rpc.Unexpected as exc:
        raise CliError(f"the price was set (tx {tx_hash}) but reading it back failed: {exc}") from None
    price_now, share_price, _multiplier, _epoch, updated_at, round_id = rpc.words(quote)[:6]
    now = int(latest["timestamp"], 16)
    return {
        "symbol": symbol,
        "token": token,
        "price": format_amount(price_now, inputs.PRICE_DECIMALS),
        "updatedAt": updated_at,
        "ageS": max(0, now - updated_at),
        "roundId": round_id,
        "stale": now - updated_at > rpc.words(max_age)[0],
        **market_json(
            MarketStatus(rpc.words(status)[0]), MultiplierSchedule(*rpc.words(schedule)[:4]), share_price, now
        ),
    }


def _send(dep: Deployment, fn: Any, what: str) -> None:
    dep.admin.send(fn, what)  # an OperatorError (a revert, decoded) is reported by the CLI's error map


def _emit_price(out: Output, dep: Deployment, sym: str, token: str, title: str) -> None:
    from relayer.cli.views import prices_table, read_prices

    doc = read_prices(dep.admin, {sym: token})[0]
    out.emit(doc, lambda console: console.print(prices_table([doc], title)))


@oracle_app.command("status")
def set_status(
    symbol: Annotated[str, typer.Argument(metavar="SYMBOL", help="Token symbol, e.g. NVDA")],
    status: Annotated[
        str,
        typer.Argument(
            metavar="STATUS",
            help="Unknown, PreMarket, Regular, PostMarket, Overnight, Closed or Halted.",
        ),
    ],
    as_json: JsonOption = False,
) -> None:
    """Set a token's market status (operator key).

    Its price and the price's age are untouched. A running feed leaves a Halted token alone, and
    sets any other status back at its next step."""
    from relayer.cli.session import Session

    out = Output(as_json)
    sym = inputs.symbol(symbol)
    wanted = _status(status)
    dep = Session.load().deployment()
    token = dep.token(sym)
    _send(dep, dep.admin.oracle.functions.setMarketStatus(token, int(wanted)), "setting the market status")
    _emit_price(out, dep, sym, token, f"{sym} market {wanted.label}")


def _unix_time(text: str) -> int:
    text = text.strip()
    if text.isdigit():
        return int(text)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadInput(f"--at must be unix seconds or ISO 8601 with a zone, got {text!r}") from None
    if parsed.tzinfo is None:
        raise BadInput(f"--at needs a time zone (e.g. 2026-01-05T14:30:00Z), got {text!r}")
    return int(parsed.timestamp())


@oracle_app.command("split")
def split(
    symbol: Annotated[str, typer.Argument(metavar="SYMBOL", help="Token symbol, e.g. NVDA")],
    ratio: Annotated[
        str, typer.Argument(metavar="RATIO", help="New shares for old: 2:1 (split), 1:10 (reverse split).")
    ],
    at: Annotated[
        str,
        typer.Option("--at", metavar="UNIX_TIME", help="When it takes effect (unix seconds or ISO 8601)."),
    ],
    replace: Annotated[
        bool, typer.Option("--replace", help="Replace a change that is still pending.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Schedule a split (operator key): from --at a token stands for RATIO times the shares.

    The multiplier is multiplied by num/den. Per-token prices do not move: feeds quote the
    post-split share price under the new multiplier (IPriceOracle's split rule)."""
    from relayer.cli.session import Session
    from relayer.domain.market import MarketError, format_multiplier, parse_ratio, split_multiplier
    from relayer.feed import chain_time, read_market

    out = Output(as_json)
    sym = inputs.symbol(symbol)
    try:
        parsed = parse_ratio(ratio)
    except MarketError as exc:
        raise BadInput(str(exc)) from None
    effective_at = _unix_time(at)
    dep = Session.load().deployment()
    token = dep.token(sym)
    market = read_market(dep.admin, token)
    now = chain_time(dep.admin)
    if effective_at < now:
        raise BadInput(f"--at {effective_at} is in the past (chain time {now})")
    schedule = market.schedule
    if schedule.pending(now) and not replace:
        raise CliError(
            f"{sym} already has a change pending: multiplier {format_multiplier(schedule.new)} at "
            f"{schedule.effective_at}; add --replace to replace it"
        )
    base = schedule.in_force(now)
    try:
        new = split_multiplier(base, parsed)
    except MarketError as exc:
        raise BadInput(str(exc)) from None
    _send(
        dep, dep.admin.oracle.functions.scheduleMultiplier(token, new, effective_at), "scheduling the split"
    )
    doc = {
        "symbol": sym,
        "token": token,
        "ratio": str(parsed),
        "oldMultiplier": format_multiplier(base),
        "newMultiplier": format_multiplier(new),
        "effectiveAt": effective_at,
        "epoch": read_market(dep.admin, token).schedule.epoch,
    }
    when = datetime.fromtimestamp(effective_at, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    out.emit(
        doc,
        lambda console: console.print(
            fields(
                f"{sym} split {parsed} scheduled",
                [
                    ("multiplier", f"{doc['oldMultiplier']} → {doc['newMultiplier']}"),
                    ("effective at", f"{when} ({effective_at})"),
                    ("epoch", doc["epoch"]),
                ],
            )
        ),
    )


@oracle_app.command("show")
def show(symbols: SymbolsOption = None, as_json: JsonOption = False) -> None:
    """The oracle's prices (per token), market statuses and share multipliers.

    With each price its age, whether the router would take it as fresh, and a pending multiplier
    change."""
    from relayer.cli.session import Session
    from relayer.cli.views import prices_table, read_prices

    out = Output(as_json)
    dep = Session.load().deployment(signs="nothing")
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


def checked_calendar(code: str) -> ExchangeCalendar:
    """The exchange calendar ``code`` (XNYS), loaded, or a usage error."""
    from relayer.domain.calendar import FIRST_DAY, exchange_calendar

    try:
        cal = exchange_calendar(code.strip().upper())
        cal.trading_days(FIRST_DAY, FIRST_DAY)
    except Exception as exc:  # exchange_calendars: an unknown code raises its own InvalidCalendarName
        exchange_calendar.cache_clear()
        raise BadInput(f"no exchange calendar {code!r} (e.g. XNYS): {exc}") from None
    return cal


def feed_sessions(always_open: bool, calendar: str) -> Sessions:
    """The sessions of ``alphagrid oracle feed``."""
    from relayer.feed import AlwaysOpen, CalendarSessions

    return AlwaysOpen() if always_open else CalendarSessions(checked_calendar(calendar))


def _clock(start: str | None) -> Clock:
    from relayer.feed import offset_clock, wall_clock

    if start is None:
        return wall_clock
    return offset_clock(datetime.fromtimestamp(_unix_time(start), UTC))


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
            "--csv",
            metavar="FILE",
            help="Replay rows timestamp,symbol,price[,status] instead of a random walk.",
        ),
    ] = None,
    symbols: SymbolsOption = None,
    count: Annotated[
        int | None,
        typer.Option("--count", min=1, metavar="N", help="Stop after N steps (default: run until stopped)."),
    ] = None,
    loop: Annotated[bool, typer.Option("--loop", help="CSV replay: start over at the end.")] = False,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Random walk: seed, for a repeatable run.")
    ] = None,
    always_open: Annotated[
        bool,
        typer.Option("--always-open", help="Demos: the market is always Regular (no calendar)."),
    ] = False,
    calendar: Annotated[
        str, typer.Option("--calendar", metavar="MIC", help="Exchange calendar the statuses follow.")
    ] = "XNYS",
    clock_start: Annotated[
        str | None,
        typer.Option(
            "--clock-start",
            metavar="TIME",
            help="Run the calendar's clock from this time (unix seconds or ISO 8601), e.g. a Saturday.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Keep prices moving until Ctrl-C: a random walk from the current prices, or a CSV replay.

    Statuses follow the exchange calendar (NYSE: PreMarket 04:00-09:30 ET, Regular, PostMarket to
    20:00, Overnight, Closed on weekends and holidays, early closes) and prices move only while the
    market quotes; --always-open keeps it Regular. A CSV with a status column sets its own statuses."""
    from relayer.cli.session import Session
    from relayer.cli.signals import on_stop_signal
    from relayer.domain.market import format_local
    from relayer.feed import (
        CsvReplay,
        OraclePusher,
        PriceFeed,
        RandomWalk,
        format_tick,
        load_csv_with_statuses,
    )

    out = Output(as_json)
    sessions = feed_sessions(always_open, calendar)
    clock = _clock(clock_start)
    dep = Session.load().deployment()
    tokens = _selected(dep, symbols)
    source: PriceSource
    per_token = False
    if csv_file is not None:
        ticks, statuses = load_csv_with_statuses(csv_file)
        known = dict(dep.token_list)
        unknown = sorted({s for t in ticks for s in t} - set(known))
        if unknown:
            raise BadInput(f"{csv_file}: unknown symbol {unknown[0]} (known: {', '.join(known)})")
        if symbols:
            keep = [{s: p for s, p in t.items() if s in tokens} for t in ticks]
            if statuses is not None:
                statuses = [{s: st for s, st in d.items() if s in tokens} for d in statuses]
            ticks = keep
        else:
            tokens = {s: t for s, t in known.items() if any(s in tick for tick in ticks)}
        source = CsvReplay(ticks, loop=loop, statuses=statuses)
        what = f"replaying {len(ticks)} ticks from {csv_file}"
        if statuses is not None:
            what += " with their statuses"
    else:
        source = RandomWalk(_start_prices(dep, tokens), volatility, random.Random(seed))
        per_token = True
        what = f"random walk of {', '.join(tokens)} (σ {volatility} bps per step)"
    what += f", {sessions.name}" if not (csv_file is not None and statuses is not None) else ""

    def on_tick(tick: Tick) -> None:
        if not as_json:
            stamp = time.strftime("%H:%M:%S")
            out.out.print(stamp + "  " + "  ".join(f"{s} {p}" for s, p in format_tick(tick).items()))

    def on_status(status: MarketStatus) -> None:
        if not as_json:
            out.out.print(f"{time.strftime('%H:%M:%S')}  market {status.label} ({format_local(clock())})")

    stop = threading.Event()
    runner = PriceFeed(
        source,
        OraclePusher(_feed_admin(dep), tokens, per_token=per_token),
        interval_s=interval,
        max_ticks=count,
        on_tick=on_tick,
        sessions=None if (csv_file is not None and statuses is not None) else sessions,
        clock=clock,
        on_status=on_status,
    )
    out.progress(f"{what}, every {interval:g} s; Ctrl-C stops")
    with on_stop_signal(lambda _sig: stop.set()):
        result = runner.run(stop)
    doc: dict[str, Any] = {
        "source": "csv" if csv_file is not None else "random-walk",
        "sessions": sessions.name if runner.sessions is not None else "csv",
        "ticks": result.ticks,
        "closedSteps": result.closed,
        "marketStatus": result.status.label if result.status is not None else None,
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
                    ("closed steps", result.closed),
                    ("market", doc["marketStatus"] or "-"),
                    ("failed pushes", result.failures),
                    ("last", "  ".join(f"{s} {p}" for s, p in doc["prices"].items()) or "-"),
                ],
            )
        )

    out.emit(doc, render)
