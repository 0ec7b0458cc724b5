"""Deterministic inputs that Kubo's own tests use, regenerated in Python.

* :func:`kubo_deterministic` — Kubo ``test/cli/testutils`` ``DeterministicRandomReader``:
  the ChaCha20 keystream under ``sha256(seed)`` with an all-zero 12-byte nonce
  (used by ``node.IPFSAddDeterministic`` in ``test/cli/add_test.go``).
* :func:`go_random` — the ``random <count> <seed>`` tool of Kubo's sharness tests
  (jbenet/go-random ``WritePseudoRandomBytes``): Go ``math/rand`` seeded with
  ``seed``, each ``Uint32()`` (= ``Int63() >> 31``) written as 4 little-endian bytes.
  Go's generator is an additive lagged Fibonacci generator,
  ``x[n] = x[n-607] + x[n-273] mod 2**63``; its first 607 outputs for a seed fully
  determine the rest, so ``tests/vectors/go_math_rand_prefix.json`` stores them
  (printed by the Go program next to it) and the rest is computed here, 273 values
  at a time, with the values packed in 64-bit lanes of one Python integer.
  Sharness publishes the SHA-1 of the generated files, which the tests check first.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

VECTORS = Path(__file__).resolve().parent.parent / "vectors"

_LEN, _TAP = 607, 273
_LANE = 64


class _Reader(io.RawIOBase):
    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[no-untyped-def]
        while not self._buf:
            try:
                self._buf = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def kubo_deterministic(size: int, seed: str) -> io.BufferedReader:
    key = hashlib.sha256(seed.encode()).digest()
    enc = Cipher(algorithms.ChaCha20(key, b"\0" * 16), None).encryptor()

    def gen() -> Iterator[bytes]:
        left = size
        zeros = b"\0" * (1 << 20)
        while left:
            n = min(left, len(zeros))
            left -= n
            yield enc.update(zeros[:n])

    return io.BufferedReader(_Reader(gen()), buffer_size=1 << 20)


def _lanes(values: list[int]) -> int:
    return int.from_bytes(b"".join(v.to_bytes(8, "little") for v in values), "little")


def _u32_bytes(batch: int, count: int) -> bytes:
    """``(x >> 31) & 0xffffffff`` of each 64-bit lane, as 4 little-endian bytes each."""
    mask32 = _lanes([0xFFFFFFFF] * count)
    raw = ((batch >> 31) & mask32).to_bytes(count * 8, "little")
    out = bytearray(count * 4)
    for i in range(4):
        out[i::4] = raw[i::8]
    return bytes(out)


def go_random(size: int, seed: int) -> io.BufferedReader:
    prefix = json.loads((VECTORS / "go_math_rand_prefix.json").read_text())["int63"][str(seed)]
    assert len(prefix) == _LEN

    def gen() -> Iterator[bytes]:
        left = size
        window = _lanes(prefix)  # lane k = x[t + k], oldest first
        mask_batch = (1 << (_TAP * _LANE)) - 1
        mask63 = _lanes([(1 << 63) - 1] * _TAP)
        first = _u32_bytes(window, _LEN)
        yield first[:left]
        left -= min(left, len(first))
        while left > 0:
            old = window & mask_batch
            mid = (window >> ((_LEN - _TAP) * _LANE)) & mask_batch
            new = (old + mid) & mask63
            window = (window >> (_TAP * _LANE)) | (new << ((_LEN - _TAP) * _LANE))
            out = _u32_bytes(new, _TAP)
            yield out[:left]
            left -= min(left, len(out))

    return io.BufferedReader(_Reader(gen()), buffer_size=1 << 20)
