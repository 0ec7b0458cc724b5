"""Requests by subject. The ledger mirror indexes records by subject
(``mirror_subject_records`` for records written on chain, an index on the batch
records for the others; the mirror's schema version moves, so it is rebuilt from
the chain and the new table filled). ``access_requests`` keeps the category, subject reference
and latest-only flag of a request for an owner's records about a subject (its
record id is then all zeros), and when any request was decided (a grant by
subject covers the versions that were current then or published after).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "mirror_subject_records",
        sa.Column("record_id", sa.String(length=66), nullable=False),
        sa.Column("department", sa.String(length=16), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("subject_ref", sa.String(length=66), nullable=False),
        sa.Column("previous_record_id", sa.String(length=66), nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("record_id", name=op.f("pk_mirror_subject_records")),
    )
    op.create_index(
        "ix_mirror_subject_records_subject",
        "mirror_subject_records",
        ["department", "category", "subject_ref"],
    )
    op.create_index("ix_mirror_subject_records_block", "mirror_subject_records", ["block_number"])
    op.create_index(
        "ix_mirror_batch_records_subject",
        "mirror_batch_records",
        ["department", "category", "subject_ref"],
    )
    with op.batch_alter_table("access_requests") as batch:
        batch.add_column(sa.Column("category", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("subject_ref", sa.String(length=66), nullable=True))
        batch.add_column(
            sa.Column("latest_only", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch.add_column(sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index(
            "ix_access_requests_subject", ["requester", "owner", "category", "subject_ref"]
        )


def downgrade() -> None:
    op.drop_index("ix_mirror_batch_records_subject", table_name="mirror_batch_records")
    op.drop_table("mirror_subject_records")
    with op.batch_alter_table("access_requests") as batch:
        batch.drop_index("ix_access_requests_subject")
        batch.drop_column("decided_at")
        batch.drop_column("latest_only")
        batch.drop_column("subject_ref")
        batch.drop_column("category")
