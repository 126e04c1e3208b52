"""The gap report of a stop that fires through a gap (SPEC §5.6), on a real Anvil with the real keeper:
NVDA opens at 182.35 with a stop at −5 %, the next price is 160 (a weekend-like gap). The exit in the
position's history, the SSE `exit_fired` event and `alphagrid positions` all report the rule's
trigger price, the oracle price that fired it, the fill price and the slippage against the trigger."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
from typer.testing import CliRunner

from relayer.cli import app
from relayer.domain.exits import trigger_threshold
from relayer.domain.market import exit_gap_json
from relayer.eip712 import ExitRule, TriggerType

from .conftest import Api
from .test_keeper import _exits, _open, _set_price, _wait_position

TP10_HALF = {"triggerType": "TakeProfit", "triggerBps": 1000, "exitBps": 5000}
SL5_ALL = {"triggerType": "StopLoss", "triggerBps": -500, "exitBps": 10000}
GAP_FIELDS = ("triggerPrice", "oraclePrice", "fillPrice", "slippageBps", "gapBps")


def _exit_event(api: Api, agent_id: int, timeout_s: float = 10.0) -> dict[str, Any]:
    """Reads the agent's SSE stream from the start until its `exit_fired` event."""
    deadline = time.monotonic() + timeout_s
    current: dict[str, Any] = {}
    with api.client.stream(
        "GET", f"/agents/{agent_id}/events", headers={"Last-Event-ID": "0"}, timeout=httpx.Timeout(timeout_s)
    ) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("event: "):
                current["event"] = line[7:]
            elif line.startswith("data: "):
                current["data"] = json.loads(line[6:])
            elif line == "" and current:
                if current.get("event") == "exit_fired":
                    return current["data"]  # type: ignore[no-any-return]
                current = {}
            assert time.monotonic() < deadline, "no exit_fired event"
    raise AssertionError("the stream ended without an exit_fired event")


def test_a_gap_through_the_stop_is_reported_in_history_stream_and_cli(api: Api, tmp_path: Path) -> None:
    agent_id, _ = api.agent(0)
    position_id = _open(api, exits=[TP10_HALF, SL5_ALL])
    opened = api.services.state.positions[int(position_id)]
    decimals = api.services.state.tokens[opened.token].decimals
    stop = ExitRule(TriggerType.STOP_LOSS, -500, 10000)
    trigger = trigger_threshold(stop, opened.size, opened.cost_basis, decimals)
    assert trigger is not None

    _set_price(api, "NVDA", "160")  # from 182.35, past the stop at about 173.75 without a price between
    p = _wait_position(api, position_id, lambda p: p["status"] == "closed")
    [gap] = _exits(p)
    assert gap["ruleIndex"] == 1
    tokens_in = opened.size
    expected = exit_gap_json(
        trigger, 160_00000000, _base(gap["usdc"], 6), _base(gap["tokens"], decimals), decimals
    )
    assert {k: gap[k] for k in GAP_FIELDS} == expected
    assert gap["oraclePrice"] == "160"
    assert gap["slippageBps"] < -700 and gap["gapBps"] < -700
    assert gap["slippageBps"] <= gap["gapBps"]  # the venue's spread comes on top of the gap
    assert _base(gap["tokens"], decimals) == tokens_in
    # The market fields ride along on the position.
    assert p["marketStatus"] in ("Unknown", "Regular") and p["multiplier"]["current"] == "1"

    event = _exit_event(api, agent_id)
    assert {k: event[k] for k in GAP_FIELDS} == expected
    assert event["fill"]["ruleIndex"] == 1  # the fill itself is unchanged

    home = tmp_path / "cli-home"
    home.mkdir()
    api.stack.manifest.write(home / "deployment.json")
    env = {"ALPHAGRID_HOME": str(home), "ALPHAGRID_RPC_URL": api.stack.anvil.url}
    result = CliRunner().invoke(app, ["positions", str(agent_id), "--status", "closed", "--json"], env=env)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    [row] = [r for r in json.loads(result.stdout)["positions"] if str(r["id"]) == position_id]
    [cli_exit] = row["exits"]
    assert {k: cli_exit[k] for k in GAP_FIELDS} == expected
    table = CliRunner().invoke(app, ["positions", str(agent_id), "--status", "closed"], env=env)
    assert table.exit_code == 0, table.stdout
    assert f"{gap['slippageBps']:+d} bps" in table.stdout and expected["triggerPrice"] in table.stdout
    print("gap report:", {k: gap[k] for k in GAP_FIELDS})


def _base(text: str, decimals: int) -> int:
    whole, _, frac = text.partition(".")
    return int(whole) * 10**decimals + int((frac or "0").ljust(decimals, "0"))
