"""The broker's runtime against a real chain (this module's own anvil, its
ledger kept in a state file so the node can stop and come back): start-up after
a crash cleans what the dead process left and keeps what an unfinished
operation resumes from; an idle broker writes no log line; a chain that goes
away is said once, and its return once; shutdown is orderly."""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from govshare.broker import publish as publish_module
from govshare.broker.db import OpState
from govshare.broker.fetch import fetch
from govshare.broker.publish import PublishRequest, publish, stage_file
from govshare.broker.record_batches import proof_of
from govshare.broker.runtime import BrokerRuntime, RuntimeSettings, Startup
from govshare.chain.devnode import AnvilProcess, free_port
from integration.world import CATEGORY, DATABASES, World, build_world, open_runtime, put_databases

pytestmark = pytest.mark.integration


class Crash(BaseException):
    """The process dying mid-step (not an Exception: the outbox does not catch it)."""


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
    """Its brokers' databases in SQLite files, then in the PostgreSQL cluster."""
    w = build_world(node.url, tmp_path_factory.mktemp("home"), codes=("TAX", "MARKET"))
    put_databases(w, request)
    yield w
    w.close()


def spool(runtime: BrokerRuntime) -> set[str]:
    return {p.name for p in runtime.svc.spool.iterdir()}


def test_start_up_cleans_up_after_a_crash_and_resumes_what_it_owns(
    world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    data = os.urandom(300_000)
    crashed = open_runtime(world, "TAX")
    svc = crashed.svc

    def dies_before_storing(point: str) -> None:
        if point == "publish.before_store":
            raise Crash

    # the process dies after encrypting: the plaintext and the envelope are staged
    # (the path of a publish alone; one of a group has let go of its plaintext)
    monkeypatch.setattr(publish_module, "crash_point", dies_before_storing)
    monkeypatch.setattr(svc, "publish_group", None)
    staged = stage_file(svc, io.BytesIO(data))
    with pytest.raises(Crash):
        publish(svc, "user:1", "crash-1", staged, PublishRequest(CATEGORY))
    (op,) = [o for o in svc.outbox.pending() if o.kind == "publish"]
    assert op.state is OpState.RUNNING  # as a killed process leaves it
    owned = {staged.name, f"{op.id}.enc"}
    assert spool(crashed) == owned
    old = 1_700_000_000  # owned files stay whatever their age
    for name in owned:
        os.utime(svc.spool / name, (old, old))
    # what else a crash leaves: a cut-off upload, a half envelope, fetched plaintext,
    # and the blob store's staged blocks of an interrupted write
    (svc.spool / "upload-cut-off.part").write_bytes(b"half an upload")
    (svc.spool / f"{op.id}.enc.tmp").write_bytes(b"half an envelope")
    (svc.spool / "fetch-0123.out").write_bytes(b"plaintext of a fetch")
    blob_tmp = svc.store.root / "tmp"  # type: ignore[attr-defined]
    for i in range(3):
        (blob_tmp / f"blk-left-{i}").write_bytes(os.urandom(1000))
    crashed.stop()  # closes connections only: the operation stays as the crash left it
    monkeypatch.undo()  # the restarted process runs without the fault

    with open_runtime(world, "TAX") as runtime:
        with caplog.at_level(logging.INFO, logger="govshare"):
            startup = runtime.start(threads=False)
        assert startup == Startup(
            resumed=1, spool_files_removed=3, store_files_removed=3, store_bytes_removed=3000
        )
        assert spool(runtime) == owned
        assert list(blob_tmp.iterdir()) == []
        assert "removed 3 leftover spool file(s) and 3 temporary block file(s)" in caplog.text

        runtime.run_once()  # the outbox worker resumes the publish from its files...
        parked = runtime.svc.outbox.get(op.id)
        assert parked.state is OpState.PENDING and parked.step_name == "anchor", parked.error
        runtime.svc.record_batcher.run_once(force=True)  # ...and its batch anchors it
        done = runtime.svc.outbox.get(op.id)
        assert done.state is OpState.DONE, done.error
        rid = str(done.result["record_id"])
        proof = proof_of(runtime.svc, rid)
        assert proof is not None and proof.record.department == "TAX"
        assert runtime.svc.ledger.records.verify_batched_record(proof)
        got = fetch(runtime.svc, rid, tmp_path / "back.bin")
        assert (tmp_path / "back.bin").read_bytes() == data and got.source == "own"
        assert spool(runtime) == set()  # the operation deleted its files as it went


def loud(caplog: pytest.LogCaptureFixture) -> list[tuple[str, int, str]]:
    """What the broker logged at INFO or above."""
    return [
        (r.name, r.levelno, r.getMessage())
        for r in caplog.records
        if r.levelno >= logging.INFO and r.name.startswith("govshare")
    ]


def test_an_idle_broker_is_quiet_and_an_outage_is_said_once(
    world: World, node: AnvilProcess, caplog: pytest.LogCaptureFixture
) -> None:
    settings = RuntimeSettings(receipt_batch_age=0)
    with (
        open_runtime(world, "MARKET", settings) as runtime,
        caplog.at_level(logging.INFO, "govshare"),
    ):
        assert runtime.start(threads=False) == Startup(0, 0, 0, 0)
        runtime.run_once()  # the first round catches up with the chain
        writes: list[str] = []

        @event.listens_for(runtime.svc.db.engine, "before_cursor_execute")
        def _write(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if statement.lstrip().split(None, 1)[0].upper() in ("INSERT", "UPDATE", "DELETE"):
                writes.append(statement)

        for _ in range(5):
            runtime.run_once()
        event.remove(runtime.svc.db.engine, "before_cursor_execute", _write)
        assert loud(caplog) == []
        assert writes == []  # nothing happened: nothing written either

        node.stop()
        for _ in range(4):
            runtime.run_once()
        down = loud(caplog)
        assert sorted((name, level) for name, level, _ in down) == [
            ("govshare.broker.housekeeping", logging.WARNING),
            ("govshare.broker.receipt_batches", logging.WARNING),
        ], down
        assert all("chain.unavailable" in message for _, _, message in down)
        caplog.clear()

        node.start()
        for _ in range(4):
            runtime.run_once()
        back = loud(caplog)
        assert sorted((name, level) for name, level, _ in back) == [
            ("govshare.broker.housekeeping", logging.INFO),
            ("govshare.broker.receipt_batches", logging.INFO),
        ], back
        assert all("working again" in message for _, _, message in back)
        caplog.clear()

        for _ in range(3):
            runtime.run_once()
        assert loud(caplog) == []


def test_shutdown_is_orderly_and_final(world: World) -> None:
    fast = RuntimeSettings(worker_interval=0.05, sync_interval=0.05)
    runtime = open_runtime(world, "MARKET", fast)
    runtime.start()
    threads = [w._thread for w in runtime.workers]
    assert all(t is not None and t.is_alive() for t in threads)
    runtime.stop()
    assert not any(t is not None and t.is_alive() for t in threads)
    assert runtime.svc.http.is_closed
    runtime.stop()  # idempotent
    with pytest.raises(RuntimeError, match="stopped"):
        runtime.start()
