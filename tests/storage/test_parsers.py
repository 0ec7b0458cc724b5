"""Property tests: the parsers take arbitrary bytes and only ever raise govshare errors."""

from __future__ import annotations

import contextlib
import io

from hypothesis import given, settings
from hypothesis import strategies as st

from govshare.errors import GovShareError
from govshare.storage import car as carlib
from govshare.storage import dagcbor
from govshare.storage.cid import (
    CID,
    b32decode,
    b32encode,
    b58decode,
    b58encode,
    decode_varint,
    encode_varint,
)
from govshare.storage.dagpb import (
    PBLink,
    PBNode,
    UnixFSData,
    decode_pbnode,
    decode_unixfs,
    encode_pbnode,
    encode_unixfs,
)
from govshare.storage.unixfs import compute_cid

SETTINGS = settings(max_examples=300, deadline=None)


def _only_govshare_errors(fn, *args):  # type: ignore[no-untyped-def]
    with contextlib.suppress(GovShareError):
        fn(*args)


@SETTINGS
@given(st.binary(max_size=300))
def test_dagpb_decoder(data: bytes) -> None:
    _only_govshare_errors(decode_pbnode, data)
    _only_govshare_errors(decode_unixfs, data)


@SETTINGS
@given(st.binary(max_size=200))
def test_cid_decoders(data: bytes) -> None:
    _only_govshare_errors(CID.from_bytes, data)
    _only_govshare_errors(CID.parse, data.decode("latin-1"))
    _only_govshare_errors(CID.parse, "b" + data.hex())
    _only_govshare_errors(CID.parse, "z" + data.decode("latin-1"))


@SETTINGS
@given(st.binary(max_size=400))
def test_dagcbor_decoder(data: bytes) -> None:
    _only_govshare_errors(dagcbor.decode, data)


@SETTINGS
@given(st.binary(max_size=600))
def test_car_reader(data: bytes) -> None:
    def read(raw: bytes) -> None:
        _roots, sections = carlib.read_car(io.BytesIO(raw))
        for _ in sections:
            pass

    _only_govshare_errors(read, data)
    # and with a valid header in front, so the section reader gets exercised too
    header = carlib.encode_header([compute_cid(b"x")])
    _only_govshare_errors(read, header + data)


@SETTINGS
@given(st.binary(max_size=64))
def test_base_codecs_round_trip(data: bytes) -> None:
    assert b58decode(b58encode(data)) == data
    assert b32decode(b32encode(data)) == data


@SETTINGS
@given(st.integers(min_value=0, max_value=(1 << 63) - 1))
def test_varint_round_trip(n: int) -> None:
    assert decode_varint(encode_varint(n)) == (n, len(encode_varint(n)))


@SETTINGS
@given(
    st.lists(
        st.tuples(st.binary(min_size=0, max_size=40), st.text(max_size=10), st.integers(0, 2**40)),
        max_size=5,
    ),
    st.one_of(st.none(), st.binary(max_size=50)),
)
def test_dagpb_round_trip(links: list[tuple[bytes, str, int]], data: bytes | None) -> None:
    node = PBNode(tuple(PBLink(compute_cid(h, cid_version=1), n, t) for h, n, t in links), data)
    assert decode_pbnode(encode_pbnode(node)) == node


@SETTINGS
@given(st.binary(max_size=100), st.lists(st.integers(0, 2**40), max_size=10))
def test_unixfs_round_trip(data: bytes, sizes: list[int]) -> None:
    d = UnixFSData(2, data or None, len(data) + sum(sizes), sizes)
    assert decode_unixfs(encode_unixfs(d)) == d


@SETTINGS
@given(st.binary(max_size=2000), st.sampled_from([0, 1]))
def test_cid_text_round_trip(data: bytes, version: int) -> None:
    cid = compute_cid(data, cid_version=version)
    assert CID.parse(str(cid)) == cid
    assert CID.from_bytes(bytes(cid)) == cid
