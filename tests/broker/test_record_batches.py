"""Batched anchoring of published records on a real chain (this module's own
anvil): publishes are accepted at once and anchored by their batch — closed by
count, by time, or for a clerk who waits —; each record is provable from the
chain's root and the contract agrees; a retry with the same key never makes a
second record; versions chain within and across batches; a batch whose step is
run again after a crash is adopted, not sent twice; and a publish costs at most
three database transactions."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event, select

from fakeclock import ManualClock
from govshare.broker.db import OpState, Record, RecordBatch
from govshare.broker.errors import IdempotencyConflict
from govshare.broker.publish import PublishOutcome, PublishRequest, publish, stage_file
from govshare.broker.record_batches import KIND, proof_of
from govshare.broker.services import BrokerServices
from govshare.errors import InputError, IntegrityError
from integration.world import CATEGORY, World, make_services

pytestmark = pytest.mark.integration


@pytest.fixture
def tax(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[BrokerServices]:
    """TAX's broker with batches of at most 4 records and a 5 s window, on a
    clock the test moves (no batcher thread: the test drives it)."""
    svc = make_services(world, "TAX", batch_max_records=4, batch_window=5)  # type: ignore[arg-type]
    clock = ManualClock()
    monkeypatch.setattr(svc, "clock", clock)
    monkeypatch.setattr(svc.outbox, "clock", clock)
    while svc.record_batcher.run_once(force=True).action == "submitted":
        pass  # what an earlier test left accepted is anchored first
    try:
        yield svc
    finally:
        svc.close()
        svc.store.close()
        svc.db.close()


def put(
    svc: BrokerServices, data: bytes, key: str, *, wait: float = 0.0, **meta: Any
) -> PublishOutcome:
    staged = stage_file(svc, io.BytesIO(data))
    return publish(svc, "user:1", key, staged, PublishRequest(CATEGORY, **meta), anchor_wait=wait)


def row(svc: BrokerServices, rid: str) -> Record:
    with svc.db.session(readonly=True) as s:
        r = s.get(Record, rid)
        assert r is not None
        s.expunge(r)
        return r


def chain_batches(svc: BrokerServices) -> int:
    return svc.ledger.records.batch_count(svc.dept)


def test_publishes_are_accepted_at_once_and_anchored_by_count_and_by_time(
    tax: BrokerServices,
) -> None:
    before = chain_batches(tax)
    outs = [put(tax, os.urandom(4096), f"count-{i}") for i in range(10)]
    assert all(o.anchoring and o.state is OpState.PENDING and o.created for o in outs)
    assert all(row(tax, str(o.record_id)).status == "stored" for o in outs)
    assert chain_batches(tax) == before  # nothing sent yet

    first = tax.record_batcher.run_once()  # 10 wait: a full batch of 4 is due
    assert first.action == "submitted" and first.count == 4
    assert first.operation is not None and first.operation.state is OpState.DONE
    assert tax.record_batcher.run_once().count == 4
    assert tax.record_batcher.run_once().action == "waiting"  # 2 left, just arrived
    tax.clock.advance(5)  # type: ignore[attr-defined]
    last = tax.record_batcher.run_once()
    assert last.action == "submitted" and last.count == 2
    assert tax.record_batcher.run_once().action == "none"
    assert chain_batches(tax) == before + 3

    for o in outs:
        op = tax.outbox.get(o.operation_id)
        assert op.state is OpState.DONE, op.error
        assert op.result is not None and op.result["record_id"] == o.record_id
        r = row(tax, str(o.record_id))
        assert r.status == "anchored" and r.batch_seq == op.result["batch"]["sequence"]
        proof = proof_of(tax, str(o.record_id))
        assert proof is not None and proof.leaf_index == r.leaf_index
        # the contract proves it from the root it holds
        assert tax.ledger.records.verify_batched_record(proof)
    # the manifest each batch names is in the store, and hashes to its root
    with tax.db.session(readonly=True) as s:
        cids = list(s.scalars(select(RecordBatch.manifest_cid)))
    assert cids and all(tax.store.has(c) for c in cids if c)


def test_a_clerk_who_waits_gets_the_anchor_without_waiting_the_window(
    tax: BrokerServices,
) -> None:
    out = put(tax, os.urandom(100), "waits", wait=30)
    assert out.state is OpState.DONE and not out.anchoring
    assert out.result is not None and out.result["tx_hash"] and out.result["batch"]


def test_a_retry_returns_the_original_record_while_anchoring_and_after(
    tax: BrokerServices,
) -> None:
    data = os.urandom(2000)
    first = put(tax, data, "retry-1")
    again = put(tax, data, "retry-1")
    assert again.anchoring and not again.created and again.record_id == first.record_id
    with pytest.raises(IdempotencyConflict):
        put(tax, os.urandom(2000), "retry-1")
    tax.record_batcher.run_once(force=True)
    done = put(tax, data, "retry-1")
    assert done.state is OpState.DONE and not done.created
    assert done.record_id == first.record_id
    with tax.db.session(readonly=True) as s:
        same = s.scalars(select(Record.record_id).where(Record.sha256 == first.sha256)).all()
    assert same == [first.record_id]
    assert list(tax.spool.iterdir()) == []  # no staged upload or envelope left behind


def test_versions_chain_within_and_across_batches(tax: BrokerServices) -> None:
    v1 = put(tax, b"version 1", "ver-1")
    v2 = put(tax, b"version 2", "ver-2", supersedes=v1.record_id)  # same batch as v1
    with pytest.raises(InputError, match="already has a newer version"):
        put(tax, b"a rival version 2", "ver-2b", supersedes=v1.record_id)
    tax.record_batcher.run_once(force=True)
    v3 = put(tax, b"version 3", "ver-3", supersedes=v2.record_id)  # the next batch
    with pytest.raises(InputError, match="already has a newer version"):
        put(tax, b"another rival", "ver-2c", supersedes=v1.record_id)
    tax.record_batcher.run_once(force=True)
    assert row(tax, str(v1.record_id)).batch_seq == row(tax, str(v2.record_id)).batch_seq
    assert row(tax, str(v3.record_id)).batch_seq == row(tax, str(v2.record_id)).batch_seq + 1  # type: ignore[operator]

    # on chain from the proofs, oldest first: the contract checks each link
    records = tax.ledger.records
    sent = records.materialise_chain(tax.account, str(v3.record_id), lambda rid: proof_of(tax, rid))
    assert len(sent) == 3
    versions = ["0x" + v.record_id.hex() for v in records.versions(str(v1.record_id))]
    assert versions == [v1.record_id, v2.record_id, v3.record_id]


def test_a_batch_step_run_again_adopts_what_the_chain_holds(tax: BrokerServices) -> None:
    outs = [put(tax, os.urandom(64), f"adopt-{i}") for i in range(3)]
    done = tax.record_batcher.run_once(force=True)
    assert done.operation is not None and done.operation.state is OpState.DONE
    before = chain_batches(tax)
    # As after a crash between the send and its recorded result: the anchor step
    # runs again (and the members are parked again meanwhile).
    assert tax.outbox.reopen(done.operation.id, 1, {"code": "test.rerun"})
    assert all(tax.outbox.get(o.operation_id).state is OpState.PENDING for o in outs)
    assert row(tax, str(outs[0].record_id)).status == "stored"
    again = tax.record_batcher.run_once()  # drives the batch under way
    assert again.operation is not None and again.operation.id == done.operation.id
    op = tax.outbox.get(done.operation.id, with_steps=True)
    assert op.state is OpState.DONE and op.kind == KIND, op.error
    assert op.steps[1].result is not None and op.steps[1].result["tx_hash"] is None  # adopted
    assert chain_batches(tax) == before  # adopted, not sent twice
    assert all(tax.outbox.get(o.operation_id).state is OpState.DONE for o in outs)
    assert all(row(tax, str(o.record_id)).status == "anchored" for o in outs)


def test_a_publish_costs_at_most_three_database_transactions(tax: BrokerServices) -> None:
    put(tax, os.urandom(4096), "warm-up")  # the category catalog is read (and cached)
    begins: list[str] = []

    def on_begin(_conn: Any) -> None:
        begins.append("broker")

    event.listen(tax.db.engine, "begin", on_begin)
    pins = tax.store._pins  # type: ignore[attr-defined]
    real_write = pins._write

    def counted_write() -> Any:
        begins.append("pins")
        return real_write()

    pins._write = counted_write
    try:
        n = 16
        for i in range(n):
            assert put(tax, os.urandom(4096), f"lean-{i}").anchoring
    finally:
        event.remove(tax.db.engine, "begin", on_begin)
        pins._write = real_write
    assert len(begins) <= 3 * n, begins
    assert begins.count("pins") == n  # one pin per record, no whole-file rewrite


def test_a_failed_batch_is_tried_again_later_and_its_records_are_kept(
    tax: BrokerServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    outs = [put(tax, os.urandom(64), f"fail-{i}") for i in range(2)]
    real = tax.ledger.records.submit_anchor_batch

    def refused(*args: Any, **kw: Any) -> Any:
        raise IntegrityError("refused for the test")

    monkeypatch.setattr(tax.ledger.records, "submit_anchor_batch", refused)
    failed = tax.record_batcher.run_once(force=True)
    assert failed.operation is not None and failed.operation.state is OpState.FAILED
    # the records are kept, accepted and waiting; nothing retried before its time
    assert all(tax.outbox.get(o.operation_id).state is OpState.PENDING for o in outs)
    assert all(row(tax, str(o.record_id)).status == "stored" for o in outs)
    monkeypatch.setattr(tax.ledger.records, "submit_anchor_batch", real)
    assert tax.record_batcher.run_once().action == "none"
    tax.clock.advance(60)  # type: ignore[attr-defined]
    again = tax.record_batcher.run_once()
    assert again.action == "retried" and again.count == 2
    assert again.operation is not None and again.operation.state is OpState.DONE
    assert again.operation.idempotency_key.endswith(":retry-1")
    assert all(tax.outbox.get(o.operation_id).state is OpState.DONE for o in outs)
    assert all(row(tax, str(o.record_id)).status == "anchored" for o in outs)


def test_a_version_anchored_alone_puts_its_batched_predecessor_on_chain_first(
    world: World, tax: BrokerServices
) -> None:
    """The broker ran in batch mode, then with one record per transaction: a new
    version of a batched record materialises it first (the contract needs it)."""
    v1 = put(tax, b"batched version 1", "mixed-1", wait=30)
    assert v1.state is OpState.DONE and not tax.ledger.records.record_exists(str(v1.record_id))
    single = make_services(world, "TAX", batch_max_records=1)
    try:
        staged = stage_file(single, io.BytesIO(b"version 2, alone"))
        v2 = publish(
            single, "user:1", "mixed-2", staged, PublishRequest(CATEGORY, supersedes=v1.record_id)
        )
        assert v2.state is OpState.DONE, v2.error
        chain = single.ledger.records.versions(str(v2.record_id))
        assert ["0x" + v.record_id.hex() for v in chain] == [v1.record_id, v2.record_id]
    finally:
        single.close()
        single.store.close()
        single.db.close()
