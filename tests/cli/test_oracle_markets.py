"""`alphagrid oracle set --status | status | split | show | feed` on a real Anvil (SPEC §5.6): statuses,
splits around `effectiveAt`, and the feed following the NYSE calendar (a weekend, Thanksgiving and
the early close after it) from a clock started where the test says."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import Chain, fails, invoke, ok_json

ONE = 10**18


def _quote(chain: Chain, symbol: str) -> tuple[int, int, int, int, int, int, int]:
    q = chain.admin.oracle.functions.latestQuote(chain.manifest.tokens[symbol]).call()
    return tuple(int(x) for x in q)  # type: ignore[return-value]


def _status(chain: Chain, symbol: str) -> int:
    return int(chain.admin.oracle.functions.marketStatus(chain.manifest.tokens[symbol]).call())


def _chain_now(chain: Chain) -> int:
    return int(chain.w3.eth.get_block("latest")["timestamp"])


def _warp(chain: Chain, seconds: int) -> None:
    chain.w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
    chain.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]


def _prices(chain: Chain) -> dict[str, int]:
    oracle = chain.admin.oracle
    return {s: int(oracle.functions.latestPrice(t).call()[0]) for s, t in chain.manifest.tokens.items()}


# ---------------------------------------------------------------------------------------- set / status


def test_oracle_set_with_status(chain: Chain) -> None:
    doc = ok_json(["oracle", "set", "NVDA", "190.5", "--status", "pre-market"], chain.env)
    assert doc["price"] == "190.5" and doc["sharePrice"] == "190.5"
    assert doc["marketStatus"] == "PreMarket"
    assert doc["multiplier"] == {"current": "1", "next": None, "effectiveAt": None, "epoch": 0}
    assert _status(chain, "NVDA") == 1
    # without --status the status is kept
    assert ok_json(["oracle", "set", "NVDA", "191"], chain.env)["marketStatus"] == "PreMarket"


def test_oracle_status_leaves_the_price_alone(chain: Chain) -> None:
    before = _quote(chain, "AAPL")
    doc = ok_json(["oracle", "status", "AAPL", "Halted"], chain.env)
    assert doc["marketStatus"] == "Halted"
    assert _status(chain, "AAPL") == 6
    after = _quote(chain, "AAPL")
    assert after[:6] == before[:6], "same round, same price, same age"


def test_oracle_status_and_set_refuse_bad_statuses(chain: Chain) -> None:
    line = fails(["oracle", "status", "NVDA", "open"], chain.env, 2)
    assert line.startswith("error: unknown market status 'open'")
    assert "0..6" in fails(["oracle", "set", "NVDA", "1", "--status", "9"], chain.env, 2)


def test_oracle_show_lists_status_and_multiplier(chain: Chain) -> None:
    ok_json(["oracle", "status", "SPY", "Closed"], chain.env)
    shown = {p["symbol"]: p for p in ok_json(["oracle", "show"], chain.env)["prices"]}
    assert shown["SPY"]["marketStatus"] == "Closed"
    assert shown["NVDA"]["multiplier"]["current"] == "1"
    text = invoke(["oracle", "show"], chain.env).stdout
    assert "Closed" in text and "multiplier" in text


# ---------------------------------------------------------------------------------------- split


def test_oracle_split_2for1_around_effective_at(chain: Chain) -> None:
    ok_json(["oracle", "set", "NVDA", "180"], chain.env)
    at = _chain_now(chain) + 600
    doc = ok_json(["oracle", "split", "NVDA", "2:1", "--at", str(at)], chain.env)
    assert doc == {
        "symbol": "NVDA",
        "token": chain.manifest.tokens["NVDA"],
        "ratio": "2:1",
        "oldMultiplier": "1",
        "newMultiplier": "2",
        "effectiveAt": at,
        "epoch": 1,
    }
    shown = ok_json(["oracle", "show", "--symbols", "NVDA"], chain.env)["prices"][0]
    assert shown["multiplier"] == {"current": "1", "next": "2", "effectiveAt": at, "epoch": 0}
    assert shown["price"] == "180", "scheduling moves nothing"

    _warp(chain, 700)
    shown = ok_json(["oracle", "show", "--symbols", "NVDA"], chain.env)["prices"][0]
    assert shown["multiplier"]["current"] == "2" and shown["multiplier"]["epoch"] == 1
    assert shown["price"] == "180", "effectiveAt passing without a push moves nothing"
    # the market now quotes the post-split share price: 90 a share, two shares a token
    doc = ok_json(["oracle", "set", "NVDA", "90"], chain.env)
    assert (doc["price"], doc["sharePrice"]) == ("180", "90")


def test_oracle_split_1for10_reverse(chain: Chain) -> None:
    ok_json(["oracle", "set", "TSLA", "3"], chain.env)
    at = _chain_now(chain) + 60
    doc = ok_json(["oracle", "split", "TSLA", "1:10", "--at", str(at)], chain.env)
    assert (doc["oldMultiplier"], doc["newMultiplier"]) == ("1", "0.1")
    _warp(chain, 61)
    assert ok_json(["oracle", "set", "TSLA", "30"], chain.env)["price"] == "3"
    # a second split composes on the multiplier in force: 0.1 · 3/2
    doc = ok_json(["oracle", "split", "TSLA", "3:2", "--at", str(_chain_now(chain) + 60)], chain.env)
    assert (doc["oldMultiplier"], doc["newMultiplier"], doc["epoch"]) == ("0.1", "0.15", 2)


def test_oracle_split_refusals(chain: Chain) -> None:
    now = _chain_now(chain)
    assert "ratio must look like" in fails(
        ["oracle", "split", "NVDA", "2", "--at", str(now + 60)], chain.env, 2
    )
    assert "changes nothing" in fails(["oracle", "split", "NVDA", "1:1", "--at", str(now + 60)], chain.env, 2)
    assert "in the past" in fails(["oracle", "split", "NVDA", "2:1", "--at", str(now - 10)], chain.env, 2)
    assert "time zone" in fails(["oracle", "split", "NVDA", "2:1", "--at", "2030-01-01T00:00"], chain.env, 2)
    ok_json(["oracle", "split", "NVDA", "2:1", "--at", str(now + 600)], chain.env)
    line = fails(["oracle", "split", "NVDA", "3:1", "--at", str(now + 900)], chain.env, 1)
    assert "already has a change pending" in line and "--replace" in line
    doc = ok_json(["oracle", "split", "NVDA", "3:1", "--at", str(now + 900), "--replace"], chain.env)
    assert (doc["newMultiplier"], doc["epoch"]) == ("3", 1)
    # once the feed quoted under the pending change, the oracle refuses to replace it
    token = chain.manifest.tokens["NVDA"]
    chain.admin.resync_nonce()
    chain.admin.send(chain.admin.oracle.functions.setQuote(token, 60 * 10**8, 1, 2), "early quote")
    line = fails(["oracle", "split", "NVDA", "4:1", "--at", str(now + 900), "--replace"], chain.env, 1)
    assert "MultiplierAlreadyQuoted" in line


# ---------------------------------------------------------------------------------------- feed on a calendar


def test_feed_on_a_weekend_pushes_closed_and_moves_no_price(chain: Chain) -> None:
    before = _prices(chain)
    rounds = {s: _quote(chain, s)[5] for s in chain.manifest.tokens}
    doc = ok_json(
        ["oracle", "feed", "--interval", "0", "--count", "3", "--clock-start", "2025-11-29T17:00:00Z"],
        chain.env,
    )
    assert (doc["ticks"], doc["closedSteps"], doc["marketStatus"]) == (0, 3, "Closed")
    assert doc["sessions"] == "calendar XNYS"
    assert _prices(chain) == before
    assert {s: _quote(chain, s)[5] for s in chain.manifest.tokens} == rounds, "no new round"
    assert all(_status(chain, s) == 5 for s in chain.manifest.tokens)


def test_feed_across_thanksgiving_and_the_early_close(chain: Chain) -> None:
    # Thanksgiving (Thu 27 Nov 2025, 11:00 ET): closed, nothing moves
    doc = ok_json(
        ["oracle", "feed", "--interval", "0", "--count", "2", "--clock-start", "2025-11-27T16:00:00Z"],
        chain.env,
    )
    assert (doc["ticks"], doc["marketStatus"]) == (0, "Closed")
    # Friday 09:00 ET: pre-market, prices walk
    before = _prices(chain)
    doc = ok_json(
        [
            "oracle", "feed", "--interval", "0", "--count", "2", "--volatility", "300", "--seed", "3",
            "--symbols", "NVDA", "--clock-start", "2025-11-28T14:00:00Z",
        ],
        chain.env,
    )  # fmt: skip
    assert (doc["ticks"], doc["marketStatus"]) == (2, "PreMarket")
    assert _prices(chain)["NVDA"] != before["NVDA"]
    assert _status(chain, "NVDA") == 1 and _quote(chain, "NVDA")[6] == 1
    # Friday 13:30 ET: after the 13:00 early close, post-market
    doc = ok_json(
        ["oracle", "feed", "--interval", "0", "--count", "1", "--symbols", "NVDA",
         "--clock-start", "2025-11-28T18:30:00Z"],
        chain.env,
    )  # fmt: skip
    assert doc["marketStatus"] == "PostMarket"
    assert _status(chain, "NVDA") == 3


def test_feed_always_open_is_regular(chain: Chain) -> None:
    doc = ok_json(
        ["oracle", "feed", "--interval", "0", "--count", "1", "--always-open", "--clock-start",
         "2025-11-29T17:00:00Z"],
        chain.env,
    )  # fmt: skip
    assert (doc["ticks"], doc["marketStatus"], doc["sessions"]) == (1, "Regular", "always-open")
    assert all(_status(chain, s) == 2 for s in chain.manifest.tokens)


def test_feed_leaves_a_halted_token_alone(chain: Chain) -> None:
    ok_json(["oracle", "status", "NVDA", "Halted"], chain.env)
    nvda = _quote(chain, "NVDA")
    aapl = _quote(chain, "AAPL")
    ok_json(
        ["oracle", "feed", "--interval", "0", "--count", "2", "--always-open", "--volatility", "100"],
        chain.env,
    )
    assert _quote(chain, "NVDA") == nvda and _status(chain, "NVDA") == 6
    assert _quote(chain, "AAPL")[5] == aapl[5] + 2


def test_feed_walks_through_a_split_without_moving_the_token_price(chain: Chain) -> None:
    before = _quote(chain, "MSFT")
    at = _chain_now(chain) + 1
    ok_json(["oracle", "split", "MSFT", "2:1", "--at", str(at)], chain.env)
    _warp(chain, 2)
    ok_json(
        ["oracle", "feed", "--interval", "0", "--count", "1", "--always-open", "--volatility", "0",
         "--symbols", "MSFT"],
        chain.env,
    )  # fmt: skip
    price, share, multiplier, epoch, *_ = _quote(chain, "MSFT")
    assert (multiplier, epoch) == (2 * ONE, 1)
    assert share == before[0] // 2
    assert before[0] - 1 <= price <= before[0], "per-token price unchanged up to rounding"


def test_feed_replays_csv_statuses(chain: Chain, tmp_path: Path) -> None:
    path = tmp_path / "with_status.csv"
    path.write_text(
        "timestamp,symbol,price,status\n1,NVDA,100,PreMarket\n2,NVDA,101,Regular\n3,NVDA,99,Halted\n"
    )
    doc = ok_json(["oracle", "feed", "--csv", str(path), "--interval", "0"], chain.env)
    assert (doc["ticks"], doc["sessions"], doc["exhausted"]) == (3, "csv", True)
    assert _status(chain, "NVDA") == 6
    assert _prices(chain)["NVDA"] == 99 * 10**8
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,symbol,price,status\n1,NVDA,100,Lunch\n")
    assert "bad.csv:2: unknown market status 'Lunch'" in fails(
        ["oracle", "feed", "--csv", str(bad)], chain.env, 2
    )


def test_feed_refuses_an_unknown_calendar(chain: Chain) -> None:
    assert "no exchange calendar 'NOPE'" in fails(["oracle", "feed", "--calendar", "NOPE"], chain.env, 2)
