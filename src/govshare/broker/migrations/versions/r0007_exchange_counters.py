"""Atomic exchange counters: ``grant_uses`` (uses served per grant) and
``receipt_sequences`` (each owner's last receipt number), filled from the
receipts already kept. An exchange now spends a use and numbers its receipt by
updating these rows (``UPDATE … RETURNING``) instead of counting receipts, which
two concurrent transactions could both do before either wrote (PostgreSQL's READ
COMMITTED: a quota overspent, a number taken twice).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "grant_uses",
        sa.Column("owner", sa.String(length=16), nullable=False),
        sa.Column("grant_id", sa.String(length=66), nullable=False),
        sa.Column("used", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("owner", "grant_id", name=op.f("pk_grant_uses")),
    )
    op.create_table(
        "receipt_sequences",
        sa.Column("owner", sa.String(length=16), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("owner", name=op.f("pk_receipt_sequences")),
    )
    op.execute(
        "INSERT INTO grant_uses (owner, grant_id, used) "
        "SELECT owner, grant_id, COUNT(*) FROM receipts GROUP BY owner, grant_id"
    )
    op.execute(
        "INSERT INTO receipt_sequences (owner, last_seq) "
        "SELECT owner, MAX(seq) FROM receipts GROUP BY owner"
    )


def downgrade() -> None:
    op.drop_table("receipt_sequences")
    op.drop_table("grant_uses")
