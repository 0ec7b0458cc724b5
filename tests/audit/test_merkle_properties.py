"""Property tests: govshare's tree against the naive reference of the RFC, and
every single-bit change to a proof is refused."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit import reference_merkle as ref
from govshare.audit.errors import ProofError
from govshare.audit.merkle import (
    MerkleTree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_from_inclusion_proof,
    root_hash,
    verify_consistency,
    verify_inclusion,
)

leaves_st = st.lists(st.binary(max_size=12), min_size=1, max_size=70)


@given(leaves_st)
def test_root_equals_the_reference(leaves: list[bytes]) -> None:
    assert root_hash(leaves) == ref.mth(leaves)
    assert MerkleTree.from_leaves(leaves).root == ref.mth(leaves)


@given(leaves_st, st.data())
def test_inclusion_proof_equals_the_reference_and_verifies(
    leaves: list[bytes], data: st.DataObject
) -> None:
    tree = MerkleTree.from_leaves(leaves)
    i = data.draw(st.integers(0, len(leaves) - 1))
    proof = tree.inclusion_proof(i)
    assert proof == ref.path(i, leaves)
    assert inclusion_proof([leaf_hash(x) for x in leaves], i) == proof
    verify_inclusion(i, len(leaves), leaf_hash(leaves[i]), proof, tree.root)
    assert root_from_inclusion_proof(i, len(leaves), leaf_hash(leaves[i]), proof) == tree.root


@settings(max_examples=60)
@given(leaves_st, st.data())
def test_any_flipped_bit_in_a_proof_or_leaf_is_refused(
    leaves: list[bytes], data: st.DataObject
) -> None:
    tree = MerkleTree.from_leaves(leaves)
    i = data.draw(st.integers(0, len(leaves) - 1))
    proof = tree.inclusion_proof(i)
    leaf = tree.leaf(i)
    where = data.draw(st.integers(0, len(proof)))  # len(proof): the leaf itself
    bit = data.draw(st.integers(0, 255))
    if where == len(proof):
        bad = bytearray(leaf)
        bad[bit // 8] ^= 1 << (bit % 8)
        leaf = bytes(bad)
    else:
        bad = bytearray(proof[where])
        bad[bit // 8] ^= 1 << (bit % 8)
        proof = [*proof[:where], bytes(bad), *proof[where + 1 :]]
    with pytest.raises(ProofError):
        verify_inclusion(i, len(leaves), leaf, proof, tree.root)


@given(leaves_st, st.data())
def test_a_proof_for_another_index_or_size_is_refused(
    leaves: list[bytes], data: st.DataObject
) -> None:
    tree = MerkleTree.from_leaves(leaves)
    n = len(leaves)
    i = data.draw(st.integers(0, n - 1))
    j = data.draw(st.integers(0, 2 * n))
    size = data.draw(st.integers(1, 2 * n))
    proof = tree.inclusion_proof(i)
    if j != i and leaves[j % n] != leaves[i]:
        with pytest.raises(ProofError):
            verify_inclusion(j, n, tree.leaf(i), proof, tree.root)
    # An audit path binds the size only through its shape (the trusted root and
    # size come together from the chain): another size with another shape fails.
    if (
        size != n
        and i < size
        and len(MerkleTree(tree.levels[0][:1] * size).inclusion_proof(i)) != len(proof)
    ):
        with pytest.raises(ProofError):
            verify_inclusion(i, size, tree.leaf(i), proof, tree.root)


@given(leaves_st, st.data())
def test_consistency_proof_equals_the_reference_and_verifies(
    leaves: list[bytes], data: st.DataObject
) -> None:
    n = len(leaves)
    m = data.draw(st.integers(1, n))
    hashes = [leaf_hash(x) for x in leaves]
    proof = consistency_proof(hashes, m)
    assert proof == ref.proof(m, leaves)
    verify_consistency(m, n, proof, ref.mth(leaves[:m]), ref.mth(leaves))
    if m < n:
        other = [*leaves[:-1], leaves[-1] + b"!"]
        with pytest.raises(ProofError):
            verify_consistency(m, n, proof, ref.mth(leaves[:m]), ref.mth(other))


def test_large_tree_proofs_at_the_edges() -> None:
    leaves = [i.to_bytes(4, "big") for i in range(1000)]
    tree = MerkleTree.from_leaves(leaves)
    assert tree.root == ref.mth(leaves)
    for i in (0, 1, 511, 512, 998, 999):
        verify_inclusion(i, 1000, tree.leaf(i), tree.inclusion_proof(i), tree.root)
        assert tree.inclusion_proof(i) == ref.path(i, leaves)
