"""Errors that say how to fix them (SPEC §5.2): for every code with a `details.suggestion`, doing what
it says — re-quoting and re-signing with the suggested fields, or waiting as long as it says — makes the
same request pass, over HTTP against the real relayer and Anvil."""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

from relayer.domain.track import DEFAULT_TRACKS
from relayer.ratelimit import RateLimiter

from .conftest import Api
from .test_api_rejections import (
    LADDER,
    LADDER_CASES,
    SL,
    TP,
    assert_error,
    open_position,
    rpc,
    set_price,
    settle,
    signed,
    submit,
)


def suggestion(r: Any, status: int, code: str) -> dict[str, Any]:
    body = assert_error(r, status, code)
    found = body["details"].get("suggestion")
    assert isinstance(found, dict) and found, body
    return found


def confirmed(r: Any) -> dict[str, Any]:
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "confirmed", r.json()
    return dict(r.json())


def test_nonce_mismatch_suggests_the_expected_nonce(api: Api) -> None:
    agent_id, _ = api.agent(0)
    params = {"symbol": "NVDA", "usdcAmount": "100", "exits": LADDER}
    _q, body = signed(api, 0, "OpenPosition", message={"nonce": 5}, **params)
    fix = suggestion(submit(api, agent_id, "OpenPosition", body), 409, "nonce_mismatch")
    assert fix == {"nonce": 0}
    _q, body = signed(api, 0, "OpenPosition", message=fix, **params)
    confirmed(submit(api, agent_id, "OpenPosition", body))


def test_deadline_expired_suggests_a_deadline_that_passes(api: Api) -> None:
    agent_id, _ = api.agent(0)
    params = {"symbol": "NVDA", "usdcAmount": "100", "exits": LADDER}
    _q, body = signed(api, 0, "OpenPosition", message={"deadline": 1}, **params)
    fix = suggestion(submit(api, agent_id, "OpenPosition", body), 422, "deadline_expired")
    assert set(fix) == {"deadline"} and fix["deadline"] > int(time.time())
    _q, body = signed(api, 0, "OpenPosition", message=fix, **params)
    confirmed(submit(api, agent_id, "OpenPosition", body))


def test_trade_size_exceeded_suggests_the_largest_amount_that_fits(api: Api) -> None:
    agent_id, _ = api.agent(0)
    _q, body = signed(api, 0, "OpenPosition", symbol="NVDA", usdcAmount="20000.000001", exits=LADDER)
    fix = suggestion(submit(api, agent_id, "OpenPosition", body), 422, "trade_size_exceeded")
    assert fix == {"usdcAmount": "20000"}
    _q, body = signed(api, 0, "OpenPosition", symbol="NVDA", exits=LADDER, **fix)
    confirmed(submit(api, agent_id, "OpenPosition", body))


def test_headroom_and_daily_turnover_suggest_the_largest_amount_that_fits(api: Api) -> None:
    agent_id, _ = api.agent(0)
    admin = api.stack.admin
    position_id = open_position(api, usdc="20000")
    admin.set_allocation(agent_id, 22_000 * 10**6)  # max trade 4,400; headroom 2,000
    settle(api)
    _q, body = signed(api, 0, "AddToPosition", positionId=position_id, usdcAmount="3000")
    fix = suggestion(submit(api, agent_id, "AddToPosition", body), 422, "headroom_exceeded")
    assert fix == {"usdcAmount": "2000"}
    _q, body = signed(api, 0, "AddToPosition", positionId=position_id, **fix)
    confirmed(submit(api, agent_id, "AddToPosition", body))
    settle(api)
    # 22,000 turned over today on a track that allows 30% of 100,000: 8,000 left, under the trade size.
    admin.set_allocation(agent_id, 100_000 * 10**6)
    admin.set_track("funded", dataclasses.replace(DEFAULT_TRACKS["funded"], max_daily_turnover_bps=3_000))
    settle(api)
    _q, body = signed(api, 0, "AddToPosition", positionId=position_id, usdcAmount="9000")
    fix = suggestion(submit(api, agent_id, "AddToPosition", body), 422, "daily_turnover_exceeded")
    assert fix == {"usdcAmount": "8000"}
    _q, body = signed(api, 0, "AddToPosition", positionId=position_id, **fix)
    confirmed(submit(api, agent_id, "AddToPosition", body))


def test_exit_ladder_invalid_suggests_a_ladder_the_track_accepts(api: Api) -> None:
    agent_id, _ = api.agent(0)
    _q, body = signed(api, 0, "OpenPosition", symbol="NVDA", usdcAmount="100", exits=[SL])
    fix = suggestion(submit(api, agent_id, "OpenPosition", body), 422, "exit_ladder_invalid")
    _q, body = signed(api, 0, "OpenPosition", symbol="NVDA", usdcAmount="100", **fix)
    position_id = confirmed(submit(api, agent_id, "OpenPosition", body))["positionId"]
    settle(api)
    for case, exits, _index, _reason in LADDER_CASES:
        _q, body = signed(api, 0, "UpdateExitLadder", positionId=position_id, exits=exits)
        fix = suggestion(submit(api, agent_id, "UpdateExitLadder", body), 422, "exit_ladder_invalid")
        assert set(fix) == {"exits"}, (case, fix)
        _q, body = signed(api, 0, "UpdateExitLadder", positionId=position_id, **fix)
        record = confirmed(submit(api, agent_id, "UpdateExitLadder", body))
        assert record["type"] == "UpdateExitLadder", case
        settle(api)
        ladder = api.client.get(f"/agents/{agent_id}/positions/{position_id}").json()["ladder"]
        assert [{k: r[k] for k in ("triggerType", "triggerBps", "exitBps")} for r in ladder] == fix["exits"]


def test_rate_limited_suggests_how_long_to_wait(api: Api) -> None:
    agent_id, _ = api.agent(0)
    api.services.limiter = RateLimiter(rate_per_s=0.25, burst=1)
    _q, first = signed(api, 0, "OpenPosition", symbol="NVDA", usdcAmount="100", exits=LADDER)
    accepted = submit(api, agent_id, "OpenPosition", first, headers={"Prefer": "wait=0"})
    assert accepted.status_code in (201, 202), accepted.text
    # Signed by the agent for its next nonce: only the agent's own intents spend its budget.
    _q, second = signed(api, 0, "OpenPosition", symbol="AAPL", usdcAmount="100", exits=LADDER)
    r = submit(api, agent_id, "OpenPosition", second)
    fix = suggestion(r, 429, "rate_limited")
    assert 0 < fix["retryAfterS"] <= 4 and r.headers["Retry-After"] == str(math.ceil(fix["retryAfterS"]))
    time.sleep(fix["retryAfterS"])
    settle(api)
    _q, second = signed(api, 0, "OpenPosition", symbol="AAPL", usdcAmount="100", exits=LADDER)
    confirmed(submit(api, agent_id, "OpenPosition", second))


def test_oracle_stale_suggests_a_retry_that_passes_once_the_price_is_pushed(api: Api) -> None:
    agent_id, _ = api.agent(0)
    rpc(api, "evm_increaseTime", 3601)
    rpc(api, "evm_mine")
    api.stack.admin.allow_token(1, api.stack.manifest.tokens["SPY"], True)  # a block the relayer indexes
    settle(api)
    _q, body = signed(api, 0, "OpenPosition", symbol="AAPL", usdcAmount="100", exits=LADDER)
    r = submit(api, agent_id, "OpenPosition", body)
    fix = suggestion(r, 503, "oracle_stale")
    assert fix["retryAfterS"] > 0 and int(r.headers["Retry-After"]) >= 1
    set_price(api, "AAPL", "231.50")  # the oracle's next push, which the retry waits for
    confirmed(submit(api, agent_id, "OpenPosition", body))


def test_daily_loss_limit_suggests_when_buys_resume(api: Api) -> None:
    agent_id, _ = api.agent(0)
    wide = [TP, {**SL, "triggerBps": -1500}]
    positions = [open_position(api, symbol=s, usdc="20000", exits=wide) for s in ("NVDA", "AAPL")]
    set_price(api, "NVDA", "156.82")
    set_price(api, "AAPL", "199.09")
    for position_id in positions:
        _q, body = signed(api, 0, "ReducePosition", positionId=position_id)
        confirmed(submit(api, agent_id, "ReducePosition", body))
        settle(api)
    _q, body = signed(api, 0, "OpenPosition", symbol="TSLA", usdcAmount="100", exits=LADDER)
    fix = suggestion(submit(api, agent_id, "OpenPosition", body), 422, "daily_loss_limit_reached")
    assert set(fix) == {"notBefore"} and fix["notBefore"] % 86_400 == 0
    rpc(api, "evm_setNextBlockTimestamp", fix["notBefore"])
    rpc(api, "evm_mine")
    # Prices are pushed again on the new day (they would be stale otherwise).
    for symbol, price in (("TSLA", "250"), ("NVDA", "156.82")):
        set_price(api, symbol, price)
    _q, body = signed(api, 0, "OpenPosition", symbol="TSLA", usdcAmount="100", exits=LADDER)
    confirmed(submit(api, agent_id, "OpenPosition", body))
