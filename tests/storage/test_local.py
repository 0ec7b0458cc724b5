"""Local-store specifics: crash safety, persistence, gc's refusal to guess."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from govshare.errors import StorageError
from govshare.storage import SWEEP, BlobNotFound, BlockCorrupted, LocalBlobStore, compute_cid


class Breaks(io.RawIOBase):
    """Yields some bytes, then fails like a dropped upload."""

    def __init__(self, good: int) -> None:
        self.left = good

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[no-untyped-def]
        if self.left <= 0:
            raise OSError(5, "Input/output error")
        n = min(len(b), self.left)
        b[:n] = b"q" * n
        self.left -= n
        return n


def test_failed_put_leaves_nothing_behind(local_store: LocalBlobStore) -> None:
    with pytest.raises(StorageError, match="cannot read the input"):
        local_store.put(io.BufferedReader(Breaks(700_000)))
    assert list(local_store.block_paths()) == []
    assert list((local_store.root / "tmp").iterdir()) == []
    assert local_store.pins() == []


def test_pins_persist_across_instances(tmp_path: Path) -> None:
    a = LocalBlobStore(tmp_path / "s")
    cid = a.put(io.BytesIO(b"persist me"))
    b = LocalBlobStore(tmp_path / "s")
    assert b.pins() == [cid]
    assert b.stat(cid).pinned is True
    assert b.gc().removed == []


def test_gc_refuses_when_a_pinned_block_is_damaged(local_store: LocalBlobStore) -> None:
    keep = local_store.put(io.BytesIO(os.urandom(600_000)))
    junk = local_store.put(io.BytesIO(b"junk"), pin=False)
    root = local_store._path(keep)
    raw = bytearray(root.read_bytes())
    raw[5] ^= 0xFF
    root.write_bytes(bytes(raw))
    with pytest.raises(BlockCorrupted):
        local_store.gc()
    assert local_store.has(junk)  # nothing was deleted


def test_gc_sweeps_crash_leftovers(local_store: LocalBlobStore) -> None:
    (local_store.root / "tmp" / "blk-left-over").write_bytes(b"half a block")
    local_store.gc()
    assert list((local_store.root / "tmp").iterdir()) == []


_WRITER = (
    "import sys; from govshare.storage import LocalBlobStore; "
    "LocalBlobStore(sys.argv[1]).put(sys.stdin.buffer)"
)


def test_sweep_removes_what_a_killed_writer_left(tmp_path: Path) -> None:
    """A put killed mid-way (SIGKILL: no clean-up) leaves its staged blocks in
    tmp/; sweep_leftovers removes them and nothing else."""
    root = tmp_path / "s"
    store = LocalBlobStore(root)
    kept = store.put(io.BytesIO(b"an earlier record"))
    assert SWEEP in store.capabilities
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(root)], stdin=subprocess.PIPE)
    try:
        assert writer.stdin is not None
        # 21 chunks: 20 staged blocks (the importer keeps the last chunk back
        # until more arrives), below the group commit of 64
        writer.stdin.write(os.urandom(21 * 262_144))
        writer.stdin.flush()
        deadline = time.monotonic() + 60
        while len(list((root / "tmp").iterdir())) < 20:
            assert time.monotonic() < deadline and writer.poll() is None, "the writer stalled"
            time.sleep(0.02)
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(10)
        if writer.stdin is not None:
            writer.stdin.close()
    report = LocalBlobStore(root).sweep_leftovers()
    assert report.files == 20 and report.bytes >= 20 * 262_144
    assert list((root / "tmp").iterdir()) == []
    assert store.pins() == [kept] and b"".join(store.get(kept)) == b"an earlier record"
    assert store.sweep_leftovers().files == 0


def test_damaged_copy_is_repaired_by_the_next_put(local_store: LocalBlobStore) -> None:
    data = b"repair me" * 1000
    cid = local_store.put(io.BytesIO(data))
    path = local_store._path(cid)
    path.write_bytes(b"garbage")
    with pytest.raises(BlockCorrupted):
        b"".join(local_store.get(cid))
    assert local_store.put(io.BytesIO(data)) == cid
    assert b"".join(local_store.get(cid)) == data


def test_concurrent_puts(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "s")
    payloads = [os.urandom(300_000 + i) for i in range(6)]
    results: dict[int, str] = {}

    def worker(i: int) -> None:
        # each thread its own instance, as separate processes would have
        results[i] = str(LocalBlobStore(tmp_path / "s").put(io.BytesIO(payloads[i])))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, data in enumerate(payloads):
        assert results[i] == str(compute_cid(data))
        assert b"".join(store.get(results[i])) == data
    assert len(store.pins()) == 6


def test_block_files_are_content_addressed(local_store: LocalBlobStore) -> None:
    cid = local_store.put(io.BytesIO(b"hello world\n"))
    (path,) = list(local_store.block_paths())
    assert path.name == str(cid.to_v1())
    assert path.parent.name == cid.digest[:1].hex()


def test_an_old_pins_json_is_migrated_once(tmp_path: Path) -> None:
    """A store from before the pin index: its pins.json is copied in, then set aside."""
    root = tmp_path / "s"
    store = LocalBlobStore(root)
    a = store.put(io.BytesIO(b"old record a"), pin=False)
    b = store.put(io.BytesIO(b"old record b"), pin=False)
    store.close()
    (root / "pins.sqlite").unlink()
    (root / "pins.json").write_text(json.dumps({"version": 1, "pins": [str(a), str(b)]}))
    again = LocalBlobStore(root)
    assert again.pins() == [a, b]
    assert not (root / "pins.json").exists() and (root / "pins.json.migrated").exists()
    again.unpin(a)
    # a pins.json left behind by a crash after the commit is not applied twice
    (root / "pins.json.migrated").rename(root / "pins.json")
    assert LocalBlobStore(root).pins() == [b]
    assert again.gc().removed != [] and again.has(b) and not again.has(a)


def test_a_damaged_pins_json_stops_the_migration(tmp_path: Path) -> None:
    root = tmp_path / "s"
    root.mkdir()
    (root / "pins.json").write_text('{"pins": ["not a cid"]}')
    with pytest.raises(StorageError, match=r"old pin set .* is damaged"):
        LocalBlobStore(root)
    assert (root / "pins.json").exists()  # left for the operator, nothing half-done


def test_unpin_of_what_is_not_pinned_is_not_found(local_store: LocalBlobStore) -> None:
    cid = local_store.put(io.BytesIO(b"pin me once"))
    local_store.unpin(cid)
    with pytest.raises(BlobNotFound):
        local_store.unpin(cid)
    assert local_store.pins() == []


_PINNER = (
    "import io, sys\n"
    "from govshare.storage import LocalBlobStore\n"
    "s = LocalBlobStore(sys.argv[1])\n"
    "for i in range(10_000):\n"
    "    print(s.put(io.BytesIO(b'record %d' % i)), flush=True)\n"
)


def test_an_acknowledged_pin_survives_sigkill(tmp_path: Path) -> None:
    """Every CID a put returned (printed by the child) is pinned after a SIGKILL."""
    root = tmp_path / "s"
    LocalBlobStore(root)
    child = subprocess.Popen(
        [sys.executable, "-c", _PINNER, str(root)], stdout=subprocess.PIPE, text=True
    )
    acknowledged = []
    try:
        assert child.stdout is not None
        while len(acknowledged) < 40:
            line = child.stdout.readline()
            assert line, "the child stopped early"
            acknowledged.append(line.strip())
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        if child.stdout is not None:
            child.stdout.close()
    store = LocalBlobStore(root)
    pinned = {str(c) for c in store.pins()}
    assert set(acknowledged) <= pinned
    store.gc()  # what is pinned is kept
    for cid in acknowledged:
        assert b"".join(store.get(cid)).startswith(b"record ")
