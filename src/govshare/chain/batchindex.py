"""The ledger mirror's index of record batches: which records each anchored
batch holds, read from its manifest and checked against the chain's root.

    index = BatchIndex(sources)                 # a projection of the one Mirror
    mirror = Mirror(conn, deployment, engine, projections=[index, ...])
    mirror.run_once()                           # stores events, then indexes new manifests
    index.locate(record_id)                     # BatchedRecordProof for materialise, or None
    index.by_content_hash(sha256)               # batched records with that content
    index.problems()                            # batches whose manifest is missing or wrong

How it works
------------
* ``apply`` (inside the mirror's range transaction) records every
  ``RecordBatchAnchored`` event as a batch row in state ``pending``: the
  department, sequence, root, count and manifest CID come from the event, so no
  contract state is read.
* ``after_tick`` (outside any transaction, network allowed) fetches up to
  ``per_tick`` pending manifests by CID from the configured sources (any source:
  the bytes must hash to the CID, :class:`govshare.audit.sources.ManifestSources`),
  parses each with ``parse_manifest(department=, count=, root=)`` — the event's
  values — and writes its leaves in one transaction. A manifest no source holds
  turns the batch ``unavailable`` and is tried again later, with a back-off that
  doubles up to ``retry_max`` seconds (by the injected clock); bytes that do hash
  to the CID but do not describe the anchored batch (malformed, another
  department's, another count, not hashing to the root) turn it ``invalid`` for
  good: a CID names one content, so asking again cannot help. Either way the
  tick goes on; auditors see these batches in :meth:`problems`.
* ``apply_rewind`` forgets the batches (and their leaves) whose events were
  rewound; ``reset`` forgets everything.

Every value here came from another member: the event's (decoded totally,
out-of-range values refuse the batch), and the manifest's (parsed totally,
bounded). Problem texts are escaped and cut before they are stored.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection as DbConnection
from sqlalchemy.engine import Engine

from govshare.audit.errors import ManifestError, ManifestUnavailable, RootMismatchError
from govshare.audit.merkle import MerkleTree
from govshare.chain.batch import (
    MAX_BATCH_RECORDS,
    BatchedRecordProof,
    BatchRecord,
    parse_manifest,
)
from govshare.chain.contracts import decode_code
from govshare.chain.mirror import IndexedEvent, Projection, metadata
from govshare.clock import SYSTEM_CLOCK, Clock
from govshare.errors import GovShareError
from govshare.util import printable

if TYPE_CHECKING:
    from govshare.chain.mirror import Mirror

log = logging.getLogger(__name__)

__all__ = [
    "BatchIndex",
    "BatchState",
    "IndexedBatch",
    "IndexedLeaf",
    "ManifestFetcher",
    "mirror_batch_records",
    "mirror_record_batches",
]


class BatchState:
    PENDING = "pending"  # anchored; manifest not read yet
    INDEXED = "indexed"  # manifest read, checked, leaves stored
    UNAVAILABLE = "unavailable"  # no source held the manifest (tried again later)
    INVALID = "invalid"  # the manifest (or the event) does not describe the batch


_STATES = (BatchState.PENDING, BatchState.INDEXED, BatchState.UNAVAILABLE, BatchState.INVALID)
_PROBLEM_MAX = 300
_SOURCE_MAX = 200
_CODE_RE = re.compile(r"[A-Z0-9_]{2,16}")
_HEX32_RE = re.compile(r"0x[0-9a-f]{64}")
_CID_RE = re.compile(r"[\x21-\x7e]{1,128}")
_MAX_SEQUENCE = 2**63 - 1

#: One row per anchored record batch (``RecordBatchAnchored``) and what became of
#: its manifest.
mirror_record_batches = sa.Table(
    "mirror_record_batches",
    metadata,
    sa.Column("department", sa.String(16), primary_key=True),
    sa.Column("sequence", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("merkle_root", sa.String(66), nullable=False),
    sa.Column("count", sa.BigInteger, nullable=False),
    sa.Column("manifest_cid", sa.String(128), nullable=False),
    sa.Column("anchored_by", sa.String(42), nullable=False),
    sa.Column("block_number", sa.BigInteger, nullable=False),
    sa.Column("tx_hash", sa.String(66), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt", sa.Float, nullable=False),
    sa.Column("problem", sa.String(_PROBLEM_MAX), nullable=True),
    sa.Column("source", sa.String(_SOURCE_MAX), nullable=True),
    sa.CheckConstraint("state IN ('pending', 'indexed', 'unavailable', 'invalid')", name="state"),
    sa.Index("ix_mirror_record_batches_state", "state", "next_attempt"),
)

#: The leaves of indexed batches: each record a batch commits to.
mirror_batch_records = sa.Table(
    "mirror_batch_records",
    metadata,
    sa.Column("department", sa.String(16), primary_key=True),
    sa.Column("sequence", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("leaf_index", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("record_id", sa.String(66), nullable=False),
    sa.Column("content_hash", sa.String(66), nullable=False),
    sa.Column("cid", sa.String(128), nullable=False),
    sa.Column("category", sa.String(32), nullable=False),
    sa.Column("subject_ref", sa.String(66), nullable=True),
    sa.Column("previous_record_id", sa.String(66), nullable=True),
    sa.Index("ix_mirror_batch_records_record", "record_id"),
    sa.Index("ix_mirror_batch_records_hash", "content_hash"),
    sa.Index("ix_mirror_batch_records_previous", "previous_record_id"),
    sa.Index("ix_mirror_batch_records_subject", "department", "category", "subject_ref"),
)


class ManifestFetcher(Protocol):
    """Where manifests come from (:class:`govshare.audit.sources.ManifestSources`)."""

    def fetch(self, cid: str) -> tuple[bytes, str]:
        """The bytes under ``cid`` (checked against it) and the source's name;
        raises :class:`ManifestUnavailable` when no source holds them."""
        ...


@dataclass(frozen=True)
class IndexedBatch:
    """One anchored record batch as the index knows it."""

    department: str
    sequence: int
    merkle_root: str
    count: int
    manifest_cid: str
    anchored_by: str
    block_number: int
    tx_hash: str
    state: str
    attempts: int
    problem: str | None
    source: str | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class IndexedLeaf:
    """One record of an indexed batch."""

    batch: IndexedBatch
    leaf_index: int
    record: BatchRecord

    def to_dict(self) -> dict[str, Any]:
        r = self.record
        return {
            "department": r.department,
            "sequence": self.batch.sequence,
            "leaf_index": self.leaf_index,
            "record_id": "0x" + r.record_id.hex(),
            "content_hash": "0x" + r.content_hash.hex(),
            "cid": r.cid,
            "category": r.category,
            "subject_ref": None if r.subject_ref is None else "0x" + r.subject_ref.hex(),
            "previous_record_id": (
                None if r.previous_record_id is None else "0x" + r.previous_record_id.hex()
            ),
            "merkle_root": self.batch.merkle_root,
            "manifest_cid": self.batch.manifest_cid,
            "batch_block": self.batch.block_number,
            "batch_tx_hash": self.batch.tx_hash,
            "batch_anchored_by": self.batch.anchored_by,
        }


def _cut(text: object, n: int) -> str:
    """At most ``n`` characters of a member's value, every one of them printable
    (CIDs, addresses and counts are ASCII when honest; anything else is shown
    escaped, not interpreted)."""
    s = printable(text)
    return "".join(ch if ch.isprintable() else f"\\u{ord(ch):04x}" for ch in s)[:n]


def _code_of(value: Any) -> str | None:
    if not isinstance(value, str) or not _HEX32_RE.fullmatch(value.lower()):
        return None
    try:
        code = decode_code(bytes.fromhex(value[2:]))
    except (ValueError, UnicodeDecodeError):
        return None
    return code if _CODE_RE.fullmatch(code) else None


def _batch_row(ev: IndexedEvent, now: float) -> dict[str, Any] | None:
    """The batch row of a ``RecordBatchAnchored`` event, or None when the event
    names no batch a row could hold (it is logged and skipped)."""
    a = ev.args
    dept = _code_of(a.get("department"))
    seq, count = a.get("sequence"), a.get("count")
    root = a.get("merkleRoot")
    if (
        dept is None
        or not isinstance(seq, int)
        or isinstance(seq, bool)
        or not 0 <= seq <= _MAX_SEQUENCE
        or not isinstance(root, str)
        or not _HEX32_RE.fullmatch(root.lower())
    ):
        log.warning("batch index: skipped a RecordBatchAnchored event in tx %s", ev.tx_hash[:66])
        return None
    cid = a.get("manifestCid")
    problem: str | None = None
    if not isinstance(count, int) or isinstance(count, bool) or not 0 < count <= MAX_BATCH_RECORDS:
        problem = f"The batch claims {_cut(count, 24)} records (1 to {MAX_BATCH_RECORDS} allowed)."
        count = count if isinstance(count, int) and 0 <= count <= _MAX_SEQUENCE else 0
    if not isinstance(cid, str) or not _CID_RE.fullmatch(cid):
        problem = problem or "The batch's manifest CID is not 1-128 printable characters."
    by = a.get("anchoredBy")
    return {
        "department": dept,
        "sequence": seq,
        "merkle_root": root.lower(),
        "count": count,
        "manifest_cid": _cut(cid if isinstance(cid, str) else "", 128),
        "anchored_by": _cut(by if isinstance(by, str) else "", 42),
        "block_number": ev.block_number,
        "tx_hash": ev.tx_hash[:66],
        "state": BatchState.INVALID if problem else BatchState.PENDING,
        "attempts": 0,
        "next_attempt": now,
        "problem": problem,
        "source": None,
    }


def _is_batch_event(ev: IndexedEvent) -> bool:
    return ev.contract == "RecordRegistry" and ev.event == "RecordBatchAnchored"


def _opt(h: str | None) -> bytes | None:
    return None if h is None else bytes.fromhex(h[2:])


def _leaf_rows(dept: str, seq: int, records: Sequence[BatchRecord]) -> list[dict[str, Any]]:
    return [
        {
            "department": dept,
            "sequence": seq,
            "leaf_index": i,
            "record_id": "0x" + r.record_id.hex(),
            "content_hash": "0x" + r.content_hash.hex(),
            "cid": r.cid,
            "category": r.category,
            "subject_ref": None if r.subject_ref is None else "0x" + r.subject_ref.hex(),
            "previous_record_id": (
                None if r.previous_record_id is None else "0x" + r.previous_record_id.hex()
            ),
        }
        for i, r in enumerate(records)
    ]


@dataclass(frozen=True)
class IndexRound:
    """What one round of manifest fetching did."""

    indexed: int = 0
    unavailable: int = 0
    invalid: int = 0
    leaves: int = 0


class BatchIndex(Projection):
    """Indexes each anchored record batch's manifest (see the module docstring).
    One instance serves one :class:`~govshare.chain.mirror.Mirror`."""

    def __init__(
        self,
        sources: ManifestFetcher | None,
        *,
        clock: Clock = SYSTEM_CLOCK,
        per_tick: int = 16,
        retry_base: float = 5.0,
        retry_max: float = 3600.0,
    ) -> None:
        self.sources = sources
        self.clock = clock
        self.per_tick = max(1, int(per_tick))
        self.retry_base = float(retry_base)
        self.retry_max = float(retry_max)
        self._engine: Engine | None = None
        self._read_engine: Engine | None = None
        self.last_round = IndexRound()

    def attach(self, mirror: Mirror) -> None:
        self._engine = mirror.engine
        self._read_engine = mirror.read_engine

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise RuntimeError("the batch index is not attached to a mirror")
        return self._engine

    @property
    def read_engine(self) -> Engine:
        return self._read_engine or self.engine

    # -- the projection ----------------------------------------------------------------

    def apply(
        self, db: DbConnection, events: Sequence[IndexedEvent], prepared: Any, head: int
    ) -> None:
        now = self.clock.now()
        rows = [r for ev in events if _is_batch_event(ev) for r in [_batch_row(ev, now)] if r]
        for row in rows:
            # A (department, sequence) already held was rewound and mined again: the
            # newer event wins (its manifest may differ).
            key = (mirror_record_batches.c.department == row["department"]) & (
                mirror_record_batches.c.sequence == row["sequence"]
            )
            db.execute(
                sa.delete(mirror_batch_records).where(
                    (mirror_batch_records.c.department == row["department"])
                    & (mirror_batch_records.c.sequence == row["sequence"])
                )
            )
            db.execute(sa.delete(mirror_record_batches).where(key))
            db.execute(sa.insert(mirror_record_batches).values(**row))

    def apply_rewind(
        self, db: DbConnection, removed: Sequence[IndexedEvent], prepared: Any, fork: int
    ) -> None:
        for ev in removed:
            if not _is_batch_event(ev):
                continue
            b = mirror_record_batches.c
            gone = db.execute(
                sa.select(b.department, b.sequence).where(b.tx_hash == ev.tx_hash[:66])
            ).all()
            for dept, seq in gone:
                lf = mirror_batch_records.c
                db.execute(
                    sa.delete(mirror_batch_records).where(
                        (lf.department == dept) & (lf.sequence == seq)
                    )
                )
                db.execute(
                    sa.delete(mirror_record_batches).where(
                        (b.department == dept) & (b.sequence == seq)
                    )
                )

    def reset(self, db: DbConnection) -> None:
        db.execute(sa.delete(mirror_batch_records))
        db.execute(sa.delete(mirror_record_batches))

    def after_tick(self, checkpoint: int, head: int) -> None:
        self.last_round = self.index_pending()

    # -- reading manifests -------------------------------------------------------------

    def index_pending(self, limit: int | None = None) -> IndexRound:
        """Fetch, check and index up to ``limit`` (``per_tick``) batches that are due.
        Never raises for what a source or a manifest does."""
        if self.sources is None:
            return IndexRound()
        b = mirror_record_batches.c
        now = self.clock.now()
        with self.read_engine.connect() as db:
            due = db.execute(
                sa.select(
                    b.department,
                    b.sequence,
                    b.merkle_root,
                    b.count,
                    b.manifest_cid,
                    b.tx_hash,
                    b.attempts,
                )
                .where(
                    b.state.in_([BatchState.PENDING, BatchState.UNAVAILABLE]),
                    b.next_attempt <= now,
                )
                .order_by(b.next_attempt, b.block_number)
                .limit(limit or self.per_tick)
            ).all()
        counts = {"indexed": 0, "unavailable": 0, "invalid": 0, "leaves": 0}
        for dept, seq, root, count, cid, tx, attempts in due:
            state, values, leaves = self._read_one(
                str(dept), int(seq), str(root), int(count), str(cid), int(attempts)
            )
            with self.engine.begin() as db:
                res = db.execute(
                    sa.update(mirror_record_batches)
                    .where(b.department == dept, b.sequence == seq, b.tx_hash == tx)
                    .values(state=state, **values)
                )
                if res.rowcount and leaves:
                    db.execute(sa.insert(mirror_batch_records), leaves)
            counts[state] += 1
            counts["leaves"] += len(leaves)
        return IndexRound(**counts)

    def _read_one(
        self, dept: str, seq: int, root: str, count: int, cid: str, attempts: int
    ) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
        assert self.sources is not None
        tries = attempts + 1
        try:
            data, source = self.sources.fetch(cid)
        except ManifestUnavailable as exc:
            wait = min(self.retry_max, self.retry_base * 2 ** min(attempts, 30))
            return (
                BatchState.UNAVAILABLE,
                {
                    "attempts": tries,
                    "next_attempt": self.clock.now() + wait,
                    "problem": _cut(exc.message, _PROBLEM_MAX),
                },
                [],
            )
        except (GovShareError, OSError, ValueError) as exc:  # a source misbehaving
            wait = min(self.retry_max, self.retry_base * 2 ** min(attempts, 30))
            return (
                BatchState.UNAVAILABLE,
                {
                    "attempts": tries,
                    "next_attempt": self.clock.now() + wait,
                    "problem": _cut(f"A manifest source failed ({type(exc).__name__}).", 300),
                },
                [],
            )
        base = {"attempts": tries, "source": _cut(source, _SOURCE_MAX)}
        try:
            m = parse_manifest(data, department=dept, count=count, root=bytes.fromhex(root[2:]))
        except RootMismatchError:
            problem = "The manifest's records do not hash to the batch's anchored root."
            return BatchState.INVALID, {**base, "problem": problem}, []
        except ManifestError as exc:
            return BatchState.INVALID, {**base, "problem": _cut(exc.message, _PROBLEM_MAX)}, []
        return BatchState.INDEXED, {**base, "problem": None}, _leaf_rows(dept, seq, m.records)

    # -- queries -----------------------------------------------------------------------

    @staticmethod
    def _batch_of(row: Any) -> IndexedBatch:
        return IndexedBatch(
            department=str(row.department),
            sequence=int(row.sequence),
            merkle_root=str(row.merkle_root),
            count=int(row.count),
            manifest_cid=str(row.manifest_cid),
            anchored_by=str(row.anchored_by),
            block_number=int(row.block_number),
            tx_hash=str(row.tx_hash),
            state=str(row.state),
            attempts=int(row.attempts),
            problem=row.problem,
            source=row.source,
        )

    def batch(self, department: str, sequence: int) -> IndexedBatch | None:
        b = mirror_record_batches.c
        with self.read_engine.connect() as db:
            row = db.execute(
                sa.select(mirror_record_batches).where(
                    b.department == department.upper(), b.sequence == int(sequence)
                )
            ).first()
        return None if row is None else self._batch_of(row)

    def batches(
        self, department: str | None = None, *, states: Sequence[str] | None = None
    ) -> list[IndexedBatch]:
        b = mirror_record_batches.c
        q = sa.select(mirror_record_batches)
        if department is not None:
            q = q.where(b.department == department.upper())
        if states is not None:
            q = q.where(b.state.in_(list(states)))
        with self.read_engine.connect() as db:
            rows = db.execute(q.order_by(b.department, b.sequence)).all()
        return [self._batch_of(r) for r in rows]

    def problems(self, department: str | None = None) -> list[IndexedBatch]:
        """Batches whose manifest is missing (so far) or does not describe them."""
        return self.batches(department, states=[BatchState.UNAVAILABLE, BatchState.INVALID])

    def counts(self) -> dict[str, int]:
        b = mirror_record_batches.c
        with self.read_engine.connect() as db:
            rows = db.execute(sa.select(b.state, sa.func.count()).group_by(b.state)).all()
        out = dict.fromkeys(_STATES, 0)
        out.update({str(s): int(n) for s, n in rows})
        return out

    def _leaves(self, where: Any) -> list[IndexedLeaf]:
        b, lf = mirror_record_batches.c, mirror_batch_records.c
        q = (
            sa.select(mirror_record_batches, lf.leaf_index, lf.record_id, lf.content_hash, lf.cid)
            .add_columns(lf.category, lf.subject_ref, lf.previous_record_id)
            .select_from(
                mirror_batch_records.join(
                    mirror_record_batches,
                    (b.department == lf.department) & (b.sequence == lf.sequence),
                )
            )
            .where(where, b.state == BatchState.INDEXED)
            .order_by(lf.sequence, lf.leaf_index)
        )
        with self.read_engine.connect() as db:
            rows = db.execute(q).all()
        return [
            IndexedLeaf(
                self._batch_of(r),
                int(r.leaf_index),
                BatchRecord(
                    bytes.fromhex(r.record_id[2:]),
                    str(r.department),
                    bytes.fromhex(r.content_hash[2:]),
                    str(r.cid),
                    str(r.category),
                    _opt(r.subject_ref),
                    _opt(r.previous_record_id),
                ),
            )
            for r in rows
        ]

    def leaves_of(self, record_id: bytes | str) -> list[IndexedLeaf]:
        """Every place a record id holds in an indexed batch (normally one; a
        department's retry may have anchored a manifest twice), lowest sequence first."""
        return self._leaves(mirror_batch_records.c.record_id == _hex_id(record_id))

    def successors_of(self, record_id: bytes | str) -> list[IndexedLeaf]:
        """Indexed batched records that name ``record_id`` as their previous version
        (normally at most one: two would be a fork the contract settles by taking
        the first materialised)."""
        return self._leaves(mirror_batch_records.c.previous_record_id == _hex_id(record_id))

    def about_subject(self, subject_ref: bytes | str) -> list[IndexedLeaf]:
        """Every indexed batched record about the subject with this keyed
        reference, in any department and category (``audit subject``)."""
        return self._leaves(mirror_batch_records.c.subject_ref == _hex_id(subject_ref))

    def by_content_hash(self, content_hash: bytes | str) -> list[IndexedLeaf]:
        """Every indexed batched record with this SHA-256 (materialised or not)."""
        return self._leaves(mirror_batch_records.c.content_hash == _hex_id(content_hash))

    def proof_of(self, leaf: IndexedLeaf) -> BatchedRecordProof:
        """``materialise``'s arguments for ``leaf``: its audit path, from the batch's
        stored leaves; raises :class:`RootMismatchError` if they no longer hash to
        the batch's root (the index was tampered with)."""
        lf = mirror_batch_records.c
        batch = self._leaves(
            (lf.department == leaf.batch.department) & (lf.sequence == leaf.batch.sequence)
        )
        tree = MerkleTree(x.record.leaf_hash() for x in batch)
        root = bytes.fromhex(leaf.batch.merkle_root[2:])
        if tree.root != root or len(batch) != leaf.batch.count:
            raise RootMismatchError(root, tree.root, department=leaf.batch.department)
        return BatchedRecordProof(
            leaf.batch.department,
            leaf.batch.sequence,
            leaf.leaf_index,
            leaf.record,
            tuple(tree.inclusion_proof(leaf.leaf_index)),
        )

    def locate(self, record_id: bytes | str) -> BatchedRecordProof | None:
        """The first place (lowest batch sequence) a record holds in an indexed batch,
        with its audit path; None when no indexed batch lists it. What
        :meth:`~govshare.chain.contracts.RecordRegistry.materialise_chain` takes."""
        found = self.leaves_of(record_id)
        return self.proof_of(found[0]) if found else None


def _hex_id(value: bytes | str) -> str:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    return "0x" + str(value).lower().removeprefix("0x")
