"""The webhook delivery worker: drains the outbox at least once, signed as Standard Webhooks asks,
retrying with exponential back-off across restarts, every attempt recorded.

Each round claims due rows with a lease (`lease_until`), under `FOR UPDATE SKIP LOCKED` on PostgreSQL
so several relayer processes never claim the same row (SQLite runs one relayer process), sends them
outside any transaction, then records the outcome and clears the lease. A process killed mid-send
leaves a lease that expires: the row is sent again (at least once; the receiver dedupes on
`webhook-id`, which is the row's and never changes).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

import httpx
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker
from standardwebhooks import Webhook

from relayer.operators.outbox import Subscriptions
from relayer.operators.webhooks import signing_secrets
from relayer.store.models import WebhookAttempt, WebhookOutbox, WebhookSubscription

log = logging.getLogger("alphagrid.webhooks")

USER_AGENT: Final = "AlphaGrid-Webhooks/1"
FINAL_STATUSES: Final = ("delivered", "failed", "cancelled")


# ---------------------------------------------------------------------- decisions (pure)


@dataclass(frozen=True)
class Delivered:
    pass


@dataclass(frozen=True)
class Retry:
    after_s: float


@dataclass(frozen=True)
class GiveUp:
    reason: str


Outcome = Delivered | Retry | GiveUp


@dataclass(frozen=True)
class RetryPolicy:
    """1 s, 2 s, 4 s … doubling up to every 10 min, for at most 24 h (or `max_attempts`) after the
    event; ±`jitter` spreads the retries of many rows once a receiver comes back."""

    first_s: float = 1.0
    factor: float = 2.0
    max_s: float = 600.0
    max_age_s: float = 24 * 3600.0
    max_attempts: int = 200
    jitter: float = 0.1

    def delay_s(self, attempts: int, unit: float) -> float:
        """The wait after the `attempts`-th failed attempt (1-based); `unit` in [0, 1) draws the jitter."""
        base = min(self.max_s, self.first_s * self.factor ** max(0, attempts - 1))
        return base * (1 + self.jitter * (2 * unit - 1))


def decide(status_code: int | None, attempts: int, age_s: float, policy: RetryPolicy, unit: float) -> Outcome:
    """After attempt number `attempts` (1-based) of a row `age_s` old: delivered on any 2xx; otherwise
    retry later, or give up past the policy's attempts or age."""
    if status_code is not None and 200 <= status_code < 300:
        return Delivered()
    if attempts >= policy.max_attempts:
        return GiveUp(f"gave up after {attempts} attempts")
    after_s = policy.delay_s(attempts, unit)
    if age_s + after_s > policy.max_age_s:
        return GiveUp(f"gave up after {attempts} attempts over {age_s / 3600:.1f} h")
    return Retry(after_s)


def signature(secrets_: list[str], webhook_id: str, at: datetime, body: str) -> str:
    """The `webhook-signature` header: one `v1,<base64 HMAC-SHA256>` per secret, space-separated."""
    return " ".join(Webhook(s).sign(webhook_id, at, body) for s in secrets_)


# ---------------------------------------------------------------------- the worker


@dataclass(frozen=True)
class Claimed:
    id: int
    webhook_id: str
    body: str
    attempts: int
    created_at: datetime
    url: str
    secrets: list[str]


@dataclass(frozen=True)
class Sent:
    status_code: int | None
    error: str | None
    duration_ms: int


class WebhookDelivery:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        subscriptions: Subscriptions,
        policy: RetryPolicy | None = None,
        *,
        batch: int = 8,
        senders: int = 4,
        timeout_s: float = 10.0,
        # Longer than a claimed batch can take (batch / senders sends of at most `timeout_s` each), so
        # no other process claims a row while this one still sends it.
        lease_s: float = 30.0,
        refresh_s: float = 1.0,
        retention: timedelta = timedelta(days=7),
        prune_every_s: float = 3600.0,
        transport: httpx.BaseTransport | None = None,
        unit: Callable[[], float] = random.random,
    ) -> None:
        self.sessions = sessions
        self.subscriptions = subscriptions
        self.policy = policy or RetryPolicy()
        self.batch = batch
        self.senders = senders
        self.lease_s = lease_s
        self.refresh_s = refresh_s
        self.retention = retention
        self.prune_every_s = prune_every_s
        self.unit = unit
        self.client = httpx.Client(
            timeout=timeout_s, follow_redirects=False, transport=transport, headers={"user-agent": USER_AGENT}
        )
        self._wake = threading.Event()

    def notify(self) -> None:
        self._wake.set()

    def run(self, stop: threading.Event, interval_s: float = 0.2) -> None:
        refreshed = 0.0
        pruned = -self.prune_every_s  # once at start, then every `prune_every_s`
        with ThreadPoolExecutor(self.senders, thread_name_prefix="alphagrid-webhook-send") as pool:
            while not stop.is_set():
                try:
                    if time.monotonic() - refreshed >= self.refresh_s:
                        self.subscriptions.reload()
                        refreshed = time.monotonic()
                    if time.monotonic() - pruned >= self.prune_every_s:
                        pruned = time.monotonic()
                        self.prune(datetime.now(UTC))
                    claimed = self.claim()
                    if claimed:
                        list(pool.map(self.deliver, claimed))
                        continue
                except Exception:  # a database hiccup must not end the worker; the rows wait
                    log.exception("webhook delivery round failed")
                self._wake.wait(interval_s)
                self._wake.clear()
        self.client.close()

    def prune(self, now: datetime, *, chunk: int = 500) -> int:
        """Deletes the outbox rows that are final (delivered, given up, cancelled) and whose last attempt
        (or creation, if never attempted) is older than the retention, with their attempts; a pending
        row is never deleted. In chunks, so SQLite's write lock is never held for long. Returns the
        number of rows deleted."""
        o = WebhookOutbox
        cutoff = now - self.retention
        old = (o.status.in_(FINAL_STATUSES), func.coalesce(o.last_attempt_at, o.created_at) < cutoff)
        deleted = 0
        while True:
            with self.sessions.begin() as session:
                ids = list(session.execute(select(o.id).where(*old).order_by(o.id).limit(chunk)).scalars())
                if not ids:
                    break
                session.execute(delete(WebhookAttempt).where(WebhookAttempt.outbox_id.in_(ids)))
                session.execute(delete(o).where(o.id.in_(ids), *old))
            deleted += len(ids)
        if deleted:
            log.info("webhook outbox: %d final rows older than %s deleted", deleted, self.retention)
        return deleted

    def claim(self) -> list[Claimed]:
        now = datetime.now(UTC)
        o, s = WebhookOutbox, WebhookSubscription
        claimable = (
            o.status == "pending",
            o.next_attempt_at <= now,
            or_(o.lease_until.is_(None), o.lease_until < now),
        )
        # MATERIALIZED: PostgreSQL runs the locking subquery once (as a plain IN-subquery it may run
        # again and claim more than `batch` rows).
        due = (
            select(o.id)
            .where(*claimable)
            .order_by(o.id)
            .limit(self.batch)
            .with_for_update(skip_locked=True)
            .cte("due")
            .prefix_with("MATERIALIZED")
        )
        with self.sessions.begin() as session:
            # A plain read first: when nothing is due (most rounds) no write lock is taken, which on
            # SQLite would make the hot path's writers wait.
            if session.execute(select(o.id).where(*claimable).limit(1)).first() is None:
                return []
            # One statement: SQLite runs it under its write lock, PostgreSQL skips rows another process
            # has locked and re-checks the conditions on the rows it locks; either way no row is
            # claimed twice (a SELECT then an UPDATE would let two workers claim the same rows).
            ids = list(
                session.execute(
                    update(o)
                    .where(o.id.in_(select(due.c.id)), *claimable)
                    .values(lease_until=now + timedelta(seconds=self.lease_s))
                    .returning(o.id)
                ).scalars()
            )
            if not ids:
                return []
            rows = session.execute(
                select(
                    o.id,
                    o.webhook_id,
                    o.body,
                    o.attempts,
                    o.created_at,
                    s.url,
                    s.secret,
                    s.previous_secret,
                    s.previous_secret_until,
                    s.deleted_at,
                )
                .join(s, s.id == o.subscription_id)
                .where(o.id.in_(ids))
                .order_by(o.id)
            ).all()
            gone = [r.id for r in rows if r.deleted_at is not None]
            if gone:  # removed after this process's snapshot last saw it
                session.execute(update(o).where(o.id.in_(gone)).values(status="cancelled", lease_until=None))
        return [
            Claimed(
                r.id,
                r.webhook_id,
                r.body,
                r.attempts,
                r.created_at,
                r.url,
                signing_secrets(r.secret, r.previous_secret, r.previous_secret_until),
            )
            for r in rows
            if r.deleted_at is None
        ]

    def send(self, c: Claimed) -> Sent:
        at = datetime.now(UTC)
        headers = {
            "content-type": "application/json",
            "webhook-id": c.webhook_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": signature(c.secrets, c.webhook_id, at, c.body),
        }
        started = time.perf_counter()
        try:
            response = self.client.post(c.url, content=c.body.encode(), headers=headers)
            code: int | None = response.status_code
            error = None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            code, error = None, f"{type(exc).__name__}: {exc}"[:500]
        return Sent(code, error, int((time.perf_counter() - started) * 1000))

    def deliver(self, c: Claimed) -> Outcome:
        sent = self.send(c)
        now = datetime.now(UTC)
        attempts = c.attempts + 1
        outcome = decide(
            sent.status_code, attempts, (now - c.created_at).total_seconds(), self.policy, self.unit()
        )
        values: dict[str, object] = {
            "attempts": attempts,
            "lease_until": None,
            "last_attempt_at": now,
            "last_status_code": sent.status_code,
            "last_error": sent.error,
        }
        match outcome:
            case Delivered():
                values |= {"status": "delivered", "delivered_at": now}
            case Retry(after_s):
                values["next_attempt_at"] = now + timedelta(seconds=after_s)
            case GiveUp(reason):
                values |= {"status": "failed", "last_error": f"{sent.error}; {reason}"}
                log.warning("webhook %s to %s: %s (%s)", c.webhook_id, c.url, reason, sent.error)
        with self.sessions.begin() as session:
            session.add(
                WebhookAttempt(
                    outbox_id=c.id,
                    at=now,
                    status_code=sent.status_code,
                    error=sent.error,
                    duration_ms=sent.duration_ms,
                )
            )
            # Only while still pending: a removal meanwhile (cancelled) stands.
            session.execute(
                update(WebhookOutbox)
                .where(WebhookOutbox.id == c.id, WebhookOutbox.status == "pending")
                .values(**values)
            )
        return outcome
