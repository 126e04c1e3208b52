#!/usr/bin/env python3
"""A complete AlphaGrid trading agent on the SDK: open a position with an exit ladder, print it.

    python examples/agent.py                       # the demo agent of the local stack (scripts/up)
    python examples/agent.py --symbol AAPL --usdc 250 --stop-loss-bps -500 --take-profit-bps 1500

The agent id, key and relayer URL come from $ALPHAGRID_HOME/deployment.json (default .alphagrid/), or
from --manifest, --agent-id, --key and --api. Inside `open`: quote, sign the typed data with
eth-account, submit, follow to confirmation; a rejection raises AlphaGridError (code, message, details).
"""

import argparse

from relayer.sdk import AgentClient, StopLoss, TakeProfit

FLAGS = {"--manifest": None, "--api": None, "--agent-id": None, "--key": None, "--symbol": "NVDA",
         "--usdc": "100", "--stop-loss-bps": -500, "--take-profit-bps": 1000}  # fmt: skip
p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
for flag, default in FLAGS.items():
    p.add_argument(flag, default=default, type=type(default) if default is not None else str)
a = p.parse_args()
c = AgentClient.from_deployment(a.manifest, url=a.api, agent_id=a.agent_id, key=a.key)
# A take-profit on half at +10 %, and a stop-loss on the rest: the last rule must sell 100 %.
intent = c.open(a.symbol, usdc=a.usdc, exits=[TakeProfit(a.take_profit_bps, 5000), StopLoss(a.stop_loss_bps)])
pos = c.position(intent.position_id or 0)
print(f"intent {intent.intent_id} {intent.status}: tx {intent.transaction_hash}\nposition {pos.position_id}: "
      f"{pos.size} {pos.symbol} for {pos.cost_basis} USDC, entry {pos.entry_price}")  # fmt: skip
for r in pos.ladder:
    print(f"  {r.trigger_type:10} {r.trigger_bps:+6} bps -> sell {r.exit_bps / 100:g}% at {r.trigger_price}")
