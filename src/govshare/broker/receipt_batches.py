"""Anchoring this department's receipts: batch, write the manifest, anchor the root.

The owner's broker numbers its receipts 1, 2, … (``serve_exchange``). Every
so often :class:`ReceiptBatcher` takes the receipts the chain does not hold yet
— by count (``max_count`` waiting) or by time (the oldest has waited
``max_age`` seconds) — and submits one durable outbox operation of kind
``anchor_receipts`` for the range ``[first, last]``:

* ``manifest`` — reads the range's receipts, builds the manifest
  (:mod:`govshare.audit.receipts`) and stores it (CIDv1, pinned). Run again, the
  same receipts give the same bytes and the same CID.
* ``anchor`` — asks the chain first: ``lastReceiptSeq`` already at ``last``
  means the batch is there (after a crash): it is found and adopted, its root
  and CID checked; at ``first - 1`` it sends ``anchorReceipts(root, first,
  last, cid, grants, uses)``; anything else is a gap or an overlap and fails.
* ``mark`` — ``receipts.batch_id`` = the batch index, for the range (an
  idempotent UPDATE).

Only one such operation runs at a time: ranges must continue each other on
chain. The range comes from the chain (``lastReceiptSeq + 1``), never from
local notes, so after a crash — even one where the dev chain lost its last
blocks — receipts not on chain are anchored again, and nothing on chain is
anchored twice (the contract would refuse an overlapping range anyway).
"""

from __future__ import annotations

import io
import logging
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from govshare.audit.receipts import ReceiptLeaf, build_manifest, uses_per_grant
from govshare.broker import membership
from govshare.broker.db import OpState, Receipt
from govshare.broker.outbox import JSON, OperationView, StepContext, fingerprint
from govshare.broker.workers import Worker
from govshare.chain.contracts import DepartmentStatus
from govshare.clock import utcnow
from govshare.errors import ContractReverted, IntegrityError

if TYPE_CHECKING:
    from govshare.broker.services import BrokerServices

log = logging.getLogger(__name__)

KIND = "anchor_receipts"
PRINCIPAL = "system:receipts"
#: Defaults: anchor when this many receipts wait, or the oldest waited this long.
DEFAULT_MAX_COUNT = 256
DEFAULT_MAX_AGE = 30.0
#: A batch never holds more than this (a manifest line is about 800 bytes).
HARD_MAX_COUNT = 10_000
#: A failed batch is tried again after ``retry_after`` seconds, doubling with each
#: failure up to this: what failed for good must not be retried (and logged) forever.
MAX_RETRY_AFTER = 3600.0
#: While the department is suspended or removed, the batcher pauses: it asks the
#: registry again after this many seconds (on ``svc.clock``), not every round.
INACTIVE_RECHECK = 300.0


def register(svc: BrokerServices) -> None:
    """Register the ``anchor_receipts`` operation kind on ``svc.outbox``."""
    svc.outbox.register(
        KIND,
        [
            ("manifest", lambda ctx: _manifest(svc, ctx)),
            ("anchor", lambda ctx: _anchor(svc, ctx)),
            ("mark", lambda ctx: _mark(svc, ctx)),
        ],
        result=lambda r: {**r["anchor"], "cid": r["manifest"]["cid"]},
        on_reopen=lambda s, _op, payload: _unmark(svc, s, payload),
    )


def _unmark(svc: BrokerServices, s: Session, payload: Mapping[str, Any]) -> None:
    """The chain lost this batch's anchor: its receipts are unanchored again until
    the anchor step lands (and ``mark`` names the batch it lands as)."""
    first, last = int(payload["first_seq"]), int(payload["last_seq"])
    s.execute(
        update(Receipt)
        .where(Receipt.owner == svc.dept, Receipt.seq >= first, Receipt.seq <= last)
        .values(batch_id=None)
    )


def receipt_leaf(row: Receipt) -> ReceiptLeaf:
    """A stored receipt as a leaf of the log (see ``docs/audit.md``)."""
    return ReceiptLeaf(
        owner=row.owner,
        seq=int(row.seq),
        grant_id=int(row.grant_id),
        record_id=row.record_id,
        requester=row.requester,
        request_hash=row.request_hash,
        nonce=row.nonce,
        request_expires_at=row.request_expires_at,
        ciphertext_cid=row.ciphertext_cid,
        capsule_hash=row.capsule_hash,
        issued_at=int(row.issued_at.timestamp()),
        requester_signature=row.requester_signature,
        owner_signature=row.owner_signature,
        acked_at=int(row.acked_at.timestamp()) if row.acked_at is not None else None,
        ack_signature=row.ack_signature,
    )


def _manifest(svc: BrokerServices, ctx: StepContext) -> JSON:
    first, last = int(ctx.payload["first_seq"]), int(ctx.payload["last_seq"])
    with svc.db.session(readonly=True) as s:
        rows = s.scalars(
            select(Receipt)
            .where(Receipt.owner == svc.dept, Receipt.seq >= first, Receipt.seq <= last)
            .order_by(Receipt.seq)
        ).all()
        leaves = [receipt_leaf(r) for r in rows]
    if [r.seq for r in leaves] != list(range(first, last + 1)):
        raise IntegrityError(
            f"{svc.dept}'s receipts {first} to {last} are not all in the database; "
            "the batch cannot be anchored."
        )
    body, root = build_manifest(svc.dept, svc.ledger.chain_id, svc.ledger.access.address, leaves)
    cid = svc.store.put(io.BytesIO(body), cid_version=1)
    return {
        "cid": str(cid),
        "root": "0x" + root.hex(),
        "uses": [[g, n] for g, n in uses_per_grant(leaves)],
        "size": len(body),
    }


def _find_batch(svc: BrokerServices, first: int, last: int) -> int | None:
    """The index of this department's batch covering exactly ``[first, last]``."""
    access = svc.ledger.access
    for index in range(access.receipt_batch_count(svc.dept), 0, -1):
        b = access.get_receipt_batch(svc.dept, index)
        if b.first_seq == first and b.last_seq == last:
            return index
        if b.last_seq < first:
            return None
    return None


def _adopt(svc: BrokerServices, first: int, last: int, root: str, cid: str) -> JSON | None:
    index = _find_batch(svc, first, last)
    if index is None:
        return None
    b = svc.ledger.access.get_receipt_batch(svc.dept, index)
    if "0x" + b.root.hex() != root or b.manifest_cid != cid:
        raise IntegrityError(
            f"{svc.dept}'s receipts {first} to {last} are anchored on chain with another "
            "root or manifest than this broker computes: investigate before anchoring more."
        )
    return {"batch_index": index, "first_seq": first, "last_seq": last, "root": root}


def _anchor(svc: BrokerServices, ctx: StepContext) -> JSON:
    first, last = int(ctx.payload["first_seq"]), int(ctx.payload["last_seq"])
    m = ctx.results["manifest"]
    root, cid = str(m["root"]), str(m["cid"])
    access = svc.ledger.access
    # Trust the chain, not our notes: it may hold this batch already (a resumed
    # step), or have lost it (the dev chain can drop its last second).
    onchain = access.last_receipt_seq(svc.dept)
    if onchain >= last:
        found = _adopt(svc, first, last, root, cid)
        if found is None:
            raise IntegrityError(
                f"The chain already holds {svc.dept}'s receipts up to {onchain}, but not as "
                f"the batch {first} to {last}: this range cannot be anchored."
            )
        return {**found, "tx_hash": None, "adopted": True}
    if onchain != first - 1:
        raise IntegrityError(
            f"The chain holds {svc.dept}'s receipts up to {onchain}; a batch from {first} "
            "would leave a gap or an overlap."
        )
    uses = [(int(g), int(n)) for g, n in m["uses"]]
    try:
        sent = access.anchor_receipts(svc.account, root, first, last, cid, uses)
    except ContractReverted as exc:
        if exc.reason == "AccessLedgerReceiptRangeNotContiguous":
            found = _adopt(svc, first, last, root, cid)  # a resend raced its twin
            if found is not None:
                return {**found, "tx_hash": None, "adopted": True}
        raise
    log.info(
        "receipts: anchored %s's receipts %d-%d as batch %d", svc.dept, first, last, sent.value
    )
    return {
        "batch_index": sent.value,
        "first_seq": first,
        "last_seq": last,
        "root": root,
        "tx_hash": sent.tx_hash,
        "block_number": sent.tx.block_number,
        "adopted": False,
    }


def _mark(svc: BrokerServices, ctx: StepContext) -> JSON:
    a = ctx.results["anchor"]
    first, last = int(a["first_seq"]), int(a["last_seq"])
    with svc.db.session() as s:
        s.execute(
            update(Receipt)
            .where(Receipt.owner == svc.dept, Receipt.seq >= first, Receipt.seq <= last)
            .values(batch_id=str(a["batch_index"]))
        )
    return {"marked": last - first + 1}


@dataclass(frozen=True)
class BatchDecision:
    """What :meth:`ReceiptBatcher.run_once` did."""

    action: str  # "none", "waiting", "held", "busy", "submitted", "paused"
    first_seq: int | None = None
    last_seq: int | None = None
    operation: OperationView | None = None


class ReceiptBatcher(Worker):
    """Decides when to anchor this department's receipts, and submits the batch.

    ``max_count``: anchor as soon as this many receipts wait (and never more in
    one batch); ``max_age``: anchor whatever waits once the oldest receipt has
    waited this many seconds. ``start()`` runs :meth:`run_once` every
    ``interval`` seconds in a daemon thread; the outbox worker (or this call,
    with ``drive``) runs the submitted operation. A failed batch is retried
    after ``retry_after`` seconds, then twice as long after each failure (up to
    :data:`MAX_RETRY_AFTER`), and its failure is logged once. Ages and waits
    are read on ``svc.clock`` (a test moves it instead of sleeping).

    A receipt is held back until its requester acknowledged the delivery
    (``POST /v1/exchange/ack``) or the resume window (``svc.limits.resume_window``)
    ended since it was issued; the batch then ends before it (ranges are
    contiguous), and ``force`` does not override that. After the window it is
    anchored without acknowledgement: *delivered, unacknowledged*.

    While the department is not active in the registry (suspended or removed:
    the contract refuses its anchors), the batcher pauses instead of sending
    transactions that must fail: it logs that once, asks the registry again every
    ``inactive_recheck`` seconds, and logs once more when the department is
    reinstated and anchoring resumes. Receipts wait meanwhile; none is lost.
    """

    name = "receipt-batcher"

    def __init__(
        self,
        svc: BrokerServices,
        *,
        max_count: int = DEFAULT_MAX_COUNT,
        max_age: float = DEFAULT_MAX_AGE,
        interval: float = 2.0,
        retry_after: float = 60.0,
        inactive_recheck: float = INACTIVE_RECHECK,
    ) -> None:
        if not 1 <= max_count <= HARD_MAX_COUNT:
            raise ValueError(f"max_count is 1 to {HARD_MAX_COUNT}")
        if not (max_age >= 0 and math.isfinite(max_age)):
            raise ValueError("max_age must be a number of seconds")
        super().__init__(interval=interval, log=log)
        self.svc = svc
        self.max_count = max_count
        self.max_age = max_age
        self.retry_after = retry_after
        self.inactive_recheck = inactive_recheck
        #: While paused: the department's status as last read, and when to ask again.
        self.paused: str | None = None
        self._recheck_at = 0.0
        self._lock = threading.Lock()
        self._reported: str | None = None  # the failed operation last logged

    # -- deciding ---------------------------------------------------------------------

    def _busy(self) -> OperationView | None:
        for op in self.svc.outbox.pending():
            if op.kind == KIND:
                return op
        return None

    def run_once(self, *, drive: bool = False, force: bool = False) -> BatchDecision:
        """Submit the next batch if one is due (``force``: whatever waits, now).
        With ``drive``, also run it to the end in this thread."""
        with self._lock:
            if self._inactive():
                return BatchDecision("paused")
            busy = self._busy()
            if busy is not None:
                if drive:
                    busy = self.svc.outbox.run(busy.id, wait=False)
                return BatchDecision("busy", operation=busy)
            svc = self.svc
            onchain = svc.ledger.access.last_receipt_seq(svc.dept)
            with svc.db.session(readonly=True) as s:
                row = s.execute(
                    select(func.count(), func.max(Receipt.seq), func.min(Receipt.issued_at)).where(
                        Receipt.owner == svc.dept, Receipt.seq > onchain
                    )
                ).one()
            waiting, top, oldest = int(row[0] or 0), row[1], row[2]
            if not waiting:
                return BatchDecision("none")
            age = svc.clock.now() - oldest.astimezone(UTC).timestamp() if oldest else 0.0
            if not (force or waiting >= self.max_count or age >= self.max_age):
                return BatchDecision("waiting", onchain + 1, int(top))
            first = onchain + 1
            last = min(int(top), first + self.max_count - 1, self._held_from(onchain) - 1)
            if last < first:  # the next receipt waits for its acknowledgement
                return BatchDecision("held", first, int(top))
            op = self._submit(first, last)
            if op is None:
                return BatchDecision("waiting", first, last)
            if drive and not op.finished:
                op = svc.outbox.run(op.id, wait=True)
            return BatchDecision("submitted", first, last, op)

    def _held_from(self, onchain: int) -> int:
        """The first receipt after ``onchain`` still waiting for its requester's
        acknowledgement — unacknowledged and issued within the resume window —
        or a number past every receipt. Ranges are contiguous, so a batch ends
        before it; once the window ends it is anchored as delivered, unacknowledged."""
        svc = self.svc
        since = utcnow(svc.clock) - timedelta(seconds=svc.limits.resume_window)
        with svc.db.session(readonly=True) as s:
            held = s.scalar(
                select(func.min(Receipt.seq)).where(
                    Receipt.owner == svc.dept,
                    Receipt.seq > onchain,
                    Receipt.ack_signature.is_(None),
                    Receipt.issued_at > since,
                )
            )
        return int(held) if held is not None else 2**63

    def _inactive(self) -> bool:
        """Whether to pause: the department is not active (read at most every
        ``inactive_recheck`` seconds while paused; from the mirror-fed cache
        otherwise, see :mod:`govshare.broker.membership`)."""
        now = self.svc.clock.now()
        if self.paused is not None and now < self._recheck_at:
            return True
        st = membership.status(self.svc)
        if st is DepartmentStatus.ACTIVE:
            if self.paused is not None:
                log.info("receipts: %s is active again; anchoring resumes", self.svc.dept)
                self.paused = None
            return False
        if self.paused is None:
            log.warning(
                "receipts: %s is %s in the registry, which refuses its receipt anchors; "
                "pausing (checking again every %d s, receipts are kept)",
                self.svc.dept,
                st.value,
                self.inactive_recheck,
            )
        self.paused = st.value
        self._recheck_at = now + self.inactive_recheck
        return True

    def _submit(self, first: int, last: int) -> OperationView | None:
        """Submit ``[first, last]`` under a key naming the range. A key seen
        before whose operation finished, although the chain still lacks the
        range (the chain lost it, or the attempt failed), gets a numbered retry
        key — a failed one only after ``retry_after`` seconds."""
        payload = {"first_seq": first, "last_seq": last}
        fp = fingerprint(payload)
        for attempt in range(1, 1000):
            key = f"receipts:{first}-{last}" + (f":retry-{attempt}" if attempt > 1 else "")
            existing = self.svc.outbox.find(PRINCIPAL, key)
            if existing is None:
                sub = self.svc.outbox.submit(KIND, key, PRINCIPAL, fp, payload, run=False)
                return sub.operation
            if existing.state is OpState.FAILED:
                finished = existing.finished_at or existing.updated_at
                wait = min(MAX_RETRY_AFTER, self.retry_after * 2 ** (attempt - 1))
                if self.svc.clock.now() - finished.timestamp() < wait:
                    if self._reported != existing.id:  # once per failure, not per round
                        self._reported = existing.id
                        log.warning(
                            "receipts: anchoring %d-%d failed (%s); retrying in %d s",
                            first,
                            last,
                            (existing.error or {}).get("code"),
                            wait,
                        )
                    return None
            elif not existing.finished:
                return existing
        return None
