"""Record batches: the leaf of a batched record, the batch's RFC 6962 tree and
proofs, and its manifest (docs/contracts.md, "Record batches", is the reference).

A department's broker commits to up to a few hundred records with one
``RecordRegistry.anchorBatch(root, count, manifestCid)``; a record of the batch
is written on chain, as if anchored alone, when someone first needs it there
(a request): ``RecordRegistry.materialise`` with the record's fields and its
audit path, which the contract checks against the anchored root.

**Leaf.** The tree is :mod:`govshare.audit.merkle`'s (RFC 6962, SHA-256); a
record's leaf *data* is the ABI encoding (``abi.encode``) of::

    (bytes32 tag, bytes32 recordId, bytes32 department, bytes32 contentHash,
     string cid, bytes32 category, bytes32 subjectRef, bytes32 previousRecordId)

with ``tag`` = ASCII ``govshare.record-leaf.v1`` zero padded to 32 bytes; its
hash is ``SHA-256(0x00 ‖ data)``. Byte by byte: eight 32-byte head words (the
seven values in order, the fifth word being the offset of the CID, always
``0x100``), then the CID's length in bytes as a 32-byte word, then its UTF-8
bytes zero padded to a multiple of 32 (nothing for an empty CID). Zero words
stand for "no subject" and "no previous version". :meth:`BatchRecord.leaf_data`
builds exactly this, and ``RecordRegistry.recordLeafHash`` computes the same
hash on chain (a test compares them).

**Manifest.** JSON Lines, canonical JSON on each line (sorted keys, no spaces,
ASCII): a header, then one line per record in leaf order::

    {"chain_id":31337,"count":2,"department":"TAX","format":"govshare-record-batch/1",
     "leaf":"govshare.record-leaf.v1","registry":"0x…","tree":"rfc6962-sha256"}
    {"category":"deed","cid":"bafy…","content_hash":"0x…","index":0,
     "previous_record_id":null,"record_id":"0x…","subject_ref":"0x…"}
    {…}

The batch's sequence number is not in it: the manifest's CID is an argument of
``anchorBatch``, so the manifest exists before the chain numbers the batch (a
retry after a crash may land under another number). The chain binds them: the
``RecordBatchAnchored`` event (and ``getBatch``) pairs each ``(department,
sequence)`` with its root, count and manifest CID. :func:`parse_manifest` is
total: any input, however hostile, parses or raises :class:`ManifestError`
(or :class:`RootMismatchError` when it does not hash to the expected root).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from govshare.audit.errors import ManifestError, RootMismatchError
from govshare.audit.merkle import MerkleTree, leaf_hash

__all__ = [
    "LEAF_TAG",
    "MANIFEST_FORMAT",
    "MAX_BATCH_RECORDS",
    "MAX_CID_LENGTH",
    "MAX_MANIFEST_BYTES",
    "BatchManifest",
    "BatchRecord",
    "BatchedRecordProof",
    "build_batch",
    "parse_manifest",
]

LEAF_TAG_TEXT = "govshare.record-leaf.v1"
LEAF_TAG = LEAF_TAG_TEXT.encode("ascii").ljust(32, b"\0")
MANIFEST_FORMAT = "govshare-record-batch/1"
TREE = "rfc6962-sha256"
#: The most records one batch (and one manifest) may hold: brokers anchor up to 256.
MAX_BATCH_RECORDS = 4096
#: The largest manifest parsed (a record line is under 500 bytes).
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
#: The longest manifest line (a record line has at most about 560 bytes). It also
#: bounds JSON nesting below the interpreter's recursion limit: a line of a
#: hundred thousand ``[`` would otherwise crash the C decoder's stack.
MAX_LINE_BYTES = 1024
#: As ``RecordRegistry.maxCidLength()``.
MAX_CID_LENGTH = 128

_ZERO32 = b"\0" * 32
_CODE_RE = re.compile(r"[A-Z0-9_]{2,16}")
_CATEGORY_RE = re.compile(r"[A-Za-z0-9._-]{1,32}")
_HEX32_RE = re.compile(r"0x[0-9a-f]{64}")
_CID_RE = re.compile(r"[\x21-\x7e]{1,128}")
_ADDRESS_RE = re.compile(r"0x[0-9a-f]{40}")  # lower case: one spelling per manifest
_HEADER_KEYS = frozenset({"chain_id", "count", "department", "format", "leaf", "registry", "tree"})
_LINE_KEYS = frozenset(
    {
        "category",
        "cid",
        "content_hash",
        "index",
        "previous_record_id",
        "record_id",
        "subject_ref",
    }
)


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, ASCII: one byte string per value."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode(
        "ascii"
    )


def _label32(text: str) -> bytes:
    return text.encode("ascii").ljust(32, b"\0")


def _hex(value: bytes | None) -> str | None:
    return None if value is None else "0x" + value.hex()


def _word(n: int) -> bytes:
    return n.to_bytes(32, "big")


@dataclass(frozen=True)
class BatchRecord:
    """One record of a batch: the fields its leaf commits to. Ids and hashes are
    32 bytes; ``None`` is "no subject" / "no previous version" (zero on chain)."""

    record_id: bytes
    department: str
    content_hash: bytes
    cid: str
    category: str
    subject_ref: bytes | None = None
    previous_record_id: bytes | None = None

    def __post_init__(self) -> None:
        for name in ("record_id", "content_hash"):
            v = getattr(self, name)
            if not isinstance(v, bytes) or len(v) != 32 or v == _ZERO32:
                raise ValueError(f"a batched record's {name} is 32 non-zero bytes")
        for name in ("subject_ref", "previous_record_id"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, bytes) or len(v) != 32 or v == _ZERO32):
                raise ValueError(f"a batched record's {name} is None or 32 non-zero bytes")
        if not isinstance(self.department, str) or not _CODE_RE.fullmatch(self.department):
            raise ValueError("a batched record's department is a code of 2-16 [A-Z0-9_]")
        if not isinstance(self.category, str) or not _CATEGORY_RE.fullmatch(self.category):
            raise ValueError("a batched record's category is 1-32 of [A-Za-z0-9._-]")
        if not isinstance(self.cid, str) or not _CID_RE.fullmatch(self.cid):
            raise ValueError("a batched record's CID is 1-128 printable ASCII characters")
        if self.previous_record_id == self.record_id:
            raise ValueError("a record cannot supersede itself")

    def leaf_data(self) -> bytes:
        """``abi.encode(tag, recordId, department, contentHash, cid, category,
        subjectRef, previousRecordId)``, built by hand so the bytes are explicit."""
        cid = self.cid.encode("utf-8")
        padded = cid + b"\0" * (-len(cid) % 32)
        return b"".join(
            [
                LEAF_TAG,
                self.record_id,
                _label32(self.department),
                self.content_hash,
                _word(8 * 32),  # offset of the CID: right after the eight head words
                _label32(self.category),
                self.subject_ref or _ZERO32,
                self.previous_record_id or _ZERO32,
                _word(len(cid)),
                padded,
            ]
        )

    def leaf_hash(self) -> bytes:
        """``SHA-256(0x00 ‖ leaf_data)``: the leaf as the tree and the contract hash it."""
        return leaf_hash(self.leaf_data())

    def to_chain(self) -> tuple[bytes, bytes, str, bytes, bytes, bytes]:
        """The ``BatchLeaf`` struct argument of ``materialise`` (department apart)."""
        return (
            self.record_id,
            self.content_hash,
            self.cid,
            _label32(self.category),
            self.subject_ref or _ZERO32,
            self.previous_record_id or _ZERO32,
        )

    def to_json(self, index: int) -> dict[str, Any]:
        return {
            "category": self.category,
            "cid": self.cid,
            "content_hash": _hex(self.content_hash),
            "index": index,
            "previous_record_id": _hex(self.previous_record_id),
            "record_id": _hex(self.record_id),
            "subject_ref": _hex(self.subject_ref),
        }


@dataclass(frozen=True)
class BatchedRecordProof:
    """Everything ``materialise`` takes for one record: where it sits (department,
    batch sequence, leaf index), its fields and its audit path (leaf upwards)."""

    department: str
    sequence: int
    leaf_index: int
    record: BatchRecord
    proof: tuple[bytes, ...]


@dataclass(frozen=True)
class BatchManifest:
    """A batch: its records in leaf order, their tree, and the manifest bytes."""

    department: str
    records: tuple[BatchRecord, ...]
    header: Mapping[str, Any]
    data: bytes
    tree: MerkleTree = field(repr=False, compare=False)

    @property
    def count(self) -> int:
        return len(self.records)

    @property
    def root(self) -> bytes:
        return self.tree.root

    def index_of(self, record_id: bytes) -> int:
        """The leaf index of ``record_id`` (KeyError when the batch lacks it)."""
        for i, r in enumerate(self.records):
            if r.record_id == record_id:
                return i
        raise KeyError(record_id)

    def proof(self, index: int) -> list[bytes]:
        """The audit path of leaf ``index``."""
        return self.tree.inclusion_proof(index)

    def locate(self, record_id: bytes, sequence: int) -> BatchedRecordProof:
        """``materialise``'s arguments for ``record_id``, this batch being the
        department's batch ``sequence`` (as the chain numbered it)."""
        i = self.index_of(record_id)
        return BatchedRecordProof(
            self.department, int(sequence), i, self.records[i], tuple(self.proof(i))
        )


def _header(
    department: str, count: int, chain_id: int | None, registry: str | None
) -> dict[str, Any]:
    return {
        "chain_id": chain_id,
        "count": count,
        "department": department,
        "format": MANIFEST_FORMAT,
        "leaf": LEAF_TAG_TEXT,
        "registry": registry,
        "tree": TREE,
    }


def build_batch(
    department: str,
    records: Iterable[BatchRecord],
    *,
    chain_id: int | None = None,
    registry: str | None = None,
) -> BatchManifest:
    """The batch of ``records`` (in this leaf order) of ``department``: its tree,
    root and manifest bytes. Every record must be the department's, with a
    distinct id; a version and its predecessor may share the batch, in any order
    (materialisation goes oldest first)."""
    recs = tuple(records)
    if not 0 < len(recs) <= MAX_BATCH_RECORDS:
        raise ValueError(f"a batch holds 1 to {MAX_BATCH_RECORDS} records, not {len(recs)}")
    ids = set()
    successors = set()
    for r in recs:
        if r.department != department:
            raise ValueError(
                f"record 0x{r.record_id.hex()} is {r.department}'s, not {department}'s"
            )
        if r.record_id in ids:
            raise ValueError(f"record 0x{r.record_id.hex()} is in the batch twice")
        ids.add(r.record_id)
        if r.previous_record_id is not None:
            if r.previous_record_id in successors:
                raise ValueError(
                    f"two records of the batch supersede 0x{r.previous_record_id.hex()}"
                )
            successors.add(r.previous_record_id)
    if registry is not None and not _ADDRESS_RE.fullmatch(registry):
        raise ValueError("the registry is an account address in lower case")
    header = _header(department, len(recs), chain_id, registry)
    lines = [canonical_json(header), *(canonical_json(r.to_json(i)) for i, r in enumerate(recs))]
    data = b"\n".join(lines) + b"\n"
    tree = MerkleTree(r.leaf_hash() for r in recs)
    return BatchManifest(department, recs, header, data, tree)


# -- parsing (total on hostile input) ---------------------------------------------------


def _hex32(value: Any, what: str, *, optional: bool) -> bytes | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not _HEX32_RE.fullmatch(value):
        raise ManifestError(f"A batch record's {what} is not 0x and 64 lower-case hex digits.")
    raw = bytes.fromhex(value[2:])
    if raw == _ZERO32:
        raise ManifestError(f"A batch record's {what} is zero (write null for none).")
    return raw


def _whole(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ManifestError(f"The manifest's {what} is not a whole number.")
    return value


def _json_line(line: bytes, what: str) -> Any:
    if len(line) > MAX_LINE_BYTES:
        raise ManifestError(f"The manifest's {what} is over {MAX_LINE_BYTES} bytes.")
    try:
        value = json.loads(line)
    except (ValueError, RecursionError):
        raise ManifestError(f"The manifest's {what} is not JSON.") from None
    if not isinstance(value, dict):
        raise ManifestError(f"The manifest's {what} is not a JSON object.")
    try:
        canonical = canonical_json(value)
    except (ValueError, TypeError, RecursionError):  # pragma: no cover - dicts from JSON
        raise ManifestError(f"The manifest's {what} is not canonical JSON.") from None
    if canonical != line:
        raise ManifestError(f"The manifest's {what} is not canonical JSON.")
    return value


def _parse_record(value: Mapping[str, Any], index: int, department: str) -> BatchRecord:
    if set(value) != _LINE_KEYS:
        raise ManifestError(f"Batch record line {index} has missing or unknown fields.")
    if _whole(value["index"], "record index") != index:
        raise ManifestError(f"Batch record line {index} says it is leaf {value['index']}.")
    cid, category = value["cid"], value["category"]
    if not isinstance(cid, str) or not _CID_RE.fullmatch(cid):
        raise ManifestError(f"Batch record {index}'s CID is not 1-128 printable ASCII characters.")
    if not isinstance(category, str) or not _CATEGORY_RE.fullmatch(category):
        raise ManifestError(f"Batch record {index}'s category is not a valid category.")
    record_id = _hex32(value["record_id"], "record id", optional=False)
    content_hash = _hex32(value["content_hash"], "content hash", optional=False)
    assert record_id is not None and content_hash is not None
    previous = _hex32(value["previous_record_id"], "previous record id", optional=True)
    if previous == record_id:
        raise ManifestError(f"Batch record {index} supersedes itself.")
    subject_ref = _hex32(value["subject_ref"], "subject reference", optional=True)
    try:
        return BatchRecord(
            record_id, department, content_hash, cid, category, subject_ref, previous
        )
    except ValueError as exc:  # every rule is checked above; this keeps the parser total
        raise ManifestError(f"Batch record {index} is not valid ({exc}).") from None


def _check_header(
    header: Mapping[str, Any], department: str | None, count: int | None
) -> tuple[str, int]:
    """The header's department and record count, after checking every field."""
    if set(header) != _HEADER_KEYS:
        raise ManifestError("The batch manifest's header has missing or unknown fields.")
    if header["format"] != MANIFEST_FORMAT:
        raise ManifestError(f"This is not a {MANIFEST_FORMAT} manifest.")
    if header["tree"] != TREE or header["leaf"] != LEAF_TAG_TEXT:
        raise ManifestError("The batch manifest uses another tree or leaf encoding.")
    dept = header["department"]
    if not isinstance(dept, str) or not _CODE_RE.fullmatch(dept):
        raise ManifestError("The batch manifest's department is not a department code.")
    if department is not None and dept != department:
        raise ManifestError(f"The batch manifest is {dept}'s, not {department}'s.")
    n = _whole(header["count"], "count")
    if not 0 < n <= MAX_BATCH_RECORDS:
        raise ManifestError(f"A batch holds 1 to {MAX_BATCH_RECORDS} records, not {n}.")
    if count is not None and n != count:
        raise ManifestError(f"The batch manifest lists {n} records; the chain says {count}.")
    if header["chain_id"] is not None:
        _whole(header["chain_id"], "chain id")
    registry = header["registry"]
    if registry is not None and (
        not isinstance(registry, str) or not _ADDRESS_RE.fullmatch(registry)
    ):
        raise ManifestError("The batch manifest's registry is not an account address.")
    return dept, n


def parse_manifest(
    data: bytes,
    *,
    department: str | None = None,
    count: int | None = None,
    root: bytes | None = None,
) -> BatchManifest:
    """The batch a manifest describes. With ``department``, ``count`` and
    ``root`` (the chain's ``getBatch``), it must be that batch exactly: raises
    :class:`ManifestError` on anything malformed, non-canonical, oversized or
    inconsistent, and :class:`RootMismatchError` when its records do not hash to
    ``root``."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ManifestError("A batch manifest is bytes.")
    raw = bytes(data)
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"The batch manifest is over {MAX_MANIFEST_BYTES} bytes.")
    if not raw.endswith(b"\n"):
        raise ManifestError("The batch manifest does not end with a line break.")
    lines = raw[:-1].split(b"\n")
    header = _json_line(lines[0], "header")
    dept, n = _check_header(header, department, count)
    if len(lines) - 1 != n:
        raise ManifestError(
            f"The batch manifest's header says {n} records; it has {len(lines) - 1}."
        )
    records = []
    ids: set[bytes] = set()
    for i, line in enumerate(lines[1:]):
        rec = _parse_record(_json_line(line, f"record line {i}"), i, dept)
        if rec.record_id in ids:
            raise ManifestError(f"Record 0x{rec.record_id.hex()} is in the batch twice.")
        ids.add(rec.record_id)
        records.append(rec)
    tree = MerkleTree(r.leaf_hash() for r in records)
    if root is not None and tree.root != bytes(root):
        raise RootMismatchError(bytes(root), tree.root, department=dept)
    return BatchManifest(dept, tuple(records), header, raw, tree)


def index_manifests(
    manifests: Mapping[int, BatchManifest],
) -> dict[bytes, BatchedRecordProof]:
    """Every record of a department's batches (``{sequence: manifest}``), by id:
    what :meth:`RecordRegistry.materialise_chain` looks records up in. A record
    listed in two batches keeps its first (lowest sequence) place."""
    out: dict[bytes, BatchedRecordProof] = {}
    for seq in sorted(manifests):
        m = manifests[seq]
        for i, r in enumerate(m.records):
            if r.record_id not in out:
                out[r.record_id] = BatchedRecordProof(m.department, seq, i, r, tuple(m.proof(i)))
    return out


def ordered_for_materialising(items: Sequence[BatchedRecordProof]) -> list[BatchedRecordProof]:
    """``items`` with every record after the version it supersedes (when both
    are listed): an order in which ``materialise`` accepts them all."""
    by_id = {p.record.record_id: p for p in items}
    done: set[bytes] = set()
    out: list[BatchedRecordProof] = []
    for p in items:
        chain: list[BatchedRecordProof] = []
        cur: BatchedRecordProof | None = p
        while cur is not None and cur.record.record_id not in done:
            if cur in chain:
                raise ValueError("the records' previous versions form a cycle")
            chain.append(cur)
            prev = cur.record.previous_record_id
            cur = by_id.get(prev) if prev is not None else None
        for q in reversed(chain):
            done.add(q.record.record_id)
            out.append(q)
    return out
