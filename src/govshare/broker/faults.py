"""Test-only fault injection: a broker process that kills itself at a named point.

Inert unless the environment says ``GOVSHARE_TESTING=1`` *and*
``GOVSHARE_TEST_CRASH_AT`` names the point. ``tests/integration/test_crash.py``
uses it to SIGKILL a ``govshare serve`` process at each step of a publish and
checks that a retry with the same idempotency key finds everything intact.

Points: ``publish.before_store``, ``publish.after_store`` (stored, result not yet
recorded), ``publish.anchor_sent`` (transaction accepted by the node, receipt not
yet seen), ``publish.anchor_receipt`` (receipt seen, not yet recorded).
"""

from __future__ import annotations

import os
import signal

ENV_TESTING = "GOVSHARE_TESTING"
ENV_CRASH_AT = "GOVSHARE_TEST_CRASH_AT"


def crash_point(name: str) -> None:
    """Die at once (SIGKILL: no cleanup, no flush) if a test armed ``name``."""
    if os.environ.get(ENV_TESTING) == "1" and os.environ.get(ENV_CRASH_AT) == name:
        os.kill(os.getpid(), signal.SIGKILL)
