"""The new-user path of the ledger, through the real console script:
``init`` ×4, ``dev chain start``, ``consortium deploy``, ``dept list``; a fourth
department is added by proposal and approvals — and not before the threshold
is met; governance refusals; the catalog; key rotation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from govshare.chain.devnode import free_port
from govshare.crypto import load_eth_keystore

from .conftest import Cli

FAST = ["--scrypt-n", "1024"]


@pytest.fixture(scope="module")
def consortium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    cli = Cli(tmp_path_factory.mktemp("consortium") / "home", {"GOVSHARE_PASSWORD": "pw"})
    for code, name in [
        ("TAX", "Tax Bureau"),
        ("MARKET", "Market Regulator"),
        ("COURT", "People's Court"),
        ("CUSTOMS", "Customs"),
    ]:
        cli.ok("init", code, "--name", name, *FAST)
    cli.ok("dev", "chain", "start", "--port", str(free_port()))
    try:
        yield cli
    finally:
        cli("dev", "chain", "stop")


def _statuses(cli: Cli) -> dict[str, str]:
    return {d["code"]: d["status"] for d in cli.ok("dept", "list", "--json").json()["departments"]}


def test_deploy_and_add_a_fourth_department_by_threshold(consortium: Cli) -> None:
    cli = consortium
    assert "no deployment file" in cli.fails("dept", "list").stderr.lower()

    dep = cli.ok(
        "consortium", "deploy", "--founders", "TAX,MARKET,COURT", "--threshold", "2", "--json"
    ).json()
    assert set(dep["contracts"]) == {"ConsortiumRegistry", "RecordRegistry", "AccessLedger"}
    assert dep["founders"] == ["TAX", "MARKET", "COURT"]
    assert _statuses(cli) == {"TAX": "active", "MARKET": "active", "COURT": "active"}
    again = cli.fails("consortium", "deploy", "--founders", "TAX", "--threshold", "1")
    assert "already exists" in again.stderr

    p = cli.ok("dept", "propose", "add", "CUSTOMS", "--as", "TAX", "-y", "--json").json()
    pid = str(p["id"])
    assert p["status"] == "pending" and p["approval_count"] == 1 and p["threshold"] == 2
    # One approval of two: CUSTOMS is not a member yet.
    assert "CUSTOMS" not in _statuses(cli)
    listed = cli.ok("dept", "proposals", "--json").json()["proposals"]
    assert [x["id"] for x in listed] == [int(pid)] and listed[0]["approved_by"] == ["TAX"]

    dup = cli.fails("dept", "approve", pid, "--as", "TAX", "-y", "--json").json()["error"]
    assert dup["code"] == "chain.reverted"
    assert dup["details"]["reason"] == "ConsortiumRegistryAlreadyApproved"
    assert "CUSTOMS" not in _statuses(cli)

    # CUSTOMS cannot vote itself in: it is not a member.
    own = cli.fails("dept", "approve", pid, "--as", "CUSTOMS", "-y", "--json").json()["error"]
    assert own["details"]["reason"] == "ConsortiumRegistryNotActiveAdmin"

    done = cli.ok("dept", "approve", pid, "--as", "MARKET", "-y", "--json").json()
    assert done["executed"] is True and done["status"] == "executed"
    assert _statuses(cli)["CUSTOMS"] == "active"
    shown = cli.ok("dept", "show", "customs", "--json").json()
    assert shown["name"] == "Customs" and shown["endpoint"] == "http://127.0.0.1:8704"
    assert cli.ok("dept", "proposals", "--json").json()["proposals"] == []


def test_governance_refusals_change_nothing(consortium: Cli) -> None:
    cli = consortium
    before = cli.ok("dept", "list", "--json").json()
    r = cli.fails("dept", "approve", "999", "--as", "TAX", "-y", "--json").json()["error"]
    assert r["details"]["reason"] == "ConsortiumRegistryUnknownProposal"
    assert "no department NOPE" in cli.fails("dept", "show", "NOPE").stderr
    assert (
        "No profile for department NOPE"
        in cli.fails("dept", "propose", "suspend", "COURT", "--as", "NOPE", "-y").stderr
    )
    wrong = Cli(cli.home, {"GOVSHARE_PASSWORD": "not-it"})
    assert (
        "Wrong password"
        in wrong.fails("dept", "propose", "suspend", "COURT", "--as", "TAX", "-y").stderr
    )
    t = cli.fails("dept", "propose", "threshold", "9", "--as", "TAX", "-y", "--json").json()
    assert t["error"]["details"]["reason"] == "ConsortiumRegistryInvalidThreshold"
    # No terminal and no -y: refused before anything is signed.
    assert "Cancelled" in cli.fails("dept", "propose", "suspend", "COURT", "--as", "TAX").output
    assert cli.ok("dept", "list", "--json").json() == before
    assert cli.ok("dept", "proposals", "--json").json()["proposals"] == []


def test_a_joining_departments_name_is_shown_escaped(consortium: Cli, tmp_path: Path) -> None:
    """The public entry of a department asking to join is written by that department:
    its name, in the confirmation the proposer reads, shows its escape sequences
    instead of playing them (it could otherwise rewrite what the question says)."""
    import json

    other = Cli(tmp_path / "elsewhere", {"GOVSHARE_PASSWORD": "pw"})
    entry = other.ok("init", "EVIL", "--name", "Evil", *FAST, "--json").json()
    entry["name"] = "Evil\x1b[2K\rPropose adding AUDITOR (National Audit Office) \u202e?oN"
    bundle = tmp_path / "evil.json"
    bundle.write_text(json.dumps(entry))
    asked = consortium("dept", "propose", "add", "EVIL", "--from", str(bundle), "--as", "TAX",
                       input="n\n")  # fmt: skip
    assert asked.exit_code == 1 and "Cancelled; nothing was sent" in asked.stderr
    assert "\x1b" not in asked.stdout and "\r" not in asked.stdout and "\u202e" not in asked.stdout
    assert "Evil\\x1b[2K\\x0dPropose adding AUDITOR" in asked.stdout, asked.stdout
    assert "\\u202e?oN" in asked.stdout
    assert consortium.ok("dept", "proposals", "--json").json()["proposals"] == []


def test_catalog_declare_and_list(consortium: Cli, tmp_path: Path) -> None:
    cli = consortium
    schema = tmp_path / "schema.json"
    schema.write_text('{"type": "object"}')
    cli.ok(
        "catalog",
        "declare",
        "tax-clearance",
        "--description",
        "Tax clearance certificates",
        "--schema",
        str(schema),
        "--as",
        "TAX",
    )
    cli.ok(
        "catalog",
        "declare",
        "business-licence",
        "--description",
        "Business licences",
        "--as",
        "MARKET",
    )
    tax = cli.ok("catalog", "list", "--dept", "TAX", "--json").json()["categories"]
    assert [(c["category"], c["description"], c["active"]) for c in tax] == [
        ("tax-clearance", "Tax clearance certificates", True)
    ]
    import hashlib

    assert tax[0]["schema_hash"] == "0x" + hashlib.sha256(schema.read_bytes()).hexdigest()
    everything = cli.ok("catalog", "list", "--json").json()["categories"]
    assert {(c["department"], c["category"]) for c in everything} >= {
        ("TAX", "tax-clearance"),
        ("MARKET", "business-licence"),
    }
    assert (
        "empty" in cli.fails("catalog", "declare", "x", "--description", " ", "--as", "TAX").stderr
    )
    assert "no department NOPE" in cli.fails("catalog", "list", "--dept", "NOPE").stderr


def test_rotate_keys_and_endpoint(consortium: Cli) -> None:
    cli = consortium
    old = cli.ok("dept", "show", "COURT", "--json").json()
    out = cli.ok(
        "dept",
        "rotate",
        "--as",
        "COURT",
        "--endpoint",
        "http://127.0.0.1:9903",
        "--new-broker-key",
        "--new-encryption-key",
        "-y",
        "--json",
    ).json()
    new = out["department"]
    assert new["endpoint"] == "http://127.0.0.1:9903"
    assert new["broker"] != old["broker"] and new["encryption_key"] != old["encryption_key"]
    d = cli.home / "depts" / "COURT"
    # The local keystore now holds the registered broker key; the old one is kept.
    assert load_eth_keystore(d / "broker.keystore.json", "pw").address == new["broker"]
    assert len(list((d / "retired").iterdir())) == 2
    assert "Say what to rotate" in cli.fails("dept", "rotate", "--as", "COURT", "-y").output


def test_chain_down_is_a_clear_error(consortium: Cli) -> None:
    cli = consortium
    cli.ok("dev", "chain", "stop")
    try:
        err = cli.fails("dept", "list", "--json").json()["error"]
        assert err["code"] == "chain.unavailable"
        assert "govshare dev chain start" in err["message"]
    finally:
        cli.ok("dev", "chain", "start")
    # The ledger survived the restart.
    assert _statuses(cli)["CUSTOMS"] == "active"


def test_allowlists_follow_the_registry(consortium: Cli, tmp_path: Path) -> None:
    """`consortium allowlists` reads the accounts of the *active* departments from
    the real registry (CUSTOMS joined above, so its accounts are in)."""
    import tomllib

    cli = consortium
    net = tmp_path / "net"
    cli.ok("consortium", "genesis", "--validators", "4", "--chain-id", "2026", "--out", str(net))
    target = net / "permissions" / "permissions_config.toml"
    url = cli.ok("dev", "chain", "status", "--json").json()["url"]
    cli.ok(
        "consortium",
        "allowlists",
        "--rpc",
        url,
        "--nodes",
        str(net / "nodes.json"),
        "--out",
        str(target),
    )
    cfg = tomllib.loads(target.read_text())
    depts = cli.ok("dept", "list", "--json").json()["departments"]
    expected = {
        a.lower() for d in depts if d["status"] == "active" for a in [d["broker"], *d["admins"]]
    }
    assert {a.lower() for a in cfg["accounts-allowlist"]} == expected
    assert len(cfg["nodes-allowlist"]) == 4
