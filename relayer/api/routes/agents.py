"""An agent's registration, limits and counters."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from relayer.api.deps import ServicesDep
from relayer.api.routes._common import public
from relayer.api.routing import StrictJsonRoute
from relayer.api.schemas.common import AgentIdPath, error_responses
from relayer.api.schemas.reads import AgentPublic
from relayer.intents.build import agent_of
from relayer.views import agent_json

router = APIRouter(tags=["agents"], route_class=StrictJsonRoute)


@router.get("/agents/{agent_id}", response_model=AgentPublic, responses=error_responses("agent_not_found"))
def get_agent(agent_id: AgentIdPath, services: ServicesDep) -> JSONResponse:
    now = services.intents.chain_now()
    with services.sessions() as session, services.state.read():
        agent = agent_of(services.state, agent_id)
        next_nonce = services.intents.context(session, agent, now).expected_nonce
        doc = agent_json(services.state, agent, now, next_nonce)
    # Additive: whether the relayer throttles or suspends the agent for front-running its intents.
    standing = services.intents.standing(agent.agent_id)
    doc["relayerStatus"] = standing.to_json() if standing is not None else None
    return public(doc)
