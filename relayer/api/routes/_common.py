"""Shared by the routes: bodies are answered as built (byte for byte what `relayer.views` and the
pipeline produce; the `response_model` documents them and the contract tests hold them to it)."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse


def public(body: dict[str, Any], status_code: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status_code)
