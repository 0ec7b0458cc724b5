"""Receipt acknowledgements: ``receipts.acked_at`` and ``receipts.ack_signature``,
the requester's signature (``ExchangeAck``) over the exchange and the ciphertext
it received whole and verified. NULL: not acknowledged (yet), or a receipt from
before acknowledgements.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("receipts") as batch:
        batch.add_column(sa.Column("acked_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("ack_signature", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("receipts") as batch:
        batch.drop_column("ack_signature")
        batch.drop_column("acked_at")
