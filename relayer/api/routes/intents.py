"""Quote → sign → submit for the four intents, signature diagnostics, and the intent records."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from relayer import eip712
from relayer.api.deps import ServicesDep
from relayer.errors import RelayerError, invalid_request
from relayer.intents import checks
from relayer.intents.bodies import AddBody, LadderBody, OpenBody, PrimaryType, ReduceBody
from relayer.intents.build import agent_of
from relayer.intents.lifecycle import intent_json
from relayer.intents.waiting import Answer
from relayer.quotes import quote
from relayer.store.models import Intent

router = APIRouter(tags=["intents"])

DEFAULT_WAIT_S = 10.0
MAX_WAIT_S = 60.0
_PREFER_WAIT = re.compile(r"(?:^|[,;\s])wait=(\d+(?:\.\d+)?)")


def _wait(prefer: str | None) -> float:
    if prefer is None:
        return DEFAULT_WAIT_S
    match = _PREFER_WAIT.search(prefer)
    return min(float(match.group(1)), MAX_WAIT_S) if match else DEFAULT_WAIT_S


def _params(request: Request) -> dict[str, str]:
    return dict(request.query_params)


# ---------------------------------------------------------------------- quotes
#
# Quotes and verify are `async def` although they do blocking work: they only read memory and run one
# short indexed query, and as `def` routes every request took two thread-pool hops (the endpoint,
# then FastAPI's response validation) which cost more CPU than the quote itself (bench/results).


@router.get("/agents/{agent_id}/trade-intents/quote")
async def quote_open(agent_id: str, request: Request, services: ServicesDep) -> dict[str, Any]:
    """Query: `symbol`, `usdcAmount`, `exits` (URL-encoded JSON array); optional `maxSlippageBps`,
    `minTokenOut`, `deadline`."""
    return quote(services.intents, agent_id, "OpenPosition", _params(request))


@router.get("/agents/{agent_id}/add-intents")
async def quote_add(agent_id: str, request: Request, services: ServicesDep) -> dict[str, Any]:
    """Query: `positionId` or `symbol`, `usdcAmount`, optional `maxSlippageBps`, `minTokenOut`, `deadline`."""
    return quote(services.intents, agent_id, "AddToPosition", _params(request))


@router.get("/agents/{agent_id}/reduce-intents")
async def quote_reduce(agent_id: str, request: Request, services: ServicesDep) -> dict[str, Any]:
    """Query: `positionId` or `symbol`, `tokenAmount` (default: all); optional `maxSlippageBps`,
    `minUsdcOut`."""
    return quote(services.intents, agent_id, "ReducePosition", _params(request))


@router.get("/agents/{agent_id}/exit-ladder-intents")
async def quote_ladder(agent_id: str, request: Request, services: ServicesDep) -> dict[str, Any]:
    """Query: `positionId` or `symbol`, `exits` (URL-encoded JSON), optional `deadline`."""
    return quote(services.intents, agent_id, "UpdateExitLadder", _params(request))


# ---------------------------------------------------------------------- submits

IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]
Prefer = Annotated[str | None, Header(alias="Prefer")]


# The route, not the pipeline, decides the HTTP status (SPEC §2.3).
_STATUS_BY_ANSWER = {Answer.EXISTING: 200, Answer.CONFIRMED: 201, Answer.IN_FLIGHT: 202}


def _submit(
    services: ServicesDep,
    agent_id: str,
    primary_type: str,
    body: BaseModel,
    key: str | None,
    prefer: str | None,
) -> JSONResponse:
    retry_after_s = services.limiter.take(str(agent_id))
    if retry_after_s > 0:
        raise RelayerError(
            "rate_limited",
            f"agent {agent_id} is submitting faster than {services.settings.submit_rate_per_s:g}/s",
            {"retryAfterS": round(retry_after_s, 3)},
        )
    result = services.intents.submit(
        agent_id, primary_type, body.model_dump(), idempotency_key=key, wait_s=_wait(prefer)
    )
    status_code = _STATUS_BY_ANSWER[result.answer]
    services.metrics.intents.labels(primary_type, str(status_code)).inc()
    return JSONResponse(result.body, status_code=status_code)


@router.post("/agents/{agent_id}/trade-intents", status_code=201)
def submit_open(
    agent_id: str, body: OpenBody, services: ServicesDep, key: IdempotencyKey = None, prefer: Prefer = None
) -> JSONResponse:
    return _submit(services, agent_id, "OpenPosition", body, key, prefer)


@router.post("/agents/{agent_id}/add-intents", status_code=201)
def submit_add(
    agent_id: str, body: AddBody, services: ServicesDep, key: IdempotencyKey = None, prefer: Prefer = None
) -> JSONResponse:
    return _submit(services, agent_id, "AddToPosition", body, key, prefer)


@router.post("/agents/{agent_id}/reduce-intents", status_code=201)
def submit_reduce(
    agent_id: str, body: ReduceBody, services: ServicesDep, key: IdempotencyKey = None, prefer: Prefer = None
) -> JSONResponse:
    return _submit(services, agent_id, "ReducePosition", body, key, prefer)


@router.post("/agents/{agent_id}/exit-ladder-intents", status_code=201)
def submit_ladder(
    agent_id: str, body: LadderBody, services: ServicesDep, key: IdempotencyKey = None, prefer: Prefer = None
) -> JSONResponse:
    return _submit(services, agent_id, "UpdateExitLadder", body, key, prefer)


# ---------------------------------------------------------------------- diagnostics


class VerifyBody(BaseModel):
    model_config = ConfigDict(extra="allow")

    primaryType: PrimaryType  # noqa: N815


@router.post("/agents/{agent_id}/intents/verify")
async def verify(agent_id: str, body: VerifyBody, services: ServicesDep) -> dict[str, Any]:
    """Rebuilds the typed data from a submit body and runs every check, sending nothing."""
    raw = {k: v for k, v in (body.model_extra or {}).items()}
    b = services.intents.built(agent_id, body.primaryType, raw)
    digest = b.digest(services.domain)
    try:
        recovered: str | None = eip712.recover_signer(digest, b.signature) if b.signature else None
    except eip712.SignatureError:
        recovered = None
    now = services.intents.chain_now()
    with services.sessions() as session:
        ctx = services.intents.context(session, b.agent, now)
    with services.state.read():
        results = checks.run(b, ctx)
    return {
        "primaryType": body.primaryType,
        "typedData": eip712.typed_data(services.domain, b.intent),
        "digest": "0x" + digest.hex(),
        "domainSeparator": "0x" + services.domain.separator().hex(),
        "structHash": "0x" + b.intent.struct_hash().hex(),
        "recoveredSigner": recovered,
        "registeredSigner": b.agent.signer,
        "expectedNonce": ctx.expected_nonce,
        "checks": [c.to_json() for c in results],
        "ok": all(c.ok for c in results),
    }


# ---------------------------------------------------------------------- records


@router.get("/agents/{agent_id}/intents")
def list_intents(
    agent_id: str, services: ServicesDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> dict[str, Any]:
    with services.state.read():
        agent = agent_of(services.state, agent_id)
    with services.sessions() as session:
        rows = session.scalars(
            select(Intent).where(Intent.agent_id == agent.agent_id).order_by(Intent.id.desc()).limit(limit)
        ).all()
        return {"intents": [intent_json(r) for r in rows]}


@router.get("/agents/{agent_id}/intents/{intent_id}")
def get_intent(agent_id: str, intent_id: str, services: ServicesDep) -> dict[str, Any]:
    with services.state.read():
        agent = agent_of(services.state, agent_id)
    if not intent_id.isdigit():
        raise invalid_request("intent id must be an integer", field="intentId")
    with services.sessions() as session:
        row = session.get(Intent, int(intent_id))
        if row is None or row.agent_id != agent.agent_id:
            raise RelayerError("intent_not_found", f"no intent {intent_id} for agent {agent_id}")
        out = intent_json(row)
        out["history"] = [
            {"status": h.status, "reason": h.reason, "at": h.at.isoformat()} for h in row.history
        ]
        return out
