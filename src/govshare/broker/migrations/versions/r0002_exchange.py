"""The exchange: record metadata kept locally, the signed request's nonce and
expiry on receipts, and the chain follower's checkpoint.

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
    with op.batch_alter_table("records") as batch:
        batch.add_column(sa.Column("filename", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("media_type", sa.String(length=127), nullable=True))
        batch.add_column(sa.Column("published_by", sa.String(length=64), nullable=True))
    with op.batch_alter_table("receipts") as batch:
        batch.add_column(sa.Column("nonce", sa.String(length=80), nullable=True))
        batch.add_column(sa.Column("request_expires_at", sa.BigInteger(), nullable=True))
    op.create_table(
        "sync_state",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("block", sa.BigInteger(), nullable=False),
        sa.Column("block_hash", sa.String(length=66), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_sync_state")),
    )


def downgrade() -> None:
    op.drop_table("sync_state")
    with op.batch_alter_table("receipts") as batch:
        batch.drop_column("request_expires_at")
        batch.drop_column("nonce")
    with op.batch_alter_table("records") as batch:
        batch.drop_column("published_by")
        batch.drop_column("media_type")
        batch.drop_column("filename")
