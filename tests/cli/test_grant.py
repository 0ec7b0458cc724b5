"""``govshare grant``: consent from the CLI with the owning department's
administrator key — and nobody else's. Requests are made here straight through
the chain layer with MARKET's broker key (the broker API does this for clerks)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

import pytest

from govshare.chain.devnode import free_port
from govshare.chain.ledger import Ledger
from govshare.errors import Unauthorized
from govshare.profile import load_profile

from .conftest import Cli

FAST = ["--scrypt-n", "1024"]
RECORD = "0x" + hashlib.sha256(b"record-1").hexdigest()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cli, Ledger]]:
    cli = Cli(tmp_path_factory.mktemp("grants") / "home", {"GOVSHARE_PASSWORD": "pw"})
    for code in ["TAX", "MARKET", "COURT"]:
        cli.ok("init", code, "--name", f"Dept {code}", *FAST)
    cli.ok("dev", "chain", "start", "--port", str(free_port()))
    try:
        cli.ok("consortium", "deploy", "--founders", "TAX,MARKET,COURT", "--threshold", "2")
        cli.ok(
            "catalog", "declare", "tax-clearance", "--description", "Certificates", "--as", "TAX"
        )
        ledger = Ledger.from_deployment(cli.home / "deployment.json")
        tax = load_profile(cli.home, "TAX").unlock_broker("pw")
        ledger.records.anchor(
            tax,
            RECORD,
            hashlib.sha256(b"doc").digest(),
            "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH",
            "tax-clearance",
        )
        yield cli, ledger
    finally:
        cli("dev", "chain", "stop")


def _request(cli: Cli, ledger: Ledger, requester: str = "MARKET") -> int:
    broker = load_profile(cli.home, requester).unlock_broker("pw")
    sent = ledger.access.request_access(
        broker, "TAX", RECORD, "business licence", "Licensing Act art. 5", ledger.now() + 3 * 86400
    )
    return int(sent.value)


def test_admin_approves_and_revokes(world: tuple[Cli, Ledger]) -> None:
    cli, ledger = world
    rid = _request(cli, ledger)
    pending = cli.ok(
        "grant", "list", "--dept", "TAX", "--incoming", "--status", "pending", "--json"
    ).json()["requests"]
    assert [r["id"] for r in pending] == [rid]
    assert pending[0]["purpose"] == "business licence"

    out = cli.ok(
        "grant",
        "approve",
        str(rid),
        "--expires",
        "30d",
        "--max-uses",
        "3",
        "--dept",
        "TAX",
        "-y",
        "--json",
    ).json()
    assert out["status"] == "approved" and out["max_uses"] == 3 and out["usable"] is True
    admin = load_profile(cli.home, "TAX").admin_address
    assert out["decided_by"] == admin, "consent is signed by TAX's administrator key"
    assert ledger.access.grant_status(rid).usable

    again = cli.fails(
        "grant",
        "approve",
        str(rid),
        "--expires",
        "1d",
        "--max-uses",
        "1",
        "--dept",
        "TAX",
        "-y",
        "--json",
    ).json()["error"]
    assert again["details"]["reason"] == "AccessLedgerRequestNotPending"

    rev = cli.ok(
        "grant",
        "revoke",
        str(rid),
        "--reason",
        "licence withdrawn",
        "--dept",
        "TAX",
        "-y",
        "--json",
    ).json()
    assert rev["status"] == "revoked" and rev["usable"] is False
    assert ledger.access.grant_status(rid).reason.value == "revoked"
    listed = cli.ok("grant", "list", "--dept", "MARKET", "--outgoing", "--json").json()
    assert {r["id"]: r["status"] for r in listed["requests"]}[rid] == "revoked"


def test_deny_with_reason(world: tuple[Cli, Ledger]) -> None:
    cli, ledger = world
    rid = _request(cli, ledger, "COURT")
    assert (
        "Say why"
        in cli.fails("grant", "deny", str(rid), "--reason", " ", "--dept", "TAX", "-y").stderr
    )
    # a reason goes on chain: one naming a subject is refused, and nothing is sent
    named = cli.fails(
        "grant", "deny", str(rid), "--reason", "91110000710928411X owes tax", "--dept", "TAX",
        "-y", "--json",
    ).json()  # fmt: skip
    assert named["error"]["code"] == "input.identifier_in_text", named
    assert "91110000710928411X" not in str(named)
    assert ledger.access.get_request(rid).status.value == "pending"
    out = cli.ok(
        "grant",
        "deny",
        str(rid),
        "--reason",
        "no legal basis given",
        "--dept",
        "TAX",
        "-y",
        "--json",
    ).json()
    assert out["status"] == "denied" and out["deny_reason"] == "no legal basis given"


def test_nobody_but_the_owner_admin_can_consent(world: tuple[Cli, Ledger]) -> None:
    cli, ledger = world
    rid = _request(cli, ledger)
    # Another department's administrator, through the CLI: refused before signing.
    r = cli.fails(
        "grant", "approve", str(rid), "--expires", "1d", "--max-uses", "1", "--dept", "MARKET", "-y"
    )
    assert "only an administrator of TAX" in r.stderr
    # And on chain, whatever a client does: another admin, TAX's own broker key,
    # MARKET's broker key are all refused by the contract.
    for who, key in [("MARKET", "admin"), ("TAX", "broker"), ("MARKET", "broker")]:
        prof = load_profile(cli.home, who)
        acct = prof.unlock_admin("pw") if key == "admin" else prof.unlock_broker("pw")
        with pytest.raises(Unauthorized) as exc:
            ledger.access.approve(acct, rid, expires_at=ledger.now() + 60, max_uses=1)
        assert exc.value.reason == "AccessLedgerNotOwnerAdmin"
    assert ledger.access.get_request(rid).status.value == "pending"


def test_bad_input_changes_nothing(world: tuple[Cli, Ledger]) -> None:
    cli, ledger = world
    before = ledger.access.request_count()
    assert (
        "no request 999"
        in cli.fails(
            "grant", "approve", "999", "--expires", "1d", "--max-uses", "1", "--dept", "TAX", "-y"
        ).stderr
    )
    assert (
        "not a duration"
        in cli.fails(
            "grant", "approve", "1", "--expires", "soon", "--max-uses", "1", "--dept", "TAX", "-y"
        ).stderr
    )
    assert (
        cli.fails(
            "grant", "approve", "1", "--expires", "1d", "--max-uses", "0", "--dept", "TAX", "-y"
        ).exit_code
        == 2
    )
    assert "need --dept" in cli.fails("grant", "list", "--incoming").output
    wrong = Cli(cli.home, {**{k: v for k, v in os.environ.items()}, "GOVSHARE_PASSWORD": "x"})
    rid = _request(cli, ledger)
    assert (
        "Wrong password"
        in wrong.fails(
            "grant",
            "approve",
            str(rid),
            "--expires",
            "1d",
            "--max-uses",
            "1",
            "--dept",
            "TAX",
            "-y",
        ).stderr
    )
    assert ledger.access.get_request(rid).status.value == "pending"
    assert ledger.access.request_count() == before + 1
