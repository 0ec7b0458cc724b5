"""The mirror's record batch index: every anchored batch's manifest is read from
any source, checked against the chain's root, indexed, and undone by a rewind;
missing or wrong manifests are recorded (and retried, or refused for good), and
no manifest bytes or event values stop a tick."""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import pytest
from tests.fakeclock import ManualClock

from govshare.audit.sources import ManifestSources, StoreSource
from govshare.chain.batch import BatchManifest, BatchRecord, build_batch, canonical_json
from govshare.chain.batchindex import BatchIndex
from govshare.chain.connection import Connection
from govshare.chain.devnode import AnvilProcess
from govshare.chain.mirror import IndexedEvent, Mirror
from govshare.storage import BlobStore, open_store

from .conftest import Consortium, deploy_consortium

pytestmark = pytest.mark.integration  # a chain of its own for the rewind test

CATEGORY = "doc"


def rec(
    dept: str = "TAX", previous: bytes | None = None, *, content: bytes | None = None
) -> BatchRecord:
    return BatchRecord(
        record_id=os.urandom(32),
        department=dept,
        content_hash=content or os.urandom(32),
        cid="bafy" + os.urandom(8).hex(),
        category=CATEGORY,
        subject_ref=os.urandom(32),
        previous_record_id=previous,
    )


def put(store: BlobStore, data: bytes) -> str:
    return str(store.put(io.BytesIO(data), cid_version=1))


def cid_of(data: bytes) -> str:
    from govshare.storage import compute_cid

    return str(compute_cid(data, cid_version=1))


def anchor(
    c: Consortium, dept: str, m: BatchManifest, cid: str, *, root: bytes | None = None
) -> int:
    return c.ledger.records.anchor_batch(c[dept].broker, root or m.root, m.count, cid).value


@pytest.fixture
def world(make_consortium, conn: Connection, tmp_path: Path):  # type: ignore[no-untyped-def]
    c: Consortium = make_consortium()
    for code in ("TAX", "MARKET"):
        c.ledger.records.declare_category(c[code].admin, CATEGORY, "Documents")
    store = open_store(f"local:{tmp_path / 'blobs'}")
    clock = ManualClock()
    index = BatchIndex(ManifestSources([StoreSource(store, "store")]), clock=clock)
    mirror = Mirror.open_file(conn, c.deployment, tmp_path / "ix.db", projections=[index])
    yield c, store, index, mirror, clock
    mirror.close()


def test_a_batch_is_indexed_and_its_records_materialise(world) -> None:  # type: ignore[no-untyped-def]
    c, store, index, mirror, _ = world
    v1 = rec()
    v2 = rec(previous=v1.record_id)
    other = rec()
    m = build_batch("TAX", [v2, other, v1])  # a version before its predecessor
    seq = anchor(c, "TAX", m, put(store, m.data))
    mirror.run_once()
    b = index.batch("TAX", seq)
    assert b is not None and b.state == "indexed" and b.count == 3 and b.source == "store"
    assert index.last_round.indexed == 1 and index.last_round.leaves == 3
    assert index.counts()["indexed"] == 1 and index.problems() == []
    # Where each record sits, with a proof the contract accepts.
    p = index.locate(v2.record_id)
    assert p is not None and (p.sequence, p.leaf_index) == (seq, 0) and p.record == v2
    assert c.ledger.records.verify_batched_record(p)
    assert [x.record.record_id for x in index.by_content_hash(other.content_hash)] == [
        other.record_id
    ]
    assert index.locate(os.urandom(32)) is None
    # Materialise v2 from the index: v1 goes first; the mirror sees both.
    sent = c.ledger.records.materialise_chain(c["MARKET"].broker, v2.record_id, index.locate)
    assert len(sent) == 2
    assert c.ledger.records.get_record(v2.record_id).previous_record_id == v1.record_id
    mirror.run_once()
    mats = mirror.events("RecordMaterialised")
    assert [e.args["leafIndex"] for e in mats] == [2, 0]
    assert [e.event for e in mirror.events_for_record(v2.record_id, "RecordMaterialised")] == [
        "RecordMaterialised"
    ]
    # A second tick reads nothing again.
    mirror.run_once()
    assert index.last_round.indexed == 0


def test_a_missing_manifest_is_retried_with_back_off(world) -> None:  # type: ignore[no-untyped-def]
    c, store, index, mirror, clock = world
    m = build_batch("TAX", [rec(), rec()])
    seq = anchor(c, "TAX", m, cid_of(m.data))  # anchored, but stored nowhere yet
    mirror.run_once()
    b = index.batch("TAX", seq)
    assert b is not None and b.state == "unavailable" and b.attempts == 1
    assert "No manifest source holds" in (b.problem or "")
    assert [x.sequence for x in index.problems("TAX")] == [seq]
    mirror.run_once()  # not due yet: not asked again
    assert index.batch("TAX", seq).attempts == 1  # type: ignore[union-attr]
    clock.advance(5)
    mirror.run_once()
    assert index.batch("TAX", seq).attempts == 2  # type: ignore[union-attr]
    clock.advance(5)
    mirror.run_once()  # the back-off doubled: 10 s now
    assert index.batch("TAX", seq).attempts == 2  # type: ignore[union-attr]
    put(store, m.data)  # the owner's node comes back
    clock.advance(5)
    mirror.run_once()
    b = index.batch("TAX", seq)
    assert b is not None and b.state == "indexed" and b.problem is None
    assert index.locate(m.records[1].record_id) is not None


def _tampered(world, make, *, dept: str = "TAX", root: bytes | None = None) -> str:  # type: ignore[no-untyped-def]
    """Anchor a batch whose manifest is ``make(real)``; the problem it is refused with."""
    c, store, index, mirror, _ = world
    real = build_batch(dept, [rec(dept), rec(dept), rec(dept)])
    data = make(real)
    seq = anchor(c, dept, real, put(store, data), root=root)
    mirror.run_once()
    b = index.batch(dept, seq)
    assert b is not None and b.state == "invalid", b
    for r in real.records:
        assert index.leaves_of(r.record_id) == []
    assert b.problem is not None and b.problem.isprintable()
    return b.problem


def _lines(m: BatchManifest) -> list[bytes]:
    return m.data.rstrip(b"\n").split(b"\n")


def test_a_manifest_that_does_not_hash_to_the_root_is_refused(world) -> None:  # type: ignore[no-untyped-def]
    problem = _tampered(world, lambda m: m.data, root=os.urandom(32))
    assert "do not hash to the batch's anchored root" in problem


def test_a_moved_leaf_is_refused(world) -> None:  # type: ignore[no-untyped-def]
    def swap(m: BatchManifest) -> bytes:
        moved = build_batch("TAX", [m.records[1], m.records[0], m.records[2]])
        return moved.data  # well formed, same records, another order

    assert "do not hash" in _tampered(world, swap)


def test_another_departments_manifest_is_refused(world) -> None:  # type: ignore[no-untyped-def]
    def tax_batch(m: BatchManifest) -> bytes:  # MARKET anchors TAX's manifest under its name
        return build_batch("TAX", [rec("TAX")] * 1).data

    problem = _tampered(world, tax_batch, dept="MARKET")
    assert "is TAX's, not MARKET's" in problem


def test_a_count_that_differs_from_the_chain_is_refused(world) -> None:  # type: ignore[no-untyped-def]
    problem = _tampered(world, lambda m: build_batch("TAX", m.records[:2]).data)
    assert "the chain says 3" in problem


HOSTILE = {
    "garbage": os.urandom(300),
    "empty": b"",
    "not json": b"{nope\n",
    "controls": b'{"format":"\x1b[31mred\x1b[0m\\u202e"}\n',
    "huge count": canonical_json(
        {
            "chain_id": None,
            "count": 10**30,
            "department": "TAX",
            "format": "govshare-record-batch/1",
            "leaf": "govshare.record-leaf.v1",
            "registry": None,
            "tree": "rfc6962-sha256",
        }
    )
    + b"\n",
    "deep nesting": b"[" * 100_000 + b"\n",
    "over 4 MiB": b"x" * (4 * 1024 * 1024 + 1),
    "bad hex": b"\n".join(
        [
            canonical_json(
                {
                    "chain_id": None,
                    "count": 1,
                    "department": "TAX",
                    "format": "govshare-record-batch/1",
                    "leaf": "govshare.record-leaf.v1",
                    "registry": None,
                    "tree": "rfc6962-sha256",
                }
            ),
            json.dumps({"index": 0, "record_id": "0x\u0000"}).encode(),
        ]
    )
    + b"\n",
}


def test_hostile_manifest_bytes_never_stop_a_tick(world) -> None:  # type: ignore[no-untyped-def]
    c, store, index, mirror, _ = world
    good = build_batch("TAX", [rec()])
    seqs = {}
    for name, data in HOSTILE.items():
        seqs[name] = anchor(c, "TAX", good, put(store, data))
    good_seq = anchor(c, "TAX", good, put(store, good.data))
    mirror.run_once()
    mirror.run_once()
    for name, seq in seqs.items():
        b = index.batch("TAX", seq)
        assert b is not None and b.state == "invalid", name
        assert b.problem and b.problem.isprintable() and len(b.problem) <= 300, name
    assert index.batch("TAX", good_seq).state == "indexed"  # type: ignore[union-attr]
    assert len(index.problems()) == len(HOSTILE)


def test_hostile_event_values_are_refused_at_the_door(world) -> None:  # type: ignore[no-untyped-def]
    """Values a decoder may hand over (sizes, types, control characters): the batch
    is refused or skipped, and the tick goes on."""
    _, _, index, _, _ = world

    def ev(**args: object) -> IndexedEvent:
        base = {
            "department": "0x" + b"TAX".ljust(32, b"\0").hex(),
            "sequence": 7,
            "merkleRoot": "0x" + "11" * 32,
            "count": 2,
            "manifestCid": "bafyok",
            "anchoredBy": "0x" + "22" * 20,
        }
        base.update(args)
        return IndexedEvent(
            1,
            "0x" + "00" * 32,
            "0x" + os.urandom(32).hex(),
            0,
            "RecordRegistry",
            "0x",
            "RecordBatchAnchored",
            base,
            {},
        )

    events = [
        ev(count=10**40, sequence=1),
        ev(count=-1, sequence=2),
        ev(count=True, sequence=3),
        ev(manifestCid="bafy\x1b[2J" + "x" * 500, sequence=4),
        ev(manifestCid=None, sequence=5),
        ev(sequence=2**64 - 1),  # no row can hold it: skipped
        ev(sequence="7"),
        ev(department="0x" + "ff" * 32, sequence=8),
        ev(merkleRoot="0x12", sequence=9),
    ]
    with index.engine.begin() as db:
        index.apply(db, events, None, 0)
    got = {b.sequence: b for b in index.batches("TAX")}
    assert sorted(got) == [1, 2, 3, 4, 5]
    for b in got.values():
        assert b.state == "invalid" and b.problem and b.problem.isprintable()
        assert len(b.manifest_cid) <= 128 and b.manifest_cid.isprintable()
    index.index_pending()  # invalid batches are never fetched
    assert index.counts()["invalid"] == 5


def test_a_rewind_forgets_the_batches_it_took_away(tmp_path: Path) -> None:
    with AnvilProcess() as node:
        from govshare.chain.connection import connect

        with connect(node.url) as conn:
            c = deploy_consortium(conn, tmp_path)
            c.ledger.records.declare_category(c["TAX"].admin, CATEGORY, "Documents")
            store = open_store(f"local:{tmp_path / 'blobs'}")
            index = BatchIndex(ManifestSources([StoreSource(store, "store")]))
            mirror = Mirror.open_file(conn, c.deployment, tmp_path / "ix.db", projections=[index])
            kept = build_batch("TAX", [rec()])
            anchor(c, "TAX", kept, put(store, kept.data))
            mirror.run_once()
            snap = conn.request("evm_snapshot", [])
            lost = build_batch("TAX", [rec(), rec()])
            seq = anchor(c, "TAX", lost, put(store, lost.data))
            mirror.run_once()
            assert index.locate(lost.records[0].record_id) is not None
            assert conn.request("evm_revert", [snap]) is True
            other = build_batch("TAX", [rec()])  # the same sequence, another batch
            assert anchor(c, "TAX", other, put(store, other.data)) == seq
            conn.request("evm_mine", [])
            mirror.run_once()
            assert mirror.last_tick.rewound_to is not None
            assert index.locate(lost.records[0].record_id) is None
            assert index.locate(other.records[0].record_id) is not None
            assert index.batch("TAX", seq).merkle_root == "0x" + other.root.hex()  # type: ignore[union-attr]
            assert index.counts()["indexed"] == 2
            mirror.close()


def test_one_tick_indexing_a_batch_of_256(world, capsys) -> None:  # type: ignore[no-untyped-def]
    """What a batch of 256 adds to a tick (reported, not asserted: no durations)."""
    c, store, index, mirror, _ = world
    m = build_batch("TAX", [rec() for _ in range(256)])
    anchor(c, "TAX", m, put(store, m.data))
    t0 = time.perf_counter()
    mirror.run_once()
    t1 = time.perf_counter()
    locate_t0 = time.perf_counter()
    assert index.locate(m.records[200].record_id) is not None
    t2 = time.perf_counter()
    assert index.last_round.leaves == 256
    with capsys.disabled():
        print(
            f"\n[batch index] tick with one batch of 256: {1000 * (t1 - t0):.1f} ms; "
            f"locate (proof from 256 stored leaves): {1000 * (t2 - locate_t0):.1f} ms"
        )
