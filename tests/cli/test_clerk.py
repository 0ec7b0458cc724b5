"""The clerk's command line against a real one-machine consortium made by
``govshare dev up`` (anvil + three ``govshare serve`` processes), as a new user
would use it: publish, list, show, fetch; requests; every refusal with its code;
``dev down`` and ``dev up`` again resuming the same home."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli.conftest import Cli, Result
from fakeclock import warp_chain
from govshare.chain.connection import Connection
from govshare.chain.devnode import free_port
from govshare.storage.cid import parse_cid

pytestmark = pytest.mark.integration

CLEAN_ENV = {
    "GOVSHARE_PASSWORD": "clerk-test-password",
    "GOVSHARE_ADMIN_PASSWORD": "clerk-test-admin",
}


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    home = tmp_path_factory.mktemp("consortium") / "home"
    c = Cli(home, CLEAN_ENV)
    for name in ("GOVSHARE_TOKEN", "GOVSHARE_DEPT", "GOVSHARE_PASSWORD_FILE", "GOVSHARE_RPC"):
        c.env.pop(name, None)
    up = c(
        "dev", "up", "--scrypt-n", "1024", "--chain-port", str(free_port()),
        "--base-port", str(free_port()), "--json",
    )  # fmt: skip
    try:
        assert up.exit_code == 0, up.output
        yield c
    finally:
        c("dev", "down")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("files")


def ok_json(cli: Cli, *args: str) -> Any:
    return cli.ok(*args, "--json").json()


def refused(cli: Cli, code: str, *args: str) -> dict[str, Any]:
    r = cli.fails(*args, "--json")
    err: dict[str, Any] = r.json()["error"]
    assert err["code"] == code, r.output
    return err


def publish(cli: Cli, path: Path, *extra: str, dept: str = "TAX") -> Result:
    category = {"TAX": "tax-clearance", "MARKET": "business-licence"}[dept]
    return cli("record", "publish", str(path), "--category", category, "--dept", dept, *extra)


def test_dev_up_made_a_consortium_with_users_and_brokers(cli: Cli) -> None:
    st = ok_json(cli, "dev", "status")
    assert st["chain"]["running"] and st["deployed"] and st["threshold"] == 2
    assert [(b["code"], b["running"], b["ready"]) for b in st["brokers"]] == [
        ("TAX", True, True),
        ("MARKET", True, True),
        ("COURT", True, True),
    ]
    for code in ("TAX", "MARKET", "COURT"):
        for name in ("api.token", "api-admin.token"):
            token_file = cli.home / "depts" / code / name
            assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    cats = ok_json(cli, "catalog", "list")["categories"]
    assert {(c["department"], c["category"]) for c in cats} == {
        ("TAX", "tax-clearance"),
        ("MARKET", "business-licence"),
        ("COURT", "court-judgment"),
    }
    # the password reached the brokers by their environment, not their command line
    for b in st["brokers"]:
        cmdline = Path(f"/proc/{b['pid']}/cmdline").read_bytes()
        assert CLEAN_ENV["GOVSHARE_PASSWORD"].encode() not in cmdline


def test_publish_list_show_and_read_back(cli: Cli, files: Path) -> None:
    data = os.urandom(70_000)
    src = files / "certificate.pdf"
    src.write_bytes(data)
    first = publish(cli, src, "--subject", "91110000710928411X", "--json")
    assert first.exit_code == 0, first.output
    out = first.json()
    rid, key = out["record_id"], out["idempotency_key"]
    assert out["sha256"] == hashlib.sha256(data).hexdigest() and out["replayed"] is False

    # a retry with the printed key returns the original record, never a second one
    again = publish(cli, src, "--subject", "91110000710928411X", "--idempotency-key", key, "--json")
    assert again.exit_code == 0 and again.json()["replayed"] is True
    assert again.json()["record_id"] == rid
    other = files / "other.pdf"
    other.write_bytes(b"something else")
    r = publish(cli, other, "--idempotency-key", key, "--json")
    assert r.exit_code == 1 and r.json()["error"]["code"] == "idempotency.conflict"
    r = cli("record", "publish", str(src), "--category", "nope", "--dept", "TAX", "--json")
    assert r.exit_code == 1 and r.json()["error"]["code"] == "record.unknown_category"

    listed = ok_json(cli, "record", "list", "--dept", "TAX")
    assert [x["record_id"] for x in listed] == [rid]
    assert "certificate.pdf" in cli.ok("record", "list", "--dept", "TAX").stdout
    shown = ok_json(cli, "record", "show", rid, "--dept", "TAX")
    assert shown["status"] == "anchored" and shown["filename"] == "certificate.pdf"
    public = ok_json(cli, "record", "show", rid, "--dept", "COURT")  # the chain's anchor only
    assert public["department"] == "TAX" and public["sha256"] == out["sha256"]
    assert public.get("filename") is None

    back = files / "back.pdf"
    got = ok_json(cli, "record", "fetch", rid, "-o", str(back), "--dept", "TAX")
    assert back.read_bytes() == data and got["grant_id"] is None
    assert stat.S_IMODE(back.stat().st_mode) == 0o600
    r = cli.fails("record", "fetch", rid, "-o", str(back), "--dept", "TAX")
    assert "already exists" in r.stderr
    cli.ok("record", "fetch", rid, "-o", str(back), "--force", "--dept", "TAX")


def _request(cli: Cli, rid: str, dept: str = "MARKET", purpose: str = "licence") -> str:
    out = ok_json(
        cli, "request", "create", "--owner", "TAX", "--record", rid, "--purpose", purpose,
        "--legal-basis", "art. 12", "--deadline", "3d", "--dept", dept,
    )  # fmt: skip
    return str(out["request_id"])


def _grant(cli: Cli, req: str, expires: str = "30d", uses: str = "3") -> None:
    cli.ok("grant", "approve", req, "--dept", "TAX", "--expires", expires, "--max-uses", uses, "-y")


def test_every_refusal_from_the_cli(cli: Cli, files: Path) -> None:
    src = files / "refusals.pdf"
    src.write_bytes(os.urandom(5000))
    rid = publish(cli, src, "--json").json()["record_id"]
    out = files / "refused.pdf"

    def fetch_refused(code: str, *extra: str, dept: str = "MARKET") -> dict[str, Any]:
        err = refused(cli, code, "record", "fetch", rid, "-o", str(out), "--dept", dept, *extra)
        assert not out.exists()  # all or nothing
        assert list(out.parent.glob(".refused.pdf.*")) == []  # no temporary file left
        return err

    fetch_refused("grant.none", dept="COURT")
    pending = _request(cli, rid, purpose="pending one")
    fetch_refused("grant.pending", "--grant", pending)
    incoming = ok_json(cli, "request", "list", "--incoming", "--status", "pending", "--dept", "TAX")
    assert pending in {str(x["id"]) for x in incoming}
    outgoing = ok_json(cli, "request", "list", "--outgoing", "--dept", "TAX")
    assert pending not in {str(x["id"]) for x in outgoing}

    cli.ok("grant", "deny", pending, "--reason", "no legal basis", "--dept", "TAX", "-y")
    fetch_refused("grant.denied", "--grant", pending)
    assert ok_json(cli, "request", "list", "--status", "denied", "--dept", "MARKET")[0][
        "reason"
    ] == ("no legal basis")

    once = _request(cli, rid, purpose="one use")
    _grant(cli, once, uses="1")
    ok_json(
        cli,
        "record",
        "fetch",
        rid,
        "-o",
        str(files / "once.pdf"),
        "--grant",
        once,
        "--dept",
        "MARKET",
    )
    fetch_refused("grant.quota_exhausted", "--grant", once)

    brief = _request(cli, rid, purpose="brief")
    _grant(cli, brief, expires="1h")
    rpc = json.loads((cli.home / "deployment.json").read_text())["rpc_url"]
    with Connection(rpc) as chain:
        warp_chain(chain, 3601)  # the chain's clock passes the grant's expiry
    fetch_refused("grant.expired", "--grant", brief)

    revoked = _request(cli, rid, purpose="revoked")
    _grant(cli, revoked)
    cli.ok("grant", "revoke", revoked, "--reason", "withdrawn", "--dept", "TAX", "-y")
    fetch_refused("grant.revoked", "--grant", revoked)

    # an unknown record, a malformed id
    refused(cli, "record.unknown", "record", "show", "0x" + "ab" * 32, "--dept", "MARKET")
    refused(cli, "input.invalid", "record", "fetch", "0x12", "-o", str(out), "--dept", "MARKET")

    # tokens: another department's token never works at TAX's broker; no token at all
    market_token = (cli.home / "depts" / "MARKET" / "api.token").read_text().strip()
    refused(cli, "auth.invalid_token", "record", "list", "--dept", "TAX", "--token", market_token)
    refused(cli, "auth.invalid_token", "record", "list", "--dept", "TAX", "--token", "gs_nope")
    tax_token = (cli.home / "depts" / "TAX" / "api.token").read_text().strip()
    cli.ok("logout", "--dept", "TAX")
    refused(cli, "cli.token_missing", "record", "list", "--dept", "TAX")
    refused(cli, "auth.invalid_token", "login", "--dept", "TAX", "--token", market_token)
    cli.ok("login", "--dept", "TAX", "--token", tax_token)
    cli.ok("record", "list", "--dept", "TAX")

    # an unreachable broker: a clear sentence, one line, no traceback
    r = cli.fails("record", "list", "--dept", "TAX", "--broker", f"http://127.0.0.1:{free_port()}")
    assert r.stderr.startswith("Error: TAX's broker at") and len(r.stderr.splitlines()) == 1
    refused(
        cli, "cli.broker_unreachable", "record", "list", "--dept", "TAX",
        "--broker", f"http://127.0.0.1:{free_port()}",
    )  # fmt: skip

    # tampered ciphertext in TAX's store: refused, nothing released
    live = _request(cli, rid, purpose="tampering")
    _grant(cli, live)
    cid = parse_cid(ok_json(cli, "record", "show", rid, "--dept", "TAX")["cid"])
    block = cli.home / "depts/TAX/blobs/blocks" / cid.digest[:1].hex() / cid.to_v1().encode()
    good = block.read_bytes()
    block.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    try:
        fetch_refused("storage.block_corrupted", "--grant", live)
    finally:
        block.write_bytes(good)
    ok_json(
        cli,
        "record",
        "fetch",
        rid,
        "-o",
        str(files / "live.pdf"),
        "--grant",
        live,
        "--dept",
        "MARKET",
    )

    # a human-readable refusal is one sentence on stderr
    r = cli.fails("record", "fetch", rid, "-o", str(out), "--dept", "COURT")
    assert r.stdout == "" and r.stderr.startswith("Error: COURT holds no grant")


def test_dev_down_then_up_resumes_the_same_consortium(cli: Cli, files: Path) -> None:
    deployment = json.loads((cli.home / "deployment.json").read_text())
    broker = json.loads((cli.home / "depts/TAX/config.json").read_text())["broker_address"]
    cert = files / "certificate.pdf"
    if not cert.exists():  # run alone (or on another xdist worker than the publish test)
        cert.write_bytes(os.urandom(70_000))
        assert publish(cli, cert, "--json").exit_code == 0
    before = ok_json(cli, "record", "list", "--dept", "TAX")

    down = ok_json(cli, "dev", "down")
    assert down["brokers_stopped"] == ["COURT", "MARKET", "TAX"] and down["chain_stopped"]
    st = ok_json(cli, "dev", "status")
    assert not st["chain"]["running"] and not any(b["running"] for b in st["brokers"])
    refused(cli, "cli.broker_unreachable", "record", "list", "--dept", "TAX")

    up = ok_json(cli, "dev", "up")
    assert up["resumed"] is True
    assert [b["code"] for b in up["brokers"] if b["ready"]] == ["TAX", "MARKET", "COURT"]
    assert json.loads((cli.home / "deployment.json").read_text()) == deployment  # not redeployed
    assert json.loads((cli.home / "depts/TAX/config.json").read_text())["broker_address"] == broker
    assert ok_json(cli, "record", "list", "--dept", "TAX") == before  # same tokens, same data
    back = files / "after-restart.pdf"
    ok_json(cli, "record", "fetch", before[-1]["record_id"], "-o", str(back), "--dept", "TAX")
    assert back.read_bytes() == (files / "certificate.pdf").read_bytes()


def test_the_request_group_carries_remind_and_escalate(tmp_path: Path) -> None:
    out = Cli(tmp_path / "home")("request", "--help")
    assert out.exit_code == 0, out.output
    assert "remind" in out.stdout and "escalate" in out.stdout
