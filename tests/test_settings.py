"""One Settings object: the docs' table matches it, values are validated with one
sentence, the old second names are refused with a warning, flags win over the
environment, and nothing below the entry points reads GOVSHARE_* itself."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cliharness import Cli
from govshare.errors import ConfigError
from govshare.settings import (
    RETIRED,
    Settings,
    env_name,
    load_settings,
    retired_names,
)

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "govshare"


def test_the_settings_table_is_the_settings_class() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_settings_doc.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    text = (ROOT / "docs" / "settings.md").read_text()
    main_table = text.split("## No longer read")[0]
    documented = re.findall(r"^\| `(GOVSHARE_[A-Z_]+)` \|", main_table, re.M)
    assert documented == [env_name(n) for n in Settings.model_fields]
    for name, field in Settings.model_fields.items():
        assert field.description, f"{name} needs a description"
    assert "(docs/settings.md)" in (ROOT / "README.md").read_text()


def test_nothing_below_the_entry_points_reads_the_environment() -> None:
    readers = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).as_posix()
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"os\.environ\b|getenv\(", line):
                readers.append(f"{rel}:{n}")
    # settings.py reads it; devnet hands the caller's environment on to the brokers
    # it starts (a copy, minus this home's own settings), reading no value itself.
    others = [r for r in readers if not r.startswith("settings.py:")]
    assert len(others) == 1 and others[0].startswith("cli/devnet.py:"), readers


def test_values_are_typed_and_defaults_need_no_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in list(__import__("os").environ):
        if name.startswith("GOVSHARE_"):
            monkeypatch.delenv(name)
    assert load_settings() == Settings.defaults()
    monkeypatch.setenv("GOVSHARE_PORT", "9000")
    monkeypatch.setenv("GOVSHARE_MAX_UPLOAD", "1GiB")
    monkeypatch.setenv("GOVSHARE_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("GOVSHARE_TESTING", "1")
    monkeypatch.setenv("GOVSHARE_STORE", "")  # empty: unset, as shells use it
    monkeypatch.setenv("GOVSHARE_PASSWORD", "pw-never-shown")
    monkeypatch.setenv("GOVSHARE_HOME", str(tmp_path))
    s = load_settings()
    assert (s.port, s.max_upload, s.log_level, s.testing, s.store, s.home) == (
        9000,
        1024**3,
        "warning",
        True,
        None,
        tmp_path,
    )
    assert "pw-never-shown" not in repr(s) and "pw-never-shown" not in repr(s.passwords())
    assert s.passwords().broker == "pw-never-shown"
    assert s.with_overrides(port=80, password=None).passwords().broker is None


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("GOVSHARE_PORT", "abc", "valid integer"),
        ("GOVSHARE_PORT", "70000", "less than or equal to 65535"),
        ("GOVSHARE_LOG_LEVEL", "loud", "'debug', 'info', 'warning' or 'error'"),
        ("GOVSHARE_MAX_UPLOAD", "lots", "not a size"),
        ("GOVSHARE_RECEIPT_BATCH_SIZE", "0", "greater than or equal to 1"),
        ("GOVSHARE_TESTING", "maybe", "valid boolean"),
    ],
)
def test_an_invalid_value_is_one_sentence_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, says: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = info.value.message
    assert message.startswith(f"The setting {name}=") and says in message
    assert "\n" not in message and message.endswith(".")


def test_an_invalid_value_stops_the_cli_with_one_sentence(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "home", {"GOVSHARE_RECEIPT_BATCH_SIZE": "none"})
    r = cli.fails("user", "list", "--dept", "TAX")
    assert r.exit_code == 1
    assert r.stderr.strip().splitlines() == [
        "Error: The setting GOVSHARE_RECEIPT_BATCH_SIZE='none' is not valid: Input should "
        "be a valid integer, unable to parse string as an integer."
    ]
    err = cli.fails("user", "list", "--dept", "TAX", "--json").json()["error"]
    assert err["code"] == "config.invalid"
    assert err["details"]["setting"] == "GOVSHARE_RECEIPT_BATCH_SIZE"
    secret = Cli(tmp_path / "home", {"GOVSHARE_PORT": "x", "GOVSHARE_TOKEN": "gs_never-shown"})
    assert "gs_never-shown" not in secret.fails("user", "list", "--dept", "TAX").output


def test_the_old_second_names_are_no_longer_read(tmp_path: Path) -> None:
    env = {"GOVSHARE_CHAIN_URL": "http://127.0.0.1:1", "GOVSHARE_STORAGE": "local:/x"}
    assert retired_names(env) == [
        f"{old} is no longer read: set {new} instead (see docs/settings.md)."
        for old, new in sorted(RETIRED.items())
    ]
    assert retired_names({"GOVSHARE_PASWORD": "x", "GOVSHARE_SCRYPT_N": "1024"}) == [
        "GOVSHARE_PASWORD is not a govshare setting and is ignored (see docs/settings.md)."
    ]
    cli = Cli(tmp_path / "home", env)
    r = cli.fails("user", "list", "--dept", "TAX")  # (no such department here)
    assert "Warning: GOVSHARE_CHAIN_URL is no longer read: set GOVSHARE_RPC instead" in r.stderr
    assert "Warning: GOVSHARE_STORAGE is no longer read: set GOVSHARE_STORE instead" in r.stderr


def test_serve_flags_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from govshare.cli import serve as serve_module
    from govshare.cli.main import cli

    seen: dict[str, Any] = {}

    def run_broker(home: Path, settings: Settings) -> None:
        seen["settings"] = settings

    monkeypatch.setattr(serve_module, "run_broker", run_broker)
    env = {
        "GOVSHARE_DEPT": "TAX",
        "GOVSHARE_PORT": "9000",
        "GOVSHARE_RPC": "http://env:8545",
        "GOVSHARE_STORE": "local:/env",
        "GOVSHARE_PASSWORD": "from-env",
        "GOVSHARE_RECEIPT_BATCH_AGE": "7",
    }
    args = ["serve", "--port", "9100", "--store", "local:/flag", "--max-upload", "1MiB"]
    result = CliRunner().invoke(cli, [*args, "--password-file", "pw.txt"], env=env)
    assert result.exit_code == 0, result.output
    s: Settings = seen["settings"]
    assert (s.dept, s.port, s.rpc, s.store, s.max_upload) == (
        "TAX",
        9100,
        "http://env:8545",
        "local:/flag",
        1024**2,
    )
    assert s.receipt_batch_age == 7 and s.secrets_dir is None
    # --password-file is the most specific source: it wins over GOVSHARE_PASSWORD
    assert s.passwords().broker is None and s.password_file == Path("pw.txt")
    bad = CliRunner().invoke(cli, ["serve", "--worker-interval", "0"], env=env)
    assert bad.exit_code == 1 and "--worker-interval='0.0' is not valid" in bad.output
