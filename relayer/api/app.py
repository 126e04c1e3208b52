"""The app factory: everything comes in through `Services`; nothing is built at import time."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from relayer.api import errors
from relayer.api.routes import agents, events, health, intents, markets, positions
from relayer.service import Services

MAX_BODY_BYTES = 64 * 1024


def create_app(services: Services) -> FastAPI:
    app = FastAPI(
        title="AlphaGrid relayer",
        version="1",
        description="Quote, verify and relay EIP-712 trading intents to the AlphaGrid TradeRouter.",
    )
    app.state.services = services
    errors.install(app)
    for module in (health, markets, agents, positions, intents, events):
        app.include_router(module.router)

    @app.middleware("http")
    async def _limits_and_metrics(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            return errors.error_response(
                400, "invalid_request", f"the body is larger than {MAX_BODY_BYTES} bytes"
            )
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        name = getattr(route, "path", "unmatched")
        services.metrics.http_requests.labels(name, str(response.status_code)).inc()
        services.metrics.http_latency.labels(name).observe(time.perf_counter() - started)
        return response

    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)
    return app


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
