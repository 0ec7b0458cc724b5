"""Envelope encryption: one fresh data key (DEK) per payload, streamed in authenticated segments.

Construction
============
The segment layer is Tink's streaming AEAD **AES-GCM-HKDF** (``AES256_GCM_HKDF_1MB``
by default), itself an instance of the STREAM construction of Hoang, Reyhanitabar,
Rogaway and Vizár (CRYPTO 2015): a per-payload segment key derived with HKDF from the
DEK and a random salt, and a per-segment nonce ``nonce_prefix ‖ counter ‖ last_flag``.
It is implemented here with pyca ``cryptography`` (AES-256-GCM, HKDF-SHA256) and is
byte-compatible with Tink: the bytes after the govshare preamble are a Tink ciphertext
whose associated data is the preamble (a vector made by Tink 1.16 is in
``tests/vectors/envelope_v1.json``). govshare adds a preamble with a magic, a version,
the segment size, a **key commitment** (AES-GCM alone is not key-committing) and a
header MAC.

Binary format, version 1 (all integers big-endian)::

    offset size  field
    0      4     magic "GSEV"
    4      1     version = 1
    5      1     suite = 1 (AES-256-GCM segments, HKDF-SHA256; Tink AES-GCM-HKDF streaming)
    6      4     S, ciphertext segment size (64 .. 64 MiB; default 1 MiB = 1048576)
    10     32    commitment  = HKDF-SHA256(ikm=DEK, salt=∅, info="govshare/envelope/v1/commitment")
    42     32    header_tag  = HMAC-SHA256(K_hdr, bytes[0:42] ‖ bytes[74:114]), where
                   K_hdr = HKDF-SHA256(ikm=DEK, salt=∅, info="govshare/envelope/v1/header-mac")
    ---- Tink AES-GCM-HKDF stream; associated data AD = bytes[0:42] ----
    74     1     Tink header length = 40
    75     32    salt (random)
    107    7     nonce prefix (random)
    114    …     segments

    K_seg      = HKDF-SHA256(ikm=DEK, salt=salt, info=AD), 32 bytes
    nonce_i    = nonce_prefix ‖ uint32(i) ‖ (0x01 if segment i is the last else 0x00)
    segment_i  = AES-256-GCM(K_seg, nonce_i, plaintext_i, aad=∅)   (ciphertext ‖ 16-byte tag)

Segment 0 carries ``S - 40 - 16`` plaintext bytes (the Tink header shares its
ciphertext segment), every other segment ``S - 16``; the last segment carries
0 .. that many, and an empty payload is one empty last segment. At most 2^32 segments.

What is detected, and where
===========================
* wrong DEK → :class:`~govshare.crypto.errors.KeyCommitmentMismatch`, before any segment;
* any change in the header → ``HeaderTampered`` (or ``KeyCommitmentMismatch``,
  ``EnvelopeMalformed``), before any segment;
* a flipped byte, reordered or duplicated segment → ``SegmentAuthFailed``
  (the counter is in the nonce);
* a cut at a segment boundary → ``EnvelopeTruncated`` (no segment carries the last flag);
* bytes after the last segment → ``EnvelopeTrailingData``.

Releasing plaintext
===================
Each segment is released only after its own tag verified, but a stream is only
known to be *complete* once its last segment verified. So:

* :func:`decrypt_to_file` writes to a temporary file beside the destination and
  renames it into place only after the last segment verified **and** (optionally) the
  plaintext's SHA-256 equals the expected (anchored) one; on any error the temporary
  file is deleted and nothing appears at the destination. This is what the broker uses.
* :func:`verify` does the same checks and writes nothing.
* :func:`decrypt_bytes` returns all of the plaintext or raises (memory-bound; small payloads).
* :func:`iter_decrypt` yields verified segments as they come; a later segment can
  still fail, so a caller must not act on what it got until the iterator finished.

Encryption reads the source once, in constant memory (two segments), and returns the
DEK, ``sha256(plaintext)``, and the plaintext and ciphertext sizes.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import os
import struct
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from govshare.crypto._io import ChunkReader, Source, discard, fsync_dir, temp_beside
from govshare.crypto.errors import (
    EnvelopeMalformed,
    EnvelopeTrailingData,
    EnvelopeTruncated,
    EnvelopeUnsupported,
    HeaderTampered,
    InvalidKey,
    KeyCommitmentMismatch,
    PlaintextHashMismatch,
    SegmentAuthFailed,
)
from govshare.errors import InputError

__all__ = [
    "DEFAULT_SEGMENT_SIZE",
    "DEK_SIZE",
    "HEADER_SIZE",
    "MAX_SEGMENT_SIZE",
    "MIN_SEGMENT_SIZE",
    "DecryptResult",
    "EncryptResult",
    "EncryptingReader",
    "EnvelopeHeader",
    "ciphertext_size",
    "decrypt_bytes",
    "decrypt_to_file",
    "encrypt_bytes",
    "encrypt_stream",
    "iter_decrypt",
    "new_dek",
    "parse_header",
    "verify",
]

MAGIC = b"GSEV"
VERSION = 1
SUITE_AES256_GCM_HKDF = 1

DEK_SIZE = 32
TAG_SIZE = 16
SALT_SIZE = 32
NONCE_PREFIX_SIZE = 7
TINK_HEADER_SIZE = 1 + SALT_SIZE + NONCE_PREFIX_SIZE  # 40
PREAMBLE_SIZE = 4 + 1 + 1 + 4 + 32  # the part bound as Tink's associated data: 42
HEADER_TAG_SIZE = 32
HEADER_SIZE = PREAMBLE_SIZE + HEADER_TAG_SIZE + TINK_HEADER_SIZE  # 114

DEFAULT_SEGMENT_SIZE = 1 << 20  # Tink's AES256_GCM_HKDF_1MB
MIN_SEGMENT_SIZE = 64  # segment 0 must still carry plaintext after the 40-byte Tink header
MAX_SEGMENT_SIZE = 64 << 20  # bounds what a hostile header can make a reader allocate
MAX_SEGMENTS = 1 << 32

_LABEL = b"govshare/envelope/v1/"
_HEADER_FMT = struct.Struct(">4sBBI32s32sB32s7s")
assert _HEADER_FMT.size == HEADER_SIZE

# Randomness comes through here so tests can make known-answer vectors; nothing else swaps it.
_urandom: Callable[[int], bytes] = os.urandom


def new_dek() -> bytes:
    """A fresh random 32-byte data key."""
    return _urandom(DEK_SIZE)


def ciphertext_size(plaintext_size: int, segment_size: int = DEFAULT_SEGMENT_SIZE) -> int:
    """The exact envelope size for a payload of ``plaintext_size`` bytes."""
    _check_segment_size(segment_size)
    if plaintext_size < 0:
        raise InputError("A payload size cannot be negative.")
    first, full = _plain_sizes(segment_size)
    # Segment 0 always exists; every further (possibly partial) segment adds a tag.
    segments = 1 if plaintext_size <= first else 1 + -(-(plaintext_size - first) // full)
    return HEADER_SIZE + plaintext_size + segments * TAG_SIZE


@dataclass(frozen=True)
class EnvelopeHeader:
    """The parsed, not yet authenticated, fixed-size envelope header."""

    version: int
    suite: int
    segment_size: int
    commitment: bytes
    header_tag: bytes
    salt: bytes
    nonce_prefix: bytes
    raw: bytes = field(repr=False)

    @property
    def associated_data(self) -> bytes:
        """The preamble, bound into the segment key as Tink's associated data."""
        return self.raw[:PREAMBLE_SIZE]

    @property
    def mac_input(self) -> bytes:
        return self.raw[:PREAMBLE_SIZE] + self.raw[PREAMBLE_SIZE + HEADER_TAG_SIZE :]


def parse_header(data: bytes) -> EnvelopeHeader:
    """Parse the first :data:`HEADER_SIZE` bytes of an envelope.

    Whatever the input, raises only ``EnvelopeMalformed`` (or its subclass
    ``EnvelopeUnsupported``) or ``EnvelopeTruncated``. Authenticity is not
    checked here: that needs the DEK (see :func:`verify`).
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise EnvelopeMalformed("An envelope header must be bytes.")
    data = bytes(data)
    if len(data) < len(MAGIC) and MAGIC.startswith(data):
        raise EnvelopeTruncated("The envelope ends inside its header.", size=len(data))
    if data[:4] != MAGIC:
        raise EnvelopeMalformed(
            "This is not a govshare envelope (bad magic); was the blob stored unencrypted?"
        )
    if len(data) < HEADER_SIZE:
        raise EnvelopeTruncated(
            "The envelope ends inside its header.", size=len(data), header_size=HEADER_SIZE
        )
    (_magic, version, suite, seg, commitment, tag, tink_len, salt, prefix) = _HEADER_FMT.unpack(
        data[:HEADER_SIZE]
    )
    if version != VERSION:
        raise EnvelopeUnsupported(
            f"Envelope version {version} is not supported by this govshare (reads {VERSION}).",
            version=version,
        )
    if suite != SUITE_AES256_GCM_HKDF:
        raise EnvelopeUnsupported(f"Envelope suite {suite} is not supported.", suite=suite)
    if not MIN_SEGMENT_SIZE <= seg <= MAX_SEGMENT_SIZE:
        raise EnvelopeMalformed("The envelope's segment size is out of range.", segment_size=seg)
    if tink_len != TINK_HEADER_SIZE:
        raise EnvelopeMalformed("The envelope's stream header has the wrong length.")
    return EnvelopeHeader(
        version=version,
        suite=suite,
        segment_size=seg,
        commitment=commitment,
        header_tag=tag,
        salt=salt,
        nonce_prefix=prefix,
        raw=data[:HEADER_SIZE],
    )


@dataclass(frozen=True)
class EncryptResult:
    """What :func:`encrypt_stream` learned. ``dek`` is secret and kept out of ``repr``."""

    dek: bytes = field(repr=False)
    commitment: bytes
    plaintext_sha256: bytes
    plaintext_size: int
    ciphertext_size: int
    segment_size: int


@dataclass(frozen=True)
class DecryptResult:
    """What a completed, fully verified decryption learned."""

    plaintext_sha256: bytes
    plaintext_size: int
    ciphertext_size: int
    segments: int


# ---------------------------------------------------------------------------- keys


def _hkdf(ikm: bytes, salt: bytes | None, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)


def _commitment(dek: bytes) -> bytes:
    return _hkdf(dek, None, _LABEL + b"commitment")


def _header_tag(dek: bytes, mac_input: bytes) -> bytes:
    key = _hkdf(dek, None, _LABEL + b"header-mac")
    return hmac.new(key, mac_input, hashlib.sha256).digest()


def _segment_key(dek: bytes, salt: bytes, associated_data: bytes) -> bytes:
    # Exactly Tink's AesGcmHkdfStreaming derivation (HKDF-SHA256, derived key size 32).
    return _hkdf(dek, salt, associated_data)


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    return prefix + index.to_bytes(4, "big") + (b"\x01" if last else b"\x00")


def _plain_sizes(segment_size: int) -> tuple[int, int]:
    """Plaintext bytes in segment 0, and in every later full segment."""
    return segment_size - TINK_HEADER_SIZE - TAG_SIZE, segment_size - TAG_SIZE


def _check_segment_size(segment_size: int) -> None:
    if not isinstance(segment_size, int) or not (
        MIN_SEGMENT_SIZE <= segment_size <= MAX_SEGMENT_SIZE
    ):
        raise InputError(
            f"The segment size must be between {MIN_SEGMENT_SIZE} and {MAX_SEGMENT_SIZE} bytes."
        )


def _check_dek(dek: object) -> bytes:
    if not isinstance(dek, bytes | bytearray) or len(dek) != DEK_SIZE:
        raise InvalidKey(f"A data key must be {DEK_SIZE} bytes.")
    return bytes(dek)


def _build_header(dek: bytes, segment_size: int, salt: bytes, nonce_prefix: bytes) -> bytes:
    preamble = MAGIC + bytes([VERSION, SUITE_AES256_GCM_HKDF])
    preamble += segment_size.to_bytes(4, "big") + _commitment(dek)
    tink_header = bytes([TINK_HEADER_SIZE]) + salt + nonce_prefix
    tag = _header_tag(dek, preamble + tink_header)
    return preamble + tag + tink_header


# ---------------------------------------------------------------------------- encrypt


def _encrypt_chunks(
    src: Source, dek: bytes | None, segment_size: int
) -> Generator[bytes, None, EncryptResult]:
    _check_segment_size(segment_size)
    dek = new_dek() if dek is None else _check_dek(dek)
    reader = ChunkReader(src)
    salt = _urandom(SALT_SIZE)
    prefix = _urandom(NONCE_PREFIX_SIZE)
    header = _build_header(dek, segment_size, salt, prefix)
    aead = AESGCM(_segment_key(dek, salt, header[:PREAMBLE_SIZE]))
    sha = hashlib.sha256()
    out_size = len(header)
    yield header

    first, full = _plain_sizes(segment_size)
    current = reader.read_exact(first)
    index = 0
    while True:
        # Read one segment ahead: only then do we know whether this one is the last.
        following = (
            reader.read_exact(full) if len(current) == (first if index == 0 else full) else b""
        )
        last = not following
        if index >= MAX_SEGMENTS:
            raise InputError("The payload is too large for one envelope.")
        sha.update(current)
        segment = aead.encrypt(_nonce(prefix, index, last), current, None)
        out_size += len(segment)
        yield segment
        if last:
            break
        current = following
        index += 1
    return EncryptResult(
        dek=dek,
        commitment=header[10:42],
        plaintext_sha256=sha.digest(),
        plaintext_size=reader.consumed,
        ciphertext_size=out_size,
        segment_size=segment_size,
    )


def encrypt_stream(
    src: Source,
    dst: BinaryIO,
    *,
    dek: bytes | None = None,
    segment_size: int = DEFAULT_SEGMENT_SIZE,
) -> EncryptResult:
    """Encrypt everything readable from ``src`` into ``dst``, in constant memory.

    ``src`` is a binary file object or an iterable of byte chunks. A fresh DEK
    is drawn unless one is given (a DEK must never encrypt two payloads). Returns
    the DEK, ``sha256(plaintext)`` and both sizes.
    """
    gen = _encrypt_chunks(src, dek, segment_size)
    while True:
        try:
            dst.write(next(gen))
        except StopIteration as stop:
            result: EncryptResult = stop.value
            return result


def encrypt_bytes(
    data: bytes, *, dek: bytes | None = None, segment_size: int = DEFAULT_SEGMENT_SIZE
) -> tuple[bytes, EncryptResult]:
    """Encrypt an in-memory payload; returns ``(envelope, result)``."""
    out = io.BytesIO()
    result = encrypt_stream(io.BytesIO(data), out, dek=dek, segment_size=segment_size)
    return out.getvalue(), result


class EncryptingReader(io.RawIOBase):
    """A readable binary stream of the envelope of ``src``, produced as it is read.

    Hand it to anything that reads a stream (a blob store's ``put``, an HTTP
    upload). Once it has been read to the end, :attr:`result` holds the
    :class:`EncryptResult`.
    """

    def __init__(
        self, src: Source, *, dek: bytes | None = None, segment_size: int = DEFAULT_SEGMENT_SIZE
    ) -> None:
        super().__init__()
        _check_segment_size(segment_size)  # fail here, not at the first read
        if dek is not None:
            _check_dek(dek)
        self._gen = _encrypt_chunks(src, dek, segment_size)
        self._pending = b""
        self._pos = 0
        self._result: EncryptResult | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        while self._pos >= len(self._pending):
            if self._result is not None:
                return 0
            try:
                self._pending, self._pos = next(self._gen), 0
            except StopIteration as stop:
                self._result = stop.value
                self._pending, self._pos = b"", 0
                return 0
        n = min(len(view), len(self._pending) - self._pos)
        view[:n] = self._pending[self._pos : self._pos + n]
        self._pos += n
        return n

    @property
    def result(self) -> EncryptResult:
        """The encryption's result; only once the stream has been read to its end."""
        if self._result is None:
            raise InputError("The envelope has not been read to its end yet.")
        return self._result

    def __repr__(self) -> str:
        return f"<EncryptingReader done={self._result is not None}>"


# ---------------------------------------------------------------------------- decrypt


def _open_header(reader: ChunkReader, dek: bytes) -> tuple[EnvelopeHeader, AESGCM]:
    raw = reader.read_exact(HEADER_SIZE)
    header = parse_header(raw)
    if not hmac.compare_digest(_commitment(dek), header.commitment):
        raise KeyCommitmentMismatch(
            "This data key does not belong to this envelope (key commitment mismatch)."
        )
    if not hmac.compare_digest(_header_tag(dek, header.mac_input), header.header_tag):
        raise HeaderTampered("The envelope header has been altered (header MAC mismatch).")
    return header, AESGCM(_segment_key(dek, header.salt, header.associated_data))


def _opens(aead: AESGCM, nonce: bytes, segment: bytes) -> bool:
    try:
        aead.decrypt(nonce, segment, None)
    except InvalidTag:
        return False
    return True


def _decrypt_chunks(
    src: Source, dek: bytes, stats: dict[str, int] | None = None
) -> Iterator[bytes]:
    dek = _check_dek(dek)
    reader = ChunkReader(src)
    header, aead = _open_header(reader, dek)
    first_ct, full_ct = header.segment_size - TINK_HEADER_SIZE, header.segment_size
    prefix = header.nonce_prefix
    current = reader.read_exact(first_ct)
    index = 0
    plain = 0
    while True:
        expected = first_ct if index == 0 else full_ct
        following = reader.read_exact(full_ct) if len(current) == expected else b""
        last = not following
        if len(current) < TAG_SIZE:
            raise EnvelopeTruncated("The envelope ends in the middle of a segment.", segment=index)
        if index >= MAX_SEGMENTS:
            raise EnvelopeMalformed("The envelope has more segments than the format allows.")
        try:
            plaintext = aead.decrypt(_nonce(prefix, index, last), current, None)
        except InvalidTag:
            # Tell a clean cut or an appended tail from a corrupted segment, for the message.
            if last and _opens(aead, _nonce(prefix, index, False), current):
                raise EnvelopeTruncated(
                    "The envelope was cut short: its final segment is missing.", segment=index
                ) from None
            if not last and _opens(aead, _nonce(prefix, index, True), current):
                raise EnvelopeTrailingData(
                    "Unexpected bytes follow the envelope's final segment.", segment=index
                ) from None
            raise SegmentAuthFailed(
                f"Segment {index} of the envelope failed authentication "
                "(altered, reordered or duplicated data).",
                segment=index,
            ) from None
        plain += len(plaintext)
        yield plaintext
        if last:
            break
        current = following
        index += 1
    if stats is not None:
        stats.update(segments=index + 1, plaintext_size=plain, ciphertext_size=reader.consumed)


def iter_decrypt(src: Source, dek: bytes) -> Iterator[bytes]:
    """Yield the plaintext segment by segment, each only after its own tag verified.

    A yielded chunk is authentic and in its place, but the *payload* is only
    complete and authentic once the iterator ends without raising: truncation
    is detected at the end. Do not show, hash-compare or act on the chunks
    before that; use :func:`decrypt_to_file` or :func:`verify` when all-or-
    nothing is needed (it always is before a clerk sees a record).
    """
    return _decrypt_chunks(src, dek)


def _normalise_sha256(expected: bytes | str | None) -> bytes | None:
    if expected is None:
        return None
    if isinstance(expected, str):
        text = expected.removeprefix("0x")
        try:
            expected = bytes.fromhex(text)
        except ValueError:
            raise InputError("The expected SHA-256 is not a hex string.") from None
    if not isinstance(expected, bytes | bytearray) or len(expected) != 32:
        raise InputError("The expected SHA-256 must be 32 bytes (or 64 hex digits).")
    return bytes(expected)


def _run(
    src: Source,
    dek: bytes,
    expected_sha256: bytes | None,
    sink: Callable[[bytes], object] | None,
) -> DecryptResult:
    sha = hashlib.sha256()
    stats: dict[str, int] = {}
    for chunk in _decrypt_chunks(src, dek, stats):
        sha.update(chunk)
        if sink is not None:
            sink(chunk)
    digest = sha.digest()
    if expected_sha256 is not None and not hmac.compare_digest(digest, expected_sha256):
        raise PlaintextHashMismatch(
            "The decrypted payload is not the anchored record (SHA-256 mismatch).",
            expected="0x" + expected_sha256.hex(),
            actual="0x" + digest.hex(),
        )
    return DecryptResult(
        plaintext_sha256=digest,
        plaintext_size=stats["plaintext_size"],
        ciphertext_size=stats["ciphertext_size"],
        segments=stats["segments"],
    )


def verify(src: Source, dek: bytes, *, expected_sha256: bytes | str | None = None) -> DecryptResult:
    """Decrypt and check everything, keeping nothing: the verify-only pass."""
    return _run(src, dek, _normalise_sha256(expected_sha256), None)


def decrypt_to_file(
    src: Source,
    dst: str | os.PathLike[str],
    dek: bytes,
    *,
    expected_sha256: bytes | str | None = None,
    overwrite: bool = False,
    durable: bool = True,
) -> DecryptResult:
    """Decrypt ``src`` to the file ``dst``, all or nothing.

    Plaintext goes to a 0600 temporary file beside ``dst``; only after the last
    segment verified, and ``sha256(plaintext)`` equals ``expected_sha256`` when
    given (the hash anchored on chain), is it fsynced and renamed to ``dst``. On
    any error (including an I/O error from ``src``) the temporary file is removed
    and ``dst`` is untouched. Returns the plaintext's SHA-256 and sizes.
    ``durable=False`` skips the fsyncs, for a file read once and deleted (an
    answer streamed from the spool): the rename still makes it all or nothing.
    """
    expected = _normalise_sha256(expected_sha256)
    dest = Path(dst)
    if dest.exists() and not overwrite:
        raise InputError(f"{dest.name} already exists; pass overwrite=True to replace it.")
    if not dest.parent.is_dir():
        raise InputError(f"The folder for {dest.name} does not exist.")
    fh, tmp = temp_beside(dest)
    try:
        with fh:
            result = _run(src, dek, expected, fh.write)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, dest)
        else:
            try:
                os.link(tmp, dest)
            except FileExistsError:
                raise InputError(
                    f"{dest.name} appeared while decrypting; nothing was overwritten."
                ) from None
            except OSError:
                os.replace(tmp, dest)
            else:
                tmp.unlink()
    except BaseException:
        discard(tmp)
        raise
    if durable:
        fsync_dir(dest.parent)
    return result


def decrypt_bytes(
    envelope: bytes, dek: bytes, *, expected_sha256: bytes | str | None = None
) -> bytes:
    """Decrypt an in-memory envelope; returns the whole plaintext or raises."""
    parts: list[bytes] = []
    _run(io.BytesIO(envelope), dek, _normalise_sha256(expected_sha256), parts.append)
    return b"".join(parts)
