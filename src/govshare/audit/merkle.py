"""RFC 6962 Merkle trees: hashes, inclusion and consistency proofs, verification.

The tree of RFC 6962 §2.1 (Certificate Transparency; unchanged in RFC 9162 §2.1),
with SHA-256 and domain separation, so that a leaf can never be passed off as an
inner node nor the other way round::

    leaf_hash(d)    = SHA-256(0x00 ‖ d)
    node_hash(l, r) = SHA-256(0x01 ‖ l ‖ r)
    MTH([])         = SHA-256("")
    MTH(D[0:n])     = node_hash(MTH(D[0:k]), MTH(D[k:n]))   k = largest power of 2 < n

Verification follows transparency-dev/merkle (``proof/verify.go``):
:func:`root_from_inclusion_proof` recomputes the root a proof leads to and
:func:`verify_inclusion` compares it with the trusted one, raising
:class:`RootMismatchError` (``expected``, ``calculated``) when they differ and
:class:`ProofError` when the proof cannot belong to a tree of that size at all.
Proof hashes are ordered from the leaf up, as in RFC 6962's audit paths.

    tree = MerkleTree([leaf_hash(x) for x in leaves])
    proof = tree.inclusion_proof(3)
    verify_inclusion(3, tree.size, tree.leaf(3), proof, tree.root)

Building a tree keeps every level (about 2 x 32 bytes per leaf), so proofs for
all leaves of a batch cost one pass.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from govshare.audit.errors import ProofError, RootMismatchError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MerkleTree",
    "ProofError",
    "RootMismatchError",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root_from_consistency_proof",
    "root_from_inclusion_proof",
    "root_hash",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
#: The root of the empty tree: SHA-256 of nothing.
EMPTY_ROOT = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256


def leaf_hash(data: bytes) -> bytes:
    """``SHA-256(0x00 ‖ data)``: the hash of a leaf's data."""
    return _sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 ‖ left ‖ right)``: the hash of an inner node."""
    return _sha256(NODE_PREFIX + left + right).digest()


def _next_level(level: Sequence[bytes]) -> list[bytes]:
    # Pairs are hashed; an odd last node moves up unchanged. Bottom-up, this is
    # exactly RFC 6962's split at the largest power of two below n.
    n = len(level)
    out = [_sha256(NODE_PREFIX + level[i] + level[i + 1]).digest() for i in range(0, n - 1, 2)]
    if n % 2:
        out.append(level[-1])
    return out


class MerkleTree:
    """An RFC 6962 tree over given leaf hashes, with every level kept."""

    def __init__(self, leaf_hashes: Iterable[bytes]) -> None:
        level = [bytes(h) for h in leaf_hashes]
        for h in level:
            if len(h) != HASH_SIZE:
                raise ProofError(f"A leaf hash is {HASH_SIZE} bytes, not {len(h)}.")
        self.levels: list[list[bytes]] = [level]
        while len(level) > 1:
            level = _next_level(level)
            self.levels.append(level)

    @classmethod
    def from_leaves(cls, leaves: Iterable[bytes]) -> MerkleTree:
        """A tree over leaf *data* (each hashed with :func:`leaf_hash`)."""
        return cls(leaf_hash(d) for d in leaves)

    @property
    def size(self) -> int:
        return len(self.levels[0])

    @property
    def root(self) -> bytes:
        return self.levels[-1][0] if self.size else EMPTY_ROOT

    def leaf(self, index: int) -> bytes:
        """The leaf hash at ``index``."""
        return self.levels[0][index]

    def inclusion_proof(self, index: int) -> list[bytes]:
        """The audit path of leaf ``index`` (RFC 6962 §2.1.1), from the leaf up."""
        if not 0 <= index < self.size:
            raise ProofError(f"Leaf {index} is not in a tree of {self.size} leaves.")
        proof = []
        for level in self.levels[:-1]:
            sibling = index ^ 1
            if sibling < len(level):
                proof.append(level[sibling])
            index >>= 1
        return proof

    def subtree_root(self, start: int, end: int) -> bytes:
        """MTH of leaves ``[start, end)`` (any range; aligned power-of-two
        ranges come straight from the kept levels)."""
        n = end - start
        if n <= 0:
            return EMPTY_ROOT
        if n & (n - 1) == 0 and start % n == 0:
            return self.levels[n.bit_length() - 1][start // n]
        k = 1 << ((n - 1).bit_length() - 1)
        return node_hash(self.subtree_root(start, start + k), self.subtree_root(start + k, end))

    def consistency_proof(self, size1: int) -> list[bytes]:
        """The proof that the first ``size1`` leaves' tree is a prefix of this one
        (RFC 6962 §2.1.2, ``PROOF(m, D[n])``); empty for ``size1`` = size."""
        if not 0 < size1 <= self.size:
            raise ProofError(f"No consistency proof from size {size1} to size {self.size}.")
        return self._subproof(size1, 0, self.size, True)

    def _subproof(self, m: int, start: int, end: int, complete: bool) -> list[bytes]:
        n = end - start
        if m == n:
            return [] if complete else [self.subtree_root(start, end)]
        k = 1 << ((n - 1).bit_length() - 1)
        if m <= k:
            return [
                *self._subproof(m, start, start + k, complete),
                self.subtree_root(start + k, end),
            ]
        return [*self._subproof(m - k, start + k, end, False), self.subtree_root(start, start + k)]


def root_hash(leaves: Iterable[bytes]) -> bytes:
    """MTH over leaf *data* (for leaf hashes, use ``MerkleTree(hashes).root``)."""
    level = [leaf_hash(d) for d in leaves]
    if not level:
        return EMPTY_ROOT
    while len(level) > 1:
        level = _next_level(level)
    return level[0]


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """The audit path of leaf ``index`` in the tree over ``leaf_hashes``."""
    return MerkleTree(leaf_hashes).inclusion_proof(index)


def consistency_proof(leaf_hashes: Sequence[bytes], size1: int) -> list[bytes]:
    """The consistency proof from the first ``size1`` leaves to all of them."""
    return MerkleTree(leaf_hashes).consistency_proof(size1)


# -- verification (transparency-dev/merkle proof/verify.go) ---------------------------


def _check_hashes(proof: Sequence[bytes]) -> list[bytes]:
    out = [bytes(h) for h in proof]
    for i, h in enumerate(out):
        if len(h) != HASH_SIZE:
            raise ProofError(f"Proof hash {i} is {len(h)} bytes, not {HASH_SIZE}.")
    return out


def _decomp_incl_proof(index: int, size: int) -> tuple[int, int]:
    # Where the paths to leaves `index` and `size-1` diverge: the proof's lower
    # ("inner") part and its upper part along the tree's right border.
    inner = (index ^ (size - 1)).bit_length()
    border = bin(index >> inner).count("1")
    return inner, border


def _chain_inner(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    for i, h in enumerate(proof):
        # bit i of the index: is the path's node a left (0) or right (1) child?
        seed = node_hash(seed, h) if (index >> i) & 1 == 0 else node_hash(h, seed)
    return seed


def _chain_inner_right(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    for i, h in enumerate(proof):
        if (index >> i) & 1 == 1:
            seed = node_hash(h, seed)
    return seed


def _chain_border_right(seed: bytes, proof: Sequence[bytes]) -> bytes:
    for h in proof:
        seed = node_hash(h, seed)
    return seed


def root_from_inclusion_proof(
    index: int, size: int, leaf_hash_: bytes, proof: Sequence[bytes]
) -> bytes:
    """The root a tree of ``size`` leaves has if ``leaf_hash_`` is its leaf
    ``index`` and ``proof`` its audit path. Raises :class:`ProofError` when the
    proof cannot be one for that position (index, length, hash sizes)."""
    if index < 0 or size < 0 or index >= size:
        raise ProofError(f"Leaf index {index} is beyond a tree of {size} leaves.")
    if len(leaf_hash_) != HASH_SIZE:
        raise ProofError(f"The leaf hash is {len(leaf_hash_)} bytes, not {HASH_SIZE}.")
    hashes = _check_hashes(proof)
    inner, border = _decomp_incl_proof(index, size)
    if len(hashes) != inner + border:
        raise ProofError(
            f"An inclusion proof for leaf {index} of {size} has {inner + border} hashes, "
            f"not {len(hashes)}."
        )
    res = _chain_inner(bytes(leaf_hash_), hashes[:inner], index)
    return _chain_border_right(res, hashes[inner:])


def verify_inclusion(
    index: int, size: int, leaf_hash_: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash_`` is leaf ``index`` of the tree of ``size`` leaves
    whose root is ``root``. Raises :class:`RootMismatchError` (or
    :class:`ProofError`); returns None when it is."""
    calculated = root_from_inclusion_proof(index, size, leaf_hash_, proof)
    if calculated != bytes(root):
        raise RootMismatchError(bytes(root), calculated, index=index, size=size)


def root_from_consistency_proof(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes
) -> bytes:
    """The root of the tree of ``size2`` leaves that ``proof`` shows extends the
    tree of ``size1`` leaves with root ``root1`` (checked on the way: raises
    :class:`RootMismatchError` when the proof does not lead back to ``root1``)."""
    if size1 <= 0:
        raise ProofError("A consistency proof from the empty tree proves nothing.")
    if size2 < size1:
        raise ProofError(f"A tree cannot shrink from {size1} to {size2} leaves.")
    hashes = _check_hashes(proof)
    if size1 == size2:
        if hashes:
            raise ProofError("Equal sizes need an empty consistency proof.")
        return bytes(root1)
    if not hashes:
        raise ProofError("The consistency proof is empty.")
    inner, border = _decomp_incl_proof(size1 - 1, size2)
    shift = (size1 & -size1).bit_length() - 1  # trailing zero bits of size1
    inner -= shift
    # The proof starts with the root of the size-2^shift subtree, unless size1 is
    # that very subtree (then root1 is the seed).
    if size1 == 1 << shift:
        seed, start = bytes(root1), 0
    else:
        seed, start = hashes[0], 1
    if len(hashes) != start + inner + border:
        raise ProofError(
            f"A consistency proof from {size1} to {size2} leaves has "
            f"{start + inner + border} hashes, not {len(hashes)}."
        )
    rest = hashes[start:]
    mask = (size1 - 1) >> shift
    hash1 = _chain_border_right(_chain_inner_right(seed, rest[:inner], mask), rest[inner:])
    if hash1 != bytes(root1):
        raise RootMismatchError(bytes(root1), hash1, size=size1)
    return _chain_border_right(_chain_inner(seed, rest[:inner], mask), rest[inner:])


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Check that the tree of ``size1`` leaves (``root1``) is a prefix of the
    tree of ``size2`` leaves (``root2``). Raises on failure."""
    calculated = root_from_consistency_proof(size1, size2, proof, root1)
    if calculated != bytes(root2):
        raise RootMismatchError(bytes(root2), calculated, size=size2)
