"""Server-Sent Events per agent, resumable with Last-Event-ID (SPEC §2.6), pushed by the process's one
stream reader (`relayer.api.streams`) rather than polled per connection."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse

from relayer.api.deps import ServicesDep
from relayer.api.streams import broker_of
from relayer.intents.build import agent_of

router = APIRouter(tags=["events"])


@router.get("/agents/{agent_id}/events")
async def stream(
    agent_id: str,
    request: Request,
    services: ServicesDep,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    with services.state.read():
        agent = agent_of(services.state, agent_id)
    after = int(last_event_id) if last_event_id and last_event_id.isdigit() else 0
    broker = broker_of(request.app.state, services.sessions, services.settings)
    sub = await broker.subscribe(agent.agent_id, request.client.host if request.client else "unknown")
    return StreamingResponse(
        broker.events(sub, after), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )
