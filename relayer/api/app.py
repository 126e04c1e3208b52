"""The app factory: everything comes in through `Services`; nothing is built at import time."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response

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

    return app
