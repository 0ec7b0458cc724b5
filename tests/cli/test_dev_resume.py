"""``govshare dev up`` on a home that changed since the last one: a department
voted in meanwhile gets its broker (users, category, process) on the next
``dev up``, one with a profile but no vote is named with why it is not started;
and the brokers' upload limit is set by ``dev up --max-upload`` (kept for the
next dev up, passed to members voted in later), with a refusal that names the
limit and the setting that raises it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli.conftest import Cli
from govshare.chain.devnode import free_port

pytestmark = pytest.mark.integration

ENV = {"GOVSHARE_PASSWORD": "resume-test-password", "GOVSHARE_ADMIN_PASSWORD": "resume-admin"}


def _cli(home: Path) -> Cli:
    c = Cli(home, ENV)
    for name in ("GOVSHARE_TOKEN", "GOVSHARE_PASSWORD_FILE", "GOVSHARE_RPC", "GOVSHARE_MAX_UPLOAD"):
        c.env.pop(name, None)
    return c


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    c = _cli(tmp_path / "home")
    try:
        yield c
    finally:
        c("dev", "down", timeout=180)


def ok_json(cli: Cli, *args: str) -> Any:
    return cli.ok(*args, "--json").json()


def up(cli: Cli, *extra: str) -> Any:
    return ok_json(
        cli, "dev", "up", "--scrypt-n", "1024", "--chain-port", str(free_port()),
        "--base-port", str(free_port()), *extra,
    )  # fmt: skip


def publish(cli: Cli, path: Path, dept: str, category: str) -> Any:
    return cli("record", "publish", str(path), "--category", category, "--dept", dept, "--json")


def test_resume_starts_members_voted_in_since_with_the_homes_upload_limit(
    cli: Cli, tmp_path: Path
) -> None:
    st = up(cli, "--max-upload", "64KiB")
    assert st["max_upload"] == 64 * 1024
    small, big = tmp_path / "small.bin", tmp_path / "big.bin"
    small.write_bytes(os.urandom(10_000))
    big.write_bytes(os.urandom(64 * 1024 + 1))

    # the refusal names the limit and the setting that raises it
    r = publish(cli, big, "TAX", "tax-clearance")
    assert r.exit_code != 0 and "Traceback" not in r.output
    err = r.json()["error"]
    assert err["code"] == "input.too_large"
    assert "64KiB" in err["message"] and "GOVSHARE_MAX_UPLOAD" in err["message"]
    assert "dev up --max-upload" in err["message"]
    assert publish(cli, small, "TAX", "tax-clearance").exit_code == 0
    human = cli.ok("dev", "status").stdout
    assert "uploads   at most 64KiB per record" in human

    # running brokers keep their limit: a new one is refused, saying how, changing nothing
    r = cli.fails("dev", "up", "--max-upload", "1MiB")
    assert "run with an upload limit of 64KiB" in r.stderr
    assert "`govshare dev down`, then `govshare dev up --max-upload 1MiB`" in r.stderr
    assert ok_json(cli, "dev", "status")["max_upload"] == 64 * 1024
    r = cli.fails("dev", "up", "--max-upload", "lots")
    assert "'lots' is not a size" in r.stderr

    # CUSTOMS is voted in; PORTS has a profile in this home but no vote
    for code, name in (("CUSTOMS", "Customs Office"), ("PORTS", "Port Authority")):
        cli.ok(
            "init", code, "--name", name, "--scrypt-n", "1024",
            "--endpoint", f"http://127.0.0.1:{free_port()}",
        )  # fmt: skip
    cli.ok("dept", "propose", "add", "CUSTOMS", "--as", "TAX", "-y")
    cli.ok("dept", "approve", "1", "--as", "MARKET", "-y")

    # dev up again (brokers running): CUSTOMS's broker starts, PORTS is named with why not
    resumed = ok_json(cli, "dev", "up")
    assert resumed["resumed"] is True
    assert [(b["code"], b["running"], b["ready"]) for b in resumed["brokers"]] == [
        ("TAX", True, True),
        ("MARKET", True, True),
        ("COURT", True, True),
        ("CUSTOMS", True, True),
    ]
    assert list(resumed["not_started"]) == ["PORTS"]
    assert "not an active member" in resumed["not_started"]["PORTS"]
    assert (cli.home / "depts" / "CUSTOMS" / "api.token").is_file()  # its clerk's token
    cats = ok_json(cli, "catalog", "list", "--dept", "CUSTOMS")["categories"]
    assert [c["category"] for c in cats] == ["customs-declaration"]
    # CUSTOMS's broker serves its clerk, with the home's upload limit
    assert publish(cli, small, "CUSTOMS", "customs-declaration").exit_code == 0
    r = publish(cli, big, "CUSTOMS", "customs-declaration")
    assert r.json()["error"]["code"] == "input.too_large" and "64KiB" in r.output

    # after dev down, the next dev up starts all four again, the limit kept
    down = ok_json(cli, "dev", "down")
    assert down["brokers_stopped"] == ["COURT", "CUSTOMS", "MARKET", "TAX"]
    again = cli.ok("dev", "up")
    assert "CUSTOMS" in again.stdout and "PORTS" in again.stdout
    assert "not an active member" in again.stdout
    st = ok_json(cli, "dev", "status")
    assert [b["code"] for b in st["brokers"] if b["ready"]] == ["TAX", "MARKET", "COURT", "CUSTOMS"]
    assert st["max_upload"] == 64 * 1024

    # a new limit once the brokers are down
    cli.ok("dev", "down")
    assert ok_json(cli, "dev", "up", "--max-upload", "1MiB")["max_upload"] == 1024**2
    assert publish(cli, big, "TAX", "tax-clearance").exit_code == 0


@pytest.mark.slow
def test_a_record_over_256_mib_publishes_with_a_raised_limit(cli: Cli, tmp_path: Path) -> None:
    """The default limit (256MiB) refuses it; ``dev up --max-upload 1GiB`` takes it."""
    big = tmp_path / "archive.bin"
    with big.open("wb") as fh:
        for _ in range(300):  # 300 MiB
            fh.write(os.urandom(1024**2))
    up(cli)
    r = publish(cli, big, "TAX", "tax-clearance")
    assert r.json()["error"]["code"] == "input.too_large" and "256MiB" in r.output
    cli.ok("dev", "down")
    assert ok_json(cli, "dev", "up", "--max-upload", "1GiB")["max_upload"] == 1024**3
    r = publish(cli, big, "TAX", "tax-clearance")
    assert r.exit_code == 0, r.output
    assert r.json()["size"] == 300 * 1024**2
