"""Liveness, readiness and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from relayer.api.deps import ServicesDep
from relayer.api.routing import StrictJsonRoute
from relayer.api.schemas.common import error_responses
from relayer.api.schemas.reads import HealthPublic, NotReadyPublic, ReadyPublic
from relayer.chain import rpc

router = APIRouter(tags=["health"], route_class=StrictJsonRoute)


# 400 only for a request whose declared body is over the limit (relayer.api.app.RouteMetrics).
@router.get("/health", response_model=HealthPublic, responses=error_responses())
def health() -> JSONResponse:
    return JSONResponse({"status": "ok"})


@router.get(
    "/ready",
    response_model=ReadyPublic,
    responses={
        503: {"model": NotReadyPublic, "description": "Not ready, with the reasons."},
        **error_responses(),
    },
)
def ready(services: ServicesDep) -> JSONResponse:
    reasons: list[str] = []
    try:
        head = int(rpc.call(services.w3, "eth_blockNumber", []), 16)
        chain_id = int(rpc.call(services.w3, "eth_chainId", []), 16)
        if chain_id != services.manifest.chain_id:
            reasons.append(
                f"the node serves chain {chain_id}, the manifest is for {services.manifest.chain_id}"
            )
        code = rpc.call(services.w3, "eth_getCode", [services.manifest.contracts.trade_router, "latest"])
        if code in ("0x", "", None):
            reasons.append("no TradeRouter at the manifest's address")
        elif services.state.block_number < 0 or head - services.state.block_number > 5:
            reasons.append(f"indexer behind: {services.state.block_number} of {head}")
    except Exception as exc:
        reasons.append(f"chain unreachable: {type(exc).__name__}")
    try:
        with services.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        reasons.append(f"database unreachable: {type(exc).__name__}")
    if reasons:
        return JSONResponse({"status": "unavailable", "reasons": reasons}, status_code=503)
    return JSONResponse({"status": "ready", "block": services.state.block_number})


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus"},
        **error_responses(),
    },
)
def metrics(services: ServicesDep) -> Response:
    services.metrics.indexed_block.set(services.state.block_number)
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)
