"""An agent's positions, and one position with its history and the keeper's audit trail."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query
from sqlalchemy import select

from relayer.api.deps import ServicesDep
from relayer.intents.build import agent_of, position_of
from relayer.store.models import KeeperAudit, PositionEvent
from relayer.views import audit_json, history_json, position_json

router = APIRouter(tags=["positions"])


@router.get("/agents/{agent_id}/positions")
def list_positions(
    agent_id: str, services: ServicesDep, status: Literal["open", "closed", "all"] = Query(default="open")
) -> dict[str, Any]:
    state = services.state
    with state.read():
        agent = agent_of(state, agent_id)
        chosen = [
            p
            for p in state.positions.values()
            if p.agent_id == agent.agent_id and (status == "all" or (p.open == (status == "open")))
        ]
        return {"positions": [position_json(state, p) for p in sorted(chosen, key=lambda p: p.position_id)]}


@router.get("/agents/{agent_id}/positions/{position_id}")
def get_position(agent_id: str, position_id: str, services: ServicesDep) -> dict[str, Any]:
    state = services.state
    with state.read():
        agent = agent_of(state, agent_id)
        p = position_of(state, agent, position_id)
        out = position_json(state, p)
    with services.sessions() as session:
        events = session.scalars(
            select(PositionEvent).where(PositionEvent.position_id == p.position_id).order_by(PositionEvent.id)
        ).all()
        audit = session.scalars(
            select(KeeperAudit).where(KeeperAudit.position_id == p.position_id).order_by(KeeperAudit.id)
        ).all()
        with state.read():
            out["history"] = [history_json(state, p, e) for e in events]
        out["audit"] = [audit_json(a) for a in audit]
    return out
