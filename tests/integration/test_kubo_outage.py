"""A department's Kubo node (the pinned build, its real daemon) dies during an
import of 200 records and comes back: the publishes made while it is down are
accepted and wait (or say why not), none is lost or doubled, every record is
anchored once the node is back, and nothing is left orphaned — every pin on the
node belongs to a record or a batch manifest, and the spool is empty."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import engines
from govshare.broker.db import OpState
from govshare.broker.fetch import fetch
from govshare.broker.publish import PublishOutcome, PublishRequest, publish, stage_file
from govshare.broker.runtime import BrokerRuntime
from govshare.chain.devnode import AnvilProcess
from govshare.errors import GovShareError
from integration.world import CATEGORY, World, anchored_record, build_world, open_runtime

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with AnvilProcess() as node:
        w = build_world(node.url, tmp_path_factory.mktemp("home"), codes=("TAX", "MARKET"))
        yield w
        w.close()


@pytest.fixture
def node(tmp_path: Path) -> Iterator[engines.KuboDaemon]:
    try:
        daemon = engines.KuboDaemon(tmp_path / "kubo")
    except engines.EngineUnavailable as exc:
        pytest.skip(str(exc))
    with engines.running(daemon):
        yield daemon


def test_a_kubo_node_that_dies_mid_import_loses_and_orphans_nothing(
    world: World, node: engines.KuboDaemon
) -> None:
    rt: BrokerRuntime = open_runtime(world, "TAX", store_url=f"kubo:{node.api_url}")  # type: ignore[arg-type]
    rt.start(threads=False)
    svc = rt.svc
    # what the node pins of its own from the start (its empty MFS root)
    own = set(node.rpc("pin/ls", type="recursive").json()["Keys"])
    datas = [os.urandom(2000) for _ in range(200)]

    def one(i: int) -> PublishOutcome | GovShareError:
        staged = stage_file(svc, io.BytesIO(datas[i]))
        try:
            return publish(svc, "user:1", f"outage-{i}", staged, PublishRequest(CATEGORY))
        except GovShareError as exc:  # a clean refusal is allowed; a traceback is not
            return exc

    try:
        with ThreadPoolExecutor(8) as pool:
            before = list(pool.map(one, range(90)))
            node.stop(hard=True)  # the node dies (SIGKILL)
            during = list(pool.map(one, range(90, 110)))
            node.start()  # and comes back with its repo
            after = list(pool.map(one, range(110, 200)))
        outcomes = [*before, *during, *after]
        assert all(isinstance(o, PublishOutcome) for o in outcomes), [
            o for o in outcomes if not isinstance(o, PublishOutcome)
        ]
        # while it was down, each was accepted and waits for the store (not anchoring yet)
        assert all(isinstance(o, PublishOutcome) and not o.anchoring for o in during)

        # the broker's workers finish what waited; the batches anchor everything
        for _ in range(50):
            pending = [op for op in svc.outbox.pending() if op.kind == "publish"]
            if not pending:
                break
            for op in pending:
                svc.outbox.run(op.id, wait=False)
            while svc.record_batcher.run_once(force=True).action == "submitted":
                pass
        views = [svc.outbox.get(o.operation_id) for o in outcomes if isinstance(o, PublishOutcome)]
        assert all(v.state is OpState.DONE for v in views), [
            v for v in views if v.state is not OpState.DONE
        ][:3]
        ids = [str((v.result or {}).get("record_id")) for v in views]
        assert len(set(ids)) == 200
        for rid in ids:
            assert anchored_record(svc, rid).department == "TAX"
        for i in (0, 95, 199):  # one from each phase reads back exactly
            dst = svc.spool.parent / f"back-{i}"
            fetch(svc, ids[i], dst)
            assert dst.read_bytes() == datas[i]
            dst.unlink()

        # nothing orphaned: the node pins the records and the batch manifests, nothing else
        pinned = set(node.rpc("pin/ls", type="recursive").json()["Keys"])
        records = world.ledger.records
        manifests = {
            records.get_batch("TAX", s).manifest_cid
            for s in range(1, records.batch_count("TAX") + 1)
        }
        cids = {anchored_record(svc, rid).cid for rid in ids}
        assert pinned == own | cids | manifests
        assert list(svc.spool.iterdir()) == []
    finally:
        rt.stop()
