"""Absurd durations and numbers at the command line: one sentence and a stable
code, before anything is sent (no chain, no broker runs here)."""

from __future__ import annotations

import pytest

from cliharness import Cli

RECORD = "0x" + "ab" * 32


def refused(cli: Cli, code: str, *args: str) -> str:
    """Refused with ``code`` (in --json), and with one clean sentence without it."""
    err = cli.fails(*args, "--json").json()["error"]
    assert err["code"] == code, err
    plain = cli.fails(*args)
    assert plain.exit_code == 1 and plain.stdout == ""
    line = plain.stderr.strip()
    assert line.startswith("Error: ") and "\n" not in line
    return line


@pytest.mark.parametrize(
    ("deadline", "shown"),
    [
        ("500000w", "A deadline of 500000w is too long: at most 365d."),
        ("366d", "A deadline of 366d is too long: at most 365d."),
        ("9" * 5000 + "d", "A deadline of 999999999999…d is too long: at most 365d."),
    ],
)
def test_request_create_refuses_a_deadline_beyond_a_year(
    cli: Cli, deadline: str, shown: str
) -> None:
    args = ["request", "create", "--owner", "TAX", "--record", RECORD, "--purpose", "p"]
    line = refused(cli, "input.out_of_range", *args, "--deadline", deadline, "--dept", "MARKET")
    assert line == f"Error: {shown}"


def test_request_create_refuses_what_is_no_duration(cli: Cli) -> None:
    args = ["request", "create", "--owner", "TAX", "--record", RECORD, "--purpose", "p"]
    refused(cli, "input.invalid", *args, "--deadline", "0d", "--dept", "MARKET")


@pytest.mark.parametrize("expires", ["3651d", "10000w", "99999999999999999999999s"])
def test_grant_approve_refuses_a_grant_beyond_ten_years(cli: Cli, expires: str) -> None:
    line = refused(
        cli,
        "input.out_of_range",
        *["grant", "approve", "7", "--expires", expires, "--max-uses", "1"],
        *["--dept", "TAX", "-y"],
    )
    assert line.endswith("is too long: at most 3650d.")


def test_grant_approve_refuses_a_quota_beyond_32_bits(cli: Cli) -> None:
    r = cli.fails(
        "grant", "approve", "7", "--expires", "30d", "--max-uses", str(2**32), "--dept", "TAX"
    )
    assert r.exit_code == 2 and "--max-uses" in r.stderr  # click's usage error


def test_consortium_deploy_refuses_a_proposal_lifetime_beyond_a_year(cli: Cli) -> None:
    line = refused(
        cli,
        "input.out_of_range",
        *["consortium", "deploy", "--founders", "TAX", "--threshold", "1"],
        *["--proposal-lifetime", "53w"],
    )
    assert line == "Error: A proposal lifetime of 53w is too long: at most 365d."
