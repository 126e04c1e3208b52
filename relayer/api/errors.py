"""The only place exceptions become HTTP answers: RelayerError → its code; malformed requests → 400
invalid_request; anything else → an opaque 500 and a log line (a bug by definition)."""

from __future__ import annotations

import logging
import math

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from relayer.errors import RelayerError

log = logging.getLogger("alphagrid.api")


def error_response(
    status: int, code: str, message: str, details: dict[str, object] | None = None
) -> JSONResponse:
    return JSONResponse({"code": code, "message": message, "details": details or {}}, status_code=status)


def install(app: FastAPI) -> None:
    @app.exception_handler(RelayerError)
    async def _relayer_error(_request: Request, exc: RelayerError) -> JSONResponse:
        response = error_response(exc.status, exc.code, exc.message, exc.details)
        retry_after = exc.details.get("retryAfterS")
        if exc.code == "rate_limited" and isinstance(retry_after, (int, float)):
            response.headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
        if exc.code == "unauthorized":  # RFC 6750: a 401 names the scheme the endpoint takes
            response.headers["WWW-Authenticate"] = "Bearer"
        return response

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "malformed request"}
        if first.get("type") == "json_invalid":  # its loc is ("body", character offset), not a field
            ctx = first.get("ctx")
            error = ctx.get("error", "") if isinstance(ctx, dict) else ""
            message = f"body: malformed JSON ({error})"
            return error_response(400, "invalid_request", message, {"field": "body"})
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
        return error_response(400, "invalid_request", f"{where}: {first.get('msg')}", {"field": where})

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = "invalid_request" if exc.status_code < 500 else "internal_error"
        return error_response(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", "internal error")
