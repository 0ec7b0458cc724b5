"""The broker's background work besides the outbox worker: follow the chain's
request events, forget expired exchange nonces, warn of incoming requests whose
deadline is near, clear the spool."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from govshare.broker.access import forget_old_nonces
from govshare.broker.notifications import scan_deadlines
from govshare.broker.publish import cleanup_spool
from govshare.broker.workers import Health, Worker
from govshare.errors import GovShareError

if TYPE_CHECKING:
    from govshare.broker.services import BrokerServices

log = logging.getLogger(__name__)

#: Seconds between spool clean-ups.
SPOOL_EVERY = 600.0


class Housekeeper(Worker):
    """A daemon thread: every ``interval`` seconds, sync ``access_requests`` from
    the chain and drop expired nonces; every :data:`SPOOL_EVERY` (on ``svc.clock``),
    clean the spool.

    Quiet when idle: the request sync's failures are logged when they start
    (or change cause) and when it works again, not every round."""

    name = "housekeeping"

    def __init__(self, svc: BrokerServices, *, interval: float = 5.0) -> None:
        super().__init__(interval=interval, log=log)
        self.svc = svc
        self.sync_health = Health(log, "housekeeping: request sync")
        self._last_spool: float | None = None  # svc.clock.monotonic() of the last clean-up

    def run_once(self) -> None:
        """One round: request sync (a chain that is away postpones it), nonces,
        and the spool when its turn has come."""
        try:
            self.svc.sync.run_once()
        except GovShareError as exc:  # the chain is away: try again next round
            self.sync_health.failed(exc)
        else:
            self.sync_health.ok()
        forget_old_nonces(self.svc)
        scan_deadlines(self.svc)  # incoming requests whose deadline is near: told once
        now = self.svc.clock.monotonic()
        if self._last_spool is None or now - self._last_spool >= SPOOL_EVERY:
            self._last_spool = now
            removed = cleanup_spool(self.svc)
            if removed:
                log.info("housekeeping: removed %d stale spool file(s)", removed)
