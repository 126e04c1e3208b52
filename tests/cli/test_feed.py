"""The price feed: the random walk, the CSV replay, the loop, and `alphagrid oracle feed` on a chain."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from relayer.domain.calendar import exchange_calendar
from relayer.domain.market import MarketStatus
from relayer.feed import (
    AlwaysOpen,
    CalendarSessions,
    CsvReplay,
    FeedError,
    FeedStalledError,
    PriceFeed,
    RandomWalk,
    Tick,
    load_csv,
    load_csv_with_statuses,
    offset_clock,
    step_price,
)

from .conftest import Chain, fails, ok_json

# ------------------------------------------------------------------------------------------ random walk


def test_random_walk_moves_prices_and_keeps_them_positive() -> None:
    walk = RandomWalk({"NVDA": 18_235_000_000, "PENNY": 3}, volatility_bps=100, rng=random.Random(7))
    seen: dict[str, set[int]] = {"NVDA": set(), "PENNY": set()}
    for _ in range(2_000):
        tick = walk.next_tick()
        assert set(tick) == {"NVDA", "PENNY"}
        for symbol, price in tick.items():
            assert price > 0
            seen[symbol].add(price)
    assert len(seen["NVDA"]) > 1_500, "the walk moves"


def test_random_walk_stays_positive_at_extreme_volatility() -> None:
    walk = RandomWalk({"NVDA": 18_235_000_000, "PENNY": 1}, volatility_bps=5_000, rng=random.Random(11))
    for _ in range(5_000):
        assert all(p >= 1 for p in walk.next_tick().values())


def test_step_price_is_bounded_and_repeatable() -> None:
    rng = random.Random(1)
    for _ in range(1_000):
        nxt = step_price(10_000_000_000, 100, rng)
        assert 0.96 * 10_000_000_000 <= nxt <= 1.041 * 10_000_000_000  # capped at ±4σ (log-return)
    assert step_price(123, 0, rng) == 123
    assert [step_price(10**10, 50, random.Random(3)) for _ in range(2)] == [
        step_price(10**10, 50, random.Random(3))
    ] * 2
    with pytest.raises(ValueError):
        step_price(0, 10, rng)


def test_random_walk_refuses_what_it_cannot_walk() -> None:
    with pytest.raises(FeedError, match="no symbols"):
        RandomWalk({}, 10)
    with pytest.raises(FeedError, match="volatility"):
        RandomWalk({"NVDA": 1}, 6_000)


# ------------------------------------------------------------------------------------------ CSV


def _csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "prices.csv"
    path.write_text(text)
    return path


def test_load_csv_groups_rows_by_timestamp_in_order(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        "timestamp,symbol,price\n"
        "1735689660,NVDA,183\n"
        "1735689600,nvda,182.35\n"
        "1735689600,AAPL,231.5\n"
        "\n"
        "2025-01-01T00:02:00Z,NVDA,184.00000001\n",
    )
    assert load_csv(path) == [
        {"NVDA": 18_235_000_000, "AAPL": 23_150_000_000},
        {"NVDA": 18_300_000_000},
        {"NVDA": 18_400_000_001},
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("time,symbol,price\n1,NVDA,1\n", "must name the columns timestamp,symbol,price"),
        ("timestamp,symbol,price\n", "no price rows"),
        ("timestamp,symbol,price\nyesterday,NVDA,1\n", ":2: timestamp 'yesterday'"),
        (
            "timestamp,symbol,price\n1,NVDA,1.123456789\n",
            ":2: price '1.123456789' is not a decimal (too_many_decimals)",
        ),
        ("timestamp,symbol,price\n1,NVDA,0\n", ":2: price must be more than 0"),
        ("timestamp,symbol,price\n1,,5\n", ":2: empty symbol"),
    ],
)
def test_load_csv_names_the_bad_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(FeedError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_csv(_csv(tmp_path, text))


def test_csv_replay_ends_or_loops() -> None:
    ticks: list[Tick] = [{"A": 1}, {"A": 2}]
    once = CsvReplay(ticks)
    assert [once.next_tick(), once.next_tick(), once.next_tick()] == [{"A": 1}, {"A": 2}, None]
    looped = CsvReplay(ticks, loop=True)
    assert [looped.next_tick() for _ in range(3)] == [{"A": 1}, {"A": 2}, {"A": 1}]


# ------------------------------------------------------------------------------------------ the loop


def test_feed_pushes_every_tick_and_survives_a_failed_push() -> None:
    pushed: list[Tick] = []
    failures = iter([True, False, False])

    def push(tick: Tick) -> None:
        if next(failures, False):
            raise ConnectionError("blip")
        pushed.append(tick)

    result = PriceFeed(CsvReplay([{"A": 1}, {"A": 2}, {"A": 3}]), push, interval_s=0).run()
    assert pushed == [{"A": 2}, {"A": 3}]
    assert (result.ticks, result.failures, result.exhausted, result.last) == (2, 1, True, {"A": 3})


def test_feed_gives_up_after_repeated_failures() -> None:
    def push(_tick: Tick) -> None:
        raise ConnectionError("chain gone")

    with pytest.raises(FeedStalledError, match="after 3 failed pushes: chain gone"):
        PriceFeed(RandomWalk({"A": 100}, 10), push, interval_s=0, max_failures=3).run()


def test_feed_in_the_background_stops_promptly() -> None:
    pushed: list[Tick] = []
    feed = PriceFeed(RandomWalk({"A": 100}, 10), pushed.append, interval_s=0.01)
    feed.start()
    deadline = threading.Event()
    while len(pushed) < 3 and not deadline.wait(0.01):
        pass
    feed.stop(timeout_s=2)
    count = len(pushed)
    assert count >= 3 and feed.failure() is None
    deadline.wait(0.05)
    assert len(pushed) == count, "no push after stop()"


# ------------------------------------------------------------------------------------------ sessions


class SteppingClock:
    """A clock that moves ``step`` on each reading, from ``start``."""

    def __init__(self, start: datetime, step: timedelta) -> None:
        self.now = start - step
        self.step = step

    def __call__(self) -> datetime:
        self.now += self.step
        return self.now


def _recorder() -> tuple[list[tuple[Any, ...]], Any]:
    calls: list[tuple[Any, ...]] = []

    def push(*args: Any) -> None:
        calls.append(args)

    return calls, push


def test_feed_on_the_calendar_walks_only_while_the_market_quotes() -> None:
    """Fri 28 Nov 2025 (early close 13:00 ET) from 16:30 ET, an hour a step: PostMarket until 17:00,
    then Closed all weekend: the walk stops, only the status is pushed, the source is not advanced."""
    calls, push = _recorder()
    walk = RandomWalk({"A": 100_00000000}, 50, random.Random(1))
    clock = SteppingClock(datetime(2025, 11, 28, 21, 30, tzinfo=UTC), timedelta(hours=1))
    statuses: list[MarketStatus] = []
    result = PriceFeed(
        walk,
        push,
        interval_s=0,
        max_ticks=5,
        sessions=CalendarSessions(exchange_calendar("XNYS")),
        clock=clock,
        on_status=statuses.append,
    ).run()
    assert [c[1] for c in calls] == [MarketStatus.POST_MARKET] + [MarketStatus.CLOSED] * 4
    assert calls[0][0] != {} and all(c[0] == {} for c in calls[1:]), "then the status alone"
    assert (result.ticks, result.closed, result.status) == (1, 4, MarketStatus.CLOSED)
    assert statuses == [MarketStatus.POST_MARKET, MarketStatus.CLOSED]
    assert walk.prices == calls[0][0], "the walk did not move while closed"


def test_feed_reopens_with_the_pre_market() -> None:
    calls, push = _recorder()
    clock = SteppingClock(datetime(2025, 12, 1, 8, 30, tzinfo=UTC), timedelta(minutes=30))  # Mon 03:30 ET
    PriceFeed(
        RandomWalk({"A": 100}, 0),
        push,
        interval_s=0,
        max_ticks=3,
        sessions=CalendarSessions(exchange_calendar("XNYS")),
        clock=clock,
    ).run()
    assert [c[1] for c in calls] == [MarketStatus.OVERNIGHT, MarketStatus.PRE_MARKET, MarketStatus.PRE_MARKET]


def test_feed_always_open_pushes_regular_with_every_tick() -> None:
    calls, push = _recorder()
    PriceFeed(RandomWalk({"A": 100}, 0), push, interval_s=0, max_ticks=2, sessions=AlwaysOpen()).run()
    assert calls == [({"A": 100}, MarketStatus.REGULAR)] * 2


def test_feed_csv_statuses_override_the_sessions() -> None:
    calls, push = _recorder()
    source = CsvReplay(
        [{"A": 1}, {"A": 2}], statuses=[{"A": MarketStatus.PRE_MARKET}, {"A": MarketStatus.HALTED}]
    )
    PriceFeed(source, push, interval_s=0, sessions=AlwaysOpen()).run()
    assert calls == [({"A": 1}, {"A": MarketStatus.PRE_MARKET}), ({"A": 2}, {"A": MarketStatus.HALTED})]


def test_load_csv_with_statuses(tmp_path: Path) -> None:
    path = _csv(tmp_path, "timestamp,symbol,price,status\n1,a,10,regular\n1,b,20,\n2,a,11,Closed\n")
    ticks, statuses = load_csv_with_statuses(path)
    assert ticks == [{"A": 10 * 10**8, "B": 20 * 10**8}, {"A": 11 * 10**8}]
    assert statuses == [{"A": MarketStatus.REGULAR}, {"A": MarketStatus.CLOSED}]
    assert load_csv_with_statuses(_csv(tmp_path, "timestamp,symbol,price\n1,A,1\n"))[1] is None


def test_offset_clock_runs_on_from_its_start() -> None:
    readings: Iterator[datetime] = iter(
        [datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 0, 0, 5, tzinfo=UTC)]
    )
    start = datetime(2025, 11, 29, 17, tzinfo=UTC)
    clock = offset_clock(start, lambda: next(readings))
    assert clock() == start + timedelta(seconds=5)
    with pytest.raises(ValueError, match="aware"):
        offset_clock(datetime(2025, 1, 1))


# ------------------------------------------------------------------------------------------ on the chain


def _prices(chain: Chain) -> dict[str, int]:
    oracle = chain.admin.oracle
    return {s: int(oracle.functions.latestPrice(t).call()[0]) for s, t in chain.manifest.tokens.items()}


def test_oracle_feed_random_walk_moves_chain_prices(chain: Chain) -> None:
    before = _prices(chain)
    doc = ok_json(
        [
            "oracle",
            "feed",
            "--interval",
            "0",
            "--count",
            "3",
            "--volatility",
            "200",
            "--seed",
            "5",
            "--symbols",
            "NVDA,TSLA",
            "--always-open",
        ],
        chain.env,
    )
    assert doc["source"] == "random-walk" and doc["ticks"] == 3 and doc["failures"] == 0
    after = _prices(chain)
    assert after["NVDA"] != before["NVDA"] and after["TSLA"] != before["TSLA"]
    assert after["AAPL"] == before["AAPL"], "only the chosen symbols move"
    assert all(p > 0 for p in after.values())
    assert doc["prices"]["NVDA"] == f"{after['NVDA'] / 10**8:.8f}".rstrip("0").rstrip(".")


def test_oracle_feed_replays_a_csv(chain: Chain, tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        "timestamp,symbol,price\n1,NVDA,100\n1,SPY,500.5\n2,NVDA,101.25\n3,NVDA,99.125\n",
    )
    oracle = chain.admin.oracle
    nvda = chain.manifest.tokens["NVDA"]
    start = chain.w3.eth.block_number
    doc = ok_json(["oracle", "feed", "--csv", str(path), "--interval", "0", "--always-open"], chain.env)
    assert doc["source"] == "csv" and doc["ticks"] == 3 and doc["exhausted"] is True
    assert doc["prices"] == {"NVDA": "99.125", "SPY": "500.5"}
    logs = oracle.events.PriceUpdated().get_logs(from_block=start + 1, argument_filters={"token": nvda})
    assert [log["args"]["price"] for log in logs] == [10_000_000_000, 10_125_000_000, 9_912_500_000]
    assert _prices(chain)["SPY"] == 50_050_000_000


def test_oracle_feed_bad_input(chain: Chain, tmp_path: Path) -> None:
    path = _csv(tmp_path, "timestamp,symbol,price\n1,QQQ,1\n")
    line = fails(["oracle", "feed", "--csv", str(path)], chain.env, 2)
    assert line == f"error: {path}: unknown symbol QQQ (known: NVDA, AAPL, TSLA, MSFT, SPY)"
    assert "cannot read" in fails(["oracle", "feed", "--csv", str(tmp_path / "none.csv")], chain.env, 2)
    assert "--volatility" in fails(["oracle", "feed", "--volatility", "9000"], chain.env, 2)
    assert "unknown symbol QQQ" in fails(["oracle", "feed", "--symbols", "QQQ"], chain.env, 2)
