"""The ledger mirror: ground truth is ``eth_getLogs``; kills, restarts, a node that
goes away and a chain that changes under it must neither lose nor double-apply an
event; one tick costs the same whatever the chain's length."""

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
from govshare.chain.mirror import IndexedEvent, Mirror, Projection, mirror_checkpoint
from govshare.errors import DeploymentStale

from .conftest import Consortium, deploy_consortium

pytestmark = pytest.mark.integration  # starts processes (see tests/conftest.py)


def ground_truth(conn: Connection, c: Consortium) -> set[tuple[str, int]]:
    head = conn.block_number()
    addrs = [c.deployment.address(n) for n in CONTRACT_NAMES]
    logs = conn.get_logs(c.deployment.deploy_block, head, addrs)
    return {(log["transactionHash"], int(log["logIndex"], 16)) for log in logs}


def stored(ix: Mirror) -> list[tuple[str, int]]:
    return [(e.tx_hash, e.log_index) for e in ix.events()]


def assert_exact(ix: Mirror, truth: set[tuple[str, int]]) -> None:
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
    ix = Mirror.open_file(conn, c.deployment, tmp_path / "ix.db", range_size=3)
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
    with ix.engine.begin() as db:
        db.execute(
            mirror_checkpoint.update().values(block=c.deployment.deploy_block - 1, block_hash=None)
        )
    assert ix.run_once() == 0
    assert_exact(ix, ground_truth(conn, c))
    ix.close()
    # The same file for another deployment is refused.
    other = make_consortium()
    with pytest.raises(DeploymentStale, match="another deployment"):
        Mirror.open_file(conn, other.deployment, tmp_path / "ix.db")


def _spawn(c: Consortium, db: Path, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    with open(log, "ab") as err:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "govshare.chain.mirror",
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
            row = ro.execute("SELECT block FROM mirror_checkpoint").fetchone()
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
    ix = Mirror.open_file(conn, c.deployment, db)
    assert_exact(ix, ground_truth(conn, c))
    ix.close()


def _produce(c: Consortium, rounds: int) -> None:
    """Anchor records and ask for one per round (synchronously)."""
    L, tax, market = c.ledger, c["TAX"], c["MARKET"]
    for _ in range(rounds):
        items = [AnchorInput(os.urandom(32), os.urandom(32), "bafy", "doc") for _ in range(4)]
        L.records.anchor_many(tax.broker, items)
        now = L.latest_timestamp()
        L.access.request_access(market.broker, "TAX", items[0].record_id, "p", "", now + 99)


def _wait_for(condition, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_node_goes_away_and_comes_back(tmp_path: Path) -> None:
    node = AnvilProcess(state=tmp_path / "state.json").start()
    conn = Connection(node.url)
    c = deploy_consortium(conn, tmp_path)
    _setup(c)
    logs: list[str] = []
    ix = Mirror.open_file(None, c.deployment, tmp_path / "ix.db", range_size=5, log_fn=logs.append)
    stop = threading.Event()
    follower = threading.Thread(
        target=ix.run_forever, kwargs={"poll_interval": 0.05, "stop": stop, "max_backoff": 0.3}
    )
    follower.start()
    try:
        _produce(c, 5)
        node.stop()  # SIGTERM: anvil dumps its state
        _wait_for(lambda: any("not reachable" in m for m in logs), f"no outage seen: {logs}")
        assert follower.is_alive()
        node = AnvilProcess(port=node.port, state=tmp_path / "state.json").start()
        _produce(c, 5)
        truth = ground_truth(conn, c)
        _wait_for(lambda: sum(ix.counts().values()) >= len(truth), "the mirror did not catch up")
        _wait_for(lambda: any("node is back" in m for m in logs), f"no return seen: {logs}")
        stop.set()
        follower.join(10)
        assert_exact(ix, truth)
    finally:
        stop.set()
        follower.join(10)
        ix.close()
        conn.close()
        node.stop()


# -- forks, restarts and the cost of a tick ---------------------------------------------


class Counting(Connection):
    """A connection that counts the JSON-RPC methods it sends (batches included)."""

    def __init__(self, url: str) -> None:
        self.calls: list[str] = []
        super().__init__(url)

    def request(self, method: str, params):  # type: ignore[override]
        self.calls.append(method)
        return super().request(method, params)

    def batch(self, calls):  # type: ignore[override]
        self.calls.extend(m for m, _ in calls)
        return super().batch(calls)

    def take(self) -> list[str]:
        out, self.calls = self.calls, []
        return out


class Recorder(Projection):
    """Remembers what the mirror told its projections."""

    def __init__(self) -> None:
        self.applied: list[IndexedEvent] = []
        self.rewinds: list[tuple[int, list[IndexedEvent]]] = []
        self.heads: list[int] = []

    def apply(self, db, events, prepared, head) -> None:  # type: ignore[no-untyped-def]
        self.applied.extend(events)
        self.heads.append(head)

    def apply_rewind(self, db, removed, prepared, fork) -> None:  # type: ignore[no-untyped-def]
        self.rewinds.append((fork, list(removed)))


@pytest.fixture
def private_chain(tmp_path: Path):
    """A chain of this test's own (forks and long chains must not touch the session's)."""
    with AnvilProcess() as node:
        conn = Counting(node.url)
        c = deploy_consortium(conn, tmp_path)
        _setup(c)
        yield conn, c


def test_reorg_rewinds_only_to_the_fork_and_converges(private_chain, tmp_path: Path) -> None:
    conn, c = private_chain
    rec = Recorder()
    ix = Mirror.open_file(conn, c.deployment, tmp_path / "ix.db", projections=[rec])
    _produce(c, 3)
    ix.run_once()
    fork = conn.block_number()
    snap = conn.request("evm_snapshot", [])
    for _ in range(4):  # a tick per block: the mirror remembers each of them
        _produce(c, 1)
        ix.run_once()
    lost = {e.tx_hash for e in ix.events(from_block=fork + 1)}
    assert lost
    assert conn.request("evm_revert", [snap]) is True
    _produce(c, 6)  # another history, longer than the one it replaces
    conn.take()
    assert ix.run_once() > 0
    assert ix.last_tick.rewound_to == fork, "rewound further back than the fork"
    # Binary search over remembered blocks, not a walk back to the deploy block.
    assert conn.take().count("eth_getBlockByNumber") <= 8
    assert rec.rewinds and rec.rewinds[-1][0] == fork
    assert {e.tx_hash for e in rec.rewinds[-1][1]} == lost
    assert_exact(ix, ground_truth(conn, c))
    assert not lost & {e.tx_hash for e in ix.events()}
    assert ix.rewinds == 1
    assert ix.run_once() == 0 and ix.last_tick.rewound_to is None


def test_a_chain_restored_shorter_rewinds_and_converges(private_chain, tmp_path: Path) -> None:
    conn, c = private_chain
    ix = Mirror.open_file(conn, c.deployment, tmp_path / "ix.db")
    _produce(c, 2)
    ix.run_once()
    fork = conn.block_number()
    snap = conn.request("evm_snapshot", [])
    _produce(c, 3)
    ix.run_once()
    conn.request("evm_revert", [snap])  # the head is now below the checkpoint
    assert ix.run_once() == 0
    assert ix.last_tick.rewound_to == fork and ix.checkpoint == fork
    assert_exact(ix, ground_truth(conn, c))


def test_a_fork_below_everything_remembered_rereads_from_the_deploy_block(
    private_chain, tmp_path: Path
) -> None:
    conn, c = private_chain
    ix = Mirror.open_file(conn, c.deployment, tmp_path / "ix.db", keep_blocks=2)
    snap = conn.request("evm_snapshot", [])
    for _ in range(4):
        _produce(c, 1)
        ix.run_once()
    conn.request("evm_revert", [snap])
    _produce(c, 5)
    ix.run_once()
    assert ix.last_tick.rewound_to == c.deployment.deploy_block - 1
    assert_exact(ix, ground_truth(conn, c))


def test_restart_resumes_from_the_checkpoint(private_chain, tmp_path: Path) -> None:
    conn, c = private_chain
    _produce(c, 3)
    first = Mirror.open_file(conn, c.deployment, tmp_path / "ix.db", range_size=2)
    first.run_once()
    first.close()
    conn.take()
    again = Mirror.open_file(conn, c.deployment, tmp_path / "ix.db", range_size=2)
    assert again.run_once() == 0
    # One batch (head + the checkpoint's block), and no log read at all.
    assert conn.take() == ["eth_blockNumber", "eth_getBlockByNumber"]
    _produce(c, 1)
    assert again.run_once() == 5
    assert_exact(again, ground_truth(conn, c))
