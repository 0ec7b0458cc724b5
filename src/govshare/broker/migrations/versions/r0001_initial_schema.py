"""Initial broker schema: records, wrapped keys, requests/grants, outbox, receipts,
exchange nonces, users and tokens.

Revision ID: 0001
Revises: (none)
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "access_requests",
        sa.Column("request_id", sa.String(length=66), nullable=False),
        sa.Column("requester", sa.String(length=16), nullable=False),
        sa.Column("owner", sa.String(length=16), nullable=False),
        sa.Column("record_id", sa.String(length=66), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("legal_basis", sa.Text(), nullable=True),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=True),
        sa.Column("grant_id", sa.String(length=66), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("max_uses", sa.Integer(), nullable=True),
        sa.Column("uses", sa.Integer(), nullable=False),
        sa.Column("decided_by", sa.String(length=42), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("updated_block", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'approved', 'denied', 'revoked', 'expired')",
            name=op.f("ck_access_requests_status"),
        ),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_access_requests")),
        sa.UniqueConstraint("grant_id", name=op.f("uq_access_requests_grant_id")),
    )
    op.create_index(
        "ix_access_requests_owner_status", "access_requests", ["owner", "status"], unique=False
    )
    op.create_index(
        op.f("ix_access_requests_record_id"), "access_requests", ["record_id"], unique=False
    )
    op.create_index(
        "ix_access_requests_requester_status",
        "access_requests",
        ["requester", "status"],
        unique=False,
    )

    op.create_table(
        "exchange_nonces",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("signer", sa.String(length=42), nullable=False),
        sa.Column("nonce", sa.String(length=80), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange_nonces")),
        sa.UniqueConstraint("signer", "nonce", name=op.f("uq_exchange_nonces_signer_nonce")),
    )
    op.create_index(
        op.f("ix_exchange_nonces_expires_at"), "exchange_nonces", ["expires_at"], unique=False
    )

    op.create_table(
        "operations",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("principal", sa.String(length=80), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("step_name", sa.String(length=64), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_owner", sa.String(length=32), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('pending', 'running', 'done', 'failed')", name=op.f("ck_operations_state")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operations")),
        sa.UniqueConstraint(
            "principal", "idempotency_key", name=op.f("uq_operations_principal_idempotency_key")
        ),
    )
    op.create_index(
        "ix_operations_state_due", "operations", ["state", "next_attempt_at"], unique=False
    )

    op.create_table(
        "receipts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner", sa.String(length=16), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("grant_id", sa.String(length=66), nullable=False),
        sa.Column("record_id", sa.String(length=66), nullable=False),
        sa.Column("requester", sa.String(length=16), nullable=False),
        sa.Column("request_hash", sa.String(length=66), nullable=False),
        sa.Column("ciphertext_cid", sa.String(length=128), nullable=False),
        sa.Column("capsule_hash", sa.String(length=66), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("requester_signature", sa.String(length=200), nullable=False),
        sa.Column("owner_signature", sa.String(length=200), nullable=False),
        sa.Column("batch_id", sa.String(length=66), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_receipts")),
        sa.UniqueConstraint("owner", "seq", name=op.f("uq_receipts_owner_seq")),
        sa.UniqueConstraint("request_hash", name=op.f("uq_receipts_request_hash")),
    )
    op.create_index(op.f("ix_receipts_batch_id"), "receipts", ["batch_id"], unique=False)
    op.create_index(op.f("ix_receipts_grant_id"), "receipts", ["grant_id"], unique=False)
    op.create_index(op.f("ix_receipts_record_id"), "receipts", ["record_id"], unique=False)

    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("department", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("role IN ('clerk', 'admin', 'auditor')", name=op.f("ck_users_role")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("name", name=op.f("uq_users_name")),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("hint", sa.String(length=16), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_api_tokens_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_index(op.f("ix_api_tokens_user_id"), "api_tokens", ["user_id"], unique=False)

    op.create_table(
        "operation_steps",
        sa.Column("operation_id", sa.String(length=32), nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('started', 'done', 'failed')", name=op.f("ck_operation_steps_state")
        ),
        sa.ForeignKeyConstraint(
            ["operation_id"],
            ["operations.id"],
            name=op.f("fk_operation_steps_operation_id_operations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("operation_id", "step_index", name=op.f("pk_operation_steps")),
    )
    op.create_table(
        "records",
        sa.Column("record_id", sa.String(length=66), nullable=False),
        sa.Column("category", sa.String(length=64), nullable=False),
        sa.Column("subject_ref", sa.String(length=66), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("cid", sa.String(length=128), nullable=True),
        sa.Column("envelope", sa.LargeBinary(), nullable=True),
        sa.Column("own_capsule", sa.LargeBinary(), nullable=True),
        sa.Column("supersedes", sa.String(length=66), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("operation_id", sa.String(length=32), nullable=True),
        sa.Column("anchor_tx", sa.String(length=66), nullable=True),
        sa.Column("anchor_block", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'stored', 'anchored', 'failed')", name=op.f("ck_records_status")
        ),
        sa.ForeignKeyConstraint(
            ["operation_id"],
            ["operations.id"],
            name=op.f("fk_records_operation_id_operations"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("record_id", name=op.f("pk_records")),
    )
    op.create_index(
        "ix_records_category_subject", "records", ["category", "subject_ref"], unique=False
    )
    op.create_index(op.f("ix_records_operation_id"), "records", ["operation_id"], unique=False)

    op.create_table(
        "wrapped_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("record_id", sa.String(length=66), nullable=False),
        sa.Column("recipient_dept", sa.String(length=16), nullable=False),
        sa.Column("recipient_key_id", sa.String(length=128), nullable=False),
        sa.Column("grant_id", sa.String(length=66), nullable=True),
        sa.Column("algorithm", sa.String(length=64), nullable=False),
        sa.Column("capsule", sa.LargeBinary(), nullable=False),
        sa.Column("capsule_hash", sa.String(length=66), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["record_id"],
            ["records.record_id"],
            name=op.f("fk_wrapped_keys_record_id_records"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wrapped_keys")),
        sa.UniqueConstraint("capsule_hash", name=op.f("uq_wrapped_keys_capsule_hash")),
    )
    op.create_index(op.f("ix_wrapped_keys_grant_id"), "wrapped_keys", ["grant_id"], unique=False)
    op.create_index(op.f("ix_wrapped_keys_record_id"), "wrapped_keys", ["record_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_wrapped_keys_record_id"), table_name="wrapped_keys")
    op.drop_index(op.f("ix_wrapped_keys_grant_id"), table_name="wrapped_keys")

    op.drop_table("wrapped_keys")
    op.drop_index(op.f("ix_records_operation_id"), table_name="records")
    op.drop_index("ix_records_category_subject", table_name="records")

    op.drop_table("records")
    op.drop_table("operation_steps")
    op.drop_index(op.f("ix_api_tokens_user_id"), table_name="api_tokens")

    op.drop_table("api_tokens")
    op.drop_table("users")
    op.drop_index(op.f("ix_receipts_record_id"), table_name="receipts")
    op.drop_index(op.f("ix_receipts_grant_id"), table_name="receipts")
    op.drop_index(op.f("ix_receipts_batch_id"), table_name="receipts")

    op.drop_table("receipts")
    op.drop_index("ix_operations_state_due", table_name="operations")

    op.drop_table("operations")
    op.drop_index(op.f("ix_exchange_nonces_expires_at"), table_name="exchange_nonces")

    op.drop_table("exchange_nonces")
    op.drop_index("ix_access_requests_requester_status", table_name="access_requests")
    op.drop_index(op.f("ix_access_requests_record_id"), table_name="access_requests")
    op.drop_index("ix_access_requests_owner_status", table_name="access_requests")

    op.drop_table("access_requests")
