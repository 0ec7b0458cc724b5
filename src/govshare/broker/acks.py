"""The requester's acknowledgements, sent once the clerk has the record.

A fetch ends with this broker's signed acknowledgement to the owner that the
exchange's ciphertext arrived whole and verified (``POST /v1/exchange/ack``,
docs/exchange.md); the owner keeps it in its receipt (leaf version 2). The clerk
does not need it: it is one more round trip to the owner and one write there,
about a quarter of a fetch's time. So when the broker runs its background
threads (``govshare serve``), :meth:`AckSender.submit` queues it and the fetch
answers at once; this worker sends it a moment later. Without the thread (a
broker driven by its caller, as in tests and tools) it is sent at once, as
before.

A transient failure (the owner unreachable, a 5xx, a database outage there) is
retried with a growing pause (1 s, 2 s, 4 s … at most 60 s) until the resume
window of the exchange ends: after that the owner has anchored the receipt as
delivered, unacknowledged, and would refuse it. A refusal (a 4xx) is final and
logged once. The queue is in memory: a broker stopped with acknowledgements
still queued sends them before it stops (within its stop timeout); one killed
outright loses them, and the owner anchors those receipts as delivered,
unacknowledged, which is what an auditor then reads. Nothing the clerk was told
depends on them.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx
from sqlalchemy import update

from govshare.broker.db import Receipt
from govshare.broker.errors import PeerRefused
from govshare.broker.exchange import H_SIGNATURE, ExchangeAck, ExchangeReceipt
from govshare.broker.fetch import raise_refusal
from govshare.broker.workers import Worker
from govshare.errors import GovShareError
from govshare.util import chain_time

if TYPE_CHECKING:
    from govshare.broker.services import BrokerServices

log = logging.getLogger(__name__)

#: The first pause after a transient failure, and the longest.
FIRST_RETRY = 1.0
MAX_RETRY = 60.0


@dataclass(order=True)
class _Pending:
    due: float
    order: int
    owner: str = field(compare=False)
    receipt: ExchangeReceipt = field(compare=False)
    #: The acknowledgement, signed once: a retry sends the same one.
    ack: ExchangeAck | None = field(default=None, compare=False)
    signature: bytes = field(default=b"", compare=False)
    pause: float = field(default=FIRST_RETRY, compare=False)
    #: Whether the owner recorded it.
    recorded: bool = field(default=False, compare=False)


class AckSender(Worker):
    """Sends the requester's acknowledgements (see the module docstring)."""

    name = "acks"

    def __init__(
        self,
        svc: BrokerServices,
        *,
        interval: float = MAX_RETRY,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(interval=interval, log=log)
        self.svc = svc
        self._monotonic = monotonic
        self._queue: list[_Pending] = []
        self._lock = threading.Lock()
        self._order = itertools.count()
        #: Queue acknowledgements for :meth:`run_once` instead of sending them in
        #: the fetch (set by :meth:`start`; a test sets it to drive the queue).
        self.deferred = False

    # -- what the fetch calls ---------------------------------------------------------------

    def submit(self, owner: str, receipt: ExchangeReceipt) -> bool | None:
        """Acknowledge ``receipt`` to department ``owner``: queued when
        :attr:`deferred` (None), else sent now (whether the owner recorded it; a
        transient failure is queued for :meth:`run_once` to try again)."""
        item = _Pending(self._monotonic(), next(self._order), owner, receipt)
        if not self.deferred:
            again = self._send(item)
            if again is None:
                return item.recorded
            item = again
        with self._lock:
            heapq.heappush(self._queue, item)
        self.notify()
        return None

    @property
    def queued(self) -> int:
        """Acknowledgements waiting to be sent (or retried)."""
        with self._lock:
            return len(self._queue)

    # -- the worker -------------------------------------------------------------------------

    def run_once(self) -> int:
        """Send every acknowledgement that is due; returns how many were sent or
        given up (a transient failure stays queued, for later)."""
        done = 0
        while True:
            now = self._monotonic()
            with self._lock:
                if not self._queue or self._queue[0].due > now:
                    return done
                item = heapq.heappop(self._queue)
            again = self._send(item)
            if again is None:
                done += 1
                continue
            with self._lock:
                heapq.heappush(self._queue, again)

    def _send(self, item: _Pending) -> _Pending | None:
        """One attempt; the item to try again later, or None (recorded, refused,
        or too late)."""
        svc, receipt = self.svc, item.receipt
        xid = "0x" + receipt.request_hash.hex()
        if item.ack is None:
            acked_at = max(int(svc.clock.now()), receipt.issued_at)
            item.ack = ExchangeAck(receipt.request_hash, receipt.ciphertext_cid, acked_at)
            item.signature = item.ack.sign(svc.account, svc.domain)
        try:
            owner = svc.chain_cache.department(item.owner)
            url = owner.endpoint.rstrip("/") + "/v1/exchange/ack"
            resp = svc.http.post(
                url,
                json=item.ack.to_json(svc.dept, owner.code),
                headers={H_SIGNATURE: "0x" + item.signature.hex()},
            )
            if resp.status_code != 200:
                raise_refusal(resp, owner.code)
        except (httpx.HTTPError, GovShareError) as exc:
            code = exc.code if isinstance(exc, GovShareError) else type(exc).__name__
            transient = not isinstance(exc, GovShareError) or _retryable(exc)
            window_ends = receipt.issued_at + svc.limits.resume_window
            if transient and svc.clock.now() + item.pause < window_ends:
                log.info("exchange %s: acknowledgement to %s postponed (%s)", xid, item.owner, code)
                item.due = self._monotonic() + item.pause
                item.pause = min(MAX_RETRY, item.pause * 2)
                return item
            log.warning(
                "exchange %s: %s did not take the acknowledgement (%s)", xid, item.owner, code
            )
            return None
        with svc.db.writing() as conn:
            conn.execute(
                update(Receipt)
                .where(Receipt.request_hash == xid, Receipt.requester == svc.dept)
                .values(
                    acked_at=chain_time(item.ack.acked_at),
                    ack_signature="0x" + item.signature.hex(),
                )
            )
        item.recorded = True
        return None

    # -- the thread -------------------------------------------------------------------------

    def start(self) -> AckSender:
        self.deferred = True
        super().start()
        return self

    def _next_wait(self) -> float:
        with self._lock:
            if not self._queue:
                return self.interval
            return max(0.0, min(self.interval, self._queue[0].due - self._monotonic()))

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread, then send what is due now (a retry waiting for later
        is dropped: the owner anchors it as delivered, unacknowledged)."""
        super().stop(timeout)
        self.deferred = False
        self.tick()


def _retryable(exc: GovShareError) -> bool:
    """A failure worth another try: the owner (or the chain, or a database) cannot
    answer now; not a refusal of this acknowledgement."""
    if isinstance(exc, PeerRefused):
        return int(exc.details.get("peer_status") or 0) >= 500
    return exc.status >= 500
