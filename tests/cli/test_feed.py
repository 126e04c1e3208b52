"""The price feed: the random walk, the CSV replay, the loop, and `alphagrid oracle feed` on a chain."""

from __future__ import annotations

import random
import threading
from pathlib import Path

import pytest

from relayer.feed import (
    CsvReplay,
    FeedError,
    FeedStalledError,
    PriceFeed,
    RandomWalk,
    Tick,
    load_csv,
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
