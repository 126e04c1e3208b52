"""batches: intents sent as items of one executeIntents transaction; the NonceUsed index

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("intents") as batch:
        batch.add_column(sa.Column("batch_index", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("batch_size", sa.Integer(), nullable=True))
    op.create_index("ix_intents_tx_request", "intents", ["tx_request_id"])
    op.create_table(
        "nonce_uses",
        sa.Column("agent_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("nonce", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("digest", sa.String(length=66), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("block_number", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("agent_id", "nonce"),
    )


def downgrade() -> None:
    op.drop_table("nonce_uses")
    op.drop_index("ix_intents_tx_request", table_name="intents")
    with op.batch_alter_table("intents") as batch:
        batch.drop_column("batch_size")
        batch.drop_column("batch_index")
