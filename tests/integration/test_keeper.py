"""The keeper against a real chain: prices pushed across a ladder's triggers close positions through
executeExit, in the contract's order, and the audit trail says which price fired which rule."""

from __future__ import annotations

import time

from relayer.chain.seed import price_base

from .agentkit import trade
from .conftest import Api

LADDER = [
    {"triggerType": "TakeProfit", "triggerBps": 1000, "exitBps": 5000},
    {"triggerType": "StopLoss", "triggerBps": -1000, "exitBps": 10000},
]


def _open(api: Api, symbol: str = "NVDA", usdc: str = "1000", exits: list[dict[str, object]] = LADDER) -> str:
    agent_id, key = api.agent(0)
    r = trade(api.client, agent_id, key, "OpenPosition", symbol=symbol, usdcAmount=usdc, exits=exits)
    assert r.status_code == 201, r.text
    return str(r.json()["positionId"])


def _set_price(api: Api, symbol: str, price: str) -> None:
    from decimal import Decimal

    token = api.stack.manifest.tokens[symbol]
    api.stack.admin.set_prices([token], [price_base(Decimal(price))])


def _wait_position(api: Api, position_id: str, predicate: object, timeout_s: float = 10) -> dict[str, object]:
    agent_id, _ = api.agent(0)
    deadline = time.monotonic() + timeout_s
    while True:
        p = api.client.get(f"/agents/{agent_id}/positions/{position_id}").json()
        if predicate(p):  # type: ignore[operator]
            return p  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, p
        time.sleep(0.05)


def test_stop_loss_closes_the_position(api: Api) -> None:
    position_id = _open(api)
    started = time.monotonic()
    _set_price(api, "NVDA", "160")  # from 182.35: about −12%
    p = _wait_position(
        api,
        position_id,
        lambda p: p["status"] == "closed" and any(a["action"] == "confirmed" for a in p["audit"]),
    )
    elapsed = time.monotonic() - started
    exits = [h for h in p["history"] if h["kind"] == "exit"]
    assert [e["ruleIndex"] for e in exits] == [1]
    assert exits[0]["oraclePrice"] == "160"
    assert any(a["action"] == "confirmed" and a["ruleIndex"] == 1 for a in p["audit"])
    assert elapsed < 5


def test_partial_take_profit_then_stop_on_the_rest(api: Api) -> None:
    position_id = _open(api)
    _set_price(api, "NVDA", "205")  # about +12%: sells half, keeps the stop
    p = _wait_position(api, position_id, lambda p: p["ladder"][0]["fired"])
    assert p["status"] == "open" and not p["ladder"][1]["fired"]
    _set_price(api, "NVDA", "150")
    p = _wait_position(api, position_id, lambda p: p["status"] == "closed")
    assert [h["ruleIndex"] for h in p["history"] if h["kind"] == "exit"] == [0, 1]


def test_stale_price_fires_nothing(api: Api) -> None:
    position_id = _open(api)
    w3 = api.stack.w3
    w3.provider.make_request("evm_increaseTime", [3700])  # type: ignore[arg-type]
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    # The price moves below the stop but the oracle round is already stale when the keeper looks:
    # push a price, then age it past maxPriceAge before the next block.
    _set_price(api, "NVDA", "150")
    w3.provider.make_request("evm_increaseTime", [3700])  # type: ignore[arg-type]
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    time.sleep(1.0)
    agent_id, _ = api.agent(0)
    p = api.client.get(f"/agents/{agent_id}/positions/{position_id}").json()
    assert p["status"] == "open"
