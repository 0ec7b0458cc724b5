"""``govshare record import DIR``: bulk import of an archive through the broker's
publish route, against a real one-machine consortium (``govshare dev up``)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli.conftest import GOVSHARE, Cli
from govshare.chain.devnode import free_port

pytestmark = pytest.mark.integration

ENV = {"GOVSHARE_PASSWORD": "import-test-password", "GOVSHARE_ADMIN_PASSWORD": "import-admin"}
CATEGORY = "tax-clearance"


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    c = Cli(tmp_path_factory.mktemp("consortium") / "home", ENV)
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


def archive(root: Path, n: int, tag: str) -> dict[str, bytes]:
    """n files in two folders; the relative path → content."""
    out = {}
    for i in range(n):
        rel = f"{'a' if i % 2 else 'b'}/{tag}-{i:03d}.pdf"
        data = f"{tag} certificate {i} ".encode() + os.urandom(64)
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
        out[rel] = data
    return out


def do_import(cli: Cli, root: Path, *extra: str) -> Any:
    return cli("record", "import", str(root), "--category", CATEGORY, "--dept", "TAX", *extra)


def records_named(cli: Cli, names: set[str]) -> list[dict[str, Any]]:
    listed = cli.ok("record", "list", "--dept", "TAX", "--limit", "500", "--json").json()
    return [r for r in listed if r.get("filename") in names]


def test_import_publishes_every_file_once_and_a_rerun_skips_them(cli: Cli, tmp_path: Path) -> None:
    files = archive(tmp_path / "arch", 6, "happy")
    first = do_import(cli, tmp_path / "arch", "--subject-from", "name", "--json")
    assert first.exit_code == 0, first.output
    s = first.json()
    assert (s["total"], s["published"], s["already_there"], s["failed"]) == (6, 6, 0, [])
    recs = records_named(cli, set(files))
    assert len(recs) == 6
    for r in recs:
        assert r["sha256"] == hashlib.sha256(files[r["filename"]]).hexdigest()
        assert r["subject_ref"]  # from the file name
    again = do_import(cli, tmp_path / "arch", "--subject-from", "name", "--json")
    assert again.exit_code == 0, again.output
    assert (again.json()["published"], again.json()["already_there"]) == (0, 6)
    # a changed file is a new record; the others are still there
    changed = next(iter(files))
    (tmp_path / "arch" / changed).write_bytes(b"a corrected certificate")
    third = do_import(cli, tmp_path / "arch", "--subject-from", "name", "--json").json()
    assert (third["published"], third["already_there"]) == (1, 5)
    assert len(records_named(cli, set(files))) == 7


def test_an_import_killed_mid_run_resumes_without_duplicates(cli: Cli, tmp_path: Path) -> None:
    files = archive(tmp_path / "big", 40, "resume")
    proc = subprocess.Popen(
        [str(GOVSHARE), "record", "import", str(tmp_path / "big"), "--category", CATEGORY,
         "--dept", "TAX", "--jobs", "2", "--per-request", "2"],
        env=cli.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    seen = 0
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # plain lines: not a terminal
            seen += line.startswith("published")
            if seen >= 5:
                break
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        if proc.stderr is not None:
            proc.stderr.close()
    assert seen >= 5
    partial = len(records_named(cli, set(files)))
    assert 5 <= partial < 40
    again = do_import(cli, tmp_path / "big", "--json")
    assert again.exit_code == 0, again.output
    s = again.json()
    assert s["failed"] == [] and s["published"] + s["already_there"] == 40
    assert s["already_there"] >= 5
    recs = records_named(cli, set(files))
    assert len(recs) == 40 and {r["filename"] for r in recs} == set(files)


def test_bad_csv_rows_are_reported_and_their_files_not_sent(cli: Cli, tmp_path: Path) -> None:
    root = tmp_path / "csvarch"
    files = archive(root, 4, "csv")
    good, dup, empty, short = sorted(files)
    table = tmp_path / "subjects.csv"
    table.write_text(
        "path,subject\n"
        f"{good},91110000710928411X\n"
        f"{dup},A1\n{dup},A2\n"
        f"{empty},\n"
        f"{short}\n"
        "nowhere.pdf,B1\n"
    )
    r = do_import(cli, root, "--subject-from", "csv", "--subject-csv", str(table), "--json")
    assert r.exit_code == 1 and "Traceback" not in r.output
    s = r.json()
    assert s["published"] == 2  # good, and dup's first row
    assert {p for p, _ in ((f["path"], f["reason"]) for f in s["failed"])} == {empty, short}
    assert all("no valid row" in f["reason"] for f in s["failed"])
    assert [e.split(":")[0] for e in s["csv_errors"]] == ["line 4", "line 5", "line 6"]
    assert "listed twice" in s["csv_errors"][0]
    assert {x["filename"] for x in records_named(cli, set(files))} == {good, dup}
    # a CSV without the columns is refused before anything is sent
    table.write_text("file;who\nx;y\n")
    bad = cli.fails(
        "record", "import", str(root), "--category", CATEGORY, "--dept", "TAX",
        "--subject-from", "csv", "--subject-csv", str(table), "--json",
    )  # fmt: skip
    assert bad.json()["error"]["code"] == "input.invalid"


def test_unreadable_files_symlinks_and_fifos_are_refused_the_rest_sent(
    cli: Cli, tmp_path: Path
) -> None:
    root = tmp_path / "perm"
    files = archive(root, 3, "perm")
    locked = sorted(files)[0]
    os.chmod(root / locked, 0)
    os.symlink(root / sorted(files)[1], root / "link.pdf")
    os.mkfifo(root / "pipe")
    argv = [str(GOVSHARE), "record", "import", str(root), "--category", CATEGORY,
            "--dept", "TAX", "--json"]  # fmt: skip
    if os.geteuid() == 0:  # root reads a mode-000 file: run without that capability
        assert shutil.which("setpriv"), "setpriv (util-linux) is needed to drop root's reads"
        argv = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *argv]
    proc = subprocess.run(argv, env=cli.env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    s = json.loads(proc.stdout)
    reasons = {f["path"]: f["reason"] for f in s["failed"]}
    assert set(reasons) == {locked, "link.pdf", "pipe"}
    assert "cannot read" in reasons[locked] and "symbolic link" in reasons["link.pdf"]
    assert "not a regular file" in reasons["pipe"]
    assert s["published"] == 2 and s["total"] == 5
    assert stat.S_ISFIFO(os.lstat(root / "pipe").st_mode)  # never opened, still there
    assert {x["filename"] for x in records_named(cli, set(files))} == set(files) - {locked}


def test_a_malformed_bulk_reply_refuses_the_records_it_does_not_answer() -> None:
    from govshare.clerk.importer import PublishAnswer, StopImport
    from govshare.cli._import import bulk_answers

    body = {
        "results": [
            {"status": 202, "body": {"record_id": "0x01", "state": "anchoring"}},
            {"status": "202", "body": {"record_id": "0x02"}},
            7,
            {"status": 409, "body": {"detail": "another file under this key"}},
        ]
    }
    ok, bad_status, not_an_entry, refused = bulk_answers(body, 4)
    assert ok == PublishAnswer("0x01", False, "anchoring")
    assert bad_status == not_an_entry == "HTTP 0"
    assert refused == "another file under this key"
    with pytest.raises(StopImport, match="answered 4 of 5"):
        bulk_answers(body, 5)
    with pytest.raises(StopImport):
        bulk_answers(["not", "an", "object"], 3)
