"""An agent's positions, and one position with its history and the keeper's audit trail."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from sqlalchemy import select

from relayer.api.deps import ServicesDep
from relayer.api.routes._common import public
from relayer.api.routing import StrictJsonRoute
from relayer.api.schemas.common import AgentIdPath, PositionIdPath, error_responses
from relayer.api.schemas.reads import PositionDetailPublic, PositionsPublic
from relayer.intents.build import agent_of, position_of
from relayer.store.models import KeeperAudit, PositionEvent
from relayer.views import audit_json, history_json, position_json

router = APIRouter(tags=["positions"], route_class=StrictJsonRoute)


@router.get(
    "/agents/{agent_id}/positions",
    response_model=PositionsPublic,
    responses=error_responses("agent_not_found"),
)
def list_positions(
    agent_id: AgentIdPath,
    services: ServicesDep,
    status: Literal["open", "closed", "all"] = Query(default="open", description="Which positions."),
) -> JSONResponse:
    state = services.state
    with state.read():
        agent = agent_of(state, agent_id)
        chosen = [
            p
            for p in state.positions.values()
            if p.agent_id == agent.agent_id and (status == "all" or (p.open == (status == "open")))
        ]
        positions = [position_json(state, p) for p in sorted(chosen, key=lambda p: p.position_id)]
    return public({"positions": positions})


@router.get(
    "/agents/{agent_id}/positions/{position_id}",
    response_model=PositionDetailPublic,
    responses=error_responses("agent_not_found", "position_not_found"),
)
def get_position(agent_id: AgentIdPath, position_id: PositionIdPath, services: ServicesDep) -> JSONResponse:
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
    return public(out)
