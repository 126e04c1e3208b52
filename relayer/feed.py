"""The price feed: keeps oracle prices moving on a local chain, as a random walk or a CSV replay.

Three parts, so each can be tested alone:
- *sources* produce ticks (``symbol → price`` in oracle base units, 8 decimals): `RandomWalk`, whose
  step `step_price` is a pure function of its inputs and a seeded RNG, and `CsvReplay`, loaded by
  `load_csv` from rows ``timestamp,symbol,price``;
- a *pusher* sends a tick to the `PriceOracle` in one ``setPrices`` transaction (`OraclePusher`);
- `PriceFeed` runs a source into a pusher every ``interval_s``, in the caller's thread (`run`, for
  ``alphagrid oracle feed``) or in a background thread (`start`/`stop`, for ``alphagrid up``).
"""

from __future__ import annotations

import csv
import logging
import math
import random
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Final, Protocol, TypeAlias

from relayer.amounts import AmountError, format_amount, parse_amount
from relayer.chain.admin import PRICE_DECIMALS, Admin
from relayer.devkeys import ANVIL_KEYS

log = logging.getLogger("alphagrid.feed")

Tick: TypeAlias = dict[str, int]
"""Symbol → oracle price in base units (8 decimals)."""

CSV_COLUMNS: Final = ("timestamp", "symbol", "price")
# On a local chain the feed signs with its own key (Anvil account 3; 0 operates, 1-2 relay, 5+ are demo
# agents), so its transactions never race the operator's commands for a nonce.
LOCAL_FEEDER_KEY: Final = ANVIL_KEYS[3]
MAX_PRICE_BASE: Final = 2**128 - 1  # PriceOracle refuses more


class FeedError(ValueError):
    """A feed input (a CSV file, a volatility, a symbol) that cannot be used; the message is one line."""


class PriceSource(Protocol):
    def next_tick(self) -> Tick | None:
        """The next prices to push, or None when the source is exhausted."""


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
    reader.fieldnames = header
    rows: list[tuple[float, int, str, int]] = []
    for n, row in enumerate(reader):
        line = n + 2
        stamp, symbol, price = (str(row.get(c) or "").strip() for c in CSV_COLUMNS)
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
        rows.append((when, n, symbol.upper(), price_base))
    if not rows:
        raise FeedError(f"{path}: no price rows")
    rows.sort()
    ticks: list[Tick] = []
    last: float | None = None
    for when, _, symbol, price_base in rows:
        if when != last:
            ticks.append({})
            last = when
        ticks[-1][symbol] = price_base
    return ticks


@dataclass
class CsvReplay:
    ticks: Sequence[Tick]
    loop: bool = False
    _iter: Iterator[Tick] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._iter = iter(self.ticks)

    @property
    def symbols(self) -> set[str]:
        return {s for tick in self.ticks for s in tick}

    def next_tick(self) -> Tick | None:
        tick = next(self._iter, None)
        if tick is None and self.loop and self.ticks:
            self._iter = iter(self.ticks)
            tick = next(self._iter)
        return dict(tick) if tick is not None else None


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


class OraclePusher:
    """Pushes a tick in one ``setPrices`` transaction signed by ``admin``'s key.

    Re-reads the key's nonce first: another process (``alphagrid oracle set``) may share the key.
    """

    def __init__(self, admin: Admin, tokens: Mapping[str, str]) -> None:
        self.admin = admin
        self.tokens = dict(tokens)

    def __call__(self, tick: Tick) -> None:
        unknown = sorted(set(tick) - set(self.tokens))
        if unknown:
            raise FeedError(f"unknown symbol {unknown[0]}")
        self.admin.resync_nonce()
        self.admin.set_prices([self.tokens[s] for s in tick], list(tick.values()))


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


class PriceFeed:
    """Pushes ``source``'s ticks every ``interval_s`` until stopped, exhausted or ``max_ticks`` pushed.

    A failed push is logged and the feed carries on with the next tick; ``max_failures`` failures in
    a row end it with `FeedStalledError`.
    """

    name = "price feed"

    def __init__(
        self,
        source: PriceSource,
        push: Callable[[Tick], None],
        *,
        interval_s: float,
        max_ticks: int | None = None,
        max_failures: int = 5,
        on_tick: Callable[[Tick], None] | None = None,
    ) -> None:
        if interval_s < 0:
            raise FeedError(f"interval must be ≥ 0 s, got {interval_s}")
        self.source = source
        self.push = push
        self.interval_s = interval_s
        self.max_ticks = max_ticks
        self.max_failures = max_failures
        self.on_tick = on_tick
        self.result = FeedResult()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def run(self, stop: threading.Event | None = None) -> FeedResult:
        """Blocks until ``stop`` is set (or `stop()` is called), the source is exhausted or enough ticks."""
        stop = stop or self._stop
        result = self.result
        consecutive = 0
        first = True
        while not stop.is_set() and not self._stop.is_set():
            if self.max_ticks is not None and result.ticks >= self.max_ticks:
                break
            if not first and stop.wait(self.interval_s):
                break
            first = False
            tick = self.source.next_tick()
            if tick is None:
                result.exhausted = True
                break
            if not tick:
                continue
            try:
                self.push(tick)
            except FeedError:
                raise
            except Exception as exc:  # the chain's failures are many; the feed outlives a transient one
                consecutive += 1
                result.failures += 1
                log.warning("price push failed (%s in a row): %s", consecutive, exc)
                if consecutive >= self.max_failures:
                    raise FeedStalledError(
                        f"price feed stopped after {consecutive} failed pushes: {exc}"
                    ) from exc
                continue
            consecutive = 0
            result.ticks += 1
            result.last.update(tick)
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
