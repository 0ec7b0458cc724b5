"""Grant quotas and uses as 64-bit integers: a grant's ``maxUses`` is a uint32 on
chain (up to 4,294,967,295), which PostgreSQL's 32-bit INTEGER cannot hold.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("access_requests") as batch:
        batch.alter_column(
            "max_uses", existing_type=sa.Integer(), type_=sa.BigInteger(), existing_nullable=True
        )
        batch.alter_column(
            "uses", existing_type=sa.Integer(), type_=sa.BigInteger(), existing_nullable=False
        )


def downgrade() -> None:
    with op.batch_alter_table("access_requests") as batch:
        batch.alter_column(
            "uses", existing_type=sa.BigInteger(), type_=sa.Integer(), existing_nullable=False
        )
        batch.alter_column(
            "max_uses", existing_type=sa.BigInteger(), type_=sa.Integer(), existing_nullable=True
        )
