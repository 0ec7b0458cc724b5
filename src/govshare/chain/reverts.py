"""Reverts → govshare errors a person can read.

A revert payload is matched by its 4-byte selector against the custom errors
of every govshare contract (plus Solidity's ``Error(string)`` and
``Panic(uint256)``), its arguments are decoded, and it is raised as
:class:`ContractReverted` — or :class:`Unauthorized` when the caller had no
right to act — with ``reason`` = the error's name (stable: tests and clients
match on it, and on ``code_for_reason``) and a sentence from the table below.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping
from typing import Any

from eth_abi.exceptions import DecodingError

from govshare.chain.abi import PANIC, Artifact, ErrorCodec, error_table
from govshare.errors import ContractReverted, GovShareError, Unauthorized
from govshare.util import MAX_DATETIME_SECONDS, chain_time, printable

# Errors that mean "this account may not do this" (→ Unauthorized, HTTP 403).
AUTH_ERRORS = frozenset(
    {
        "ConsortiumRegistryNotActiveAdmin",
        "ConsortiumRegistryNotAdmin",
        "RecordRegistryNotActiveBroker",
        "RecordRegistryNotActiveAdmin",
        "RecordRegistryNotRecordOwner",
        "AccessLedgerNotActiveBroker",
        "AccessLedgerNotOwnerAdmin",
        "AccessLedgerNotRequesterAccount",
        "AccessLedgerGrantNotOwned",
    }
)
# Unlisted errors whose names say the same (a contract grew a new one).
_AUTH_PATTERN = re.compile(r"(Unauthori[sz]ed|NotAdmin|NotBroker|NotOwner|NotActive(Admin|Broker))")

SENTENCES: dict[str, str] = {
    # ConsortiumRegistry
    "ConsortiumRegistryInvalidCode": (
        "{code!r} is not a valid department code: use 2 to 16 characters from A-Z, 0-9 and _."
    ),
    "ConsortiumRegistryEmptyName": "Department {code} needs a name.",
    "ConsortiumRegistryEmptyEncryptionKey": "Department {code} needs an encryption public key.",
    "ConsortiumRegistryEmptyEndpoint": "Department {code} needs a broker endpoint URL.",
    "ConsortiumRegistryNoAdmins": "Department {code} needs at least one administrator account.",
    "ConsortiumRegistryNameTooLong": (
        "Department {code}'s name is {length} bytes long; at most {maxLength} are allowed."
    ),
    "ConsortiumRegistryEndpointTooLong": (
        "Department {code}'s broker endpoint URL is {length} bytes long; at most {maxLength} "
        "are allowed."
    ),
    "ConsortiumRegistryEncryptionKeyTooLong": (
        "Department {code}'s encryption public key is {length} bytes long; at most {maxLength} "
        "are allowed."
    ),
    "ConsortiumRegistryTooManyAdmins": (
        "Department {code} would have {count} administrator accounts; at most {maxAdmins} are "
        "allowed."
    ),
    "ConsortiumRegistryZeroAccount": (
        "The zero address cannot be a broker, administrator or supervisor account."
    ),
    "ConsortiumRegistryAccountInUse": (
        "Account {account} belongs (or belonged) to department {code} and cannot be bound again; "
        "use a new account."
    ),
    "ConsortiumRegistryAccountIsSupervisor": (
        "Account {account} is a supervisor; a supervisor cannot also be a department account."
    ),
    "ConsortiumRegistryDepartmentExists": "A department with code {code} already exists.",
    "ConsortiumRegistryUnknownDepartment": "There is no department {code}.",
    "ConsortiumRegistryInvalidDepartmentStatus": (
        "Department {code} is {status}, which does not allow this."
    ),
    "ConsortiumRegistryLastActiveDepartment": (
        "Department {code} is the last active department; the consortium cannot be left "
        "without one."
    ),
    "ConsortiumRegistryNotActiveAdmin": (
        "{account} is not an administrator of an active department, so it cannot do this."
    ),
    "ConsortiumRegistryNotAdmin": "{account} is not an administrator of department {code}.",
    "ConsortiumRegistryLastAdmin": (
        "Department {code} would be left without administrators; add another one first."
    ),
    "ConsortiumRegistryInvalidThreshold": (
        "A threshold of {threshold} is not possible with {activeCount} active departments; "
        "it must be between 1 and {activeCount}."
    ),
    "ConsortiumRegistryInvalidLifetime": (
        "A proposal's lifetime of {lifetime} seconds is not possible: it must be between one "
        "second and 365 days."
    ),
    "ConsortiumRegistryNoFounders": "A consortium needs at least one founding department.",
    "ConsortiumRegistryAlreadySupervisor": "{account} is already a supervisor.",
    "ConsortiumRegistryNotSupervisor": "{account} is not a supervisor.",
    "ConsortiumRegistryUnknownProposal": "There is no proposal {proposalId}.",
    "ConsortiumRegistryProposalNotPending": (
        "Proposal {proposalId} is {status}; it is no longer open for approval."
    ),
    "ConsortiumRegistryProposalExpired": (
        "Proposal {proposalId} expired at {expiresAt}; make a new proposal."
    ),
    "ConsortiumRegistryAlreadyApproved": (
        "Department {code} has already approved proposal {proposalId}."
    ),
    "ConsortiumRegistryWrongProposalKind": (
        "Proposal {proposalId} is a {kind} proposal, which this does not apply to."
    ),
    "ConsortiumRegistryThresholdNotReached": (
        "Proposal {proposalId} has approvals from {approvals} active departments; "
        "{threshold} are needed."
    ),
    # RecordRegistry
    "RecordRegistryZeroRegistry": (
        "The record registry cannot be deployed without the consortium registry's address."
    ),
    "RecordRegistryNotActiveBroker": (
        "{account} is not the broker account of an active department, so it cannot anchor records."
    ),
    "RecordRegistryNotActiveAdmin": (
        "{account} is not an administrator of an active department, so it cannot change the "
        "catalog."
    ),
    "RecordRegistryInvalidRecordId": "A record id must not be zero.",
    "RecordRegistryInvalidContentHash": (
        "Record {recordId} needs a content hash (the sha256 of the document)."
    ),
    "RecordRegistryEmptyCid": "A record needs the CID of its stored ciphertext.",
    "RecordRegistryCidTooLong": (
        "The CID is {length} bytes long; at most {maxLength} are allowed (a CID of a stored "
        "ciphertext has about 60)."
    ),
    "RecordRegistryRecordExists": "Record {recordId} is already anchored.",
    "RecordRegistryUnknownRecord": "There is no anchored record {recordId}.",
    "RecordRegistryNotRecordOwner": (
        "Record {recordId} belongs to department {owner}, not to {department}; only its owner "
        "can publish a new version of it."
    ),
    "RecordRegistryAlreadySuperseded": (
        "Record {recordId} was already superseded by {supersededBy}; supersede the newest "
        "version instead."
    ),
    "RecordRegistryInvalidCategory": (
        "{category!r} is not a valid category: use 1 to 32 characters from A-Z, a-z, 0-9, "
        "'.', '_' and '-'."
    ),
    "RecordRegistryUnknownCategory": (
        "Department {department} has not declared the category {category}; declare it in its "
        "catalog first."
    ),
    "RecordRegistryCategoryRetired": (
        "Department {department} has retired the category {category}; no new records of it "
        "can be anchored."
    ),
    "RecordRegistryEmptyMerkleRoot": "A record batch needs a Merkle root.",
    "RecordRegistryDescriptionTooLong": (
        "The description of category {category} is {length} bytes long; at most {maxLength} are "
        "allowed."
    ),
    "RecordRegistryEmptyBatch": "A record batch must contain at least one record.",
    "RecordRegistryUnknownBatch": "Department {department} has no record batch {sequence}.",
    "RecordRegistryLeafIndexOutOfRange": (
        "Department {department}'s record batch {sequence} holds {count} records; there is no "
        "leaf {leafIndex}."
    ),
    "RecordRegistryInvalidProof": (
        "The record and audit path given are not leaf {leafIndex} of department {department}'s "
        "record batch {sequence}: a field, the index or the path is wrong (take them from the "
        "batch's manifest again)."
    ),
    "RecordRegistryDepartmentNotActive": (
        "Department {department} is not an active member, so its batched records cannot be "
        "written on chain."
    ),
    "RecordRegistryInvalidSharingDefaults": (
        "Category {category} cannot be shared {sharing} with a default lifetime of {defaultTtl} "
        "s and {defaultMaxUses} uses: an unconditional category needs both (a lifetime of at "
        "most ten years, at least one use), a category that is not shared takes neither."
    ),
    # AccessLedger
    "AccessLedgerZeroRegistry": (
        "The access ledger cannot be deployed without the consortium registry's address."
    ),
    "AccessLedgerZeroRecords": (
        "The access ledger cannot be deployed without the record registry's address."
    ),
    "AccessLedgerNotActiveBroker": (
        "{account} is not the broker account of an active department, so it cannot do this."
    ),
    "AccessLedgerDepartmentNotActive": "Department {department} is not an active member.",
    "AccessLedgerSelfRequest": "Department {department} cannot request its own records.",
    "AccessLedgerUnknownRecord": (
        "There is no record {recordId} on chain; a record anchored in a batch must be "
        "materialised from its batch first."
    ),
    "AccessLedgerRecordNotOwned": (
        "Record {recordId} belongs to department {actualOwner}, not to {ownerDepartment}; "
        "ask {actualOwner} for it."
    ),
    "AccessLedgerEmptyPurpose": "A request must state its purpose.",
    "AccessLedgerCategoryNotShared": (
        "Department {ownerDepartment} does not share its {category} records: its catalog "
        "declares that category as not shared, so no request for it can be made."
    ),
    "AccessLedgerUnknownCategory": (
        "Department {ownerDepartment} has not declared the category {category} in its catalog; "
        "see `govshare catalog list --dept {ownerDepartment}`."
    ),
    "AccessLedgerEmptySubject": "A request by subject needs the subject's identifier.",
    "AccessLedgerInvalidDeadline": (
        "The deadline {deadline} is not in the future (the chain's time is {nowTime})."
    ),
    "AccessLedgerUnknownRequest": "There is no request {requestId}.",
    "AccessLedgerDeadlineTooFar": (
        "The deadline {deadline} is too far ahead: a request's deadline may be at most a year "
        "away, so {latestAllowed} at the latest."
    ),
    "AccessLedgerPurposeTooLong": (
        "The purpose is {length} bytes long; at most {maxLength} are allowed."
    ),
    "AccessLedgerLegalBasisTooLong": (
        "The legal basis is {length} bytes long; at most {maxLength} are allowed."
    ),
    "AccessLedgerNotOwnerAdmin": (
        "Only an administrator of the department that owns the record can decide on request "
        "{requestId}; {account} is not one."
    ),
    "AccessLedgerNotRequesterAccount": (
        "Only the requesting department's broker or administrators can follow up request "
        "{requestId}; {account} is neither."
    ),
    "AccessLedgerRequestNotPending": (
        "Request {requestId} is already {status}; it is no longer pending."
    ),
    "AccessLedgerGrantNotApproved": "Request {grantId} is {status}, not an approved grant.",
    "AccessLedgerInvalidExpiry": (
        "The expiry {expiresAt} is not in the future (the chain's time is {nowTime})."
    ),
    "AccessLedgerInvalidMaxUses": "A grant must allow at least one use.",
    "AccessLedgerExpiryTooFar": (
        "The expiry {expiresAt} is too far ahead: a grant may last at most ten years, so until "
        "{latestAllowed} at the latest."
    ),
    "AccessLedgerEmptyReason": "Give a reason for the denial or revocation.",
    "AccessLedgerNotOverdue": "Request {requestId} is not overdue yet; its deadline is {deadline}.",
    "AccessLedgerReasonTooLong": (
        "The reason is {length} bytes long; at most {maxLength} are allowed."
    ),
    "AccessLedgerNoSupervisors": "No supervisor is registered to escalate to.",
    "AccessLedgerEmptyReceiptRoot": "A receipt batch needs a Merkle root.",
    "AccessLedgerEmptyCid": "A receipt batch needs the CID of its manifest.",
    "AccessLedgerCidTooLong": (
        "The receipt manifest's CID is {length} bytes long; at most {maxLength} are allowed."
    ),
    "AccessLedgerReceiptBatchTooLarge": (
        "A receipt batch of {receipts} receipts is too large; one batch holds at most "
        "{maxReceipts}."
    ),
    "AccessLedgerInvalidReceiptRange": (
        "The receipt range {firstSeq}..{lastSeq} is reversed: the last sequence number comes "
        "before the first."
    ),
    "AccessLedgerReceiptRangeNotContiguous": (
        "Department {department}'s next receipt batch must start at {expectedFirstSeq}, not "
        "{firstSeq}: batches may have no gap and no overlap."
    ),
    "AccessLedgerLengthMismatch": (
        "{grantIdsLength} grants but {usesLength} use counts were given; they must match."
    ),
    "AccessLedgerReceiptCountMismatch": (
        "The uses add up to {uses}, but the receipt range holds {receipts} receipts."
    ),
    "AccessLedgerZeroUses": "Grant {grantId} is listed with zero uses.",
    "AccessLedgerGrantNotOwned": (
        "Grant {grantId} is for a record of department {owner}, not of {department}."
    ),
    "AccessLedgerQuotaExceeded": (
        "Grant {grantId} allows {maxUses} uses; {used} are recorded and {adding} more would "
        "exceed its quota."
    ),
    "AccessLedgerUnknownReceiptBatch": "Department {department} has no receipt batch {index}.",
}

# Enum arguments, by (error, argument): uint8 → the enum's value names.
_DEPARTMENT_STATUS = ("unregistered", "active", "suspended", "removed")
_PROPOSAL_STATUS = ("unknown", "pending", "executed", "expired")
_PROPOSAL_KIND = (
    "add-department",
    "suspend-department",
    "remove-department",
    "reactivate-department",
    "change-threshold",
    "add-supervisor",
    "remove-supervisor",
)
_REQUEST_STATUS = ("unknown", "pending", "approved", "denied", "revoked")
_SHARING_TYPE = ("conditional", "unconditional", "none")
ENUM_ARGS: dict[tuple[str, str], tuple[str, ...]] = {
    ("ConsortiumRegistryInvalidDepartmentStatus", "status"): _DEPARTMENT_STATUS,
    ("ConsortiumRegistryProposalNotPending", "status"): _PROPOSAL_STATUS,
    ("ConsortiumRegistryWrongProposalKind", "kind"): _PROPOSAL_KIND,
    ("AccessLedgerRequestNotPending", "status"): _REQUEST_STATUS,
    ("AccessLedgerGrantNotApproved", "status"): _REQUEST_STATUS,
    ("RecordRegistryInvalidSharingDefaults", "sharing"): _SHARING_TYPE,
}
_TIME_ARGS = frozenset({"deadline", "nowTime", "expiresAt", "latestAllowed"})

PANIC_REASONS = {
    0x01: "an internal consistency check failed",
    0x11: "an arithmetic overflow or underflow",
    0x12: "a division by zero",
    0x21: "an invalid enum value",
    0x22: "corrupt storage",
    0x31: "a pop from an empty array",
    0x32: "an array index out of bounds",
    0x41: "too much memory was allocated",
    0x51: "a call to an uninitialised function",
}

_PRINTABLE = set(string.ascii_letters + string.digits + "._-")


def label_from_bytes32(value: bytes) -> str | None:
    """A left-aligned, zero-padded ASCII label (department code, category), or None."""
    text = value.rstrip(b"\0")
    if not text or b"\0" in text:
        return None
    try:
        decoded = text.decode("ascii")
    except UnicodeDecodeError:
        return None
    return decoded if set(decoded) <= _PRINTABLE else None


def _display(error: str, name: str, value: Any) -> Any:
    enum = ENUM_ARGS.get((error, name))
    if enum is not None and isinstance(value, int):
        return enum[value] if value < len(enum) else str(value)
    if name in _TIME_ARGS and isinstance(value, int):
        when = chain_time(value)
        if when is None or value > MAX_DATETIME_SECONDS:
            return f"{value} (beyond the year 9999)" if value else "0"
        return when.strftime("%Y-%m-%d %H:%M:%S UTC")
    if isinstance(value, bytes):
        if len(value) == 32:
            label = label_from_bytes32(value)
            if label is not None and not name.lower().endswith(("id", "hash", "root", "by")):
                return label
        return "0x" + value.hex()
    return value


def _jsonable_args(args: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in args.items():
        if isinstance(value, bytes):
            label = label_from_bytes32(value) if len(value) == 32 else None
            out[key] = (
                label
                if label is not None and not key.lower().endswith(("id", "hash", "root", "by"))
                else "0x" + value.hex()
            )
        else:
            out[key] = value
    return out


def is_auth_error(name: str) -> bool:
    return name in AUTH_ERRORS or bool(_AUTH_PATTERN.search(name))


class RevertDecoder:
    """Callable ``(revert data, context, sender) -> GovShareError`` for a set of artifacts."""

    def __init__(self, artifacts: Iterable[Artifact] | None = None) -> None:
        self.table: dict[bytes, ErrorCodec] = error_table(artifacts)

    def __call__(self, data: bytes, context: str, sender: str | None = None) -> GovShareError:
        return self.decode(data, context, sender)

    def decode(self, data: bytes, context: str, sender: str | None = None) -> ContractReverted:
        if len(data) < 4:
            return ContractReverted(
                f"The contract refused {context} without giving a reason.",
                reason="",
                context=context,
            )
        codec = self.table.get(data[:4])
        if codec is None:
            return ContractReverted(
                f"The contract refused {context} with an error govshare does not know "
                f"(selector 0x{data[:4].hex()}); govshare and the deployed contracts may not "
                "match.",
                reason="0x" + data[:4].hex(),
                context=context,
            )
        try:
            args = codec.decode(data[4:])
        except DecodingError:
            args = {}
        if codec.name == "Error":
            # (a node or another contract wrote this text: it is shown, never obeyed)
            return ContractReverted(
                f"The contract refused {context}: {printable(args.get('message', ''))}",
                reason="Error",
                args=args,
                context=context,
            )
        if codec.selector == PANIC.selector:
            code = int(args.get("code", 0))
            why = PANIC_REASONS.get(code, f"panic code 0x{code:02x}")
            return ContractReverted(
                f"The contract failed on {context}: {why}. This is a bug in the contract; "
                "report it with the transaction.",
                reason="Panic",
                args=args,
                context=context,
            )
        shown = {k: _display(codec.name, k, v) for k, v in args.items()}
        if sender is not None:
            shown.setdefault("account", sender)
        template = SENTENCES.get(codec.name)
        try:
            sentence = template.format(**shown) if template else None
        except (KeyError, IndexError, ValueError):
            sentence = None
        if sentence is None:
            detail = ", ".join(f"{k}={v}" for k, v in shown.items() if k in args)
            sentence = f"The contract refused {context}: {codec.name}" + (
                f" ({detail})." if detail else "."
            )
        cls = Unauthorized if is_auth_error(codec.name) else ContractReverted
        return cls(sentence, reason=codec.name, args=_jsonable_args(args), context=context)
