"""Known-answer vectors (tests/vectors/merkle/README.md): Certificate
Transparency's roots, and every transparency-dev/merkle proof probe, positive
and negative."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from govshare.audit.errors import ProofError, RootMismatchError
from govshare.audit.merkle import (
    EMPTY_ROOT,
    MerkleTree,
    leaf_hash,
    root_from_inclusion_proof,
    root_hash,
    verify_consistency,
    verify_inclusion,
)
from govshare.errors import GovShareError, IntegrityError

VECTORS = Path(__file__).parent.parent / "vectors" / "merkle"
CT = json.loads((VECTORS / "ct_roots.json").read_text())
PROBES = json.loads((VECTORS / "probes.json").read_text())


def _hx(value: str) -> bytes:
    return bytes.fromhex(value)


def test_ct_leaf_inputs_give_the_published_roots_after_each_append() -> None:
    leaves = [_hx(x) for x in CT["leaves"]]
    for n in range(1, len(leaves) + 1):
        assert root_hash(leaves[:n]).hex() == CT["roots"][n - 1], n
        assert MerkleTree.from_leaves(leaves[:n]).root.hex() == CT["roots"][n - 1], n


def test_the_empty_tree() -> None:
    assert EMPTY_ROOT.hex() == CT["empty_root"]
    assert root_hash([]) == EMPTY_ROOT
    assert MerkleTree([]).root == EMPTY_ROOT


def test_domain_separation() -> None:
    # RFC 6962 §2.1: a leaf is hashed with 0x00 in front, an inner node with 0x01.
    assert leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    assert CT["roots"][0] == hashlib.sha256(b"\x00").hexdigest()


def _inclusion_ok(p: dict[str, Any]) -> bool:
    try:
        verify_inclusion(
            p["leafIdx"],
            p["treeSize"],
            _hx(p["leafHash"]),
            [_hx(h) for h in p["proof"]],
            _hx(p["root"]),
        )
    except ProofError:
        return False
    return True


def _consistency_ok(p: dict[str, Any]) -> bool:
    try:
        verify_consistency(
            p["size1"], p["size2"], [_hx(h) for h in p["proof"]], _hx(p["root1"]), _hx(p["root2"])
        )
    except ProofError:
        return False
    return True


@pytest.mark.parametrize("probe", PROBES["inclusion"], ids=lambda p: f"{p['group']}:{p['desc']}")
def test_inclusion_probe(probe: dict[str, Any]) -> None:
    assert _inclusion_ok(probe) is not probe["wantErr"]


@pytest.mark.parametrize("probe", PROBES["consistency"], ids=lambda p: f"{p['group']}:{p['desc']}")
def test_consistency_probe(probe: dict[str, Any]) -> None:
    assert _consistency_ok(probe) is not probe["wantErr"]


def test_probes_cover_both_outcomes() -> None:
    for kind in ("inclusion", "consistency"):
        wants = [p["wantErr"] for p in PROBES[kind]]
        assert wants.count(False) >= 5 and wants.count(True) >= 80, kind


def _from_go(value: dict[str, Any]) -> dict[str, Any]:
    """A verbatim testdata file (base64 []byte) in probes.json's hex form."""
    out = dict(value)
    for key in ("root", "leafHash", "root1", "root2"):
        if key in out:
            out[key] = base64.b64decode(out[key]).hex()
    out["proof"] = [base64.b64decode(h).hex() for h in out["proof"] or []]
    return out


VERBATIM = sorted((VECTORS / "transparency-dev").rglob("*.json"))


@pytest.mark.parametrize("path", VERBATIM, ids=lambda p: str(p.relative_to(VECTORS)))
def test_each_published_file_is_one_of_the_ported_probes(path: Path) -> None:
    kind = path.relative_to(VECTORS / "transparency-dev").parts[0]
    group = "/".join(path.relative_to(VECTORS / "transparency-dev" / kind).parts[:-1])
    want = _from_go(json.loads(path.read_text()))
    ported = [
        {k: v for k, v in p.items() if k != "group"} for p in PROBES[kind] if p["group"] == group
    ]
    assert want in ported
    assert (_inclusion_ok(want) if kind == "inclusion" else _consistency_ok(want)) is not want[
        "wantErr"
    ]


def test_probes_json_is_what_the_generator_writes() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("gen_probes", VECTORS / "gen_probes.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.render() == (VECTORS / "probes.json").read_text()


def test_root_mismatch_is_typed_with_both_roots() -> None:
    p = next(x for x in PROBES["inclusion"] if x["desc"] == "random root")
    with pytest.raises(RootMismatchError) as info:
        verify_inclusion(
            p["leafIdx"], p["treeSize"], _hx(p["leafHash"]), [_hx(h) for h in p["proof"]],
            _hx(p["root"]),
        )  # fmt: skip
    err = info.value
    assert isinstance(err, IntegrityError) and isinstance(err, GovShareError)
    assert err.code == "audit.root_mismatch"
    assert err.expected == _hx(p["root"])
    good = next(
        x for x in PROBES["inclusion"] if x["group"] == p["group"] and x["desc"] == "happy path"
    )
    assert err.calculated == _hx(good["root"])
    assert err.to_dict()["details"]["expected"] == "0x" + p["root"]


def test_a_malformed_proof_is_a_proof_error_not_a_mismatch() -> None:
    with pytest.raises(ProofError) as info:
        root_from_inclusion_proof(5, 3, b"\0" * 32, [])
    assert type(info.value) is ProofError
    assert info.value.code == "audit.proof_invalid"
