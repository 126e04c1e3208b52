"""Webhook subscriptions (SPEC §5.5): created with a secret shown once, listed with their delivery
record, removed, their secret rotated. The HTTP routes and the CLI both call these; the caller owns
the transaction."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from urllib.parse import urlsplit

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from relayer.errors import RelayerError, invalid_request
from relayer.store.models import WebhookOutbox, WebhookSubscription

# The stream's event types (relayer/indexer.py `_STREAM_TYPES`, the pipeline's `intent_status`);
# "*" subscribes to all of them, including types added later.
EVENT_TYPES: Final = ("intent_status", "fill", "exit_fired", "ladder_updated", "position_closed")
ALL: Final = "*"
SECRET_PREFIX: Final = "whsec_"
SECRET_BYTES: Final = 32
# After a rotation the old secret keeps signing (a second `v1,` signature) this long by default, so
# a receiver can switch without losing deliveries (Standard Webhooks' multi-signature header).
ROTATION_GRACE_S: Final = 24 * 3600
MAX_URL_CHARS: Final = 2000


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def check_url(url: str) -> str:
    parts = urlsplit(url)
    if len(url) > MAX_URL_CHARS or parts.scheme not in ("http", "https") or not parts.hostname:
        raise invalid_request(f"url: not an http(s) URL: {url[:100]!r}", field="url")
    return url


def check_events(events: Sequence[str]) -> list[str]:
    if not events:
        raise invalid_request('events: name at least one event type (or "*")', field="events")
    unknown = [e for e in events if e != ALL and e not in EVENT_TYPES]
    if unknown:
        raise invalid_request(
            f'events: unknown event type {unknown[0]!r} (known: {", ".join(EVENT_TYPES)}, or "*")',
            field="events",
            known=list(EVENT_TYPES),
        )
    return sorted(set(events))


def create(
    session: Session, url: str, events: Sequence[str], agent_id: int | None, created_by: str | None
) -> WebhookSubscription:
    if agent_id is not None and agent_id < 0:
        raise invalid_request("agentId: must be ≥ 0", field="agentId")
    row = WebhookSubscription(
        url=check_url(url),
        events=check_events(events),
        agent_id=agent_id,
        secret=new_secret(),
        created_by=created_by,
    )
    session.add(row)
    session.flush()
    return row


def live(session: Session, subscription_id: int) -> WebhookSubscription:
    row = session.get(WebhookSubscription, subscription_id)
    if row is None or row.deleted_at is not None:
        raise RelayerError(
            "webhook_not_found", f"no webhook {subscription_id}", {"webhookId": str(subscription_id)}
        )
    return row


def remove(session: Session, subscription_id: int) -> WebhookSubscription:
    """Soft-deletes (its delivery record stays) and cancels what it still had to deliver."""
    row = live(session, subscription_id)
    row.deleted_at = datetime.now(UTC)
    session.execute(
        update(WebhookOutbox)
        .where(WebhookOutbox.subscription_id == row.id, WebhookOutbox.status == "pending")
        .values(status="cancelled", lease_until=None)
    )
    return row


def rotate(session: Session, subscription_id: int, grace_s: int = ROTATION_GRACE_S) -> WebhookSubscription:
    if grace_s < 0:
        raise invalid_request("graceS: must be ≥ 0", field="graceS")
    row = live(session, subscription_id)
    row.previous_secret = row.secret if grace_s > 0 else None
    row.previous_secret_until = datetime.now(UTC) + timedelta(seconds=grace_s) if grace_s > 0 else None
    row.secret = new_secret()
    return row


def signing_secrets(row_secret: str, previous: str | None, previous_until: datetime | None) -> list[str]:
    """The secrets a delivery is signed with now: the current one, and the previous one in its grace."""
    if previous is not None and previous_until is not None and previous_until > datetime.now(UTC):
        return [row_secret, previous]
    return [row_secret]


def list_all(session: Session) -> list[dict[str, Any]]:
    """Every live subscription with its delivery record: counts by status, the last attempt."""
    subs = session.execute(
        select(WebhookSubscription)
        .where(WebhookSubscription.deleted_at.is_(None))
        .order_by(WebhookSubscription.id)
    ).scalars()
    counts: dict[int, dict[str, int]] = {}
    failed_once = func.sum(case((WebhookOutbox.attempts > 0, 1), else_=0))
    for sub_id, status, n, retried in session.execute(
        select(WebhookOutbox.subscription_id, WebhookOutbox.status, func.count(), failed_once).group_by(
            WebhookOutbox.subscription_id, WebhookOutbox.status
        )
    ):
        counts.setdefault(sub_id, {})[status] = n
        if status == "pending":
            counts[sub_id]["retrying"] = int(retried or 0)
    out = []
    for sub in subs:
        last = session.execute(
            select(WebhookOutbox)
            .where(WebhookOutbox.subscription_id == sub.id, WebhookOutbox.last_attempt_at.is_not(None))
            .order_by(WebhookOutbox.last_attempt_at.desc())
            .limit(1)
        ).scalar_one_or_none()
        out.append(subscription_json(sub, counts.get(sub.id, {}), last))
    return out


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def subscription_json(
    sub: WebhookSubscription, counts: dict[str, int], last: WebhookOutbox | None
) -> dict[str, Any]:
    return {
        "id": str(sub.id),
        "url": sub.url,
        "events": list(sub.events),
        "agentId": None if sub.agent_id is None else str(sub.agent_id),
        "createdAt": _iso(sub.created_at),
        "createdBy": sub.created_by,
        "deliveries": {
            "pending": counts.get("pending", 0),
            "delivered": counts.get("delivered", 0),
            "failed": counts.get("failed", 0),
            # pending ones that failed at least once and wait for their next attempt
            "retrying": counts.get("retrying", 0),
        },
        "lastAttempt": None
        if last is None
        else {
            "at": _iso(last.last_attempt_at),
            "webhookId": last.webhook_id,
            "eventType": last.event_type,
            "statusCode": last.last_status_code,
            "error": last.last_error,
            "attempts": last.attempts,
            "status": last.status,
        },
    }
