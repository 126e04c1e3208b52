"""Webhook subscriptions (SPEC §5.5), operator keys only: create (the secret is shown once), list
with the delivery record, remove, rotate the secret."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from relayer.api.auth import OperatorDep
from relayer.api.deps import ServicesDep
from relayer.operators import webhooks
from relayer.operators.webhooks import ROTATION_GRACE_S

router = APIRouter(tags=["webhooks"])

WebhookId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The subscription's id.")]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=webhooks.MAX_URL_CHARS, description="http(s) URL that receives POSTs.")
    events: list[str] = Field(
        min_length=1, max_length=16, description=f"Event types: {', '.join(webhooks.EVENT_TYPES)}, or *."
    )
    agentId: int | None = Field(default=None, ge=0, le=2**31 - 1, description="Only this agent's events.")  # noqa: N815


class RotateSecret(BaseModel):
    model_config = ConfigDict(extra="forbid")

    graceS: int = Field(  # noqa: N815
        default=ROTATION_GRACE_S,
        ge=0,
        le=7 * 24 * 3600,
        description="How long the old secret keeps signing too (0: stop at once).",
    )


class WebhookSecret(BaseModel):
    id: str
    secret: str = Field(description="whsec_… — shown this once.")


class WebhookDeleted(BaseModel):
    id: str
    deleted: bool


@router.post("/webhooks", status_code=201, response_model=WebhookSecret)
def create_webhook(body: WebhookCreate, caller: OperatorDep, services: ServicesDep) -> WebhookSecret:
    with services.sessions.begin() as session:
        row = webhooks.create(session, body.url, body.events, body.agentId, caller.name)
        answer = WebhookSecret(id=str(row.id), secret=row.secret)
    services.subscriptions.reload()  # this process sees it from the next event on
    return answer


@router.get("/webhooks")
def list_webhooks(caller: OperatorDep, services: ServicesDep) -> dict[str, Any]:
    with services.sessions() as session:
        return {"webhooks": webhooks.list_all(session)}


@router.delete("/webhooks/{webhook_id}", response_model=WebhookDeleted)
def delete_webhook(webhook_id: WebhookId, caller: OperatorDep, services: ServicesDep) -> WebhookDeleted:
    with services.sessions.begin() as session:
        webhooks.remove(session, webhook_id)
    services.subscriptions.reload()
    return WebhookDeleted(id=str(webhook_id), deleted=True)


@router.post("/webhooks/{webhook_id}/rotate-secret", response_model=WebhookSecret)
def rotate_secret(
    webhook_id: WebhookId, caller: OperatorDep, services: ServicesDep, body: RotateSecret | None = None
) -> WebhookSecret:
    grace_s = body.graceS if body is not None else ROTATION_GRACE_S
    with services.sessions.begin() as session:
        row = webhooks.rotate(session, webhook_id, grace_s)
        return WebhookSecret(id=str(row.id), secret=row.secret)
