"""The broker's background work besides the outbox worker: follow the chain's
request events, forget expired exchange nonces, clear the spool."""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import TYPE_CHECKING

from govshare.broker.access import forget_old_nonces
from govshare.broker.publish import cleanup_spool
from govshare.errors import GovShareError

if TYPE_CHECKING:
    from govshare.broker.services import BrokerServices

log = logging.getLogger(__name__)

#: Seconds between spool clean-ups.
SPOOL_EVERY = 600.0


class Housekeeper:
    """A daemon thread: every ``interval`` seconds, sync ``access_requests`` from
    the chain and drop expired nonces; every :data:`SPOOL_EVERY`, clean the spool."""

    def __init__(self, svc: BrokerServices, *, interval: float = 5.0) -> None:
        if not (interval > 0 and math.isfinite(interval)):
            raise ValueError("interval must be a positive number of seconds")
        self.svc = svc
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_spool = 0.0

    def start(self) -> Housekeeper:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="housekeeper", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def run_once(self) -> None:
        try:
            self.svc.sync.run_once()
        except GovShareError as exc:  # the chain is away: try again next round
            log.info("housekeeping: request sync postponed (%s)", exc.code)
        forget_old_nonces(self.svc)
        if time.monotonic() - self._last_spool >= SPOOL_EVERY:
            self._last_spool = time.monotonic()
            removed = cleanup_spool(self.svc)
            if removed:
                log.info("housekeeping: removed %d stale spool file(s)", removed)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:
                log.exception("housekeeping failed; will try again")
            self._stop.wait(self.interval)
