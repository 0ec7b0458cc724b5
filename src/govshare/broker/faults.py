"""Test-only fault injection: a broker process that kills itself at a named point.

Inert unless armed: ``govshare serve`` arms the point named by the settings
``GOVSHARE_TEST_CRASH_AT`` when ``GOVSHARE_TESTING=1`` too. ``tests/integration/test_crash.py``
uses it to SIGKILL a ``govshare serve`` process at each step of a publish and
checks that a retry with the same idempotency key finds everything intact.

Points: ``publish.before_store``, ``publish.after_store`` (stored, result not yet
recorded), ``publish.anchor_sent`` (transaction accepted by the node, receipt not
yet seen), ``publish.anchor_receipt`` (receipt seen, not yet recorded).
"""

from __future__ import annotations

import os
import signal

# The one armed point of this process (one broker per process; tests only).
_armed: str | None = None


def arm(point: str | None) -> None:
    """Arm ``point`` (None disarms): the process dies when it reaches it."""
    global _armed
    _armed = point or None


def crash_point(name: str) -> None:
    """Die at once (SIGKILL: no cleanup, no flush) if a test armed ``name``."""
    if _armed is not None and _armed == name:
        os.kill(os.getpid(), signal.SIGKILL)
