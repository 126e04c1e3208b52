"""The approval gate's bodies (SPEC §5.5)."""

# ruff: noqa: N815 - the wire format is camelCase

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from relayer.api.schemas.common import Public
from relayer.api.schemas.intents import IntentPublic
from relayer.operators.approvals import MAX_REASON_CHARS


class RejectRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(
        min_length=1, max_length=MAX_REASON_CHARS, description="Why: recorded in the intent's history."
    )


class ApprovalPublic(Public):
    """An open or add that waited (or waits) for a human. `status`: pending, approved, rejected (by an
    approver) or expired (its deadline passed undecided: silence is never consent)."""

    approvalId: str
    status: Literal["pending", "approved", "rejected", "expired"]
    intentId: str
    agentId: str
    type: Literal["OpenPosition", "AddToPosition"]
    nonce: int
    usdcAmount: str | None = Field(description="The USDC the intent may spend: what the threshold judged.")
    deadline: int | None = Field(description="The intent's signed deadline (unix seconds).")
    createdAt: str
    decidedBy: str | None = Field(description="The name of the key (or CLI user) that decided.")
    decidedAt: str | None
    reason: str | None = Field(description="The decision's reason, once decided.")
    intent: IntentPublic


class ApprovalsPublic(Public):
    approvals: list[ApprovalPublic] = Field(description="Newest first.")
