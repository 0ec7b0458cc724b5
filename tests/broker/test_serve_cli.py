"""``govshare serve``: refusals before anything starts, and its helpers."""

from __future__ import annotations

import click
import pytest

from govshare.cli.serve import parse_size

from .conftest import Cli

pytestmark = pytest.mark.integration  # starts processes (see tests/conftest.py)


def test_sizes() -> None:
    assert parse_size("4096") == 4096
    assert parse_size("256MiB") == 256 * 1024**2
    assert parse_size("1G") == 1024**3
    assert parse_size("10 kb") == 10 * 1024
    for bad in ("", "0", "-1", "lots", "5 TB"):
        with pytest.raises(click.BadParameter):
            parse_size(bad)


def test_serve_refuses_cleanly_without_a_profile_or_a_department(cli: Cli) -> None:
    r = cli.fails("serve", "--dept", "TAX")
    assert "No profile for department TAX" in r.output
    r = cli.fails("serve")
    assert "--dept" in r.output
    r = cli.fails("serve", "--dept", "TAX", "--max-upload", "lots")
    assert "not a size" in r.output


def test_serve_needs_a_password_and_a_deployment(cli: Cli) -> None:
    cli.env["GOVSHARE_PASSWORD"] = "pw-for-tests"
    cli.ok("init", "TAX", "--name", "Tax", "--scrypt-n", "1024")
    r = cli.fails("serve", "--dept", "TAX", "--json")
    assert r.json()["error"]["code"] == "config.deployment_not_found"
    cli.env.pop("GOVSHARE_PASSWORD")
    r = cli.fails("serve", "--dept", "TAX", "--json")
    assert r.json()["error"]["code"] == "key.password_unavailable"


def test_serve_reads_profile_and_password_from_a_secrets_dir(cli: Cli) -> None:
    """As in docker/compose.yml: GOVSHARE_SECRETS_DIR holds the profile, its keys
    and broker.password; the home holds only data."""
    cli.env["GOVSHARE_PASSWORD"] = "pw-for-tests"
    cli.ok("init", "TAX", "--name", "Tax", "--scrypt-n", "1024")
    secrets = cli.home / "depts" / "TAX"
    (secrets / "broker.password").write_text("wrong-password\n")
    cli.env.pop("GOVSHARE_PASSWORD")
    cli.env["GOVSHARE_SECRETS_DIR"] = str(secrets)
    cli.env["GOVSHARE_DEPT"] = "TAX"
    r = cli.fails("serve", "--json")
    assert r.json()["error"]["code"] == "key.wrong_password"  # it read the file
    (secrets / "broker.password").write_text("pw-for-tests\n")
    r = cli.fails("serve", "--json")
    assert r.json()["error"]["code"] == "config.deployment_not_found"  # unlocked; no chain yet
