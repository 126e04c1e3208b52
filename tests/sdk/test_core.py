"""The SDK's pure parts, case by case: lenient parsing, the submit body, the retry decision, SSE parsing."""

from __future__ import annotations

from decimal import Decimal

import pytest

from relayer.sdk import (
    AlphaGridError,
    Intent,
    Market,
    Multiplier,
    Position,
    Price,
    Quote,
    RetryPolicy,
    StopLoss,
    TakeProfit,
)
from relayer.sdk.core import SseParser, amount, error_of, human, quote_params, submit_body


def test_intent_parsing_ignores_unknown_fields_and_reads_batch() -> None:
    doc = {
        "intentId": "7",
        "status": "confirmed",
        "positionId": "3",
        "transactionHash": "0xab",
        "fill": {"usdc": "100", "tokens": "0.5", "price": "200", "fee": "0.1"},
        "batch": {"transactionHash": "0xab", "index": 2, "size": 5},
        "somethingNew": {"nested": [1, 2]},
    }
    i = Intent.from_json(doc, http_status=201)
    assert (i.intent_id, i.position_id, i.status, i.http_status) == (7, 3, "confirmed", 201)
    assert i.fill is not None and i.fill.tokens == Decimal("0.5")
    assert i.batch is not None and (i.batch.index, i.batch.size) == (2, 5)
    assert i.raw["somethingNew"] == {"nested": [1, 2]} and i.final and i.confirmed
    bare = Intent.from_json({"intentId": "8", "status": "submitted"})
    assert bare.batch is None and bare.fill is None and not bare.final


def test_position_parsing_tolerates_missing_and_odd_fields() -> None:
    p = Position.from_json(
        {"id": "4", "status": "open", "size": "not a number", "ladder": [{"triggerBps": -500}]}
    )
    assert p.position_id == 4 and p.size is None and p.ladder[0].trigger_bps == -500 and p.history == ()


def test_market_fields_parse_a_pending_split_and_tolerate_an_older_relayer() -> None:
    doc = {
        "symbol": "NVDA",
        "price": "180",
        "sharePrice": "180",
        "marketStatus": "Closed",
        "nextOpen": 1_765_204_200,
        "multiplier": {"current": "1", "next": "2", "effectiveAt": 1_765_200_000, "epoch": 0},
    }
    price = Price.from_json(doc)
    assert price.share_price == Decimal("180")
    assert price.market == Market(
        "Closed", 1_765_204_200, Multiplier(Decimal(1), Decimal(2), 1_765_200_000, 0)
    )
    assert not price.market.regular
    halted = Position.from_json({"id": "1", "status": "open", "marketStatus": "Halted", "nextOpen": None})
    assert halted.market == Market("Halted", None, None)
    assert Price.from_json({"symbol": "NVDA", "price": "1"}).market is None  # before SPEC §5.6
    assert Multiplier.from_json({"current": "x"}) is None and Multiplier.from_json(None) is None
    closed = {"check": "market_open", "ok": False, "code": "market_closed", "suggestion": {"notBefore": 7}}
    q = Quote.from_json({"typedData": {}, "checks": [closed, {"check": "nonce", "ok": True}]})
    [failed] = q.failed_checks
    assert (failed.code, failed.suggestion) == ("market_closed", {"notBefore": 7}) and not q.ok
    assert q.checks[1].suggestion is None and q.checks[1].code is None


def test_exit_rules_and_amounts() -> None:
    assert TakeProfit(1000, 5000).to_json() == {
        "triggerType": "TakeProfit",
        "triggerBps": 1000,
        "exitBps": 5000,
    }
    assert StopLoss(-500).to_json() == {"triggerType": "StopLoss", "triggerBps": -500, "exitBps": 10000}
    assert [amount(x, "usdc") for x in ("1.5", 2, Decimal("0.10"), 0.1)] == ["1.5", "2", "0.10", "0.1"]
    with pytest.raises(TypeError):
        amount(True, "usdc")
    params = quote_params(
        "OpenPosition", symbol="NVDA", usdc=100, exits=[StopLoss(-500)], max_slippage_bps=50
    )
    assert params == {
        "symbol": "NVDA",
        "usdcAmount": "100",
        "exits": '[{"triggerType":"StopLoss","triggerBps":-500,"exitBps":10000}]',
        "maxSlippageBps": "50",
    }
    assert human("1500000", 6) == "1.5" and human(10**18, 18) == "1" and human(0, 6) == "0"


def test_submit_body_mirrors_the_signed_message() -> None:
    message = {
        "usdcAmount": "100000000",
        "minTokenOut": "540000000000000000",
        "maxSlippageBps": "100",
        "deadline": "1700000000",
        "nonce": "3",
        "tokenAmount": "100000000000000000",
        "minUsdcOut": "17",
    }
    open_q = {
        "symbol": "NVDA",
        "exits": [StopLoss(-500).to_json()],
        "typedData": {"primaryType": "OpenPosition", "message": message},
    }
    assert submit_body(open_q, "0xsig", 18) == {
        "symbol": "NVDA",
        "usdcAmount": "100",
        "minTokenOut": "0.54",
        "maxSlippageBps": 100,
        "exits": [StopLoss(-500).to_json()],
        "deadline": 1700000000,
        "nonce": 3,
        "signature": "0xsig",
    }
    reduce_q = {"positionId": "9", "typedData": {"primaryType": "ReducePosition", "message": message}}
    body = submit_body(reduce_q, "0xsig", 18)
    assert body["tokenAmount"] == "0.1" and body["minUsdcOut"] == "0.000017" and body["positionId"] == "9"


def test_errors_and_suggestions() -> None:
    e = error_of(
        409,
        '{"code":"nonce_mismatch","message":"expected nonce 4, got 3",'
        '"details":{"expected":4,"suggestion":{"nonce":4}}}',
    )
    assert (e.code, e.status, e.details["expected"], e.suggestion) == ("nonce_mismatch", 409, 4, {"nonce": 4})
    assert error_of(404, '{"code":"position_not_found","message":"no"}').suggestion is None
    proxy = error_of(502, "<html>bad gateway</html>")
    assert proxy.code == "http_error" and proxy.status == 502 and isinstance(proxy, AlphaGridError)


@pytest.mark.parametrize(
    ("attempt", "status", "retried"),
    [
        (0, None, True),  # no answer: the same body again
        (0, 503, True),
        (0, 502, True),
        (0, 429, True),
        (0, 500, False),  # a bug, not a transient
        (0, 422, False),
        (0, 409, False),
        (3, None, False),  # four tries is the default
    ],
)
def test_retry_decision(attempt: int, status: int | None, retried: bool) -> None:
    assert RetryPolicy().retries(attempt, status) is retried


def test_retry_delay_honours_retry_after_and_caps() -> None:
    policy = RetryPolicy(backoff_s=0.25, max_delay_s=5)
    assert [policy.delay(k) for k in range(3)] == [0.25, 0.5, 1.0]
    limited = AlphaGridError("rate_limited", "slow down", {"retryAfterS": 1.5}, 429)
    assert policy.delay(0, limited) == 1.5
    suggested = AlphaGridError("rate_limited", "", {"suggestion": {"retryAfterS": 30}}, 429)
    assert policy.delay(0, suggested) == 5


def test_sse_parser() -> None:
    p = SseParser()
    lines = [
        "retry: 1000",
        "",
        ": keepalive",
        "",
        "id: 5",
        "event: intent",
        'data: {"a":',
        "data: 1}",
        "",
        "id: 6",
        "data: plain",
        "",
    ]
    events = [e for e in (p.feed(x) for x in lines) if e is not None]
    assert [(e.id, e.type, e.data) for e in events] == [(5, "intent", {"a": 1}), (6, "message", "plain")]
    assert p.last_id == "6" and p.retry_ms == 1000
