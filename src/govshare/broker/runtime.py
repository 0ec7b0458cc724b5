"""The broker's runtime: start-up after a crash, the background workers, and an
orderly shutdown — one object, used by ``govshare serve`` and by tests.

    runtime = BrokerRuntime(svc, RuntimeSettings(receipt_batch_size=256))
    startup = runtime.start()            # recover, clean up, start the workers
    ...                                  # serve the API
    runtime.stop()                       # stop the workers, close services and database

Start-up, before anything is served (nothing can be in flight yet):

1. ``outbox.recover()``: operations a previous process left running become
   pending again, due now.
2. Leftovers of a crash are removed: spool files no unfinished operation owns
   (partial uploads, fetched plaintext, envelopes of finished publishes — a
   pending publish keeps its staged upload and envelope, which it resumes
   from), and the blob store's temporary files of interrupted writes.
3. The workers start: the :class:`~govshare.broker.outbox.OutboxWorker`
   (resumes and retries operations), the
   :class:`~govshare.broker.housekeeping.Housekeeper` (request sync, nonces,
   spool), the :class:`~govshare.broker.record_batches.RecordBatcher` (closes
   and anchors batches of published records) and the
   :class:`~govshare.broker.receipt_batches.ReceiptBatcher` and the
   :class:`~govshare.broker.webhooks.WebhookWorker` (delivers notifications).

``start(threads=False)`` does 1 and 2 only; :meth:`BrokerRuntime.run_once` then
runs one round of every worker in the calling thread (tests move time that way).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from govshare.broker.housekeeping import Housekeeper
from govshare.broker.outbox import OutboxWorker
from govshare.broker.publish import cleanup_spool
from govshare.broker.receipt_batches import DEFAULT_MAX_AGE, DEFAULT_MAX_COUNT, ReceiptBatcher
from govshare.broker.webhooks import WebhookWorker
from govshare.broker.workers import Worker
from govshare.storage import SWEEP

if TYPE_CHECKING:
    from types import TracebackType

    from govshare.broker.services import BrokerServices
    from govshare.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RuntimeSettings:
    """How often the workers run, and when receipts are anchored: the runtime's
    part of :class:`govshare.settings.Settings` (:meth:`from_settings`), kept as
    its own small value so tests build a runtime without the environment."""

    #: Seconds between rounds of the outbox worker and the receipt batcher.
    worker_interval: float = 2.0
    #: Seconds between housekeeping rounds (request sync, nonces).
    sync_interval: float = 5.0
    #: Anchor receipts as soon as this many wait (and at most this many per batch).
    receipt_batch_size: int = DEFAULT_MAX_COUNT
    #: Anchor waiting receipts once the oldest has waited this many seconds.
    receipt_batch_age: float = DEFAULT_MAX_AGE

    @classmethod
    def from_settings(cls, settings: Settings) -> RuntimeSettings:
        """The runtime's settings out of govshare's (``GOVSHARE_WORKER_INTERVAL`` ...)."""
        return cls(
            worker_interval=settings.worker_interval,
            sync_interval=settings.sync_interval,
            receipt_batch_size=settings.receipt_batch_size,
            receipt_batch_age=settings.receipt_batch_age,
        )


@dataclass(frozen=True)
class Startup:
    """What start-up found and did."""

    #: Interrupted operations made pending again (the outbox worker resumes them).
    resumed: int
    #: Spool files removed (no unfinished operation owned them).
    spool_files_removed: int
    #: The blob store's temporary files removed, and their bytes.
    store_files_removed: int
    store_bytes_removed: int


class BrokerRuntime:
    """One department's broker at run time. It owns ``svc`` from construction
    on: :meth:`stop` closes its services, blob store and database."""

    def __init__(self, svc: BrokerServices, settings: RuntimeSettings | None = None) -> None:
        self.svc = svc
        self.settings = s = settings or RuntimeSettings()
        self.outbox_worker = OutboxWorker(svc.outbox, interval=s.worker_interval)
        self.housekeeper = Housekeeper(svc, interval=s.sync_interval)
        self.batcher = ReceiptBatcher(
            svc,
            max_count=s.receipt_batch_size,
            max_age=s.receipt_batch_age,
            interval=s.worker_interval,
        )
        #: Queues new notifications for the webhooks and delivers what is due.
        self.webhooks = WebhookWorker(svc, interval=s.worker_interval)
        self._threads = False
        self._stopped = False

    @property
    def workers(self) -> tuple[Worker, ...]:
        """The background workers, in the order one round runs them: batches
        are submitted before the outbox worker drives them."""
        return (
            self.svc.record_batcher,
            self.batcher,
            self.outbox_worker,
            self.housekeeper,
            self.webhooks,
            self.svc.acks,
        )

    def start(self, *, threads: bool = True) -> Startup:
        """Recover from the previous run, clean up its leftovers, and (``threads``)
        start the workers. Call before serving: the clean-up assumes nothing is
        in flight."""
        if self._stopped:
            raise RuntimeError("this broker runtime was stopped; build a new one")
        startup = self.recover()
        if threads and not self._threads:
            for w in self.workers:
                w.start()
            self._threads = True
        return startup

    def recover(self) -> Startup:
        """Steps 1 and 2 of start-up (see the module's documentation)."""
        svc = self.svc
        resumed = svc.outbox.recover()
        # Nothing is in flight before the first request: any age will do, but
        # files of unfinished operations stay (they resume from them).
        spool = cleanup_spool(svc, older_than=None)
        files = size = 0
        if SWEEP in svc.store.capabilities:
            swept = svc.store.sweep_leftovers()
            files, size = swept.files, swept.bytes
        if spool or files:
            log.info(
                "start-up: removed %d leftover spool file(s) and %d temporary block file(s) "
                "(%d bytes) of an interrupted run",
                spool,
                files,
                size,
            )
        return Startup(resumed, spool, files, size)

    def run_once(self) -> None:
        """One round of every worker, in this thread (their failures are
        recorded and logged as the threads would)."""
        for w in self.workers:
            w.tick()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the workers (each after its current round), then close the
        services, the blob store and the database. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self.svc.notifications.close()  # open event streams end
        for w in reversed(self.workers):
            w.stop(timeout)
        self._threads = False
        try:
            self.svc.close()
            self.svc.store.close()
        finally:
            self.svc.db.close()

    def __enter__(self) -> BrokerRuntime:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
