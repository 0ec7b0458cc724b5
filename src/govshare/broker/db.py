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

:meth:`Database.open` migrates the schema to the newest Alembic revision (the
migrations ship inside the package), so ``govshare serve`` needs no separate
migration step.

Durability: SQLite runs with ``journal_mode=WAL`` and ``synchronous=FULL``, so a
committed transaction survives a power cut, not only a process crash; nothing the
broker acknowledged is lost. Write transactions start with ``BEGIN IMMEDIATE``:
they take SQLite's write lock up front and wait (``busy_timeout``) instead of
failing with "database is locked" when a read turns into a write under
concurrency.
"""

from __future__ import annotations

import contextlib
import enum
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Dialect,
    Engine,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    create_engine,
    event,
    false,
    text,
)
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DatabaseError,
    DataError,
    IntegrityError,
    InterfaceError,
    NotSupportedError,
    ProgrammingError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    mapped_column,
    relationship,
    sessionmaker,
)

import govshare.chain.batchindex
import govshare.chain.subjectindex  # noqa: F401 — and so is the subject index's
from govshare.chain.mirror import metadata as mirror_metadata
from govshare.clock import utcnow
from govshare.errors import ConfigError, DatabaseUnavailable
from govshare.home import dept_dir

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).with_name("migrations")

#: Milliseconds a connection waits for SQLite's write lock before giving up.
SQLITE_BUSY_TIMEOUT_MS = 30_000

# Column defaults below read the system clock (``utcnow``); wherever a time is
# compared with *now*, the code writes it from the clock it was given instead.

# Option on an engine/connection telling the SQLite "begin" hook which BEGIN to emit.
_BEGIN_OPTION = "govshare_sqlite_begin"


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware.

    SQLite has no timezone type (values come back naive); PostgreSQL's
    ``timestamptz`` converts naive values with the session's time zone. So:
    aware UTC in, aware UTC out, on both; naive datetimes are refused.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: govshare stores timezone-aware UTC timestamps")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _values(e: type[enum.Enum]) -> str:
    return ", ".join(f"'{m.value}'" for m in e)


class Role(enum.StrEnum):
    """What a broker user may do: clerks publish and request, administrators
    manage users (consent itself is signed with their own key, outside the API),
    auditors read trails and receipts."""

    CLERK = "clerk"
    ADMIN = "admin"
    AUDITOR = "auditor"


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


class Base(DeclarativeBase):
    # Named constraints: Alembic can later alter them (SQLite batch mode needs names).
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        bytes: LargeBinary(),
    }


# Widths: record / request / grant ids and hashes are 0x-prefixed 32-byte hex (66);
# department codes are short; CIDs (CIDv1 base32) fit in 128.
_ID = 66
_DEPT = 16
_CID = 128


class User(Base):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint(f"role IN ({_values(Role)})", name="role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    department: Mapped[str] = mapped_column(String(_DEPT))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    disabled_at: Mapped[datetime | None]

    tokens: Mapped[list[ApiToken]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )


class ApiToken(Base):
    """A bearer token, kept only as its SHA-256 (see ``users.py`` for why that suffices)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hint: Mapped[str] = mapped_column(String(16))  # "gs_AbCd": tells tokens apart in lists
    label: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]

    user: Mapped[User] = relationship(back_populates="tokens")


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


# The ledger mirror's tables live in this database too, so a range of events, the
# views derived from it (access_requests) and the checkpoint commit together.
for _table in mirror_metadata.sorted_tables:
    _table.to_metadata(Base.metadata)


# -- engine and sessions -------------------------------------------------------------


def _install_sqlite_pragmas(engine: Engine) -> None:
    """Per-connection SQLite settings, and SQLAlchemy-controlled transactions.

    pysqlite's own transaction handling is switched off (it would start
    transactions lazily and never for DDL); SQLAlchemy emits ``BEGIN`` itself,
    as recommended by its SQLite dialect documentation.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = FULL")
            cur.execute("PRAGMA foreign_keys = ON")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(_BEGIN_OPTION, "IMMEDIATE")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if mode == "IMMEDIATE" else "BEGIN")


# -- database failures -----------------------------------------------------------------

#: What a database that cannot be used now raises (SQLite locked past the busy
#: timeout, disk full, a read-only or damaged file; PostgreSQL down): each becomes
#: :class:`~govshare.errors.DatabaseUnavailable`. OperationalError is a DatabaseError.
DATABASE_FAILURES: tuple[type[SQLAlchemyError], ...] = (DatabaseError, InterfaceError, PoolTimeout)
# Bugs, not outages: a constraint (handled where expected), bad SQL, bad data.
_NOT_FAILURES = (IntegrityError, ProgrammingError, DataError, NotSupportedError)

# What the driver says → what a clerk or operator reads (first match wins).
_CAUSES = (
    ("locked", "another writer held it locked past the busy timeout"),
    ("busy", "another writer held it locked past the busy timeout"),
    ("disk is full", "the disk is full"),
    ("no space left", "the disk is full"),
    ("readonly", "its file is read-only"),
    ("read-only", "its file is read-only"),
    ("disk i/o error", "the disk failed to read or write it"),
    ("unable to open", "its file cannot be opened (missing folder or permissions)"),
    ("no such table", "its file is missing or was replaced"),
    ("not a database", "its file is damaged (not a database)"),
    ("malformed", "its file is damaged"),
    ("connection refused", "the database server refuses connections (is it running?)"),
    ("could not connect", "the database server cannot be reached"),
    ("connection", "the connection to the database server failed"),
    ("timeout", "the database did not answer in time"),
    ("terminating", "the database server is shutting down"),
)


def database_unavailable(exc: BaseException) -> DatabaseUnavailable | None:
    """``exc`` as a :class:`DatabaseUnavailable` when it is a database outage,
    else None. The sentence names the cause, never the SQL or a password."""
    if not isinstance(exc, DATABASE_FAILURES) or isinstance(exc, _NOT_FAILURES):
        return None
    said = str(getattr(exc, "orig", None) or exc).lower()
    cause = next(
        (why for needle, why in _CAUSES if needle in said),
        f"the database driver reported {type(getattr(exc, 'orig', None) or exc).__name__}",
    )
    return DatabaseUnavailable(
        f"The broker's database cannot be used now: {cause}. Nothing was changed; "
        "retry once it is fixed.",
        cause=type(getattr(exc, "orig", None) or exc).__name__,
    )


@contextmanager
def translate_database_errors() -> Iterator[None]:
    """Re-raise a database outage inside the block as :class:`DatabaseUnavailable`."""
    try:
        yield
    except DATABASE_FAILURES as exc:
        translated = database_unavailable(exc)
        if translated is None:
            raise
        raise translated from exc


def _parse_url(url: str | URL) -> URL:
    try:
        return make_url(url)
    except ArgumentError as exc:
        raise ConfigError("The broker database URL is not a valid database URL.") from exc


def _make_engine(url: URL) -> Engine:
    if url.get_backend_name() == "sqlite":
        if url.database in (None, "", ":memory:"):
            raise ConfigError(
                "The broker database must be a file: an in-memory SQLite database "
                "would lose every acknowledged write when the broker stops."
            )
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url)
        _install_sqlite_pragmas(engine)
        return engine
    return create_engine(url, pool_pre_ping=True)


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic configuration built in code, pointing at the packaged migrations."""
    from alembic.config import Config  # imported when needed: Alembic is not light

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def sqlite_url(path: Path) -> str:
    """The SQLAlchemy URL of a SQLite database file."""
    return f"sqlite:///{Path(path).expanduser().resolve()}"


def broker_db_path(home: Path, dept: str) -> Path:
    """Where a department's broker keeps its database: ``HOME/depts/CODE/broker.db``."""
    return dept_dir(home, dept) / "broker.db"


def _safe_url(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def insert_if_absent(conn: Connection, entity: type[Base], **values: Any) -> None:
    """``INSERT … ON CONFLICT DO NOTHING`` on SQLite and PostgreSQL: the row of a
    counter, created by whoever comes first."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        conn.execute(postgresql.insert(entity).values(**values).on_conflict_do_nothing())
    else:
        from sqlalchemy.dialects import sqlite

        conn.execute(sqlite.insert(entity).values(**values).on_conflict_do_nothing())


def bump(conn: Connection, stmt: Any, entity: type[Base], **row: Any) -> Any:
    """Run ``stmt`` (an ``UPDATE … RETURNING`` of a counter row) and return its
    value; when it touched nothing because the row does not exist yet, create
    the row (``row``, by whoever comes first) and run it once more. None: the
    row exists and ``stmt``'s condition refused (a quota used up). The common
    case costs one statement."""
    value = conn.scalar(stmt)
    if value is None:
        insert_if_absent(conn, entity, **row)
        value = conn.scalar(stmt)
    return value


class Database:
    """A migrated broker database: an engine and its sessions.

    ``with db.session() as s: ...`` is one write transaction (committed on
    success, rolled back on error); ``db.session(readonly=True)`` reads without
    taking SQLite's write lock.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._writer = sessionmaker(engine, expire_on_commit=False)
        # Reads need no write lock: a plain (deferred) BEGIN on SQLite.
        self._read_engine = (
            engine.execution_options(**{_BEGIN_OPTION: "DEFERRED"})
            if engine.dialect.name == "sqlite"
            else engine
        )
        self._reader = sessionmaker(self._read_engine, expire_on_commit=False)
        # SQLite has one writer at a time, and a writer that finds the lock taken
        # polls for it with growing sleeps (its busy handler): under load a thread
        # can lose that race for seconds. This process's writers queue here
        # instead and are woken as soon as the one before them commits; another
        # process's writer still meets SQLite's own wait (``busy_timeout``).
        self._write_turn: threading.RLock | None = (
            threading.RLock() if engine.dialect.name == "sqlite" else None
        )

    @classmethod
    def open(cls, url: str | URL, *, migrate: bool = True) -> Database:
        """Connect to ``url`` and bring its schema to the newest revision."""
        parsed = _parse_url(url)
        engine = _make_engine(parsed)
        db = cls(engine)
        if migrate:
            try:
                with translate_database_errors():
                    db.migrate()
            except DatabaseUnavailable:
                engine.dispose()
                raise
            except SQLAlchemyError as exc:
                engine.dispose()
                raise ConfigError(
                    f"Could not open the broker database at {_safe_url(parsed)}: "
                    f"{type(exc).__name__}."
                ) from exc
        return db

    @classmethod
    def for_department(cls, home: Path, dept: str, url: str | None = None) -> Database:
        """The department's own broker database: ``url`` when one is configured
        (``GOVSHARE_DATABASE_URL``: PostgreSQL, say), else its database in the home's
        dev cluster (``dev up --database postgresql``), else its SQLite file under
        the govshare home, readable by its owner only (SQLite gives its -wal and
        -shm files the same mode)."""
        if not url:
            from govshare.broker.devpostgres import dev_database_url

            url = dev_database_url(home, dept)  # a dev home on PostgreSQL
        if url:
            return cls.open(url)
        path = broker_db_path(home, dept)
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        os.chmod(path, 0o600)
        return cls.open(sqlite_url(path))

    @property
    def read_engine(self) -> Engine:
        """The engine for reads (on SQLite, a plain BEGIN: no write lock)."""
        return self._read_engine

    @property
    def url(self) -> str:
        """The database URL, password hidden (safe to log)."""
        return _safe_url(self.engine.url)

    def migrate(self, revision: str = "head") -> None:
        """Upgrade the schema to ``revision`` (idempotent; one transaction)."""
        from alembic import command

        with self.engine.begin() as conn:
            command.upgrade(alembic_config(conn), revision)

    def revision(self) -> str | None:
        """The schema revision the database is at."""
        from alembic.runtime.migration import MigrationContext

        with self._read_engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    @contextmanager
    def session(self, *, readonly: bool = False) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back on error.
        A database outage raises :class:`~govshare.errors.DatabaseUnavailable`."""
        maker = self._reader if readonly else self._writer
        turn = self._write_turn if not readonly else None
        with (
            turn if turn is not None else contextlib.nullcontext(),
            translate_database_errors(),
            maker() as s,
            s.begin(),
        ):
            yield s

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A Core connection for reads on a hot path (no ORM session to build):
        one transaction, closed when the block ends."""
        with translate_database_errors(), self._read_engine.connect() as conn:
            yield conn

    @contextmanager
    def writing(self) -> Iterator[Connection]:
        """:meth:`session`'s Core twin for a hot path: one write transaction,
        committed when the block ends, rolled back on error."""
        turn = self._write_turn
        with (
            turn if turn is not None else contextlib.nullcontext(),
            translate_database_errors(),
            self.engine.begin() as conn,
        ):
            yield conn

    def ping(self) -> None:
        """A trivial query; raises :class:`~govshare.errors.DatabaseUnavailable`
        if the database cannot answer (readiness probe)."""
        with translate_database_errors(), self._read_engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
