"""Read models: what the API and the CLI list and show (no chain writes here).

Own records come from the broker's database; another department's record
from the chain (its public anchor). Requests and grants come from
``access_requests``, the local mirror of the chain that
:class:`~govshare.broker.access.RequestSync` keeps; a grant is an approved (or
later revoked) request and keeps its id. A grant whose expiry has passed is
shown as ``expired``, whatever its stored status.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, or_, select

from govshare.broker.db import (
    AccessRequest,
    Database,
    Receipt,
    Record,
    RecordStatus,
    RequestStatus,
)
from govshare.broker.errors import RecordUnknown
from govshare.chain.contracts import to_bytes32
from govshare.clock import SYSTEM_CLOCK, Clock, utcnow
from govshare.errors import InputError
from govshare.util import chain_time

if TYPE_CHECKING:
    from sqlalchemy.orm import Session
    from sqlalchemy.sql.elements import ColumnElement

    from govshare.broker.services import BrokerServices
    from govshare.chain.batch import BatchRecord
    from govshare.chain.batchindex import IndexedLeaf
    from govshare.chain.contracts import Record as ChainRecord

MAX_LIMIT = 500


class Direction(enum.StrEnum):
    INCOMING = "incoming"  # requests for this department's records
    OUTGOING = "outgoing"  # requests this department made


def _iso(d: datetime | None) -> str | None:
    return d.isoformat() if d else None


def batched_leaf(svc: BrokerServices, record_id: str) -> IndexedLeaf | None:
    """Where a record sits in an anchored record batch (its first place), as this
    broker's mirror read the batch's manifest, checked against the chain's root;
    the mirror catches up once first when it does not know the record (one tick:
    the new blocks only). None: in no batch this broker could read."""
    leaves = svc.batches.leaves_of(record_id)
    if not leaves:
        svc.mirror.run_once()  # a batch anchored a moment ago
        leaves = svc.batches.leaves_of(record_id)
    return leaves[0] if leaves else None


def _public_view(rid: str, r: ChainRecord | BatchRecord, **more: Any) -> RecordView:
    """Another department's record as every member may see it: what its anchor
    (on chain, or its leaf in a batch) holds, and ``more``."""
    return RecordView(
        record_id=rid,
        department=r.department,
        category=r.category,
        subject_ref="0x" + r.subject_ref.hex() if r.subject_ref else None,
        sha256=r.content_hash.hex(),
        cid=r.cid,
        status="anchored",
        supersedes="0x" + r.previous_record_id.hex() if r.previous_record_id else None,
        **more,
    )


def _batched_view(svc: BrokerServices, rid: str) -> RecordView | None:
    """Another department's record anchored in a batch (not on chain alone yet)."""
    leaf = batched_leaf(svc, rid)
    if leaf is None:
        return None
    return _public_view(
        rid,
        leaf.record,
        anchor_tx=leaf.batch.tx_hash,
        anchor_block=leaf.batch.block_number,
        batch_sequence=leaf.batch.sequence,
        leaf_index=leaf.leaf_index,
    )


@dataclass(frozen=True)
class RecordView:
    record_id: str
    department: str
    category: str
    subject_ref: str | None
    sha256: str  # hex, of the plaintext
    cid: str | None
    status: str  # pending | stored | anchored | failed (own); anchored (another's)
    supersedes: str | None
    superseded_by: str | None = None
    size: int | None = None
    filename: str | None = None
    media_type: str | None = None
    published_by: str | None = None
    operation_id: str | None = None
    anchor_tx: str | None = None
    anchor_block: int | None = None
    anchored_at: datetime | None = None
    created_at: datetime | None = None
    #: Anchored in a batch (own records in batch mode): its sequence, and the leaf.
    batch_sequence: int | None = None
    leaf_index: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["anchored_at"] = _iso(self.anchored_at)
        d["created_at"] = _iso(self.created_at)
        return d


def _record_view(dept: str, r: Record) -> RecordView:
    return RecordView(
        record_id=r.record_id,
        department=dept,
        category=r.category,
        subject_ref=r.subject_ref or None,
        sha256=r.sha256,
        cid=r.cid,
        status=r.status,
        supersedes=r.supersedes,
        size=r.size,
        filename=r.filename,
        media_type=r.media_type,
        published_by=r.published_by,
        operation_id=r.operation_id,
        anchor_tx=r.anchor_tx,
        anchor_block=r.anchor_block,
        created_at=r.created_at,
        batch_sequence=r.batch_seq,
        leaf_index=r.leaf_index if r.batch_seq is not None else None,
    )


def record_id_text(record_id: bytes | str) -> str:
    """A record id as 0x + 64 lowercase hex digits (raises ``InputError``)."""
    return "0x" + to_bytes32(record_id, "record id", allow_zero=False).hex()


def list_records(
    db: Database,
    dept: str,
    *,
    status: str | None = None,
    category: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[RecordView]:
    """This department's records, newest first."""
    if not 1 <= limit <= MAX_LIMIT or offset < 0:
        raise InputError(f"limit is 1 to {MAX_LIMIT}, offset 0 or more.")
    q = select(Record).order_by(Record.created_at.desc(), Record.record_id)
    if status:
        q = q.where(Record.status == status)
    if category:
        q = q.where(Record.category == category)
    with db.session(readonly=True) as s:
        return [_record_view(dept, r) for r in s.scalars(q.limit(limit).offset(offset))]


def successor_in(s: Session, record_id: str) -> str | None:
    """In ``s``: the own record accepted as the next version of ``record_id``
    (anchored, or still anchoring; not given up)."""
    return s.scalar(
        select(Record.record_id)
        .where(Record.supersedes == record_id, Record.status != RecordStatus.FAILED.value)
        .limit(1)
    )


def own_successor(db: Database, record_id: str) -> str | None:
    with db.session(readonly=True) as s:
        return successor_in(s, record_id)


def own_record(db: Database, dept: str, record_id: bytes | str) -> RecordView | None:
    rid = record_id_text(record_id)
    with db.session(readonly=True) as s:
        row = s.get(Record, rid)
        return _record_view(dept, row) if row is not None else None


def show_record(svc: BrokerServices, record_id: bytes | str) -> RecordView:
    """An own record (from the database, with the chain's version link), or
    another department's public anchor (from the chain)."""
    rid = record_id_text(record_id)
    view = own_record(svc.db, svc.dept, rid)
    if view is not None and view.status != "anchored":
        return view
    if view is not None and view.batch_sequence is not None:
        # anchored in a batch: the version link is this broker's own (a newer version
        # accepted and not given up), whether or not it is on chain yet
        return RecordView(**{**asdict(view), "superseded_by": own_successor(svc.db, rid)})
    if not svc.ledger.records.record_exists(rid):
        if view is not None:
            return view
        leaf = _batched_view(svc, rid)
        if leaf is not None:
            return leaf
        raise RecordUnknown(f"There is no anchored record {rid}.", record_id=rid)
    rec = svc.ledger.records.get_record(rid)
    superseded = "0x" + rec.superseded_by.hex() if rec.superseded_by else None
    if view is not None:
        return RecordView(
            **{
                **asdict(view),
                "superseded_by": superseded,
                "anchored_at": chain_time(rec.anchored_at),
            }
        )
    # The anchoring block is the RecordAnchored event's (the contract keeps none), from
    # the broker's mirror: unknown until the mirror has read that block.
    anchored = svc.mirror.events_for_record(rid, "RecordAnchored")
    return _public_view(
        rid,
        rec,
        superseded_by=superseded,
        anchor_block=anchored[0].block_number if anchored else None,
        anchored_at=chain_time(rec.anchored_at),
    )


@dataclass(frozen=True)
class RequestView:
    id: int
    direction: Direction
    requester: str
    owner: str
    record_id: str
    status: str  # pending | approved | denied | revoked | expired
    purpose: str
    legal_basis: str | None
    deadline: datetime | None
    grant_id: int | None
    expires_at: datetime | None
    max_uses: int | None
    uses: int
    decided_by: str | None
    reason: str | None
    updated_block: int
    # A request by subject: the owner's category and the subject's keyed reference
    # (record_id is then all zeros); latest_only: only the version current when granted.
    category: str | None = None
    subject_ref: str | None = None
    latest_only: bool = False
    decided_at: datetime | None = None

    @property
    def by_subject(self) -> bool:
        return self.subject_ref is not None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["direction"] = self.direction.value
        for k in ("deadline", "expires_at", "decided_at"):
            d[k] = _iso(d[k])
        d["by_subject"] = self.by_subject
        return d


def _effective(row: AccessRequest, now: datetime) -> str:
    if row.status == RequestStatus.APPROVED.value and row.expires_at and row.expires_at <= now:
        return RequestStatus.EXPIRED.value
    return row.status


def _request_view(dept: str, row: AccessRequest, now: datetime, used: int | None) -> RequestView:
    return RequestView(
        id=int(row.request_id),
        direction=Direction.INCOMING if row.owner == dept else Direction.OUTGOING,
        requester=row.requester,
        owner=row.owner,
        record_id=row.record_id,
        status=_effective(row, now),
        purpose=row.purpose,
        legal_basis=row.legal_basis,
        deadline=row.deadline,
        grant_id=int(row.grant_id) if row.grant_id else None,
        expires_at=row.expires_at,
        max_uses=row.max_uses,
        uses=max(row.uses, used or 0),
        decided_by=row.decided_by,
        reason=row.reason,
        updated_block=row.updated_block,
        category=row.category,
        subject_ref=row.subject_ref,
        latest_only=bool(row.latest_only),
        decided_at=row.decided_at,
    )


def _status_filter(status: str, now: datetime) -> ColumnElement[bool]:
    approved = AccessRequest.status == RequestStatus.APPROVED.value
    if status == RequestStatus.EXPIRED.value:
        return and_(approved, AccessRequest.expires_at <= now)
    if status == RequestStatus.APPROVED.value:
        return and_(
            approved, or_(AccessRequest.expires_at.is_(None), AccessRequest.expires_at > now)
        )
    return AccessRequest.status == status


def list_requests(
    db: Database,
    dept: str,
    *,
    direction: Direction | str | None = None,
    status: str | None = None,
    grants_only: bool = False,
    record_id: str | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> list[RequestView]:
    """Requests that concern ``dept`` (incoming: for its records; outgoing: its
    own), newest first; with ``grants_only``, only decided-and-granted ones. A
    grant past its expiry by ``clock`` is shown (and filtered) as expired."""
    if status is not None and status not in {s.value for s in RequestStatus}:
        raise InputError(f"Unknown status {status!r}.")
    now = utcnow(clock)
    q = select(AccessRequest)
    if direction is not None:
        d = Direction(direction)
        q = q.where(
            (AccessRequest.owner if d is Direction.INCOMING else AccessRequest.requester) == dept
        )
    else:
        q = q.where(or_(AccessRequest.owner == dept, AccessRequest.requester == dept))
    if grants_only:
        q = q.where(AccessRequest.grant_id.is_not(None))
    if status:
        q = q.where(_status_filter(status, now))
    if record_id:
        q = q.where(AccessRequest.record_id == record_id_text(record_id))
    with db.session(readonly=True) as s:
        rows = s.scalars(q).all()
        used = _local_uses(s)
        views = [_request_view(dept, r, now, used.get(r.request_id)) for r in rows]
    return sorted(views, key=lambda v: v.id, reverse=True)


def _local_uses(s: Any) -> dict[str, int]:
    """Receipts kept here per grant — issued as owner, or received as requester
    (grant ids are unique on the one AccessLedger): uses not anchored yet."""
    from sqlalchemy import func

    rows = s.execute(select(Receipt.grant_id, func.count()).group_by(Receipt.grant_id))
    return {str(g): int(n) for g, n in rows}


@dataclass(frozen=True)
class ReceiptView:
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
    issued_at: datetime
    requester_signature: str
    owner_signature: str
    batch_id: str | None
    acked_at: datetime | None = None
    ack_signature: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["issued_at"] = _iso(self.issued_at)
        d["acked_at"] = _iso(self.acked_at) if self.acked_at is not None else None
        return d


def list_receipts(
    db: Database,
    *,
    owner: str | None = None,
    grant_id: int | None = None,
    record_id: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[ReceiptView]:
    """Receipts kept by this broker (issued as owner, received as requester)."""
    if not 1 <= limit <= MAX_LIMIT or offset < 0:
        raise InputError(f"limit is 1 to {MAX_LIMIT}, offset 0 or more.")
    q = select(Receipt).order_by(Receipt.owner, Receipt.seq)
    if owner:
        q = q.where(Receipt.owner == owner)
    if grant_id is not None:
        q = q.where(Receipt.grant_id == str(grant_id))
    if record_id:
        q = q.where(Receipt.record_id == record_id_text(record_id))
    with db.session(readonly=True) as s:
        return [
            ReceiptView(
                owner=r.owner,
                seq=r.seq,
                grant_id=int(r.grant_id),
                record_id=r.record_id,
                requester=r.requester,
                request_hash=r.request_hash,
                nonce=r.nonce,
                request_expires_at=r.request_expires_at,
                ciphertext_cid=r.ciphertext_cid,
                capsule_hash=r.capsule_hash,
                issued_at=r.issued_at,
                requester_signature=r.requester_signature,
                owner_signature=r.owner_signature,
                batch_id=r.batch_id,
                acked_at=r.acked_at,
                ack_signature=r.ack_signature,
            )
            for r in s.scalars(q.limit(limit).offset(offset))
        ]
