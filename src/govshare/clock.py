"""One clock: where govshare asks what time it is.

Whatever compares a time with *now* — the ledger's expiry rule, the broker's
workers (receipt batch ages, retry back-offs, exchange nonces, the spool),
tokens, the outbox's schedule — asks a :class:`Clock` it was given, never the
``time`` module itself. The system clock is the default everywhere; a test
hands in a clock it moves, instead of sleeping.

    clock = SYSTEM_CLOCK
    clock.now()              # Unix seconds (float)
    utcnow(clock)            # the same instant as an aware datetime in UTC
    clock.monotonic()        # seconds for measuring intervals; never goes back

Waiting for real I/O (a node's answer, a process starting, a worker thread's
pause between rounds) stays on real time: no clock makes a socket answer sooner.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """What time it is."""

    def now(self) -> float:
        """Wall-clock time, in Unix seconds."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back, for intervals (its zero is arbitrary)."""
        ...


class SystemClock:
    """The machine's clocks (:func:`time.time`, :func:`time.monotonic`)."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def __repr__(self) -> str:
        return "SystemClock()"


#: The default clock of every component that takes one.
SYSTEM_CLOCK: Clock = SystemClock()


def utcnow(clock: Clock = SYSTEM_CLOCK) -> datetime:
    """``clock``'s now as a timezone-aware datetime in UTC (the database's timestamps)."""
    return datetime.fromtimestamp(clock.now(), UTC)
