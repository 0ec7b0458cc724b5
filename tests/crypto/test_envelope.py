"""Envelope encryption: round trips, every tampering case, all-or-nothing release, properties."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from govshare.crypto import envelope
from govshare.crypto.envelope import (
    HEADER_SIZE,
    EncryptingReader,
    decrypt_bytes,
    decrypt_to_file,
    encrypt_bytes,
    encrypt_stream,
    iter_decrypt,
    verify,
)
from govshare.crypto.errors import (
    EnvelopeTrailingData,
    EnvelopeTruncated,
    InvalidKey,
    KeyCommitmentMismatch,
    PlaintextHashMismatch,
    SegmentAuthFailed,
)
from govshare.errors import DecryptionError, GovShareError, InputError, IntegrityError

from .vectorgen import flip, join, segments

S = 64  # smallest segment size: 8 plaintext bytes in segment 0, 48 in the others
FIRST, FULL = S - 56, S - 16


def _pt(n: int) -> bytes:
    return os.urandom(n)


def _chunks(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


# ------------------------------------------------------------------ round trips


@pytest.mark.parametrize(
    "n",
    [0, 1, FIRST - 1, FIRST, FIRST + 1, FIRST + FULL - 1, FIRST + FULL, FIRST + FULL + 1,
     FIRST + 3 * FULL, 1000],
)  # fmt: skip
def test_round_trip_at_segment_edges(n: int) -> None:
    data = _pt(n)
    blob, result = encrypt_bytes(data, segment_size=S)
    assert result.plaintext_size == n
    assert result.ciphertext_size == len(blob) == envelope.ciphertext_size(n, S)
    assert result.plaintext_sha256 == hashlib.sha256(data).digest()
    assert decrypt_bytes(blob, result.dek, expected_sha256=result.plaintext_sha256) == data
    assert b"".join(iter_decrypt(io.BytesIO(blob), result.dek)) == data


def test_default_segment_size_multi_segment() -> None:
    data = _pt(envelope.DEFAULT_SEGMENT_SIZE * 2 + 12345)
    blob, result = encrypt_bytes(data)
    assert len(envelope.parse_header(blob).raw) == HEADER_SIZE
    assert len(segments(blob, envelope.DEFAULT_SEGMENT_SIZE)) == 3
    assert decrypt_bytes(blob, result.dek) == data


def test_empty_payload_is_one_empty_final_segment() -> None:
    blob, result = encrypt_bytes(b"", segment_size=S)
    assert len(blob) == HEADER_SIZE + 16
    assert list(iter_decrypt(io.BytesIO(blob), result.dek)) == [b""]


def test_fresh_dek_and_randomness_per_payload() -> None:
    a, ra = encrypt_bytes(b"same", segment_size=S)
    b, rb = encrypt_bytes(b"same", segment_size=S)
    assert ra.dek != rb.dek and a != b
    # Even a (mis)reused DEK gets a fresh salt, hence a fresh segment key.
    c, _ = encrypt_bytes(b"same", dek=ra.dek, segment_size=S)
    assert envelope.parse_header(a).salt != envelope.parse_header(c).salt


def test_sources_file_and_iterable_and_reader() -> None:
    data = _pt(777)
    out = io.BytesIO()
    result = encrypt_stream(_chunks(data, 13), out, segment_size=S)
    blob = out.getvalue()
    # An iterable of odd-sized chunks (like an HTTP body) decrypts the same as a file.
    assert verify(_chunks(blob, 7), result.dek).plaintext_sha256 == result.plaintext_sha256
    reader = EncryptingReader(io.BytesIO(data), segment_size=S)
    with pytest.raises(InputError):
        _ = reader.result
    blob2 = reader.read()
    assert reader.read() == b""
    assert decrypt_bytes(blob2, reader.result.dek) == data
    assert "dek" not in repr(reader.result) and reader.result.dek.hex() not in repr(reader.result)


def test_encrypting_reader_small_reads() -> None:
    data = _pt(300)
    reader = EncryptingReader(io.BytesIO(data), segment_size=S)
    parts = []
    while chunk := reader.read(5):
        parts.append(chunk)
    assert decrypt_bytes(b"".join(parts), reader.result.dek) == data


def test_bad_arguments() -> None:
    with pytest.raises(InputError):
        encrypt_bytes(b"x", segment_size=63)
    with pytest.raises(InputError):
        encrypt_bytes(b"x", segment_size=envelope.MAX_SEGMENT_SIZE + 1)
    with pytest.raises(InvalidKey):
        encrypt_bytes(b"x", dek=b"short")
    with pytest.raises(InvalidKey):
        EncryptingReader(io.BytesIO(b"x"), dek=b"short")
    blob, _ = encrypt_bytes(b"x", segment_size=S)
    with pytest.raises(InvalidKey):
        decrypt_bytes(blob, b"\x00" * 31)
    with pytest.raises(InputError):
        verify(io.BytesIO(blob), bytes(32), expected_sha256="zz")
    with pytest.raises(TypeError):
        verify(blob, bytes(32))  # type: ignore[arg-type]  # bytes is not a stream


# ------------------------------------------------------------------ tampering

DATA = bytes(range(100))  # segments of 8, 48, 44 bytes: 262 bytes of envelope


@pytest.fixture(scope="module")
def small() -> tuple[bytes, bytes, bytes]:
    blob, result = encrypt_bytes(DATA, segment_size=S)
    assert len(segments(blob, S)) == 3
    return blob, result.dek, result.plaintext_sha256


def test_every_flipped_byte_is_rejected_and_nothing_is_released(
    small: tuple[bytes, bytes, bytes], tmp_path: Path
) -> None:
    blob, dek, digest = small
    dst = tmp_path / "out.bin"
    for i in range(len(blob)):
        for mask in (0x01, 0x80):
            bad = flip(blob, i, mask)
            with pytest.raises(IntegrityError):
                decrypt_to_file(io.BytesIO(bad), dst, dek, expected_sha256=digest)
            assert list(tmp_path.iterdir()) == [], f"byte {i}: something was left behind"
            with pytest.raises(IntegrityError):
                decrypt_bytes(bad, dek)
            with pytest.raises(IntegrityError):
                verify(io.BytesIO(bad), dek)
            if i < HEADER_SIZE:
                # Header damage is caught before the first segment is even read.
                it = iter_decrypt(io.BytesIO(bad), dek)
                with pytest.raises(IntegrityError):
                    next(it)


def test_every_prefix_is_rejected(small: tuple[bytes, bytes, bytes], tmp_path: Path) -> None:
    blob, dek, _ = small
    for cut in range(len(blob)):
        with pytest.raises(IntegrityError):
            decrypt_to_file(io.BytesIO(blob[:cut]), tmp_path / "out", dek)
        assert list(tmp_path.iterdir()) == []


def test_cut_at_every_segment_boundary(small: tuple[bytes, bytes, bytes]) -> None:
    blob, dek, _ = small
    segs = segments(blob, S)
    for keep in range(len(segs)):
        with pytest.raises(EnvelopeTruncated):
            decrypt_bytes(join(blob, segs[:keep]), dek)


def test_reordered_and_duplicated_segments(small: tuple[bytes, bytes, bytes]) -> None:
    blob, dek, _ = small
    s0, s1, s2 = segments(blob, S)
    for order in ([s1, s0, s2], [s0, s2, s1], [s0, s1, s1, s2], [s0, s0, s1, s2], [s0, s1, s2, s2],
                  [s0, s1, s1], [s1, s2], [s0, s2]):  # fmt: skip
        with pytest.raises(DecryptionError):
            decrypt_bytes(join(blob, order), dek)


def test_segments_from_another_envelope_with_the_same_dek(
    small: tuple[bytes, bytes, bytes],
) -> None:
    blob, dek, _ = small
    other, _ = encrypt_bytes(DATA, dek=dek, segment_size=S)
    mixed = join(blob, [segments(blob, S)[0], *segments(other, S)[1:]])
    with pytest.raises(SegmentAuthFailed):
        decrypt_bytes(mixed, dek)
    # Nor can two envelopes' headers be swapped.
    with pytest.raises(SegmentAuthFailed):
        decrypt_bytes(other[:HEADER_SIZE] + blob[HEADER_SIZE:], dek)


def test_wrong_dek_fails_on_the_commitment(small: tuple[bytes, bytes, bytes]) -> None:
    blob, _, _ = small
    with pytest.raises(KeyCommitmentMismatch):
        verify(io.BytesIO(blob), envelope.new_dek())


def test_trailing_data_after_full_last_segment() -> None:
    blob, result = encrypt_bytes(_pt(FIRST + FULL), segment_size=S)
    with pytest.raises(EnvelopeTrailingData):
        decrypt_bytes(blob + b"x" * 40, result.dek)


def test_iter_decrypt_releases_only_verified_segments(small: tuple[bytes, bytes, bytes]) -> None:
    blob, dek, _ = small
    bad = flip(blob, len(blob) - 5)  # inside the last segment
    got = []
    with pytest.raises(SegmentAuthFailed):
        for chunk in iter_decrypt(io.BytesIO(bad), dek):
            got.append(chunk)
    assert got == [DATA[:8], DATA[8:56]]  # the intact, verified segments; never the bad one


# ------------------------------------------------------------------ decrypt_to_file


def test_decrypt_to_file_success(tmp_path: Path) -> None:
    data = _pt(500)
    blob, result = encrypt_bytes(data, segment_size=S)
    dst = tmp_path / "record.pdf"
    got = decrypt_to_file(
        io.BytesIO(blob), dst, result.dek, expected_sha256="0x" + result.plaintext_sha256.hex()
    )
    assert dst.read_bytes() == data
    assert got.plaintext_sha256 == result.plaintext_sha256
    assert got.plaintext_size == 500 and got.ciphertext_size == len(blob)
    assert os.stat(dst).st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["record.pdf"]


@pytest.mark.parametrize("durable", [True, False])
def test_decrypt_to_file_fsyncs_only_when_durable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, durable: bool
) -> None:
    """An answer streamed from the spool and deleted needs no fsync; a file the
    caller keeps gets its bytes and its folder entry synced. Either way the file
    appears whole or not at all."""
    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd))[1])
    data = _pt(700)
    blob, result = encrypt_bytes(data, segment_size=S)
    dst = tmp_path / "answer.out"
    decrypt_to_file(io.BytesIO(blob), dst, result.dek, durable=durable)
    assert dst.read_bytes() == data
    assert (len(synced) == 2) if durable else (synced == [])  # the file, then its folder
    with pytest.raises(IntegrityError):
        decrypt_to_file(
            io.BytesIO(blob), tmp_path / "bad.out", result.dek, expected_sha256="00" * 32,
            durable=durable,
        )  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["answer.out"]


def test_decrypt_to_file_hash_mismatch_leaves_nothing(tmp_path: Path) -> None:
    blob, result = encrypt_bytes(b"the real record", segment_size=S)
    with pytest.raises(PlaintextHashMismatch) as info:
        decrypt_to_file(
            io.BytesIO(blob),
            tmp_path / "x",
            result.dek,
            expected_sha256=hashlib.sha256(b"other").digest(),
        )
    assert info.value.code == "crypto.plaintext_hash_mismatch"
    assert list(tmp_path.iterdir()) == []


def test_decrypt_to_file_never_overwrites_by_default(tmp_path: Path) -> None:
    blob, result = encrypt_bytes(b"new", segment_size=S)
    dst = tmp_path / "x"
    dst.write_bytes(b"old")
    with pytest.raises(InputError):
        decrypt_to_file(io.BytesIO(blob), dst, result.dek)
    assert dst.read_bytes() == b"old"
    # A failed overwrite keeps the old file too.
    with pytest.raises(IntegrityError):
        decrypt_to_file(io.BytesIO(flip(blob, 200 % len(blob))), dst, result.dek, overwrite=True)
    assert dst.read_bytes() == b"old"
    decrypt_to_file(io.BytesIO(blob), dst, result.dek, overwrite=True)
    assert dst.read_bytes() == b"new"


def test_decrypt_to_file_source_error_midway_cleans_up(tmp_path: Path) -> None:
    blob, result = encrypt_bytes(_pt(400), segment_size=S)

    def flaky() -> Iterator[bytes]:
        yield blob[:200]
        raise ConnectionError("peer went away")

    with pytest.raises(ConnectionError):
        decrypt_to_file(flaky(), tmp_path / "x", result.dek)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ properties


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.binary(max_size=1500),
    segment_size=st.integers(min_value=envelope.MIN_SEGMENT_SIZE, max_value=400),
    chunk=st.integers(min_value=1, max_value=600),
)
def test_property_round_trip(data: bytes, segment_size: int, chunk: int) -> None:
    out = io.BytesIO()
    result = encrypt_stream(_chunks(data, chunk), out, segment_size=segment_size)
    blob = out.getvalue()
    assert len(blob) == envelope.ciphertext_size(len(data), segment_size)
    assert b"".join(iter_decrypt(_chunks(blob, chunk), result.dek)) == data
    assert verify(
        io.BytesIO(blob), result.dek, expected_sha256=result.plaintext_sha256
    ).segments == (len(segments(blob, segment_size)))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_property_header_parser_only_raises_govshare_errors(raw: bytes) -> None:
    for candidate in (raw, envelope.MAGIC + raw, envelope.MAGIC + b"\x01\x01" + raw):
        with contextlib.suppress(GovShareError):
            envelope.parse_header(candidate)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=400), st.binary(min_size=32, max_size=32))
def test_property_decrypt_arbitrary_bytes_only_raises_govshare_errors(
    raw: bytes, dek: bytes
) -> None:
    blob, _result = encrypt_bytes(b"hello", dek=dek, segment_size=S)
    for candidate in (raw, blob[:HEADER_SIZE] + raw, blob[: len(raw) % len(blob)] + raw):
        with pytest.raises(GovShareError):
            decrypt_bytes(candidate, dek)


_SEEN: set[tuple[bytes, bytes]] = set()


@settings(max_examples=150, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=400), min_size=1, max_size=8),
    reuse_dek=st.booleans(),
    segment_size=st.integers(min_value=64, max_value=128),
)
def test_property_no_key_nonce_pair_is_ever_reused(
    sizes: list[int], reuse_dek: bool, segment_size: int
) -> None:
    # Across every encryption in the run (even with a deliberately reused DEK), each
    # AES-GCM (segment key, nonce) pair occurs once.
    fixed = envelope.new_dek()
    for n in sizes:
        blob, result = encrypt_bytes(
            b"\x00" * n, dek=fixed if reuse_dek else None, segment_size=segment_size
        )
        header = envelope.parse_header(blob)
        key = envelope._segment_key(result.dek, header.salt, header.associated_data)
        count = len(segments(blob, segment_size))
        for i in range(count):
            pair = (key, envelope._nonce(header.nonce_prefix, i, i == count - 1))
            assert pair not in _SEEN
            _SEEN.add(pair)


def test_decrypt_to_file_missing_folder(tmp_path: Path) -> None:
    blob, result = encrypt_bytes(b"x", segment_size=S)
    with pytest.raises(InputError):
        decrypt_to_file(io.BytesIO(blob), tmp_path / "nope" / "x", result.dek)
