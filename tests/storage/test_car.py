"""CARv1 against the spec's fixtures (``tests/vectors/car``, provenance in its README)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from govshare.storage import (
    BlockCorrupted,
    InvalidBlock,
    InvalidCAR,
    LocalBlobStore,
    UnsupportedCID,
)
from govshare.storage import car as carlib
from govshare.storage.cid import CID

CARS = Path(__file__).resolve().parent.parent / "vectors" / "car"

BASIC_ROOTS = [
    "bafyreihyrpefhacm6kkp4ql6j6udakdit7g3dmkzfriqfykhjw6cad5lrm",
    "bafyreidj5idub6mapiupjwjsyyxhyhedxycv4vihfsicm2vt46o7morwlm",
]
# carv1-basic.json: (cid, section offset, section length) in file order
BASIC_INDEX = [
    ("bafyreihyrpefhacm6kkp4ql6j6udakdit7g3dmkzfriqfykhjw6cad5lrm", 100, 92),
    ("QmNX6Tffavsya4xgBi2VJQnSuqy9GsxongxZZ9uZBqp16d", 192, 133),
    ("bafkreifw7plhl6mofk6sfvhnfh64qmkq73oeqwl6sloru6rehaoujituke", 325, 41),
    ("QmWXZxVQ9yZfhQxLD35eDR8LiMRsYtHxYqTFCBbJoiJVys", 366, 130),
    ("bafkreiebzrnroamgos2adnbpgw5apo3z4iishhbdx77gldnbk57d4zdio4", 496, 41),
    ("QmdwjhxpxzcMsR3qUuj7vUL8pbA7MgR3GAxWi2GLHjsKCT", 537, 82),
    ("bafkreidbxzk2ryxwwtqxem4l3xyyjvw35yu4tcct4cqeqxwo47zhxgxqwq", 619, 41),
    ("bafyreidj5idub6mapiupjwjsyyxhyhedxycv4vihfsicm2vt46o7morwlm", 660, 55),
]


def test_carv1_basic_reads_as_the_spec_describes() -> None:
    raw = (CARS / "carv1-basic.car").read_bytes()
    stream = io.BytesIO(raw)
    roots, sections = carlib.read_car(stream)
    assert [str(r) for r in roots] == BASIC_ROOTS
    seen = []
    offset = stream.tell()
    for cid, _block in sections:
        end = stream.tell()
        seen.append((str(cid), offset, end - offset))
        offset = end
    assert seen == BASIC_INDEX


def test_carv1_basic_import_then_export_is_byte_identical(tmp_path: Path) -> None:
    raw = (CARS / "carv1-basic.car").read_bytes()
    store = LocalBlobStore(tmp_path)
    result = store.import_car(io.BytesIO(raw))
    assert [str(r) for r in result.roots] == BASIC_ROOTS
    assert result.blocks == 8
    out = io.BytesIO()
    # depth first from each root, links in order, each block once: go-car's order
    assert store.export_car_roots(result.roots, out) == 8
    assert out.getvalue() == raw


def test_carv1_header_bytes_match_js_car() -> None:
    # ipld/js-car test "single root": the header for one dag-cbor root
    expected = (
        "a265726f6f747381d82a58250001711220f88bc853804cf294fe417e4fa83028689fcdb1b1592c5102e1474"
        "dbc200fab8b6776657273696f6e01"
    )
    header = carlib.encode_header([CID.parse(BASIC_ROOTS[0])])
    assert header == bytes([len(expected) // 2]) + bytes.fromhex(expected)


def test_carv2_basic_payload_cidv0_dag(tmp_path: Path) -> None:
    raw = (CARS / "carv2-basic-data.car").read_bytes()
    store = LocalBlobStore(tmp_path)
    result = store.import_car(io.BytesIO(raw))
    assert [str(r) for r in result.roots] == ["QmfEoLyB5NndqeKieExd1rtJzTduQUPEV8TwAYcUiy3H5Z"]
    assert result.blocks == 5
    out = io.BytesIO()
    store.export_car(result.roots[0], out)
    assert out.getvalue() == raw


def test_go_car_single_block_fixture(tmp_path: Path) -> None:
    raw = (CARS / "go-car-single-block.car").read_bytes()
    store = LocalBlobStore(tmp_path)
    result = store.import_car(io.BytesIO(raw))
    assert [str(r) for r in result.roots] == [
        "bafyreiavd7u6opdcm6tqmddpnrgmvfb4enxuwglhenejmchnwqvixd5ibm"
    ]
    out = io.BytesIO()
    store.export_car(result.roots[0], out)
    assert out.getvalue() == raw


@pytest.mark.parametrize("name", ["carv1-basic.car", "carv2-basic-data.car"])
def test_no_flipped_byte_smuggles_data_in(name: str) -> None:
    """Flip each byte in turn: the reader either refuses the CAR, or every block it
    yields is byte-for-byte one of the original blocks (a flip in a CID's codec
    varint renames a block without changing a byte of it, and the hash still holds)."""
    raw = (CARS / name).read_bytes()
    _roots, sections = carlib.read_car(io.BytesIO(raw))
    originals = {block for _cid, block in sections}
    refused = 0
    for i in range(len(raw)):
        damaged = bytearray(raw)
        damaged[i] ^= 0x01
        try:
            _roots, sections = carlib.read_car(io.BytesIO(bytes(damaged)))
            for cid, block in sections:
                assert block in originals
                cid.verify(block)
        except (InvalidCAR, BlockCorrupted, InvalidBlock, UnsupportedCID):
            refused += 1
    assert refused > len(raw) * 0.8  # the rest: header root CIDs and codec varints


def test_truncated_car_is_invalid() -> None:
    raw = (CARS / "carv1-basic.car").read_bytes()
    for cut in (0, 1, 30, 101, 200, len(raw) - 1):
        with pytest.raises((InvalidCAR, BlockCorrupted)):
            _roots, sections = carlib.read_car(io.BytesIO(raw[:cut]))
            for _ in sections:
                pass


def test_carv2_is_refused_with_a_clear_message() -> None:
    pragma = bytes.fromhex("0aa16776657273696f6e02")
    with pytest.raises(InvalidCAR, match="CARv2"):
        carlib.read_car(io.BytesIO(pragma + b"\0" * 40))


def test_hello_world_cidv0_car(tmp_path: Path) -> None:
    # A CARv1 of `hello world\n` added with Kubo's defaults (a CIDv0 root, so the header
    # link is the bare multihash behind the 0x00 prefix), as published in a third-party
    # CAR-handling test suite; our export is byte-identical.
    expected = bytes.fromhex(
        "38a265726f6f747381d82a582300122046d44814b9c5af141c3aaab7c05dc5e844ead5f91f12858b021e"
        "ba45768b4c0e6776657273696f6e0136122046d44814b9c5af141c3aaab7c05dc5e844ead5f91f12858b"
        "021eba45768b4c0e0a120802120c68656c6c6f20776f726c640a180c"
    )
    store = LocalBlobStore(tmp_path)
    cid = store.put(io.BytesIO(b"hello world\n"))
    out = io.BytesIO()
    store.export_car(cid, out)
    assert out.getvalue() == expected
