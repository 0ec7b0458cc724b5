"""`make demo` runs scripts/demo.py: run it end to end here too, so a demo that
stops behaving as it narrates fails the suite. (The script itself exits
non-zero when a step does not do what it says.)"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import engines

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def one_demo_at_a_time() -> Iterator[None]:
    """The demo takes the usual ports when they are free: two at once (pytest-xdist
    workers) could both find 8545 free. A lock file orders them."""
    with open(tempfile.gettempdir() + "/govshare-demo-test.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


@pytest.mark.parametrize(
    ("store", "database"), [("local", "sqlite"), ("kubo", "sqlite"), ("local", "postgresql")]
)
def test_the_demo_runs_end_to_end_and_stops_everything(
    tmp_path: Path, store: str, database: str
) -> None:
    home = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVSHARE_")}
    env["GOVSHARE_DEMO_HOME"] = str(home)
    try:
        if store == "kubo":  # GOVSHARE_DEMO_STORE=kubo make demo: a Kubo node per department
            env["GOVSHARE_KUBO"] = str(engines.tool("kubo", "ipfs"))
            env["GOVSHARE_DEMO_STORE"] = "kubo"
        if database == "postgresql":  # GOVSHARE_DEMO_DATABASE=postgresql: a private cluster
            engines.find_pg_bin()
            env["GOVSHARE_DEMO_DATABASE"] = "postgresql"
    except engines.EngineUnavailable as exc:
        pytest.skip(str(exc))
    with one_demo_at_a_time():
        proc = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "demo.py")],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=240,
        )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "identical: MARKET holds exactly the document TAX anchored" in out
    assert "refused, as it should be: grant.none" in out
    assert "refused, as it should be: grant.revoked" in out
    assert "Traceback" not in out
    # The auditor's part: the file is anchored, a one-byte forgery is not, the
    # access receipt was anchored and verified, and the PROV export exists.
    assert "not anchored, as it should be: one byte differs" in out
    assert "All 2 receipt(s) verified." in out  # the certificate, and the tax status
    assert "refused, as it should be: request.not_shared" in out
    assert "granted at once by the contract" in out
    assert (home / "files" / "trail.prov.json").is_file()
    # it ends with the enterprise's access history: both its records, all proven
    history = out[out.index("$ govshare audit subject") :]
    assert "Records (2):" in history and "Requests (2):" in history
    assert "Deliveries: 2 anchored, 2 verified" in history and "No problems found." in history
    assert not (home / "files" / "received-by-COURT.txt").exists()

    # dev down left nothing running
    status = subprocess.run(
        [str(Path(sys.executable).parent / "govshare"), "dev", "status", "--json"],
        env={**env, "GOVSHARE_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    st = json.loads(status.stdout)
    assert not st["chain"]["running"]
    assert [b["running"] for b in st["brokers"]] == [False, False, False]
    assert st["store"] == store
    assert len(st["kubo"]) == (3 if store == "kubo" else 0)
    assert not any(n["running"] for n in st["kubo"].values())
    assert st["database"] == database and not st["postgres_running"]
    if database == "postgresql":  # the brokers kept no SQLite file; the cluster goes too
        assert not list(home.glob("depts/*/broker.db"))
        cluster = json.loads((home / "dev" / "postgres" / "cluster.json").read_text())
        shutil.rmtree(cluster["root"], ignore_errors=True)

    # Nothing personal on chain in clear: the enterprise's id (as typed and
    # normalised) and its name are in none of the chain's bytes
    assert "refused, as it should be: input.identifier_in_text" in out
    state = home / "chain" / "state.json"
    found = personal_data_on_chain(state, demo_subjects())
    assert found == [], found
    # (the search sees what is there: the purpose and the revocation's reason are)
    seen = ["Business licence application", "Licence application withdrawn"]
    assert personal_data_on_chain(state, seen) == seen


def demo_subjects() -> list[str]:
    """The demo's subject: its id (scripts/demo.py's ENTERPRISE) and its name."""
    source = (ROOT / "scripts" / "demo.py").read_text()
    match = re.search(r'^ENTERPRISE = "([0-9A-Z]+)"', source, re.MULTILINE)
    assert match, "scripts/demo.py names its enterprise in ENTERPRISE"
    assert "ACME Trading Co., Ltd." in source  # the name its files use
    return [match[1], match[1].lower(), "ACME Trading", "ACME"]


def personal_data_on_chain(state: Path, needles: list[str]) -> list[str]:
    """Which of ``needles`` the chain holds, as text or as the hex of its UTF-8:
    in anvil's dump of the chain (every block, transaction input, receipt and
    event log, and every account's storage) and in each contract's storage read
    as one run of bytes, its slots in order (a long string spans slots)."""
    raw = state.read_text()
    dump = json.loads(raw)
    assert dump["transactions"] and dump["blocks"], "the dump holds the chain's history"
    runs = [raw.lower()]
    for account in dump["accounts"].values():
        slots = account.get("storage") or {}
        ordered = sorted(slots.items(), key=lambda kv: int(kv[0], 16))
        runs.append("".join(str(v).removeprefix("0x").lower() for _k, v in ordered))
    found = []
    for needle in needles:
        forms = (needle.lower(), needle.encode("utf-8").hex())
        if any(form in run for run in runs for form in forms):
            found.append(needle)
    return found
