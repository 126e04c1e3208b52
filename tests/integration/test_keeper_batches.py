"""The keeper fires in batches (SPEC §5.1): every exit one price update crosses goes out in one
`executeExits` transaction, and each item is audited with its own outcome."""

from __future__ import annotations

from decimal import Decimal

from .agentkit import trade
from .conftest import Api
from .test_api_batches import register_agents
from .test_keeper import LADDER, _exit_requests, _exits, _set_price, _wait


def _open_for(api: Api, agent_id: int, key: str, symbol: str = "NVDA") -> str:
    r = trade(api.client, agent_id, key, "OpenPosition", symbol=symbol, usdcAmount="500", exits=LADDER)
    assert r.status_code == 201, r.text
    return str(r.json()["positionId"])


def _position_of(api: Api, agent_id: int, position_id: str) -> dict[str, object]:
    r = api.client.get(f"/agents/{agent_id}/positions/{position_id}")
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def test_one_price_update_crossing_many_stops_closes_them_in_one_transaction(api: Api) -> None:
    agents = register_agents(api, 6)
    positions = [(agent_id, _open_for(api, agent_id, key)) for agent_id, key in agents]
    _wait(lambda: len(api.services.keeper.index) >= 2 * len(positions), "the keeper to index every ladder")
    _set_price(api, "NVDA", str(Decimal("182.35") * Decimal("0.85")))  # −15 %: every stop (−10 %)
    for agent_id, position_id in positions:
        _wait(
            lambda a=agent_id, p=position_id: _position_of(api, a, p)["status"] == "closed",
            "the stop",
            timeout_s=30,
        )
        assert _position_of(api, agent_id, position_id)["size"] == "0"
    requests = _exit_requests(api)
    assert len(requests) == 1, [(r.id, r.data[:10]) for r in requests]
    mined = requests[0].mined_hash
    for agent_id, position_id in positions:
        p = _position_of(api, agent_id, position_id)
        (fired,) = _exits(p)  # type: ignore[arg-type]
        assert fired["transactionHash"] == mined
        actions = [(a["ruleIndex"], a["action"]) for a in p["audit"]]  # type: ignore[union-attr]
        assert actions == [(1, "sent"), (1, "confirmed")], p["audit"]
