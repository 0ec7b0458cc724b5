"""The ledger mirror indexes record batches: each ``RecordBatchAnchored`` batch
and what became of its manifest, and the records its manifest lists (so a
requester can materialise a batched record, and an auditor find one by its
content hash). Both are derived from events: the mirror reads its events again
from the deploy block so that batches anchored before this revision are indexed.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "mirror_record_batches",
        sa.Column("department", sa.String(length=16), nullable=False),
        sa.Column("sequence", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("merkle_root", sa.String(length=66), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("manifest_cid", sa.String(length=128), nullable=False),
        sa.Column("anchored_by", sa.String(length=42), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt", sa.Float(), nullable=False),
        sa.Column("problem", sa.String(length=300), nullable=True),
        sa.Column("source", sa.String(length=200), nullable=True),
        sa.CheckConstraint(
            "state IN ('pending', 'indexed', 'unavailable', 'invalid')",
            name=op.f("ck_mirror_record_batches_state"),
        ),
        sa.PrimaryKeyConstraint("department", "sequence", name=op.f("pk_mirror_record_batches")),
    )
    op.create_index(
        "ix_mirror_record_batches_state", "mirror_record_batches", ["state", "next_attempt"]
    )
    op.create_table(
        "mirror_batch_records",
        sa.Column("department", sa.String(length=16), nullable=False),
        sa.Column("sequence", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("leaf_index", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("record_id", sa.String(length=66), nullable=False),
        sa.Column("content_hash", sa.String(length=66), nullable=False),
        sa.Column("cid", sa.String(length=128), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("subject_ref", sa.String(length=66), nullable=True),
        sa.Column("previous_record_id", sa.String(length=66), nullable=True),
        sa.PrimaryKeyConstraint(
            "department", "sequence", "leaf_index", name=op.f("pk_mirror_batch_records")
        ),
    )
    op.create_index("ix_mirror_batch_records_record", "mirror_batch_records", ["record_id"])
    op.create_index("ix_mirror_batch_records_hash", "mirror_batch_records", ["content_hash"])
    op.create_index(
        "ix_mirror_batch_records_previous", "mirror_batch_records", ["previous_record_id"]
    )
    # Read the events again so that batches anchored before this revision are indexed:
    # a mirror built for another schema is reset (the broker's on_stale="reset") and
    # starts again from the deploy block.
    op.execute("UPDATE mirror_meta SET value = 'before-record-batches' WHERE key = 'schema'")


def downgrade() -> None:
    op.drop_index("ix_mirror_batch_records_previous", table_name="mirror_batch_records")
    op.drop_index("ix_mirror_batch_records_hash", table_name="mirror_batch_records")
    op.drop_index("ix_mirror_batch_records_record", table_name="mirror_batch_records")
    op.drop_table("mirror_batch_records")
    op.drop_index("ix_mirror_record_batches_state", table_name="mirror_record_batches")
    op.drop_table("mirror_record_batches")
