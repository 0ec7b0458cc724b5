"""RecordRegistry's record batches: one RFC 6962 root per batch, and `materialise`,
which writes a batched record on chain from its leaf and audit path exactly as
`anchor` would have (docs/contracts.md, "Record batches")."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from govshare.chain.batch import BatchRecord, build_batch

from .batches import NONE, Batch, Leaf, anchor_batch, leaf, make_batch
from .helpers import DAY, Chain, Revert, b32, event_names, events, h32, one_event
from .world import CATEGORY, RECORD, Ops, World


def state(c: Chain, *record_ids: bytes) -> tuple[Any, ...]:
    """What a refused call must leave unchanged."""
    r = c.records.functions
    return (
        r.recordCount().call(),
        tuple(r.recordExists(x).call() for x in record_ids),
        tuple(r.getRecord(x).call() if r.recordExists(x).call() else None for x in record_ids),
    )


def refused(c: Chain, fn: Any, sender: str, watch: tuple[bytes, ...] = ()) -> Revert:
    before = state(c, *watch)
    rv = c.reverts(fn, sender)
    assert state(c, *watch) == before
    return rv


def batch_of(world: World, labels: list[str], dept: str = "TAX", **prev: bytes) -> Batch:
    leaves = [leaf(x, dept, previous=prev.get(x, NONE)) for x in labels]
    return anchor_batch(world.chain, world.broker(dept), make_batch(dept, leaves))


def check_materialised(world: World, batch: Batch, i: int, rc: dict[str, Any], by: str) -> None:
    c, lf = world.chain, batch.leaves[i]
    b = c.records.functions.getBatch(b32(batch.dept), batch.sequence).call()
    record = c.records.functions.getRecord(lf.record_id).call()
    assert record == (
        b32(batch.dept),
        lf.content_hash,
        lf.cid,
        lf.category,
        lf.subject_ref,
        lf.previous,
        NONE,
        b[2],  # anchoredBy: the broker that anchored the batch
        b[3],  # anchoredAt: the batch's time
    )
    names = ["RecordAnchored"] + (["RecordSuperseded"] if lf.previous != NONE else [])
    assert event_names(rc, c.records) == [*names, "RecordMaterialised"]
    assert one_event(rc, c.records, "RecordAnchored") == {
        "recordId": lf.record_id,
        "department": b32(batch.dept),
        "contentHash": lf.content_hash,
        "cid": lf.cid,
        "category": lf.category,
        "subjectRef": lf.subject_ref,
        "previousRecordId": lf.previous,
        "anchoredBy": b[2],
    }
    assert one_event(rc, c.records, "RecordMaterialised") == {
        "recordId": lf.record_id,
        "department": b32(batch.dept),
        "sequence": batch.sequence,
        "leafIndex": i,
        "materialisedBy": by,
    }
    assert lf.record_id in c.records.functions.recordsByHash(lf.content_hash).call()


# -- happy paths -----------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_materialise_every_leaf(world: World, size: int) -> None:
    c = world.chain
    batch = batch_of(world, [f"n{size}:{i}" for i in range(size)])
    count0 = c.records.functions.recordCount().call()
    assert c.records.functions.batchRoot(b32("TAX"), batch.sequence).call() == batch.root
    for i in reversed(range(size)):  # any order: the leaves are independent
        by = world.broker("MARKET") if i % 2 else world.broker("TAX")
        rc = c.send(batch.materialise(i), by)
        check_materialised(world, batch, i, rc, by)
    assert c.records.functions.recordCount().call() == count0 + size


def test_batch_of_256(world: World) -> None:
    c = world.chain
    batch = batch_of(world, [f"big:{i}" for i in range(256)])
    r = c.records.functions
    # Every proof verifies on chain (a view: no transaction per leaf) ...
    for i in range(256):
        lf = batch.leaves[i]
        ok = r.verifyBatchedRecord(b32("TAX"), batch.sequence, i, lf.struct(), batch.proof(i))
        assert ok.call() is True, i
    # ... and a sample materialises.
    for i in (0, 1, 127, 128, 200, 255):
        rc = c.send(batch.materialise(i), world.broker("COURT"))
        check_materialised(world, batch, i, rc, world.broker("COURT"))


@pytest.mark.parametrize("size", [1, 2, 3, 4, 6, 7, 9, 17])
def test_verify_view_matches_every_position(world: World, size: int) -> None:
    c = world.chain
    batch = batch_of(world, [f"v{size}:{i}" for i in range(size)])
    r = c.records.functions
    for i in range(size):
        lf, proof = batch.leaves[i], batch.proof(i)
        assert r.verifyBatchedRecord(b32("TAX"), batch.sequence, i, lf.struct(), proof).call()
        # another index, a truncated path, an unknown batch: false, never a revert
        j = (i + 1) % size
        if j != i:
            assert not r.verifyBatchedRecord(
                b32("TAX"), batch.sequence, j, lf.struct(), proof
            ).call()
        if proof:
            short = proof[:-1]
            assert not r.verifyBatchedRecord(
                b32("TAX"), batch.sequence, i, lf.struct(), short
            ).call()
        assert not r.verifyBatchedRecord(
            b32("TAX"), batch.sequence, size, lf.struct(), proof
        ).call()
        assert not r.verifyBatchedRecord(b32("TAX"), 99, i, lf.struct(), proof).call()


# -- leaf encoding: Solidity, the test's eth_abi and govshare.chain.batch agree -------


@pytest.mark.parametrize("cid_len", [1, 31, 32, 33, 64, 128])
@pytest.mark.parametrize("optional", [False, True])
def test_leaf_encoding_agrees(world: World, cid_len: int, optional: bool) -> None:
    lf = Leaf(
        record_id=h32(f"enc:{cid_len}"),
        content_hash=h32("enc:content"),
        cid="b" * cid_len,
        category=CATEGORY["TAX"],
        subject_ref=NONE if optional else h32("enc:subject"),
        previous=NONE if optional else h32("enc:prev"),
    )
    on_chain = world.chain.records.functions.recordLeafHash(b32("TAX"), lf.struct()).call()
    py = BatchRecord(
        record_id=lf.record_id,
        department="TAX",
        content_hash=lf.content_hash,
        cid=lf.cid,
        category="tax.cert",
        subject_ref=None if optional else lf.subject_ref,
        previous_record_id=None if optional else lf.previous,
    )
    assert py.leaf_data() == lf.data("TAX")
    assert on_chain == lf.hash("TAX") == py.leaf_hash()
    # The department is part of the leaf.
    assert (
        world.chain.records.functions.recordLeafHash(b32("MARKET"), lf.struct()).call() != on_chain
    )


def test_python_batch_materialises(world: World) -> None:
    """A batch built by govshare.chain.batch is accepted by the contract as is."""
    c = world.chain
    recs = [
        BatchRecord(h32(f"py:{i}"), "TAX", h32(f"py:c{i}"), f"bafy-py-{i}", "tax.cert")
        for i in range(3)
    ]
    m = build_batch("TAX", recs)
    rc = c.send(c.records.functions.anchorBatch(m.root, m.count, "bafy-m"), world.broker("TAX"))
    seq = one_event(rc, c.records, "RecordBatchAnchored")["sequence"]
    for i in range(3):
        p = m.locate(recs[i].record_id, seq)
        fn = c.records.functions.materialise(
            b32("TAX"), seq, p.leaf_index, p.record.to_chain(), list(p.proof)
        )
        c.send(fn, world.broker("MARKET"))
        assert c.records.functions.recordExists(recs[i].record_id).call()


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(size=st.integers(1, 300), data=st.data())
def test_property_python_proofs_verify_on_chain(world: World, size: int, data: Any) -> None:
    c = world.chain
    recs = [
        BatchRecord(h32(f"prop:{size}:{i}"), "TAX", h32(f"pc:{i}"), f"bafy-{i}", "tax.cert")
        for i in range(size)
    ]
    m = build_batch("TAX", recs)
    rc = c.send(c.records.functions.anchorBatch(m.root, size, "bafy-p"), world.broker("TAX"))
    seq = one_event(rc, c.records, "RecordBatchAnchored")["sequence"]
    i = data.draw(st.integers(0, size - 1))
    proof = m.proof(i)
    view = c.records.functions.verifyBatchedRecord
    assert view(b32("TAX"), seq, i, recs[i].to_chain(), proof).call() is True
    if proof:
        k = data.draw(st.integers(0, len(proof) - 1))
        bad = list(proof)
        bad[k] = bytes([bad[k][0] ^ 1]) + bad[k][1:]
        assert view(b32("TAX"), seq, i, recs[i].to_chain(), bad).call() is False
    j = data.draw(st.integers(0, size - 1))
    if j != i:
        assert view(b32("TAX"), seq, j, recs[i].to_chain(), proof).call() is False


# -- refusals: each its own error, nothing changed ---------------------------------


def _call(
    batch: Batch,
    i: int,
    *,
    dept: str | None = None,
    seq: int | None = None,
    index: int | None = None,
    lf: Leaf | None = None,
    proof: list[bytes] | None = None,
) -> Any:
    return batch.records.functions.materialise(
        b32(dept or batch.dept),
        batch.sequence if seq is None else seq,
        i if index is None else index,
        (lf or batch.leaves[i]).struct(),
        batch.proof(i) if proof is None else proof,
    )


def test_refusals(world: World, ops: Ops) -> None:
    c = world.chain
    batch = batch_of(world, ["bad:0", "bad:1", "bad:2"])
    seq, ids = batch.sequence, tuple(lf.record_id for lf in batch.leaves)
    market = world.broker("MARKET")
    tax = b32("TAX")

    def expect(fn: Any, name: str, args: tuple[Any, ...], sender: str = market) -> None:
        rv = refused(c, fn, sender, ids)
        assert (rv.name, rv.args) == (name, args)

    bad = "RecordRegistryInvalidProof"
    p0 = batch.proof(0)
    flipped = [bytes([p0[0][0] ^ 0x80]) + p0[0][1:], *p0[1:]]
    expect(_call(batch, 0, proof=flipped), bad, (tax, seq, 0))  # a wrong path
    expect(_call(batch, 0, proof=p0[:1]), bad, (tax, seq, 0))  # a short path
    expect(_call(batch, 0, proof=[*p0, p0[0]]), bad, (tax, seq, 0))  # a long path
    expect(_call(batch, 0, index=1), bad, (tax, seq, 1))  # the wrong index
    lf0 = batch.leaves[0]
    for field, value in [
        ("record_id", h32("other")),
        ("content_hash", h32("other")),
        ("cid", lf0.cid + "x"),
        ("category", CATEGORY["MARKET"]),
        ("subject_ref", NONE),
        ("previous", RECORD["TAX"]),
    ]:
        changed = Leaf(**{**lf0.__dict__, field: value})
        expect(_call(batch, 0, lf=changed), bad, (tax, seq, 0))
    expect(
        _call(batch, 2, index=3),
        "RecordRegistryLeafIndexOutOfRange",
        (tax, seq, 3, 3),
    )
    expect(_call(batch, 0, seq=seq + 1), "RecordRegistryUnknownBatch", (tax, seq + 1))
    expect(_call(batch, 0, seq=0), "RecordRegistryUnknownBatch", (tax, 0))
    # Another department's batch with the same sequence: the leaf is not in it.
    other = batch_of(world, ["m:0", "m:1", "m:2"], dept="MARKET")
    assert other.sequence == seq
    expect(_call(batch, 0, dept="MARKET"), bad, (b32("MARKET"), seq, 0))
    expect(_call(batch, 0, dept="COURT"), "RecordRegistryUnknownBatch", (b32("COURT"), seq))
    # Callers that are no active broker.
    for who in (
        world.admin("TAX"),
        world.admin("MARKET"),
        world.outsider(),
        world.broker("HEALTH"),
    ):
        expect(_call(batch, 0), "RecordRegistryNotActiveBroker", (who,), sender=who)
    # Materialising twice.
    c.send(_call(batch, 0), market)
    rv = refused(c, _call(batch, 0), world.broker("COURT"), ids)
    assert (rv.name, rv.args) == ("RecordRegistryRecordExists", (ids[0],))


def test_tree_size_mismatch(world: World) -> None:
    """A root anchored with a count other than its tree's: the proofs of the real tree
    do not verify against the claimed size (the size is part of the proof's shape)."""
    c = world.chain
    leaves = [leaf(f"size:{i}") for i in range(3)]
    real = make_batch("TAX", leaves)
    fn = c.records.functions.anchorBatch(real.root, 4, "bafy-m")
    seq = one_event(c.send(fn, world.broker("TAX")), c.records, "RecordBatchAnchored")["sequence"]
    real.sequence, real.records = seq, c.records
    rv = refused(c, real.materialise(2), world.broker("TAX"), (leaves[2].record_id,))
    assert (rv.name, rv.args) == ("RecordRegistryInvalidProof", (b32("TAX"), seq, 2))


def test_inactive_owner(world: World, ops: Ops) -> None:
    c = world.chain
    batch = batch_of(world, ["court:0"], dept="COURT")
    ops.suspend("COURT")
    rv = refused(c, batch.materialise(0), world.broker("MARKET"), (batch.leaves[0].record_id,))
    assert (rv.name, rv.args) == ("RecordRegistryDepartmentNotActive", (b32("COURT"),))


def test_leaf_rules_are_anchor_rules(world: World) -> None:
    """A leaf the owner should never have committed is refused like `anchor` refuses it."""
    c = world.chain
    ok = leaf("rules:ok")
    cases = [
        (
            Leaf(RECORD["TAX"], h32("x"), "bafy", CATEGORY["TAX"]),
            "RecordRegistryRecordExists",
            (RECORD["TAX"],),
        ),
        (Leaf(NONE, h32("x"), "bafy", CATEGORY["TAX"]), "RecordRegistryInvalidRecordId", ()),
        (
            Leaf(h32("r:z"), NONE, "bafy", CATEGORY["TAX"]),
            "RecordRegistryInvalidContentHash",
            (h32("r:z"),),
        ),
        (Leaf(h32("r:e"), h32("x"), "", CATEGORY["TAX"]), "RecordRegistryEmptyCid", ()),
        (
            Leaf(h32("r:l"), h32("x"), "c" * 129, CATEGORY["TAX"]),
            "RecordRegistryCidTooLong",
            (129, 128),
        ),
        (
            Leaf(h32("r:c"), h32("x"), "bafy", b32("never.declared")),
            "RecordRegistryUnknownCategory",
            (b32("TAX"), b32("never.declared")),
        ),
        (
            Leaf(h32("r:p"), h32("x"), "bafy", CATEGORY["TAX"], NONE, h32("nope")),
            "RecordRegistryUnknownRecord",
            (h32("nope"),),
        ),
        (
            Leaf(h32("r:o"), h32("x"), "bafy", CATEGORY["TAX"], NONE, RECORD["MARKET"]),
            "RecordRegistryNotRecordOwner",
            (RECORD["MARKET"], b32("MARKET"), b32("TAX")),
        ),
    ]
    batch = anchor_batch(c, world.broker("TAX"), make_batch("TAX", [ok] + [x for x, _, _ in cases]))
    for i, (lf, name, args) in enumerate(cases, start=1):
        rv = refused(c, batch.materialise(i), world.broker("MARKET"), (lf.record_id,))
        assert (rv.name, rv.args) == (name, args), i
    # A category retired after the batch still materialises: the batch committed first.
    c.send(c.records.functions.retireCategory(CATEGORY["TAX"]), world.admin("TAX"))
    c.send(batch.materialise(0), world.broker("MARKET"))


# -- versions ------------------------------------------------------------------------


def test_supersede_within_a_batch(world: World) -> None:
    c = world.chain
    v1 = leaf("w:v1")
    v2 = leaf("w:v2", previous=v1.record_id)
    fork = leaf("w:fork", previous=v1.record_id)
    batch = anchor_batch(c, world.broker("TAX"), make_batch("TAX", [v2, v1, fork]))
    m = world.broker("MARKET")
    # The later version needs the earlier one on chain first.
    rv = refused(c, batch.materialise(0), m, (v2.record_id,))
    assert (rv.name, rv.args) == ("RecordRegistryUnknownRecord", (v1.record_id,))
    c.send(batch.materialise(1), m)
    rc = c.send(batch.materialise(0), m)
    check_materialised(world, batch, 0, rc, m)
    assert one_event(rc, c.records, "RecordSuperseded") == {
        "previousRecordId": v1.record_id,
        "newRecordId": v2.record_id,
        "department": b32("TAX"),
    }
    assert c.records.functions.getRecord(v1.record_id).call()[6] == v2.record_id
    # A second successor of the same version (a fork the owner committed) is refused.
    rv = refused(c, batch.materialise(2), m, (fork.record_id,))
    assert (rv.name, rv.args) == ("RecordRegistryAlreadySuperseded", (v1.record_id, v2.record_id))


def test_supersede_across_batches_and_single_anchors(world: World) -> None:
    c = world.chain
    tax, m = world.broker("TAX"), world.broker("MARKET")
    r = c.records.functions
    # batched v1 supersedes the singly anchored RECORD[TAX]
    b1 = anchor_batch(c, tax, make_batch("TAX", [leaf("x:v1", previous=RECORD["TAX"])]))
    # batched v2 (a later batch) supersedes v1
    v2 = leaf("x:v2", previous=b1.leaves[0].record_id)
    b2 = anchor_batch(c, tax, make_batch("TAX", [leaf("x:other"), v2]))
    # A single anchor cannot supersede a batched record that is not on chain yet.
    single = r.anchor(h32("x:v3"), h32("c3"), "bafy-3", CATEGORY["TAX"], NONE, v2.record_id)
    rv = refused(c, single, tax, (h32("x:v3"),))
    assert (rv.name, rv.args) == ("RecordRegistryUnknownRecord", (v2.record_id,))
    rv = refused(c, b2.materialise(1), m, (v2.record_id,))
    assert (rv.name, rv.args) == ("RecordRegistryUnknownRecord", (b1.leaves[0].record_id,))
    c.send(b1.materialise(0), m)
    c.send(b2.materialise(1), m)
    # then a single anchor supersedes the batched v2
    c.send(single, tax)
    chain = [RECORD["TAX"], b1.leaves[0].record_id, v2.record_id, h32("x:v3")]
    for older, newer in pairwise(chain):
        assert r.getRecord(older).call()[6] == newer
        assert r.getRecord(newer).call()[5] == older
    # The singly anchored record is superseded now: another single successor is refused.
    again = r.anchor(h32("x:v9"), h32("c9"), "bafy-9", CATEGORY["TAX"], NONE, RECORD["TAX"])
    rv = refused(c, again, tax)
    assert (rv.name, rv.args) == (
        "RecordRegistryAlreadySuperseded",
        (RECORD["TAX"], b1.leaves[0].record_id),
    )


# -- requests --------------------------------------------------------------------------


def test_request_needs_the_record_materialised(world: World, ops: Ops) -> None:
    c = world.chain
    batch = batch_of(world, ["req:0", "req:1"])
    rid = batch.leaves[1].record_id
    led = c.ledger.functions
    fn = led.requestAccess(b32("TAX"), rid, "licence check", "Act s.5", c.now() + DAY)
    before = led.requestCount().call()
    rv = c.reverts(fn, world.broker("MARKET"))
    assert (rv.name, rv.args) == ("AccessLedgerUnknownRecord", (rid,))
    assert led.requestCount().call() == before
    # The requester materialises it, then asks.
    c.send(batch.materialise(1), world.broker("MARKET"))
    req = ops.request("MARKET", "TAX", record=rid)
    ops.approve(req, "TAX")
    assert led.grantStatus(req).call() == [True, 0]
    rc = c.send(led.requestAccess(b32("TAX"), rid, "p", "", c.now() + DAY), world.broker("COURT"))
    assert events(rc, c.ledger, "AccessRequested")[0]["recordId"] == rid
