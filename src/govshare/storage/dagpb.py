"""dag-pb and UnixFS: the two protobuf layers of an IPFS file, encoded by hand.

dag-pb (https://ipld.io/specs/codecs/dag-pb/spec/)::

    message PBLink { optional bytes Hash = 1; optional string Name = 2; optional uint64 Tsize = 3; }
    message PBNode { repeated PBLink Links = 2; optional bytes Data = 1; }

Canonical bytes put every Link before Data (field 2 before field 1 — the one place
where the field order is not ascending), and the fields of a link in the order
Hash, Name, Tsize. Decoding is strict as the spec asks: no unknown fields, no
repeated singular fields, Links before Data.

UnixFS (https://specs.ipfs.tech/unixfs/)::

    message Data { required DataType Type = 1; optional bytes Data = 2;
                   optional uint64 filesize = 3; repeated uint64 blocksizes = 4;
                   optional uint64 hashType = 5; optional uint64 fanout = 6;
                   optional uint32 mode = 7; optional UnixTime mtime = 8; }

Decoders raise :class:`~govshare.storage.errors.InvalidBlock` (never anything
else) on arbitrary bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from govshare.storage.cid import CID, decode_varint, encode_varint
from govshare.storage.errors import InvalidBlock, InvalidCID

# UnixFS DataType
UNIXFS_RAW = 0
UNIXFS_DIRECTORY = 1
UNIXFS_FILE = 2
UNIXFS_METADATA = 3
UNIXFS_SYMLINK = 4
UNIXFS_HAMT = 5

_VARINT = 0
_LEN = 2
_U64_MAX = (1 << 64) - 1


@dataclass(frozen=True, slots=True)
class PBLink:
    hash: CID
    name: str | None = None
    tsize: int | None = None


@dataclass(frozen=True, slots=True)
class PBNode:
    links: tuple[PBLink, ...] = ()
    data: bytes | None = None


@dataclass(slots=True)
class UnixFSData:
    type: int
    data: bytes | None = None
    filesize: int | None = None
    blocksizes: list[int] = field(default_factory=list)


# --- protobuf primitives ----------------------------------------------------------------


def _key(field_no: int, wire: int) -> bytes:
    return encode_varint((field_no << 3) | wire)


def _len_field(field_no: int, payload: bytes) -> bytes:
    return _key(field_no, _LEN) + encode_varint(len(payload)) + payload


def _varint_field(field_no: int, value: int) -> bytes:
    return _key(field_no, _VARINT) + encode_varint(value)


def _fields(buf: bytes | memoryview, what: str) -> list[tuple[int, int, int | bytes]]:
    """Split a protobuf message into ``(field, wire, value)``; only varint and
    length-delimited wire types are legal in the messages we read."""
    out: list[tuple[int, int, int | bytes]] = []
    pos = 0
    n = len(buf)
    try:
        while pos < n:
            key, pos = decode_varint(buf, pos)
            field_no, wire = key >> 3, key & 7
            if field_no == 0:
                raise InvalidBlock(f"invalid {what}: field number 0")
            if wire == _VARINT:
                value, pos = decode_varint(buf, pos)
                if value > _U64_MAX:
                    raise InvalidBlock(f"invalid {what}: varint overflows 64 bits")
                out.append((field_no, wire, value))
            elif wire == _LEN:
                length, pos = decode_varint(buf, pos)
                end = pos + length
                if end > n:
                    raise InvalidBlock(f"invalid {what}: truncated field {field_no}")
                out.append((field_no, wire, bytes(buf[pos:end])))
                pos = end
            else:
                raise InvalidBlock(f"invalid {what}: unsupported wire type {wire}")
    except ValueError as exc:
        raise InvalidBlock(f"invalid {what}: {exc}") from exc
    return out


# --- dag-pb -------------------------------------------------------------------------------


def encode_pbnode(node: PBNode) -> bytes:
    out = bytearray()
    for link in node.links:
        body = _len_field(1, bytes(link.hash))
        if link.name is not None:
            body += _len_field(2, link.name.encode("utf-8"))
        if link.tsize is not None:
            body += _varint_field(3, link.tsize)
        out += _len_field(2, body)
    if node.data is not None:
        out += _len_field(1, node.data)
    return bytes(out)


def decode_pbnode(block: bytes | memoryview) -> PBNode:
    links: list[PBLink] = []
    data: bytes | None = None
    for field_no, wire, value in _fields(block, "dag-pb node"):
        if field_no == 2 and wire == _LEN:
            if data is not None:
                raise InvalidBlock("invalid dag-pb node: Links after Data")
            assert isinstance(value, bytes)
            links.append(_decode_link(value))
        elif field_no == 1 and wire == _LEN:
            if data is not None:
                raise InvalidBlock("invalid dag-pb node: duplicate Data")
            assert isinstance(value, bytes)
            data = value
        else:
            raise InvalidBlock(f"invalid dag-pb node: unexpected field {field_no}")
    return PBNode(tuple(links), data)


def _decode_link(buf: bytes) -> PBLink:
    hash_: CID | None = None
    name: str | None = None
    tsize: int | None = None
    last = 0
    for field_no, wire, value in _fields(buf, "dag-pb link"):
        if field_no <= last:
            raise InvalidBlock("invalid dag-pb link: fields out of order or repeated")
        last = field_no
        if field_no == 1 and wire == _LEN:
            assert isinstance(value, bytes)
            try:
                hash_ = CID.from_bytes(value)
            except InvalidCID as exc:
                raise InvalidBlock(f"invalid dag-pb link: {exc.message}") from exc
        elif field_no == 2 and wire == _LEN:
            assert isinstance(value, bytes)
            try:
                name = value.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidBlock("invalid dag-pb link: Name is not UTF-8") from exc
        elif field_no == 3 and wire == _VARINT:
            assert isinstance(value, int)
            tsize = value
        else:
            raise InvalidBlock(f"invalid dag-pb link: unexpected field {field_no}")
    if hash_ is None:
        raise InvalidBlock("invalid dag-pb link: missing Hash")
    return PBLink(hash_, name, tsize)


# --- UnixFS -------------------------------------------------------------------------------


def encode_unixfs(d: UnixFSData) -> bytes:
    out = _varint_field(1, d.type)
    if d.data is not None:
        out += _len_field(2, d.data)
    if d.filesize is not None:
        out += _varint_field(3, d.filesize)
    # proto2 repeated scalars are not packed: one key per entry, as Go's protobuf writes them.
    for size in d.blocksizes:
        out += _varint_field(4, size)
    return out


def decode_unixfs(buf: bytes | memoryview) -> UnixFSData:
    type_: int | None = None
    data: bytes | None = None
    filesize: int | None = None
    blocksizes: list[int] = []
    for field_no, wire, value in _fields(buf, "UnixFS data"):
        if field_no == 1 and wire == _VARINT:
            assert isinstance(value, int)
            type_ = value
        elif field_no == 2 and wire == _LEN:
            assert isinstance(value, bytes)
            data = value
        elif field_no == 3 and wire == _VARINT:
            assert isinstance(value, int)
            filesize = value
        elif field_no == 4 and wire == _VARINT:
            assert isinstance(value, int)
            blocksizes.append(value)
        elif field_no == 4 and wire == _LEN:
            assert isinstance(value, bytes)
            blocksizes.extend(_packed_varints(value))
        elif field_no in (5, 6, 7, 8):
            continue  # hashType, fanout, mode, mtime: not needed to read file bytes
        else:
            raise InvalidBlock(f"invalid UnixFS data: unexpected field {field_no}")
    if type_ is None:
        raise InvalidBlock("invalid UnixFS data: missing Type")
    return UnixFSData(type_, data, filesize, blocksizes)


def _packed_varints(buf: bytes) -> list[int]:
    out = []
    pos = 0
    try:
        while pos < len(buf):
            value, pos = decode_varint(buf, pos)
            out.append(value)
    except ValueError as exc:
        raise InvalidBlock(f"invalid UnixFS data: {exc}") from exc
    return out
