"""The only place exceptions become HTTP answers: RelayerError → its code; malformed requests → 400
invalid_request; anything else → an opaque 500 and a log line (a bug by definition)."""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from relayer.errors import RelayerError
from relayer.intents.checks import RETRY_AFTER_S

log = logging.getLogger("alphagrid.api")

# Parts of a validation error's location that are not the client's field names: where the parameter
# was (body, query, path, header) and the tag of verify's body union.
_NOT_FIELDS = frozenset(
    {"body", "query", "path", "header", "OpenPosition", "AddToPosition", "ReducePosition", "UpdateExitLadder"}
)


def error_response(
    status: int, code: str, message: str, details: dict[str, object] | None = None
) -> JSONResponse:
    return JSONResponse({"code": code, "message": message, "details": details or {}}, status_code=status)


def with_suggestion(code: str, details: dict[str, Any]) -> dict[str, Any]:
    """`details.suggestion` (SPEC §5.2) for the errors whose fix is in their own details, wherever they
    were raised (checks, the pipeline, a decoded revert); the checks add the ones that need the
    agent's book or track (usdcAmount, exits, deadline, notBefore)."""
    if "suggestion" in details:
        return details
    suggestion: dict[str, Any] | None = None
    if code == "nonce_mismatch" and isinstance(details.get("expected"), int):
        suggestion = {"nonce": details["expected"]}
    elif code == "rate_limited" and isinstance(details.get("retryAfterS"), (int, float)):
        suggestion = {"retryAfterS": details["retryAfterS"]}
    elif code in ("chain_unavailable", "oracle_stale"):
        suggestion = {"retryAfterS": RETRY_AFTER_S}
    return details if suggestion is None else {**details, "suggestion": suggestion}


def install(app: FastAPI) -> None:
    @app.exception_handler(RelayerError)
    async def _relayer_error(_request: Request, exc: RelayerError) -> JSONResponse:
        details = with_suggestion(exc.code, exc.details)
        response = error_response(exc.status, exc.code, exc.message, details)
        retry_after = details.get("suggestion", {}).get("retryAfterS")
        if isinstance(retry_after, (int, float)):
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
        loc = tuple(first.get("loc", ()))
        parts = [str(p) for p in loc if p not in _NOT_FIELDS]
        if loc and loc[0] in ("query", "path", "header"):
            parts = parts[:1]  # the parameter; the rest names a member of its type (`constrained-int`)
        where = ".".join(parts) or "body"
        return error_response(400, "invalid_request", f"{where}: {first.get('msg')}", {"field": where})

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = "invalid_request" if exc.status_code < 500 else "internal_error"
        return error_response(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", "internal error")
