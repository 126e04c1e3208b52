"""Each intent type end to end over HTTP, signed by an agent key with eth-account."""

from __future__ import annotations

from .agentkit import quote, trade
from .conftest import Api

LADDER = [
    {"triggerType": "TakeProfit", "triggerBps": 1000, "exitBps": 5000},
    {"triggerType": "StopLoss", "triggerBps": -1000, "exitBps": 10000},
]


def test_open_add_ladder_reduce(api: Api) -> None:
    agent_id, key = api.agent(0)
    c = api.client
    assert c.get("/health").json() == {"status": "ok"}
    assert c.get("/ready").status_code == 200

    r = trade(c, agent_id, key, "OpenPosition", symbol="NVDA", usdcAmount="1000", exits=LADDER)
    assert r.status_code == 201, r.text
    opened = r.json()
    assert opened["status"] == "confirmed" and opened["fill"]["usdc"] == "1000"
    position_id = opened["positionId"]

    r = trade(c, agent_id, key, "AddToPosition", positionId=position_id, usdcAmount="500")
    assert r.status_code == 201, r.text
    new_ladder = [
        {"triggerType": "TakeProfit", "triggerBps": 2000, "exitBps": 10000},
        {"triggerType": "StopLoss", "triggerBps": -500, "exitBps": 10000},
    ]
    r = trade(c, agent_id, key, "UpdateExitLadder", positionId=position_id, exits=new_ladder)
    assert r.status_code == 201, r.text
    r = trade(c, agent_id, key, "ReducePosition", positionId=position_id, tokenAmount="1")
    assert r.status_code == 201, r.text

    p = c.get(f"/agents/{agent_id}/positions/{position_id}").json()
    assert p["status"] == "open" and p["costBasis"] != "1500"
    assert [h["kind"] for h in p["history"]] == ["opened", "ladder", "increased", "ladder", "reduced"]
    assert [r["triggerBps"] for r in p["ladder"]] == [2000, -500]
    assert c.get(f"/agents/{agent_id}").json()["nextNonce"] == 4
    assert len(c.get(f"/agents/{agent_id}/intents").json()["intents"]) == 4

    q = quote(c, agent_id, "ReducePosition", positionId=position_id).json()
    assert q["defaulted"] == ["tokenAmount", "minUsdcOut"]
    r = trade(c, agent_id, key, "ReducePosition", positionId=position_id)
    assert r.status_code == 201, r.text
    assert c.get(f"/agents/{agent_id}/positions?status=closed").json()["positions"][0]["status"] == "closed"
