"""The total conversions every chain value goes through, and the bounded duration
parser every clerk's duration goes through."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from govshare.errors import InputError, OutOfRange
from govshare.util import (
    FAR_FUTURE,
    MAX_DATETIME_SECONDS,
    MAX_GRANT_EXPIRY,
    MAX_REQUEST_DEADLINE,
    chain_time,
    is_far_future,
    iso,
    parse_duration,
    printable,
)

DAY = 86400


@pytest.mark.parametrize(
    ("text", "maximum", "seconds"),
    [
        ("30d", MAX_REQUEST_DEADLINE, 30 * DAY),
        ("365d", MAX_REQUEST_DEADLINE, MAX_REQUEST_DEADLINE),
        ("52w", MAX_REQUEST_DEADLINE, 52 * 7 * DAY),
        ("3650d", MAX_GRANT_EXPIRY, MAX_GRANT_EXPIRY),
        (" 12 h ", None, 12 * 3600),
        ("007s", None, 7),
    ],
)
def test_durations_within_their_bound(text: str, maximum: int | None, seconds: int) -> None:
    assert parse_duration(text, maximum) == seconds


@pytest.mark.parametrize(
    ("text", "maximum"),
    [
        ("366d", MAX_REQUEST_DEADLINE),
        ("500000w", MAX_REQUEST_DEADLINE),
        ("3651d", MAX_GRANT_EXPIRY),
        ("99999999999999999999w", MAX_GRANT_EXPIRY),
        ("9" * 5000 + "d", MAX_GRANT_EXPIRY),  # int() would refuse this many digits
        ("9" * 5000 + "d", None),
        ("99999999999999999999w", None),  # beyond a signed 64-bit number of seconds
    ],
)
def test_durations_beyond_their_bound_are_one_sentence(text: str, maximum: int | None) -> None:
    with pytest.raises(OutOfRange) as err:
        parse_duration(text, maximum, what="deadline")
    assert err.value.code == "input.out_of_range" and err.value.status == 422
    message = err.value.message
    assert message.startswith("A deadline of ") and message.count(".") == 1
    assert len(message) < 100  # never the 5,000 digits back


@pytest.mark.parametrize("text", ["", "0d", "000h", "-1d", "1y", "d", "1.5d", "1d2h"])
def test_what_is_no_duration(text: str) -> None:
    with pytest.raises(InputError) as err:
        parse_duration(text, MAX_REQUEST_DEADLINE)
    assert err.value.code == "input.invalid"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, None),
        (None, None),
        (-1, None),
        (float("nan"), None),
        (float("inf"), None),
        (1, datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)),
        (MAX_DATETIME_SECONDS, FAR_FUTURE),
        (MAX_DATETIME_SECONDS + 1, FAR_FUTURE),
        (2**63 - 1, FAR_FUTURE),
        (2**63, FAR_FUTURE),
        (2**64 - 1, FAR_FUTURE),
        (2**256 - 1, FAR_FUTURE),
    ],
)
def test_chain_time_is_total(value: int | float | None, expected: datetime | None) -> None:
    assert chain_time(value) == expected


@given(st.one_of(st.integers(min_value=-(2**300), max_value=2**300), st.floats(), st.none()))
def test_chain_time_and_iso_never_raise(value: int | float | None) -> None:
    when = chain_time(value)
    assert when is None or when.tzinfo is not None
    text = iso(value)
    assert text == "-" or text == "never" or text.endswith("Z")


def test_iso_shows_far_times_as_never_and_keeps_order() -> None:
    assert iso(0) == "-"
    assert iso(1_767_225_600) == "2026-01-01T00:00:00Z"
    assert iso(MAX_DATETIME_SECONDS) == "9999-12-31T23:59:59Z"
    for far in (MAX_DATETIME_SECONDS + 1, 2**63, 2**64 - 1):
        assert iso(far) == "never"
        assert is_far_future(chain_time(far))
        # a far expiry stays "not yet expired" wherever it is compared
        assert chain_time(far) > datetime.now(UTC)  # type: ignore[operator]
    assert not is_far_future(chain_time(1))


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain text, 中文, العربية, 😀", "plain text, 中文, العربية, 😀"),
        ("[red]x[/red]", "[red]x[/red]"),  # markup is a renderer's business: see SafeTable
        ("\x1b[31mred", "\\x1b[31mred"),
        ("a\rb\x08c\x07", "a\\x0db\\x08c\\x07"),
        ("two\nlines", "two\\x0alines"),
        ("\x85\u2028\u2029", "\\x85\\u2028\\u2029"),
        ("\u202eevil\u202c", "\\u202eevil\\u202c"),
        ("\x00", "\\x00"),
    ],
)
def test_printable_escapes_what_a_terminal_would_obey(text: str, shown: str) -> None:
    assert printable(text) == shown


def test_printable_can_keep_newlines() -> None:
    assert printable("a\nb\x1b", keep_newlines=True) == "a\nb\\x1b"


@given(st.text())
def test_printable_output_has_no_control_character(text: str) -> None:
    out = printable(text)
    assert all(ord(c) >= 0x20 and not 0x7F <= ord(c) < 0xA0 for c in out)
