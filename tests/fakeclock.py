"""A clock that moves only when a test says so (the broker side's fake clock),
and :func:`warp_chain` for the chain side (``evm_increaseTime`` + ``evm_mine``)."""

from __future__ import annotations

import math
import time
from datetime import datetime
from typing import TYPE_CHECKING

from govshare.clock import utcnow

if TYPE_CHECKING:
    from govshare.chain.connection import Connection


class ManualClock:
    """Starts at ``start`` (default: the wall clock, rounded down to the second,
    so it agrees with the chain's and the database's times), then stands still
    until :meth:`advance`."""

    def __init__(self, start: float | None = None) -> None:
        self._now = float(math.floor(time.time()) if start is None else start)
        self._mono = 0.0

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def utc(self) -> datetime:
        return utcnow(self)

    def advance(self, seconds: float) -> None:
        """Move both clocks ``seconds`` forward (time never goes back)."""
        if not seconds >= 0:
            raise ValueError("a clock only moves forward")
        self._now += seconds
        self._mono += seconds

    def __repr__(self) -> str:
        return f"ManualClock({self._now!r})"


def warp_chain(conn: Connection, seconds: int) -> None:
    """Move a dev chain's clock ``seconds`` forward and mine a block there, so
    ``Ledger.now()`` (the later of the clock and the latest block) sees it."""
    conn.request("evm_increaseTime", [seconds])
    conn.request("evm_mine", [])
