"""The app factory: everything comes in through `Services`; nothing is built at import time."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio.to_thread
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from relayer.api import errors
from relayer.api.routes import agents, approvals, events, health, intents, markets, positions, webhooks
from relayer.ratelimit import StrangerLimit
from relayer.service import Services

MAX_BODY_BYTES = 64 * 1024


def create_app(services: Services) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # A submit waits for its outcome in a worker thread (up to its `Prefer: wait`). With anyio's
        # default of 40 threads, the 41st concurrent submit, and every blocking read behind it, queued
        # until a waiting submit was answered. A waiting thread costs no CPU.
        anyio.to_thread.current_default_thread_limiter().total_tokens = services.settings.api_threads
        yield

    app = FastAPI(
        title="AlphaGrid relayer",
        version="1",
        description="Quote, verify and relay EIP-712 trading intents to the AlphaGrid TradeRouter.",
        generate_unique_id_function=operation_id,
        lifespan=lifespan,
    )
    app.state.services = services
    errors.install(app)
    for module in (health, markets, agents, positions, intents, events, webhooks, approvals):
        app.include_router(module.router)

    app.add_middleware(StrangerLimit, services=services)
    app.add_middleware(RouteMetrics, services=services)
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = contract(
                get_openapi(
                    title=app.title, version=app.version, description=app.description, routes=app.routes
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def operation_id(route: APIRoute) -> str:
    """The endpoint's name (`quote_open`, `submit_open`, `get_intent`): what a generated client calls
    the operation. FastAPI warns about a duplicate, which the tests turn into a failure."""
    return route.name


def contract(doc: dict[str, Any]) -> dict[str, Any]:
    """The document as the API behaves (SPEC §5.3): a malformed request is answered 400 with the error
    schema (relayer.api.errors), never FastAPI's 422 `HTTPValidationError`, which is removed."""
    for item in doc.get("paths", {}).values():
        for operation in item.values():
            responses = operation.get("responses", {})
            schema = responses.get("422", {}).get("content", {}).get("application/json", {}).get("schema", {})
            if schema.get("$ref", "").endswith("/HTTPValidationError"):
                del responses["422"]
    schemas = doc.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    return doc


class RouteMetrics:
    """Counts and times each request by route and status, and refuses a declared body over the limit
    (on any method). A plain ASGI middleware: FastAPI's `@app.middleware("http")` runs each request
    through a task group and memory streams, which cost as much CPU as a cheap route itself."""

    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.metrics = services.metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers") or ():
            if name == b"content-length":
                if not value.isdigit() or int(value) > MAX_BODY_BYTES:
                    response = errors.error_response(
                        400, "invalid_request", f"the body is larger than {MAX_BODY_BYTES} bytes"
                    )
                    await response(scope, receive, send)
                    return
                break
        started = time.perf_counter()

        async def observed(message: Message) -> None:
            if message["type"] == "http.response.start":
                # Timed to the response's start, as a stream (SSE) is open for as long as it lasts.
                route = getattr(scope.get("route"), "path", "unmatched")
                self.metrics.http_requests.labels(route, str(message["status"])).inc()
                self.metrics.http_latency.labels(route).observe(time.perf_counter() - started)
            await send(message)

        await self.app(scope, receive, observed)


class BodyLimit:
    """Refuses bodies over `max_bytes` before the app reads them, whether they declare a
    Content-Length or arrive chunked: the body is read here, up to the limit, and replayed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = errors.error_response(
            400, "invalid_request", f"the body is larger than {self.max_bytes} bytes", {"field": "body"}
        )
        await response(scope, receive, send)
