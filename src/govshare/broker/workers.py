"""What the broker's background loops share: a thread that runs one round every
few seconds, and logging that speaks only when something changes.

An idle broker writes nothing: a round that finds no work logs nothing, and a
round that fails the way the previous one did logs nothing either. A loop says
once that it cannot work (the chain went away, say: ``WARNING``, with the
error's code), once when the reason changes, and once when it works again
(``INFO``). An unexpected error is logged with its traceback the first time.
"""

from __future__ import annotations

import logging
import math
import threading

from govshare.broker.db import database_unavailable
from govshare.errors import GovShareError


class Health:
    """The state of one loop (or one part of it): working, or failing with a
    known reason. Logs the transitions only."""

    def __init__(self, log: logging.Logger, what: str) -> None:
        self.log = log
        self.what = what
        #: The reason of the current failure (an error code), None while working.
        self.failing: str | None = None

    def failed(self, exc: BaseException) -> None:
        """Record a failed round; logged only when it is a new reason."""
        reason = exc.code if isinstance(exc, GovShareError) else type(exc).__name__
        if reason != self.failing:
            if isinstance(exc, GovShareError):
                self.log.warning("%s: postponed (%s); will try again", self.what, reason)
            else:
                self.log.error("%s failed; will try again", self.what, exc_info=exc)
        self.failing = reason

    def ok(self) -> None:
        """Record a round that worked; logged only after failures."""
        if self.failing is not None:
            self.log.info("%s: working again (after %s)", self.what, self.failing)
        self.failing = None


class Worker:
    """A daemon thread calling :meth:`tick` every ``interval`` seconds, or at once
    when :meth:`notify` wakes it; a subclass may wait less (:meth:`_next_wait`).

    Subclasses implement :meth:`run_once` (one round, raising when it cannot
    work); :meth:`tick` runs it and records the outcome in :attr:`health`.
    Tests call :meth:`tick` themselves instead of starting the thread.
    """

    #: The thread's name, and what log lines call this loop.
    name = "worker"

    def __init__(self, *, interval: float, log: logging.Logger) -> None:
        if not (interval > 0 and math.isfinite(interval)):
            raise ValueError("interval must be a positive number of seconds")
        self.interval = interval
        self.health = Health(log, self.name)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> object:
        """One round of work."""
        raise NotImplementedError

    def notify(self) -> None:
        """There is work: the thread runs a round now instead of after its wait."""
        self._wake.set()

    def tick(self) -> None:
        """One round, its failure recorded instead of raised."""
        try:
            self.run_once()
        except Exception as exc:  # noqa: BLE001 — the loop must survive any round; health logs it
            # a database outage is a known reason (logged by its code), not a bug
            self.health.failed(database_unavailable(exc) or exc)
        else:
            self.health.ok()

    def start(self) -> Worker:
        """Start the thread (once)."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread after its current round."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _next_wait(self) -> float:
        """Seconds until the next round unless woken (the interval here)."""
        return self.interval

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            self.tick()
            if not self._stop.is_set():
                self._wake.wait(self._next_wait())
