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
    identifiers_in,
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


# -- identifiers in text bound for the chain ------------------------------------------------


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("Licence of 91110000710928411X", ["91110000710928411X"]),  # a credit code
        ("licence of 91110000710928411x.", ["91110000710928411X"]),  # lower case, then a stop
        ("licence of ９１１１００００７１０９２８４１１Ｘ", ["91110000710928411X"]),  # full width
        ("licence of 9111 0000-7109 2841 1X now", ["91110000710928411X"]),  # grouped
        ("digits-only code 911100007109284110", []),  # digits only: its check must hold,
        ("digits-only code 911100007109284007", ["911100007109284007"]),  # as it does here
        ("citizen 110105199001011234", ["110105199001011234"]),  # a resident id
        ("citizen 110105 19900101 1234 asks", ["110105199001011234"]),
        ("citizen 11010519900101123x", ["11010519900101123X"]),
        ("a and b: 91110000710928411X, 110105199001011234", ["91110000710928411X",
                                                              "110105199001011234"]),
        ("twice 91110000710928411X and 91110000710928411X", ["91110000710928411X"]),
    ],
)  # fmt: skip
def test_identifiers_in_text_are_found_however_they_are_written(
    text: str, found: list[str]
) -> None:
    assert identifiers_in(text) == found


@pytest.mark.parametrize(
    "text",
    [
        "Business licence application",
        "Regulation on business registration, art. 12",
        "case 202612060000012345",  # 18 digits: no real birth date, no valid credit check
        "record 0x91110000710928411X00aa91110000710928411X",  # a hex literal
        "grant 12 of 2026-12-06, 3 uses until 2027-01-05",
        "phone 010-12345678 room 19900101",
        "ACME Trading Co., Ltd. (the enterprise's name: not an identifier)",
        "",
    ],
)
def test_ordinary_text_holds_no_identifier(text: str) -> None:
    assert identifiers_in(text) == []


def test_a_refusal_masks_the_identifier_and_long_text_is_refused_first() -> None:
    from govshare.broker.errors import IdentifierInText
    from govshare.broker.subjects import refuse_identifiers

    assert refuse_identifiers("Business licence application", "purpose") == (
        "Business licence application"
    )
    with pytest.raises(IdentifierInText) as err:
        refuse_identifiers("licence of 91110000710928411X", "purpose")
    assert "9111…1X" in str(err.value) and "91110000710928411X" not in str(err.value)
    assert err.value.code == "input.identifier_in_text" and err.value.status == 422
    with pytest.raises(InputError, match="at most 8192"):
        identifiers_in("9" * 8193)
