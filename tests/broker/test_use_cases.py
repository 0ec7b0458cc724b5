"""The broker's use cases against a real chain (this module's own anvil):
publish (durable, idempotent, resumable), request and consent, the chain
mirror, reading one's own records."""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from fakeclock import ManualClock
from govshare.broker.access import request_access, sync_requests
from govshare.broker.consent import approve, deny, revoke
from govshare.broker.db import AccessRequest, OpState, Record, RecordStatus
from govshare.broker.errors import IdempotencyConflict, RecordUnknown, UnknownCategory
from govshare.broker.fetch import fetch
from govshare.broker.publish import PublishRequest, cleanup_spool, publish, stage_file
from govshare.broker.queries import list_records, list_requests, show_record
from govshare.broker.services import BrokerServices
from govshare.broker.subjects import subject_ref
from govshare.crypto import decrypt_bytes, unwrap_dek
from govshare.errors import ChainUnavailable, ContractReverted, InputError, Unauthorized
from integration.world import (
    CATEGORY,
    World,
    anchored_record,
    open_runtime,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tax(world: World) -> Iterator[BrokerServices]:
    with open_runtime(world, "TAX") as runtime:
        yield runtime.svc


@pytest.fixture(scope="module")
def tax_single(world: World) -> Iterator[BrokerServices]:
    """TAX's broker anchoring each record with its own transaction."""
    with open_runtime(world, "TAX", batch_max_records=1) as runtime:
        yield runtime.svc


@pytest.fixture(scope="module")
def market(world: World) -> Iterator[BrokerServices]:
    with open_runtime(world, "MARKET") as runtime:
        yield runtime.svc


def put(svc: BrokerServices, data: bytes, key: str, **meta: object) -> object:
    staged = stage_file(svc, io.BytesIO(data))
    req = PublishRequest(category=str(meta.pop("category", CATEGORY)), **meta)  # type: ignore[arg-type]
    return publish(svc, "user:1", key, staged, req, anchor_wait=30)


def spool_files(svc: BrokerServices) -> list[str]:
    return sorted(p.name for p in svc.spool.iterdir())


def test_publish_anchors_the_record_with_its_payload_stored(tax: BrokerServices) -> None:
    data = os.urandom(300_000)  # two blocks in the store
    out = put(tax, data, "pub-1", subject=" 9111-0000 x", filename="cert.pdf")
    assert out.state is OpState.DONE and out.created, out.error
    rid = out.record_id
    rec = anchored_record(tax, rid)  # in batch mode: its leaf, proven by the contract
    import hashlib

    assert rec.department == "TAX" and rec.category == CATEGORY
    assert rec.content_hash == hashlib.sha256(data).digest()
    assert rec.subject_ref == subject_ref(tax.subject_key, "91110000X")
    assert rec.cid == out.result["cid"] and tax.store.has(rec.cid)
    with tax.db.session(readonly=True) as s:
        row = s.get(Record, rid)
        assert row is not None and row.status == RecordStatus.ANCHORED.value
        assert row.anchor_tx == out.result["tx_hash"] and row.filename == "cert.pdf"
        capsule = row.own_capsule
    # the stored envelope opens with the owner capsule and is the anchored plaintext
    dek = unwrap_dek(
        capsule, tax.hpke, record_id=bytes.fromhex(rid[2:]), grant_id=None, recipient_dept="TAX"
    )
    envelope = b"".join(tax.store.get(rec.cid))
    assert decrypt_bytes(envelope, dek, expected_sha256=rec.content_hash) == data
    assert spool_files(tax) == []  # plaintext and envelope staging are gone


def test_a_retry_returns_the_same_record_and_never_a_second(tax: BrokerServices) -> None:
    data = b"retry me"
    first = put(tax, data, "pub-retry")
    count = tax.ledger.records.record_count()
    again = put(tax, data, "pub-retry")
    assert not again.created and again.record_id == first.record_id
    assert again.result == first.result
    assert tax.ledger.records.record_count() == count
    with pytest.raises(IdempotencyConflict):
        put(tax, b"another file", "pub-retry")
    assert spool_files(tax) == []
    # another clerk's key space is separate: the same key is a new record
    staged = stage_file(tax, io.BytesIO(data))
    other = publish(tax, "user:2", "pub-retry", staged, PublishRequest(CATEGORY), anchor_wait=30)
    assert other.created and other.record_id != first.record_id


def test_refused_before_anything_is_kept(tax: BrokerServices, market: BrokerServices) -> None:
    mine = put(market, b"market's", "m-1")
    count = tax.ledger.records.record_count()
    with pytest.raises(UnknownCategory) as exc:
        put(tax, b"x", "pub-badcat", category="not-declared")
    assert exc.value.code == "record.unknown_category"
    with pytest.raises(InputError):
        put(tax, b"x", "pub-badlabel", category="has spaces")
    with pytest.raises(RecordUnknown):
        put(tax, b"x", "pub-nosuch", supersedes="0x" + "77" * 32)
    tax.mirror.run_once()  # TAX's mirror reads MARKET's batch (its record is a leaf there)
    with pytest.raises(InputError, match="only its own department"):
        put(tax, b"x", "pub-theirs", supersedes=mine.record_id)
    assert tax.ledger.records.record_count() == count
    assert spool_files(tax) == [] and tax.outbox.find("user:1", "pub-badcat") is None


def test_new_version_supersedes_the_old(tax: BrokerServices) -> None:
    v1 = put(tax, b"version 1", "ver-1")
    v2 = put(tax, b"version 2", "ver-2", supersedes=v1.record_id)
    assert v2.state is OpState.DONE, v2.error
    assert show_record(tax, v1.record_id).superseded_by == v2.record_id
    assert show_record(tax, v2.record_id).supersedes == v1.record_id
    with pytest.raises(InputError, match="newer version"):
        put(tax, b"version 2b", "ver-2b", supersedes=v1.record_id)


def test_a_lost_anchor_answer_is_resumed_without_a_second_anchor(
    tax_single: BrokerServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Single mode: the transaction lands but its answer is lost (the node went
    away): the operation stays pending; when resumed, the anchor step finds the
    record on chain and adopts it instead of sending again. (Batch mode's twin:
    ``test_record_batches.py``, a batch step run again.)"""
    tax = tax_single
    real = tax.ledger.records.submit_anchor
    sent: list[str] = []

    class LostAnswer:
        def __init__(self, pending: Any) -> None:
            self.pending = pending

        def wait(self, timeout: float | None = None) -> object:
            tx = self.pending.wait(timeout)  # the transaction lands...
            sent.append(tx.tx_hash)
            raise ChainUnavailable("The chain node at test is not reachable.")  # ...unseen

    def lands_then_fails(*args: Any, **kw: Any) -> LostAnswer:
        return LostAnswer(real(*args, **kw))

    clock = ManualClock()
    monkeypatch.setattr(tax.outbox, "clock", clock)  # the retry's backoff is read on it
    monkeypatch.setattr(tax.ledger.records, "submit_anchor", lands_then_fails)
    out = put(tax, b"lost answer", "pub-lost")
    assert out.state is OpState.PENDING and out.error and out.error["retryable"]
    assert out.error["code"] == "chain.unavailable"
    with tax.db.session(readonly=True) as s:
        assert s.get(Record, out.record_id).status == RecordStatus.STORED.value
    monkeypatch.setattr(tax.ledger.records, "submit_anchor", real)
    assert out.operation_id not in {op.id for op in tax.outbox.resume_pending()}  # not due
    clock.advance(1)  # past the retry's backoff (0.5 s)
    done = [op for op in tax.outbox.resume_pending() if op.id == out.operation_id]
    assert done and done[0].state is OpState.DONE
    assert done[0].result["tx_hash"] == sent[0]  # adopted: found by its event
    assert len(sent) == 1
    import hashlib

    assert len(tax.ledger.records.records_by_hash(hashlib.sha256(b"lost answer").digest())) == 1
    again = put(tax, b"lost answer", "pub-lost")
    assert again.record_id == out.record_id and again.state is OpState.DONE


def test_reading_an_own_record(tax: BrokerServices, tmp_path: Path) -> None:
    data = os.urandom(5000)
    out = put(tax, data, "read-own", filename="a.bin", media_type="application/x-test")
    got = fetch(tax, out.record_id, tmp_path / "a.bin")
    assert got.source == "own" and (tmp_path / "a.bin").read_bytes() == data
    assert (got.filename, got.media_type) == ("a.bin", "application/x-test")
    views = list_records(tax.db, "TAX", status="anchored")
    assert out.record_id in {v.record_id for v in views}
    with pytest.raises(RecordUnknown):
        fetch(tax, "0x" + "55" * 32, tmp_path / "none")


def test_request_consent_and_the_chain_mirror(
    world: World, tax: BrokerServices, market: BrokerServices
) -> None:
    rec = put(tax, b"for market", "req-rec")
    out = request_access(
        market,
        "user:1",
        "TAX",
        rec.record_id,
        "business licence",
        "art. 5",
        idempotency_key="req-1",
    )
    assert out.state == "done" and out.request_id
    again = request_access(
        market,
        "user:1",
        "TAX",
        rec.record_id,
        "business licence",
        "art. 5",
        idempotency_key="req-1",
    )
    assert again.request_id == out.request_id and not again.created
    chain_req = world.ledger.access.get_request(out.request_id)
    assert chain_req.deadline - world.ledger.now() > 3 * 86400 - 60  # default: 3 days

    with pytest.raises(InputError, match="own record"):
        request_access(tax, "user:1", "TAX", rec.record_id, "p", idempotency_key="x1")
    with pytest.raises(InputError, match="belongs to TAX"):
        request_access(market, "user:1", "COURT", rec.record_id, "p", idempotency_key="x2")
    with pytest.raises(RecordUnknown):
        request_access(market, "user:1", "TAX", "0x" + "66" * 32, "p", idempotency_key="x3")

    sync_requests(tax)
    incoming = list_requests(tax.db, "TAX", direction="incoming", status="pending")
    assert out.request_id in {r.id for r in incoming}
    outgoing = list_requests(market.db, "MARKET", direction="outgoing")
    assert {r.id: r.status for r in outgoing}[out.request_id] == "pending"

    # consent needs an administrator key: the broker key is refused by the contract
    with pytest.raises(Unauthorized):
        approve(world.ledger, world["TAX"].broker, out.request_id, max_uses=1, expires_in=60)
    approve(world.ledger, world["TAX"].admin, out.request_id, max_uses=3, expires_in=3600)
    sync_requests(market)
    mine = list_requests(market.db, "MARKET", grants_only=True, status="approved")
    grant = {r.id: r for r in mine}[out.request_id]
    assert grant.grant_id == out.request_id and grant.max_uses == 3 and grant.uses == 0

    revoke(world.ledger, world["TAX"].admin, out.request_id, "licence refused")
    sync_requests(market)
    row = {r.id: r for r in list_requests(market.db, "MARKET")}[out.request_id]
    assert (row.status, row.reason) == ("revoked", "licence refused")

    second = request_access(
        market, "user:1", "TAX", rec.record_id, "again", idempotency_key="req-2"
    )
    deny(world.ledger, world["TAX"].admin, second.request_id, "no legal basis")
    with pytest.raises(InputError):
        deny(world.ledger, world["TAX"].admin, second.request_id, " ")
    with pytest.raises(ContractReverted):
        deny(world.ledger, world["TAX"].admin, second.request_id, "twice")
    sync_requests(tax)
    denied = list_requests(tax.db, "TAX", direction="incoming", status="denied")
    assert second.request_id in {r.id for r in denied}
    with tax.db.session(readonly=True) as s:
        ids = s.scalars(select(AccessRequest.request_id)).all()
    assert set(ids) >= {str(out.request_id), str(second.request_id)}


def test_spool_cleanup_keeps_what_unfinished_operations_need(tax: BrokerServices) -> None:
    stale = tax.spool / "upload-stale.part"
    stale.write_bytes(b"left behind by a crash")
    old = time.time() - 7200
    os.utime(stale, (old, old))
    fresh = tax.spool / "upload-fresh.part"
    fresh.write_bytes(b"being uploaded")
    assert cleanup_spool(tax) == 1
    assert spool_files(tax) == ["upload-fresh.part"]
    fresh.unlink()
