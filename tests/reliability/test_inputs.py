"""Inputs at the edges: the same intent 50 times at once, a reduce above the position's size, a flood
of the smallest positions an agent can open, and a ladder of three 33.33 % rungs that must leave no
dust behind."""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import httpx

from relayer.ratelimit import RateLimiter
from tests.integration.test_api_idempotency import nonces_used, positions_on_chain
from tests.integration.test_api_rejections import (
    LADDER,
    SL,
    assert_error,
    intents_of,
    open_position,
    settle,
    signed,
    submit,
    wallets,
)
from tests.integration.test_keeper import _open, _set_price, _wait_position

from .harness import Api

TOKENS = ("NVDA", "AAPL", "TSLA", "MSFT", "SPY")


def test_one_intent_posted_50_times_in_parallel_executes_once(api: Api) -> None:
    agent_id, _ = api.agent(0)
    _q, body = signed(api, 0, "OpenPosition", symbol="NVDA", usdcAmount="1000", exits=LADDER)
    start = threading.Barrier(50)

    def post(_: int) -> httpx.Response:
        with httpx.Client(base_url=api.url, timeout=60) as client:
            start.wait()
            return client.post(f"/agents/{agent_id}/trade-intents", json=body)

    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(post, range(50)))
    codes = Counter(r.status_code for r in answers)
    assert set(codes) <= {200, 201, 202}, codes
    assert codes[201] + codes[202] == 1, codes
    assert len({r.json()["intentId"] for r in answers}) == 1
    settle(api)
    assert nonces_used(api, agent_id) == [0]
    assert positions_on_chain(api) == 1
    assert len(intents_of(api, agent_id)) == 1


def test_a_reduce_above_the_size_closes_the_position(api: Api) -> None:
    """SPEC §1.4: tokenAmount ≥ size closes (the size may have shrunk since the quote)."""
    agent_id, _ = api.agent(0)
    position_id = open_position(api)
    size = api.client.get(f"/agents/{agent_id}/positions/{position_id}").json()["size"]
    for amount in (str(Decimal(size) * 2), "1000000"):
        _q, body = signed(api, 0, "ReducePosition", positionId=position_id, tokenAmount=amount)
        assert body["tokenAmount"] == amount
        r = submit(api, agent_id, "ReducePosition", body)
        if amount != "1000000":
            assert r.status_code == 201, r.text
            assert r.json()["fill"]["tokens"] == size
            settle(api)
        else:  # the position is closed by now
            assert_error(r, 409, "position_closed")
    position = api.client.get(f"/agents/{agent_id}/positions/{position_id}").json()
    assert position["status"] == "closed" and Decimal(position["size"]) == 0


def test_a_flood_of_the_smallest_positions_is_bounded(api: Api) -> None:
    """One base unit of USDC per position, as fast as the agent can sign. The contract keeps one
    position per token, so at most one per token is open at a time; the per-agent rate limit turns the
    rest away with 429 before anything is recorded or sent.

    What it costs: such a position is worth less than one base unit at the oracle price (the fill
    rounds down), i.e. −100 %, so its stop-loss fires at once and the keeper pays for the exit too.
    The spec sets no size floor; the rate limit is what bounds this (see the README)."""
    agent_id, _ = api.agent(0)
    api.services.limiter = RateLimiter(rate_per_s=0.01, burst=len(TOKENS))
    sent = sum(n for _b, n, _p in wallets(api).values())
    opened = []
    for symbol in TOKENS:
        _q, body = signed(api, 0, "OpenPosition", symbol=symbol, usdcAmount="0.000001", exits=LADDER)
        r = submit(api, agent_id, "OpenPosition", body)
        assert r.status_code == 201, r.text
        assert r.json()["fill"]["usdc"] == "0.000001"
        opened.append(r.json()["positionId"])
        settle(api)
    recorded = len(intents_of(api, agent_id))
    for symbol in TOKENS * 4:
        _q, body = signed(api, 0, "OpenPosition", symbol=symbol, usdcAmount="0.000001", exits=LADDER)
        assert_error(submit(api, agent_id, "OpenPosition", body), 429, "rate_limited")
    assert len(intents_of(api, agent_id)) == recorded
    assert positions_on_chain(api) == len(TOKENS)
    for position_id in opened:
        p = _wait_position(api, position_id, lambda p: p["status"] == "closed")
        assert [r["fired"] for r in p["ladder"]] == [False, True], p["ladder"]  # the stop, at once
    assert sum(n for _b, n, _p in wallets(api).values()) == sent + 2 * len(TOKENS)  # an open, an exit


def test_three_one_third_rungs_leave_no_dust(api: Api) -> None:
    """[TP +5 % 33.33 %, TP +10 % 33.33 %, TP +15 % 100 %, SL]: each rung sells its share of what is
    left; the last sells exactly the rest, so the position closes at size 0."""
    rungs = [
        {"triggerType": "TakeProfit", "triggerBps": 500, "exitBps": 3333},
        {"triggerType": "TakeProfit", "triggerBps": 1000, "exitBps": 3333},
        {"triggerType": "TakeProfit", "triggerBps": 1500, "exitBps": 10000},
        SL,
    ]
    agent_id, _ = api.agent(0)
    position_id = _open(api, usdc="999.99", exits=rungs)
    size0 = Decimal(api.client.get(f"/agents/{agent_id}/positions/{position_id}").json()["size"])
    sizes = [size0]
    for price, fired in (("192", 1), ("201", 2)):
        _set_price(api, "NVDA", price)
        p = _wait_position(api, position_id, lambda p, n=fired: sum(r["fired"] for r in p["ladder"]) == n)
        sizes.append(Decimal(p["size"]))
    _set_price(api, "NVDA", "210")
    p = _wait_position(api, position_id, lambda p: p["status"] == "closed")
    assert Decimal(p["size"]) == 0 and p["costBasis"] in ("0", "0.000000"), p
    assert [r["fired"] for r in p["ladder"]] == [True, True, True, False]
    scale = Decimal(10) ** 18
    for before, after in itertools.pairwise(sizes):
        sold = int(before * scale) - int(after * scale)
        assert sold == int(before * scale) * 3333 // 10_000, (before, after)


def test_a_deadline_beyond_uint256_is_an_invalid_request(api: Api) -> None:
    """2²⁵⁶ is not a uint256: 400 naming the field (2²⁵⁶−1 is beyond the deadline horizon:
    `test_deadlines.py::test_a_deadline_beyond_the_horizon_is_refused`)."""
    agent_id, _ = api.agent(0)
    _q, body = signed(api, 0, "OpenPosition", symbol="NVDA", usdcAmount="100", exits=LADDER)
    assert_error(
        submit(api, agent_id, "OpenPosition", {**body, "deadline": 2**256}),
        400,
        "invalid_request",
        field="deadline",
    )
    assert nonces_used(api, agent_id) == []
