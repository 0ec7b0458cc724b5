"""The ledger mirror moves into the broker's database (events, keys, counts,
remembered block hashes and the checkpoint, committed with the views derived
from them), and the broker remembers its own transactions until the mirror
confirms them. ``sync_state`` (the old request follower's checkpoint, whose hash
never matched) goes: the mirror reads the events again from the deploy block,
which needs no historical state.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_table("sync_state")
    op.create_table(
        "mirror_meta",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_mirror_meta")),
    )
    op.create_table(
        "mirror_checkpoint",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("block", sa.BigInteger(), nullable=False),
        sa.Column("block_hash", sa.LargeBinary(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mirror_checkpoint")),
    )
    op.create_table(
        "mirror_blocks",
        sa.Column("number", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("number", name=op.f("pk_mirror_blocks")),
    )
    op.create_table(
        "mirror_events",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_hash", sa.String(length=66), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("contract", sa.String(length=32), nullable=False),
        sa.Column("address", sa.String(length=42), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("indexed_args", sa.Text(), nullable=False),
        sa.Column("args", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_mirror_events")),
        sa.UniqueConstraint(
            "tx_hash", "log_index", name=op.f("uq_mirror_events_tx_hash_log_index")
        ),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_mirror_events_block", "mirror_events", ["block_number", "log_index"])
    op.create_index("ix_mirror_events_name", "mirror_events", ["event", "block_number"])
    op.create_table(
        "mirror_event_keys",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=80), nullable=False),
        sa.Column("event_seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("kind", "value", "event_seq", name=op.f("pk_mirror_event_keys")),
    )
    op.create_index("ix_mirror_event_keys_event", "mirror_event_keys", ["event_seq"])
    op.create_table(
        "mirror_event_counts",
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("event", name=op.f("pk_mirror_event_counts")),
    )
    op.create_table(
        "own_txs",
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("operation_id", sa.String(length=32), nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "state IN ('sent', 'confirmed', 'dropped')", name=op.f("ck_own_txs_state")
        ),
        sa.ForeignKeyConstraint(
            ["operation_id"],
            ["operations.id"],
            name=op.f("fk_own_txs_operation_id_operations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tx_hash", name=op.f("pk_own_txs")),
    )
    op.create_index("ix_own_txs_operation_id", "own_txs", ["operation_id"])
    op.create_index("ix_own_txs_state_block", "own_txs", ["state", "block_number"])
    # Requests are derived from the mirror's events: read them again with it.
    op.execute("DELETE FROM access_requests")


def downgrade() -> None:
    op.drop_index("ix_own_txs_state_block", table_name="own_txs")
    op.drop_index("ix_own_txs_operation_id", table_name="own_txs")
    op.drop_table("own_txs")
    op.drop_table("mirror_event_counts")
    op.drop_index("ix_mirror_event_keys_event", table_name="mirror_event_keys")
    op.drop_table("mirror_event_keys")
    op.drop_index("ix_mirror_events_name", table_name="mirror_events")
    op.drop_index("ix_mirror_events_block", table_name="mirror_events")
    op.drop_table("mirror_events")
    op.drop_table("mirror_blocks")
    op.drop_table("mirror_checkpoint")
    op.drop_table("mirror_meta")
    op.create_table(
        "sync_state",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("block", sa.BigInteger(), nullable=False),
        sa.Column("block_hash", sa.String(length=66), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_sync_state")),
    )
