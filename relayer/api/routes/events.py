"""Server-Sent Events per agent, resumable with Last-Event-ID (SPEC §2.6)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse
from pydantic import BeforeValidator, Field
from pydantic.json_schema import SkipJsonSchema
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from relayer.api.deps import ServicesDep
from relayer.api.routing import StrictJsonRoute
from relayer.api.schemas.common import AgentIdPath, error_responses
from relayer.intents.build import agent_of
from relayer.numbers import MAX_DB_ID, NumberError, parse_uint
from relayer.service import Services
from relayer.store.models import StreamEvent

router = APIRouter(tags=["events"], route_class=StrictJsonRoute)

POLL_S = 0.2
KEEPALIVE_S = 15.0


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


def _fetch(services: Services, agent_id: int, after: int) -> list[tuple[int, str, str]]:
    with services.sessions() as session:
        rows = session.execute(
            select(StreamEvent.seq, StreamEvent.type, StreamEvent.data)
            .where(StreamEvent.agent_id == agent_id, StreamEvent.seq > after)
            .order_by(StreamEvent.seq)
            .limit(500)
        ).all()
    return [(seq, type_, json.dumps(data, separators=(",", ":"))) for seq, type_, data in rows]


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

    async def events() -> AsyncIterator[str]:
        nonlocal after
        idle = 0.0
        yield "retry: 1000\n\n"
        while not await request.is_disconnected():
            rows = await run_in_threadpool(_fetch, services, agent.agent_id, after)
            for seq, type_, data in rows:
                after = seq
                yield f"id: {seq}\nevent: {type_}\ndata: {data}\n\n"
            if rows:
                idle = 0.0
                continue
            idle += POLL_S
            if idle >= KEEPALIVE_S:
                idle = 0.0
                yield ": keepalive\n\n"
            await asyncio.sleep(POLL_S)

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
