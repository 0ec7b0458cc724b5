"""A small, strict dag-cbor codec: enough for CAR headers and for following the
links of dag-cbor blocks (https://ipld.io/specs/codecs/dag-cbor/spec/).

Decoding accepts the data model (ints, bytes, text, lists, maps with text keys,
tag 42 links, true/false/null, 64-bit floats) with bounds on nesting and sizes,
and raises :class:`~govshare.storage.errors.InvalidBlock` on anything else.
Encoding is canonical: shortest integer heads, map keys sorted by length then bytes.
"""

from __future__ import annotations

import struct
from typing import Any

from govshare.storage.cid import CID
from govshare.storage.errors import InvalidBlock, InvalidCID

_MAX_DEPTH = 64
_CID_TAG = 42


def encode(value: Any) -> bytes:
    out = bytearray()
    _enc(value, out)
    return bytes(out)


def _head(major: int, n: int, out: bytearray) -> None:
    if n < 24:
        out.append((major << 5) | n)
    elif n < 1 << 8:
        out += bytes([(major << 5) | 24, n])
    elif n < 1 << 16:
        out += bytes([(major << 5) | 25]) + n.to_bytes(2, "big")
    elif n < 1 << 32:
        out += bytes([(major << 5) | 26]) + n.to_bytes(4, "big")
    else:
        out += bytes([(major << 5) | 27]) + n.to_bytes(8, "big")


def _enc(value: Any, out: bytearray) -> None:  # noqa: C901 — the dag-cbor type table, one branch per kind
    if value is False:
        out.append(0xF4)
    elif value is True:
        out.append(0xF5)
    elif value is None:
        out.append(0xF6)
    elif isinstance(value, int):
        if value >= 0:
            _head(0, value, out)
        else:
            _head(1, -1 - value, out)
    elif isinstance(value, CID):
        _head(6, _CID_TAG, out)
        raw = b"\0" + bytes(value)
        _head(2, len(raw), out)
        out += raw
    elif isinstance(value, (bytes, bytearray)):
        _head(2, len(value), out)
        out += value
    elif isinstance(value, str):
        raw = value.encode("utf-8")
        _head(3, len(raw), out)
        out += raw
    elif isinstance(value, (list, tuple)):
        _head(4, len(value), out)
        for item in value:
            _enc(item, out)
    elif isinstance(value, dict):
        keys = sorted(value, key=lambda k: (len(k.encode()), k.encode()))
        _head(5, len(keys), out)
        for key in keys:
            _enc(str(key), out)
            _enc(value[key], out)
    elif isinstance(value, float):
        out.append(0xFB)
        out += struct.pack(">d", value)
    else:
        raise TypeError(f"cannot encode {type(value).__name__} as dag-cbor")


def decode(data: bytes | memoryview) -> Any:
    """Decode exactly one dag-cbor item spanning all of ``data``."""
    value, pos = _dec(data, 0, 0)
    if pos != len(data):
        raise InvalidBlock("invalid dag-cbor: trailing bytes")
    return value


def _read_head(buf: bytes | memoryview, pos: int) -> tuple[int, int, int, int]:
    """``(major, info, argument, new_pos)``."""
    if pos >= len(buf):
        raise InvalidBlock("invalid dag-cbor: truncated")
    first = buf[pos]
    major, info = first >> 5, first & 31
    pos += 1
    if info < 24:
        return major, info, info, pos
    width = {24: 1, 25: 2, 26: 4, 27: 8}.get(info)
    if width is None:
        raise InvalidBlock(
            "invalid dag-cbor: indefinite lengths and reserved values are not allowed"
        )
    if pos + width > len(buf):
        raise InvalidBlock("invalid dag-cbor: truncated")
    arg = int.from_bytes(bytes(buf[pos : pos + width]), "big")
    return major, info, arg, pos + width


def _dec(buf: bytes | memoryview, pos: int, depth: int) -> tuple[Any, int]:
    if depth > _MAX_DEPTH:
        raise InvalidBlock("invalid dag-cbor: nested too deeply")
    major, info, arg, pos = _read_head(buf, pos)
    if major == 0:
        return arg, pos
    if major == 1:
        return -1 - arg, pos
    if major in (2, 3):
        return _dec_string(buf, pos, arg, text=major == 3)
    if major == 4:
        return _dec_list(buf, pos, arg, depth)
    if major == 5:
        return _dec_map(buf, pos, arg, depth)
    if major == 6:
        return _dec_link(buf, pos, arg, depth)
    return _dec_simple(info, arg), pos  # major 7


def _dec_string(buf: bytes | memoryview, pos: int, length: int, *, text: bool) -> tuple[Any, int]:
    end = pos + length
    if end > len(buf):
        raise InvalidBlock("invalid dag-cbor: truncated string")
    raw = bytes(buf[pos:end])
    if not text:
        return raw, end
    try:
        return raw.decode("utf-8"), end
    except UnicodeDecodeError as exc:
        raise InvalidBlock("invalid dag-cbor: text is not UTF-8") from exc


def _dec_list(buf: bytes | memoryview, pos: int, count: int, depth: int) -> tuple[Any, int]:
    if count > len(buf) - pos:  # every item takes at least one byte
        raise InvalidBlock("invalid dag-cbor: list longer than its block")
    items = []
    for _ in range(count):
        item, pos = _dec(buf, pos, depth + 1)
        items.append(item)
    return items, pos


def _dec_map(buf: bytes | memoryview, pos: int, count: int, depth: int) -> tuple[Any, int]:
    if count > len(buf) - pos:
        raise InvalidBlock("invalid dag-cbor: map longer than its block")
    result: dict[str, Any] = {}
    for _ in range(count):
        key, pos = _dec(buf, pos, depth + 1)
        if not isinstance(key, str):
            raise InvalidBlock("invalid dag-cbor: map keys must be text")
        if key in result:
            raise InvalidBlock("invalid dag-cbor: duplicate map key")
        result[key], pos = _dec(buf, pos, depth + 1)
    return result, pos


def _dec_link(buf: bytes | memoryview, pos: int, tag: int, depth: int) -> tuple[Any, int]:
    if tag != _CID_TAG:
        raise InvalidBlock(f"invalid dag-cbor: tag {tag} is not allowed")
    raw, pos = _dec(buf, pos, depth + 1)
    if not isinstance(raw, bytes) or not raw or raw[0] != 0:
        raise InvalidBlock("invalid dag-cbor: a link must be bytes starting with 0x00")
    try:
        return CID.from_bytes(raw[1:]), pos
    except InvalidCID as exc:
        raise InvalidBlock(f"invalid dag-cbor link: {exc.message}") from exc


def _dec_simple(info: int, arg: int) -> Any:
    if info == 20:
        return False
    if info == 21:
        return True
    if info == 22:
        return None
    if info == 27:
        return struct.unpack(">d", arg.to_bytes(8, "big"))[0]
    raise InvalidBlock("invalid dag-cbor: unsupported simple value or float width")


def links(value: Any) -> list[CID]:
    """Every link in a decoded dag-cbor value, in document (map key) order."""
    out: list[CID] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, CID):
            out.append(item)
        elif isinstance(item, list):
            stack.extend(reversed(item))
        elif isinstance(item, dict):
            stack.extend(reversed(list(item.values())))
    return out
