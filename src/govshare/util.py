"""Small helpers shared by the CLI and the broker: durations and times."""

from __future__ import annotations

import datetime as _dt
import re

from govshare.errors import InputError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")


def parse_duration(text: str) -> int:
    """``"30d"``, ``"12h"``, ``"15m"``, ``"90s"``, ``"2w"`` → seconds (positive)."""
    m = _DURATION.match(text or "")
    if not m or int(m.group(1)) <= 0:
        raise InputError(
            f"'{text}' is not a duration: use a positive number and a unit "
            "s, m, h, d or w (e.g. 30d, 12h)."
        )
    return int(m.group(1)) * _UNITS[m.group(2)]


def iso(ts: int | float | None) -> str:
    """A Unix time as ISO 8601 UTC (``-`` for none/zero)."""
    if not ts:
        return "-"
    return _dt.datetime.fromtimestamp(float(ts), tz=_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
