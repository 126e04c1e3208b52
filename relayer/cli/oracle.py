"""`alphagrid oracle set | status | split | show | feed`: the PriceOracle's prices (USD, 8 decimals,
pushed per share), market statuses and share multipliers (SPEC §5.6)."""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime
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
from relayer.domain.calendar import FIRST_DAY, ExchangeCalendar, exchange_calendar
from relayer.domain.market import (
    MarketError,
    MarketStatus,
    format_local,
    format_multiplier,
    parse_ratio,
    split_multiplier,
)
from relayer.feed import (
    LOCAL_FEEDER_KEY,
    AlwaysOpen,
    CalendarSessions,
    Clock,
    CsvReplay,
    OraclePusher,
    PriceFeed,
    PriceSource,
    RandomWalk,
    Sessions,
    Tick,
    chain_time,
    current_prices,
    format_tick,
    load_csv_with_statuses,
    may_push,
    offset_clock,
    read_market,
    wall_clock,
)

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
    try:
        return MarketStatus.parse(text)
    except MarketError as exc:
        raise BadInput(str(exc)) from None


def _send(dep: Deployment, fn: Any, what: str) -> None:
    dep.admin.send(fn, what)  # an OperatorError (a revert, decoded) is reported by the CLI's error map


def _emit_price(out: Output, dep: Deployment, sym: str, token: str, title: str) -> None:
    doc = read_prices(dep.admin, {sym: token})[0]
    out.emit(doc, lambda console: console.print(prices_table([doc], title)))


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
    dep = Session.load().deployment()
    token = dep.token(sym)
    market = read_market(dep.admin, token)
    epoch = market.schedule.epoch_at(chain_time(dep.admin))
    fn = dep.admin.oracle.functions.setQuote(
        token, price_base, epoch, int(wanted if wanted is not None else market.status)
    )
    _send(dep, fn, "setting the price")
    _emit_price(out, dep, sym, token, f"{sym} price set")


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
    out = Output(as_json)
    dep = Session.load().deployment()
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


def checked_calendar(code: str) -> ExchangeCalendar:
    """The exchange calendar ``code`` (XNYS), loaded, or a usage error."""
    try:
        cal = exchange_calendar(code.strip().upper())
        cal.trading_days(FIRST_DAY, FIRST_DAY)
    except Exception as exc:  # exchange_calendars: an unknown code raises its own InvalidCalendarName
        exchange_calendar.cache_clear()
        raise BadInput(f"no exchange calendar {code!r} (e.g. XNYS): {exc}") from None
    return cal


def feed_sessions(always_open: bool, calendar: str) -> Sessions:
    """The sessions of ``alphagrid oracle feed``."""
    return AlwaysOpen() if always_open else CalendarSessions(checked_calendar(calendar))


def _clock(start: str | None) -> Clock:
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
