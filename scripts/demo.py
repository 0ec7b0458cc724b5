"""`make demo`: a local consortium, from nothing, narrated for a newcomer.

Every step runs the real `govshare` command line against real processes — a
local chain (anvil) and one broker process per department — in a fresh demo
home (`.demo/` in the repository, git-ignored; `GOVSHARE_DEMO_HOME` moves it),
and prints the command before its output so you can re-type any of it.
`GOVSHARE_DEMO_STORE=kubo` keeps the records in one Kubo node per department,
in a private swarm, instead of a folder each; `GOVSHARE_DEMO_DATABASE=postgresql`
keeps the brokers' databases in a private PostgreSQL cluster.

The story: the tax bureau (TAX) publishes a tax-clearance certificate; the
market regulator (MARKET) asks for it to grant a business licence; TAX's
administrator consents from the command line, with their own key; MARKET
fetches it, decrypts it and proves it is the anchored document; the court
(COURT), without a grant, is refused; TAX revokes; MARKET is refused. Then the
catalog: MARKET finds TAX's records about the enterprise by its id, is granted a
category TAX shares unconditionally by the contract itself, and is refused one TAX
does not share. Then, briefly, the consortium votes a fourth department in. The demo exits non-zero
as soon as a step does not behave as narrated.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import NoReturn

from govshare.chain.devnode import DEFAULT_PORT, free_port

ROOT = Path(__file__).resolve().parent.parent
HOME = Path(os.environ.get("GOVSHARE_DEMO_HOME") or ROOT / ".demo").resolve()
#: Where the brokers keep the encrypted records: `local` folders (the default), or
#: `kubo` — a Kubo node per department in one private swarm (GOVSHARE_DEMO_STORE=kubo).
STORE = os.environ.get("GOVSHARE_DEMO_STORE", "local").strip().lower() or "local"
#: Where the brokers keep their databases: `sqlite` files (the default), or
#: `postgresql` — a database each in a private cluster (GOVSHARE_DEMO_DATABASE=postgresql).
DATABASE = os.environ.get("GOVSHARE_DEMO_DATABASE", "sqlite").strip().lower() or "sqlite"
FILES = HOME / "files"
GOVSHARE = Path(sys.executable).parent / "govshare"
BOLD, DIM, GREEN, RED, RESET = "\033[1m", "\033[2m", "\033[32m", "\033[31m", "\033[0m"
if not sys.stdout.isatty():
    BOLD = DIM = GREEN = RED = RESET = ""

ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith("GOVSHARE_")},
    "GOVSHARE_HOME": str(HOME),
    # Demo passwords. Real departments type theirs at a prompt, or keep them in
    # a file named by GOVSHARE_PASSWORD_FILE; the admin key has its own.
    "GOVSHARE_PASSWORD": "demo-broker-password",
    "GOVSHARE_ADMIN_PASSWORD": "demo-admin-password",
    # Anchor access receipts within seconds (the default batches them for 30 s),
    # so that the auditor below sees this demo's access on chain.
    "GOVSHARE_RECEIPT_BATCH_AGE": "2",
    "COLUMNS": "120",
}
ENTERPRISE = "91110000710928411X"  # the enterprise's unified social credit code


def say(text: str) -> None:
    print(f"\n{BOLD}{textwrap.fill(textwrap.dedent(text).strip(), 88)}{RESET}", flush=True)


def fail(why: str) -> NoReturn:
    print(f"{RED}The demo stopped: {why}{RESET}", flush=True)
    dev_down()
    sys.exit(1)


def run(*args: str, expect_ok: bool = True) -> str:
    """Run a govshare command, show it and its output; stop unless it did as expected."""
    print(f"{DIM}${RESET} govshare {shlex.join(args)}", flush=True)
    proc = subprocess.run([str(GOVSHARE), *args], env=ENV, text=True, capture_output=True)
    # stderr first: progress lines ("Publishing ...") come before the result
    out = (proc.stderr + proc.stdout).rstrip()
    if out:
        print(textwrap.indent(out, "  "), flush=True)
    if expect_ok and proc.returncode != 0:
        fail(f"that command failed (exit {proc.returncode}).")
    if not expect_ok and proc.returncode == 0:
        fail("that command should have been refused.")
    return proc.stdout


def refused(code: str, *args: str) -> None:
    """Run a command that must be refused with ``code`` (shown as JSON, with --json)."""
    out = run(*args, "--json", expect_ok=False)
    try:
        got = json.loads(out)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        fail(f"expected a refusal with code {code}, got: {out!r}")
    if got != code:
        fail(f"expected a refusal with code {code}, got {got}.")
    print(f"  {GREEN}refused, as it should be: {code}{RESET}", flush=True)


def grab(pattern: str, text: str, what: str) -> str:
    m = re.search(pattern, text)
    if not m:
        fail(f"could not find the {what} in that output.")
    return m.group(1)


def shown(path: Path) -> str:
    """A path as typed from the current folder (relative when inside it)."""
    rel = os.path.relpath(path)
    return str(path) if rel.startswith("..") else rel


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def wait_for_receipts(dept: str, n: int, timeout: float = 60.0) -> None:
    """Wait until ``dept``'s broker has anchored ``n`` access receipts (it batches them)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        proc = subprocess.run(
            [str(GOVSHARE), "audit", "receipts", "--dept", dept, "--json"],
            env=ENV, text=True, capture_output=True,
        )  # fmt: skip
        try:
            depts = json.loads(proc.stdout).get("departments", [])
        except ValueError:
            depts = []
        if any(d.get("department") == dept and d.get("receipts", 0) >= n for d in depts):
            return
        time.sleep(1)
    fail(f"{dept}'s broker did not anchor its access receipts within {timeout:.0f} s.")


def dev_down() -> None:
    subprocess.run([str(GOVSHARE), "dev", "down"], env=ENV, capture_output=True, timeout=120)


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex(("127.0.0.1", port)) != 0


def ports() -> tuple[int, int]:
    """The chain's port and the first of four broker ports: the usual ones when
    free, else free ones (so the demo runs beside anything already listening)."""
    chain = DEFAULT_PORT if port_free(DEFAULT_PORT) else free_port()
    base = 8701
    while not all(port_free(base + i) for i in range(4)):
        base = free_port()
        if base > 65000:
            base = 20000
    return chain, base


def certificate() -> Path:
    FILES.mkdir(parents=True, exist_ok=True)
    path = FILES / "tax-clearance-ACME.txt"
    today = dt.date.today().isoformat()
    path.write_text(
        textwrap.dedent(f"""\
        TAX CLEARANCE CERTIFICATE                          No. TC-{today.replace("-", "")}-0042

        The Tax Bureau certifies that

            ACME Trading Co., Ltd.
            Unified social credit code {ENTERPRISE}

        has filed all returns and owes no tax, surcharge or fine as of {today}.

        Issued by the Tax Bureau, {today}.
        """)
    )
    return path


def main() -> int:
    if STORE not in ("local", "kubo"):
        fail(f"GOVSHARE_DEMO_STORE is {STORE!r}: use local or kubo.")
    if DATABASE not in ("sqlite", "postgresql"):
        fail(f"GOVSHARE_DEMO_DATABASE is {DATABASE!r}: use sqlite or postgresql.")
    if HOME.exists():
        dev_down()  # a previous demo's brokers and chain, if still running
        shutil.rmtree(HOME)
    chain_port, base_port = ports()
    try:
        return story(chain_port, base_port)
    except KeyboardInterrupt:
        fail("interrupted.")


def story(chain_port: int, base_port: int) -> int:
    say("""govshare demo. Three government departments — a tax bureau (TAX), a market
        regulator (MARKET) and a court (COURT) — share records on a consortium ledger,
        all on this machine.""")

    say(
        "1. One command brings the consortium up: a local chain; a profile per department "
        "(a broker key its service signs with, an administrator key people consent with, an "
        "encryption key pair); the contracts, with the three as founders; a clerk and an "
        "administrator user each; and one broker process per department, each with its own "
        "database and encrypted store."
    )
    if DATABASE == "postgresql":
        say(
            "Here each broker keeps its database in a PostgreSQL cluster of this demo, a "
            "database per department."
        )
    if STORE == "kubo":
        say(
            "Here each department keeps its encrypted records in a Kubo (IPFS) node of its "
            "own, the three nodes one private swarm: no one outside it can join."
        )
    run(
        "dev", "up", "--departments", "TAX,MARKET,COURT",
        "--chain-port", str(chain_port), "--base-port", str(base_port),
        *(["--store", STORE] if STORE != "local" else []),
        *(["--database", DATABASE] if DATABASE != "sqlite" else []),
    )  # fmt: skip

    say(
        "2. A TAX clerk publishes a tax-clearance certificate. The broker encrypts it with a "
        "fresh key, stores the ciphertext, and anchors on chain only its SHA-256, the "
        "ciphertext's CID and a keyed hash of the enterprise's id — never the document."
    )
    cert = certificate()
    print(textwrap.indent(cert.read_text(), "    | ", lambda _line: True), flush=True)
    out = run(
        "record", "publish", shown(cert),
        "--category", "tax-clearance", "--subject", ENTERPRISE, "--dept", "TAX",
    )  # fmt: skip
    rid = grab(r"Published record (0x[0-9a-f]{64})", out, "record id")

    say("Anyone in the consortium can see that the record exists — but only its public anchor:")
    public = run("record", "show", rid, "--dept", "MARKET")
    anchored = grab(r"sha256\s+([0-9a-f]{64})", public, "anchored SHA-256")

    say(
        "3. MARKET needs it to decide ACME's business licence. Its clerk asks TAX, with a "
        "purpose and a legal basis: a transaction from MARKET's broker key, on the record. "
        "Every member reads the chain and nothing on it can be erased, so the purpose says "
        "what the record is for, never whom it is about: one naming the enterprise's id is "
        "refused before anything is sent."
    )
    refused(
        "input.identifier_in_text",
        "request", "create", "--owner", "TAX", "--record", rid,
        "--purpose", f"Business licence application of {ENTERPRISE}", "--dept", "MARKET",
    )  # fmt: skip
    out = run(
        "request", "create", "--owner", "TAX", "--record", rid,
        "--purpose", "Business licence application",
        "--legal-basis", "Regulation on business registration, art. 12",
        "--deadline", "3d", "--dept", "MARKET",
    )  # fmt: skip
    req = grab(r"Request #(\d+)", out, "request number")

    say(
        "4. TAX's administrator sees the request and consents from the command line, signing "
        "with their own administrator key (a broker key cannot consent): 3 uses, 30 days."
    )
    run("request", "list", "--incoming", "--status", "pending", "--dept", "TAX")
    run("grant", "approve", req, "--dept", "TAX", "--expires", "30d", "--max-uses", "3", "-y")

    say(
        "5. MARKET fetches it. MARKET's broker sends TAX's broker a request signed with its "
        "registered key; TAX's broker checks the grant on chain, counts the use, and returns "
        "the ciphertext with the data key wrapped for MARKET alone. MARKET's broker checks "
        "the ciphertext against the anchored CID and the plaintext against the anchored "
        "SHA-256 before writing a byte."
    )
    received = FILES / "received-by-MARKET.txt"
    out = run("record", "fetch", rid, "-o", shown(received), "--dept", "MARKET")
    fetched = grab(r"sha256\s+([0-9a-f]{64})", out, "SHA-256 of the fetched file")
    original, copy = sha256_of(cert), sha256_of(received)
    print(f"    SHA-256 of TAX's original    {original}")
    print(f"    SHA-256 of MARKET's copy     {copy}")
    print(f"    SHA-256 anchored on chain    {anchored}")
    if not original == copy == fetched == anchored:
        fail("the fetched document is not the anchored one.")
    print(f"  {GREEN}identical: MARKET holds exactly the document TAX anchored{RESET}")

    say("6. COURT has no grant. Its broker asks anyway; TAX's broker refuses.")
    court_copy = FILES / "received-by-COURT.txt"
    refused("grant.none", "record", "fetch", rid, "-o", shown(court_copy), "--dept", "COURT")
    if court_copy.exists():
        fail("a refused fetch left a file behind.")

    say(
        "7. The licence application is withdrawn; TAX's administrator revokes the grant. "
        "From the next block TAX's broker refuses it (what MARKET already has stays with it)."
    )
    run(
        "grant", "revoke", req, "--reason", "Licence application withdrawn",
        "--dept", "TAX", "-y",
    )  # fmt: skip
    refused(
        "grant.revoked",
        "record", "fetch", rid, "-o", shown(FILES / "again.txt"), "--force", "--dept", "MARKET",
    )  # fmt: skip
    run("request", "list", "--outgoing", "--dept", "MARKET")

    say(
        "8. Departments share by catalog. Each catalog category says how it is shared: on "
        "conditions (an administrator decides, as above), unconditionally (the contract "
        "itself grants any active member), or not at all. MARKET finds TAX's records about "
        "ACME by its enterprise id: its broker looks them up by the keyed reference, so the "
        "id itself goes nowhere."
    )
    run(
        "record", "find", "--owner", "TAX", "--category", "tax-clearance",
        "--subject", ENTERPRISE, "--dept", "MARKET",
    )  # fmt: skip
    say(
        "TAX's administrator declares a category it shares unconditionally — whether an "
        "enterprise is in good standing, each grant for 7 days and 3 uses — and a clerk "
        "publishes ACME's. MARKET asks for ACME's by subject: the contract grants it in the "
        "same transaction, with no administrator involved, and MARKET fetches the latest "
        "version."
    )
    run(
        "catalog", "declare", "tax-status",
        "--description", "Whether an enterprise is in good standing with the tax bureau",
        "--sharing", "unconditional", "--default-expires", "7d", "--default-max-uses", "3",
        "--as", "TAX",
    )  # fmt: skip
    status = FILES / "tax-status-ACME.txt"
    status.write_text(f"Tax status of {ENTERPRISE} (ACME Trading Co., Ltd.): in good standing.\n")
    run(
        "record", "publish", shown(status), "--category", "tax-status",
        "--subject", ENTERPRISE, "--dept", "TAX",
    )  # fmt: skip
    out = run(
        "request", "create", "--owner", "TAX", "--category", "tax-status",
        "--subject", ENTERPRISE, "--purpose", "Business licence application",
        "--dept", "MARKET",
    )  # fmt: skip
    if "granted at once by the contract" not in out:
        fail("the unconditional category was not granted at once.")
    got = FILES / "tax-status-received-by-MARKET.txt"
    run(
        "record", "fetch", "--owner", "TAX", "--category", "tax-status",
        "--subject", ENTERPRISE, "-o", shown(got), "--dept", "MARKET",
    )  # fmt: skip
    if got.read_bytes() != status.read_bytes():
        fail("the fetched status is not the published one.")
    say(
        "TAX keeps its audit files to itself: it declares that category not shared, and "
        "any request for it is refused."
    )
    run(
        "catalog", "declare", "tax-audit", "--description", "Tax audit files",
        "--sharing", "none", "--as", "TAX",
    )  # fmt: skip
    refused(
        "request.not_shared",
        "request", "create", "--owner", "TAX", "--category", "tax-audit",
        "--subject", ENTERPRISE, "--purpose", "Curiosity", "--dept", "MARKET",
    )  # fmt: skip
    run("catalog", "list", "--dept", "TAX")

    say(
        "9. Membership is governed on chain too. Customs asks to join; TAX proposes it (one "
        "approval of the two needed), MARKET approves, and Customs is a member."
    )
    run(
        "init",
        "CUSTOMS",
        "--name",
        "Customs Office",
        "--endpoint",
        f"http://127.0.0.1:{base_port + 3}",
    )
    run("dept", "propose", "add", "CUSTOMS", "--as", "TAX", "-y")
    run("dept", "approve", "1", "--as", "MARKET", "-y")
    run("dept", "list")

    say(
        "10. An auditor, with no decryption key, checks from the chain (and the receipt "
        "manifests, which must hash to roots anchored on chain) alone: the certificate is "
        "the anchored record; a copy one byte different is not; the record's whole trail; "
        "and every access receipt against its anchored batch."
    )
    run("audit", "verify", shown(cert))
    forged = FILES / "tax-clearance-ACME-forged.txt"
    data = bytearray(cert.read_bytes())
    data[-2] ^= 0x01
    forged.write_bytes(bytes(data))
    run("audit", "verify", shown(forged), expect_ok=False)
    print(f"  {GREEN}not anchored, as it should be: one byte differs{RESET}", flush=True)
    wait_for_receipts("TAX", 2)  # MARKET's certificate and its tax status
    run("audit", "trail", rid)
    prov = FILES / "trail.prov.json"
    run("audit", "trail", rid, "--format", "prov", "-o", shown(prov))
    run("audit", "receipts")
    run("audit", "overdue")

    say(
        "11. The enterprise's own view (its right to know): every record about it in every "
        "department, and who asked for each, why, who consented and who received it, each "
        "delivery proven from the chain. Finding its records takes the consortium subject "
        "key (TAX's copy here): the chain holds only the keyed reference."
    )
    history = run("audit", "subject", ENTERPRISE, "--dept", "TAX")
    if "Records (2):" not in history or "No problems found." not in history:
        fail("the enterprise's access history does not list its two records, all proven.")
    if ENTERPRISE in history:
        fail("the access history shows the enterprise's id in clear.")

    say("12. Stop everything. The ledger, the stores and the databases stay in the demo home.")
    run("dev", "down")

    say(f"{GREEN}Done.{RESET}{BOLD} To look around in the demo's consortium:")
    print(f"  export GOVSHARE_HOME={HOME}")
    print("  .venv/bin/govshare dev up           # resumes it: same ledger, keys and records")
    print("  .venv/bin/govshare record list --dept TAX")
    print("  .venv/bin/govshare audit trail " + rid)
    print(f"  # the auditor's page: http://127.0.0.1:{base_port}/audit")
    print(f"  #   (an admin token: {shown(HOME / 'depts' / 'TAX' / 'api-admin.token')})")
    print("  .venv/bin/govshare dev down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
