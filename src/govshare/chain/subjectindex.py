"""Which records are about which subject: the ledger mirror's index for finding
an owner's records of a category about a subject (``govshare record find``).

    index = SubjectIndex()                       # a projection of the one Mirror
    records_about(engine, "TAX", "tax-clearance", "0x5f…")   # newest first

A subject is never on chain in clear: records carry the consortium's keyed
reference (:mod:`govshare.broker.subjects`), so only a member holding the
subject key can compute the reference to look up; the index holds references,
never ids. Two sources, one answer:

* records written on chain (``RecordAnchored``: anchored alone, or materialised
  from a batch) — kept in ``mirror_subject_records`` by this projection, in the
  mirror's own transaction (a rewind removes what came from rewound blocks);
* records of anchored batches whose manifests the batch index has read and
  checked against the chain's root (``mirror_batch_records``).

A record in both (a batched record since materialised) is listed once, at its
batch. Values come from other members' events and manifests: they are stored
only when well formed (32-byte hex, a category label), and bounded where read.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection as DbConnection
from sqlalchemy.engine import Engine

from govshare.chain.batchindex import mirror_batch_records, mirror_record_batches
from govshare.chain.contracts import decode_category, decode_code
from govshare.chain.mirror import IndexedEvent, Projection, metadata

_HEX32 = re.compile(r"0x[0-9a-f]{64}")
_ZERO = "0x" + "0" * 64
#: At most this many records are listed for one subject and category.
MAX_LISTED = 500

#: Records written on chain, by the subject they are about (non-zero references only).
mirror_subject_records = sa.Table(
    "mirror_subject_records",
    metadata,
    sa.Column("record_id", sa.String(66), primary_key=True),
    sa.Column("department", sa.String(16), nullable=False),
    sa.Column("category", sa.String(32), nullable=False),
    sa.Column("subject_ref", sa.String(66), nullable=False),
    sa.Column("previous_record_id", sa.String(66), nullable=True),
    sa.Column("block_number", sa.BigInteger, nullable=False),
    sa.Index("ix_mirror_subject_records_subject", "department", "category", "subject_ref"),
    sa.Index("ix_mirror_subject_records_block", "block_number"),
)


@dataclass(frozen=True)
class SubjectRecord:
    """One record about the subject, as the chain and the manifests say."""

    record_id: str
    department: str
    category: str
    previous_record_id: str | None
    superseded_by: str | None  # the listed record that names this one as its previous
    block_number: int  # where it was committed to: its batch's block, or its own anchor's
    batch_sequence: int | None  # its batch, if it was anchored in one
    leaf_index: int | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _row(ev: IndexedEvent) -> dict[str, Any] | None:
    a = ev.args
    rid, dept, cat, ref, prev = (
        a.get("recordId"), a.get("department"), a.get("category"), a.get("subjectRef"),
        a.get("previousRecordId"),
    )  # fmt: skip
    if not all(isinstance(v, str) and _HEX32.fullmatch(v) for v in (rid, dept, cat, ref)):
        return None
    assert isinstance(rid, str) and isinstance(dept, str)
    assert isinstance(cat, str) and isinstance(ref, str)
    if ref == _ZERO:
        return None
    code = decode_code(bytes.fromhex(dept[2:]))
    category = decode_category(bytes.fromhex(cat[2:]))
    if not code or not category or len(category) > 32:
        return None
    previous = prev if isinstance(prev, str) and _HEX32.fullmatch(prev) and prev != _ZERO else None
    return {
        "record_id": rid,
        "department": code,
        "category": category,
        "subject_ref": ref,
        "previous_record_id": previous,
        "block_number": ev.block_number,
    }


class SubjectIndex(Projection):
    """Keeps ``mirror_subject_records`` from ``RecordAnchored`` events."""

    def apply(
        self, db: DbConnection, events: Sequence[IndexedEvent], prepared: Any, head: int
    ) -> None:
        rows = [
            r
            for ev in events
            if ev.contract == "RecordRegistry" and ev.event == "RecordAnchored"
            for r in [_row(ev)]
            if r is not None
        ]
        if not rows:
            return
        t = mirror_subject_records
        # A record id is anchored once; one seen again was rewound and mined anew.
        db.execute(sa.delete(t).where(t.c.record_id.in_([r["record_id"] for r in rows])))
        db.execute(sa.insert(t), rows)

    def apply_rewind(
        self, db: DbConnection, removed: Sequence[IndexedEvent], prepared: Any, fork: int
    ) -> None:
        t = mirror_subject_records
        db.execute(sa.delete(t).where(t.c.block_number > fork))

    def reset(self, db: DbConnection) -> None:
        db.execute(sa.delete(mirror_subject_records))


def records_about(
    engine: Engine, department: str, category: str, subject_ref: str
) -> list[SubjectRecord]:
    """``department``'s records of ``category`` about ``subject_ref`` (0x-hex), newest
    first (by the block that committed to them, then leaf), at most :data:`MAX_LISTED`."""
    ref = subject_ref.lower()
    if not _HEX32.fullmatch(ref):
        raise ValueError("a subject reference is 32 bytes in 0x-hex")
    found: dict[str, SubjectRecord] = {}
    lf, b, t = mirror_batch_records.c, mirror_record_batches.c, mirror_subject_records.c
    with engine.connect() as db:
        batched = db.execute(
            sa.select(
                lf.record_id, lf.previous_record_id, lf.sequence, lf.leaf_index, b.block_number
            )
            .join(
                mirror_record_batches,
                (b.department == lf.department) & (b.sequence == lf.sequence),
            )
            .where(lf.department == department, lf.category == category, lf.subject_ref == ref)
            .order_by(b.block_number.desc(), lf.leaf_index.desc())
            .limit(MAX_LISTED)
        ).all()
        for rid, prev, seq, leaf, block in batched:
            found.setdefault(
                str(rid),
                SubjectRecord(
                    record_id=str(rid),
                    department=department,
                    category=category,
                    previous_record_id=_opt(prev),
                    superseded_by=None,
                    block_number=int(block),
                    batch_sequence=int(seq),
                    leaf_index=int(leaf),
                ),
            )
        single = db.execute(
            sa.select(t.record_id, t.previous_record_id, t.block_number)
            .where(t.department == department, t.category == category, t.subject_ref == ref)
            .order_by(t.block_number.desc())
            .limit(MAX_LISTED)
        ).all()
        for rid, prev, block in single:
            found.setdefault(
                str(rid),
                SubjectRecord(
                    record_id=str(rid),
                    department=department,
                    category=category,
                    previous_record_id=_opt(prev),
                    superseded_by=None,
                    block_number=int(block),
                    batch_sequence=None,
                    leaf_index=None,
                ),
            )
    successor = {r.previous_record_id: r.record_id for r in found.values() if r.previous_record_id}
    listed = [
        SubjectRecord(**{**asdict(r), "superseded_by": successor.get(r.record_id)})
        for r in found.values()
    ]
    listed.sort(key=lambda r: (r.block_number, r.leaf_index or 0), reverse=True)
    return listed[:MAX_LISTED]


def _opt(value: Any) -> str | None:
    return str(value) if value and str(value) != _ZERO else None
