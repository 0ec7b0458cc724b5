"""Keys at rest: v3 keystores, the HPKE key file, passwords, and that no secret leaks.

scrypt runs with N=16 here (``scrypt_n``) so the suite stays fast; one test checks
the default strength is what the file format says.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

from govshare.crypto import keystore
from govshare.crypto.errors import (
    KeystoreExists,
    KeystoreMalformed,
    KeystoreNotFound,
    PasswordMismatch,
    PasswordUnavailable,
)
from govshare.crypto.keys import EthKey, HpkePrivateKey, generate_keypair
from govshare.errors import GovShareError, InputError, WrongPassword

N = 16  # light scrypt for tests
PASSWORD = "correct horse battery staple"


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


# ------------------------------------------------------------------ HPKE key file


def test_hpke_key_round_trip(tmp_path: Path) -> None:
    sk, pk = generate_keypair()
    path = tmp_path / "dept" / "hpke-key.json"
    assert keystore.save_hpke_key(path, sk, PASSWORD, dept="TAX", scrypt_n=N) == pk
    assert _mode(path) == 0o600
    assert keystore.read_hpke_public_key(path) == pk
    loaded = keystore.load_hpke_key(path, PASSWORD)
    assert loaded.private_bytes() == sk.private_bytes()
    doc = json.loads(path.read_text())
    assert doc["format"] == "govshare-hpke-key" and doc["version"] == 1
    assert doc["kdfparams"] == {**doc["kdfparams"], "n": N, "r": 8, "p": 1, "dklen": 32}
    assert sk.private_bytes().hex() not in path.read_text()
    assert [p.name for p in path.parent.iterdir()] == ["hpke-key.json"]  # no temp file left


def test_hpke_wrong_password(tmp_path: Path) -> None:
    sk, _ = generate_keypair()
    path = tmp_path / "k.json"
    keystore.save_hpke_key(path, sk, PASSWORD, scrypt_n=N)
    with pytest.raises(WrongPassword) as info:
        keystore.load_hpke_key(path, "Correct horse battery staple")
    assert info.value.code == "key.wrong_password"


def test_hpke_file_bound_fields(tmp_path: Path) -> None:
    sk, _ = generate_keypair()
    path = tmp_path / "k.json"
    keystore.save_hpke_key(path, sk, PASSWORD, dept="TAX", scrypt_n=N)
    doc = json.loads(path.read_text())
    # Relabelling the file for another department (or key) breaks the AEAD.
    for field, value in (("dept", "MARKET"), ("public_key", generate_keypair()[1].hex())):
        path.write_text(json.dumps({**doc, field: value}))
        with pytest.raises(WrongPassword):
            keystore.load_hpke_key(path, PASSWORD)


def test_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    first, _ = generate_keypair()
    keystore.save_hpke_key(path, first, PASSWORD, scrypt_n=N)
    before = path.read_bytes()
    with pytest.raises(KeystoreExists):
        keystore.save_hpke_key(path, generate_keypair()[0], PASSWORD, scrypt_n=N)
    assert path.read_bytes() == before
    keystore.save_hpke_key(path, generate_keypair()[0], PASSWORD, scrypt_n=N, overwrite=True)
    assert path.read_bytes() != before and _mode(path) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.json"]


def test_default_strength() -> None:
    assert keystore.DEFAULT_SCRYPT_N == 2**17 and keystore.SCRYPT_R == 8


# ------------------------------------------------------------------ Ethereum v3


def test_eth_keystore_round_trip_and_interop(tmp_path: Path) -> None:
    key = EthKey.generate()
    path = tmp_path / "broker.json"
    assert keystore.save_eth_keystore(path, key, PASSWORD, scrypt_n=N) == key.address
    assert _mode(path) == 0o600
    doc = json.loads(path.read_text())
    assert doc["version"] == 3 and doc["crypto"]["kdf"] == "scrypt"
    assert keystore.read_eth_address(path) == key.address
    assert keystore.load_eth_keystore(path, PASSWORD).private_bytes() == key.private_bytes()
    # The same file opens in eth-account (as in geth / Foundry), and theirs open here.
    assert bytes(Account.decrypt(doc, PASSWORD)) == key.private_bytes()
    theirs = Account.encrypt(key.private_bytes(), "pw2", kdf="scrypt", iterations=N)
    other = tmp_path / "theirs.json"
    other.write_text(json.dumps(theirs))
    assert keystore.load_eth_keystore(other, "pw2").address == key.address


def test_eth_wrong_password(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    keystore.save_eth_keystore(path, EthKey.generate(), PASSWORD, scrypt_n=N)
    with pytest.raises(WrongPassword):
        keystore.load_eth_keystore(path, "nope")


def test_eth_hostile_scrypt_parameters_are_refused_before_running(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    keystore.save_eth_keystore(path, EthKey.generate(), PASSWORD, scrypt_n=N)
    doc = json.loads(path.read_text())
    doc["crypto"]["kdfparams"]["n"] = 2**30
    path.write_text(json.dumps(doc))
    with pytest.raises(KeystoreMalformed):
        keystore.load_eth_keystore(path, PASSWORD)


# ------------------------------------------------------------------ malformed files


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(KeystoreNotFound):
        keystore.load_hpke_key(tmp_path / "none.json", PASSWORD)
    with pytest.raises(KeystoreNotFound):
        keystore.load_eth_keystore(tmp_path / "none.json", PASSWORD)
    bad = tmp_path / "bad.json"
    for content in ("", "not json", "[]", "{}", '{"format": "govshare-hpke-key"}', "1" * 70000):
        bad.write_text(content)
        with pytest.raises(KeystoreMalformed):
            keystore.load_hpke_key(bad, PASSWORD)
        with pytest.raises(KeystoreMalformed):
            keystore.load_eth_keystore(bad, PASSWORD)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(
    _json, st.sampled_from(["crypto", "kdfparams", "cipherparams", "ciphertext", "n", "public_key"])
)
def test_property_loaders_only_raise_govshare_errors(
    tmp_path_factory: Any, junk: Any, field: str
) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "k.json"
    sk = HpkePrivateKey.from_private_bytes(b"\x02" * 32)
    keystore.save_hpke_key(path, sk, PASSWORD, scrypt_n=N)
    hpke_doc = json.loads(path.read_text())
    eth = EthKey(b"\x03" * 32)
    eth_path = path.with_name("e.json")
    keystore.save_eth_keystore(eth_path, eth, PASSWORD, scrypt_n=N)
    eth_doc = json.loads(eth_path.read_text())
    for doc in (
        junk,
        {**hpke_doc, field: junk},
        {**hpke_doc, "kdfparams": {**hpke_doc["kdfparams"], field: junk}},
    ):
        path.write_text(json.dumps(doc))
        with contextlib.suppress(GovShareError):
            keystore.load_hpke_key(path, PASSWORD)
    for doc in (
        junk,
        {**eth_doc, field: junk},
        {**eth_doc, "crypto": {**eth_doc["crypto"], field: junk}},
    ):
        eth_path.write_text(json.dumps(doc))
        with contextlib.suppress(GovShareError):
            keystore.load_eth_keystore(eth_path, PASSWORD)


# ------------------------------------------------------------------ passwords


def test_resolve_password_sources_in_order(tmp_path: Path) -> None:
    pwfile = tmp_path / "pw"
    pwfile.write_text("from-file\n")
    settings = {"configured": "from-env", "configured_file": pwfile}
    assert keystore.resolve_password("explicit", **settings) == "explicit"
    assert keystore.resolve_password(password_file=pwfile) == "from-file"
    assert keystore.resolve_password(**settings) == "from-env"
    assert keystore.resolve_password(configured_file=pwfile) == "from-file"
    asked: list[str] = []

    def ask(prompt: str) -> str:
        asked.append(prompt)
        return "typed"

    assert keystore.resolve_password(interactive=True, ask=ask) == "typed"
    assert keystore.resolve_password(interactive=True, confirm=True, ask=ask) == "typed"
    assert len(asked) == 3 and asked[-1].startswith("Repeat")


def test_resolve_password_failures(tmp_path: Path) -> None:
    with pytest.raises(PasswordUnavailable) as info:
        keystore.resolve_password(interactive=False)
    assert "GOVSHARE_PASSWORD" in info.value.message
    answers = iter(["one", "two"])
    with pytest.raises(PasswordMismatch):
        keystore.resolve_password(interactive=True, confirm=True, ask=lambda _p: next(answers))
    with pytest.raises(InputError):
        keystore.resolve_password(interactive=True, ask=lambda _p: "")
    with pytest.raises(PasswordUnavailable):
        keystore.resolve_password(password_file=tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(InputError):
        keystore.resolve_password(password_file=empty)


def test_resolve_password_takes_the_environment_through_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from govshare.settings import load_settings

    monkeypatch.setenv(keystore.ENV_PASSWORD, "s3cret-env")
    # read once at the entry point, then passed down: the helper itself never reads it
    monkeypatch.setattr("sys.stdin", None)
    with pytest.raises(PasswordUnavailable):
        keystore.resolve_password()
    passwords = load_settings().passwords()
    assert keystore.resolve_password(configured=passwords.broker) == "s3cret-env"


# ------------------------------------------------------------------ no secret leaks


def test_no_secret_in_repr_str_errors_or_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sk, _ = generate_keypair()
    eth = EthKey.generate()
    secrets = [sk.private_bytes().hex(), eth.private_bytes().hex(), PASSWORD]
    texts = [repr(sk), str(sk), repr(eth), str(eth), f"{eth}", repr([sk, eth]), repr({"k": eth})]
    hpke_path, eth_path = tmp_path / "h.json", tmp_path / "e.json"
    keystore.save_hpke_key(hpke_path, sk, PASSWORD, scrypt_n=N)
    keystore.save_eth_keystore(eth_path, eth, PASSWORD, scrypt_n=N)
    answers = iter([PASSWORD, PASSWORD + "!"])
    failures: list[GovShareError] = []
    for call in (
        lambda: keystore.load_hpke_key(hpke_path, PASSWORD + "x"),
        lambda: keystore.load_eth_keystore(eth_path, PASSWORD + "x"),
        lambda: keystore.save_hpke_key(hpke_path, sk, PASSWORD, scrypt_n=N),
        lambda: keystore.resolve_password(
            interactive=True, confirm=True, ask=lambda _p: next(answers)
        ),
    ):
        with pytest.raises(GovShareError) as info:
            call()
        failures.append(info.value)
    for exc in failures:
        texts += [str(exc), repr(exc), json.dumps(exc.to_dict())]
        # No chained foreign exception (whose text could carry a key) rides along.
        assert exc.__cause__ is None
        assert exc.__context__ is None or exc.__suppress_context__
    texts.append(caplog.text)
    for text in texts:
        for secret in secrets:
            assert secret not in text
    assert eth.address in repr(eth)
