"""Crash safety and a chain that goes away, tried from the command line as a
clerk would, against real ``govshare serve`` processes and this module's own
anvil (its ledger kept in a state file, so the node can stop and come back).

* SIGKILL at each step of a publish (the test-only hook of
  ``govshare.broker.faults``), restart, retry with the same idempotency key:
  exactly one anchored record per key, no orphan payload, nothing lost.
* Both on SQLite and on PostgreSQL (the module runs twice).
* Chain down: requests refused with 503 ``chain.unavailable``, a granted fetch
  refused (fail closed); publishes the broker accepted (before or while it was
  down) but could not anchor are anchored once the node is back, without anyone
  retrying.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from govshare.broker.db import Record
from govshare.chain.batch import BatchManifest
from govshare.chain.devnode import AnvilProcess, free_port, rpc_call
from govshare.home import dept_dir
from govshare.storage.local import LocalBlobStore
from integration.world import (
    CATEGORY,
    DATABASES,
    ServeProcess,
    World,
    add_clerks,
    build_world,
    dept_manifests,
    put_databases,
    run_cli,
    spawn_serve,
    wait_serving,
)

pytestmark = pytest.mark.integration

CODES = ("TAX", "MARKET")
#: (how records are anchored, where the broker is killed): batch mode (the
#: default) is killed in the publish's own steps and in its batch's anchoring;
#: single mode (``GOVSHARE_BATCH_MAX_RECORDS=1``) in each step of the publish.
CRASH_POINTS = [
    ("batch", "publish.before_store"),
    ("batch", "publish.after_store"),
    ("batch", "batch.anchor_sent"),
    ("batch", "batch.anchor_receipt"),
    ("single", "publish.before_store"),
    ("single", "publish.after_store"),
    ("single", "publish.anchor_sent"),
    ("single", "publish.anchor_receipt"),
]
MODES = {"batch": {}, "single": {"GOVSHARE_BATCH_MAX_RECORDS": "1"}}


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnvilProcess]:
    state = tmp_path_factory.mktemp("chain") / "state.json"
    n = AnvilProcess(port=free_port(), state=state).start()
    yield n
    n.stop()


@pytest.fixture(scope="module", params=DATABASES)
def world(
    request: pytest.FixtureRequest, node: AnvilProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """TAX and MARKET, their brokers' databases in SQLite files or (the module's
    second run) in the session's PostgreSQL cluster."""
    w = build_world(node.url, tmp_path_factory.mktemp("home"), codes=CODES)
    put_databases(w, request)
    add_clerks(w, CODES)
    yield w
    w.close()


@pytest.fixture(scope="module")
def market(world: World) -> Iterator[ServeProcess]:
    proc = spawn_serve(world, "MARKET")
    wait_serving([proc])
    yield proc
    proc.stop()


def cli_json(world: World, *args: str) -> tuple[int, Any]:
    r = run_cli(world, *args, "--json")
    assert "Traceback" not in r.stdout + r.stderr, r.stdout + r.stderr
    try:
        return r.returncode, json.loads(r.stdout)
    except ValueError:
        raise AssertionError(r.stdout + r.stderr) from None


def error_code(out: Any) -> str:
    return str(out["error"]["code"])


def publish(world: World, path: Path, key: str, *extra: str) -> tuple[int, Any]:
    return cli_json(
        world,
        "record",
        "publish",
        str(path),
        "--category",
        CATEGORY,
        "--dept",
        "TAX",
        "--idempotency-key",
        key,
        *extra,
    )


def tax_rows(world: World) -> list[Record]:
    db = world.database("TAX")
    try:
        with db.session(readonly=True) as s:
            rows = list(s.scalars(select(Record)))
            for r in rows:
                s.expunge(r)
            return rows
    finally:
        db.close()


def tax_manifests(world: World) -> dict[int, BatchManifest]:
    """TAX's record batches on chain (each manifest checked against its root)."""
    return dept_manifests(world, "TAX")


def anchored_ids(world: World, sha: bytes) -> list[str]:
    """Every record of TAX's with content ``sha`` the chain holds: anchored alone,
    or as a leaf of a batch (proven against the batch's root by the contract)."""
    records = world.ledger.records
    ids = ["0x" + x.hex() for x in records.records_by_hash(sha)]
    for seq, m in tax_manifests(world).items():
        for r in m.records:
            if r.content_hash == sha:
                assert records.verify_batched_record(m.locate(r.record_id, seq))
                ids.append("0x" + r.record_id.hex())
    return ids


def assert_no_orphans(world: World) -> None:
    """Every payload in TAX's store belongs to an anchored record (or is a batch's
    manifest), and the spool holds nothing: no plaintext, no envelope left behind."""
    rows = tax_rows(world)
    assert all(r.status == "anchored" for r in rows), [(r.record_id, r.status) for r in rows]
    store = LocalBlobStore(dept_dir(world.home, "TAX") / "blobs")
    try:
        pinned = {str(c) for c in store.pins()}
    finally:
        store.close()
    manifests = {
        world.ledger.records.get_batch("TAX", seq).manifest_cid for seq in tax_manifests(world)
    }
    assert pinned == {r.cid for r in rows} | manifests
    assert list((dept_dir(world.home, "TAX") / "spool").iterdir()) == []


@pytest.mark.parametrize(("mode", "point"), CRASH_POINTS)
def test_a_publish_killed_at_any_step_is_completed_once(
    world: World, market: ServeProcess, tmp_path: Path, mode: str, point: str
) -> None:
    data = os.urandom(300_000)
    sha = hashlib.sha256(data).digest()
    src = tmp_path / "certificate.pdf"
    src.write_bytes(data)
    key = f"crash-{mode}-{point}"

    doomed = spawn_serve(
        world,
        "TAX",
        env={"GOVSHARE_TESTING": "1", "GOVSHARE_TEST_CRASH_AT": point, **MODES[mode]},
    )
    wait_serving([doomed])
    code, out = publish(world, src, key)
    assert code == 1 and error_code(out) == "cli.broker_unreachable", out
    assert out["error"]["details"]["idempotency_key"] == key
    assert doomed.proc.wait(10) == -signal.SIGKILL  # killed where the hook says

    tax = spawn_serve(world, "TAX", env=MODES[mode])  # restarted, without the hook
    try:
        wait_serving([tax])
        # the restarted broker resumes the operation by itself...
        deadline = time.monotonic() + 30
        while not any(r.sha256 == sha.hex() and r.status == "anchored" for r in tax_rows(world)):
            assert time.monotonic() < deadline, "the resumed publish was not anchored"
            time.sleep(0.1)
        # ...and the clerk's retry with the same key gets that record, not a second one
        code, again = publish(world, src, key)
        assert code == 0, again
        assert again["replayed"] is True
        rid = again["record_id"]
        assert [r.record_id for r in tax_rows(world) if r.sha256 == sha.hex()] == [rid]
        assert anchored_ids(world, sha) == [rid]  # on chain once, alone or in a batch
        # nothing lost: TAX's clerk reads exactly the bytes back
        out_file = tmp_path / "back.pdf"
        code, got = cli_json(world, "record", "fetch", rid, "-o", str(out_file), "--dept", "TAX")
        assert code == 0, got
        assert out_file.read_bytes() == data
        assert_no_orphans(world)
    finally:
        tax.stop()


@pytest.mark.parametrize("point", ["publish.before_store", "publish.after_store"])
def test_a_bulk_import_killed_mid_batch_is_completed_once(
    world: World, market: ServeProcess, tmp_path: Path, point: str
) -> None:
    """``record import`` sends its files together (``POST /v1/records/batch``);
    the broker dies between accepting them and recording them stored. The
    restarted broker completes every accepted record by itself; running the
    import again anchors nothing twice and reads every file back."""
    folder = tmp_path / "archive"
    folder.mkdir()
    datas = {f"cert-{i}.pdf": os.urandom(20_000) for i in range(5)}
    for name, data in datas.items():
        (folder / name).write_bytes(data)
    imp = ("record", "import", str(folder), "--category", CATEGORY, "--dept", "TAX")

    doomed = spawn_serve(
        world, "TAX", env={"GOVSHARE_TESTING": "1", "GOVSHARE_TEST_CRASH_AT": point}
    )
    wait_serving([doomed])
    code, out = cli_json(world, *imp)
    assert code == 1 and len(out["failed"]) == 5, out
    assert doomed.proc.wait(10) == -signal.SIGKILL

    tax = spawn_serve(world, "TAX")
    try:
        wait_serving([tax])
        shas = {hashlib.sha256(d).hexdigest() for d in datas.values()}
        deadline = time.monotonic() + 30
        while not shas <= {r.sha256 for r in tax_rows(world) if r.status == "anchored"}:
            assert time.monotonic() < deadline, "the accepted records were not completed"
            time.sleep(0.1)
        code, again = cli_json(world, *imp)
        assert code == 0, again
        assert again["already_there"] == 5 and again["published"] == 0, again
        for name, data in datas.items():
            ids = anchored_ids(world, hashlib.sha256(data).digest())
            assert len(ids) == 1, (name, ids)
            back = tmp_path / f"back-{name}"
            code, got = cli_json(world, "record", "fetch", ids[0], "-o", str(back), "--dept", "TAX")
            assert code == 0, got
            assert back.read_bytes() == data
        assert_no_orphans(world)
    finally:
        tax.stop()


# -- the chain goes away (last: it stops and restarts this module's node) ------------------


def test_chain_down_fails_closed_and_pending_work_completes_when_it_returns(
    world: World, node: AnvilProcess, market: ServeProcess, tmp_path: Path
) -> None:
    tax = spawn_serve(world, "TAX")
    try:
        wait_serving([tax])
        _chain_down(world, node, tax, tmp_path)
    finally:
        tax.stop()


def _chain_down(world: World, node: AnvilProcess, tax: ServeProcess, tmp_path: Path) -> None:
    # before: TAX publishes, MARKET asks, TAX's administrator approves (all from the CLI)
    first = tmp_path / "first.pdf"
    first.write_bytes(os.urandom(20_000))
    code, pub = publish(world, first, "before-outage")
    assert code == 0, pub
    rid = pub["record_id"]
    code, req = cli_json(
        world, "request", "create", "--owner", "TAX", "--record", rid,
        "--purpose", "business licence", "--dept", "MARKET",
    )  # fmt: skip
    assert code == 0, req
    gid = str(req["request_id"])
    code, ok = cli_json(
        world, "grant", "approve", gid, "--dept", "TAX", "--expires", "1d", "--max-uses", "5", "-y"
    )
    assert code == 0, ok

    # a publish the broker accepts, whose batch's anchor the node takes but never mines...
    rpc_call(node.url, "evm_setAutomine", [False])
    pending_file = tmp_path / "pending.pdf"
    pending_data = os.urandom(50_000)
    pending_file.write_bytes(pending_data)
    code, answer = publish(world, pending_file, "during-outage", "--wait", "0")
    assert code == 0 and answer["state"] == "anchoring", answer  # told at once
    deadline = time.monotonic() + 30
    while int(rpc_call(node.url, "txpool_status")["pending"], 16) == 0:
        assert time.monotonic() < deadline, "no anchor was sent"
        time.sleep(0.05)
    # ...and then the node stops
    node.stop()

    # while it is down: a publish is accepted (the broker knows its catalog) and
    # waits for the chain; requests refused, reads that need a grant check refused
    other = tmp_path / "other.pdf"
    other_data = b"accepted while the chain is down"
    other.write_bytes(other_data)
    code, out = publish(world, other, "while-down", "--wait", "0")
    assert code == 0 and out["state"] == "anchoring", out
    code, out = cli_json(
        world, "request", "create", "--owner", "TAX", "--record", rid,
        "--purpose", "again", "--dept", "MARKET",
    )  # fmt: skip
    assert code == 1 and error_code(out) == "chain.unavailable", out
    target = tmp_path / "granted.pdf"
    code, out = cli_json(world, "record", "fetch", rid, "-o", str(target), "--dept", "MARKET")
    assert code == 1 and error_code(out) == "chain.unavailable", out
    assert not target.exists()
    assert httpx.get(tax.url + "/readyz", timeout=10).status_code == 503
    human = run_cli(world, "record", "fetch", rid, "-o", str(target), "--dept", "MARKET")
    assert human.returncode == 1 and "Traceback" not in human.stderr
    assert len(human.stderr.strip().splitlines()) == 1, human.stderr

    # the node comes back on the same port with its ledger
    node.start()
    sha = hashlib.sha256(pending_data).hexdigest()
    deadline = time.monotonic() + 60
    while not any(r.sha256 == sha and r.status == "anchored" for r in tax_rows(world)):
        assert time.monotonic() < deadline, "the accepted publish was not anchored"
        time.sleep(0.1)
    code, again = publish(world, pending_file, "during-outage")
    assert code == 0 and again["replayed"] is True, again
    assert anchored_ids(world, bytes.fromhex(sha)) == [again["record_id"]]
    later = hashlib.sha256(other_data).digest()
    deadline = time.monotonic() + 60
    while not any(r.sha256 == later.hex() and r.status == "anchored" for r in tax_rows(world)):
        assert time.monotonic() < deadline, "the publish accepted while down was not anchored"
        time.sleep(0.1)
    assert len(anchored_ids(world, later)) == 1
    # the grant works again, and the refused publish left nothing behind
    code, got = cli_json(world, "record", "fetch", rid, "-o", str(target), "--dept", "MARKET")
    assert code == 0, got
    assert target.read_bytes() == first.read_bytes()
    assert_no_orphans(world)
