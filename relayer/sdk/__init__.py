"""The AlphaGrid agent SDK (SPEC §5.4): quote → sign → submit behind one call, typed results, and one
exception for every rejection. Light on purpose: httpx and eth-account, nothing of the relayer itself.

    from relayer.sdk import AgentClient, StopLoss, TakeProfit
    c = AgentClient("http://127.0.0.1:8000", agent_id=1, key="0x…")
    p = c.open("NVDA", usdc="100", exits=[TakeProfit(1000, 5000), StopLoss(-500)])
    c.add(p.position_id, usdc="50"); c.reduce(p.position_id, tokens="0.1")
    c.update_exits(p.position_id, [StopLoss(-300)]); c.positions(); c.prices("NVDA")
    for event in c.events(): ...
"""

from __future__ import annotations

from relayer.sdk.aio import AsyncAgentClient
from relayer.sdk.client import AgentClient
from relayer.sdk.core import Deployment, RetryPolicy, deployment_path
from relayer.sdk.errors import AlphaGridError
from relayer.sdk.models import (
    Account,
    Batch,
    Event,
    ExitRule,
    Fill,
    Intent,
    LadderRule,
    Market,
    Multiplier,
    Position,
    Price,
    Quote,
    StopLoss,
    TakeProfit,
)

__all__ = [
    "Account",
    "AgentClient",
    "AlphaGridError",
    "AsyncAgentClient",
    "Batch",
    "Deployment",
    "Event",
    "ExitRule",
    "Fill",
    "Intent",
    "LadderRule",
    "Market",
    "Multiplier",
    "Position",
    "Price",
    "Quote",
    "RetryPolicy",
    "StopLoss",
    "TakeProfit",
    "deployment_path",
]
