"""Typed wrappers for the three govshare contracts.

Nothing above ``chain/`` sees an ABI: callers pass and get Python values.

* Department codes are ``str`` (``"TAX"``); on chain they are ``bytes32``,
  ASCII, left-aligned and zero padded. Categories likewise (``"tax-clearance"``).
* Ids and hashes (record id, content hash, subject reference, Merkle roots)
  are ``bytes`` (32); inputs may also be 0x-hex strings. A zero ``bytes32``
  that means "none" (no previous version, no subject) is ``None``.
* Enums are Python enums with readable values; a number the enum does not know
  (a newer contract) decodes to a marked member outside it (``unknown-7``) that
  equals no known one. Times are Unix seconds (block timestamps), exactly as
  stored: render them with :func:`govshare.util.chain_time` / ``iso``, which are
  total. Accounts are checksummed address strings. Strings are as written by
  their member (invalid UTF-8 becomes U+FFFD): escape them before a terminal
  shows them (:func:`govshare.util.printable`).
* Integers sent to a contract are checked against their Solidity type first: a
  value that does not fit raises :class:`~govshare.errors.OutOfRange`, not an
  encoding error.
* State-changing methods take the signing ``LocalAccount`` first and return a
  :class:`TxResult` (hash, block, decoded events), or :class:`Sent` with the
  new id when the contract creates one.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar

from eth_utils import is_address, to_checksum_address

from govshare.chain.abi import Artifact, FunctionCodec
from govshare.chain.batch import BatchedRecordProof, BatchRecord
from govshare.chain.connection import Connection, RpcError
from govshare.chain.events import LogDecoder
from govshare.chain.tx import Event, PendingTx, Sender, TxRequest, TxResult
from govshare.errors import ContractReverted, InputError, NotFound, OutOfRange

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

ZERO32 = b"\0" * 32
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
BlockId = int | str

# -- conversions at the boundary ------------------------------------------------

_CODE_RE = re.compile(r"^[A-Z0-9_]{2,16}$")
_CATEGORY_RE = re.compile(r"^[A-Za-z0-9._-]{1,32}$")


def encode_code(code: str) -> bytes:
    """``"TAX"`` → bytes32. Codes are 2-16 characters of ``[A-Z0-9_]`` (lower
    case is accepted and upper-cased)."""
    norm = str(code).strip().upper()
    if not _CODE_RE.match(norm):
        raise InputError(
            f"{code!r} is not a valid department code: use 2 to 16 characters from A-Z, 0-9 "
            "and _ (for example TAX).",
            code=str(code),
        )
    return norm.encode("ascii").ljust(32, b"\0")


def decode_code(value: bytes) -> str:
    """bytes32 → ``"TAX"`` (``""`` for zero). Bytes that are no printable ASCII
    label (the contracts never store one) come back as their 0x-hex, so what is
    shown is always safe to print."""
    raw = bytes(value)
    text = raw.rstrip(b"\0")
    if not text:
        return ""
    if text.isascii() and text.decode("ascii").isprintable():
        return text.decode("ascii")
    return "0x" + raw.hex()


def encode_category(category: str) -> bytes:
    """A catalog category: 1-32 characters of ``[A-Za-z0-9._-]``."""
    if not _CATEGORY_RE.match(str(category)):
        raise InputError(
            f"{category!r} is not a valid category: use 1 to 32 characters from A-Z, a-z, 0-9, "
            "'.', '_' and '-' (for example tax-clearance).",
            category=str(category),
        )
    return str(category).encode("ascii").ljust(32, b"\0")


def decode_category(value: bytes) -> str:
    return decode_code(value)


def to_bytes32(value: bytes | str | None, what: str = "value", *, allow_zero: bool = True) -> bytes:
    """32 bytes from ``bytes`` or a 0x-hex string; ``None`` is zero."""
    if value is None:
        out = ZERO32
    elif isinstance(value, bytes | bytearray):
        out = bytes(value)
    else:
        text = str(value)
        try:
            out = bytes.fromhex(text[2:] if text.startswith(("0x", "0X")) else text)
        except ValueError:
            raise InputError(f"The {what} {text!r} is not hexadecimal.", value=text) from None
    if len(out) != 32:
        raise InputError(
            f"The {what} must be 32 bytes (64 hex digits); got {len(out)} bytes.", what=what
        )
    if not allow_zero and out == ZERO32:
        raise InputError(f"The {what} must not be zero.", what=what)
    return out


def encode_scope(scope: bytes | str | None) -> bytes:
    """A grant's scope: 32 raw bytes, 0x-hex, or a short ASCII label (``"read"``)."""
    if scope is None:
        return ZERO32
    if isinstance(scope, bytes | bytearray):
        return to_bytes32(bytes(scope), "scope")
    if scope.startswith("0x") and len(scope) == 66:
        return to_bytes32(scope, "scope")
    raw = scope.encode("utf-8")
    if len(raw) > 32:
        raise InputError("A grant scope label is at most 32 bytes long.", scope=scope)
    return raw.ljust(32, b"\0")


def to_address(value: str, what: str = "account") -> str:
    if not isinstance(value, str) or not is_address(value):
        raise InputError(f"{value!r} is not an Ethereum account address.", what=what)
    return to_checksum_address(value)


def to_uint(value: int, bits: int, what: str) -> int:
    """``value`` as a Solidity ``uint<bits>``; one that does not fit raises
    :class:`OutOfRange` (a clean 422 instead of an ABI encoding error)."""
    n = int(value)
    if not 0 <= n < 1 << bits:
        raise OutOfRange(
            f"The {what} {n} does not fit the contract's {bits}-bit field "
            f"(0 to {(1 << bits) - 1}).",
            what=what,
        )
    return n


def _opt32(value: bytes) -> bytes | None:
    return None if bytes(value) == ZERO32 else bytes(value)


def _opt_addr(value: str) -> str | None:
    return None if int(value, 16) == 0 else value


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


class _Data:
    """Mixin: a JSON-safe dict (bytes as 0x-hex, enums as their value)."""

    def to_dict(self) -> dict[str, Any]:
        return {k: _jsonable(v) for k, v in asdict(self).items()}  # type: ignore[call-overload]


# -- enums ----------------------------------------------------------------------


class _ChainEnum(enum.Enum):
    """An enum stored on chain as uint8, in declaration order."""

    @classmethod
    def from_chain(cls, value: int) -> Self:
        """The member numbered ``value``; a number this enum does not know (a newer
        contract) is a marked stand-in, ``unknown-<n>``, that is not one of the
        members, equals none of them and is never iterated: every check of a known
        status fails closed, and rendering it never raises."""
        members = list(cls)
        if 0 <= value < len(members):
            return members[value]
        return cls._unknown(int(value))

    @classmethod
    def _unknown(cls, value: int) -> Self:
        cache = cls.__dict__.get("_unknown_members")
        if cache is None:
            cache = {}
            type.__setattr__(cls, "_unknown_members", cache)
        member = cache.get(value)
        if member is None:
            member = object.__new__(cls)
            member._name_ = f"UNKNOWN_{value}"
            member._value_ = f"unknown-{value}"
            cache[value] = member
        return member

    @property
    def known(self) -> bool:
        """False for the stand-in of a number the enum does not know."""
        return self in type(self)

    @property
    def index(self) -> int:
        if not self.known:
            raise InputError(f"{self.value} is not a {type(self).__name__} a contract accepts.")
        return list(type(self)).index(self)


class DepartmentStatus(_ChainEnum):
    NONE = "none"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    REMOVED = "removed"


class AccountRole(_ChainEnum):
    NONE = "none"
    BROKER = "broker"
    ADMIN = "admin"


class ProposalKind(_ChainEnum):
    ADD_DEPARTMENT = "add-department"
    SUSPEND_DEPARTMENT = "suspend-department"
    REMOVE_DEPARTMENT = "remove-department"
    REACTIVATE_DEPARTMENT = "reactivate-department"
    CHANGE_THRESHOLD = "change-threshold"
    ADD_SUPERVISOR = "add-supervisor"
    REMOVE_SUPERVISOR = "remove-supervisor"


class ProposalStatus(_ChainEnum):
    NONE = "none"
    PENDING = "pending"
    EXECUTED = "executed"
    EXPIRED = "expired"


class RequestStatus(_ChainEnum):
    NONE = "none"
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    REVOKED = "revoked"


class SharingType(_ChainEnum):
    """How a catalog category is shared (``IRecordRegistry.SharingType``)."""

    CONDITIONAL = "conditional"
    UNCONDITIONAL = "unconditional"
    NONE = "none"


class GrantReason(_ChainEnum):
    OK = "ok"
    UNKNOWN_REQUEST = "unknown-request"
    PENDING = "pending"
    DENIED = "denied"
    REVOKED = "revoked"
    OWNER_INACTIVE = "owner-inactive"
    REQUESTER_INACTIVE = "requester-inactive"
    EXPIRED = "expired"
    QUOTA_EXHAUSTED = "quota-exhausted"


# -- data -----------------------------------------------------------------------


@dataclass(frozen=True)
class DepartmentInit(_Data):
    """A department as founded or proposed."""

    code: str
    name: str
    broker: str
    admins: tuple[str, ...]
    encryption_key: bytes
    endpoint: str

    def to_chain(self) -> tuple[Any, ...]:
        return (
            encode_code(self.code),
            self.name,
            to_address(self.broker, "broker account"),
            [to_address(a, "admin account") for a in self.admins],
            bytes(self.encryption_key),
            self.endpoint,
        )

    @classmethod
    def from_chain(cls, d: Mapping[str, Any]) -> DepartmentInit:
        return cls(
            code=decode_code(d["code"]),
            name=d["name"],
            broker=d["broker"],
            admins=tuple(d["admins"]),
            encryption_key=bytes(d["encryptionKey"]),
            endpoint=d["endpoint"],
        )


@dataclass(frozen=True)
class Department(_Data):
    code: str
    name: str
    broker: str
    admins: tuple[str, ...]
    encryption_key: bytes
    endpoint: str
    status: DepartmentStatus
    joined_at: int
    updated_at: int

    @property
    def active(self) -> bool:
        return self.status is DepartmentStatus.ACTIVE

    @classmethod
    def from_chain(cls, d: Mapping[str, Any]) -> Department:
        return cls(
            code=decode_code(d["code"]),
            name=d["name"],
            broker=d["broker"],
            admins=tuple(d["admins"]),
            encryption_key=bytes(d["encryptionKey"]),
            endpoint=d["endpoint"],
            status=DepartmentStatus.from_chain(d["status"]),
            joined_at=d["joinedAt"],
            updated_at=d["updatedAt"],
        )


@dataclass(frozen=True)
class AccountBinding(_Data):
    """Which department an account belongs to, and as what."""

    code: str | None
    role: AccountRole


@dataclass(frozen=True)
class Proposal(_Data):
    id: int
    kind: ProposalKind
    status: ProposalStatus
    proposer_department: str
    proposer: str
    target_department: str | None
    target_account: str | None
    new_threshold: int
    created_at: int
    expires_at: int
    executed_at: int
    approval_count: int

    @classmethod
    def from_chain(cls, p: Mapping[str, Any]) -> Proposal:
        return cls(
            id=p["id"],
            kind=ProposalKind.from_chain(p["kind"]),
            status=ProposalStatus.from_chain(p["status"]),
            proposer_department=decode_code(p["proposerDepartment"]),
            proposer=p["proposer"],
            target_department=decode_code(p["targetDepartment"]) or None,
            target_account=_opt_addr(p["targetAccount"]),
            new_threshold=p["newThreshold"],
            created_at=p["createdAt"],
            expires_at=p["expiresAt"],
            executed_at=p["executedAt"],
            approval_count=p["approvalCount"],
        )


@dataclass(frozen=True)
class Record(_Data):
    """An anchored record. The contract stores neither its id (the key it is read with)
    nor the block that anchored it: that is its ``RecordAnchored`` event's
    (:meth:`RecordRegistry.anchored_event`, or a ledger mirror)."""

    record_id: bytes
    department: str
    content_hash: bytes
    cid: str
    category: str
    subject_ref: bytes | None
    previous_record_id: bytes | None
    superseded_by: bytes | None
    anchored_by: str
    anchored_at: int

    @classmethod
    def from_chain(cls, r: Mapping[str, Any], record_id: bytes) -> Record:
        """``r`` as ``getRecord(record_id)`` returned it."""
        return cls(
            record_id=bytes(record_id),
            department=decode_code(r["department"]),
            content_hash=bytes(r["contentHash"]),
            cid=r["cid"],
            category=decode_category(r["category"]),
            subject_ref=_opt32(r["subjectRef"]),
            previous_record_id=_opt32(r["previousRecordId"]),
            superseded_by=_opt32(r["supersededBy"]),
            anchored_by=r["anchoredBy"],
            anchored_at=r["anchoredAt"],
        )


@dataclass(frozen=True)
class AnchorInput:
    """One record to anchor (see :meth:`RecordRegistry.anchor`)."""

    record_id: bytes | str
    content_hash: bytes | str
    cid: str
    category: str
    subject_ref: bytes | str | None = None
    previous_record_id: bytes | str | None = None


@dataclass(frozen=True)
class RecordBatch(_Data):
    department: str
    sequence: int
    merkle_root: bytes
    count: int
    manifest_cid: str
    anchored_by: str
    anchored_at: int


@dataclass(frozen=True)
class Category(_Data):
    department: str
    category: str
    description: str
    schema_hash: bytes | None
    active: bool
    declared_at: int
    updated_at: int
    sharing: SharingType = SharingType.CONDITIONAL
    default_ttl: int = 0  # seconds; what an unconditional grant lasts
    default_max_uses: int = 0  # what an unconditional grant allows


def covers(
    *, latest_only: bool, decided_at: int, anchored_at: int, superseded_at: int | None
) -> bool:
    """Whether a grant by subject given at ``decided_at`` covers a version anchored
    at ``anchored_at`` and superseded at ``superseded_at`` (None: not superseded):
    the version current when the grant was given and, unless ``latest_only``, every
    version anchored after that. Times are chain seconds. The one rule: the
    requester's broker picks a version with it, the owner's checks it, auditors
    check each receipt against it."""
    current_then = anchored_at <= decided_at and (
        superseded_at is None or superseded_at > decided_at
    )
    return current_then or (not latest_only and anchored_at > decided_at)


@dataclass(frozen=True)
class CategorySharing(_Data):
    """How a department shares a category (``categorySharing`` / ``recordSharing``)."""

    department: str
    category: str
    declared: bool
    active: bool | None  # None: not said (``recordSharing``)
    sharing: SharingType
    default_ttl: int
    default_max_uses: int


@dataclass(frozen=True)
class AccessRequest(_Data):
    """A request and, once decided, its grant (a grant has its request's id)."""

    id: int
    requester_department: str
    owner_department: str
    record_id: bytes
    purpose: str
    legal_basis: str
    deadline: int
    requested_by: str
    requested_at: int
    status: RequestStatus
    decided_by: str | None
    decided_at: int
    deny_reason: str
    scope: bytes
    expires_at: int
    max_uses: int
    used_count: int
    revoked_by: str | None
    revoked_at: int
    revoke_reason: str
    reminder_count: int
    escalation_count: int
    last_reminded_at: int
    last_escalated_at: int
    # A request by subject (record_id all zero) names these instead of a record.
    category: str | None = None
    subject_ref: bytes | None = None
    latest_only: bool = False

    @property
    def by_subject(self) -> bool:
        """Whether this request asks for a subject's records of a category."""
        return self.subject_ref is not None

    @property
    def scope_label(self) -> str:
        """The scope as text when it is a short label, else its hex."""
        raw = self.scope.rstrip(b"\0")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return "0x" + self.scope.hex()
        return text if text.isprintable() else "0x" + self.scope.hex()

    @classmethod
    def from_chain(cls, r: Mapping[str, Any], request_id: int) -> AccessRequest:
        """``r`` as ``getRequest(request_id)`` returned it (the struct has no id)."""
        return cls(
            id=int(request_id),
            requester_department=decode_code(r["requesterDepartment"]),
            owner_department=decode_code(r["ownerDepartment"]),
            record_id=bytes(r["recordId"]),
            purpose=r["purpose"],
            legal_basis=r["legalBasis"],
            deadline=r["deadline"],
            requested_by=r["requestedBy"],
            requested_at=r["requestedAt"],
            status=RequestStatus.from_chain(r["status"]),
            decided_by=_opt_addr(r["decidedBy"]),
            decided_at=r["decidedAt"],
            deny_reason=r["denyReason"],
            scope=bytes(r["scope"]),
            expires_at=r["expiresAt"],
            max_uses=r["maxUses"],
            used_count=r["usedCount"],
            revoked_by=_opt_addr(r["revokedBy"]),
            revoked_at=r["revokedAt"],
            revoke_reason=r["revokeReason"],
            reminder_count=r["reminderCount"],
            escalation_count=r["escalationCount"],
            last_reminded_at=r["lastRemindedAt"],
            last_escalated_at=r["lastEscalatedAt"],
            category=decode_category(r["category"]) if _opt32(r["subjectRef"]) else None,
            subject_ref=_opt32(r["subjectRef"]),
            latest_only=bool(r["latestOnly"]),
        )


@dataclass(frozen=True)
class GrantStatus(_Data):
    """Whether a grant is usable now, and why not."""

    grant_id: int
    usable: bool
    reason: GrantReason


@dataclass(frozen=True)
class ReceiptBatch(_Data):
    department: str
    index: int
    root: bytes
    first_seq: int
    last_seq: int
    manifest_cid: str
    anchored_by: str
    anchored_at: int


@dataclass(frozen=True)
class Eip712Domain(_Data):
    name: str
    version: str
    chain_id: int
    verifying_contract: str


T = TypeVar("T")


@dataclass(frozen=True)
class Sent(Generic[T]):
    """A mined transaction and the value it created (a new id or sequence number)."""

    value: T
    tx: TxResult = field(repr=False)

    @property
    def tx_hash(self) -> str:
        return self.tx.tx_hash

    @property
    def block_number(self) -> int:
        return self.tx.block_number

    @property
    def events(self) -> tuple[Event, ...]:
        return self.tx.events


# -- the wrappers ---------------------------------------------------------------


class ContractWrapper:
    """Common plumbing: encode, ``eth_call``, decode; build and send transactions."""

    def __init__(self, artifact: Artifact, address: str, conn: Connection, sender: Sender):
        self.artifact = artifact
        self.name = artifact.name
        self.address = to_checksum_address(address)
        self.conn = conn
        self.sender = sender
        self._fns: dict[str, FunctionCodec] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.address})"

    def _fn(self, name: str) -> FunctionCodec:
        fn = self._fns.get(name)
        if fn is None:
            fn = self._fns[name] = self.artifact.function(name)
        return fn

    def _call(self, name: str, *args: Any, block: BlockId = "latest") -> list[Any]:
        fn = self._fn(name)
        out = self.conn.call(
            self.address, fn.encode(args), block=block, context=f"{self.name}.{name}"
        )
        return fn.decode(out)

    def _call_many(
        self, name: str, args: Sequence[Sequence[Any]], *, block: BlockId = "latest"
    ) -> list[list[Any] | None]:
        """``eth_call`` of ``name`` once per argument tuple, in one JSON-RPC batch.
        A call that reverts gives ``None``; a node that is away raises."""
        fn = self._fn(name)
        tag = hex(block) if isinstance(block, int) else block
        answers = self.conn.batch(
            [
                ("eth_call", [{"to": self.address, "data": "0x" + fn.encode(a).hex()}, tag])
                for a in args
            ]
        )
        out: list[list[Any] | None] = []
        for answer in answers:
            if isinstance(answer, RpcError):
                if answer.revert_data() is None:
                    raise answer
                out.append(None)
            else:
                out.append(fn.decode(bytes.fromhex(str(answer)[2:])))
        return out

    def _request(self, name: str, *args: Any, gas: int | None = None) -> TxRequest:
        fn = self._fn(name)
        return TxRequest(
            to=self.address, data=fn.encode(args), gas=gas, label=f"{self.name}.{name}"
        )

    def _transact(
        self,
        account: LocalAccount,
        name: str,
        *args: Any,
        gas: int | None = None,
        timeout: float | None = None,
    ) -> TxResult:
        return self.sender.transact(account, self._request(name, *args, gas=gas), timeout)


class ConsortiumRegistry(ContractWrapper):
    """Departments, their accounts and keys, threshold governance, supervisors."""

    # governance (signed by an admin of an active department)

    def _proposal(self, account: LocalAccount, name: str, *args: Any) -> Sent[int]:
        tx = self._transact(account, name, *args)
        return Sent(int(tx.event("ProposalCreated").args["proposalId"]), tx)

    def propose_add_department(self, account: LocalAccount, dept: DepartmentInit) -> Sent[int]:
        """Propose a new member; counts as the proposer department's approval."""
        return self._proposal(account, "proposeAddDepartment", dept.to_chain())

    def propose_suspend_department(self, account: LocalAccount, code: str) -> Sent[int]:
        return self._proposal(account, "proposeSuspendDepartment", encode_code(code))

    def propose_remove_department(self, account: LocalAccount, code: str) -> Sent[int]:
        return self._proposal(account, "proposeRemoveDepartment", encode_code(code))

    def propose_reactivate_department(self, account: LocalAccount, code: str) -> Sent[int]:
        return self._proposal(account, "proposeReactivateDepartment", encode_code(code))

    def propose_threshold(self, account: LocalAccount, new_threshold: int) -> Sent[int]:
        return self._proposal(account, "proposeThreshold", int(new_threshold))

    def propose_add_supervisor(self, account: LocalAccount, supervisor: str) -> Sent[int]:
        return self._proposal(account, "proposeAddSupervisor", to_address(supervisor))

    def propose_remove_supervisor(self, account: LocalAccount, supervisor: str) -> Sent[int]:
        return self._proposal(account, "proposeRemoveSupervisor", to_address(supervisor))

    def approve(self, account: LocalAccount, proposal_id: int) -> Sent[bool]:
        """Approve for the signer's department; ``value`` says whether it executed."""
        tx = self._transact(account, "approve", int(proposal_id))
        return Sent(bool(tx.events_named("ProposalExecuted")), tx)

    def execute(self, account: LocalAccount, proposal_id: int) -> TxResult:
        return self._transact(account, "execute", int(proposal_id))

    # self-management (signed by an admin of the department itself)

    def set_broker(self, account: LocalAccount, new_broker: str) -> TxResult:
        return self._transact(account, "setBroker", to_address(new_broker))

    def set_encryption_key(self, account: LocalAccount, key: bytes) -> TxResult:
        return self._transact(account, "setEncryptionKey", bytes(key))

    def set_endpoint(self, account: LocalAccount, endpoint: str) -> TxResult:
        return self._transact(account, "setEndpoint", endpoint)

    def add_admin(self, account: LocalAccount, admin: str) -> TxResult:
        return self._transact(account, "addAdmin", to_address(admin))

    def remove_admin(self, account: LocalAccount, admin: str) -> TxResult:
        return self._transact(account, "removeAdmin", to_address(admin))

    # views

    def active_departments(self, *, block: BlockId = "latest") -> list[str]:
        return [decode_code(c) for c in self._call("activeDepartments", block=block)[0]]

    # bounds on what a department registers (the contract refuses more)

    def max_name_length(self) -> int:
        return int(self._call("maxNameLength")[0])

    def max_endpoint_length(self) -> int:
        return int(self._call("maxEndpointLength")[0])

    def max_encryption_key_length(self) -> int:
        return int(self._call("maxEncryptionKeyLength")[0])

    def max_admins(self) -> int:
        return int(self._call("maxAdmins")[0])

    def max_proposal_lifetime(self) -> int:
        return int(self._call("maxProposalLifetime")[0])

    def active_department_count(self) -> int:
        return int(self._call("activeDepartmentCount")[0])

    def all_departments(self, *, block: BlockId = "latest") -> list[str]:
        return [decode_code(c) for c in self._call("allDepartments", block=block)[0]]

    def active_accounts(self) -> list[str]:
        return list(self._call("activeAccounts")[0])

    def get_department(self, code: str, *, block: BlockId = "latest") -> Department:
        """The department ``code`` (raises ``ContractReverted`` if unknown)."""
        return Department.from_chain(self._call("getDepartment", encode_code(code), block=block)[0])

    def departments(self) -> list[Department]:
        """Every department ever registered, in registration order."""
        return [self.get_department(c) for c in self.all_departments()]

    def department_status(self, code: str) -> DepartmentStatus:
        return DepartmentStatus.from_chain(self._call("departmentStatus", encode_code(code))[0])

    def department_of(self, account: str, *, block: BlockId = "latest") -> AccountBinding:
        code, role = self._call("departmentOf", to_address(account), block=block)
        return AccountBinding(decode_code(code) or None, AccountRole.from_chain(role))

    def is_active_broker(self, code: str, account: str, *, block: BlockId = "latest") -> bool:
        return bool(
            self._call("isActiveBroker", encode_code(code), to_address(account), block=block)[0]
        )

    def is_active_admin(self, code: str, account: str, *, block: BlockId = "latest") -> bool:
        return bool(
            self._call("isActiveAdmin", encode_code(code), to_address(account), block=block)[0]
        )

    def is_valid_department_code(self, code: bytes | str) -> bool:
        raw = code if isinstance(code, bytes) else str(code).encode("ascii").ljust(32, b"\0")
        return bool(self._call("isValidDepartmentCode", raw[:32].ljust(32, b"\0"))[0])

    def is_supervisor(self, account: str) -> bool:
        return bool(self._call("isSupervisor", to_address(account))[0])

    def supervisors(self) -> list[str]:
        return list(self._call("supervisors")[0])

    def threshold(self) -> int:
        return int(self._call("threshold")[0])

    def proposal_lifetime(self) -> int:
        return int(self._call("proposalLifetime")[0])

    def proposal_count(self) -> int:
        return int(self._call("proposalCount")[0])

    def get_proposal(self, proposal_id: int) -> Proposal:
        return Proposal.from_chain(self._call("getProposal", int(proposal_id))[0])

    def proposals(self) -> list[Proposal]:
        return [self.get_proposal(i) for i in range(1, self.proposal_count() + 1)]

    def proposed_department(self, proposal_id: int) -> DepartmentInit:
        return DepartmentInit.from_chain(self._call("proposedDepartment", int(proposal_id))[0])

    def proposal_approvals(self, proposal_id: int) -> list[str]:
        return [decode_code(c) for c in self._call("proposalApprovals", int(proposal_id))[0]]

    def active_approval_count(self, proposal_id: int) -> int:
        return int(self._call("activeApprovalCount", int(proposal_id))[0])

    def has_approved(self, proposal_id: int, code: str) -> bool:
        return bool(self._call("hasApproved", int(proposal_id), encode_code(code))[0])


class RecordRegistry(ContractWrapper):
    """Record anchors, version chains, Merkle batches, department catalogs."""

    def _anchor_args(self, item: AnchorInput) -> tuple[Any, ...]:
        return (
            to_bytes32(item.record_id, "record id", allow_zero=False),
            to_bytes32(item.content_hash, "content hash", allow_zero=False),
            item.cid,
            encode_category(item.category),
            to_bytes32(item.subject_ref, "subject reference"),
            to_bytes32(item.previous_record_id, "previous record id"),
        )

    def anchor(
        self,
        account: LocalAccount,
        record_id: bytes | str,
        content_hash: bytes | str,
        cid: str,
        category: str,
        subject_ref: bytes | str | None = None,
        previous_record_id: bytes | str | None = None,
        *,
        timeout: float | None = None,
    ) -> TxResult:
        """Anchor a record for the signer's department (signed by its broker key);
        with ``previous_record_id`` it supersedes that version."""
        item = AnchorInput(record_id, content_hash, cid, category, subject_ref, previous_record_id)
        return self._transact(account, "anchor", *self._anchor_args(item), timeout=timeout)

    def anchor_request(self, item: AnchorInput, *, gas: int | None = None) -> TxRequest:
        """The unsent transaction for ``item`` (for :meth:`Sender.submit_many`)."""
        return self._request("anchor", *self._anchor_args(item), gas=gas)

    def anchor_many(
        self, account: LocalAccount, items: Sequence[AnchorInput], *, timeout: float | None = None
    ) -> list[TxResult]:
        """Anchor several records, sent together. All are checked first: if any
        would revert, none is sent."""
        reqs = [self.anchor_request(i) for i in items]
        return self.sender.transact_many(account, reqs, timeout)

    def submit_anchor(self, account: LocalAccount, item: AnchorInput) -> PendingTx:
        """Send an anchor without waiting (``.wait()`` on the result)."""
        return self.sender.submit(account, self.anchor_request(item))

    def anchor_batch_request(
        self, merkle_root: bytes | str, count: int, manifest_cid: str
    ) -> TxRequest:
        """The unsent ``anchorBatch`` transaction."""
        return self._request(
            "anchorBatch",
            to_bytes32(merkle_root, "Merkle root"),
            to_uint(count, 32, "record count"),
            manifest_cid,
        )

    def submit_anchor_batch(
        self, account: LocalAccount, merkle_root: bytes | str, count: int, manifest_cid: str
    ) -> PendingTx:
        """Send an ``anchorBatch`` without waiting (``.wait()`` on the result; its
        ``RecordBatchAnchored`` event names the batch's sequence)."""
        return self.sender.submit(
            account, self.anchor_batch_request(merkle_root, count, manifest_cid)
        )

    def anchor_batch(
        self, account: LocalAccount, merkle_root: bytes | str, count: int, manifest_cid: str
    ) -> Sent[int]:
        """Anchor a Merkle batch of records; ``value`` is its sequence number."""
        tx = self._transact(
            account,
            "anchorBatch",
            to_bytes32(merkle_root, "Merkle root"),
            to_uint(count, 32, "record count"),
            manifest_cid,
        )
        return Sent(int(tx.event("RecordBatchAnchored").args["sequence"]), tx)

    def _materialise_args(self, p: BatchedRecordProof) -> tuple[Any, ...]:
        return (
            encode_code(p.department),
            to_uint(p.sequence, 64, "batch sequence"),
            to_uint(p.leaf_index, 32, "leaf index"),
            p.record.to_chain(),
            [to_bytes32(h, "proof hash") for h in p.proof],
        )

    def materialise(
        self, account: LocalAccount, proof: BatchedRecordProof, *, timeout: float | None = None
    ) -> TxResult:
        """Write a batched record on chain from its leaf and audit path (signed by any
        active department's broker key). Its predecessor must be on chain already:
        :meth:`materialise_chain` takes care of that."""
        return self._transact(
            account, "materialise", *self._materialise_args(proof), timeout=timeout
        )

    def materialise_request(
        self, proof: BatchedRecordProof, *, gas: int | None = None
    ) -> TxRequest:
        """The unsent ``materialise`` transaction (for :meth:`Sender.submit_many`)."""
        return self._request("materialise", *self._materialise_args(proof), gas=gas)

    def materialise_chain(
        self,
        account: LocalAccount,
        record_id: bytes | str,
        locate: Callable[[bytes], BatchedRecordProof | None],
        *,
        max_versions: int = 10_000,
    ) -> list[TxResult]:
        """Put ``record_id`` on chain together with every earlier version that is
        not there yet, oldest first (``materialise`` needs a record's predecessor on
        chain). ``locate`` gives a batched record's proof by id (e.g. from
        :func:`govshare.chain.batch.index_manifests`), or None. Returns the
        transactions sent (none when the record is on chain already); a version
        someone else materialised meanwhile is taken as done. Raises
        :class:`NotFound` when a missing version is in no batch ``locate`` knows."""
        missing: list[BatchedRecordProof] = []
        seen: set[bytes] = set()
        cur: bytes | None = to_bytes32(record_id, "record id", allow_zero=False)
        while cur is not None and not self.record_exists(cur):
            if cur in seen or len(seen) >= max_versions:
                raise InputError("The record's earlier versions form a cycle or a chain too long.")
            seen.add(cur)
            found = locate(cur)
            if found is None or found.record.record_id != cur:
                raise NotFound(
                    f"Record 0x{cur.hex()} is neither on chain nor in a known record batch.",
                    record_id="0x" + cur.hex(),
                )
            missing.append(found)
            cur = found.record.previous_record_id
        sent: list[TxResult] = []
        for p in reversed(missing):
            try:
                sent.append(self.materialise(account, p))
            except ContractReverted as exc:
                if exc.reason != "RecordRegistryRecordExists":
                    raise
                # Someone materialised it meanwhile: fine if it is this very record.
                on_chain = self.get_record(p.record.record_id)
                if on_chain.content_hash != p.record.content_hash or on_chain.cid != p.record.cid:
                    raise
        return sent

    def declare_category(
        self,
        account: LocalAccount,
        category: str,
        description: str,
        schema_hash: bytes | str | None = None,
    ) -> TxResult:
        """Declare (or update) a catalog category (signed by an admin key)."""
        return self._transact(
            account,
            "declareCategory",
            encode_category(category),
            description,
            to_bytes32(schema_hash, "schema hash"),
        )

    def retire_category(self, account: LocalAccount, category: str) -> TxResult:
        return self._transact(account, "retireCategory", encode_category(category))

    def set_sharing(
        self,
        account: LocalAccount,
        category: str,
        sharing: SharingType,
        *,
        default_ttl: int = 0,
        default_max_uses: int = 0,
    ) -> TxResult:
        """Set how the department shares ``category`` (signed by an admin key)."""
        return self._transact(
            account,
            "setSharing",
            encode_category(category),
            sharing.index,
            to_uint(default_ttl, 64, "default grant lifetime"),
            to_uint(default_max_uses, 32, "default number of uses"),
        )

    def category_sharing(self, department: str, category: str) -> CategorySharing:
        """How ``department`` shares ``category`` (declared False: it never declared it)."""
        declared, active, sharing, ttl, uses = self._call(
            "categorySharing", encode_code(department), encode_category(category)
        )
        return CategorySharing(
            department.upper(), category, bool(declared), bool(active),
            SharingType.from_chain(sharing), int(ttl), int(uses),
        )  # fmt: skip

    def record_sharing(self, record_id: bytes | str) -> CategorySharing | None:
        """Owner, category and sharing of an on-chain record (None: not on chain)."""
        dept, category, sharing, ttl, uses = self._call(
            "recordSharing", to_bytes32(record_id, "record id")
        )
        if not any(dept):
            return None
        return CategorySharing(
            decode_code(dept), decode_category(category), True, None,
            SharingType.from_chain(sharing), int(ttl), int(uses),
        )  # fmt: skip

    def max_default_ttl(self) -> int:
        """Longest default grant lifetime a category may declare, in seconds."""
        return int(self._call("maxDefaultTtl")[0])

    # views

    def registry_address(self) -> str:
        return str(self._call("registry")[0])

    def max_cid_length(self) -> int:
        """Longest record or manifest CID the contract accepts, in bytes."""
        return int(self._call("maxCidLength")[0])

    def max_description_length(self) -> int:
        return int(self._call("maxDescriptionLength")[0])

    def record_exists(self, record_id: bytes | str, *, block: BlockId = "latest") -> bool:
        return bool(self._call("recordExists", to_bytes32(record_id, "record id"), block=block)[0])

    def get_record(self, record_id: bytes | str, *, block: BlockId = "latest") -> Record:
        """The anchored record (raises ``ContractReverted`` if unknown)."""
        rid = to_bytes32(record_id, "record id")
        return Record.from_chain(self._call("getRecord", rid, block=block)[0], rid)

    def anchored_event(self, record_id: bytes | str, *, from_block: int = 0) -> Event | None:
        """The ``RecordAnchored`` event of ``record_id`` (its transaction and block), found
        by the indexed id in one ``eth_getLogs`` from ``from_block`` (the deployment's
        block); ``None`` when the chain holds no such event."""
        rid = to_bytes32(record_id, "record id")
        codec = self.artifact.event("RecordAnchored")
        logs = self.conn.request(
            "eth_getLogs",
            [
                {
                    "address": self.address,
                    "fromBlock": hex(int(from_block)),
                    "toBlock": "latest",
                    "topics": ["0x" + codec.topic.hex(), "0x" + rid.hex()],
                }
            ],
        )
        decode = LogDecoder({self.address: self.artifact})
        for raw in logs or []:
            event = decode(raw)
            if event is not None and event.name == "RecordAnchored":
                return event
        return None

    def owner_of(self, record_id: bytes | str) -> str | None:
        return decode_code(self._call("ownerOf", to_bytes32(record_id, "record id"))[0]) or None

    def records_by_hash(self, content_hash: bytes | str) -> list[bytes]:
        return [
            bytes(r)
            for r in self._call("recordsByHash", to_bytes32(content_hash, "content hash"))[0]
        ]

    def record_count(self) -> int:
        return int(self._call("recordCount")[0])

    def versions(self, record_id: bytes | str) -> list[Record]:
        """The version chain through ``record_id``, oldest first."""
        rec = self.get_record(record_id)
        older: list[Record] = []
        cur = rec
        while cur.previous_record_id is not None:
            cur = self.get_record(cur.previous_record_id)
            older.append(cur)
        newer: list[Record] = []
        cur = rec
        while cur.superseded_by is not None:
            cur = self.get_record(cur.superseded_by)
            newer.append(cur)
        return [*reversed(older), rec, *newer]

    def batch_count(self, department: str) -> int:
        return int(self._call("batchCount", encode_code(department))[0])

    def get_batch(self, department: str, sequence: int) -> RecordBatch:
        b = self._call("getBatch", encode_code(department), int(sequence))[0]
        return RecordBatch(
            department=department.upper(),
            sequence=int(sequence),
            merkle_root=bytes(b["merkleRoot"]),
            count=b["count"],
            manifest_cid=b["manifestCid"],
            anchored_by=b["anchoredBy"],
            anchored_at=b["anchoredAt"],
        )

    def batch_root(self, department: str, sequence: int) -> bytes:
        """The Merkle root of ``department``'s batch ``sequence``."""
        return bytes(
            self._call("batchRoot", encode_code(department), to_uint(sequence, 64, "sequence"))[0]
        )

    def record_leaf_hash(self, record: BatchRecord) -> bytes:
        """The leaf hash of ``record`` as the contract computes it (equal to
        ``record.leaf_hash()``)."""
        return bytes(
            self._call("recordLeafHash", encode_code(record.department), record.to_chain())[0]
        )

    def verify_batched_record(self, proof: BatchedRecordProof) -> bool:
        """Whether the contract accepts ``proof`` for its batch (the inclusion check
        of ``materialise`` alone, as a call)."""
        return bool(self._call("verifyBatchedRecord", *self._materialise_args(proof))[0])

    @staticmethod
    def _category(department: str, c: Mapping[str, Any]) -> Category:
        return Category(
            department=department.upper(),
            category=decode_category(c["category"]),
            description=c["description"],
            schema_hash=_opt32(c["schemaHash"]),
            active=bool(c["active"]),
            declared_at=c["declaredAt"],
            updated_at=c["updatedAt"],
            sharing=SharingType.from_chain(c["sharing"]),
            default_ttl=c["defaultTtl"],
            default_max_uses=c["defaultMaxUses"],
        )

    def categories(self, department: str) -> list[Category]:
        """The department's catalog, retired entries included."""
        raw = self._call("categories", encode_code(department))[0]
        return [self._category(department, c) for c in raw]

    def get_category(self, department: str, category: str) -> Category:
        c = self._call("getCategory", encode_code(department), encode_category(category))[0]
        return self._category(department, c)

    def is_valid_category(self, category: str) -> bool:
        raw = category.encode("utf-8")[:32].ljust(32, b"\0")
        return bool(self._call("isValidCategory", raw)[0])


class AccessLedger(ContractWrapper):
    """Requests, consent (admin keys only), grants, receipts, supervision."""

    def request_access(
        self,
        account: LocalAccount,
        owner_department: str,
        record_id: bytes | str,
        purpose: str,
        legal_basis: str,
        deadline: int,
    ) -> Sent[int]:
        """Ask ``owner_department`` for a record (signed by the requester's broker
        key); ``value`` is the new request id."""
        tx = self._transact(
            account,
            "requestAccess",
            encode_code(owner_department),
            to_bytes32(record_id, "record id"),
            purpose,
            legal_basis,
            to_uint(deadline, 64, "deadline"),
        )
        return Sent(int(tx.event("AccessRequested").args["requestId"]), tx)

    def request_by_subject(
        self,
        account: LocalAccount,
        owner_department: str,
        category: str,
        subject_ref: bytes | str,
        purpose: str,
        legal_basis: str,
        deadline: int,
        *,
        latest_only: bool = False,
    ) -> Sent[int]:
        """Ask ``owner_department`` for its ``category`` records about a subject (its
        keyed reference; signed by the requester's broker key); ``value`` is the new
        request id."""
        tx = self._transact(
            account,
            "requestBySubject",
            encode_code(owner_department),
            encode_category(category),
            to_bytes32(subject_ref, "subject reference", allow_zero=False),
            bool(latest_only),
            purpose,
            legal_basis,
            to_uint(deadline, 64, "deadline"),
        )
        return Sent(int(tx.event("AccessRequested").args["requestId"]), tx)

    def approve_request(
        self,
        request_id: int,
        *,
        expires_at: int,
        max_uses: int,
        scope: bytes | str | None = None,
    ) -> TxRequest:
        """The unsent approval (see :meth:`approve`)."""
        return self._request(
            "approve",
            to_uint(request_id, 256, "request id"),
            encode_scope(scope),
            to_uint(expires_at, 64, "expiry"),
            to_uint(max_uses, 32, "number of uses"),
        )

    def approve(
        self,
        account: LocalAccount,
        request_id: int,
        *,
        expires_at: int,
        max_uses: int,
        scope: bytes | str | None = None,
    ) -> TxResult:
        """Approve a request (signed by an admin of the owning department)."""
        req = self.approve_request(
            request_id, expires_at=expires_at, max_uses=max_uses, scope=scope
        )
        return self.sender.transact(account, req)

    def deny_request(self, request_id: int, reason: str) -> TxRequest:
        return self._request("deny", int(request_id), reason)

    def deny(self, account: LocalAccount, request_id: int, reason: str) -> TxResult:
        return self.sender.transact(account, self.deny_request(request_id, reason))

    def revoke_request(self, grant_id: int, reason: str) -> TxRequest:
        return self._request("revoke", int(grant_id), reason)

    def revoke(self, account: LocalAccount, grant_id: int, reason: str) -> TxResult:
        return self.sender.transact(account, self.revoke_request(grant_id, reason))

    def anchor_receipts(
        self,
        account: LocalAccount,
        root: bytes | str,
        first_seq: int,
        last_seq: int,
        manifest_cid: str,
        uses: Mapping[int, int] | Sequence[tuple[int, int]],
    ) -> Sent[int]:
        """Anchor a receipt batch with the uses per grant; ``value`` is its index."""
        pairs = list(uses.items()) if isinstance(uses, Mapping) else list(uses)
        tx = self._transact(
            account,
            "anchorReceipts",
            to_bytes32(root, "receipt root"),
            to_uint(first_seq, 64, "first sequence number"),
            to_uint(last_seq, 64, "last sequence number"),
            manifest_cid,
            [to_uint(g, 256, "grant id") for g, _ in pairs],
            [to_uint(u, 32, "number of uses") for _, u in pairs],
        )
        return Sent(int(tx.event("ReceiptsAnchored").args["batchIndex"]), tx)

    def remind_request(self, request_id: int) -> TxRequest:
        return self._request("remind", int(request_id))

    def remind(self, account: LocalAccount, request_id: int) -> TxResult:
        return self.sender.transact(account, self.remind_request(request_id))

    def escalate_request(self, request_id: int) -> TxRequest:
        return self._request("escalate", int(request_id))

    def escalate(self, account: LocalAccount, request_id: int) -> TxResult:
        return self.sender.transact(account, self.escalate_request(request_id))

    # views

    def registry_address(self) -> str:
        return str(self._call("registry")[0])

    def records_address(self) -> str:
        return str(self._call("records")[0])

    def deadline_horizon(self) -> int:
        """Seconds after the block time a request's deadline may be, at most."""
        return int(self._call("deadlineHorizon")[0])

    def expiry_horizon(self) -> int:
        """Seconds after the block time a grant's expiry may be, at most."""
        return int(self._call("expiryHorizon")[0])

    def max_text_length(self) -> int:
        """Longest purpose, legal basis or reason the contract accepts, in bytes."""
        return int(self._call("maxTextLength")[0])

    def max_cid_length(self) -> int:
        return int(self._call("maxCidLength")[0])

    def max_receipts_per_batch(self) -> int:
        return int(self._call("maxReceiptsPerBatch")[0])

    def request_count(self) -> int:
        return int(self._call("requestCount")[0])

    def get_request(self, request_id: int, *, block: BlockId = "latest") -> AccessRequest:
        raw = self._call("getRequest", int(request_id), block=block)[0]
        return AccessRequest.from_chain(raw, int(request_id))

    def get_requests(
        self, request_ids: Sequence[int], *, block: BlockId = "latest"
    ) -> dict[int, AccessRequest | None]:
        """Several requests in one round trip; ``None`` for an id with no request."""
        ids = [int(i) for i in request_ids]
        found: dict[int, AccessRequest | None] = {}
        for start in range(0, len(ids), 200):  # bounded batches
            chunk = ids[start : start + 200]
            answers = self._call_many("getRequest", [(i,) for i in chunk], block=block)
            for i, answer in zip(chunk, answers, strict=True):
                found[i] = AccessRequest.from_chain(answer[0], i) if answer is not None else None
        return found

    def grant_statuses(
        self, grant_ids: Sequence[int], *, block: BlockId = "latest"
    ) -> dict[int, GrantStatus]:
        """``grantStatus`` of several grants in one round trip."""
        ids = [int(i) for i in grant_ids]
        found: dict[int, GrantStatus] = {}
        for start in range(0, len(ids), 200):
            chunk = ids[start : start + 200]
            answers = self._call_many("grantStatus", [(i,) for i in chunk], block=block)
            for i, answer in zip(chunk, answers, strict=True):
                if answer is not None:
                    found[i] = GrantStatus(i, bool(answer[0]), GrantReason.from_chain(answer[1]))
        return found

    def requests(self) -> list[AccessRequest]:
        return [self.get_request(i) for i in range(1, self.request_count() + 1)]

    def grant_status(self, grant_id: int, *, block: BlockId = "latest") -> GrantStatus:
        usable, reason = self._call("grantStatus", int(grant_id), block=block)
        return GrantStatus(int(grant_id), bool(usable), GrantReason.from_chain(reason))

    def grant_check(self, grant_id: int) -> tuple[AccessRequest | None, GrantStatus, int]:
        """The grant as the owner checks it for an exchange, live and in one round
        trip: the request (``None`` if there is none), whether it is usable now,
        and the latest block's timestamp (one JSON-RPC batch)."""
        gid = int(grant_id)
        get, status = self._fn("getRequest"), self._fn("grantStatus")
        calls = [
            {"to": self.address, "data": "0x" + fn.encode([gid]).hex()} for fn in (get, status)
        ]
        answers = self.conn.batch(
            [
                ("eth_call", [calls[0], "latest"]),
                ("eth_call", [calls[1], "latest"]),
                ("eth_getBlockByNumber", ["latest", False]),
            ]
        )
        req_raw, status_raw, block = answers
        if isinstance(block, RpcError):
            raise block
        if isinstance(req_raw, RpcError) and req_raw.revert_data() is None:
            raise req_raw
        if isinstance(status_raw, RpcError):
            self.conn.raise_revert(status_raw, f"{self.name}.grantStatus")
        request = (
            None
            if isinstance(req_raw, RpcError)
            else AccessRequest.from_chain(get.decode(bytes.fromhex(str(req_raw)[2:]))[0], gid)
        )
        usable, reason = status.decode(bytes.fromhex(str(status_raw)[2:]))
        timestamp = int(block.get("timestamp", "0x0"), 16) if isinstance(block, dict) else 0
        return request, GrantStatus(gid, bool(usable), GrantReason.from_chain(reason)), timestamp

    def requests_for_record(self, record_id: bytes | str) -> list[int]:
        return [int(i) for i in self._call("requestsForRecord", to_bytes32(record_id))[0]]

    def is_overdue(self, request_id: int) -> bool:
        return bool(self._call("isOverdue", int(request_id))[0])

    def last_receipt_seq(self, department: str) -> int:
        return int(self._call("lastReceiptSeq", encode_code(department))[0])

    def receipt_batch_count(self, department: str) -> int:
        return int(self._call("receiptBatchCount", encode_code(department))[0])

    def get_receipt_batch(self, department: str, index: int) -> ReceiptBatch:
        b = self._call("getReceiptBatch", encode_code(department), int(index))[0]
        return ReceiptBatch(
            department=department.upper(),
            index=int(index),
            root=bytes(b["root"]),
            first_seq=b["firstSeq"],
            last_seq=b["lastSeq"],
            manifest_cid=b["manifestCid"],
            anchored_by=b["anchoredBy"],
            anchored_at=b["anchoredAt"],
        )

    def eip712_domain(self) -> Eip712Domain:
        """The EIP-712 domain the contract signs under (for exchange requests)."""
        _, name, version, chain_id, contract, _, _ = self._call("eip712Domain")
        return Eip712Domain(name, version, int(chain_id), contract)
