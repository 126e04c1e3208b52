"""Server-Sent Events per agent, resumable with Last-Event-ID (SPEC §2.6), pushed by the process's one
stream reader (`relayer.api.streams`) rather than polled per connection."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse
from pydantic import BeforeValidator, Field
from pydantic.json_schema import SkipJsonSchema

from relayer.api.deps import ServicesDep
from relayer.api.routing import StrictJsonRoute
from relayer.api.schemas.common import AgentIdPath, error_responses
from relayer.api.streams import broker_of
from relayer.intents.build import agent_of
from relayer.numbers import MAX_DB_ID, NumberError, parse_uint

router = APIRouter(tags=["events"], route_class=StrictJsonRoute)


def _event_id(raw: object) -> object:
    # Strict before the stream opens: a bad id is a 400 answer, not a stream cut by a database
    # overflow; an empty header is no header.
    if raw == "":
        return None
    if isinstance(raw, str):
        try:
            return parse_uint(raw, high=MAX_DB_ID)
        except NumberError as exc:
            raise ValueError(f"Last-Event-ID {exc}") from None
    return raw


LastEventId = Annotated[
    Annotated[int, Field(ge=0, le=MAX_DB_ID)] | SkipJsonSchema[None],
    Header(alias="Last-Event-ID", description="The last event id received: the stream resumes after it."),
    BeforeValidator(_event_id),
]


@router.get(
    "/agents/{agent_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
            "description": "Server-Sent Events: `id: <seq>`, `event: <type>`, `data: <JSON>`.",
        },
        **error_responses("agent_not_found"),
    },
)
async def stream(
    agent_id: AgentIdPath,
    request: Request,
    services: ServicesDep,
    last_event_id: LastEventId = None,
) -> StreamingResponse:
    with services.state.read():
        agent = agent_of(services.state, agent_id)
    after = last_event_id or 0
    broker = broker_of(request.app.state, services.sessions, services.settings)
    sub = await broker.subscribe(agent.agent_id, request.client.host if request.client else "unknown")
    return StreamingResponse(
        broker.events(sub, after), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )
