"""Access receipts as a verifiable log: the leaf format, batch manifests, and
fast checks of both signatures.

A **receipt leaf** is the canonical JSON of one exchange receipt, both
signatures included (``docs/audit.md`` is the reference)::

    {"capsule_hash":"0x…","ciphertext_cid":"bafy…","grant_id":7,"issued_at":1767225600,
     "nonce":"1836…","owner":"TAX","owner_signature":"0x…","record_id":"0x…",
     "request_expires_at":1767225660,"request_hash":"0x…","requester":"MARKET",
     "requester_signature":"0x…","seq":12,"v":1}

Version 2 (receipts anchored since the requester's acknowledgement was added)
has two more fields: ``acked_at`` (Unix seconds) and ``ack_signature``, the
requester broker's EIP-712 ``ExchangeAck(bytes32 requestHash,string
ciphertextCid,uint256 ackedAt)`` signature: it received the ciphertext whole and
verified. Both null: anchored as *delivered, unacknowledged* (the requester did
not acknowledge within the owner's resume window). Version 1 leaves, which have
neither field, still parse and verify as they were anchored.

Canonical: keys sorted, no spaces, ASCII only, integers in decimal; every other
value a string (or null for a field an old receipt lacks). The Merkle leaf is
those exact bytes (:mod:`govshare.audit.merkle` hashes them with the 0x00
prefix).

A **batch manifest** is JSON Lines, stored in the owner's blob store (CIDv1, raw
leaves): one header line, then one receipt leaf per line in sequence order::

    {"chain_id":31337,"count":3,"department":"TAX","first_seq":10,"format":
     "govshare-receipt-manifest/1","last_seq":12,"ledger":"0x…","tree":"rfc6962-sha256"}
    {…receipt 10…}
    {…receipt 11…}
    {…receipt 12…}

The header is informational (everything in it is on chain too); the root
anchored by ``AccessLedger.anchorReceipts`` is the RFC 6962 root over the
receipt lines. So an auditor needs neither the broker nor the store to be
honest: the manifest is found by its CID (content addressing) and its lines
must hash to the root on chain.

The EIP-712 digests are computed here directly (the same bytes as
:mod:`govshare.broker.exchange`, which a test checks), and signers recovered
with coincurve: checking 100,000 signatures must not take minutes.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from coincurve import PublicKey
from eth_hash.auto import keccak

from govshare.audit.errors import ManifestError
from govshare.audit.merkle import MerkleTree, leaf_hash

MANIFEST_FORMAT = "govshare-receipt-manifest/1"
LEAF_VERSION = 2
#: The leaf versions this build reads (1: before acknowledgements).
LEAF_VERSIONS = (1, 2)
_V2_FIELDS = ("acked_at", "ack_signature")
TREE = "rfc6962-sha256"

_HEX32 = re.compile(r"0x[0-9a-f]{64}")
_SIG = re.compile(r"0x[0-9a-fA-F]{130}")


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, ASCII: one byte string per value."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode(
        "ascii"
    )


@dataclass(frozen=True)
class ReceiptLeaf:
    """One exchange receipt, as a leaf of the owner department's receipt log."""

    owner: str
    seq: int
    grant_id: int
    record_id: str
    requester: str
    request_hash: str
    nonce: str | None
    request_expires_at: int | None
    ciphertext_cid: str
    capsule_hash: str
    issued_at: int
    requester_signature: str
    owner_signature: str
    acked_at: int | None = None
    ack_signature: str | None = None
    version: int = LEAF_VERSION

    @property
    def delivery(self) -> str:
        """What the receipt says of the delivery: ``acknowledged`` (the requester
        signed that it received the ciphertext whole), ``unacknowledged`` (a
        version 2 receipt without that signature), or ``not recorded`` (version 1)."""
        if self.version < 2:
            return "not recorded"
        return "acknowledged" if self.ack_signature else "unacknowledged"

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name != "version" and (self.version >= 2 or f.name not in _V2_FIELDS)
        }
        d["v"] = self.version
        return d

    def leaf(self) -> bytes:
        """The leaf's bytes: this receipt's canonical JSON."""
        return canonical_json(self.to_json())

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ReceiptLeaf:
        version = d.get("v") if isinstance(d, Mapping) else None
        if version not in LEAF_VERSIONS or isinstance(version, bool):
            raise ManifestError("A receipt line is not a version 1 or 2 govshare receipt.")
        names = {f.name for f in fields(cls)} - {"version"}
        if version < 2:
            names -= set(_V2_FIELDS)
        if set(d) != names | {"v"}:
            raise ManifestError("A receipt line has missing or unknown fields.")
        try:
            leaf = cls(**{k: d[k] for k in names}, version=int(version))
        except TypeError as exc:
            raise ManifestError(f"A receipt line does not parse ({exc}).") from None
        for name in ("seq", "grant_id", "issued_at"):
            v = getattr(leaf, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ManifestError(f"A receipt's {name} is not a whole number.")
        ack = leaf.acked_at
        if ack is not None and (not isinstance(ack, int) or isinstance(ack, bool) or ack < 0):
            raise ManifestError("A receipt's acked_at is not a whole number.")
        if (ack is None) != (leaf.ack_signature is None):
            raise ManifestError("A receipt has an acknowledgement time without signature.")
        return leaf

    @classmethod
    def parse(cls, line: bytes) -> ReceiptLeaf:
        """A receipt from its leaf bytes; refuses anything not canonical, so one
        receipt has exactly one leaf."""
        try:
            d = json.loads(line)
        except ValueError:
            raise ManifestError("A receipt line is not JSON.") from None
        leaf = cls.from_json(d)
        if leaf.leaf() != bytes(line):
            raise ManifestError(f"Receipt {leaf.seq}'s line is not in canonical form.")
        return leaf


@dataclass(frozen=True)
class Manifest:
    """A parsed batch manifest: its header and its leaves (bytes and parsed)."""

    header: dict[str, Any]
    leaves: list[bytes]
    receipts: list[ReceiptLeaf]
    #: The leaf index of each parsed receipt (lines that do not parse are skipped).
    positions: list[int] = field(default_factory=list)

    @property
    def department(self) -> str:
        return str(self.header.get("department", ""))

    @property
    def first_seq(self) -> int:
        return int(self.header.get("first_seq", 0))

    @property
    def last_seq(self) -> int:
        return int(self.header.get("last_seq", 0))

    def tree(self) -> MerkleTree:
        return MerkleTree(leaf_hash(x) for x in self.leaves)

    def root(self) -> bytes:
        return self.tree().root


def build_manifest(
    department: str, chain_id: int, ledger: str, receipts: Sequence[ReceiptLeaf]
) -> tuple[bytes, bytes]:
    """The manifest bytes of a batch, and its root. ``receipts`` must be the
    department's, in order, without gaps."""
    if not receipts:
        raise ValueError("a receipt batch is never empty")
    first, last = receipts[0].seq, receipts[-1].seq
    for i, r in enumerate(receipts):
        if r.owner != department or r.seq != first + i:
            raise ValueError("a batch holds the department's receipts in order, without gaps")
    header = {
        "format": MANIFEST_FORMAT,
        "department": department,
        "first_seq": first,
        "last_seq": last,
        "count": len(receipts),
        "chain_id": int(chain_id),
        "ledger": str(ledger),
        "tree": TREE,
    }
    leaves = [r.leaf() for r in receipts]
    body = b"\n".join([canonical_json(header), *leaves]) + b"\n"
    return body, MerkleTree(leaf_hash(x) for x in leaves).root


def parse_manifest(data: bytes, *, strict: bool = False) -> Manifest:
    """Split a manifest into header and leaves. The leaves are returned as
    stored (the root is computed over them as they are); each is parsed, and with
    ``strict`` a line that does not parse raises, else it is kept as an
    unparsable leaf for the audit to report."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if not lines:
        raise ManifestError("The manifest is empty.")
    try:
        header = json.loads(lines[0])
    except ValueError:
        raise ManifestError("The manifest's header line is not JSON.") from None
    if not isinstance(header, dict) or header.get("format") != MANIFEST_FORMAT:
        raise ManifestError(f"This is not a {MANIFEST_FORMAT} manifest.")
    leaves = lines[1:]
    receipts: list[ReceiptLeaf] = []
    positions: list[int] = []
    for i, line in enumerate(leaves):
        try:
            receipts.append(ReceiptLeaf.parse(line))
            positions.append(i)
        except ManifestError:
            if strict:
                raise
    return Manifest(header, leaves, receipts, positions)


def uses_per_grant(receipts: Iterable[ReceiptLeaf]) -> list[tuple[int, int]]:
    """``[(grant_id, uses), ...]`` sorted by grant: what ``anchorReceipts`` takes."""
    return sorted(Counter(r.grant_id for r in receipts).items())


# -- EIP-712 digests and signers (docs/exchange.md) ------------------------------------

_DOMAIN_TYPE = keccak(
    b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
_REQUEST_TYPE = keccak(
    b"ExchangeRequest(bytes32 requester,bytes32 owner,uint256 grantId,bytes32 recordId,"
    b"uint256 nonce,uint256 expiresAt)"
)
_RECEIPT_TYPE = keccak(
    b"ExchangeReceipt(bytes32 requestHash,string ciphertextCid,bytes32 capsuleHash,"
    b"uint256 seq,uint256 issuedAt)"
)


_ACK_TYPE = keccak(b"ExchangeAck(bytes32 requestHash,string ciphertextCid,uint256 ackedAt)")


def _u256(v: int) -> bytes:
    return int(v).to_bytes(32, "big")


def _code32(code: str) -> bytes:
    raw = code.encode("ascii")
    if not 0 < len(raw) <= 32:
        raise ValueError("department code")
    return raw.ljust(32, b"\0")


def _b32(hex_text: str) -> bytes:
    b = bytes.fromhex(hex_text[2:] if hex_text.startswith("0x") else hex_text)
    if len(b) != 32:
        raise ValueError("not 32 bytes")
    return b


def domain_separator(chain_id: int, verifying_contract: str, name: str = "govshare") -> bytes:
    """``hashStruct(EIP712Domain)`` of govshare's exchange domain (version 1)."""
    return keccak(
        _DOMAIN_TYPE
        + keccak(name.encode())
        + keccak(b"1")
        + _u256(chain_id)
        + bytes.fromhex(verifying_contract[2:].rjust(64, "0"))
    )


def request_digest(separator: bytes, r: ReceiptLeaf) -> bytes:
    """The EIP-712 digest of the exchange request a receipt answers."""
    struct = keccak(
        _REQUEST_TYPE
        + _code32(r.requester)
        + _code32(r.owner)
        + _u256(r.grant_id)
        + _b32(r.record_id)
        + _u256(int(r.nonce or 0))
        + _u256(int(r.request_expires_at or 0))
    )
    return keccak(b"\x19\x01" + separator + struct)


def receipt_digest(separator: bytes, r: ReceiptLeaf) -> bytes:
    """The EIP-712 digest of the owner's ExchangeReceipt."""
    struct = keccak(
        _RECEIPT_TYPE
        + _b32(r.request_hash)
        + keccak(r.ciphertext_cid.encode("utf-8"))
        + _b32(r.capsule_hash)
        + _u256(r.seq)
        + _u256(r.issued_at)
    )
    return keccak(b"\x19\x01" + separator + struct)


def ack_digest(separator: bytes, r: ReceiptLeaf) -> bytes:
    """The EIP-712 digest of the requester's ExchangeAck of this receipt."""
    struct = keccak(
        _ACK_TYPE
        + _b32(r.request_hash)
        + keccak(r.ciphertext_cid.encode("utf-8"))
        + _u256(int(r.acked_at or 0))
    )
    return keccak(b"\x19\x01" + separator + struct)


def recover_signer(digest: bytes, signature: str) -> str | None:
    """The (lower-case) address that signed ``digest``, or None when the
    signature is malformed or recovers to nothing. Low-s is not required here:
    malleability does not matter for an audit (the digest is what is checked)."""
    if not isinstance(signature, str) or not _SIG.fullmatch(signature):
        return None
    raw = bytes.fromhex(signature[2:])
    v = raw[64]
    recid = v - 27 if v >= 27 else v
    if recid not in (0, 1):
        return None
    try:
        pub = PublicKey.from_signature_and_message(raw[:64] + bytes([recid]), digest, hasher=None)
    except Exception:  # noqa: BLE001 — coincurve raises plain Exception for non-points
        return None
    return "0x" + keccak(pub.format(compressed=False)[1:])[-20:].hex()


def is_hex32(value: Any) -> bool:
    return isinstance(value, str) and bool(_HEX32.fullmatch(value))
