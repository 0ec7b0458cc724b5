"""Batched anchoring of this department's records: ``record_batches`` (one row
per batch, anchored with one transaction), and on ``records`` the anchoring mode,
the batch a record joined, its leaf and the batch's sequence on chain.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "record_batches",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("operation_id", sa.String(length=32), nullable=True),
        sa.Column("manifest_cid", sa.String(length=128), nullable=True),
        sa.Column("merkle_root", sa.String(length=66), nullable=True),
        sa.Column("chain_count_before", sa.BigInteger(), nullable=True),
        sa.Column("sequence", sa.BigInteger(), nullable=True),
        sa.Column("tx_hash", sa.String(length=66), nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("anchored_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("state IN ('closed', 'anchored')", name=op.f("ck_record_batches_state")),
        sa.ForeignKeyConstraint(
            ["operation_id"],
            ["operations.id"],
            name=op.f("fk_record_batches_operation_id_operations"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_record_batches")),
    )
    op.create_index(
        op.f("ix_record_batches_operation_id"), "record_batches", ["operation_id"], unique=False
    )
    with op.batch_alter_table("records") as batch:
        batch.add_column(sa.Column("anchor_mode", sa.String(length=8), nullable=True))
        batch.add_column(sa.Column("batch_id", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("leaf_index", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("batch_seq", sa.BigInteger(), nullable=True))
        batch.create_foreign_key(
            batch.f("fk_records_batch_id_record_batches"), "record_batches", ["batch_id"], ["id"]
        )
        batch.create_index("ix_records_batching", ["anchor_mode", "batch_id", "status"])
        batch.create_index("ix_records_batch", ["batch_id", "leaf_index"])
        batch.create_index("ix_records_supersedes", ["supersedes"])


def downgrade() -> None:
    with op.batch_alter_table("records") as batch:
        batch.drop_index("ix_records_supersedes")
        batch.drop_index("ix_records_batch")
        batch.drop_index("ix_records_batching")
        batch.drop_constraint("fk_records_batch_id_record_batches", type_="foreignkey")
        batch.drop_column("batch_seq")
        batch.drop_column("leaf_index")
        batch.drop_column("batch_id")
        batch.drop_column("anchor_mode")
    op.drop_index(op.f("ix_record_batches_operation_id"), table_name="record_batches")
    op.drop_table("record_batches")
