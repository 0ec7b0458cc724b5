"""Anchoring this department's records in batches: one transaction for many.

A publish in batch mode (``Limits.batch_max_records`` > 1, the default) ends
*parked* at its ``anchor`` step: the record is encrypted, stored and held by
this broker, and the clerk is told "accepted, anchoring". :class:`RecordBatcher`
closes a batch of such records — when ``batch_max_records`` wait, when the
oldest has waited ``batch_window`` seconds, or at once when a clerk is waiting
for the answer and no batch is under way (group commit) — and submits one
durable outbox operation of kind ``anchor_record_batch`` for it, in the same
transaction that fixes its members and their leaves:

* ``manifest`` — builds the batch (:func:`govshare.chain.batch.build_batch`:
  RFC 6962 tree, one leaf per record committing to its id, department, SHA-256,
  CID, category, subject reference and previous version) from the members in
  leaf order and stores its manifest (CIDv1, pinned). Run again, the same
  members give the same bytes, CID and root.
* ``anchor`` — the first time, notes the chain's ``batchCount`` for this
  department and sends ``anchorBatch(root, count, cid)``. Run again after a
  crash, it first looks at the batches anchored since that note for one with
  this root and adopts it; only if there is none does it send again.
* ``complete`` — one transaction: the batch is anchored (its sequence, tx and
  block), its records are anchored, and every member's publish operation is
  done, with its record's place (batch sequence, leaf).

A member's publish never names the batch's transaction as its own (the batch
operation's ``anchor`` step does, and the ledger mirror watches it there): when
the chain loses that transaction (a reorg), the batch operation is sent back to
``anchor`` and its members are parked again until it lands once more.

Only one batch operation is under way at a time: batches land in the order
they closed, so a record's previous version is always in the same or an
earlier batch (what materialising it needs). At a few hundred records per
batch, a record costs well under a thousandth of the gas of its own anchor
transaction (``docs/contracts.md``).
"""

from __future__ import annotations

import io
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.orm import Session

from govshare.broker import publish
from govshare.broker.db import (
    BatchState,
    Operation,
    OpState,
    Record,
    RecordBatch,
    RecordStatus,
)
from govshare.broker.faults import crash_point
from govshare.broker.outbox import (
    JSON,
    OperationView,
    StepContext,
    fingerprint,
    finish_parked_many,
    park_again,
)
from govshare.broker.workers import Worker
from govshare.chain.batch import (
    MAX_BATCH_RECORDS,
    BatchedRecordProof,
    BatchManifest,
    BatchRecord,
    build_batch,
)
from govshare.chain.contracts import to_bytes32
from govshare.clock import utcnow
from govshare.errors import IntegrityError

if TYPE_CHECKING:
    from govshare.broker.services import BrokerServices

log = logging.getLogger(__name__)

KIND = "anchor_record_batch"
PRINCIPAL = "system:record-batches"
#: Defaults: a batch closes at this many records, or when its oldest waited this long.
DEFAULT_MAX_RECORDS = 256
DEFAULT_WINDOW = 0.5
#: A failed batch is tried again after this many seconds, doubling up to the second.
RETRY_AFTER = 60.0
MAX_RETRY_AFTER = 3600.0
#: The publish step a member waits at.
ANCHOR_STEP = publish.STEPS.index("anchor")


def register(svc: BrokerServices) -> None:
    """Register the ``anchor_record_batch`` operation kind on ``svc.outbox``."""
    svc.outbox.register(
        KIND,
        [
            ("manifest", lambda ctx: _manifest(svc, ctx)),
            ("anchor", lambda ctx: _anchor(svc, ctx)),
            ("complete", lambda ctx: _complete(svc, ctx)),
        ],
        retry=publish.RETRY,  # as for a single publish: a chain away is waited out for hours
        result=lambda r: {**r["complete"], "tx_hash": r["anchor"]["tx_hash"]},
        on_reopen=lambda s, _op, payload: _reopen(svc, s, payload),
    )


# -- the steps -------------------------------------------------------------------------


def _members(s: Session, batch_id: str) -> list[Record]:
    return list(
        s.scalars(select(Record).where(Record.batch_id == batch_id).order_by(Record.leaf_index))
    )


def _hex32(value: str | None) -> bytes | None:
    return bytes.fromhex(value[2:]) if value else None


def batch_record(dept: str, r: Record) -> BatchRecord:
    """The leaf a stored record becomes in a batch."""
    if r.cid is None:
        raise IntegrityError(f"Record {r.record_id} has no stored payload; it cannot be batched.")
    return BatchRecord(
        record_id=bytes.fromhex(r.record_id[2:]),
        department=dept,
        content_hash=bytes.fromhex(r.sha256),
        cid=r.cid,
        category=r.category,
        subject_ref=_hex32(r.subject_ref),
        previous_record_id=_hex32(r.supersedes),
    )


def _rebuild(svc: BrokerServices, members: Sequence[Record]) -> BatchManifest:
    """The batch of ``members`` (in leaf order): the same bytes, root and CID
    every time, so a step run again and a later proof agree with the chain."""
    return build_batch(
        svc.dept,
        [batch_record(svc.dept, r) for r in members],
        chain_id=svc.ledger.chain_id,
        registry=svc.ledger.records.address.lower(),
    )


def _manifest(svc: BrokerServices, ctx: StepContext) -> JSON:
    bid = str(ctx.payload["batch_id"])
    with svc.db.session(readonly=True) as s:
        batch = s.get(RecordBatch, bid)
        rows = _members(s, bid)
        count = batch.count if batch is not None else -1
        if [r.leaf_index for r in rows] != list(range(count)):
            raise IntegrityError(
                f"Record batch {bid}'s members are not the {count} it was closed with; "
                "it cannot be anchored."
            )
        m = _rebuild(svc, rows)
    cid = svc.store.put(io.BytesIO(m.data), cid_version=1)
    return {"cid": str(cid), "root": "0x" + m.root.hex(), "count": m.count, "size": len(m.data)}


def _find(svc: BrokerServices, since: int, root: str) -> int | None:
    """The sequence of this department's batch with ``root`` anchored after the
    first ``since`` (sequences count from 1)."""
    records = svc.ledger.records
    for seq in range(records.batch_count(svc.dept), since, -1):
        if "0x" + records.batch_root(svc.dept, seq).hex() == root:
            return seq
    return None


def _anchor(svc: BrokerServices, ctx: StepContext) -> JSON:
    bid = str(ctx.payload["batch_id"])
    m = ctx.results["manifest"]
    root, cid, count = str(m["root"]), str(m["cid"]), int(m["count"])
    records = svc.ledger.records
    with svc.db.session(readonly=True) as s:
        batch = s.get(RecordBatch, bid)
        since = batch.chain_count_before if batch is not None else None
    if since is not None:
        # Sent before (maybe): the chain says whether it landed.
        seq = _find(svc, since, root)
        if seq is not None:
            b = records.get_batch(svc.dept, seq)
            if b.manifest_cid != cid or b.count != count:
                raise IntegrityError(
                    f"{svc.dept}'s batch {seq} has this batch's root but another manifest "
                    "or count: investigate before anchoring more."
                )
            log.info("record batches: adopted batch %d (%d records) found on chain", seq, count)
            return {"sequence": seq, "root": root, "tx_hash": None, "block_number": None}
    else:
        since = records.batch_count(svc.dept)
        with svc.db.session() as s:
            s.execute(
                update(RecordBatch)
                .where(RecordBatch.id == bid)
                .values(chain_count_before=since, updated_at=utcnow(svc.clock))
            )
    pending = records.submit_anchor_batch(svc.account, root, count, cid)
    crash_point("batch.anchor_sent")
    tx = pending.wait()
    crash_point("batch.anchor_receipt")
    seq = int(tx.event("RecordBatchAnchored").args["sequence"])
    return {"sequence": seq, "root": root, "tx_hash": tx.tx_hash, "block_number": tx.block_number}


def _complete(svc: BrokerServices, ctx: StepContext) -> JSON:
    bid = str(ctx.payload["batch_id"])
    a, m = ctx.results["anchor"], ctx.results["manifest"]
    seq = int(a["sequence"])
    tx_hash = a.get("tx_hash")
    block = a.get("block_number")
    if block is None:  # adopted: the batch's event has the block (or the head will do)
        block = svc.ledger.block_number()
    now = utcnow(svc.clock)
    kinds = svc.outbox.kinds()
    with svc.db.session() as s:
        batch = s.get(RecordBatch, bid)
        if batch is None:
            raise IntegrityError(f"Record batch {bid} is not in the database.")
        batch.state = BatchState.ANCHORED.value
        batch.sequence, batch.tx_hash, batch.block_number = seq, tx_hash, int(block)
        batch.manifest_cid, batch.merkle_root = str(m["cid"]), str(a["root"])
        batch.anchored_at = batch.updated_at = now
        rows = s.execute(
            select(
                Record.record_id,
                Record.leaf_index,
                Record.sha256,
                Record.size,
                Record.cid,
                Record.operation_id,
            ).where(Record.batch_id == bid)
        ).all()
        s.execute(
            update(Record)
            .where(Record.batch_id == bid)
            .values(
                status=RecordStatus.ANCHORED.value,
                anchor_tx=tx_hash,
                anchor_block=int(block),
                batch_seq=seq,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        done = []
        for r in rows:
            if not r.operation_id:
                continue
            place = {"sequence": seq, "leaf_index": r.leaf_index, "manifest_cid": str(m["cid"])}
            out = {"record_id": r.record_id, "batch": place, "batch_tx": tx_hash}
            final = {
                "record_id": r.record_id,
                "sha256": r.sha256,
                "size": int(r.size),
                "cid": r.cid,
                "tx_hash": tx_hash,
                "block_number": int(block),
                "batch": place,
            }
            done.append((r.operation_id, out, final))
        finish_parked_many(s, kinds[publish.KIND], done, now)
    svc.record_batcher.landed()
    log.info("record batches: %d record(s) anchored as batch %d", len(rows), seq)
    return {"batch_id": bid, "sequence": seq, "count": len(rows), "block_number": int(block)}


def _reopen(svc: BrokerServices, s: Session, payload: Mapping[str, Any]) -> None:
    """The chain lost this batch's transaction: the batch, its records and their
    publishes wait for it to land again (the ``anchor`` step looks first)."""
    bid = str(payload["batch_id"])
    now = utcnow(svc.clock)
    s.execute(
        update(RecordBatch)
        .where(RecordBatch.id == bid)
        .values(
            state=BatchState.CLOSED.value,
            sequence=None,
            tx_hash=None,
            block_number=None,
            anchored_at=None,
            updated_at=now,
        )
    )
    kinds = svc.outbox.kinds()
    for r in _members(s, bid):
        r.status = RecordStatus.STORED.value
        r.anchor_tx = r.anchor_block = r.batch_seq = None
        r.updated_at = now
        op = s.get(Operation, r.operation_id) if r.operation_id else None
        if op is not None and op.state == OpState.DONE.value:
            park_again(s, op, kinds, publish.PARK, now)


# -- deciding and driving ----------------------------------------------------------------


@dataclass(frozen=True)
class BatchDecision:
    """What :meth:`RecordBatcher.run_once` did."""

    action: str  # "none", "waiting", "busy", "submitted", "retried"
    count: int = 0
    #: The batch submitted, or the one under way (driven as far as it went).
    operation: OperationView | None = None


class RecordBatcher(Worker):
    """Closes batches of parked publishes and drives their anchoring.

    ``start()`` runs a thread that wakes when a publish is parked
    (:meth:`notify`), when the oldest waiting record's window runs out, and every
    ``interval`` seconds; without the thread, a clerk waiting for an anchor
    drives the batch from its own request (:meth:`wait_anchored`). Ages are read
    on ``svc.clock``.
    """

    name = "record-batcher"

    def __init__(
        self,
        svc: BrokerServices,
        *,
        max_records: int = DEFAULT_MAX_RECORDS,
        window: float = DEFAULT_WINDOW,
        interval: float = 2.0,
    ) -> None:
        if not 1 <= max_records <= MAX_BATCH_RECORDS:
            raise ValueError(f"max_records is 1 to {MAX_BATCH_RECORDS}")
        if not 0 <= window <= 3600:
            raise ValueError("window is 0 to 3600 seconds")
        super().__init__(interval=interval, log=log)
        self.svc = svc
        self.max_records = max_records
        self.window = window
        self._lock = threading.Lock()  # one batch decision at a time
        self._landed = threading.Condition()
        self._waiters = 0
        self._due_in: float | None = None

    # -- signals ----------------------------------------------------------------------

    def landed(self) -> None:
        """A batch completed: wake the clerks waiting for their anchors."""
        with self._landed:
            self._landed.notify_all()

    # -- one round --------------------------------------------------------------------

    def _busy(self) -> OperationView | None:
        with self.svc.db.session(readonly=True) as s:
            op_id = s.scalar(
                select(Operation.id)
                .where(
                    Operation.kind == KIND,
                    Operation.state.in_([OpState.PENDING.value, OpState.RUNNING.value]),
                )
                .order_by(Operation.created_at)
                .limit(1)
            )
        return self.svc.outbox.get(op_id) if op_id else None

    def _waiting_query(self) -> Any:
        return (
            select(Record.record_id, Record.created_at)
            .join(Operation, Operation.id == Record.operation_id)
            .where(
                Record.anchor_mode == publish.BATCH_MODE,
                Record.batch_id.is_(None),
                Record.status == RecordStatus.STORED.value,
                Operation.step == ANCHOR_STEP,
                Operation.state.in_([OpState.PENDING.value, OpState.RUNNING.value]),
            )
        )

    def waiting(self) -> tuple[int, float | None]:
        """How many parked records no batch holds yet, and the oldest one's age."""
        q = self._waiting_query().subquery()
        with self.svc.db.session(readonly=True) as s:
            n, oldest = s.execute(select(func.count(), func.min(q.c.created_at))).one()
        if not n:
            return 0, None
        when = oldest.astimezone(UTC).timestamp() if oldest is not None else self.svc.clock.now()
        return int(n), max(0.0, self.svc.clock.now() - when)

    def run_once(self, *, force: bool = False) -> BatchDecision:
        """Drive the batch under way; else close the next one if it is due
        (``force``: whatever waits, now) and drive it as far as it goes."""
        with self._lock:
            self._due_in = None  # the thread's next look: its interval, unless said below
            busy = self._busy()
            if busy is not None:
                if busy.state is OpState.PENDING and busy.next_attempt_at.timestamp() <= (
                    self.svc.clock.now()
                ):
                    busy = self.svc.outbox.run(busy.id, wait=False)
                if not busy.finished:
                    return BatchDecision("busy", operation=busy)
            retried = self._retry_failed()
            if retried is not None:
                return BatchDecision("retried", retried[1], retried[0])
            n, age = self.waiting()
            if not n:  # (having driven the batch under way to its end, if there was one)
                return BatchDecision("none", operation=busy)
            due = force or n >= self.max_records or (age or 0.0) >= self.window
            if not (due or self._waiters):
                self._due_in = self.window - (age or 0.0)
                return BatchDecision("waiting", n)
            closed = self._close()
            if closed is None:
                return BatchDecision("none")
            op, count = closed
            op = self.svc.outbox.run(op.id, wait=False)
            self._due_in = 0.0  # more may wait already
            return BatchDecision("submitted", count, op)

    def _retry_failed(self) -> tuple[OperationView, int] | None:
        """A batch whose operation failed (its department suspended, say) still
        holds accepted records: it is tried again — after ``RETRY_AFTER`` seconds,
        doubling with each failure up to ``MAX_RETRY_AFTER`` — under a numbered
        key, and driven now. None when no batch is due."""
        svc = self.svc
        with svc.db.session(readonly=True) as s:
            row = s.execute(
                select(
                    RecordBatch.id,
                    RecordBatch.count,
                    Operation.idempotency_key,
                    Operation.finished_at,
                )
                .join(Operation, Operation.id == RecordBatch.operation_id)
                .where(
                    RecordBatch.state == BatchState.CLOSED.value,
                    Operation.state == OpState.FAILED.value,
                )
                .order_by(RecordBatch.created_at)
                .limit(1)
            ).first()
        if row is None:
            return None
        bid, count, key, finished = row
        tries = int(key.rsplit(":retry-", 1)[1]) if ":retry-" in key else 0
        wait = min(MAX_RETRY_AFTER, RETRY_AFTER * 2**tries)
        if finished is not None and svc.clock.now() - finished.timestamp() < wait:
            return None

        def point(s: Session, op_id: str) -> None:
            s.execute(
                update(RecordBatch)
                .where(RecordBatch.id == bid)
                .values(operation_id=op_id, updated_at=utcnow(svc.clock))
            )

        op = self._submit(bid, f"record-batch:{bid}:retry-{tries + 1}", point)
        log.warning("record batches: trying batch %s again (attempt %d)", bid, tries + 2)
        return svc.outbox.run(op.id, wait=False), int(count)

    def _submit(self, bid: str, key: str, also: Callable[[Session, str], None]) -> OperationView:
        """Submit batch ``bid``'s operation under ``key``, with ``also`` (given the
        operation's id) in the transaction that creates it."""
        op_id = uuid.uuid4().hex
        payload = {"batch_id": bid}
        sub = self.svc.outbox.submit(
            KIND,
            key,
            PRINCIPAL,
            fingerprint(payload),
            payload,
            run=False,
            op_id=op_id,
            also=lambda s: also(s, op_id),
        )
        return sub.operation

    def _close(self) -> tuple[OperationView, int] | None:
        """Fix the next batch's members and submit its operation: one transaction."""
        bid = uuid.uuid4().hex
        picked: list[str] = []

        def assign(s: Session, op_id: str) -> None:
            rows = s.execute(
                self._waiting_query()
                .order_by(Record.created_at, Record.record_id)
                .limit(self.max_records)
            ).all()
            now = utcnow(self.svc.clock)
            s.add(
                RecordBatch(
                    id=bid,
                    state=BatchState.CLOSED.value,
                    count=len(rows),
                    operation_id=op_id,
                    created_at=now,
                    updated_at=now,
                )
            )
            s.flush()
            if not rows:
                return
            # One statement run for every member (executemany), not one each.
            table = cast(Table, Record.__table__)
            s.execute(
                table.update()
                .where(table.c.record_id == bindparam("b_rid"), table.c.batch_id.is_(None))
                .values(batch_id=bid, leaf_index=bindparam("b_leaf"), updated_at=now),
                [{"b_rid": row.record_id, "b_leaf": i} for i, row in enumerate(rows)],
            )
            picked.extend(row.record_id for row in rows)

        op = self._submit(bid, f"record-batch:{bid}", assign)
        if not picked:  # raced with nothing left: an empty batch anchors nothing
            return None
        log.debug("record batches: closed batch %s with %d record(s)", bid, len(picked))
        return op, len(picked)

    # -- waiting for an anchor ------------------------------------------------------------

    def wait_anchored(self, op_id: str, timeout: float) -> OperationView:
        """Wait up to ``timeout`` seconds for a parked publish's batch to land
        (driving it from this thread when no batcher thread runs). Returns the
        operation as it is then."""
        deadline = time.monotonic() + timeout
        self._waiters += 1
        try:
            while True:
                view = self.svc.outbox.get(op_id)
                if view.finished or view.step != ANCHOR_STEP:
                    return view
                left = deadline - time.monotonic()
                if left <= 0 or self._stalled():
                    return view  # "anchoring": it lands when the chain answers again
                if self._thread is None:
                    decision = self.run_once()
                    if not (decision.operation and decision.operation.finished):
                        self._pause(min(left, 0.25))  # a retry's back-off, another leader
                else:
                    self.notify()
                    self._pause(min(left, 1.0))
        finally:
            self._waiters -= 1

    def _stalled(self) -> bool:
        """Whether the batch under way waits for a retry (the chain is away)."""
        busy = self._busy()
        return busy is not None and bool((busy.error or {}).get("retryable"))

    def _pause(self, seconds: float) -> None:
        with self._landed:
            self._landed.wait(seconds)

    # -- the thread -------------------------------------------------------------------

    def _next_wait(self) -> float:
        """Until the oldest waiting record's window runs out (as the last round
        found it), or the interval: no query of its own on the hot path."""
        if self._due_in is None:
            return self.interval
        return max(0.005, min(self.interval, self._due_in))


def proof_of(svc: BrokerServices, record_id: bytes | str) -> BatchedRecordProof | None:
    """This department's own batched record's place and audit path, from this
    broker's database (its batch's members rebuild the manifest exactly), or None
    when the record is not in an anchored batch of this broker's."""
    rid = "0x" + to_bytes32(record_id, "record id", allow_zero=False).hex()
    with svc.db.session(readonly=True) as s:
        row = s.get(Record, rid)
        if row is None or row.batch_id is None or row.batch_seq is None:
            return None
        m = _rebuild(svc, _members(s, row.batch_id))
        seq = int(row.batch_seq)
    return m.locate(bytes.fromhex(rid[2:]), seq)
