"""How long ``POST /v1/records`` waits for a record's batch, from RFC 7240's
``Prefer`` header: at once under ``respond-async``, up to N seconds under
``wait=N`` (never beyond the broker's own bound), the broker's wait otherwise;
anything else in the header is ignored, as the RFC says."""

from __future__ import annotations

import pytest

from govshare.api.routes.records import anchor_wait


@pytest.mark.parametrize(
    ("prefer", "expected"),
    [
        (None, 10.0),
        ("", 10.0),
        ("respond-async", 0.0),
        ("Respond-Async", 0.0),
        ("respond-async, wait=5", 0.0),
        ("wait=5", 5.0),
        ("wait = 3", 3.0),
        ("wait=99999", 10.0),  # four digits at most: ignored
        ("wait=600", 10.0),  # never beyond the broker's bound
        ("wait=-1", 10.0),
        ("wait=abc", 10.0),
        ("handling=lenient; foo, return=minimal", 10.0),
        ("x" * 10_000 + ",respond-async", 10.0),  # only the first 256 characters are read
        ("\x1b[2Jrespond-async", 10.0),
    ],
)
def test_prefer_header(prefer: str | None, expected: float) -> None:
    assert anchor_wait(prefer, 10.0) == expected
