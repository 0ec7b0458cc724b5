"""Content identifiers: unsigned varints, multihash, multibase (base58btc, base32) and CIDs.

Only what IPFS file storage needs, written out so that every byte is under our
control (the codecs are a few lines each):

* CIDv0 — a bare sha2-256 multihash ``0x12 0x20 <32 bytes>``, shown in base58btc
  (``Qm…``); its codec is always dag-pb.
* CIDv1 — ``varint(1) ‖ varint(codec) ‖ multihash``, shown in base32 lower case
  with the multibase prefix ``b`` (``bafy…`` for dag-pb, ``bafk…`` for raw).

Parsers raise :class:`~govshare.storage.errors.InvalidCID` (never anything else)
on arbitrary input.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from govshare.storage.errors import BlockCorrupted, InvalidCID, UnsupportedCID

# multicodec codes (https://github.com/multiformats/multicodec/blob/master/table.csv)
RAW = 0x55
DAG_PB = 0x70
DAG_CBOR = 0x71
SHA2_256 = 0x12
IDENTITY = 0x00

CODEC_NAMES = {RAW: "raw", DAG_PB: "dag-pb", DAG_CBOR: "dag-cbor"}

# A varint longer than 9 bytes cannot hold a uint63; the multiformats spec caps it there.
_MAX_VARINT_BYTES = 9
# Identity multihashes embed their data; cap them so a CID stays an identifier.
_MAX_DIGEST = 128


# --- unsigned varint (LEB128, minimal encoding) -----------------------------------------


def encode_varint(value: int) -> bytes:
    """The minimal unsigned-LEB128 encoding of ``value`` (>= 0)."""
    if value < 0:
        raise ValueError("varint must be non-negative")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_varint(buf: bytes | memoryview, offset: int = 0) -> tuple[int, int]:
    """Decode a varint at ``offset``; returns ``(value, new_offset)``.

    Raises ``ValueError`` for truncated, over-long or non-minimal encodings (callers
    turn it into their own typed error)."""
    value = 0
    shift = 0
    for i in range(_MAX_VARINT_BYTES):
        pos = offset + i
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if byte == 0 and i > 0:
                raise ValueError("non-minimal varint")
            return value, pos + 1
        shift += 7
    raise ValueError("varint too long")


# --- base58btc ----------------------------------------------------------------------------

_B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58_ALPHABET)}


def b58encode(data: bytes) -> str:
    zeros = len(data) - len(data.lstrip(b"\0"))
    num = int.from_bytes(data, "big")
    out = []
    while num:
        num, rem = divmod(num, 58)
        out.append(_B58_ALPHABET[rem])
    return "1" * zeros + "".join(reversed(out))


def b58decode(text: str) -> bytes:
    num = 0
    for ch in text:
        idx = _B58_INDEX.get(ch)
        if idx is None:
            raise ValueError(f"invalid base58 character {ch!r}")
        num = num * 58 + idx
    zeros = len(text) - len(text.lstrip("1"))
    body = num.to_bytes((num.bit_length() + 7) // 8, "big") if num else b""
    return b"\0" * zeros + body


# --- base32 (RFC 4648, lower case, no padding) --------------------------------------------

_B32_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
_B32_INDEX = {c: i for i, c in enumerate(_B32_ALPHABET)}


def b32encode(data: bytes) -> str:
    bits = 0
    acc = 0
    out = []
    for byte in data:
        acc = (acc << 8) | byte
        bits += 8
        while bits >= 5:
            bits -= 5
            out.append(_B32_ALPHABET[(acc >> bits) & 31])
    if bits:
        out.append(_B32_ALPHABET[(acc << (5 - bits)) & 31])
    return "".join(out)


def b32decode(text: str) -> bytes:
    bits = 0
    acc = 0
    out = bytearray()
    for ch in text:
        idx = _B32_INDEX.get(ch)
        if idx is None:
            raise ValueError(f"invalid base32 character {ch!r}")
        acc = ((acc << 5) | idx) & 0xFFFF
        bits += 5
        if bits >= 8:
            bits -= 8
            out.append((acc >> bits) & 0xFF)
    # Leftover bits must be zero padding, and fewer than one byte's worth.
    if bits >= 5 or acc & ((1 << bits) - 1):
        raise ValueError("invalid base32 padding")
    return bytes(out)


#: The multibase prefixes a CID string may carry, and their decoders.
_MULTIBASE: dict[str, Callable[[str], bytes]] = {
    "b": b32decode,
    "B": lambda body: b32decode(body.lower()),
    "z": b58decode,
    "f": bytes.fromhex,
}

# --- CID ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CID:
    """A parsed CID. ``multihash`` is the full multihash (code ‖ length ‖ digest)."""

    version: int
    codec: int
    multihash: bytes

    # construction ------------------------------------------------------------------------

    @classmethod
    def for_block(cls, data: bytes, *, codec: int, version: int = 1) -> CID:
        """The sha2-256 CID of ``data`` as a block of ``codec``."""
        mh = bytes([SHA2_256, 32]) + hashlib.sha256(data).digest()
        if version == 0 and codec != DAG_PB:
            raise UnsupportedCID("a CIDv0 can only name a dag-pb block")
        return cls(version, codec, mh)

    @classmethod
    def parse(cls, text: str) -> CID:
        """Parse a CID from its string form (``Qm…`` or multibase ``b``/``B``/``z``/``f``)."""
        if not isinstance(text, str):
            raise InvalidCID("a CID must be given as text")
        text = text.strip()
        if not text:
            raise InvalidCID("empty CID")
        if len(text) > 512:
            raise InvalidCID("CID is too long")
        try:
            if len(text) == 46 and text.startswith("Qm"):
                raw = b58decode(text)
                return cls.from_bytes(raw)
            decode = _MULTIBASE.get(text[0])
            if decode is None:
                raise ValueError("unknown multibase prefix")
            raw = decode(text[1:])
        except ValueError as exc:
            raise InvalidCID(f"{_short(text)} is not a valid CID: {exc}") from exc
        cid = cls.from_bytes(raw)
        if cid.version == 0:
            raise InvalidCID(f"{_short(text)} is not a valid CID: CIDv0 cannot carry a multibase")
        return cid

    @classmethod
    def from_bytes(cls, raw: bytes) -> CID:
        """Parse the binary form; the whole of ``raw`` must be one CID."""
        cid, end = cls.read(raw, 0)
        if end != len(raw):
            raise InvalidCID("trailing bytes after CID")
        return cid

    @classmethod
    def read(cls, buf: bytes | memoryview, offset: int = 0) -> tuple[CID, int]:
        """Read one binary CID at ``offset`` (as in a CAR section); ``(cid, new_offset)``."""
        try:
            if len(buf) - offset >= 2 and buf[offset] == SHA2_256 and buf[offset + 1] == 32:
                end = offset + 34
                if end > len(buf):
                    raise ValueError("truncated CIDv0")
                return cls(0, DAG_PB, bytes(buf[offset:end])), end
            version, pos = decode_varint(buf, offset)
            if version != 1:
                raise ValueError(f"unsupported CID version {version}")
            codec, pos = decode_varint(buf, pos)
            mh_start = pos
            _code, pos = decode_varint(buf, pos)
            length, pos = decode_varint(buf, pos)
            if length > _MAX_DIGEST:
                raise ValueError("multihash digest too long")
            end = pos + length
            if end > len(buf):
                raise ValueError("truncated multihash")
            return cls(1, codec, bytes(buf[mh_start:end])), end
        except ValueError as exc:
            raise InvalidCID(f"invalid binary CID: {exc}") from exc

    # views -------------------------------------------------------------------------------

    @property
    def hash_code(self) -> int:
        return decode_varint(self.multihash, 0)[0]

    @property
    def digest(self) -> bytes:
        _code, pos = decode_varint(self.multihash, 0)
        _length, pos = decode_varint(self.multihash, pos)
        return self.multihash[pos:]

    @property
    def codec_name(self) -> str:
        return CODEC_NAMES.get(self.codec, hex(self.codec))

    def __bytes__(self) -> bytes:
        if self.version == 0:
            return self.multihash
        return encode_varint(1) + encode_varint(self.codec) + self.multihash

    def encode(self) -> str:
        if self.version == 0:
            return b58encode(self.multihash)
        return "b" + b32encode(bytes(self))

    def __str__(self) -> str:
        return self.encode()

    def __repr__(self) -> str:
        return f"CID({self.encode()!r})"

    def to_v1(self) -> CID:
        return CID(1, self.codec, self.multihash)

    # verification ------------------------------------------------------------------------

    def check_verifiable(self) -> None:
        """Raise :class:`UnsupportedCID` unless we can verify blocks named by this CID."""
        code = self.hash_code
        if code == SHA2_256 and len(self.digest) == 32:
            return
        if code == IDENTITY:
            return
        raise UnsupportedCID(f"{self}: only sha2-256 (and identity) multihashes are supported")

    def verify(self, data: bytes, *, where: str = "block") -> None:
        """Raise :class:`BlockCorrupted` unless ``data`` is exactly the block this CID names."""
        self.check_verifiable()
        code = self.hash_code
        ok = (
            hashlib.sha256(data).digest() == self.digest
            if code == SHA2_256
            else bytes(data) == self.digest
        )
        if not ok:
            raise BlockCorrupted(
                f"{where} {self} does not match its hash: the data is corrupted or was tampered"
                " with",
                cid=str(self),
            )


def parse_cid(value: str | CID) -> CID:
    """Accept a CID or its text form."""
    if isinstance(value, CID):
        return value
    return CID.parse(value)


def _short(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:77] + "...")
