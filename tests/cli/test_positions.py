"""`alphagrid positions`: positions opened by signed intents on the chain, their figures and ladders;
and the arithmetic behind them, case by case."""

from __future__ import annotations

from relayer.chain import calls
from relayer.cli.positions import entry_price, is_triggered, pnl_bps, trigger_price, value_usdc
from relayer.eip712 import ExitRule, TriggerType

from .conftest import Chain, fails, invoke, ok_json, open_position, relay


def test_positions_show_size_prices_pnl_and_ladder(chain: Chain) -> None:
    nvda = open_position(chain, 0, "NVDA", 1_000)
    ok_json(["oracle", "set", "NVDA", "190"], chain.env)
    doc = ok_json(["positions", "1"], chain.env)
    assert doc["agentId"] == 1 and doc["status"] == "open"
    [p] = doc["positions"]
    assert p["id"] == nvda and p["status"] == "open" and p["symbol"] == "NVDA"
    assert p["costBasis"] == "1000" and p["price"] == "190"
    assert p["token"] == chain.manifest.tokens["NVDA"]
    # Bought at 182.35 plus the venue's 10 bps spread: entry ≈ 182.53.
    entry = float(p["entryPrice"])
    assert 182.5 < entry < 182.6
    size = float(p["size"])
    assert abs(size * entry - 1000) < 0.01
    assert abs(float(p["unrealizedPnl"]) - (size * 190 - 1000)) < 0.01
    assert 400 < p["pnlBps"] < 420
    assert p["realizedPnl"] == "0" and p["openTx"].startswith("0x") and p["openedAt"] > 0
    tp, sl = p["ladder"]
    assert (tp["triggerType"], tp["triggerBps"], tp["exitBps"], tp["fired"]) == (
        "TakeProfit",
        1000,
        5000,
        False,
    )
    assert (sl["triggerType"], sl["triggerBps"], sl["exitBps"], sl["fired"]) == (
        "StopLoss",
        -1000,
        10000,
        False,
    )
    assert abs(float(tp["triggerPrice"]) - entry * 1.1) < 0.001
    assert abs(float(sl["triggerPrice"]) - entry * 0.9) < 0.001
    assert tp["triggered"] is False and sl["triggered"] is False

    human = invoke(["positions", "1"], chain.env)
    assert human.exit_code == 0 and "NVDA" in human.stdout and "TP +1000bps" in human.stdout


def test_positions_filter_by_status_and_agent(chain: Chain) -> None:
    ladder = (ExitRule(TriggerType.STOP_LOSS, -500, 10000),)
    aapl = open_position(chain, 1, "AAPL", 500, ladder)
    tsla = open_position(chain, 1, "TSLA", 500, ladder)
    open_position(chain, 0, "SPY", 700)
    # A fall of 10 % fires TSLA's stop: anyone may call executeExit; here the test does.
    ok_json(["oracle", "set", "TSLA", "200"], chain.env)
    relay(chain, calls.execute_exit(tsla, ladder))

    open_doc = ok_json(["positions", "2"], chain.env)
    assert [p["id"] for p in open_doc["positions"]] == [aapl]
    closed = ok_json(["positions", "2", "--status", "closed"], chain.env)["positions"]
    assert [p["id"] for p in closed] == [tsla]
    [c] = closed
    assert c["status"] == "closed" and c["size"] == "0" and c["entryPrice"] is None
    assert float(c["realizedPnl"]) < -50 and c["ladder"][0]["fired"] is True
    everything = ok_json(["positions", "2", "--status", "all"], chain.env)["positions"]
    assert [p["id"] for p in everything] == [aapl, tsla]


def test_positions_triggered_rule_is_flagged(chain: Chain) -> None:
    open_position(chain, 0, "MSFT", 1_000)
    ok_json(["oracle", "set", "MSFT", "300"], chain.env)  # far below the −10 % stop; no keeper runs here
    [p] = ok_json(["positions", "1"], chain.env)["positions"]
    assert [r["triggered"] for r in p["ladder"]] == [False, True]


def test_positions_empty_and_bad_arguments(chain: Chain) -> None:
    assert ok_json(["positions", "2"], chain.env)["positions"] == []
    human = invoke(["positions", "2"], chain.env)
    assert human.exit_code == 0 and "has no open positions" in human.stdout
    assert fails(["positions", "7"], chain.env, 2) == "error: unknown agent 7 (agent ids: 1..2)"
    assert "--status" in fails(["positions", "1", "--status", "pending"], chain.env, 2)
    assert "AGENT_ID" in fails(["positions", "0"], chain.env, 2)


# ------------------------------------------------------------------------------------------ arithmetic

D18 = 10**18


def test_value_and_entry_price_use_the_routers_scale() -> None:
    # 2 tokens at $150.5 = 301 USDC; entry of 301 USDC for 2 tokens = $150.5.
    assert value_usdc(2 * D18, 15_050_000_000, 18) == 301_000_000
    assert entry_price(301_000_000, 2 * D18, 18) == 15_050_000_000
    assert entry_price(5, 0, 18) is None
    assert value_usdc(1, 1, 18) == 0  # rounds down, as the router does


def test_trigger_price() -> None:
    assert trigger_price(10_000_000_000, -1000) == 9_000_000_000
    assert trigger_price(10_000_000_000, 2500) == 12_500_000_000
    assert trigger_price(10_000_000_000, -20_000) == 0


def test_is_triggered_matches_exitladder() -> None:
    cost = 1_000_000_000  # 1000 USDC
    assert is_triggered(0, -1000, 900_000_000, cost)  # exactly −10 %: a stop fires
    assert not is_triggered(0, -1000, 900_000_001, cost)
    assert is_triggered(1, 1000, 1_100_000_000, cost)  # exactly +10 %: a take-profit fires
    assert not is_triggered(1, 1000, 1_099_999_999, cost)


def test_pnl_bps_truncates_towards_zero() -> None:
    assert pnl_bps(1_050_000_000, 1_000_000_000) == 500
    assert pnl_bps(949_999_999, 1_000_000_000) == -500
    assert pnl_bps(1, 0) is None


def test_exit_gap_report_recovers_the_position_before_the_fill() -> None:
    """An ExitExecuted fill alone gives the size and basis before it: the trigger is the keeper's."""
    from relayer.amounts import format_amount
    from relayer.cli.positions import Rule, exit_json
    from relayer.domain.exits import PositionState, decide_exits, trigger_threshold

    stop = ExitRule(TriggerType.STOP_LOSS, -500, 5000)
    size, basis = 5_467_000_000_000_000_000, 1_000_000_000
    [fire] = decide_exits(PositionState(size, basis, 0, 18), [stop], 160_00000000, 10)
    fill = {
        "ruleIndex": 0,
        "tokensIn": fire.tokens_in,
        "usdcOut": fire.usdc_out,
        "oraclePrice": 160_00000000,
        "realizedPnl": fire.realized_pnl,
        "size": fire.size_after,
        "costBasis": fire.cost_basis_after,
    }
    out = exit_json([Rule(0, -500, 5000)], fill, 18)
    trigger = trigger_threshold(stop, size, basis, 18)
    assert trigger is not None
    fill_price = fire.usdc_out * 10**20 // fire.tokens_in
    assert out["triggerPrice"] == format_amount(trigger, 8)
    assert out["fillPrice"] == format_amount(fill_price, 8)
    assert out["slippageBps"] == (fill_price - trigger) * 10_000 // trigger < -700
    assert exit_json([], fill, 18)["triggerPrice"] is None  # a ladder the reader never saw
