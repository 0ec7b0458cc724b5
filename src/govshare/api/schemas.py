"""Response and request bodies of the broker API (pydantic models)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field

from govshare.broker.db import Role
from govshare.broker.outbox import IDEMPOTENCY_KEY_PATTERN, OperationView
from govshare.broker.users import NAME_PATTERN, UserInfo
from govshare.util import DURATION_PATTERN

#: The largest integer the API accepts where a number is stored or compared: a
#: database's signed 64-bit column. Anything larger is a 422, never a 500.
MAX_INT64 = 2**63 - 1
#: Unix seconds and ids signed by peers are uint64 / uint256 on chain; 64 bits is
#: more than any real one needs.
MAX_UINT64 = 2**64 - 1


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Check(BaseModel):
    ok: bool
    seconds: float = Field(description="How long the probe took")
    code: str | None = Field(default=None, description="govshare error code when failed")
    detail: str | None = None


class Readiness(BaseModel):
    status: Literal["ready", "unready"]
    checks: dict[str, Check]
    #: The department's status in the consortium's registry ("active", "suspended",
    #: "removed"; "unknown" when the chain does not answer; absent without a
    #: ledger). Informational: a suspended department's broker is still ready
    #: (its clerks read, its auditors audit) but cannot publish or anchor.
    membership: str | None = None


class Me(BaseModel):
    name: str
    role: Role
    department: str


class UserOut(BaseModel):
    name: str
    role: Role
    department: str
    active: bool
    active_tokens: int
    created_at: datetime
    disabled_at: datetime | None

    @classmethod
    def of(cls, u: UserInfo) -> UserOut:
        return cls(
            name=u.name,
            role=u.role,
            department=u.department,
            active=u.active,
            active_tokens=u.active_tokens,
            created_at=u.created_at,
            disabled_at=u.disabled_at,
        )


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        min_length=1,
        max_length=64,
        pattern=NAME_PATTERN,
        examples=["alice"],
        description="Letters, digits and . _ @ -, starting with a letter or digit",
    )
    role: Role


class UserCreated(BaseModel):
    user: UserOut
    token: str = Field(description="The user's bearer token. Shown this once; store it now.")


# -- notifications and webhooks (docs/events.md) ------------------------------------------


class NotificationOut(BaseModel):
    """One notification: what ``GET /v1/events`` sends as ``data:`` and a webhook as its body."""

    id: int = Field(description="The event id: increasing, never reused (Last-Event-ID)")
    kind: str = Field(examples=["request.incoming"])
    department: str = Field(description="The department told (this broker's)")
    created_at: str = Field(description="When the broker recorded it (UTC, ISO 8601)")
    chain: dict[str, Any] | None = Field(
        description="The block and transaction of the event it tells (none for a deadline)"
    )
    data: dict[str, Any] = Field(description="What happened; fields per kind (docs/events.md)")


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        min_length=1,
        max_length=2048,
        examples=["https://intake.example/govshare"],
        description="An http or https URL with a host and no user name or password",
    )
    secret: str | None = Field(
        default=None,
        min_length=16,
        max_length=256,
        description="The signing secret (default: one is generated and returned once)",
    )


class WebhookOut(BaseModel):
    id: int
    url: str
    secret_hint: str = Field(description="The secret's first characters (never the secret)")
    created_at: datetime
    created_by: str | None
    pending: int = Field(description="Deliveries waiting (new, or to be retried)")
    done: int
    failed: int = Field(description="Deliveries given up after the last attempt")
    last_status: int | None = Field(description="HTTP status of the latest attempt")
    last_error: str | None

    @classmethod
    def of(cls, w: Any) -> WebhookOut:
        return cls(
            id=w.id,
            url=w.url,
            secret_hint=w.secret_hint,
            created_at=w.created_at,
            created_by=w.created_by,
            pending=w.pending,
            done=w.done,
            failed=w.failed,
            last_status=w.last_status,
            last_error=w.last_error,
        )


class WebhookCreated(BaseModel):
    webhook: WebhookOut
    secret: str = Field(description="The signing secret. Shown this once; store it now.")
    generated: bool


class DeliveryOut(BaseModel):
    id: int
    notification_id: int
    state: Literal["pending", "done", "failed", "skipped"]
    attempts: int
    last_status: int | None
    last_error: str | None
    next_attempt_at: datetime
    delivered_at: datetime | None


class OperationOut(BaseModel):
    id: str
    kind: str
    state: Literal["pending", "running", "done", "failed"]
    step: str | None = Field(description="The step running or last run")
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    attempts: int
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, op: OperationView) -> OperationOut:
        return cls(
            id=op.id,
            kind=op.kind,
            state=op.state.value,
            step=op.step_name,
            result=op.result,
            error=op.error,
            attempts=op.attempts,
            created_at=op.created_at,
            updated_at=op.updated_at,
            finished_at=op.finished_at,
        )


# -- records ---------------------------------------------------------------------------

#: A record id: 0x and 64 hex digits, not all zero (no record has id zero). The
#: length is :data:`RECORD_ID_LENGTH`, stated beside the pattern.
RECORD_ID_PATTERN = r"^0x0*[1-9a-fA-F][0-9a-fA-F]*$"
RECORD_ID_LENGTH = 66
#: A department code as the API takes it (upper-cased on the way in).
DEPT_PATTERN = r"^[A-Za-z0-9_]{2,16}$"
#: A record id in a route's path.
RecordIdPath = Annotated[
    str,
    Path(
        pattern=RECORD_ID_PATTERN,
        min_length=RECORD_ID_LENGTH,
        max_length=RECORD_ID_LENGTH,
        description="0x + 64 hex digits, not all zero",
    ),
]


class RecordOut(BaseModel):
    record_id: str = Field(examples=["0x" + "ab" * 32])
    department: str
    category: str
    subject_ref: str | None = Field(description="Keyed hash of the subject (never the id)")
    sha256: str = Field(description="SHA-256 of the plaintext, hex (anchored on chain)")
    cid: str | None = Field(description="CID of the ciphertext in the blob store")
    status: Literal["pending", "stored", "anchored", "failed"]
    supersedes: str | None
    superseded_by: str | None = None
    size: int | None = Field(default=None, description="Plaintext bytes (own records)")
    filename: str | None = None
    media_type: str | None = None
    published_by: str | None = None
    operation_id: str | None = None
    anchor_tx: str | None = None
    anchor_block: int | None = None
    anchored_at: datetime | None = None
    created_at: datetime | None = None
    batch_sequence: int | None = Field(
        default=None, description="Anchored in this record batch of its department's"
    )
    leaf_index: int | None = Field(default=None, description="Its leaf in that batch")

    @classmethod
    def of(cls, view: Any) -> RecordOut:
        from dataclasses import asdict

        return cls(**asdict(view))


class PublishOut(BaseModel):
    operation_id: str
    state: Literal["pending", "running", "anchoring", "done", "failed"]
    replayed: bool = Field(description="True when this Idempotency-Key was seen before")
    record_id: str | None
    cid: str | None = None
    sha256: str | None = None
    size: int | None = None
    tx_hash: str | None = None
    block_number: int | None = None
    batch: dict[str, Any] | None = Field(
        default=None, description="Where the record was anchored: its batch's sequence, its leaf"
    )


class BulkItemIn(BaseModel):
    """One record of a bulk publish: what ``POST /v1/records`` takes in its form
    fields and ``Idempotency-Key`` header, for the ``file`` part of the same rank."""

    model_config = ConfigDict(extra="forbid")

    idempotency_key: str = Field(pattern=IDEMPOTENCY_KEY_PATTERN)
    category: str = Field(min_length=1, max_length=64)
    subject: str | None = Field(default=None, max_length=1024)
    supersedes: str | None = Field(
        default=None,
        pattern=RECORD_ID_PATTERN,
        min_length=RECORD_ID_LENGTH,
        max_length=RECORD_ID_LENGTH,
    )


class BulkItemOut(BaseModel):
    index: int = Field(description="The file part's rank in the request, from 0")
    idempotency_key: str
    status: int = Field(description="What POST /v1/records answers for this record")
    body: dict[str, Any] = Field(
        description="Its body there: the record (PublishOut) or a problem (RFC 9457)"
    )


class BulkPublishOut(BaseModel):
    results: list[BulkItemOut]


# -- requests and grants ---------------------------------------------------------------


#: Text that goes on chain for every member to read: no control character but
#: tab and newline (escape sequences, NUL, which PostgreSQL cannot store).
_NO_CONTROLS = r"^[^\x00-\x08\x0b-\x1f\x7f-\x9f]*$"


#: A catalog category (the contracts' rule, ``chain.contracts.encode_category``).
CATEGORY_PATTERN = r"^[A-Za-z0-9._-]{1,32}$"
_CATEGORY = CATEGORY_PATTERN
_SUBJECT_DESC = (
    "The subject's id (a citizen's or an enterprise's). It stays with this broker: only "
    "the consortium's keyed reference of it goes on chain."
)


class RequestCreate(BaseModel):
    """A request for one record (``record_id``), or for the owner's records of a
    category about a subject (``category`` and ``subject``)."""

    model_config = ConfigDict(
        extra="forbid",
        # one of the two, as the route checks (input.invalid otherwise)
        json_schema_extra={
            "oneOf": [
                {
                    "required": ["record_id"],
                    "properties": {
                        "record_id": {"type": "string"},
                        "category": {"type": "null"},
                        "subject": {"type": "null"},
                    },
                },
                {
                    "required": ["category", "subject"],
                    "properties": {
                        "record_id": {"type": "null"},
                        "category": {"type": "string"},
                        "subject": {"type": "string"},
                    },
                },
            ]
        },
    )

    owner: str = Field(min_length=2, max_length=16, pattern=DEPT_PATTERN, examples=["TAX"])
    record_id: str | None = Field(
        default=None,
        pattern=RECORD_ID_PATTERN,
        min_length=RECORD_ID_LENGTH,
        max_length=RECORD_ID_LENGTH,
    )
    category: str | None = Field(default=None, pattern=_CATEGORY)
    subject: str | None = Field(
        default=None, min_length=1, max_length=256, pattern=_NO_CONTROLS,
        description=_SUBJECT_DESC,
    )  # fmt: skip
    latest_only: bool = Field(
        default=False,
        description="By subject: only the version current when the grant is given "
        "(default: that one and those published while the grant is valid)",
    )
    purpose: str = Field(
        min_length=1, max_length=2000, pattern=_NO_CONTROLS, examples=["business licence"]
    )
    legal_basis: str = Field(default="", max_length=2000, pattern=_NO_CONTROLS)
    deadline: str | None = Field(
        default=None,
        max_length=32,
        pattern=DURATION_PATTERN,
        description="How long the owner has to decide: 30m, 12h, 3d, 2w (default 3d, at most "
        "365d; a longer one is refused with input.out_of_range)",
        examples=["3d"],
    )


class RequestCreated(BaseModel):
    operation_id: str
    state: Literal["pending", "running", "done", "failed"]
    replayed: bool
    request_id: int | None
    granted: bool = Field(
        default=False,
        description="Granted at once, by the contract (the owner shares the category "
        "unconditionally)",
    )


class SubjectQuery(BaseModel):
    """An owner's records of a category about a subject (sent in a body, so that
    the subject's id is never in a URL or an access log)."""

    model_config = ConfigDict(extra="forbid")

    owner: str = Field(min_length=2, max_length=16, pattern=DEPT_PATTERN, examples=["TAX"])
    category: str = Field(pattern=_CATEGORY, examples=["tax-clearance"])
    subject: str = Field(
        min_length=1, max_length=256, pattern=_NO_CONTROLS, description=_SUBJECT_DESC
    )


class SubjectIn(BaseModel):
    """A subject whose access history is asked for (in a body, so that its id is
    never in a URL or an access log)."""

    model_config = ConfigDict(extra="forbid")

    subject: str = Field(
        min_length=1, max_length=256, pattern=_NO_CONTROLS, description=_SUBJECT_DESC
    )


class FoundRecordOut(BaseModel):
    record_id: str
    department: str
    category: str
    previous_record_id: str | None
    superseded_by: str | None = Field(description="The listed version that replaced it")
    block_number: int
    batch_sequence: int | None
    leaf_index: int | None
    anchored_at: datetime


class RequestOut(BaseModel):
    id: int
    direction: Literal["incoming", "outgoing"]
    requester: str
    owner: str
    record_id: str
    status: Literal["pending", "approved", "denied", "revoked", "expired"]
    purpose: str
    legal_basis: str | None
    deadline: datetime | None
    grant_id: int | None = Field(description="A grant keeps its request's id")
    expires_at: datetime | None
    max_uses: int | None
    uses: int = Field(description="Uses served (receipts here, or anchored on chain)")
    decided_by: str | None = Field(
        description="The administrator account that decided (the access ledger's own "
        "address: granted unconditionally)"
    )
    reason: str | None = Field(description="Why it was denied or revoked")
    updated_block: int
    category: str | None = Field(default=None, description="By subject: the owner's category")
    subject_ref: str | None = Field(
        default=None, description="By subject: the subject's keyed reference"
    )
    latest_only: bool = False
    decided_at: datetime | None = None

    @classmethod
    def of(cls, view: Any) -> RequestOut:
        from dataclasses import asdict

        d = asdict(view)
        d["direction"] = view.direction.value
        return cls(**d)


class ReceiptOut(BaseModel):
    owner: str = Field(description="The department that served (and numbers) the receipt")
    seq: int
    grant_id: int
    record_id: str
    requester: str
    request_hash: str = Field(description="EIP-712 digest of the signed exchange request")
    nonce: str | None
    request_expires_at: int | None
    ciphertext_cid: str
    capsule_hash: str
    issued_at: datetime
    requester_signature: str
    owner_signature: str
    batch_id: str | None
    acked_at: datetime | None = Field(
        default=None,
        description="When the requester acknowledged the delivery (null: not, or not yet)",
    )
    ack_signature: str | None = Field(
        default=None, description="The requester broker's EIP-712 ExchangeAck signature"
    )

    @classmethod
    def of(cls, view: Any) -> ReceiptOut:
        from dataclasses import asdict

        return cls(**asdict(view))


class ExchangeResumeIn(BaseModel):
    """The EIP-712 ``ExchangeResume`` a peer broker signs to continue an exchange
    it started (docs/exchange.md, *Resuming a transfer*)."""

    model_config = ConfigDict(extra="forbid")

    requester: str = Field(min_length=2, max_length=16, examples=["MARKET"])
    owner: str = Field(min_length=2, max_length=16, examples=["TAX"])
    exchange: str = Field(
        pattern=r"^0x[0-9a-fA-F]{64}$",
        description="The exchange's id: its request hash (Govshare-Exchange of its answer)",
    )
    nonce: str = Field(pattern=r"^[0-9]{1,78}$", description="uint256, decimal text")
    expires_at: int = Field(ge=0, le=MAX_UINT64, description="Unix seconds")


class ExchangeAckIn(BaseModel):
    """The EIP-712 ``ExchangeAck`` a requesting broker signs once it received an
    exchange's ciphertext whole and verified (docs/exchange.md)."""

    model_config = ConfigDict(extra="forbid")

    requester: str = Field(min_length=2, max_length=16, examples=["MARKET"])
    owner: str = Field(min_length=2, max_length=16, examples=["TAX"])
    exchange: str = Field(pattern=r"^0x[0-9a-fA-F]{64}$", description="The request hash")
    ciphertext_cid: str = Field(min_length=1, max_length=128)
    acked_at: int = Field(ge=0, le=MAX_UINT64, description="Unix seconds")


class ExchangeAckOut(BaseModel):
    exchange: str
    seq: int = Field(description="The owner's receipt number")
    acked_at: int
    recorded: bool = Field(description="False: the same acknowledgement was recorded before")


class ExchangeRequestIn(BaseModel):
    """The EIP-712 ``ExchangeRequest`` a peer broker signs (docs/exchange.md)."""

    model_config = ConfigDict(extra="forbid")

    requester: str = Field(min_length=2, max_length=16, examples=["MARKET"])
    owner: str = Field(min_length=2, max_length=16, examples=["TAX"])
    grant_id: int = Field(ge=1, le=MAX_UINT64)
    record_id: str = Field(
        pattern=RECORD_ID_PATTERN, min_length=RECORD_ID_LENGTH, max_length=RECORD_ID_LENGTH
    )
    nonce: str = Field(pattern=r"^[0-9]{1,78}$", description="uint256, decimal text")
    expires_at: int = Field(ge=0, le=MAX_UINT64, description="Unix seconds")
