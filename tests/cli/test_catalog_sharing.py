"""Catalog-driven sharing from the command line, on a ``dev up`` consortium.

TAX holds tax-clearance certificates about an enterprise. MARKET finds them by
the enterprise's id, asks for them by subject, TAX's administrator approves,
MARKET fetches the latest version; TAX publishes a new version, and MARKET gets
it under the same grant. COURT asks for the latest version only, and keeps
getting the version that was current when it was granted. A category TAX shares
unconditionally is granted by the contract at once; one it does not share is
refused with one sentence. Nothing on the chain names the enterprise.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from eth_utils import keccak
from prov.model import ProvDocument

from cli.conftest import Cli
from govshare.chain.devnode import free_port
from integration.world import wait_for

pytestmark = pytest.mark.integration

ENV = {
    "GOVSHARE_PASSWORD": "sharing-password",
    "GOVSHARE_ADMIN_PASSWORD": "sharing-admin",
    # the brokers anchor each receipt at once, so the audit trail shows it
    "GOVSHARE_RECEIPT_BATCH_AGE": "0",
}
ENTERPRISE = "9111 0000-7109 2841XA"  # normalised: 9111000071092841XA
OTHER = "91320000134789512Q"


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    c = Cli(tmp_path_factory.mktemp("sharing") / "home", dict(ENV))
    for name in ("GOVSHARE_TOKEN", "GOVSHARE_DEPT", "GOVSHARE_PASSWORD_FILE", "GOVSHARE_RPC"):
        c.env.pop(name, None)
    try:
        yield c
    finally:
        c("dev", "down")


@pytest.fixture(scope="module")
def up(cli: Cli) -> dict:
    return cli.ok(
        "dev", "up", "--departments", "TAX,MARKET,COURT", "--scrypt-n", "1024",
        "--chain-port", str(free_port()), "--base-port", str(free_port()), "--json",
        timeout=300,
    ).json()  # fmt: skip


def publish(cli: Cli, path: Path, data: bytes, category: str, *extra: str) -> str:
    path.write_bytes(data)
    out = cli.ok(
        "record", "publish", str(path), "--category", category, "--dept", "TAX", "--json", *extra
    ).json()
    assert out.get("state") != "anchoring" and out.get("block_number"), out
    return str(out["record_id"])


def fetch(cli: Cli, dept: str, out: Path, category: str = "tax-clearance") -> dict:
    return cli.ok(
        "record", "fetch", "--owner", "TAX", "--category", category, "--subject", ENTERPRISE,
        "-o", str(out), "--force", "--dept", dept, "--json",
    ).json()  # fmt: skip


def ask(cli: Cli, dept: str, category: str = "tax-clearance", *extra: str) -> dict:
    return cli.ok(
        "request", "create", "--owner", "TAX", "--category", category,
        "--subject", ENTERPRISE, "--purpose", "business licence renewal",
        "--legal-basis", "Licensing Regulation art. 12", "--dept", dept, "--json", *extra,
    ).json()  # fmt: skip


def test_find_request_approve_and_follow_new_versions(cli: Cli, up: dict, tmp_path: Path) -> None:
    v1 = publish(cli, tmp_path / "v1.pdf", b"clearance 2025 " + os.urandom(64),
                 "tax-clearance", "--subject", ENTERPRISE)  # fmt: skip
    publish(cli, tmp_path / "other.pdf", os.urandom(64), "tax-clearance", "--subject", OTHER)

    # The same id written otherwise (no spaces, lower case): the same reference.
    found = cli.ok(
        "record", "find", "--owner", "TAX", "--category", "tax-clearance",
        "--subject", "9111000071092841xa", "--dept", "MARKET", "--json",
    ).json()  # fmt: skip
    assert [r["record_id"] for r in found] == [v1]
    human = cli.ok(
        "record", "find", "--owner", "TAX", "--category", "tax-clearance",
        "--subject", ENTERPRISE, "--dept", "MARKET",
    ).output  # fmt: skip
    assert v1 in human and "current" in human

    # A request by subject; nothing is granted until TAX's administrator decides.
    req = ask(cli, "MARKET")
    assert req["granted"] is False and "subject" not in req
    early = cli.fails(
        "record", "fetch", "--owner", "TAX", "--category", "tax-clearance",
        "--subject", ENTERPRISE, "-o", str(tmp_path / "early.pdf"), "--dept", "MARKET",
    )  # fmt: skip
    assert "not been decided yet" in early.output and "Traceback" not in early.output
    incoming = cli.ok("request", "list", "--incoming", "--dept", "TAX", "--json").json()
    mine = next(r for r in incoming if r["id"] == req["request_id"])
    assert mine["category"] == "tax-clearance" and mine["subject_ref"].startswith("0x")
    assert mine["record_id"] == "0x" + "0" * 64
    # The administrator reads what is asked before confirming.
    shown = cli.ok("grant", "approve", str(req["request_id"]), "--dept", "TAX", "--expires",
                   "30d", "--max-uses", "5", input="y\n").output  # fmt: skip
    assert "for its tax-clearance records about the subject 0x" in shown
    assert "and those published while it is valid" in shown
    listed = cli.ok("grant", "list", "--dept", "TAX").output
    assert "tax-clearance about 0x" in listed

    got = fetch(cli, "MARKET", tmp_path / "got1.pdf")
    assert got["record_id"] == v1 and got["grant_id"] == req["request_id"]
    assert (tmp_path / "got1.pdf").read_bytes() == (tmp_path / "v1.pdf").read_bytes()

    # TAX publishes the next version: MARKET's grant covers it, no new request.
    v2 = publish(cli, tmp_path / "v2.pdf", b"clearance 2026 " + os.urandom(64),
                 "tax-clearance", "--subject", ENTERPRISE, "--supersedes", v1)  # fmt: skip
    found = cli.ok(
        "record", "find", "--owner", "TAX", "--category", "tax-clearance",
        "--subject", ENTERPRISE, "--dept", "MARKET", "--json",
    ).json()  # fmt: skip
    assert [r["record_id"] for r in found] == [v2, v1]
    assert found[1]["superseded_by"] == v2
    got = fetch(cli, "MARKET", tmp_path / "got2.pdf")
    assert got["record_id"] == v2 and got["grant_id"] == req["request_id"]
    assert (tmp_path / "got2.pdf").read_bytes() == (tmp_path / "v2.pdf").read_bytes()

    # COURT asks for the latest version only: it keeps the one current when granted.
    latest = ask(cli, "COURT", "tax-clearance", "--latest-only")
    cli.ok("grant", "approve", str(latest["request_id"]), "--dept", "TAX", "--expires", "30d",
           "--max-uses", "5", "-y")  # fmt: skip
    publish(cli, tmp_path / "v3.pdf", b"clearance 2027 " + os.urandom(64),
            "tax-clearance", "--subject", ENTERPRISE, "--supersedes", v2)  # fmt: skip
    got = fetch(cli, "COURT", tmp_path / "court.pdf")
    assert got["record_id"] == v2
    assert (tmp_path / "court.pdf").read_bytes() == (tmp_path / "v2.pdf").read_bytes()
    # ... while MARKET's grant follows to v3.
    got = fetch(cli, "MARKET", tmp_path / "got3.pdf")
    assert (tmp_path / "got3.pdf").read_bytes() == (tmp_path / "v3.pdf").read_bytes()
    assert got["record_id"] != v2 and got["receipt_seq"] is not None

    # The audit trail (of the record's versions) shows MARKET's grant by subject and
    # a receipt per version delivered, each naming its version, proofs checked; the
    # PROV export has each access use the version it delivered.
    def trail_with_receipt() -> dict | None:
        t = cli.ok("audit", "trail", v2, "--format", "json").json()
        grants = [r for r in t["requests"] if r["id"] == req["request_id"]]
        return t if grants and len(grants[0]["receipts"]) == 3 else None

    trail = wait_for(trail_with_receipt, "the receipt of v2 anchored in TAX's batches")
    assert trail["ok"], trail["problems"]
    grant = next(r for r in trail["requests"] if r["id"] == req["request_id"])
    assert grant["by_subject"] and grant["category"] == "tax-clearance"
    assert grant["version"] is None and not grant["granted_by_contract"]
    v3 = next(v["record_id"] for v in trail["versions"] if v["version"] == 3)
    assert [c["record_id"] for c in grant["receipts"]] == [v1, v2, v3]
    assert all(c["ok"] for c in grant["receipts"])
    accessed = [e["text"] for e in trail["timeline"] if e["kind"] == "accessed"]
    for n in (1, 2, 3):
        assert any(f"MARKET received version {n} from TAX under grant #" in t for t in accessed)
    prov = cli.ok("audit", "trail", v2, "--format", "prov").json()
    ProvDocument.deserialize(content=json.dumps(prov), format="json")  # the prov library reads it
    used = [u["prov:entity"] for u in prov.get("used", {}).values()]
    assert {f"rec:{v1}", f"rec:{v2}", f"rec:{v3}", f"scope:{req['request_id']}"} <= set(used)


def test_unconditional_is_granted_by_the_contract_and_none_is_refused(
    cli: Cli, up: dict, tmp_path: Path
) -> None:
    out = cli.ok(
        "catalog", "declare", "tax-status", "--description", "Whether an enterprise is in good "
        "standing", "--sharing", "unconditional", "--default-expires", "7d",
        "--default-max-uses", "2", "--as", "TAX", "--json",
    ).json()  # fmt: skip
    assert out["sharing"] == "unconditional" and out["default_ttl"] == 7 * 86400
    assert len(out["tx_hashes"]) == 2  # the declaration, then the sharing change
    listed = cli.ok("catalog", "list", "--dept", "TAX").output
    assert "unconditional (7d, 2 use(s))" in listed
    status = publish(cli, tmp_path / "status.pdf", b"in good standing", "tax-status",
                     "--subject", ENTERPRISE)  # fmt: skip

    req = ask(cli, "MARKET", "tax-status")
    assert req["granted"] is True
    human = cli.ok(
        "request", "create", "--owner", "TAX", "--category", "tax-status", "--subject",
        ENTERPRISE, "--purpose", "check", "--dept", "COURT",
    ).output  # fmt: skip
    assert "granted at once by the contract" in human
    got = fetch(cli, "MARKET", tmp_path / "status-got.pdf", "tax-status")
    assert got["record_id"] == status and got["grant_id"] == req["request_id"]
    grants = cli.ok("request", "list", "--outgoing", "--dept", "MARKET", "--json").json()
    auto = next(r for r in grants if r["id"] == req["request_id"])
    assert auto["status"] == "approved" and auto["max_uses"] == 2

    # Not shared: the contract refuses, and the clerk reads one sentence.
    cli.ok("catalog", "declare", "tax-audit", "--description", "Tax audit files",
           "--sharing", "none", "--as", "TAX")  # fmt: skip
    refused = cli.fails(
        "request", "create", "--owner", "TAX", "--category", "tax-audit", "--subject",
        ENTERPRISE, "--purpose", "curious", "--dept", "MARKET",
    )  # fmt: skip
    assert "does not share its tax-audit records" in refused.output
    assert "Traceback" not in refused.output and len(refused.output.strip().splitlines()) <= 3
    # Changing the type is an admin transaction: back to conditional, the request is pending.
    cli.ok("catalog", "declare", "tax-audit", "--sharing", "conditional", "--as", "TAX")
    assert ask(cli, "MARKET", "tax-audit")["granted"] is False

    # Bad declarations: a clear error, nothing sent.
    bad = cli.fails("catalog", "declare", "tax-audit", "--sharing", "none",
                    "--default-max-uses", "3", "--as", "TAX")  # fmt: skip
    assert "takes no grant defaults" in bad.output
    bad = cli.fails("catalog", "declare", "brand-new", "--sharing", "none", "--as", "TAX")
    assert "needs a description" in bad.output


def test_the_chain_never_names_the_subject(cli: Cli, up: dict) -> None:
    """Every log and every transaction's input on the chain, searched for the
    enterprise's id (as typed, normalised) and its unkeyed hashes: none found."""
    url = up["chain"]["url"]
    with httpx.Client(timeout=30) as rpc:

        def call(method: str, params: list) -> object:
            r = rpc.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
            return r.json()["result"]

        head = int(str(call("eth_blockNumber", [])), 16)
        logs = call("eth_getLogs", [{"fromBlock": "0x0", "toBlock": hex(head)}])
        blocks = [call("eth_getBlockByNumber", [hex(n), True]) for n in range(head + 1)]
    assert isinstance(logs, list) and logs  # the tests above wrote plenty
    haystack = (json.dumps(logs) + json.dumps(blocks)).lower()
    normal = "9111000071092841XA"
    needles = set()
    for text in (ENTERPRISE, normal, normal.lower()):
        raw = text.encode()
        needles |= {raw.hex(), hashlib.sha256(raw).hexdigest(), keccak(raw).hex()}
    assert not [n for n in needles if n in haystack]


def test_a_grant_by_subject_opens_nothing_else(cli: Cli, up: dict, tmp_path: Path) -> None:
    """The owner's broker checks every delivery under a grant by subject: a record
    about another subject, or (latest only) a later version, is refused."""
    subject_a, subject_b = "91440300MA5DC1234X", "91440300MA5DC9999Y"
    a1 = publish(cli, tmp_path / "a1.pdf", os.urandom(40), "tax-clearance",
                 "--subject", subject_a)  # fmt: skip
    b1 = publish(cli, tmp_path / "b1.pdf", os.urandom(40), "tax-clearance",
                 "--subject", subject_b)  # fmt: skip
    req = cli.ok(
        "request", "create", "--owner", "TAX", "--category", "tax-clearance",
        "--subject", subject_a, "--latest-only", "--purpose", "check", "--dept", "COURT",
        "--json",
    ).json()  # fmt: skip
    gid = str(req["request_id"])
    cli.ok("grant", "approve", gid, "--dept", "TAX", "--expires", "1d", "--max-uses", "9", "-y")

    # Under its grant for subject A, COURT asks by id for subject B's record: refused.
    refused = cli.fails(
        "record", "fetch", b1, "--grant", gid, "-o", str(tmp_path / "b.pdf"), "--dept", "COURT"
    )
    assert "does not cover record" in refused.output and not (tmp_path / "b.pdf").exists()
    # A's record itself, by id under the same grant: delivered.
    cli.ok("record", "fetch", a1, "--grant", gid, "-o", str(tmp_path / "a.pdf"), "--dept", "COURT")
    assert (tmp_path / "a.pdf").read_bytes() == (tmp_path / "a1.pdf").read_bytes()
    # A later version of A: not covered by a latest-only grant, even asked by id.
    a2 = publish(cli, tmp_path / "a2.pdf", os.urandom(40), "tax-clearance",
                 "--subject", subject_a, "--supersedes", a1)  # fmt: skip
    refused = cli.fails(
        "record", "fetch", a2, "--grant", gid, "-o", str(tmp_path / "a2-got.pdf"),
        "--dept", "COURT",
    )  # fmt: skip
    assert "does not cover record" in refused.output
    # Neither the fetch by subject: it delivers the version current when granted.
    got = fetch_about(cli, "COURT", subject_a, tmp_path / "latest.pdf")
    assert got["record_id"] == a1


def fetch_about(cli: Cli, dept: str, subject: str, out: Path) -> dict:
    return cli.ok(
        "record", "fetch", "--owner", "TAX", "--category", "tax-clearance", "--subject",
        subject, "-o", str(out), "--force", "--dept", dept, "--json",
    ).json()  # fmt: skip


def test_bad_usage_is_refused_before_anything_is_sent(cli: Cli, up: dict, tmp_path: Path) -> None:
    out = str(tmp_path / "x.pdf")
    cases = [
        (("request", "create", "--owner", "TAX", "--purpose", "p", "--dept", "MARKET"),
         "--record ID, or --category C and --subject ID"),
        (("request", "create", "--owner", "TAX", "--record", "0x" + "ab" * 32, "--category",
          "tax-clearance", "--subject", "X1", "--purpose", "p", "--dept", "MARKET"),
         "not both"),
        (("request", "create", "--owner", "TAX", "--category", "tax-clearance", "--purpose",
          "p", "--dept", "MARKET"), "--category C and --subject ID"),
        (("record", "fetch", "-o", out, "--owner", "TAX", "--dept", "MARKET"),
         "needs --owner, --category and --subject"),
        (("record", "fetch", "0x" + "ab" * 32, "-o", out, "--owner", "TAX", "--dept", "MARKET"),
         "by ID, or by --owner"),
        (("catalog", "declare", "tax-clearance", "--default-max-uses", "2", "--as", "TAX"),
         "go with --sharing"),
        (("catalog", "declare", "tax-clearance", "--sharing", "unconditional",
          "--default-expires", "20y", "--as", "TAX"), "not a duration"),
        (("catalog", "declare", "tax-clearance", "--sharing", "unconditional",
          "--default-max-uses", "0", "--as", "TAX"), "1 to 4,294,967,295"),
    ]  # fmt: skip
    before = cli.ok("request", "list", "--outgoing", "--dept", "MARKET", "--json").json()
    for args, message in cases:
        r = cli.fails(*args)
        assert message in r.output, (args, r.output)
        assert "Traceback" not in r.output
    assert cli.ok("request", "list", "--outgoing", "--dept", "MARKET", "--json").json() == before
    # A department that declared no such category, and an unknown one, in one sentence.
    r = cli.fails(
        "request", "create", "--owner", "TAX", "--category", "no-such", "--subject", "X1",
        "--purpose", "p", "--dept", "MARKET",
    )  # fmt: skip
    assert "has not declared the category 'no-such'" in r.output
    r = cli.fails(
        "record", "find", "--owner", "TAX", "--category", "tax-clearance", "--subject",
        "\x1b[2J", "--dept", "MARKET",
    )  # fmt: skip
    assert "Traceback" not in r.output and "\x1b" not in r.output


#: What a hostile department writes as its purpose, straight on chain (the broker
#: API refuses control characters; the contract does not): clear the screen, move
#: home, print "approved", carriage return, backspaces, an OSC window title, a
#: right-to-left override, a C1 CSI.
HOSTILE = (
    "\x1b[2J\x1b[1;1HAPPROVED by TAX\r\b\b\x1b]0;owned\x07 licence \u202egnp.exe\u202c"
    "\n  legal basis: none needed \x9b31m"
)
RAW = ("\x1b", "\r", "\b", "\x07", "\u202e", "\u202c", "\x9b", "\n  legal basis: none")


def _shows_escaped(text: str) -> None:
    for raw in RAW:
        assert raw not in text, (raw, text)
    for escaped in ("\\x1b[2J", "\\x0d", "\\x08", "\\x1b]0;owned\\x07", "\\u202e", "\\x9b31m"):
        assert escaped in text, (escaped, text)


def test_a_hostile_purpose_is_shown_escaped_everywhere(cli: Cli, up: dict, tmp_path: Path) -> None:
    """COURT's broker key writes a request whose purpose is terminal escape
    sequences; every command that shows it shows them escaped, never played."""
    from govshare.chain.ledger import Ledger
    from govshare.profile import load_profile

    rid = publish(cli, tmp_path / "target.pdf", os.urandom(64), "tax-clearance")
    # (a first request through COURT's broker writes the batched record on chain)
    cli.ok("request", "create", "--owner", "TAX", "--record", rid, "--purpose", "check",
           "--dept", "COURT")  # fmt: skip
    ledger = Ledger.from_deployment(cli.home / "deployment.json")
    court = load_profile(cli.home, "COURT").unlock_broker(ENV["GOVSHARE_PASSWORD"])
    req = int(
        ledger.access.request_access(
            court, "TAX", rid, HOSTILE, "\x1b[31mart. 1\x1b[0m", ledger.now() + 86400
        ).value
    )
    incoming = cli.ok("request", "list", "--incoming", "--dept", "TAX")
    _shows_escaped(incoming.stdout)
    listed = cli.ok("request", "list", "--incoming", "--dept", "TAX", "--json").json()
    assert next(r for r in listed if r["id"] == req)["purpose"] == HOSTILE  # JSON: as written
    _shows_escaped(cli.ok("grant", "list", "--dept", "TAX", "--incoming").stdout)
    # The administrator's confirmation prompt: what they read before saying yes.
    asked = cli("grant", "approve", str(req), "--dept", "TAX", "--expires", "1d",
                "--max-uses", "1", input="n\n")  # fmt: skip
    assert asked.exit_code == 1 and "Cancelled; nothing was sent" in asked.stderr
    _shows_escaped(asked.stdout)
    assert "legal basis: \\x1b[31mart. 1\\x1b[0m" in asked.stdout
    trail = cli.ok("audit", "trail", rid)
    _shows_escaped(trail.stdout)
    denied = cli.ok("grant", "deny", str(req), "--reason", "no \x1b[2J", "--dept", "TAX", "-y")
    assert "\x1b" not in denied.output
    listed = cli.ok("request", "list", "--outgoing", "--dept", "COURT").stdout
    assert "no \\x1b[2J" in listed and "\x1b" not in listed


def test_a_fetch_that_cannot_be_written_leaves_no_file(cli: Cli, up: dict, tmp_path: Path) -> None:
    """The fetched record is 3 MB; the CLI process may write files of at most 1 MiB
    (RLIMIT_FSIZE, so the write fails with EFBIG as a full disk fails with ENOSPC):
    one sentence naming the file, no file and no temporary file left."""
    import resource
    import subprocess

    from cli.conftest import GOVSHARE

    data = os.urandom(3_000_000)
    rid = publish(cli, tmp_path / "big.pdf", data, "tax-clearance")
    req = cli.ok(
        "request", "create", "--owner", "TAX", "--record", rid, "--purpose", "check",
        "--dept", "MARKET", "--json",
    ).json()  # fmt: skip
    cli.ok("grant", "approve", str(req["request_id"]), "--dept", "TAX", "--expires", "1d",
           "--max-uses", "2", "-y")  # fmt: skip
    out = tmp_path / "got" / "big.pdf"
    out.parent.mkdir()

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))

    proc = subprocess.run(
        [str(GOVSHARE), "record", "fetch", rid, "-o", str(out), "--dept", "MARKET"],
        capture_output=True, text=True, env=cli.env, timeout=300, preexec_fn=small_files,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"Error: Could not write {out}: the file is larger than this system or its limits "
        "allow; nothing was written under that name."
    ], proc.stderr
    assert list(out.parent.iterdir()) == []
    cli.ok("record", "fetch", rid, "-o", str(out), "--dept", "MARKET")
    assert out.read_bytes() == data
