"""Benchmark: encrypt + store and get + decrypt through the local blob store.

Prints MB/s for each direction beside a baseline measured in the same run: one
raw AES-256-GCM + SHA-256 pass over the same bytes (1 MiB chunks), which is
the least work any encrypt-and-hash pipeline must do. Also prints the process's
peak RSS (the pipeline must stay flat in memory for any file size).

    python scripts/bench/bench_blob.py            # 1 GiB
    python scripts/bench/bench_blob.py --mib 64   # quicker
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from govshare.crypto import EncryptingReader, decrypt_to_file
from govshare.storage import LocalBlobStore

MiB = 1 << 20


class Source:
    """A readable stream of ``size`` pseudo-random bytes (AES-CTR keystream:
    incompressible, not deduplicable, cheap to make, never held in memory)."""

    def __init__(self, size: int, seed: bytes = b"\x01" * 32) -> None:
        self.left = size
        self._enc = Cipher(algorithms.AES(seed), modes.CTR(b"\x00" * 16)).encryptor()

    def read(self, n: int = -1) -> bytes:
        if n < 0 or n > self.left:
            n = self.left
        self.left -= n
        return self._enc.update(bytes(n))

    def readable(self) -> bool:
        return True


def chunks(size: int) -> Iterator[bytes]:
    src = Source(size)
    while data := src.read(MiB):
        yield data


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def baseline(size: int) -> float:
    """Raw AES-256-GCM (one seal per 1 MiB chunk) + SHA-256 of the plaintext."""
    aead = AESGCM(os.urandom(32))
    sha = hashlib.sha256()
    t = time.perf_counter()
    for i, data in enumerate(chunks(size)):
        sha.update(data)
        aead.encrypt(i.to_bytes(12, "big"), data, None)
    return time.perf_counter() - t


def disk_baseline(size: int, where: Path) -> float:
    """The disk's own pace: the same bytes written as 256 KiB files, fsynced in
    groups and renamed (what any crash-safe block store must at least do)."""
    d = where / "disk"
    d.mkdir()
    t = time.perf_counter()
    src, batch, i = Source(size), [], 0
    while data := src.read(256 * 1024):
        fd = os.open(d / f"{i}.tmp", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, data)
        batch.append((fd, i))
        i += 1
        if len(batch) == 64 or src.left == 0:
            for fd, j in batch:
                os.fsync(fd)
                os.close(fd)
                os.replace(d / f"{j}.tmp", d / str(j))
            batch = []
    elapsed = time.perf_counter() - t
    shutil.rmtree(d)
    return elapsed


def source_only(size: int) -> float:
    t = time.perf_counter()
    for _ in chunks(size):
        pass
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mib", type=int, default=1024, help="payload size in MiB (default 1024)")
    ap.add_argument("--dir", default=None, help="where to put the store (default: a temp dir)")
    args = ap.parse_args()
    size = args.mib * MiB
    work = Path(tempfile.mkdtemp(prefix="govshare-bench-", dir=args.dir))
    try:
        gen = source_only(size)
        base = baseline(size)
        disk = disk_baseline(size, work)
        rss_after_baseline = peak_rss_mb()

        store = LocalBlobStore(work / "blobs")
        t = time.perf_counter()
        reader = EncryptingReader(Source(size))
        cid = store.put(reader)
        put_s = time.perf_counter() - t
        result = reader.result

        out = work / "plain.out"
        t = time.perf_counter()
        decrypt_to_file(store.get(cid), out, result.dek, expected_sha256=result.plaintext_sha256)
        get_s = time.perf_counter() - t
        assert out.stat().st_size == size
        out.unlink()

        mb = size / 1e6
        # The source generator's own time is part of put but not of the raw pass's
        # work; report it so the ratios can be read either way.
        print(f"payload            {args.mib} MiB   (CID {cid})")
        print(f"source generator   {mb / gen:8.1f} MB/s  (included in every pipeline below)")
        print(f"baseline AES-GCM+SHA-256  {mb / base:8.1f} MB/s")
        print(f"disk: write+fsync   {mb / disk:8.1f} MB/s  (the store's ceiling on this disk)")
        print(f"encrypt + store    {mb / put_s:8.1f} MB/s   ratio {base / put_s:.2f}x baseline")
        print(f"get + decrypt      {mb / get_s:8.1f} MB/s   ratio {base / get_s:.2f}x baseline")
        rss = peak_rss_mb()
        print(f"peak RSS           {rss:8.1f} MB   (after baseline: {rss_after_baseline:.1f} MB)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
