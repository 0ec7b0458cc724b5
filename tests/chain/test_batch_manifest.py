"""The record batch manifest: build → parse round trip, and a parser that is total
on hostile input (any bytes parse or raise ManifestError / RootMismatchError)."""

from __future__ import annotations

import contextlib
import hashlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from govshare.audit.errors import ManifestError, RootMismatchError
from govshare.audit.merkle import verify_inclusion
from govshare.chain.batch import (
    MAX_MANIFEST_BYTES,
    BatchRecord,
    build_batch,
    index_manifests,
    ordered_for_materialising,
    parse_manifest,
)


def h(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def rec(i: int, previous: bytes | None = None, subject: bool = True) -> BatchRecord:
    return BatchRecord(
        h(f"id{i}"),
        "TAX",
        h(f"c{i}"),
        f"bafy{i}",
        "tax.cert",
        h("s") if subject else None,
        previous,
    )


RECORDS = [rec(0), rec(1, h("id0")), rec(2, subject=False)]
GOOD = build_batch("TAX", RECORDS, chain_id=31337, registry="0x" + "ab" * 20)


def test_round_trip_and_proofs() -> None:
    m = parse_manifest(GOOD.data, department="TAX", count=3, root=GOOD.root)
    assert m.records == tuple(RECORDS) and m.root == GOOD.root and m.data == GOOD.data
    lines = GOOD.data.decode().splitlines()
    assert json.loads(lines[0]) == {
        "chain_id": 31337,
        "count": 3,
        "department": "TAX",
        "format": "govshare-record-batch/1",
        "leaf": "govshare.record-leaf.v1",
        "registry": "0x" + "ab" * 20,
        "tree": "rfc6962-sha256",
    }
    assert json.loads(lines[3])["subject_ref"] is None
    for i, r in enumerate(RECORDS):
        verify_inclusion(i, 3, r.leaf_hash(), m.proof(i), m.root)
    index = index_manifests({7: m})
    assert index[h("id1")].sequence == 7 and index[h("id1")].leaf_index == 1
    ordered = ordered_for_materialising([index[h("id1")], index[h("id0")]])
    assert [p.record.record_id for p in ordered] == [h("id0"), h("id1")]


def test_leaf_bytes_are_as_documented() -> None:
    data = rec(0).leaf_data()
    assert data[:32] == b"govshare.record-leaf.v1".ljust(32, b"\0")
    assert data[128:160] == (256).to_bytes(32, "big")  # the CID's offset
    assert data[256:288] == (5).to_bytes(32, "big")  # len("bafy0")
    assert data[288:] == b"bafy0".ljust(32, b"\0") and len(data) == 320


@pytest.mark.parametrize(
    ("data", "kw", "error"),
    [
        (GOOD.data, {"department": "MARKET"}, ManifestError),
        (GOOD.data, {"count": 4}, ManifestError),
        (GOOD.data, {"root": h("x")}, RootMismatchError),
        (GOOD.data[:-1], {}, ManifestError),  # no final line break
        (GOOD.data.replace(b'"count":3', b'"count":2'), {}, ManifestError),
        (GOOD.data.replace(b'"index":1', b'"index":2'), {}, ManifestError),
        (GOOD.data.replace(b',"tree"', b', "tree"'), {}, ManifestError),  # not canonical
        (GOOD.data.replace(b"bafy1", b"bafy 1"), {}, ManifestError),
        (GOOD.data.replace(b"tax.cert", b"tax cert"), {}, ManifestError),
        (GOOD.data.replace(b'"department":"TAX"', b'"department":"tax"'), {}, ManifestError),
        (GOOD.data.replace(b'"format":"', b'"format":"x'), {}, ManifestError),
        (GOOD.data + GOOD.data.splitlines(keepends=True)[1], {}, ManifestError),
        (
            GOOD.data.replace(b'"subject_ref":null', b'"subject_ref":"0x' + b"0" * 64 + b'"'),
            {},
            ManifestError,
        ),
        (b"", {}, ManifestError),
        (b"\n", {}, ManifestError),
        (b"[" * 100_000 + b"\n", {}, ManifestError),  # once a crash of the C decoder
        (b"[" * 1024 + b"\n", {}, ManifestError),
        (b'{"a":' * 200 + b"\n", {}, ManifestError),
        (b"\xff\xfe\n", {}, ManifestError),
        (b"x" * (MAX_MANIFEST_BYTES + 1), {}, ManifestError),
    ],
)
def test_refusals(data: bytes, kw: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_manifest(data, **kw)  # type: ignore[arg-type]


def test_duplicate_record_refused() -> None:
    lines = GOOD.data.splitlines(keepends=True)
    dup = lines[1].replace(b'"index":0', b'"index":1')
    data = lines[0] + lines[1] + dup + lines[3]
    with pytest.raises(ManifestError):
        parse_manifest(data)


def test_build_refuses_what_cannot_be_one_batch() -> None:
    with pytest.raises(ValueError):
        build_batch("TAX", [])
    with pytest.raises(ValueError):
        build_batch("TAX", [rec(0), rec(0)])
    with pytest.raises(ValueError):
        build_batch("MARKET", [rec(0)])
    with pytest.raises(ValueError):  # two successors of one version
        build_batch("TAX", [rec(1, h("id9")), rec(2, h("id9"))])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes_parse_or_raise_manifest_error(data: bytes) -> None:
    with contextlib.suppress(ManifestError):
        parse_manifest(data)


BARE = build_batch("TAX", RECORDS)  # chain id and registry left out (null)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(BARE.data) - 1), st.integers(0, 255))
def test_any_byte_changed_is_caught(pos: int, value: int) -> None:
    """Against the chain's (department, count, root), a changed record line or a
    changed department or count is caught. (The header's chain id and registry are
    informational: the manifest's CID, on chain, is what binds them; here they are
    null.)"""
    data = bytearray(BARE.data)
    if data[pos] == value:
        return
    data[pos] = value
    try:
        parse_manifest(bytes(data), department="TAX", count=3, root=BARE.root)
    except (ManifestError, RootMismatchError):
        return
    raise AssertionError("a changed manifest parsed against the original root")
