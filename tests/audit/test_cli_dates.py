"""How ``audit report`` reads --since/--until."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import click
import pytest

from govshare.cli.audit import parse_when


def test_dates_times_relative_and_now() -> None:
    day = int(datetime(2026, 5, 1, tzinfo=UTC).timestamp())
    assert parse_when("2026-05-01") == day
    assert parse_when("2026-05-01", end=True) == day + 86399
    assert parse_when("2026-05-01T08:00:00Z") == day + 8 * 3600
    assert parse_when("2026-05-01T08:00:00+08:00") == day
    assert parse_when(str(day)) == day
    assert parse_when("now") is None  # the ledger's now, decided later
    assert abs(int(time.time()) - 7 * 86400 - (parse_when("7d") or 0)) <= 2
    today = parse_when("today")
    assert today is not None and today % 86400 == 0
    with pytest.raises(click.BadParameter, match="is not a date"):
        parse_when("yesterday-ish")
