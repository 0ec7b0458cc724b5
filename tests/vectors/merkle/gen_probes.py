"""Regenerate ``probes.json``: every inclusion and consistency probe of
transparency-dev/merkle's ``cmd/proofgen`` (the program that writes its
``testdata/``), from the same published base tables, with the same mutations.

    python tests/vectors/merkle/gen_probes.py          # rewrites probes.json

The base tables (known-good proofs, the roots of trees of 1..8 leaves, the leaf
inputs) are transparency-dev/merkle's ``cmd/proofgen/main.go`` and
``proof/verify_test.go``; the roots and leaf inputs come from Certificate
Transparency's ``cpp/merkletree/merkle_tree_test.cc``. The files under
``transparency-dev/`` are verbatim copies of some of the published
``testdata/`` files: ``tests/audit/test_merkle_vectors.py`` checks each one is
among the probes generated here, so the port cannot drift from the original.
Hashes are hex here (the Go files use base64, Go's encoding of []byte).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent

SOME_HASH = "abacaba000000000000000000000000000000000000000000060061e00123456"
EMPTY_TREE_HASH = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

# (leaf index, 1-based as in proofgen; tree size; proof)
INCLUSION_PROOFS: list[tuple[int, int, list[str]]] = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (3, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        2,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]

CONSISTENCY_PROOFS: list[tuple[int, int, list[str]]] = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]

ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]

# proofgen's `leaves` (only the entries its inclusion table uses are non-empty).
LEAVES = ["", "00", "10", "", "", "40414243"]


def _leaf_hash(data_hex: str) -> str:
    return hashlib.sha256(b"\x00" + bytes.fromhex(data_hex)).hexdigest()


def _flip(h: str, mask: int) -> str:
    b = bytearray(bytes.fromhex(h))
    b[0] ^= mask
    return b.hex()


def _inc(idx: int, size: int, root: str, leaf: str, proof: list[str], desc: str, err: bool) -> Any:
    return {
        "leafIdx": idx,
        "treeSize": size,
        "root": root,
        "leafHash": leaf,
        "proof": proof,
        "desc": desc,
        "wantErr": err,
    }


U64 = 2**64


def inclusion_probes() -> list[dict[str, Any]]:
    out = []
    wrong_leaf = b"WrongLeaf".hex()
    for n, (leaf1, size, proof) in enumerate(INCLUSION_PROOFS):
        group = str(n)
        idx, root, leaf = leaf1 - 1, ROOTS[size - 1], _leaf_hash(LEAVES[leaf1 - 1])
        probes = [
            _inc(idx, size, root, leaf, proof, "happy path", False),
            _inc((idx - 1) % U64, size, root, leaf, proof, "leafIdx sub @1", True),
            _inc(idx + 1, size, root, leaf, proof, "leafIdx plus @1", True),
            _inc(idx ^ 2, size, root, leaf, proof, "leafIdx XOR @2", True),
            _inc(idx, size * 2, root, leaf, proof, "treeSize mul @2", True),
            _inc(idx, size // 2, root, leaf, proof, "treeSize div @2", True),
            _inc(idx, size, root, wrong_leaf, proof, "wrong leaf", True),
            _inc(idx, size, EMPTY_TREE_HASH, leaf, proof, "empty root", True),
            _inc(idx, size, SOME_HASH, leaf, proof, "random root", True),
            _inc(idx, size, root, leaf, [*proof, ""], "trailing garbage", True),
            _inc(idx, size, root, leaf, [*proof, root], "trailing root", True),
            _inc(idx, size, root, leaf, ["", *proof], "preceding garbage", True),
            _inc(idx, size, root, leaf, [root, *proof], "preceding root", True),
        ]
        for i in range(len(proof)):
            wrong = list(proof)
            wrong[i] = _flip(wrong[i], 8)
            probes.append(_inc(idx, size, root, leaf, wrong, f"modified proof[{i}] bit @3", True))
        if proof:
            probes.append(_inc(idx, size, root, leaf, proof[:-1], "removed component", True))
        if len(proof) > 1:
            wrong = [proof[0], SOME_HASH, *proof[1:]]
            probes.append(_inc(idx, size, root, leaf, wrong, "inserted component", True))
        out += [{"group": group, **p} for p in probes]
    for n, (index, size) in enumerate([(0, 0), (0, 1), (1, 0), (2, 1)]):
        group = f"additional/{n}"
        out += [
            {"group": group, **_inc(index, size, "", SOME_HASH, [], "random leaf", True)},
            {"group": group, **_inc(index, size, EMPTY_TREE_HASH, "", [], "empty root", True)},
            {
                "group": group,
                **_inc(
                    index, size, EMPTY_TREE_HASH, SOME_HASH, [], "empty root and random leaf", True
                ),
            },
        ]
    data = _leaf_hash(b"data".hex())
    for root, leaf, desc, err in [
        (data, data, "matching root and leaf", False),
        (data, "", "empty leaf", True),
        ("", data, "empty root", True),
        ("", "", "empty root and leaf", True),
    ]:
        out.append({"group": "single-entry", **_inc(0, 1, root, leaf, [], desc, err)})
    return out


def _con(s1: int, s2: int, r1: str, r2: str, proof: list[str], desc: str, err: bool) -> Any:
    return {
        "size1": s1,
        "size2": s2,
        "root1": r1,
        "root2": r2,
        "proof": proof,
        "desc": desc,
        "wantErr": err,
    }


def consistency_probes() -> list[dict[str, Any]]:
    out = []
    wrong_root = b"WrongRoot".hex()
    for n, (s1, s2, proof) in enumerate(CONSISTENCY_PROOFS):
        group = str(n)
        r1, r2 = ROOTS[s1 - 1], ROOTS[s2 - 1]
        out.append({"group": group, **_con(s1, s2, r1, r2, proof, "happy path", False)})
        if not proof:
            continue
        probes = [
            _con(s1 - 1, s2, r1, r2, proof, "size1 sub @1", True),
            _con(s1 + 1, s2, r1, r2, proof, "size1 plus @1", True),
            _con(s1 ^ 2, s2, r1, r2, proof, "size1 XOR @2", True),
            _con(s1, s2 * 2, r1, r2, proof, "size2 mul @2", True),
            _con(s1, s2 // 2, r1, r2, proof, "size2 div @2", True),
            _con(s1, s2, wrong_root, r2, proof, "wrong root1", True),
            _con(s1, s2, r1, wrong_root, proof, "wrong root2", True),
            _con(s1, s2, r2, r1, proof, "swapped roots", True),
            _con(s1, s2, r1, r2, [], "empty proof", True),
            _con(s1, s2, r1, r2, [*proof, ""], "trailing garbage", True),
            _con(s1, s2, r1, r2, [*proof, r1], "trailing root1", True),
            _con(s1, s2, r1, r2, [*proof, r2], "trailing root2", True),
            _con(s1, s2, r1, r2, ["", *proof], "preceding garbage", True),
            _con(s1, s2, r1, r2, [r1, *proof], "preceding root1", True),
            _con(s1, s2, r1, r2, [r2, *proof], "preceding root2", True),
            _con(s1, s2, r1, r2, [proof[0], *proof], "preceding proof @0", True),
            _con(s1, s2, r1, r2, proof[:-1], "truncated proof", True),
        ]
        for i in range(len(proof)):
            wrong = list(proof)
            wrong[i] = _flip(wrong[i], 16)
            probes.append(_con(s1, s2, r1, r2, wrong, f"modified proof@{i} bit @4", True))
        out += [{"group": group, **p} for p in probes]
    c1, c2 = b"don't care 1".hex(), b"don't care 2".hex()
    e = EMPTY_TREE_HASH
    for s1, s2, r1, r2, proof, desc, err in [
        (0, 0, c1, c2, [], "sizes are equal (zero) but roots are not", True),
        (1, 1, c1, c2, [], "sizes are equal (one) but roots are not", True),
        (0, 0, c1, c1, [], "sizes are equal (zero) and proof is empty", True),
        (0, 1, c1, c2, [], "size1 is zero and does not equal size2", True),
        (1, 1, c2, c2, [], "sizes are equal (one) and proof is empty", False),
        (1, 0, c1, c2, [], "size1 is greater than size2", True),
        (2, 1, c1, c2, [], "size1 is greater than size2 again", True),
        (1, 2, c1, c2, [], "sizes do not watch and proof is empty", True),
        (0, 0, e, c2, [], "roots do not match and sizes are zero", True),
        (1, 1, e, c2, [], "roots do not not match and sizes are one", True),
        (0, 0, e, e, [e], "sizes match but proof is not empty and sizes are zero", True),
        (1, 1, e, e, [e], "sizes match but proof is not empty and sizes are one", True),
        (0, 1, e, c2, [], "size1 is zero and size2 is not zero", True),
        (0, 1, e, e, [e], "consistency check on empty tree (size1 is zero) is useless", True),
    ]:
        out.append({"group": "additional", **_con(s1, s2, r1, r2, proof, desc, err)})
    return out


def build() -> dict[str, Any]:
    return {
        "source": "transparency-dev/merkle cmd/proofgen (tables and mutations), ported",
        "inclusion": inclusion_probes(),
        "consistency": consistency_probes(),
    }


def render() -> str:
    return json.dumps(build(), indent=1) + "\n"


if __name__ == "__main__":
    (HERE / "probes.json").write_text(render())
