"""``govshare init``: a department profile with its keys, and every refusal."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from govshare.crypto import load_eth_keystore, load_hpke_key

from .conftest import Cli

FAST = ["--scrypt-n", "1024"]  # keep tests fast; production keeps the default cost


def test_init_creates_profile_with_encrypted_keys(cli: Cli) -> None:
    cli.env["GOVSHARE_PASSWORD"] = "broker-pw"
    cli.env["GOVSHARE_ADMIN_PASSWORD"] = "admin-pw"
    out = cli.ok("init", "tax", "--name", "Tax Bureau", "--json", *FAST).json()
    assert out["code"] == "TAX" and out["name"] == "Tax Bureau"
    assert out["endpoint"] == "http://127.0.0.1:8701"
    d = cli.home / "depts" / "TAX"
    for f in ["broker.keystore.json", "admin.keystore.json", "hpke.key.json"]:
        assert stat.S_IMODE((d / f).stat().st_mode) == 0o600, f
    # The keys open with their own passwords and match the public facts.
    assert load_eth_keystore(d / "broker.keystore.json", "broker-pw").address == out["broker"]
    assert load_eth_keystore(d / "admin.keystore.json", "admin-pw").address == out["admins"][0]
    hpke = load_hpke_key(d / "hpke.key.json", "broker-pw")
    assert "0x" + hpke.public_key_bytes.hex() == out["hpke_public_key"]
    # Nothing secret in the public config or in the output.
    config = (d / "config.json").read_text()
    for secret in ["broker-pw", "admin-pw", hpke.private_bytes().hex()]:
        assert secret not in config
    assert "private" not in json.dumps(out).lower()

    second = cli.ok("init", "MARKET", "--name", "Market Regulator", "--json", *FAST).json()
    assert second["endpoint"] == "http://127.0.0.1:8702"
    assert second["broker"] != out["broker"]


def test_init_refusals_change_nothing(cli: Cli) -> None:
    cli.env["GOVSHARE_PASSWORD"] = "pw"
    cli.ok("init", "TAX", "--name", "Tax Bureau", *FAST)
    before = (cli.home / "depts" / "TAX" / "broker.keystore.json").read_bytes()

    r = cli.fails("init", "TAX", "--name", "Another")
    assert "already exists" in r.stderr
    assert (cli.home / "depts" / "TAX" / "broker.keystore.json").read_bytes() == before

    assert "not a department code" in cli.fails("init", "t", "--name", "X").stderr
    assert "not a department code" in cli.fails("init", "TA X", "--name", "X").stderr
    assert "needs a name" in cli.fails("init", "COURT", "--name", " ", *FAST).stderr
    bad_url = cli.fails("init", "COURT", "--name", "Court", "--endpoint", "ftp://x", *FAST)
    assert "endpoint" in bad_url.stderr
    assert not (cli.home / "depts" / "COURT").exists()

    del cli.env["GOVSHARE_PASSWORD"]
    r = cli.fails("init", "COURT", "--name", "Court", *FAST)
    assert (
        "No new password for COURT's broker key: pass --password-file FILE, "
        "set GOVSHARE_PASSWORD or GOVSHARE_PASSWORD_FILE"
    ) in r.stderr
    err = cli.fails("init", "COURT", "--name", "Court", "--json", *FAST).json()["error"]
    assert err["code"] == "key.password_unavailable"


def test_admin_password_from_its_own_file(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from govshare.profile import load_profile
    from govshare.settings import load_settings

    cli.env["GOVSHARE_PASSWORD"] = "broker-pw"
    cli.env["GOVSHARE_ADMIN_PASSWORD"] = "admin-pw"
    cli.ok("init", "TAX", "--name", "Tax Bureau", *FAST)
    prof = load_profile(cli.home, "TAX")
    pw_file = tmp_path / "admin.pw"
    pw_file.write_text("admin-pw\n")
    monkeypatch.delenv("GOVSHARE_ADMIN_PASSWORD", raising=False)
    monkeypatch.setenv("GOVSHARE_PASSWORD", "broker-pw")
    monkeypatch.setenv("GOVSHARE_ADMIN_PASSWORD_FILE", str(pw_file))
    passwords = load_settings().passwords()  # what the CLI's entry point reads
    assert prof.unlock_admin(passwords=passwords).address == prof.admin_address
