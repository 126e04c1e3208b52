"""approvals: the human approval gate (SPEC §5.5) — the intent's approval columns, its deadline (for
the expiry sweep), `pending_approval` among the statuses holding a nonce, and the policies table

Revision ID: 0004
Revises: 0006
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import relayer.store.types

revision: str = "0004"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Moment = relayer.store.types.UtcDateTime

_OLD_LIVE = "status IN ('received', 'submitted', 'confirmed')"
_NEW_LIVE = "status IN ('received', 'submitted', 'confirmed', 'pending_approval')"


def _live_nonce_index(where: str) -> None:
    with op.batch_alter_table("intents", schema=None) as batch_op:
        batch_op.drop_index("uq_intents_live_nonce")
        batch_op.create_index(
            "uq_intents_live_nonce",
            ["agent_id", "nonce"],
            unique=True,
            sqlite_where=sa.text(where),
            postgresql_where=sa.text(where),
        )


def upgrade() -> None:
    with op.batch_alter_table("intents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("approval_id", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("approval", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("decided_by", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("decided_at", Moment(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("deadline", sa.BigInteger(), nullable=True))
        batch_op.create_unique_constraint("uq_intents_approval_id", ["approval_id"])
        batch_op.create_index("ix_intents_status_deadline", ["status", "deadline"], unique=False)
    _live_nonce_index(_NEW_LIVE)
    op.create_table(
        "approval_policies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("target", sa.String(length=64), nullable=False),
        sa.Column("above", sa.BigInteger(), nullable=False),
        sa.Column("set_by", sa.String(length=64), nullable=True),
        sa.Column("updated_at", Moment(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("scope", "target", name="uq_approval_policies_target"),
    )


def downgrade() -> None:
    op.drop_table("approval_policies")
    _live_nonce_index(_OLD_LIVE)
    with op.batch_alter_table("intents", schema=None) as batch_op:
        batch_op.drop_index("ix_intents_status_deadline")
        batch_op.drop_constraint("uq_intents_approval_id", type_="unique")
        batch_op.drop_column("deadline")
        batch_op.drop_column("decided_at")
        batch_op.drop_column("decided_by")
        batch_op.drop_column("approval")
        batch_op.drop_column("approval_id")
