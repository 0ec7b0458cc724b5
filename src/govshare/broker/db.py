"""The broker's own database: what one department's broker remembers.

SQLite (one file per broker, WAL) by default; any SQLAlchemy URL works, and the
models use only portable types so PostgreSQL does too (see ``docs/broker.md``).

    records            this department's published records (hash, CID, own capsule)
    wrapped_keys       DEKs wrapped for other keys (capsules issued under a grant)
    access_requests    requests and grants as seen on chain (derived by the mirror)
    operations         the outbox: durable multi-step operations (see ``outbox.py``)
    operation_steps    one row per step of an operation: intent, then result
    receipts           exchange receipts signed by both departments
    exchange_nonces    nonces of peer exchange requests already served (no replay)
    own_txs            transactions the broker sent, until the mirror confirms them
    mirror_*           the ledger mirror: the chain's events and checkpoint (``chain/mirror.py``),
                       and the record batches' manifests (``chain/batchindex.py``)
    users, api_tokens  who may call this broker's API (see ``users.py``)
    notifications      what this department is told (``notifications.py``): the stream's log
    webhooks           where notifications are POSTed (``webhooks.py``), with a sealed secret
    webhook_deliveries each notification to each webhook: attempts, status, next try

The engine, sessions, declarative base and the user tables live in
:mod:`govshare.broker.database` (so the user store loads no other model) and are
re-exported here; import them from either. :meth:`Database.open` migrates the
schema to the newest Alembic revision (the migrations ship inside the package),
so ``govshare serve`` needs no separate migration step.

Durability: SQLite runs with ``journal_mode=WAL`` and ``synchronous=FULL``, so a
committed transaction survives a power cut, not only a process crash; nothing the
broker acknowledged is lost. Write transactions start with ``BEGIN IMMEDIATE``:
they take SQLite's write lock up front and wait (``busy_timeout``) instead of
failing with "database is locked" when a read turns into a write under
concurrency.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import (
    Mapped,
    mapped_column,
    relationship,
)

# The engine, sessions, base and user tables (see its docstring), re-exported.
from govshare.broker.database import (
    _CID,
    _DEPT,
    _ID,
    DATABASE_FAILURES,
    MIGRATIONS_DIR,
    ApiToken,
    Base,
    Database,
    User,
    UTCDateTime,
    _values,
    alembic_config,
    bump,
    database_unavailable,
    insert_if_absent,
    sqlite_url,
    translate_database_errors,
)
from govshare.broker.sqlstore import SCHEMA_REVISION, SQLITE_BUSY_TIMEOUT_MS, broker_db_path
from govshare.broker.users import Role
from govshare.clock import utcnow

__all__ = [
    "DATABASE_FAILURES",
    "MIGRATIONS_DIR",
    "SCHEMA_REVISION",
    "SQLITE_BUSY_TIMEOUT_MS",
    "AccessRequest",
    "ApiToken",
    "Base",
    "BatchState",
    "Database",
    "DeliveryState",
    "ExchangeNonce",
    "GrantUse",
    "Notification",
    "OpState",
    "Operation",
    "OperationStep",
    "OwnTx",
    "OwnTxState",
    "Receipt",
    "ReceiptSequence",
    "Record",
    "RecordBatch",
    "RecordStatus",
    "RequestStatus",
    "Role",
    "StepState",
    "UTCDateTime",
    "User",
    "Webhook",
    "WebhookDelivery",
    "WrappedKey",
    "alembic_config",
    "broker_db_path",
    "bump",
    "database_unavailable",
    "insert_if_absent",
    "schema",
    "sqlite_url",
    "translate_database_errors",
]


class RecordStatus(enum.StrEnum):
    PENDING = "pending"  # publish accepted, payload not stored yet
    STORED = "stored"  # ciphertext in the blob store, not anchored yet
    ANCHORED = "anchored"  # on chain
    FAILED = "failed"  # the publish operation failed; see its operation


class BatchState(enum.StrEnum):
    """A record batch of this department's (``record_batches``)."""

    CLOSED = "closed"  # its members are fixed; the manifest and anchor are under way
    ANCHORED = "anchored"  # its root is on chain (``sequence``, ``tx_hash``)


class RequestStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    REVOKED = "revoked"
    EXPIRED = "expired"


class OpState(enum.StrEnum):
    PENDING = "pending"  # waiting to run (new, or a transient error's retry is due)
    RUNNING = "running"  # claimed by a worker (lease in lease_owner / lease_until)
    DONE = "done"
    FAILED = "failed"


class StepState(enum.StrEnum):
    STARTED = "started"  # intent recorded; the step may or may not have had its effect
    DONE = "done"
    FAILED = "failed"


class Operation(Base):
    """One durable multi-step operation (the outbox). See ``outbox.py``."""

    __tablename__ = "operations"
    __table_args__ = (
        # The idempotency guarantee lives here: one operation per (principal, key),
        # whatever the number of threads or processes submitting it.
        UniqueConstraint("principal", "idempotency_key"),
        CheckConstraint(f"state IN ({_values(OpState)})", name="state"),
        Index("ix_operations_state_due", "state", "next_attempt_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    principal: Mapped[str] = mapped_column(String(80))
    idempotency_key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default=OpState.PENDING.value)
    step: Mapped[int] = mapped_column(Integer, default=0)  # index of the next step to run
    step_name: Mapped[str | None] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]]
    result: Mapped[dict[str, Any] | None]
    error: Mapped[dict[str, Any] | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # of the current step
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(32))
    lease_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]

    steps: Mapped[list[OperationStep]] = relationship(
        back_populates="operation",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="OperationStep.step_index",
    )


class OperationStep(Base):
    """A step's intent (written and committed before it runs) and its outcome."""

    __tablename__ = "operation_steps"
    __table_args__ = (CheckConstraint(f"state IN ({_values(StepState)})", name="state"),)

    operation_id: Mapped[str] = mapped_column(
        ForeignKey("operations.id", ondelete="CASCADE"), primary_key=True
    )
    step_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # times the handler was started
    result: Mapped[dict[str, Any] | None]
    error: Mapped[dict[str, Any] | None]
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]

    operation: Mapped[Operation] = relationship(back_populates="steps")


class Record(Base):
    """A record this department published (or is publishing)."""

    __tablename__ = "records"
    __table_args__ = (
        CheckConstraint(f"status IN ({_values(RecordStatus)})", name="status"),
        Index("ix_records_category_subject", "category", "subject_ref"),
        Index("ix_records_batching", "anchor_mode", "batch_id", "status"),
        Index("ix_records_batch", "batch_id", "leaf_index"),
        Index("ix_records_supersedes", "supersedes"),
    )

    record_id: Mapped[str] = mapped_column(String(_ID), primary_key=True)
    category: Mapped[str] = mapped_column(String(64))
    subject_ref: Mapped[str] = mapped_column(String(_ID))  # keyed hash, never a plain id
    sha256: Mapped[str] = mapped_column(String(64))  # of the plaintext, hex
    size: Mapped[int] = mapped_column(BigInteger)  # plaintext bytes
    cid: Mapped[str | None] = mapped_column(String(_CID))  # of the ciphertext, once stored
    envelope: Mapped[bytes | None]  # envelope-encryption header / parameters
    own_capsule: Mapped[bytes | None]  # the DEK wrapped for this department's own key
    supersedes: Mapped[str | None] = mapped_column(String(_ID))
    # Local metadata (never on chain): the upload's name and type, who published it.
    filename: Mapped[str | None] = mapped_column(String(255))
    media_type: Mapped[str | None] = mapped_column(String(127))
    published_by: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=RecordStatus.PENDING.value)
    operation_id: Mapped[str | None] = mapped_column(
        ForeignKey("operations.id", ondelete="SET NULL"), index=True
    )
    anchor_tx: Mapped[str | None] = mapped_column(String(_ID))
    anchor_block: Mapped[int | None] = mapped_column(BigInteger)
    # Batched anchoring (``broker/record_batches.py``): "batch" when the record is
    # anchored as a leaf of a record batch (None: its own anchor transaction); the
    # batch it joined, its leaf there, and the batch's sequence on chain once anchored.
    anchor_mode: Mapped[str | None] = mapped_column(String(8))
    batch_id: Mapped[str | None] = mapped_column(ForeignKey("record_batches.id"))
    leaf_index: Mapped[int | None] = mapped_column(Integer)
    batch_seq: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    wrapped_keys: Mapped[list[WrappedKey]] = relationship(
        back_populates="record", cascade="all, delete-orphan", passive_deletes=True
    )


class RecordBatch(Base):
    """A batch of this department's records anchored with one transaction: its
    members (``records.batch_id``, in ``leaf_index`` order) are fixed when it is
    closed; its manifest, root and chain sequence once the ``anchor_record_batch``
    operation lands."""

    __tablename__ = "record_batches"
    __table_args__ = (CheckConstraint(f"state IN ({_values(BatchState)})", name="state"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    count: Mapped[int] = mapped_column(Integer)
    operation_id: Mapped[str | None] = mapped_column(
        ForeignKey("operations.id", ondelete="SET NULL"), index=True
    )
    manifest_cid: Mapped[str | None] = mapped_column(String(_CID))
    merkle_root: Mapped[str | None] = mapped_column(String(_ID))
    #: ``batchCount`` before this batch was first sent: where a resumed step looks.
    chain_count_before: Mapped[int | None] = mapped_column(BigInteger)
    sequence: Mapped[int | None] = mapped_column(BigInteger)
    tx_hash: Mapped[str | None] = mapped_column(String(_ID))
    block_number: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    anchored_at: Mapped[datetime | None]


class WrappedKey(Base):
    """A record's DEK wrapped for some key other than the department's own
    current one: a capsule issued to a requester under a grant, or a re-wrap for
    a rotated key."""

    __tablename__ = "wrapped_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    record_id: Mapped[str] = mapped_column(
        ForeignKey("records.record_id", ondelete="CASCADE"), index=True
    )
    recipient_dept: Mapped[str] = mapped_column(String(_DEPT))
    recipient_key_id: Mapped[str] = mapped_column(String(128))  # fingerprint of the public key
    grant_id: Mapped[str | None] = mapped_column(String(_ID), index=True)
    algorithm: Mapped[str] = mapped_column(String(64))
    capsule: Mapped[bytes]
    capsule_hash: Mapped[str] = mapped_column(String(_ID), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    record: Mapped[Record] = relationship(back_populates="wrapped_keys")


class AccessRequest(Base):
    """A request for a record and, once decided, its grant: a local mirror of
    the chain (the indexer writes it; the chain stays the authority)."""

    __tablename__ = "access_requests"
    __table_args__ = (
        CheckConstraint(f"status IN ({_values(RequestStatus)})", name="status"),
        Index("ix_access_requests_owner_status", "owner", "status"),
        Index("ix_access_requests_requester_status", "requester", "status"),
        Index("ix_access_requests_subject", "requester", "owner", "category", "subject_ref"),
    )

    request_id: Mapped[str] = mapped_column(String(_ID), primary_key=True)
    requester: Mapped[str] = mapped_column(String(_DEPT))
    owner: Mapped[str] = mapped_column(String(_DEPT))
    record_id: Mapped[str] = mapped_column(String(_ID), index=True)  # may be another dept's
    status: Mapped[str] = mapped_column(String(16), default=RequestStatus.PENDING.value)
    purpose: Mapped[str] = mapped_column(Text)
    legal_basis: Mapped[str | None] = mapped_column(Text)
    deadline: Mapped[datetime | None]
    grant_id: Mapped[str | None] = mapped_column(String(_ID), unique=True)
    expires_at: Mapped[datetime | None]
    # uint32 on chain: beyond PostgreSQL's 32-bit INTEGER
    max_uses: Mapped[int | None] = mapped_column(BigInteger)
    uses: Mapped[int] = mapped_column(BigInteger, default=0)
    decided_by: Mapped[str | None] = mapped_column(String(42))  # the admin's account
    decided_at: Mapped[datetime | None]
    # A request by subject (record_id all zeros): the owner's category, the
    # subject's keyed reference, and whether only the version current when it was
    # granted is covered.
    category: Mapped[str | None] = mapped_column(String(64))
    subject_ref: Mapped[str | None] = mapped_column(String(_ID))
    latest_only: Mapped[bool] = mapped_column(default=False, server_default=false())
    reason: Mapped[str | None] = mapped_column(Text)
    updated_block: Mapped[int] = mapped_column(BigInteger)  # block of the last event applied
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Receipt(Base):
    """An exchange receipt signed by both departments. Both brokers keep it;
    ``seq`` is the owner department's gap-free sequence number."""

    __tablename__ = "receipts"
    __table_args__ = (UniqueConstraint("owner", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(_DEPT))
    seq: Mapped[int] = mapped_column(BigInteger)
    grant_id: Mapped[str] = mapped_column(String(_ID), index=True)
    record_id: Mapped[str] = mapped_column(String(_ID), index=True)
    requester: Mapped[str] = mapped_column(String(_DEPT))
    request_hash: Mapped[str] = mapped_column(String(_ID), unique=True)  # EIP-712 digest
    # The rest of the signed request (with the columns above, enough to re-verify
    # the requester's signature): its nonce (decimal) and expiry (Unix seconds).
    nonce: Mapped[str | None] = mapped_column(String(80))
    request_expires_at: Mapped[int | None] = mapped_column(BigInteger)
    ciphertext_cid: Mapped[str] = mapped_column(String(_CID))
    capsule_hash: Mapped[str] = mapped_column(String(_ID))
    issued_at: Mapped[datetime]
    requester_signature: Mapped[str] = mapped_column(String(200))  # 0x-hex
    owner_signature: Mapped[str] = mapped_column(String(200))  # 0x-hex
    batch_id: Mapped[str | None] = mapped_column(String(_ID), index=True)  # once anchored
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The requester's acknowledgement (migration 0010): when it received the
    # ciphertext whole and verified, and its ExchangeAck signature; NULL until then.
    acked_at: Mapped[datetime | None]
    ack_signature: Mapped[str | None] = mapped_column(String(200))


class GrantUse(Base):
    """How many uses of one of its grants this broker (the owner) has served: the
    counter an exchange spends in its transaction, ``UPDATE … SET used = used + 1
    WHERE used < max_uses RETURNING used`` — atomic on SQLite and on PostgreSQL
    under READ COMMITTED alike (the row's lock orders concurrent spenders)."""

    __tablename__ = "grant_uses"

    owner: Mapped[str] = mapped_column(String(_DEPT), primary_key=True)
    grant_id: Mapped[str] = mapped_column(String(_ID), primary_key=True)
    used: Mapped[int] = mapped_column(BigInteger)


class ReceiptSequence(Base):
    """The owner's last receipt number; the next is taken the same way, so the
    numbers stay gap-free and never collide."""

    __tablename__ = "receipt_sequences"

    owner: Mapped[str] = mapped_column(String(_DEPT), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger)


class ExchangeNonce(Base):
    """A peer's exchange-request nonce already accepted: seen twice is a replay.
    Kept until the request's own expiry (after that the request is refused anyway)."""

    __tablename__ = "exchange_nonces"
    __table_args__ = (UniqueConstraint("signer", "nonce"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    signer: Mapped[str] = mapped_column(String(42))  # the requesting broker's account
    nonce: Mapped[str] = mapped_column(String(80))  # uint256 as decimal text
    expires_at: Mapped[datetime] = mapped_column(index=True)
    seen_at: Mapped[datetime] = mapped_column(default=utcnow)


class OwnTxState(enum.StrEnum):
    SENT = "sent"  # included in a block, as far as the broker knows
    CONFIRMED = "confirmed"  # the mirror read its events from the canonical chain
    DROPPED = "dropped"  # gone from the chain (a reorg, a restored dev chain): re-sent


class OwnTx(Base):
    """A transaction an operation step sent and saw mined. The ledger mirror
    confirms it once it reads the transaction's events; if the chain loses it,
    the step's operation is reopened and sends again (``broker/chainwatch.py``)."""

    __tablename__ = "own_txs"
    __table_args__ = (
        CheckConstraint(f"state IN ({_values(OwnTxState)})", name="state"),
        Index("ix_own_txs_state_block", "state", "block_number"),
    )

    tx_hash: Mapped[str] = mapped_column(String(_ID), primary_key=True)
    operation_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("operations.id", ondelete="CASCADE"), index=True
    )
    step_index: Mapped[int] = mapped_column(Integer)
    block_number: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16), default=OwnTxState.SENT.value)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class DeliveryState(enum.StrEnum):
    """A webhook delivery (``webhook_deliveries``)."""

    PENDING = "pending"  # due at next_attempt_at (new, or a retry after a failure)
    DONE = "done"  # the receiver answered 2xx
    FAILED = "failed"  # gave up after the last attempt
    SKIPPED = "skipped"  # its notification was retracted (a rewind) before it went out


class Notification(Base):
    """One notification of this department (``broker/notifications.py``): ``id``
    is the stream's event id, increasing and never reused (SQLite AUTOINCREMENT,
    a sequence on PostgreSQL). ``source`` says which fact it tells (unique: each
    fact is told once); ``event_seq`` the mirror event it came from (None for a
    deadline warning). A rewind of the mirror retracts it (``retracted_at``)."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_live", "retracted_at", "id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    kind: Mapped[str] = mapped_column(String(48))
    source: Mapped[str] = mapped_column(String(160), unique=True)
    event_seq: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    block_number: Mapped[int | None] = mapped_column(BigInteger)
    tx_hash: Mapped[str | None] = mapped_column(String(_ID))
    data: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    retracted_at: Mapped[datetime | None]


class Webhook(Base):
    """A URL this department's notifications are POSTed to, signed with its
    secret (sealed with the department's HPKE key: ``webhooks.py``). ``cursor``:
    the last notification id queued for it."""

    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(String(2048))
    secret_sealed: Mapped[bytes]
    secret_hint: Mapped[str] = mapped_column(String(16))
    cursor: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    deliveries: Mapped[list[WebhookDelivery]] = relationship(
        back_populates="webhook", cascade="all, delete-orphan", passive_deletes=True
    )


class WebhookDelivery(Base):
    """One notification to one webhook: attempted until the receiver answers
    2xx (then ``done``), with backoff, up to the attempt limit (then ``failed``)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("webhook_id", "notification_id"),
        CheckConstraint(f"state IN ({_values(DeliveryState)})", name="state"),
        Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    notification_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("notifications.id", ondelete="CASCADE"), index=True
    )
    state: Mapped[str] = mapped_column(String(16), default=DeliveryState.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_status: Mapped[int | None] = mapped_column(Integer)  # HTTP status of the last attempt
    last_error: Mapped[str | None] = mapped_column(String(500))
    next_attempt_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]

    webhook: Mapped[Webhook] = relationship(back_populates="deliveries")


def schema() -> MetaData:
    """Every table of the broker's database: the models above and the ledger
    mirror's tables, which live in this database too, so a range of events, the
    views derived from it (access_requests) and the checkpoint commit together.

    What the migrations compare against. The mirror's tables (the chain code,
    eth-abi) are added here, when asked, not when this module is imported: the
    user store and `govshare user …` use the models without them."""
    import govshare.chain.batchindex
    import govshare.chain.subjectindex  # noqa: F401 - and so is the subject index's
    from govshare.chain.mirror import metadata as mirror_metadata

    for table in mirror_metadata.sorted_tables:
        if table.key not in Base.metadata.tables:
            table.to_metadata(Base.metadata)
    return Base.metadata
