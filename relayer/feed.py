"""The price feed: keeps oracle prices moving on a local chain, as a random walk or a CSV replay.

Three parts, so each can be tested alone:
- *sources* produce ticks (``symbol → price`` in oracle base units, 8 decimals): `RandomWalk`, whose
  step `step_price` is a pure function of its inputs and a seeded RNG, and `CsvReplay`, loaded by
  `load_csv` from rows ``timestamp,symbol,price``;
- a *pusher* sends a tick to the `PriceOracle` in one transaction (`OraclePusher`): ``setQuotes`` with
  the market status and the multiplier epoch each share price is quoted under, or ``setPrices``;
- *sessions* say the market status at a time (`CalendarSessions` on a real exchange calendar, with
  an injectable timezone-aware clock; `AlwaysOpen` for demos);
- `PriceFeed` runs a source into a pusher every ``interval_s``, in the caller's thread (`run`, for
  ``alphagrid oracle feed``) or in a background thread (`start`/`stop`, for ``alphagrid up``). With
  sessions, prices move only while the market quotes (PreMarket, Regular, PostMarket, Overnight);
  when it is Closed the feed pushes the status alone and leaves the last price (and its age) alone.

Splits: the random walk walks *per-token* prices; the pusher turns them into share prices at the
multiplier in force and tags them with its epoch, so at ``effectiveAt`` the share price drops by the
ratio and the per-token price does not move (IPriceOracle's split rule). CSV prices are share prices
as the market quoted them, tagged with the epoch in force when pushed. A token an operator has set
`Halted` is left alone (no price, no status) until someone sets another status.
"""

from __future__ import annotations

import csv
import logging
import math
import random
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Protocol, TypeAlias, runtime_checkable

from web3.exceptions import ContractCustomError, ContractLogicError

from relayer.amounts import AmountError, format_amount, parse_amount
from relayer.chain.admin import PRICE_DECIMALS, Admin
from relayer.devkeys import ANVIL_KEYS
from relayer.domain.calendar import ExchangeCalendar
from relayer.domain.market import (
    ONE,
    QUOTING,
    MarketError,
    MarketStatus,
    MultiplierSchedule,
    market_json,
)

log = logging.getLogger("alphagrid.feed")

Tick: TypeAlias = dict[str, int]
"""Symbol → oracle price in base units (8 decimals)."""

CSV_COLUMNS: Final = ("timestamp", "symbol", "price")
CSV_STATUS_COLUMN: Final = "status"  # optional: the market status of the row (Regular, Closed, …)
# On a local chain the feed signs with its own key (Anvil account 3; 0 operates, 1-2 relay, 5+ are demo
# agents), so its transactions never race the operator's commands for a nonce.
LOCAL_FEEDER_KEY: Final = ANVIL_KEYS[3]
MAX_PRICE_BASE: Final = 2**128 - 1  # PriceOracle refuses more


class FeedError(ValueError):
    """A feed input (a CSV file, a volatility, a symbol) that cannot be used; the message is one line."""


Statuses: TypeAlias = dict[str, MarketStatus]
"""Symbol → market status, for sources that carry them (a CSV with a status column)."""

Clock: TypeAlias = Callable[[], datetime]


def wall_clock() -> datetime:
    return datetime.now(UTC)


class PriceSource(Protocol):
    def next_tick(self) -> Tick | None:
        """The next prices to push, or None when the source is exhausted."""


@runtime_checkable
class StatusCarrier(Protocol):
    def tick_statuses(self) -> Statuses | None:
        """The statuses of the tick `next_tick` returned last, if the source says."""


# ---------------------------------------------------------------------------------------- sessions


class Sessions(Protocol):
    @property
    def name(self) -> str: ...

    def status_at(self, now: datetime) -> MarketStatus: ...


class AlwaysOpen:
    """Demos: the market is always Regular."""

    name = "always-open"

    def status_at(self, now: datetime) -> MarketStatus:
        return MarketStatus.REGULAR


@dataclass
class CalendarSessions:
    """The status a real exchange calendar gives for the time (NYSE by default)."""

    calendar: ExchangeCalendar

    @property
    def name(self) -> str:
        return f"calendar {self.calendar.code}"

    def status_at(self, now: datetime) -> MarketStatus:
        return self.calendar.status_at(now)


def offset_clock(start: datetime, base: Clock = wall_clock) -> Clock:
    """A clock that reads ``start`` now and runs on from it ("pretend it is Saturday noon")."""
    if start.tzinfo is None:
        raise ValueError("the clock's start must be timezone-aware")
    delta = start - base()
    return lambda: base() + delta


# ---------------------------------------------------------------------------------------- random walk


def step_price(price_base: int, volatility_bps: int, rng: random.Random) -> int:
    """One random-walk step: a normal log-return with σ = ``volatility_bps``, capped at ±4σ and ±50 %.

    Log-returns keep the walk free of drift (a plain ``price·(1+r)`` sinks over time). The result is
    never below one base unit (prices stay > 0, as the oracle requires) nor above what it accepts.
    """
    if price_base <= 0:
        raise ValueError(f"price must be > 0, got {price_base}")
    if volatility_bps < 0:
        raise ValueError(f"volatility must be ≥ 0 bps, got {volatility_bps}")
    sigma = volatility_bps / 10_000
    cap = min(4 * sigma, 0.5)
    ret = max(-cap, min(cap, rng.gauss(0.0, sigma))) if sigma else 0.0
    return min(MAX_PRICE_BASE, max(1, round(price_base * math.exp(ret))))


@dataclass
class RandomWalk:
    """Every symbol takes one independent `step_price` per tick, from its previous price."""

    prices: dict[str, int]
    volatility_bps: int
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        if not self.prices:
            raise FeedError("nothing to feed: no symbols")
        if self.volatility_bps < 0 or self.volatility_bps > 5_000:
            raise FeedError(f"volatility must be within 0..5000 bps, got {self.volatility_bps}")
        for symbol, price in self.prices.items():
            if price <= 0:
                raise FeedError(f"{symbol} has no positive price to start from")

    def next_tick(self) -> Tick:
        self.prices = {s: step_price(p, self.volatility_bps, self.rng) for s, p in self.prices.items()}
        return dict(self.prices)


# ---------------------------------------------------------------------------------------- CSV replay


def _parse_timestamp(text: str) -> float:
    """Unix seconds (``1735689600`` or ``1735689600.5``) or ISO 8601 (``2025-01-01T00:00:00Z``)."""
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(value):
            raise ValueError(text)
        return value
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed.timestamp()


def load_csv(path: Path) -> list[Tick]:
    """Rows ``timestamp,symbol,price`` (a header naming those columns; others are ignored) → ticks.

    Rows with the same timestamp form one tick, pushed together; ticks come in timestamp order (rows
    of equal timestamps keep their order in the file, a later row for the same symbol wins).
    Prices are decimal strings with at most 8 decimals, e.g. ``182.35``.
    """
    return load_csv_with_statuses(path)[0]


def load_csv_with_statuses(path: Path) -> tuple[list[Tick], list[Statuses] | None]:
    """`load_csv`, and the statuses of each tick when the header has a ``status`` column (None when
    it has not). A row with an empty status keeps the tick's status for that symbol unknown."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise FeedError(f"cannot read {path}: {exc.strerror or exc}") from exc
    reader = csv.DictReader(text.splitlines())
    header = [h.strip().lower() for h in reader.fieldnames or []]
    missing = [c for c in CSV_COLUMNS if c not in header]
    if missing:
        raise FeedError(
            f"{path}: the header must name the columns {','.join(CSV_COLUMNS)}; missing {missing}"
        )
    with_status = CSV_STATUS_COLUMN in header
    reader.fieldnames = header
    rows: list[tuple[float, int, str, int, MarketStatus | None]] = []
    for n, row in enumerate(reader):
        line = n + 2
        stamp, symbol, price = (str(row.get(c) or "").strip() for c in CSV_COLUMNS)
        status_text = str(row.get(CSV_STATUS_COLUMN) or "").strip()
        if not stamp and not symbol and not price:
            continue
        try:
            when = _parse_timestamp(stamp)
        except ValueError:
            raise FeedError(
                f"{path}:{line}: timestamp {stamp!r} is neither unix seconds nor ISO 8601"
            ) from None
        if not symbol:
            raise FeedError(f"{path}:{line}: empty symbol")
        try:
            price_base = parse_amount(price, PRICE_DECIMALS)
        except AmountError as exc:
            raise FeedError(f"{path}:{line}: price {price!r} is not a decimal ({exc.reason})") from None
        if not 0 < price_base <= MAX_PRICE_BASE:
            raise FeedError(f"{path}:{line}: price must be more than 0")
        status: MarketStatus | None = None
        if status_text:
            try:
                status = MarketStatus.parse(status_text)
            except MarketError as exc:
                raise FeedError(f"{path}:{line}: {exc}") from None
        rows.append((when, n, symbol.upper(), price_base, status))
    if not rows:
        raise FeedError(f"{path}: no price rows")
    rows.sort(key=lambda r: (r[0], r[1]))
    ticks: list[Tick] = []
    statuses: list[Statuses] = []
    last: float | None = None
    for when, _, symbol, price_base, status in rows:
        if when != last:
            ticks.append({})
            statuses.append({})
            last = when
        ticks[-1][symbol] = price_base
        if status is not None:
            statuses[-1][symbol] = status
    return ticks, statuses if with_status else None


@dataclass
class CsvReplay:
    ticks: Sequence[Tick]
    loop: bool = False
    statuses: Sequence[Statuses] | None = None  # per tick, when the file has a status column
    _iter: Iterator[int] = field(init=False, repr=False)
    _last: int | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.statuses is not None and len(self.statuses) != len(self.ticks):
            raise FeedError("one set of statuses per tick")
        self._iter = iter(range(len(self.ticks)))

    @property
    def symbols(self) -> set[str]:
        return {s for tick in self.ticks for s in tick}

    def next_tick(self) -> Tick | None:
        index = next(self._iter, None)
        if index is None and self.loop and self.ticks:
            self._iter = iter(range(len(self.ticks)))
            index = next(self._iter)
        self._last = index
        return dict(self.ticks[index]) if index is not None else None

    def tick_statuses(self) -> Statuses | None:
        if self.statuses is None or self._last is None:
            return None
        return dict(self.statuses[self._last])


# ---------------------------------------------------------------------------------------- the chain


def current_prices(admin: Admin, tokens: Mapping[str, str]) -> Tick:
    """The oracle's current prices of ``tokens`` (symbol → address)."""
    oracle = admin.oracle
    return {s: int(oracle.functions.latestPrice(t).call()[0]) for s, t in tokens.items()}


def _oracle_role(admin: Admin) -> bytes:
    role: bytes = admin.oracle.functions.OPERATOR_ROLE().call()
    return role


def may_push(admin: Admin, address: str) -> bool:
    return bool(admin.oracle.functions.hasRole(_oracle_role(admin), address).call())


def grant_feeder(admin: Admin, feeder: str) -> None:
    """Lets ``feeder`` push prices (the oracle's OPERATOR_ROLE); ``admin`` must be the oracle's admin."""
    if not may_push(admin, feeder):
        admin.send(
            admin.oracle.functions.grantRole(_oracle_role(admin), feeder), "granting the feed the oracle"
        )


@dataclass(frozen=True)
class TokenMarket:
    """What the oracle says of one token's market: status, multiplier schedule, latest round."""

    status: MarketStatus
    schedule: MultiplierSchedule
    price: int | None  # per token
    share_price: int | None
    quoted_multiplier: int | None
    quoted_epoch: int | None
    updated_at: int | None
    round_id: int | None
    quoted_status: MarketStatus | None  # the status the latest price was quoted in

    def to_json(self, now: int) -> dict[str, Any]:
        return market_json(self.status, self.schedule, self.share_price, now)


def read_market(admin: Admin, token: str) -> TokenMarket:
    oracle = admin.oracle
    status = MarketStatus(int(oracle.functions.marketStatus(token).call()))
    epoch, old, new, at = (int(x) for x in oracle.functions.multiplierSchedule(token).call())
    schedule = MultiplierSchedule(epoch, old, new, at)
    try:
        q = oracle.functions.latestQuote(token).call()
    except (ContractCustomError, ContractLogicError):  # PriceUnavailable: never set
        return TokenMarket(status, schedule, None, None, None, None, None, None, None)
    price, share, multiplier, quoted_epoch, updated_at, round_id, _status, quoted = (int(x) for x in q)
    return TokenMarket(
        status, schedule, price, share, multiplier, quoted_epoch, updated_at, round_id, MarketStatus(quoted)
    )


def chain_time(admin: Admin) -> int:
    return int(admin.w3.eth.get_block("latest")["timestamp"])


class OraclePusher:
    """Pushes a tick in one transaction signed by ``admin``'s key.

    Without a status: ``setPrices`` (share prices tagged with the multiplier in force). With one (a
    status for every symbol, or per symbol): ``setQuotes``, each share price tagged with the epoch in
    force at the chain's latest block; ``per_token`` prices (the random walk's) are first divided by
    that multiplier. Tokens the oracle has Halted are skipped. An empty tick with a status pushes the
    status alone (``setMarketStatuses``) for every token of the pusher. Re-reads the key's nonce
    first: another process (``alphagrid oracle set``) may share the key.
    """

    def __init__(self, admin: Admin, tokens: Mapping[str, str], *, per_token: bool = False) -> None:
        self.admin = admin
        self.tokens = dict(tokens)
        self.per_token = per_token
        self.skipped: set[str] = set()  # symbols left alone at the last push (Halted)

    def __call__(self, tick: Tick, status: MarketStatus | Mapping[str, MarketStatus] | None = None) -> None:
        unknown = sorted(set(tick) - set(self.tokens))
        if unknown:
            raise FeedError(f"unknown symbol {unknown[0]}")
        self.admin.resync_nonce()
        if status is None:
            self.admin.set_prices([self.tokens[s] for s in tick], list(tick.values()))
            return
        oracle = self.admin.oracle
        symbols = list(tick) or list(self.tokens)
        statuses = {s: status if isinstance(status, MarketStatus) else status.get(s) for s in symbols}
        markets = {s: read_market(self.admin, self.tokens[s]) for s in symbols}
        self.skipped = {s for s, m in markets.items() if m.status is MarketStatus.HALTED}
        if not tick:
            changes = [
                (self.tokens[s], int(st))
                for s, st in statuses.items()
                if st is not None and s not in self.skipped and markets[s].status is not st
            ]
            if changes:
                fn = oracle.functions.setMarketStatuses([t for t, _ in changes], [st for _, st in changes])
                self.admin.send(fn, "setting market statuses")
            return
        now = chain_time(self.admin)
        quotes = []
        for s, price in tick.items():
            if s in self.skipped:
                continue
            market = markets[s]
            epoch = market.schedule.epoch_at(now)
            share = price
            if self.per_token:
                share = max(1, price * ONE // market.schedule.in_force(now))
            wanted = statuses[s]
            quotes.append(
                (self.tokens[s], share, epoch, int(wanted if wanted is not None else market.status))
            )
        if quotes:
            self.admin.send(oracle.functions.setQuotes(quotes), "pushing quotes")


def format_tick(tick: Mapping[str, int]) -> dict[str, str]:
    return {s: format_amount(p, PRICE_DECIMALS) for s, p in tick.items()}


# ---------------------------------------------------------------------------------------- the loop


class FeedStalledError(RuntimeError):
    """Pushing failed too many times in a row (the chain is gone, the key lost its role, ...)."""


@dataclass
class FeedResult:
    ticks: int = 0
    failures: int = 0
    last: Tick = field(default_factory=dict)
    exhausted: bool = False
    closed: int = 0  # steps skipped because the market was not quoting
    status: MarketStatus | None = None  # the last status pushed, with sessions


class PriceFeed:
    """Pushes ``source``'s ticks every ``interval_s`` until stopped, exhausted or ``max_ticks`` steps.

    With ``sessions``, each step first asks them the status at ``clock()``: while the market quotes,
    the tick is pushed with that status (or the statuses the source carries, a CSV's); when it does
    not (Closed, Unknown), the source is not advanced and the status alone is pushed (a pusher sends
    only what differs from the chain). A failed push is logged and the feed carries on with the next
    step; ``max_failures`` failures in a row end it with `FeedStalledError`.
    """

    name = "price feed"

    def __init__(
        self,
        source: PriceSource,
        push: Callable[..., None],
        *,
        interval_s: float,
        max_ticks: int | None = None,
        max_failures: int = 5,
        on_tick: Callable[[Tick], None] | None = None,
        sessions: Sessions | None = None,
        clock: Clock = wall_clock,
        on_status: Callable[[MarketStatus], None] | None = None,
    ) -> None:
        if interval_s < 0:
            raise FeedError(f"interval must be ≥ 0 s, got {interval_s}")
        self.source = source
        self.push = push
        self.interval_s = interval_s
        self.max_ticks = max_ticks
        self.max_failures = max_failures
        self.on_tick = on_tick
        self.sessions = sessions
        self.clock = clock
        self.on_status = on_status
        self.result = FeedResult()
        self._consecutive = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def _attempt(self, *args: Any) -> bool:
        """One push; False (logged) on a transient failure, `FeedStalledError` after too many."""
        try:
            self.push(*args)
        except FeedError:
            raise
        except Exception as exc:  # the chain's failures are many; the feed outlives a transient one
            self._consecutive += 1
            self.result.failures += 1
            log.warning("price push failed (%s in a row): %s", self._consecutive, exc)
            if self._consecutive >= self.max_failures:
                raise FeedStalledError(
                    f"price feed stopped after {self._consecutive} failed pushes: {exc}"
                ) from exc
            return False
        self._consecutive = 0
        return True

    def _closed_step(self, status: MarketStatus) -> None:
        """The status alone, every step (the pusher sends only what differs from the chain, so a
        status someone changed by hand while the market is closed is set back too)."""
        result = self.result
        result.closed += 1
        if self._attempt({}, status) and status is not result.status:
            result.status = status
            if self.on_status is not None:
                self.on_status(status)

    def run(self, stop: threading.Event | None = None) -> FeedResult:
        """Blocks until ``stop`` is set (or `stop()` is called), the source is exhausted or enough steps."""
        stop = stop or self._stop
        result = self.result
        first = True
        while not stop.is_set() and not self._stop.is_set():
            if self.max_ticks is not None and result.ticks + result.closed >= self.max_ticks:
                break
            if not first and stop.wait(self.interval_s):
                break
            first = False
            status = self.sessions.status_at(self.clock()) if self.sessions is not None else None
            if status is not None and status not in QUOTING:
                self._closed_step(status)
                continue
            tick = self.source.next_tick()
            if tick is None:
                result.exhausted = True
                break
            if not tick:
                continue
            carried = self.source.tick_statuses() if isinstance(self.source, StatusCarrier) else None
            pushed_status: MarketStatus | Statuses | None = carried or status
            if not (self._attempt(tick) if pushed_status is None else self._attempt(tick, pushed_status)):
                continue
            result.ticks += 1
            result.last.update(tick)
            if status is not None and status is not result.status:
                result.status = status
                if self.on_status is not None:
                    self.on_status(status)
            if self.on_tick is not None:
                self.on_tick(tick)
        return result

    # ------------------------------------------------------------------ as a background component

    def start(self) -> None:
        def _target() -> None:
            try:
                self.run(self._stop)
            except BaseException as exc:  # reported through failure(); a thread has no one to raise to
                self._error = exc
                log.error("price feed stopped: %s", exc)

        self._thread = threading.Thread(target=_target, name="alphagrid-feed", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout_s)

    def failure(self) -> str | None:
        return str(self._error) if self._error is not None else None
