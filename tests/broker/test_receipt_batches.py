"""Receipt batching on a real chain (this module's own anvil): real exchanges
through ``serve_exchange`` leave receipts; the batcher anchors them by count and
by time as durable operations; the manifest in the store hashes to the anchored
root; a crash after sending, a chain that lost the batch, and a broker restart
each end with every receipt anchored exactly once."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import select

from fakeclock import ManualClock
from govshare.audit.receipts import ReceiptLeaf, parse_manifest
from govshare.broker import receipt_batches
from govshare.broker.access import request_access
from govshare.broker.consent import approve
from govshare.broker.db import OpState, Receipt
from govshare.broker.exchange import ExchangeAck, ExchangeRequest
from govshare.broker.publish import PublishRequest, publish, stage_file
from govshare.broker.receipt_batches import ReceiptBatcher
from govshare.broker.serve_exchange import acknowledge, serve_exchange
from govshare.broker.services import BrokerServices
from govshare.chain.connection import node_went_away
from govshare.chain.devnode import AnvilProcess
from integration.world import CATEGORY, DATABASES, World, build_world, open_runtime, put_databases

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def node() -> Iterator[AnvilProcess]:
    with AnvilProcess() as n:
        yield n


@pytest.fixture(scope="module", params=DATABASES)
def world(
    request: pytest.FixtureRequest, node: AnvilProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """Its brokers' databases in SQLite files, then in the PostgreSQL cluster."""
    w = build_world(node.url, tmp_path_factory.mktemp("home"))
    put_databases(w, request)
    yield w
    w.close()


@dataclass
class Pair:
    tax: BrokerServices
    market: BrokerServices
    record_id: str
    grant: int


@pytest.fixture(scope="module")
def pair(world: World) -> Iterator[Pair]:
    runtimes = [open_runtime(world, "TAX"), open_runtime(world, "MARKET")]
    tax, market = (rt.svc for rt in runtimes)
    staged = stage_file(tax, io.BytesIO(b"a tax clearance certificate"))
    out = publish(tax, "user:1", "cert", staged, PublishRequest(CATEGORY), anchor_wait=30)
    req = request_access(
        market, "user:2", "TAX", out.record_id, "licence", "art. 5", idempotency_key="r-1"
    )
    assert req.request_id is not None
    approve(tax.ledger, world["TAX"].admin, req.request_id, max_uses=1000, expires_in=86400)
    yield Pair(tax, market, str(out.record_id), int(req.request_id))
    for rt in runtimes:
        rt.stop()


def exchange(p: Pair, n: int = 1) -> list[int]:
    """``n`` real exchanges: MARKET signs, TAX's serve_exchange answers, MARKET
    acknowledges the delivery (else the batcher holds the receipt for the resume
    window: see test_an_unacknowledged_receipt_is_held_then_anchored)."""
    seqs = []
    for _ in range(n):
        req = ExchangeRequest.new(
            "MARKET", "TAX", p.grant, bytes.fromhex(p.record_id[2:]), now=p.tax.ledger.now()
        )
        answer = serve_exchange(p.tax, req.to_json(), req.sign(p.market.account, p.tax.domain))
        for _chunk in answer.chunks:
            pass
        r = answer.receipt
        ack = ExchangeAck(r.request_hash, r.ciphertext_cid, r.issued_at)
        acknowledge(p.tax, ack.to_json("MARKET", "TAX"), ack.sign(p.market.account, p.tax.domain))
        seqs.append(r.seq)
    return seqs


def onchain_batches(svc: BrokerServices) -> list[tuple[int, int]]:
    a = svc.ledger.access
    return [
        (b.first_seq, b.last_seq)
        for b in (a.get_receipt_batch("TAX", i) for i in range(1, a.receipt_batch_count("TAX") + 1))
    ]


def test_batches_by_count_then_by_time_and_the_manifest_matches_the_root(
    p_fixture: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = p_fixture
    clock = ManualClock()
    monkeypatch.setattr(p.tax, "clock", clock)  # receipts are issued, and aged, on it
    assert exchange(p, 7) == list(range(1, 8))
    batcher = ReceiptBatcher(p.tax, max_count=3, max_age=3600)
    first = batcher.run_once(drive=True)
    assert first.action == "submitted" and (first.first_seq, first.last_seq) == (1, 3)
    assert first.operation is not None and first.operation.state is OpState.DONE
    assert batcher.run_once(drive=True).last_seq == 6
    waiting = batcher.run_once(drive=True)
    assert waiting.action == "waiting" and (waiting.first_seq, waiting.last_seq) == (7, 7)
    # by time: the seventh is anchored once it has waited max_age on the clock
    clock.advance(3599)
    assert batcher.run_once(drive=True).action == "waiting"
    clock.advance(1)
    timed = batcher.run_once(drive=True)
    assert timed.action == "submitted" and (timed.first_seq, timed.last_seq) == (7, 7)
    assert batcher.run_once(drive=True).action == "none"

    assert onchain_batches(p.tax) == [(1, 3), (4, 6), (7, 7)]
    assert p.tax.ledger.access.get_request(p.grant).used_count == 7
    batch = p.tax.ledger.access.get_receipt_batch("TAX", 1)
    manifest = parse_manifest(b"".join(p.tax.store.get(batch.manifest_cid)), strict=True)
    assert manifest.root() == batch.root
    assert manifest.header["department"] == "TAX" and manifest.first_seq == 1
    assert [r.seq for r in manifest.receipts] == [1, 2, 3]
    with p.tax.db.session(readonly=True) as s:
        rows = s.scalars(select(Receipt).where(Receipt.owner == "TAX").order_by(Receipt.seq)).all()
        assert [r.batch_id for r in rows] == ["1", "1", "1", "2", "2", "2", "3"]
        stored = receipt_batches.receipt_leaf(rows[0])
    assert manifest.receipts[0] == stored
    assert ReceiptLeaf.parse(stored.leaf()) == stored
    # MARKET keeps its copies (owner TAX); they are never MARKET's to anchor
    assert ReceiptBatcher(p.market, max_age=0).run_once(drive=True).action == "none"


class Crash(BaseException):
    """Stands for the process dying (not an Exception: the outbox must not catch it)."""


def test_a_crash_after_sending_adopts_the_batch_instead_of_anchoring_twice(
    p_fixture: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = p_fixture
    exchange(p, 2)
    real = p.tax.ledger.access.anchor_receipts
    sent: list[str] = []

    def lands_then_dies(*args: object, **kw: object) -> object:
        out = real(*args, **kw)  # type: ignore[arg-type]
        sent.append(out.tx_hash)
        raise Crash

    monkeypatch.setattr(p.tax.ledger.access, "anchor_receipts", lands_then_dies)
    before = len(onchain_batches(p.tax))
    with pytest.raises(Crash):
        ReceiptBatcher(p.tax, max_age=0).run_once(drive=True)
    monkeypatch.setattr(p.tax.ledger.access, "anchor_receipts", real)
    assert len(sent) == 1 and len(onchain_batches(p.tax)) == before + 1

    # a new broker process on the same database: recover, resume
    again = make_services_like(p.tax)
    try:
        assert again.outbox.recover() == 1
        ran = [op for op in again.outbox.resume_pending() if op.kind == "anchor_receipts"]
        assert ran and ran[0].state is OpState.DONE and ran[0].result
        assert ran[0].result["adopted"] is True
        assert len(onchain_batches(p.tax)) == before + 1  # nothing anchored twice
        assert ReceiptBatcher(again, max_age=0).run_once(drive=True).action == "none"
    finally:
        again.close()
        again.db.close()


def make_services_like(svc: BrokerServices) -> BrokerServices:
    from govshare.broker.db import Database

    return BrokerServices(
        dept=svc.dept,
        db=Database.open(svc.db.engine.url),
        ledger=svc.ledger,
        store=svc.store,
        account=svc.account,
        hpke=svc.hpke,
        subject_key=svc.subject_key,
        spool=svc.spool,
    )


def test_a_batch_the_chain_lost_is_anchored_again(p_fixture: Pair, node: AnvilProcess) -> None:
    p = p_fixture
    exchange(p, 3)
    conn = p.tax.ledger.conn
    snap = conn.request("evm_snapshot", [])
    done = ReceiptBatcher(p.tax, max_age=0).run_once(drive=True)
    assert done.operation is not None and done.operation.state is OpState.DONE
    lost = (done.first_seq, done.last_seq)
    assert onchain_batches(p.tax)[-1] == lost
    conn.request("evm_revert", [snap])  # the dev chain lost its last blocks
    node_went_away(conn.url)  # as after a node restart: nonces are read again
    assert lost not in onchain_batches(p.tax)
    again = ReceiptBatcher(p.tax, max_age=0).run_once(drive=True)
    assert again.action == "submitted" and (again.first_seq, again.last_seq) == lost
    assert again.operation is not None and again.operation.state is OpState.DONE
    assert onchain_batches(p.tax)[-1] == lost
    seqs = [s for a, b in onchain_batches(p.tax) for s in range(a, b + 1)]
    assert seqs == list(range(1, seqs[-1] + 1))  # contiguous, each once


def test_receipts_wait_across_a_restart_and_are_anchored_after_it(p_fixture: Pair) -> None:
    p = p_fixture
    exchange(p, 2)
    top = p.tax.ledger.access.last_receipt_seq("TAX")
    restarted = make_services_like(p.tax)
    try:
        out = ReceiptBatcher(restarted, max_age=0).run_once(drive=True)
        assert (out.first_seq, out.last_seq) == (top + 1, top + 2)
        assert p.tax.ledger.access.last_receipt_seq("TAX") == top + 2
    finally:
        restarted.close()
        restarted.db.close()


@pytest.fixture
def p_fixture(pair: Pair) -> Pair:
    return pair
