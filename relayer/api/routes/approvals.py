"""The human approval gate (SPEC §5.5), approver or operator keys: the intents waiting for a decision,
approve (every check again, then the normal pipeline), reject with a reason. A decision is final: of
two approvers racing one wins, the other is answered 409 `approval_decided` with the decision."""

from __future__ import annotations

from typing import Annotated, Final, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from relayer.api.auth import ApproverDep
from relayer.api.deps import ServicesDep
from relayer.api.routes._common import public
from relayer.api.schemas.approvals import ApprovalPublic, ApprovalsPublic, RejectRequest
from relayer.api.schemas.common import ApprovalIdPath, StrictUint, error_responses
from relayer.operators import approvals

router = APIRouter(tags=["approvals"])

_AUTH: Final = ("unauthorized", "forbidden")
# Approve re-runs every check of a submit: any of their codes can answer (the intent is then rejected).
_CHECKS: Final = (
    "agent_not_found",
    "agent_inactive",
    "invalid_signature",
    "symbol_not_found",
    "token_not_allowed",
    "position_not_found",
    "position_closed",
    "position_exists",
    "nonce_mismatch",
    "trade_size_exceeded",
    "headroom_exceeded",
    "daily_turnover_exceeded",
    "daily_loss_limit_reached",
    "market_closed",
    "slippage_exceeded",
    "exit_ladder_invalid",
    "paused",
    "simulation_failed",
    "oracle_stale",
    "chain_unavailable",
)


@router.get("/approvals", response_model=ApprovalsPublic, responses=error_responses(*_AUTH))
def list_approvals(
    caller: ApproverDep,
    services: ServicesDep,
    status: Annotated[
        Literal["pending", "approved", "rejected", "expired"] | None,
        Query(description="Only these (default: every approval)."),
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=1000, description="At most this many, newest first."), StrictUint
    ] = 200,
) -> JSONResponse:
    wanted = approvals.ApprovalStatus(status) if status is not None else None
    with services.sessions() as session:
        rows = approvals.list_approvals(session, wanted, limit)
        return public({"approvals": [approvals.approval_json(r) for r in rows]})


@router.post(
    "/approvals/{approval_id}/approve",
    response_model=ApprovalPublic,
    responses=error_responses(*_AUTH, "approval_not_found", "approval_decided", "deadline_expired", *_CHECKS),
)
async def approve(approval_id: ApprovalIdPath, caller: ApproverDep, services: ServicesDep) -> JSONResponse:
    """Approve: every check runs again on the state of this moment; a failure rejects the intent with
    that check's code (answered as that error). Past its deadline: rejected, 422 `deadline_expired`."""
    doc = await run_in_threadpool(services.intents.approve, approval_id, caller.name)
    return public(doc)


@router.post(
    "/approvals/{approval_id}/reject",
    response_model=ApprovalPublic,
    responses=error_responses(*_AUTH, "approval_not_found", "approval_decided"),
)
async def reject(
    approval_id: ApprovalIdPath, body: RejectRequest, caller: ApproverDep, services: ServicesDep
) -> JSONResponse:
    """Reject: the intent ends `rejected` with `approval_rejected` (and the agent's later intents
    queued behind it with it: their nonces can never be used)."""
    doc = await run_in_threadpool(services.intents.reject, approval_id, caller.name, body.reason)
    return public(doc)
