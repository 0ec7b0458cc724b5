"""Record batches for the contract tests, built independently of ``govshare.chain``:
each leaf is ``eth_abi.encode`` of the documented tuple (docs/contracts.md), hashed
and combined by the audit layer's RFC 6962 tree."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_abi import encode as abi_encode

from govshare.audit.merkle import MerkleTree, leaf_hash

from .helpers import Chain, b32, h32, one_event
from .world import CATEGORY

NONE = b"\0" * 32
TAG = b32("govshare.record-leaf.v1")
LEAF_TYPES = ["bytes32", "bytes32", "bytes32", "bytes32", "string", "bytes32", "bytes32", "bytes32"]


@dataclass(frozen=True)
class Leaf:
    record_id: bytes
    content_hash: bytes
    cid: str
    category: bytes
    subject_ref: bytes = NONE
    previous: bytes = NONE

    def struct(self) -> tuple[Any, ...]:
        """The ``BatchLeaf`` argument."""
        return (
            self.record_id,
            self.content_hash,
            self.cid,
            self.category,
            self.subject_ref,
            self.previous,
        )

    def data(self, dept: str) -> bytes:
        return abi_encode(
            LEAF_TYPES,
            [
                TAG,
                self.record_id,
                b32(dept),
                self.content_hash,
                self.cid,
                self.category,
                self.subject_ref,
                self.previous,
            ],
        )

    def hash(self, dept: str) -> bytes:
        return leaf_hash(self.data(dept))


def leaf(label: str, dept: str = "TAX", *, previous: bytes = NONE, cid: str = "") -> Leaf:
    return Leaf(
        record_id=h32(f"batched:{label}"),
        content_hash=h32(f"content:{label}"),
        cid=cid or f"bafy-{label}",
        category=CATEGORY[dept],
        subject_ref=h32(f"subject:{label}"),
        previous=previous,
    )


@dataclass
class Batch:
    dept: str
    leaves: list[Leaf]
    tree: MerkleTree
    sequence: int = 0

    @property
    def root(self) -> bytes:
        return self.tree.root

    def proof(self, i: int) -> list[bytes]:
        return self.tree.inclusion_proof(i)

    def materialise(self, i: int) -> Any:
        """The ``materialise`` call for leaf ``i``."""
        return self.records.functions.materialise(
            b32(self.dept), self.sequence, i, self.leaves[i].struct(), self.proof(i)
        )

    records: Any = None


def make_batch(dept: str, leaves: list[Leaf]) -> Batch:
    return Batch(dept, leaves, MerkleTree(lf.hash(dept) for lf in leaves))


def anchor_batch(chain: Chain, broker: str, batch: Batch, manifest: str = "bafy-manifest") -> Batch:
    """Anchor ``batch`` from ``broker``; sets its sequence."""
    fn = chain.records.functions.anchorBatch(batch.root, len(batch.leaves), manifest)
    rc = chain.send(fn, broker)
    batch.sequence = int(one_event(rc, chain.records, "RecordBatchAnchored")["sequence"])
    batch.records = chain.records
    return batch
