"""The indexer: ground truth is ``eth_getLogs``; kills, restarts and a node that
goes away must neither lose nor double-apply an event."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import closing
from pathlib import Path

import pytest

from govshare.chain.abi import CONTRACT_NAMES
from govshare.chain.connection import Connection
from govshare.chain.contracts import AnchorInput
from govshare.chain.devnode import AnvilProcess
from govshare.chain.indexer import Indexer
from govshare.errors import DeploymentStale

from .conftest import Consortium, deploy_consortium


def ground_truth(conn: Connection, c: Consortium) -> set[tuple[str, int]]:
    head = conn.block_number()
    addrs = [c.deployment.address(n) for n in CONTRACT_NAMES]
    logs = conn.get_logs(c.deployment.deploy_block, head, addrs)
    return {(log["transactionHash"], int(log["logIndex"], 16)) for log in logs}


def stored(ix: Indexer) -> list[tuple[str, int]]:
    return [(e.tx_hash, e.log_index) for e in ix.events()]


def assert_exact(ix: Indexer, truth: set[tuple[str, int]]) -> None:
    rows = stored(ix)
    assert len(rows) == len(set(rows)), "an event is stored twice"
    assert set(rows) == truth, f"missing {len(truth - set(rows))}, extra {len(set(rows) - truth)}"
    assert sum(ix.counts().values()) == len(truth), "an event was applied twice"


class Producer(threading.Thread):
    """Anchors records (and asks for some) until stopped."""

    def __init__(self, c: Consortium) -> None:
        super().__init__(daemon=True)
        self.c = c
        self.halt = threading.Event()
        self.error: BaseException | None = None
        self.sent = 0

    def run(self) -> None:
        L, tax, market = self.c.ledger, self.c["TAX"], self.c["MARKET"]
        try:
            while not self.halt.is_set():
                items = [
                    AnchorInput(os.urandom(32), os.urandom(32), "bafy", "doc") for _ in range(4)
                ]
                L.records.anchor_many(tax.broker, items)
                now = L.latest_timestamp()
                L.access.request_access(market.broker, "TAX", items[0].record_id, "p", "", now + 99)
                self.sent += 5
                time.sleep(0.005)
        except BaseException as exc:  # surfaced by the test
            self.error = exc

    def stop(self) -> None:
        self.halt.set()
        self.join(30)
        assert self.error is None, self.error


def _setup(c: Consortium) -> None:
    c.ledger.records.declare_category(c["TAX"].admin, "doc", "Documents")


def test_indexes_and_queries(make_consortium, conn: Connection, tmp_path: Path) -> None:
    c: Consortium = make_consortium()
    _setup(c)
    L, tax, market = c.ledger, c["TAX"], c["MARKET"]
    r1, r2 = os.urandom(32), os.urandom(32)
    L.records.anchor(tax.broker, r1, os.urandom(32), "bafy1", "doc")
    L.records.anchor(tax.broker, r2, os.urandom(32), "bafy2", "doc", previous_record_id=r1)
    now = L.latest_timestamp()
    req = L.access.request_access(market.broker, "TAX", r2, "p", "", now + 600).value
    L.access.approve(tax.admin, req, expires_at=now + 900, max_uses=1)
    ix = Indexer(conn, c.deployment, tmp_path / "ix.db", range_size=3)
    assert ix.run_once() == len(ground_truth(conn, c))
    assert_exact(ix, ground_truth(conn, c))
    assert ix.run_once() == 0
    # r1 itself, r2 naming r1 as its previous version, and the supersession.
    assert [e.event for e in ix.events_for_record(r1)] == [
        "RecordAnchored",
        "RecordAnchored",
        "RecordSuperseded",
    ]
    assert [e.event for e in ix.events_for_request(req)] == ["AccessRequested", "AccessApproved"]
    market_events = {e.event for e in ix.events_for_department("MARKET")}
    assert {"DepartmentAdded", "AccessRequested", "AccessApproved"} <= market_events
    assert len(ix.events("DepartmentAdded")) == 3
    approved = ix.events("AccessApproved")[0]
    assert approved.args["approvedBy"] == tax.admin.address
    assert approved.indexed_args == {
        "requestId": req,
        "ownerDepartment": "0x" + b"TAX".ljust(32, b"\0").hex(),
        "requesterDepartment": "0x" + b"MARKET".ljust(32, b"\0").hex(),
    }
    assert [e.event for e in ix.events_for_account(tax.admin.address)] == [
        "DepartmentAdded",
        "CategoryDeclared",
        "AccessApproved",
    ]
    # Re-reading everything (as after a lost checkpoint) applies nothing twice.
    with ix.db:
        ix.db.execute(
            "UPDATE meta SET value = ? WHERE key = 'checkpoint'", (c.deployment.deploy_block - 1,)
        )
    assert ix.run_once() == 0
    assert_exact(ix, ground_truth(conn, c))
    ix.close()
    # The same file for another deployment is refused.
    other = make_consortium()
    with pytest.raises(DeploymentStale, match="another deployment"):
        Indexer(conn, other.deployment, tmp_path / "ix.db")


def _spawn(c: Consortium, db: Path, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    with open(log, "ab") as err:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "govshare.chain.indexer",
                "--deployment",
                str(c.path),
                "--db",
                str(db),
                "--poll",
                "0.02",
                "--range",
                "4",
                *extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )


def _checkpoint(db: Path) -> int:
    if not db.exists():
        return -1
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as ro:
            row = ro.execute("SELECT value FROM meta WHERE key = 'checkpoint'").fetchone()
    except sqlite3.OperationalError:  # created, schema not written yet
        return -1
    return int(row[0]) if row else -1


def test_killed_and_restarted_ten_times(make_consortium, conn: Connection, tmp_path: Path) -> None:
    c: Consortium = make_consortium()
    _setup(c)
    db, log = tmp_path / "ix.db", tmp_path / "indexer.log"
    producer = Producer(c)
    producer.start()
    rng = random.Random(7)
    progress: list[int] = []
    proc: subprocess.Popen[bytes] | None = None
    try:
        for _ in range(10):
            before = _checkpoint(db)
            proc = _spawn(c, db, log)
            deadline = time.monotonic() + 30
            while _checkpoint(db) <= before:  # wait until it is working...
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.3))  # ...then kill it mid-stream
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            progress.append(_checkpoint(db))
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        producer.stop()
    assert producer.sent > 50
    assert progress == sorted(progress) and len(set(progress)) == 10, progress
    assert progress[-1] < conn.block_number()
    proc = _spawn(c, db, log, "--once")
    assert proc.wait(60) == 0, log.read_text()
    ix = Indexer(conn, c.deployment, db)
    assert_exact(ix, ground_truth(conn, c))
    ix.close()


def test_node_goes_away_and_comes_back(tmp_path: Path) -> None:
    node = AnvilProcess(state=tmp_path / "state.json").start()
    conn = Connection(node.url)
    c = deploy_consortium(conn, tmp_path)
    _setup(c)
    ix = Indexer(None, c.deployment, tmp_path / "ix.db", range_size=5)
    stop = threading.Event()
    logs: list[str] = []
    ix.log = logs.append
    follower = threading.Thread(
        target=ix.run_forever, kwargs={"poll_interval": 0.05, "stop": stop, "max_backoff": 0.3}
    )
    follower.start()
    try:
        producer = Producer(c)
        producer.start()
        time.sleep(0.5)
        producer.stop()
        node.stop()  # SIGTERM: anvil dumps its state
        time.sleep(1.0)
        assert follower.is_alive()
        assert any("not reachable" in m for m in logs), logs
        node = AnvilProcess(port=node.port, state=tmp_path / "state.json").start()
        producer = Producer(c)
        producer.start()
        time.sleep(0.5)
        producer.stop()
        truth = ground_truth(conn, c)
        deadline = time.monotonic() + 20
        while len(ix.counts()) == 0 or sum(ix.counts().values()) < len(truth):
            assert time.monotonic() < deadline, "the indexer did not catch up"
            time.sleep(0.05)
        stop.set()
        follower.join(10)
        assert any("node is back" in m for m in logs), logs
        assert_exact(ix, truth)
    finally:
        stop.set()
        follower.join(10)
        node.stop()
