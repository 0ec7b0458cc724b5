"""Test-only fault injection: a broker process that kills itself at a named point.

Inert unless armed: ``govshare serve`` arms the point named by the settings
``GOVSHARE_TEST_CRASH_AT`` when ``GOVSHARE_TESTING=1`` too. ``tests/integration/test_crash.py``
uses it to SIGKILL a ``govshare serve`` process at each step of a publish and
checks that a retry with the same idempotency key finds everything intact.

Points: ``publish.accepted`` (a publish of its own, not batched: the operation
took the staged upload over, none of its steps has run), ``publish.before_store``,
``publish.after_store`` (stored, result not yet recorded), ``publish.anchor_sent``
(transaction accepted by the node, receipt not yet seen),
``publish.anchor_receipt`` (receipt seen, not yet recorded).

Tests that run brokers in their own process can instead make a point raise an
exception, once (:func:`fail_once`): a database error or a shutdown at that
moment, without killing the test. ``exchange.ack`` (the owner taking a
requester's acknowledgement) is such a point only.

Cut points break off a transfer once, as a network blip would: the answer's
stream raises after its first part, so the server drops the connection with the
body incomplete. ``exchange.mid_stream`` (the owner's ``/v1/exchange`` answer)
and ``content.mid_stream`` (a broker's ``/v1/records/{id}/content`` answer to
its clerk). ``govshare serve`` arms them from ``GOVSHARE_TEST_CUT_AT`` (with
``GOVSHARE_TESTING=1``); a test in one process calls :func:`fail_once` with
:class:`TransferCut`.
"""

from __future__ import annotations

import os
import signal

# The one armed point of this process (one broker per process; tests only).
_armed: str | None = None
# Points that raise, once, and what (tests in one process only).
_failures: dict[str, BaseException] = {}


def arm(point: str | None) -> None:
    """Arm ``point`` (None disarms): the process dies when it reaches it."""
    global _armed
    _armed = point or None


def fail_once(point: str, exc: BaseException | None) -> None:
    """Raise ``exc`` the next time ``point`` is reached (None: no longer)."""
    if exc is None:
        _failures.pop(point, None)
    else:
        _failures[point] = exc


class TransferCut(ConnectionAbortedError):
    """A test's network blip: the stream that reaches a cut point stops here."""


def arm_cuts(points: str | None) -> None:
    """Break off the transfer at each named point (comma-separated), once each."""
    for point in (points or "").split(","):
        if point.strip():
            fail_once(point.strip(), TransferCut(f"test cut at {point.strip()}"))


def crash_point(name: str) -> None:
    """Die at once (SIGKILL: no cleanup, no flush) if a test armed ``name``; raise
    the exception a test set for it with :func:`fail_once`."""
    if _armed is not None and _armed == name:
        os.kill(os.getpid(), signal.SIGKILL)
    if _failures:
        exc = _failures.pop(name, None)
        if exc is not None:
            raise exc
