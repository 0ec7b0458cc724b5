"""Small helpers shared by the CLI, the broker and the audit tools: durations,
times and text read from the chain.

Every value read from the chain was written by some member, maybe a hostile one,
so the conversions here are total: :func:`chain_time` and :func:`iso` accept any
integer a ``uint64`` (or a ``uint256``) can hold, :func:`printable` any string,
and none of them raises.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
import unicodedata

from govshare.errors import InputError, OutOfRange

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
#: A duration's text: a number and a unit (its value bounded by each caller).
DURATION_PATTERN = r"^\s*(\d+)\s*([smhdw])\s*$"
_DURATION = re.compile(DURATION_PATTERN)

#: Longest request deadline a clerk may ask for (seconds ahead). The AccessLedger's
#: ``deadlineHorizon()`` is a day longer: the client's clock may run ahead of the
#: block time its value is checked against.
MAX_REQUEST_DEADLINE = 365 * 86400
#: Longest grant an administrator may give (seconds ahead); the AccessLedger's
#: ``expiryHorizon()`` is 3,653 days, for the same reason.
MAX_GRANT_EXPIRY = 3650 * 86400
#: Longest proposal lifetime: the ConsortiumRegistry's ``maxProposalLifetime()``.
MAX_PROPOSAL_LIFETIME = 365 * 86400

#: The last second a ``datetime`` holds (9999-12-31T23:59:59Z).
MAX_DATETIME_SECONDS = 253_402_300_799
#: What a chain time beyond :data:`MAX_DATETIME_SECONDS` becomes as a ``datetime``:
#: the latest one there is, so comparisons ("expired yet?") keep their answer.
FAR_FUTURE = _dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=_dt.UTC)


def _describe(seconds: int) -> str:
    for unit, size in (("w", _UNITS["w"]), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


#: Largest number of seconds anything here is stored as (a signed 64-bit integer).
_MAX_SECONDS = 2**63 - 1


def parse_duration(text: str, maximum: int | None = None, *, what: str = "duration") -> int:
    """``"30d"``, ``"12h"``, ``"15m"``, ``"90s"``, ``"2w"`` → seconds (positive).

    Callers pass ``maximum`` (seconds), e.g. :data:`MAX_REQUEST_DEADLINE`; a longer
    ``what`` raises :class:`OutOfRange` (HTTP 422) with one sentence naming the
    limit. Without one, the bound is what a signed 64-bit integer holds."""
    m = _DURATION.match(text or "")
    if not m or not m.group(1).strip("0"):
        raise InputError(
            f"'{text}' is not a duration: use a positive number and a unit "
            "s, m, h, d or w (e.g. 30d, 12h)."
        )
    digits = m.group(1).lstrip("0")
    limit = _MAX_SECONDS if maximum is None else min(maximum, _MAX_SECONDS)
    # (a number of thousands of digits is no duration, and int() refuses it)
    seconds = int(digits) * _UNITS[m.group(2)] if len(digits) <= 19 else limit + 1
    if seconds > limit:
        shown = f"{digits[:12]}…{m.group(2)}" if len(digits) > 12 else f"{digits}{m.group(2)}"
        raise OutOfRange(
            f"A {what} of {shown} is too long: at most {_describe(limit)}.", maximum=limit
        )
    return seconds


def chain_time(value: int | float | None) -> _dt.datetime | None:
    """A time read from the chain (Unix seconds) as an aware UTC ``datetime``.

    ``None`` for 0 (the chain's "not set") and for anything that is no time at all
    (negative, NaN); :data:`FAR_FUTURE` for a time beyond what a ``datetime``
    holds (a uint64 can say year 584 billion). Never raises."""
    if value is None or isinstance(value, bool):
        return None
    try:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if value <= 0:
            return None
        if value > MAX_DATETIME_SECONDS:
            return FAR_FUTURE
        return _dt.datetime.fromtimestamp(value, tz=_dt.UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def is_far_future(when: _dt.datetime | None) -> bool:
    """Whether ``when`` is :data:`FAR_FUTURE`: a chain time beyond year 9999."""
    return when is not None and when >= FAR_FUTURE


def iso(ts: int | float | None) -> str:
    """A Unix time as ISO 8601 UTC: ``-`` for none/zero, ``never`` for a time
    beyond year 9999 (only a hostile or absurd chain value is). Never raises."""
    if not ts:
        return "-"
    try:
        if ts > MAX_DATETIME_SECONDS:
            return "never"
    except TypeError:
        return "-"
    when = chain_time(ts)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ") if when is not None else "-"


# Bidirectional overrides and isolates: they reorder what a terminal shows
# (a purpose could make "denied" read "approved").
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: object, *, keep_newlines: bool = False) -> str:
    """``text`` safe to show on a terminal: control characters (escape sequences,
    carriage returns, backspaces, C1 controls), line separators and bidi overrides
    become visible ``\\xNN`` / ``\\uNNNN`` escapes. Newlines too, unless
    ``keep_newlines``. Other text, any script, is unchanged. Never raises."""
    s = text if isinstance(text, str) else str(text)
    out = []
    for ch in s:
        if ch == "\n" and keep_newlines:
            out.append(ch)
        elif ch in _BIDI or unicodedata.category(ch) in ("Cc", "Zl", "Zp", "Cs"):
            out.append(_escape(ch))
        else:
            out.append(ch)
    return "".join(out)


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 receipt``, ``2 receipts``; ``many`` for the irregular ones
    (``plural(n, "anomaly", "anomalies")``)."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


_SIZE = re.compile(r"^\s*(\d+)\s*([KMG]i?B?|B)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_size(text: str | int) -> int:
    """``"256MiB"``, ``"1G"``, ``"4096"`` → bytes; ValueError for anything else."""
    if isinstance(text, int) and not isinstance(text, bool):
        if text <= 0:
            raise ValueError("a size must be positive")
        return text
    m = _SIZE.match(str(text or ""))
    if not m or int(m.group(1)) <= 0:
        raise ValueError(f"{text!r} is not a size (e.g. 256MiB, 1GiB, 4096)")
    return int(m.group(1)) * _SIZE_UNITS[(m.group(2) or "").lower()[:1]]


def format_size(n: int) -> str:
    """Bytes as :func:`parse_size` reads them back: ``268435456`` → ``"256MiB"``
    (whole KiB/MiB/GiB when exact, else bytes)."""
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= factor and n % factor == 0:
            return f"{n // factor}{unit}"
    return f"{n} bytes"


#: How the broker's tables and the ledger mirror's name their constraints and
#: indexes (Alembic alters them by name; SQLite's batch mode needs names): one
#: convention for both, as their migrations share one database.
SQL_NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
