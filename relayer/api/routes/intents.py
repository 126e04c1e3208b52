"""Quote → sign → submit for the four intents, signature diagnostics, and the intent records."""

from __future__ import annotations

import re
from typing import Annotated, Any, Final

from fastapi import APIRouter, Header, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import select

from relayer import eip712
from relayer.api.deps import ServicesDep
from relayer.api.routes._common import public
from relayer.api.routing import StrictJsonRoute
from relayer.api.schemas.common import AgentIdPath, IntentIdPath, StrictUint, error_responses
from relayer.api.schemas.intents import (
    AddIntentRequest,
    IntentDetailPublic,
    IntentPublic,
    IntentsPublic,
    LadderIntentRequest,
    OpenIntentRequest,
    ReduceIntentRequest,
    VerifyPublic,
    VerifyRequest,
)
from relayer.api.schemas.quotes import (
    QuoteAddQuery,
    QuoteLadderQuery,
    QuoteOpenQuery,
    QuotePublic,
    QuoteReduceQuery,
)
from relayer.domain.calendar import ExchangeCalendar, calendar_if_loaded
from relayer.errors import RelayerError
from relayer.intents import checks
from relayer.intents.build import agent_of
from relayer.intents.lifecycle import intent_json
from relayer.intents.waiting import Answer
from relayer.quotes import quote
from relayer.store.models import Intent

router = APIRouter(tags=["intents"], route_class=StrictJsonRoute)

DEFAULT_WAIT_S = 10.0
MAX_WAIT_S = 60.0
_PREFER_WAIT = re.compile(r"(?:^|[,;\s])wait=(\d+(?:\.\d+)?)", re.ASCII)


def _wait(prefer: str | None) -> float:
    if prefer is None:
        return DEFAULT_WAIT_S
    match = _PREFER_WAIT.search(prefer)
    return min(float(match.group(1)), MAX_WAIT_S) if match else DEFAULT_WAIT_S


# ---------------------------------------------------------------------- the codes each operation answers

_QUOTE_OPEN: Final = error_responses("agent_not_found", "symbol_not_found")
_QUOTE_POSITION: Final = error_responses("agent_not_found", "symbol_not_found", "position_not_found")
_COMMON_SUBMIT: Final = (
    "invalid_signature",
    "agent_not_found",
    "nonce_mismatch",
    "deadline_expired",
    "agent_inactive",
    "paused",
    "simulation_failed",
    "rate_limited",
    "chain_unavailable",
)
_BUY: Final = (
    "token_not_allowed",
    "trade_size_exceeded",
    "headroom_exceeded",
    "daily_turnover_exceeded",
    "daily_loss_limit_reached",
    "market_closed",
    "slippage_exceeded",
    "oracle_stale",
)
_SUBMIT_OPEN: Final = (*_COMMON_SUBMIT, *_BUY, "symbol_not_found", "position_exists", "exit_ladder_invalid")
_SUBMIT_ADD: Final = (*_COMMON_SUBMIT, *_BUY, "position_not_found", "position_closed")
_SUBMIT_REDUCE: Final = (
    *_COMMON_SUBMIT,
    "position_not_found",
    "position_closed",
    "slippage_exceeded",
    "oracle_stale",
)
_SUBMIT_LADDER: Final = (*_COMMON_SUBMIT, "position_not_found", "position_closed", "exit_ladder_invalid")


def _submit_responses(codes: tuple[str, ...]) -> dict[int | str, dict[str, Any]]:
    return {
        200: {"model": IntentPublic, "description": "This intent was submitted before: its record."},
        201: {"model": IntentPublic, "description": "Mined: `status` confirmed, with the fill."},
        202: {
            "model": IntentPublic,
            "description": "Accepted, not mined within the wait (`Prefer: wait=N`): follow it with "
            "GET /agents/{agentId}/intents/{intentId}. Or, above the approval threshold of its track or "
            "agent: `status` pending_approval with an `approvalId` — nothing is sent until an approver "
            "approves it (SPEC §5.5).",
        },
        **error_responses(*codes),
    }


# ---------------------------------------------------------------------- quotes
#
# Quotes and verify are `async def` although they do blocking work: they only read memory and run one
# short indexed query, and as `def` routes every request took two thread-pool hops (the endpoint,
# then FastAPI's response validation) which cost more CPU than the quote itself (bench/results).


def _calendar(services: ServicesDep) -> ExchangeCalendar | None:
    """The exchange calendar behind a quote's ``nextOpen``, if loaded (never waits for pandas)."""
    return calendar_if_loaded(services.settings.market_calendar)


@router.get("/agents/{agent_id}/trade-intents/quote", response_model=QuotePublic, responses=_QUOTE_OPEN)
async def quote_open(
    agent_id: AgentIdPath, query: Annotated[QuoteOpenQuery, Query()], services: ServicesDep
) -> JSONResponse:
    """The OpenPosition to sign: `symbol`, `usdcAmount`, `exits` (URL-encoded JSON array)."""
    return public(quote(services.intents, agent_id, "OpenPosition", query.params(), _calendar(services)))


@router.get("/agents/{agent_id}/add-intents", response_model=QuotePublic, responses=_QUOTE_POSITION)
async def quote_add(
    agent_id: AgentIdPath, query: Annotated[QuoteAddQuery, Query()], services: ServicesDep
) -> JSONResponse:
    """The AddToPosition to sign: `positionId` or `symbol`, `usdcAmount`."""
    return public(quote(services.intents, agent_id, "AddToPosition", query.params(), _calendar(services)))


@router.get("/agents/{agent_id}/reduce-intents", response_model=QuotePublic, responses=_QUOTE_POSITION)
async def quote_reduce(
    agent_id: AgentIdPath, query: Annotated[QuoteReduceQuery, Query()], services: ServicesDep
) -> JSONResponse:
    """The ReducePosition to sign: `positionId` or `symbol`, `tokenAmount` (default: all)."""
    return public(quote(services.intents, agent_id, "ReducePosition", query.params(), _calendar(services)))


@router.get("/agents/{agent_id}/exit-ladder-intents", response_model=QuotePublic, responses=_QUOTE_POSITION)
async def quote_ladder(
    agent_id: AgentIdPath, query: Annotated[QuoteLadderQuery, Query()], services: ServicesDep
) -> JSONResponse:
    """The UpdateExitLadder to sign: `positionId` or `symbol`, `exits` (URL-encoded JSON array)."""
    return public(quote(services.intents, agent_id, "UpdateExitLadder", query.params(), _calendar(services)))


# ---------------------------------------------------------------------- submits

IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", max_length=200, description="Answers a repeat with the first record."),
]
Prefer = Annotated[
    str | None, Header(alias="Prefer", description="`wait=N`: seconds to wait for the mining (0..60).")
]


# The route, not the pipeline, decides the HTTP status (SPEC §2.3).
_STATUS_BY_ANSWER = {
    Answer.EXISTING: 200,
    Answer.CONFIRMED: 201,
    Answer.IN_FLIGHT: 202,
    Answer.PENDING_APPROVAL: 202,
}


def _submit(
    services: ServicesDep,
    agent_id: int,
    primary_type: str,
    body: BaseModel,
    key: str | None,
    prefer: str | None,
) -> JSONResponse:
    raw = body.model_dump()
    # The agent's bucket is charged only for an intent its signer signed (a stranger's failures are
    # counted per address by `ratelimit.StrangerLimit`), keyed by the parsed id.
    b = services.intents.built(agent_id, primary_type, raw)
    # Not the agent's signature: the submit answers without spending the agent's budget (the record
    # of the same message if there is one, 503 if the node changed chains, else 401 before anything
    # else is checked); `StrangerLimit` counts the failure against the client's address.
    signed_by_agent = checks.signature_error(b, services.domain) is None
    retry_after_s = services.limiter.take(b.agent.agent_id) if signed_by_agent else 0.0
    if retry_after_s > 0:
        retry = round(retry_after_s, 3)
        raise RelayerError(
            "rate_limited",
            f"agent {b.agent.agent_id} is submitting faster than {services.settings.submit_rate_per_s:g}/s",
            {"retryAfterS": retry},
        )
    result = services.intents.submit(
        agent_id,
        primary_type,
        raw,
        idempotency_key=key,
        wait_s=_wait(prefer),
        built=b,
        signature_ok=signed_by_agent,
    )
    # The route answers the pipeline's outcome with the status documented above: the record of an
    # earlier submit (200), mined (201) or still on its way (202).
    status_code = _STATUS_BY_ANSWER[result.answer]
    services.metrics.intents.labels(primary_type, str(status_code)).inc()
    return public(result.body, status_code)


@router.post(
    "/agents/{agent_id}/trade-intents",
    status_code=201,
    response_model=IntentPublic,
    responses=_submit_responses(_SUBMIT_OPEN),
)
def submit_open(
    agent_id: AgentIdPath,
    body: OpenIntentRequest,
    services: ServicesDep,
    key: IdempotencyKey = None,
    prefer: Prefer = None,
) -> JSONResponse:
    return _submit(services, agent_id, "OpenPosition", body, key, prefer)


@router.post(
    "/agents/{agent_id}/add-intents",
    status_code=201,
    response_model=IntentPublic,
    responses=_submit_responses(_SUBMIT_ADD),
)
def submit_add(
    agent_id: AgentIdPath,
    body: AddIntentRequest,
    services: ServicesDep,
    key: IdempotencyKey = None,
    prefer: Prefer = None,
) -> JSONResponse:
    return _submit(services, agent_id, "AddToPosition", body, key, prefer)


@router.post(
    "/agents/{agent_id}/reduce-intents",
    status_code=201,
    response_model=IntentPublic,
    responses=_submit_responses(_SUBMIT_REDUCE),
)
def submit_reduce(
    agent_id: AgentIdPath,
    body: ReduceIntentRequest,
    services: ServicesDep,
    key: IdempotencyKey = None,
    prefer: Prefer = None,
) -> JSONResponse:
    return _submit(services, agent_id, "ReducePosition", body, key, prefer)


@router.post(
    "/agents/{agent_id}/exit-ladder-intents",
    status_code=201,
    response_model=IntentPublic,
    responses=_submit_responses(_SUBMIT_LADDER),
)
def submit_ladder(
    agent_id: AgentIdPath,
    body: LadderIntentRequest,
    services: ServicesDep,
    key: IdempotencyKey = None,
    prefer: Prefer = None,
) -> JSONResponse:
    return _submit(services, agent_id, "UpdateExitLadder", body, key, prefer)


# ---------------------------------------------------------------------- diagnostics


@router.post(
    "/agents/{agent_id}/intents/verify",
    response_model=VerifyPublic,
    responses=error_responses("agent_not_found", "symbol_not_found", "position_not_found"),
)
async def verify(agent_id: AgentIdPath, body: VerifyRequest, services: ServicesDep) -> JSONResponse:
    """Rebuilds the typed data from a submit body and runs every check, sending nothing."""
    raw = body.model_dump(exclude={"primaryType"})
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
    return public(
        {
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
    )


# ---------------------------------------------------------------------- records


@router.get(
    "/agents/{agent_id}/intents",
    response_model=IntentsPublic,
    responses=error_responses("agent_not_found"),
)
def list_intents(
    agent_id: AgentIdPath,
    services: ServicesDep,
    limit: Annotated[
        int, Query(ge=1, le=1000, description="At most this many, newest first."), StrictUint
    ] = 100,
) -> JSONResponse:
    with services.state.read():
        agent = agent_of(services.state, agent_id)
    with services.sessions() as session:
        rows = session.scalars(
            select(Intent).where(Intent.agent_id == agent.agent_id).order_by(Intent.id.desc()).limit(limit)
        ).all()
        return public({"intents": [intent_json(r) for r in rows]})


@router.get(
    "/agents/{agent_id}/intents/{intent_id}",
    response_model=IntentDetailPublic,
    responses=error_responses("agent_not_found", "intent_not_found"),
)
def get_intent(agent_id: AgentIdPath, intent_id: IntentIdPath, services: ServicesDep) -> JSONResponse:
    with services.state.read():
        agent = agent_of(services.state, agent_id)
    with services.sessions() as session:
        row = session.get(Intent, intent_id)
        if row is None or row.agent_id != agent.agent_id:
            raise RelayerError("intent_not_found", f"no intent {intent_id} for agent {agent_id}")
        out = intent_json(row)
        out["history"] = [
            {"status": h.status, "reason": h.reason, "at": h.at.isoformat()} for h in row.history
        ]
        return public(out)
