"""Tables. The chain is the source of truth: positions, agent counters and history are a mirror the
indexer can rebuild from events; intents, transactions and the event stream are the relayer's memory."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from relayer.store.types import BigInt, UtcDateTime


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}  # noqa: RUF012  (SQLAlchemy reads it)


# ---------------------------------------------------------------------- intents


# The statuses that hold an agent's nonce (lifecycle.HOLDS_NONCE; tests/unit/intents checks they agree).
LIVE_NONCE_WHERE = "status IN ('received', 'submitted', 'confirmed', 'pending_approval')"


class Intent(Base):
    __tablename__ = "intents"
    __table_args__ = (
        UniqueConstraint("agent_id", "idempotency_key", name="uq_intents_idempotency"),
        UniqueConstraint("approval_id", name="uq_intents_approval_id"),
        Index("ix_intents_agent_status", "agent_id", "status"),
        Index("ix_intents_tx_request", "tx_request_id"),
        # Two different intents racing for one nonce: only one may be live; the other gets 409.
        Index(
            "uq_intents_live_nonce",
            "agent_id",
            "nonce",
            unique=True,
            sqlite_where=text(LIVE_NONCE_WHERE),
            postgresql_where=text(LIVE_NONCE_WHERE),
        ),
        # The dispatcher's expiry sweep: pending approvals whose deadline passed (SPEC §5.5).
        Index("ix_intents_status_deadline", "status", "deadline"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agent_id: Mapped[int] = mapped_column(Integer, index=True)
    primary_type: Mapped[str] = mapped_column(String(32))
    # Only an agent's next nonce (the router stores a uint40) is ever persisted, so it fits BIGINT
    # and sorts as a number.
    nonce: Mapped[int] = mapped_column(BigInteger)
    # EIP-712 digest: the identity of a signed intent, whatever the signature bytes (malleated or not).
    digest: Mapped[str] = mapped_column(String(66), unique=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    message: Mapped[dict[str, Any]] = mapped_column(JSON)
    signature: Mapped[str] = mapped_column(String(132))
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    position_id: Mapped[int | None] = mapped_column(Integer)
    tx_request_id: Mapped[int | None] = mapped_column(ForeignKey("tx_requests.id"))
    tx_hash: Mapped[str | None] = mapped_column(String(66))
    block_number: Mapped[int | None] = mapped_column(Integer)
    fill: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Sent as item `batch_index` of `batch_size` in one `executeIntents` transaction (SPEC §5.1);
    # both None when sent alone through the single-intent function.
    batch_index: Mapped[int | None] = mapped_column(Integer)
    batch_size: Mapped[int | None] = mapped_column(Integer)
    # The human approval gate (SPEC §5.5): set when the intent waited for a decision.
    approval_id: Mapped[str | None] = mapped_column(String(40))
    approval: Mapped[str | None] = mapped_column(String(16))  # pending, approved, rejected, expired
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # The signed deadline (also in `message`), a column so the expiry sweep is one indexed query.
    deadline: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)

    history: Mapped[list[IntentStatus]] = relationship(
        back_populates="intent", order_by="IntentStatus.id", cascade="all, delete-orphan"
    )


class IntentStatus(Base):
    __tablename__ = "intent_status_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    intent_id: Mapped[int] = mapped_column(ForeignKey("intents.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    intent: Mapped[Intent] = relationship(back_populates="history")


# ---------------------------------------------------------------------- transactions


class SenderLane(Base):
    """One relayer key's nonce lane: the relayer, not the node's pending count, allocates nonces."""

    __tablename__ = "sender_lanes"

    sender: Mapped[str] = mapped_column(String(42), primary_key=True)
    next_nonce: Mapped[int] = mapped_column(Integer)


class TxRequest(Base):
    """A call the relayer must get mined, at one (sender, nonce); its signed attempts differ in fees."""

    __tablename__ = "tx_requests"
    __table_args__ = (
        UniqueConstraint("sender", "nonce", name="uq_tx_requests_sender_nonce"),
        Index("ix_tx_requests_status", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sender: Mapped[str] = mapped_column(String(42))
    nonce: Mapped[int] = mapped_column(Integer)
    to: Mapped[str] = mapped_column(String(42))
    data: Mapped[str] = mapped_column(Text)
    gas_limit: Mapped[int] = mapped_column(Integer)
    purpose: Mapped[str] = mapped_column(String(16))
    # pending → mined | failed (reverted on chain) | dropped (nonce consumed by another transaction)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    mined_hash: Mapped[str | None] = mapped_column(String(66))
    block_number: Mapped[int | None] = mapped_column(Integer)
    block_hash: Mapped[str | None] = mapped_column(String(66))
    gas_used: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)

    attempts: Mapped[list[TxAttempt]] = relationship(
        back_populates="request", order_by="TxAttempt.id", cascade="all, delete-orphan"
    )


class TxAttempt(Base):
    """A signed transaction, recorded before it is broadcast so a crash can never lose it."""

    __tablename__ = "tx_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("tx_requests.id"))
    tx_hash: Mapped[str] = mapped_column(String(66), unique=True)
    raw_tx: Mapped[str] = mapped_column(Text)
    max_fee_per_gas: Mapped[int] = mapped_column(BigInt)
    max_priority_fee_per_gas: Mapped[int] = mapped_column(BigInt)
    broadcast_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    request: Mapped[TxRequest] = relationship(back_populates="attempts")


# ---------------------------------------------------------------------- chain mirror (rebuildable)


class NonceUse(Base):
    """The router's `NonceUsed` events, indexed: which signed intent (digest) spent an agent's nonce, in
    which transaction. Rebuildable from the chain like the rest of the mirror."""

    __tablename__ = "nonce_uses"

    agent_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    nonce: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    digest: Mapped[str] = mapped_column(String(66))
    tx_hash: Mapped[str] = mapped_column(String(66))
    block_number: Mapped[int] = mapped_column(Integer)


class Position(Base):
    __tablename__ = "positions"
    __table_args__ = (Index("ix_positions_agent_status", "agent_id", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    agent_id: Mapped[int] = mapped_column(Integer)
    token: Mapped[str] = mapped_column(String(42))
    status: Mapped[str] = mapped_column(String(8))
    size: Mapped[int] = mapped_column(BigInt)
    cost_basis: Mapped[int] = mapped_column(BigInt)
    realized_pnl: Mapped[int] = mapped_column(BigInt, default=0)
    exits_hash: Mapped[str] = mapped_column(String(66))
    rules: Mapped[list[Any]] = mapped_column(JSON)
    fired_mask: Mapped[int] = mapped_column(Integer, default=0)
    opened_at: Mapped[int] = mapped_column(Integer)
    open_tx: Mapped[str] = mapped_column(String(66))
    closed_at: Mapped[int | None] = mapped_column(Integer)
    close_tx: Mapped[str | None] = mapped_column(String(66))


class PositionEvent(Base):
    """A position's history: fills, exits fired (with the rule and oracle price), ladder changes."""

    __tablename__ = "position_events"
    __table_args__ = (UniqueConstraint("tx_hash", "log_index", name="uq_position_events_log"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    position_id: Mapped[int] = mapped_column(Integer, index=True)
    kind: Mapped[str] = mapped_column(String(16))
    block_number: Mapped[int] = mapped_column(Integer)
    block_timestamp: Mapped[int] = mapped_column(Integer)
    tx_hash: Mapped[str] = mapped_column(String(66))
    log_index: Mapped[int] = mapped_column(Integer)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)


class AgentCounters(Base):
    """What TradeRouter.agentState holds, as of the last indexed block."""

    __tablename__ = "agent_counters"

    agent_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    next_nonce: Mapped[int] = mapped_column(BigInt, default=0)
    deployed: Mapped[int] = mapped_column(BigInt, default=0)
    day: Mapped[int] = mapped_column(Integer, default=0)
    turnover_today: Mapped[int] = mapped_column(BigInt, default=0)
    realized_pnl_today: Mapped[int] = mapped_column(BigInt, default=0)


class IndexerCursor(Base):
    __tablename__ = "indexer_cursor"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    block_number: Mapped[int] = mapped_column(Integer)
    block_hash: Mapped[str] = mapped_column(String(66))


# ---------------------------------------------------------------------- streams, keeper


class StreamEvent(Base):
    """The per-agent SSE stream; `seq` is the event id a client resumes from."""

    __tablename__ = "stream_events"
    __table_args__ = (Index("ix_stream_events_agent_seq", "agent_id", "seq"),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    agent_id: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(32))
    # Chain-derived events carry "txhash:logindex" so a rebuild from events never repeats them.
    dedupe_key: Mapped[str | None] = mapped_column(String(100), unique=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class KeeperAudit(Base):
    """Why a stop did or did not fire: each evaluation of a rule and what came of it (SPEC §3)."""

    __tablename__ = "keeper_audit"
    __table_args__ = (Index("ix_keeper_audit_position", "position_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    position_id: Mapped[int] = mapped_column(Integer)
    rule_index: Mapped[int] = mapped_column(Integer)
    price: Mapped[int] = mapped_column(BigInt)
    round_id: Mapped[int] = mapped_column(BigInt)
    triggered: Mapped[bool] = mapped_column(Boolean)
    action: Mapped[str] = mapped_column(String(32))
    outcome: Mapped[str | None] = mapped_column(Text)
    tx_hash: Mapped[str | None] = mapped_column(String(66))
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Lease(Base):
    """A leader lease (SQLite); on PostgreSQL an advisory lock plays this part."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)


class AgentStrike(Base):
    """A relayer transaction (or batch item) that failed because the agent's nonce was used by a
    different intent: the agent front-ran its own intent. Counted to throttle, then suspend, the
    agent (`intents.strikes`); an operator clears them (`alphagrid agent clear-strikes`)."""

    __tablename__ = "agent_strikes"
    __table_args__ = (Index("ix_agent_strikes_agent", "agent_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agent_id: Mapped[int] = mapped_column(Integer)
    intent_id: Mapped[int] = mapped_column(Integer, unique=True)  # one strike per failed intent
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


# ---------------------------------------------------------------------- operators: keys, webhooks


class OperatorKey(Base):
    """An operator's API key (SPEC §5.5). Only the SHA-256 of the key is kept: the key is 256 random
    bits, so no dictionary or brute force can reach it and a slow password hash would add nothing but
    latency. `key_id` is the key's non-secret prefix, the lookup index."""

    __tablename__ = "operator_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    scope: Mapped[str] = mapped_column(String(16))
    key_id: Mapped[str] = mapped_column(String(32), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ApprovalPolicy(Base):
    """An approval threshold (SPEC §5.5): opens and adds whose USDC exceeds `above` (6-decimal units)
    wait for a human. `scope` is `track` (target: the track's name) or `agent` (target: its id); an
    agent's policy overrides its track's."""

    __tablename__ = "approval_policies"
    __table_args__ = (UniqueConstraint("scope", "target", name="uq_approval_policies_target"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope: Mapped[str] = mapped_column(String(8))
    target: Mapped[str] = mapped_column(String(64))
    above: Mapped[int] = mapped_column(BigInteger)
    set_by: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class WebhookSubscription(Base):
    """Where to push which stream events. The secret signs deliveries, so it is kept as is; after a
    rotation the previous secret also signs until `previous_secret_until`."""

    __tablename__ = "webhook_subscriptions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    events: Mapped[list[Any]] = mapped_column(JSON)
    agent_id: Mapped[int | None] = mapped_column(Integer)
    secret: Mapped[str] = mapped_column(String(100))
    previous_secret: Mapped[str | None] = mapped_column(String(100))
    previous_secret_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class WebhookOutbox(Base):
    """One event for one subscription, written in the transaction that wrote the stream event; the
    delivery worker drains it. `webhook_id` and `body` are fixed at insert, so every retry (after a
    restart too) sends the same message id and the same signed bytes."""

    __tablename__ = "webhook_outbox"
    __table_args__ = (
        Index("ix_webhook_outbox_due", "status", "next_attempt_at"),
        Index("ix_webhook_outbox_subscription", "subscription_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("webhook_subscriptions.id"))
    webhook_id: Mapped[str] = mapped_column(String(64), unique=True)
    event_seq: Mapped[int] = mapped_column(Integer)
    event_type: Mapped[str] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text)
    # pending → delivered | failed (gave up) | cancelled (subscription removed)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class WebhookAttempt(Base):
    """Each delivery attempt: when, the receiver's status code or the transport error, how long."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    outbox_id: Mapped[int] = mapped_column(ForeignKey("webhook_outbox.id"), index=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int] = mapped_column(Integer)
