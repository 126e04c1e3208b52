"""Webhook subscriptions (SPEC §5.5), operator keys only: create (the secret is shown once), list
with the delivery record, remove, rotate the secret."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from relayer.api.auth import OperatorDep
from relayer.api.deps import ServicesDep
from relayer.api.routing import StrictJsonRoute
from relayer.api.schemas.common import Public, error_responses
from relayer.operators import webhooks
from relayer.operators.webhooks import ROTATION_GRACE_S

router = APIRouter(tags=["webhooks"], route_class=StrictJsonRoute)

# Every webhook operation needs an operator key (SPEC §5.5).
_AUTH = ("unauthorized", "forbidden")

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


class WebhookSecretPublic(Public):
    id: str
    secret: str = Field(description="whsec_… — shown this once.")


class WebhookDeletedPublic(Public):
    id: str
    deleted: bool


class DeliveriesPublic(Public):
    pending: int
    delivered: int
    failed: int
    retrying: int = Field(description="Pending deliveries that failed at least once and wait to be retried.")


class AttemptPublic(Public):
    at: str | None
    webhookId: str  # noqa: N815
    eventType: str  # noqa: N815
    statusCode: int | None  # noqa: N815
    error: str | None
    attempts: int
    status: str


class WebhookPublic(Public):
    id: str
    url: str
    events: list[str]
    agentId: str | None  # noqa: N815
    createdAt: str | None  # noqa: N815
    createdBy: str | None  # noqa: N815
    deliveries: DeliveriesPublic
    lastAttempt: AttemptPublic | None  # noqa: N815


class WebhooksPublic(Public):
    webhooks: list[WebhookPublic]


@router.post(
    "/webhooks", status_code=201, response_model=WebhookSecretPublic, responses=error_responses(*_AUTH)
)
def create_webhook(body: WebhookCreate, caller: OperatorDep, services: ServicesDep) -> WebhookSecretPublic:
    with services.sessions.begin() as session:
        row = webhooks.create(session, body.url, body.events, body.agentId, caller.name)
        answer = WebhookSecretPublic(id=str(row.id), secret=row.secret)
    services.subscriptions_changed()  # every process sees it from its next event on
    return answer


@router.get("/webhooks", response_model=WebhooksPublic, responses=error_responses(*_AUTH))
def list_webhooks(caller: OperatorDep, services: ServicesDep) -> WebhooksPublic:
    with services.sessions() as session:
        return WebhooksPublic.model_validate({"webhooks": webhooks.list_all(session)})


@router.delete(
    "/webhooks/{webhook_id}",
    response_model=WebhookDeletedPublic,
    responses=error_responses(*_AUTH, "webhook_not_found"),
)
def delete_webhook(webhook_id: WebhookId, caller: OperatorDep, services: ServicesDep) -> WebhookDeletedPublic:
    with services.sessions.begin() as session:
        webhooks.remove(session, webhook_id)
    services.subscriptions_changed()
    return WebhookDeletedPublic(id=str(webhook_id), deleted=True)


@router.post(
    "/webhooks/{webhook_id}/rotate-secret",
    response_model=WebhookSecretPublic,
    responses=error_responses(*_AUTH, "webhook_not_found"),
)
def rotate_secret(
    webhook_id: WebhookId, caller: OperatorDep, services: ServicesDep, body: RotateSecret | None = None
) -> WebhookSecretPublic:
    grace_s = body.graceS if body is not None else ROTATION_GRACE_S
    with services.sessions.begin() as session:
        row = webhooks.rotate(session, webhook_id, grace_s)
        return WebhookSecretPublic(id=str(row.id), secret=row.secret)
