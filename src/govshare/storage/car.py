"""CARv1 (https://ipld.io/specs/transport/car/carv1/), as ``ipfs dag export`` writes
and ``ipfs dag import`` reads it::

    varint(len) ‖ dag-cbor {roots: [CID…], version: 1}
    ( varint(len(cid) + len(block)) ‖ cid ‖ block )*

Export walks the DAG depth first from each root, links in order, each block once
(the order Kubo and go-car produce). The reader streams: it holds one section at a
time and hashes every block against its CID before handing it on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO

from govshare.storage import dagcbor
from govshare.storage.cid import CID, DAG_CBOR, DAG_PB, RAW, encode_varint
from govshare.storage.dagpb import decode_pbnode
from govshare.storage.errors import InvalidBlock, InvalidCAR, InvalidCID, UnsupportedCID
from govshare.storage.unixfs import MAX_BLOCK_SIZE

_MAX_HEADER = 1 << 20
_MAX_SECTION = MAX_BLOCK_SIZE + 256


def encode_header(roots: Iterable[CID]) -> bytes:
    body = dagcbor.encode({"roots": list(roots), "version": 1})
    return encode_varint(len(body)) + body


def links_of(cid: CID, block: bytes) -> list[CID]:
    """The CIDs a (verified) block links to, in order."""
    if cid.codec == RAW:
        return []
    if cid.codec == DAG_PB:
        return [link.hash for link in decode_pbnode(block).links]
    if cid.codec == DAG_CBOR:
        return dagcbor.links(dagcbor.decode(block))
    raise UnsupportedCID(f"{cid}: cannot follow links of {cid.codec_name} blocks")


def walk(roots: Iterable[CID], fetch: Callable[[CID], bytes]) -> Iterator[tuple[CID, bytes]]:
    """Every block reachable from ``roots``: depth first, pre-order, each block once.
    Blocks are verified against their CIDs before they are yielded."""
    seen: set[bytes] = set()
    for root in roots:
        stack = [root]
        while stack:
            cid = stack.pop()
            key = bytes(cid)
            if key in seen:
                continue
            seen.add(key)
            cid.check_verifiable()
            block = fetch(cid)
            cid.verify(block)
            yield cid, block
            stack.extend(reversed(links_of(cid, block)))


def write_car(roots: list[CID], fetch: Callable[[CID], bytes], out: BinaryIO) -> tuple[int, int]:
    """Write a CAR of the DAGs under ``roots``; returns ``(blocks, bytes)``."""
    header = encode_header(roots)
    out.write(header)
    written = len(header)
    count = 0
    for cid, block in walk(roots, fetch):
        raw = bytes(cid)
        section = encode_varint(len(raw) + len(block)) + raw
        out.write(section)
        out.write(block)
        written += len(section) + len(block)
        count += 1
    return count, written


def _read_varint(stream: BinaryIO) -> int | None:
    """A varint from the stream; ``None`` at a clean end of stream."""
    value = 0
    shift = 0
    for i in range(9):
        byte = stream.read(1)
        if not byte:
            if i == 0:
                return None
            raise InvalidCAR("CAR ends in the middle of a length")
        b = byte[0]
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            if b == 0 and i > 0:
                raise InvalidCAR("CAR has a non-minimal length varint")
            return value
        shift += 7
    raise InvalidCAR("CAR has an over-long length varint")


def _read_exact(stream: BinaryIO, n: int, what: str) -> bytes:
    data = stream.read(n)
    if data is None or len(data) != n:
        raise InvalidCAR(f"CAR ends in the middle of {what}")
    return data


def read_header(stream: BinaryIO) -> list[CID]:
    length = _read_varint(stream)
    if length is None or length == 0:
        raise InvalidCAR("not a CAR: empty input")
    if length > _MAX_HEADER:
        raise InvalidCAR("not a CAR: header too large")
    body = _read_exact(stream, length, "its header")
    try:
        header = dagcbor.decode(body)
    except InvalidBlock as exc:
        raise InvalidCAR(f"not a CAR: bad header ({exc.message})") from exc
    if not isinstance(header, dict):
        raise InvalidCAR("not a CAR: header is not a map")
    version = header.get("version")
    if version == 2:
        raise InvalidCAR("CARv2 is not supported: convert it to CARv1 first")
    if version != 1:
        raise InvalidCAR("not a CARv1: header version is not 1")
    roots = header.get("roots")
    if not isinstance(roots, list) or not roots or not all(isinstance(r, CID) for r in roots):
        raise InvalidCAR("CAR header must list one or more root CIDs")
    return list(roots)


def read_sections(stream: BinaryIO) -> Iterator[tuple[CID, bytes]]:
    """The blocks after the header, each verified against its CID."""
    while True:
        length = _read_varint(stream)
        if length is None:
            return
        if length == 0 or length > _MAX_SECTION:
            raise InvalidCAR(f"CAR section of impossible length {length}")
        section = _read_exact(stream, length, "a block")
        try:
            cid, pos = CID.read(section, 0)
        except InvalidCID as exc:
            raise InvalidCAR(f"CAR section has a bad CID: {exc.message}") from exc
        block = section[pos:]
        cid.check_verifiable()
        cid.verify(block, where="CAR block")
        yield cid, block


def read_car(stream: BinaryIO) -> tuple[list[CID], Iterator[tuple[CID, bytes]]]:
    roots = read_header(stream)
    return roots, read_sections(stream)
