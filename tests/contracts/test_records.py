"""RecordRegistry: anchors, version chains, hash lookup, batches, catalog."""

from __future__ import annotations

import pytest

from .helpers import b32, deploy_reverts, event_names, h32, one_event
from .world import CATEGORY, CONTENT, RECORD, Ops, World

NONE = b"\0" * 32
ZERO = "0x0000000000000000000000000000000000000000"


def rec(world: World):
    return world.chain.records.functions


def anchor(
    world: World, rid: bytes, *, dept: str = "TAX", content: bytes | None = None, prev: bytes = NONE
):
    return rec(world).anchor(
        rid,
        content or h32(f"c:{rid.hex()}"),
        f"bafy-{rid.hex()[:8]}",
        CATEGORY[dept],
        h32("subj"),
        prev,
    )


def test_anchor(world: World) -> None:
    c, r = world.chain, rec(world)
    rid = h32("r1")
    rc = c.send(
        r.anchor(rid, h32("content"), "bafyCID", CATEGORY["TAX"], h32("subj"), NONE),
        world.broker("TAX"),
    )
    assert event_names(rc, c.records) == ["RecordAnchored"]
    assert one_event(rc, c.records, "RecordAnchored") == {
        "recordId": rid,
        "department": b32("TAX"),
        "contentHash": h32("content"),
        "cid": "bafyCID",
        "category": CATEGORY["TAX"],
        "subjectRef": h32("subj"),
        "previousRecordId": NONE,
        "anchoredBy": world.broker("TAX"),
    }
    block = c.rpc.block("latest")
    assert r.getRecord(rid).call() == (
        b32("TAX"),
        h32("content"),
        "bafyCID",
        CATEGORY["TAX"],
        h32("subj"),
        NONE,
        NONE,
        world.broker("TAX"),
        block["timestamp"],
    )
    assert r.recordExists(rid).call() is True
    assert r.ownerOf(rid).call() == b32("TAX")
    assert r.recordsByHash(h32("content")).call() == [rid]
    assert r.recordCount().call() == 5  # 4 in the base world
    assert r.ownerOf(h32("nope")).call() == NONE
    assert r.recordExists(h32("nope")).call() is False
    rv = c.call_reverts(r.getRecord(h32("nope")))
    assert (rv.name, rv.args) == ("RecordRegistryUnknownRecord", (h32("nope"),))


def test_same_content_twice_is_found_by_hash(world: World) -> None:
    c = world.chain
    c.send(anchor(world, h32("a"), content=h32("same")), world.broker("TAX"))
    c.send(anchor(world, h32("b"), dept="MARKET", content=h32("same")), world.broker("MARKET"))
    assert rec(world).recordsByHash(h32("same")).call() == [h32("a"), h32("b")]
    assert rec(world).recordsByHash(CONTENT["TAX"]).call() == [RECORD["TAX"]]
    assert rec(world).recordsByHash(h32("unknown")).call() == []


def test_version_chain(world: World) -> None:
    c, r = world.chain, rec(world)
    v1, v2, v3 = RECORD["TAX"], h32("v2"), h32("v3")
    rc = c.send(anchor(world, v2, prev=v1), world.broker("TAX"))
    assert event_names(rc, c.records) == ["RecordAnchored", "RecordSuperseded"]
    assert one_event(rc, c.records, "RecordSuperseded") == {
        "previousRecordId": v1,
        "newRecordId": v2,
        "department": b32("TAX"),
    }
    assert r.getRecord(v1).call()[6] == v2
    assert r.getRecord(v2).call()[5] == v1
    rv = c.reverts(anchor(world, v3, prev=v1), world.broker("TAX"))
    assert (rv.name, rv.args) == ("RecordRegistryAlreadySuperseded", (v1, v2))
    c.send(anchor(world, v3, prev=v2), world.broker("TAX"))
    assert r.getRecord(v2).call()[6] == v3


@pytest.mark.parametrize(
    ("args", "error", "eargs"),
    [
        ((NONE, h32("c"), "cid", "TAX", NONE), "RecordRegistryInvalidRecordId", ()),
        ((h32("n"), NONE, "cid", "TAX", NONE), "RecordRegistryInvalidContentHash", (h32("n"),)),
        ((h32("n"), h32("c"), "", "TAX", NONE), "RecordRegistryEmptyCid", ()),
        (
            (RECORD["TAX"], h32("c"), "cid", "TAX", NONE),
            "RecordRegistryRecordExists",
            (RECORD["TAX"],),
        ),
        (
            (RECORD["MARKET"], h32("c"), "cid", "TAX", NONE),
            "RecordRegistryRecordExists",
            (RECORD["MARKET"],),
        ),
        (
            (h32("n"), h32("c"), "cid", "TAX", h32("ghost")),
            "RecordRegistryUnknownRecord",
            (h32("ghost"),),
        ),
        (
            (h32("n"), h32("c"), "cid", "TAX", RECORD["MARKET"]),
            "RecordRegistryNotRecordOwner",
            (RECORD["MARKET"], b32("MARKET"), b32("TAX")),
        ),
        (
            (h32("n"), h32("c"), "cid", "MARKET", NONE),
            "RecordRegistryUnknownCategory",
            (b32("TAX"), CATEGORY["MARKET"]),
        ),
    ],
)
def test_anchor_reverts(world: World, args: tuple, error: str, eargs: tuple) -> None:
    rid, content, cid, cat, prev = args
    fn = rec(world).anchor(rid, content, cid, CATEGORY[cat], h32("s"), prev)
    rv = world.chain.reverts(fn, world.broker("TAX"))
    assert (rv.name, rv.args) == (error, eargs)


def test_anchor_with_retired_category(world: World) -> None:
    c = world.chain
    c.send(rec(world).retireCategory(CATEGORY["TAX"]), world.admin("TAX"))
    rv = c.reverts(anchor(world, h32("n")), world.broker("TAX"))
    assert (rv.name, rv.args) == ("RecordRegistryCategoryRetired", (b32("TAX"), CATEGORY["TAX"]))
    # A new version refused for its category leaves the previous one current.
    rv = c.reverts(anchor(world, h32("n"), prev=RECORD["TAX"]), world.broker("TAX"))
    assert (rv.name, rv.args) == ("RecordRegistryCategoryRetired", (b32("TAX"), CATEGORY["TAX"]))
    assert rec(world).getRecord(RECORD["TAX"]).call()[6] == NONE


def test_constructor_refuses_a_zero_registry(world: World) -> None:
    rpc = world.chain.rpc
    rv = deploy_reverts(rpc, "RecordRegistry", rpc.accounts[0], ZERO)
    assert (rv.name, rv.args) == ("RecordRegistryZeroRegistry", ())


def test_rotated_out_broker_cannot_anchor(world: World) -> None:
    c = world.chain
    new = c.account("TAX:broker2")
    c.send(c.registry.functions.setBroker(new), world.admin("TAX"))
    rv = c.reverts(anchor(world, h32("n")), world.broker("TAX"))
    assert (rv.name, rv.args) == ("RecordRegistryNotActiveBroker", (world.broker("TAX"),))
    rc = c.send(anchor(world, h32("n")), new)
    assert one_event(rc, c.records, "RecordAnchored")["anchoredBy"] == new


def test_anchor_batch(world: World) -> None:
    c, r = world.chain, rec(world)
    rc = c.send(r.anchorBatch(h32("root1"), 100, "bafyManifest1"), world.broker("TAX"))
    assert one_event(rc, c.records, "RecordBatchAnchored") == {
        "department": b32("TAX"),
        "sequence": 1,
        "merkleRoot": h32("root1"),
        "count": 100,
        "manifestCid": "bafyManifest1",
        "anchoredBy": world.broker("TAX"),
    }
    rc = c.send(r.anchorBatch(h32("root2"), 7, "bafyManifest2"), world.broker("TAX"))
    assert one_event(rc, c.records, "RecordBatchAnchored")["sequence"] == 2
    # The time of root2's own block: a later block may fall in the next second.
    anchored_at = c.rpc.block(rc["blockNumber"])["timestamp"]
    rc = c.send(r.anchorBatch(h32("root3"), 1, "m"), world.broker("MARKET"))
    assert one_event(rc, c.records, "RecordBatchAnchored")["sequence"] == 1  # per department
    assert r.batchCount(b32("TAX")).call() == 2
    assert r.batchCount(b32("COURT")).call() == 0
    assert r.getBatch(b32("TAX"), 2).call() == (
        h32("root2"),
        "bafyManifest2",
        world.broker("TAX"),
        anchored_at,
        7,
    )
    for seq in (0, 3):
        rv = c.call_reverts(r.getBatch(b32("TAX"), seq))
        assert (rv.name, rv.args) == ("RecordRegistryUnknownBatch", (b32("TAX"), seq))


@pytest.mark.parametrize(
    ("root", "count", "cid", "error"),
    [
        (NONE, 1, "m", "RecordRegistryEmptyMerkleRoot"),
        (h32("r"), 0, "m", "RecordRegistryEmptyBatch"),
        (h32("r"), 1, "", "RecordRegistryEmptyCid"),
    ],
)
def test_anchor_batch_reverts(world: World, root: bytes, count: int, cid: str, error: str) -> None:
    rv = world.chain.reverts(rec(world).anchorBatch(root, count, cid), world.broker("TAX"))
    assert (rv.name, rv.args) == (error, ())


def test_catalog(world: World) -> None:
    c, r = world.chain, rec(world)
    cat = b32("tax.return-2024")
    rc = c.send(r.declareCategory(cat, "Annual tax returns", h32("schema1")), world.admin("TAX", 1))
    assert one_event(rc, c.records, "CategoryDeclared") == {
        "department": b32("TAX"),
        "category": cat,
        "by": world.admin("TAX", 1),
        "description": "Annual tax returns",
        "schemaHash": h32("schema1"),
    }
    t0 = c.now()
    entries = r.categories(b32("TAX")).call()
    assert [e[0] for e in entries] == [CATEGORY["TAX"], cat]
    assert entries[1] == (cat, "Annual tax returns", h32("schema1"), True, t0, t0, 0, 0, 0)
    # Re-declaring updates it.
    c.send(r.declareCategory(cat, "Tax returns", h32("schema2")), world.admin("TAX"))
    assert r.getCategory(b32("TAX"), cat).call()[1:4] == ("Tax returns", h32("schema2"), True)
    rc = c.send(r.retireCategory(cat), world.admin("TAX"))
    assert one_event(rc, c.records, "CategoryRetired") == {
        "department": b32("TAX"),
        "category": cat,
        "by": world.admin("TAX"),
    }
    assert r.getCategory(b32("TAX"), cat).call()[3] is False
    rv = c.reverts(r.retireCategory(cat), world.admin("TAX"))
    assert (rv.name, rv.args) == ("RecordRegistryCategoryRetired", (b32("TAX"), cat))
    # Declaring again re-activates it, keeping its first declaration time.
    c.send(r.declareCategory(cat, "Tax returns", h32("schema2")), world.admin("TAX"))
    entry = r.getCategory(b32("TAX"), cat).call()
    assert entry[3] is True and entry[4] == t0
    assert len(r.categories(b32("TAX")).call()) == 2
    assert r.categories(b32("NOPE")).call() == []


def test_catalog_reverts(world: World) -> None:
    c, r = world.chain, rec(world)
    rv = c.reverts(r.retireCategory(b32("never")), world.admin("TAX"))
    assert (rv.name, rv.args) == ("RecordRegistryUnknownCategory", (b32("TAX"), b32("never")))
    rv = c.reverts(r.declareCategory(b32("bad cat"), "", NONE), world.admin("TAX"))
    assert (rv.name, rv.args) == ("RecordRegistryInvalidCategory", (b32("bad cat"),))
    rv = c.call_reverts(r.getCategory(b32("TAX"), b32("never")))
    assert (rv.name, rv.args) == ("RecordRegistryUnknownCategory", (b32("TAX"), b32("never")))
    rv = c.reverts(r.declareCategory(b32("x"), "", NONE), world.broker("TAX"))
    assert (rv.name, rv.args) == ("RecordRegistryNotActiveAdmin", (world.broker("TAX"),))


@pytest.mark.parametrize(
    ("raw", "ok"),
    [
        (b"a", True),
        (b"tax.clearance", True),
        (b"Tax_Return-2024.v1", True),
        (b"x" * 32, True),
        (b"", False),
        (b"a b", False),
        (b"a/b", False),
        (b"\0a", False),
        (b"a\0b", False),
        (b"caf\xc3\xa9", False),
    ],
)
def test_category_format(world: World, raw: bytes, ok: bool) -> None:
    assert rec(world).isValidCategory(raw.ljust(32, b"\0")).call() is ok


def test_registry_view(world: World, ops: Ops) -> None:
    assert rec(world).registry().call() == world.chain.registry.address
