"""Subject references: normalising, keyed hashing, where the key comes from."""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

import pytest

from govshare.broker.subjects import (
    ENV_SUBJECT_KEY,
    ENV_SUBJECT_KEY_FILE,
    SUBJECT_KEY_FILE,
    ensure_subject_key,
    load_subject_key,
    normalise_subject,
    subject_ref,
    write_subject_key,
)
from govshare.errors import ConfigError, InputError

from .conftest import Cli

KEY = bytes(range(32))


def test_normalising_removes_spacing_and_case_and_full_width_forms() -> None:
    assert normalise_subject(" 9111 0000-7109 2841xa ") == "9111000071092841XA"
    assert normalise_subject("９１１１ab") == "9111AB"  # full-width digits (NFKC)
    for bad in ("", "   ", " - "):
        with pytest.raises(InputError):
            normalise_subject(bad)
    with pytest.raises(InputError):
        normalise_subject("1" * 257)


def test_reference_is_the_documented_hmac_and_ignores_spelling() -> None:
    expected = hmac.new(KEY, b"govshare/subject/v1\x00" + b"91110000X", hashlib.sha256).digest()
    assert subject_ref(KEY, "9111-0000x") == expected
    assert subject_ref(KEY, " 9111 0000 X") == expected
    assert subject_ref(bytes(32), "9111-0000x") != expected  # keyed
    with pytest.raises(ConfigError):
        subject_ref(b"short", "x")


def test_key_from_settings_file_or_profile(tmp_path: Path) -> None:
    prof = tmp_path / "depts" / "TAX"
    prof.mkdir(parents=True)
    with pytest.raises(ConfigError, match="subject key"):
        load_subject_key(prof)
    write_subject_key(prof, KEY)
    assert (prof / SUBJECT_KEY_FILE).stat().st_mode & 0o777 == 0o600
    assert load_subject_key(prof) == KEY
    other = bytes(32)
    assert load_subject_key(prof, key=other.hex()) == other
    f = tmp_path / "k"
    f.write_text("0x" + other.hex() + "\n")
    assert load_subject_key(prof, key_file=f) == other
    with pytest.raises(ConfigError):
        load_subject_key(prof, key="zz")
    with pytest.raises(InputError):  # never silently replaced
        write_subject_key(prof, other)


def test_init_shares_one_key_across_a_home(tmp_path: Path) -> None:
    tax, market = tmp_path / "depts" / "TAX", tmp_path / "depts" / "MARKET"
    tax.mkdir(parents=True)
    market.mkdir(parents=True)
    key, how = ensure_subject_key(tmp_path, tax)
    assert how == "generated" and len(key) == 32
    again, how = ensure_subject_key(tmp_path, market)
    assert (again, how) == (key, "copied from TAX")
    court = tmp_path / "depts" / "COURT"
    court.mkdir()
    given = os.urandom(32)
    assert ensure_subject_key(tmp_path, court, key=given.hex()) == (given, "env")


def test_govshare_init_writes_one_shared_subject_key(cli: Cli) -> None:
    cli.env["GOVSHARE_PASSWORD"] = "pw-for-tests"
    cli.env.pop(ENV_SUBJECT_KEY, None)
    cli.env.pop(ENV_SUBJECT_KEY_FILE, None)
    fast = ("--scrypt-n", "1024", "--json")
    first = cli.ok("init", "TAX", "--name", "Tax", *fast).json()
    second = cli.ok("init", "MARKET", "--name", "Market", *fast).json()
    assert (first["subject_key"], second["subject_key"]) == ("generated", "copied from TAX")
    keys = {(cli.home / "depts" / c / SUBJECT_KEY_FILE).read_text() for c in ("TAX", "MARKET")}
    assert len(keys) == 1
