"""Tamper detection at scale: 10,000 receipts and 10,000 records on a real chain.

TAX's log holds 10,000 receipts (synthesised as brokers make them, signed with
the departments' real broker keys) for four grants, anchored in four batches of
2,500; 500 of them (7,001–7,500) spend a grant after it was revoked. 10,000
records are anchored. Then every kind of tampering the issue names is tried and
must be detected, every time:

* a receipt deleted, altered or reordered in a manifest — at *every* one of the
  10,000 positions through the per-receipt inclusion proof an auditor checks,
  and through the whole audit (``audit_receipts`` / ``AuditView``) for each kind
  at the edges and at random positions, both as an owner publishing a manifest
  that does not match its anchored root and as a source serving other bytes
  under the anchored CID;
* an anchored root dropped (receipts a requester holds were never anchored) or
  altered (a root that is not the manifest's);
* receipts issued after their grant's revocation — all 500, and no other;
* a file one byte different from each of the 10,000 anchored ones.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from audit.bulk import Use, bulk_anchor, synth_receipts
from audit.conftest import govshare
from govshare.audit.checks import audit_receipts
from govshare.audit.errors import ProofError
from govshare.audit.merkle import MerkleTree, leaf_hash, verify_inclusion
from govshare.audit.receipts import ReceiptLeaf, build_manifest, uses_per_grant
from govshare.audit.sources import ManifestSources, StoreSource
from govshare.audit.trail import verify_hashes
from govshare.audit.view import AuditView, open_index
from govshare.chain.contracts import AnchorInput
from govshare.chain.devnode import AnvilProcess
from govshare.storage import BlobStore, open_store
from integration.world import CATEGORY, World, build_world

pytestmark = pytest.mark.integration

N_RECORDS = 10_000
N_RECEIPTS = 10_000
BATCH = 2_500
LATE = range(7_001, 7_501)  # receipts after their grant's revocation
SLOT = 4  # the batch the manifest-tampering cases anchor, each in a chain snapshot


@dataclass
class Scene:
    world: World
    store: BlobStore
    view: AuditView
    receipts: list[ReceiptLeaf]
    contents: list[bytes]
    revoked_grant: int

    @property
    def ledger(self):  # type: ignore[no-untyped-def]
        return self.world.ledger

    def batch_receipts(self, index: int) -> list[ReceiptLeaf]:
        return self.receipts[(index - 1) * BATCH : index * BATCH]

    def anchor(
        self, receipts: list[ReceiptLeaf], *, root: bytes | None = None, body: bytes | None = None
    ) -> None:
        real_body, real_root = build_manifest(
            "TAX", self.ledger.chain_id, self.ledger.access.address, receipts
        )
        cid = self.store.put(io.BytesIO(body if body is not None else real_body), cid_version=1)
        self.ledger.access.anchor_receipts(
            self.world["TAX"].broker,
            root if root is not None else real_root,
            receipts[0].seq,
            receipts[-1].seq,
            str(cid),
            uses_per_grant(receipts),
        )


def _content(i: int) -> bytes:
    return b"certificate %d: " % i + hashlib.sha256(b"%d" % i).digest() * 4


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    home = tmp_path_factory.mktemp("home")
    with AnvilProcess() as node:
        w = build_world(node.url, home)
        ledger = w.ledger
        tax = w["TAX"]
        cid = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
        contents = [_content(i) for i in range(N_RECORDS)]
        ids = [os.urandom(32) for _ in range(N_RECORDS)]
        bulk_anchor(
            ledger,
            tax.broker,
            [
                AnchorInput(ids[i], hashlib.sha256(contents[i]).digest(), cid, CATEGORY)
                for i in range(N_RECORDS)
            ],
        )
        grants = []
        for rec, who in [(0, "MARKET"), (0, "COURT"), (1, "MARKET"), (1, "COURT")]:
            sent = ledger.access.request_access(
                w[who].broker, "TAX", ids[rec], "case work", "", ledger.now() + 86400
            )
            ledger.access.approve(
                tax.admin, sent.value, expires_at=ledger.now() + 30 * 86400, max_uses=3000
            )
            grants.append(
                Use(sent.value, who, bytes(w[who].broker.key), "0x" + ids[rec].hex(), cid)
            )
        decided = max(ledger.access.get_request(g.grant_id).decided_at for g in grants)
        ledger.access.revoke(tax.admin, grants[3].grant_id, "case closed")
        revoked_at = ledger.access.get_request(grants[3].grant_id).revoked_at

        store = open_store(f"local:{home / 'depts' / 'TAX' / 'blobs'}")
        view = AuditView(
            ledger,
            # each snapshot revert looks like a reorg to the index: a short window keeps
            # it from re-reading the blocks of the 10,000 anchors every time
            open_index(ledger, home / "audit-index.db"),
            ManifestSources([StoreSource(store, "TAX's store")]),
        )
        sep = view.separator
        owner_key = bytes(tax.broker.key)
        first = synth_receipts(sep, "TAX", owner_key, 1, grants, [decided] * 7_000)
        late = synth_receipts(sep, "TAX", owner_key, 7_001, [grants[3]], [revoked_at + 3600] * 500)
        rest = synth_receipts(sep, "TAX", owner_key, 7_501, grants, [decided] * 2_500)
        receipts = first + late + rest
        s = Scene(w, store, view, receipts, contents, grants[3].grant_id)
        for index in (1, 2, 3):
            s.anchor(s.batch_receipts(index))
        view.sync()
        yield s
        view.close()
        w.close()


def snapshot(scene: Scene) -> str:
    return str(scene.ledger.conn.request("evm_snapshot", []))


def revert(scene: Scene, snap: str) -> None:
    scene.ledger.conn.request("evm_revert", [snap])
    from govshare.chain.connection import node_went_away

    node_went_away(scene.ledger.conn.url)


def test_the_clean_log_verifies_and_only_the_late_receipts_are_flagged(scene: Scene) -> None:
    snap = snapshot(scene)
    try:
        scene.anchor(scene.batch_receipts(SLOT))
        scene.view.sync()
        report = audit_receipts(scene.view, "TAX")
        assert report["receipts_checked"] == N_RECEIPTS
        codes = {p["code"] for p in report["problems"]}
        late = [p for p in report["problems"] if p["code"] == "receipt.after_revocation"]
        # all 500 receipts after the revocation, and nothing else
        assert sorted(p["seq"] for p in late) == list(LATE)
        assert all(p["grant"] == scene.revoked_grant for p in late)
        assert codes == {"receipt.after_revocation"}
    finally:
        revert(scene, snap)
        scene.view.sync()


def _trees(scene: Scene) -> list[tuple[MerkleTree, list[bytes], bytes]]:
    out = []
    for index in range(1, SLOT + 1):
        leaves = [r.leaf() for r in scene.batch_receipts(index)]
        tree = MerkleTree(leaf_hash(x) for x in leaves)
        out.append((tree, leaves, tree.root))
    return out


def _refused(index: int, size: int, leaf: bytes, proof: list[bytes], root: bytes) -> bool:
    try:
        verify_inclusion(index, size, leaf_hash(leaf), proof, root)
    except ProofError:
        return True
    return False


def test_every_receipt_altered_deleted_or_reordered_fails_its_inclusion_proof(scene: Scene) -> None:
    """At each of the 10,000 positions: the receipt the tampered manifest shows
    there, checked with that position's audit path against the anchored root."""
    altered = deleted = reordered = 0
    for tree, leaves, root in _trees(scene):
        n = len(leaves)
        for i in range(n):
            proof = tree.inclusion_proof(i)
            assert not _refused(i, n, leaves[i], proof, root)  # the genuine one passes
            bad = bytearray(leaves[i])
            bad[len(bad) // 2] ^= 0x01  # one bit of one receipt
            altered += _refused(i, n, bytes(bad), proof, root)
            if i + 1 < n:  # what slides into place: the next receipt
                deleted += _refused(i, n, leaves[i + 1], proof, root)
                reordered += _refused(i, n, leaves[i + 1], proof, root)
            else:  # the last one: gone, the manifest is one short of the anchored range
                deleted += len(leaves[:-1]) != n
                reordered += _refused(i, n, leaves[i - 1], proof, root)
    assert (altered, deleted, reordered) == (N_RECEIPTS, N_RECEIPTS, N_RECEIPTS)


def _tampered(receipts: list[ReceiptLeaf], kind: str, i: int) -> list[bytes]:
    lines = [r.leaf() for r in receipts]
    if kind == "delete":
        del lines[i]
    elif kind == "alter":
        r = receipts[i]
        lines[i] = ReceiptLeaf(**{**r.__dict__, "issued_at": r.issued_at + 1}).leaf()
    else:  # reorder: swap with the next (or the previous, at the end)
        j = i + 1 if i + 1 < len(lines) else i - 1
        lines[i], lines[j] = lines[j], lines[i]
    return lines


def _body(scene: Scene, receipts: list[ReceiptLeaf], lines: list[bytes]) -> bytes:
    header = build_manifest("TAX", scene.ledger.chain_id, scene.ledger.access.address, receipts)[0]
    return b"\n".join([header.split(b"\n", 1)[0], *lines]) + b"\n"


POSITIONS = [0, 1, BATCH // 2, BATCH - 2, BATCH - 1, *random.Random(5).sample(range(BATCH), 7)]


@pytest.mark.parametrize("kind", ["delete", "alter", "reorder"])
def test_a_published_manifest_that_is_not_the_anchored_root_is_caught(
    scene: Scene, kind: str
) -> None:
    """The owner anchors the genuine root but publishes a manifest with one
    receipt deleted, altered or reordered (under that manifest's own CID)."""
    receipts = scene.batch_receipts(SLOT)
    detected = 0
    for i in POSITIONS:
        snap = snapshot(scene)
        try:
            scene.anchor(receipts, body=_body(scene, receipts, _tampered(receipts, kind, i)))
            scene.view.sync()
            b = scene.view.batch("TAX", SLOT, fresh=True)
            codes = {p["code"] for p in b.problems}
            assert b.manifest_found and not b.root_ok
            assert "manifest.root_mismatch" in codes
            if kind != "alter":
                assert "manifest.sequence" in codes
            if kind == "delete":
                assert "manifest.uses_mismatch" in codes
            detected += 1
        finally:
            revert(scene, snap)
    scene.view.sync()
    assert detected == len(POSITIONS)


class LyingSource:
    """A manifest source that answers with other bytes than those anchored."""

    name = "a lying source"

    def __init__(self, replacement: dict[str, bytes]) -> None:
        self.replacement = replacement

    def fetch(self, cid: str) -> bytes | None:
        return self.replacement.get(cid)


def test_other_bytes_under_the_anchored_cid_are_refused(scene: Scene) -> None:
    receipts = scene.batch_receipts(3)
    anchored = scene.ledger.access.get_receipt_batch("TAX", 3)
    detected = 0
    for kind in ("delete", "alter", "reorder"):
        for i in POSITIONS[:5]:
            lying = LyingSource(
                {anchored.manifest_cid: _body(scene, receipts, _tampered(receipts, kind, i))}
            )
            view = AuditView(scene.ledger, scene.view.index, ManifestSources([lying]))
            b = view.batch("TAX", 3)
            assert not b.manifest_found
            assert [p["code"] for p in b.problems] == ["manifest.unavailable"]
            assert view.sources.rejected == [("a lying source", anchored.manifest_cid)]
            detected += 1
    assert detected == 15


def test_a_dropped_root_leaves_the_requesters_copies_unanchored(scene: Scene) -> None:
    """Batch 4 was never anchored: each of its 2,500 receipts, as the requesters
    hold them, is reported omitted."""
    held = scene.batch_receipts(SLOT)
    report = audit_receipts(scene.view, "TAX", held=held)
    omitted = [p for p in report["problems"] if p["code"] == "receipt.omitted"]
    assert sorted(p["seq"] for p in omitted) == [r.seq for r in held]
    assert report["held_checked"] == BATCH


def test_an_altered_root_is_caught_by_the_command(scene: Scene) -> None:
    receipts = scene.batch_receipts(SLOT)
    root = build_manifest("TAX", scene.ledger.chain_id, scene.ledger.access.address, receipts)[1]
    snap = snapshot(scene)
    try:
        scene.anchor(receipts, root=bytes([root[0] ^ 0x80]) + root[1:])
        r = govshare(
            scene.world.home,
            "audit",
            "receipts",
            "--dept",
            "TAX",
            "--manifests",
            f"local:{scene.world.home / 'depts' / 'TAX' / 'blobs'}",
            "--index",
            str(scene.world.home / "cli-index.db"),
            "--json",
            timeout=300,
        )
        assert r.exit_code == 1, r.stderr
        assert "problem(s)" in r.stderr and "Traceback" not in r.stderr
        codes = [p["code"] for p in r.json()["problems"]]
        assert codes.count("manifest.root_mismatch") == 1
        assert codes.count("receipt.after_revocation") == len(LATE)
    finally:
        revert(scene, snap)
        scene.view.sync()


def test_every_file_one_byte_different_is_not_anchored(scene: Scene) -> None:
    rng = random.Random(7)
    originals = [hashlib.sha256(c).digest() for c in scene.contents]
    altered = []
    for c in scene.contents:
        b = bytearray(c)
        b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        altered.append(hashlib.sha256(bytes(b)).digest())
    assert all(verify_hashes(scene.view, originals))
    assert not any(verify_hashes(scene.view, altered))


def test_one_such_file_through_the_command(scene: Scene, tmp_path: Path) -> None:
    good, bad = tmp_path / "good.txt", tmp_path / "bad.txt"
    good.write_bytes(scene.contents[4242])
    changed = bytearray(scene.contents[4242])
    changed[0] ^= 0x20
    bad.write_bytes(bytes(changed))
    assert govshare(scene.world.home, "audit", "verify", str(good)).exit_code == 0
    r = govshare(scene.world.home, "audit", "verify", str(bad))
    assert r.exit_code == 1 and "is not anchored" in r.stderr
