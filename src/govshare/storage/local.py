"""The embedded block store: Kubo-identical UnixFS DAGs kept in a directory.

Layout under the store's root::

    blocks/XY/<cidv1>     one file per block (XY: first byte of the digest, in hex)
    tmp/                  blocks being written (a crash's leftovers: sweep_leftovers, gc)
    pins.sqlite           recursive pins (storage/pinindex.py: one row per pin, WAL)
    gc.lock               put/import hold it shared, gc exclusive: gc never sees half a DAG

Writes are crash-safe: each block goes to a temp file, is fsynced, then renamed
into place (in groups of 64 blocks, flushed by a helper thread so that the fsyncs
run back to back while the caller encrypts and hashes the next group), then
the directories are fsynced — all before the CID is returned. A crash leaves at
worst unreferenced temp files, which :meth:`LocalBlobStore.sweep_leftovers` (the
broker calls it at start-up) and gc remove. Reads hash every block against
its CID; a block that does not match raises :class:`BlockCorrupted` and no byte
of it is returned.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import tempfile
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from govshare.storage import car as carlib
from govshare.storage.base import CAR, GC, PIN, SWEEP, BlobStat, CarImport, GCReport, SweepReport
from govshare.storage.cid import CID, parse_cid
from govshare.storage.errors import (
    BlobNotFound,
    BlockCorrupted,
    InvalidCID,
    StorageError,
)
from govshare.storage.pinindex import PinIndex
from govshare.storage.unixfs import MAX_BLOCK_SIZE, file_node_info, import_stream, read_file

_BATCH = 64  # blocks per group commit (16 MiB of 256 KiB chunks)


class LocalBlobStore:
    """A :class:`~govshare.storage.base.BlobStore` in a local directory."""

    capabilities = frozenset({PIN, GC, CAR, SWEEP})

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        try:
            for sub in (self.root, self.root / "blocks", self.root / "tmp"):
                sub.mkdir(parents=True, exist_ok=True)
            os.chmod(self.root, 0o700)
        except OSError as exc:
            raise StorageError(f"cannot use {self.root} as a blob store: {exc.strerror}") from exc
        self._pins = PinIndex(self.root)
        self._thread_lock = threading.RLock()
        self._dirty: set[Path] = set()
        self._staged: list[tuple[int, str, Path]] = []
        self._flusher: ThreadPoolExecutor | None = None
        self._flushes: list[Future[set[Path]]] = []

    def __repr__(self) -> str:
        return f"LocalBlobStore({str(self.root)!r})"

    def close(self) -> None:
        self._pins.close()

    # --- locking ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _flock(self, name: str, exclusive: bool) -> Iterator[None]:
        path = self.root / name
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    # --- blocks ----------------------------------------------------------------------------

    def _path(self, cid: CID) -> Path:
        v1 = cid.to_v1()
        return self.root / "blocks" / cid.digest[:1].hex() / v1.encode()

    def _write_block(self, cid: CID, data: bytes) -> None:
        """Stage a block in tmp/; :meth:`_commit` makes a batch of them durable and visible.

        Group commit: each staged file is fsynced before it is renamed into place, but
        the fsyncs of a batch run back to back, so one journal commit covers most of
        them (one fsync per block in turn costs several times the throughput)."""
        path = self._path(cid)
        if path.exists():
            try:
                cid.verify(path.read_bytes())
                return  # already held, intact
            except (BlockCorrupted, OSError):
                pass  # replace a damaged copy with the good bytes we have
        fd, tmp = tempfile.mkstemp(dir=self.root / "tmp", prefix="blk-")
        try:
            _write_all(fd, data)
        except OSError as exc:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise StorageError(f"cannot write block {cid}: {exc.strerror}") from exc
        self._staged.append((fd, tmp, path))
        if len(self._staged) >= _BATCH:
            self._commit()

    def _commit(self) -> None:
        """Hand the staged batch to the flusher thread: its fsyncs (I/O waits, no GIL)
        overlap with the next batch's encryption and hashing in the caller's thread."""
        staged, self._staged = self._staged, []
        if not staged:
            return
        if self._flusher is None:
            self._flusher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="blob-fsync")
        self._flushes.append(self._flusher.submit(self._flush, staged))

    def _flush(self, staged: list[tuple[int, str, Path]]) -> set[Path]:
        dirs: set[Path] = set()
        try:
            for fd, _tmp, _path in staged:
                os.fsync(fd)
            for _fd, tmp, path in staged:
                path.parent.mkdir(exist_ok=True)
                os.replace(tmp, path)
                dirs.add(path.parent)
        except OSError as exc:
            for _fd, tmp, _path in staged:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            raise StorageError(f"cannot store blocks: {exc.strerror}") from exc
        finally:
            for fd, _tmp, _path in staged:
                with contextlib.suppress(OSError):
                    os.close(fd)
        return dirs

    def _wait_flushes(self) -> None:
        """Wait for every handed-off batch; the first failure is raised (after all ended)."""
        flushes, self._flushes = self._flushes, []
        error: BaseException | None = None
        for f in flushes:
            try:
                self._dirty |= f.result()
            except BaseException as exc:  # noqa: BLE001 — re-raised once every batch has ended
                error = error or exc
        if self._flusher is not None:
            self._flusher.shutdown(wait=True)
            self._flusher = None
        if error is not None:
            raise error

    def _abort(self) -> None:
        staged, self._staged = self._staged, []
        for fd, tmp, _path in staged:
            with contextlib.suppress(OSError):
                os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        with contextlib.suppress(BaseException):
            self._wait_flushes()

    def _sync_dirs(self) -> None:
        self._commit()
        self._wait_flushes()
        dirs, self._dirty = self._dirty, set()
        for d in dirs:
            _fsync_dir(d)

    def _read_block(self, cid: CID) -> bytes:
        try:
            with open(self._path(cid), "rb") as fh:
                data = fh.read(MAX_BLOCK_SIZE + 1)
        except FileNotFoundError:
            raise BlobNotFound(f"block {cid} is not in the local store", cid=str(cid)) from None
        except OSError as exc:
            raise StorageError(f"cannot read block {cid}: {exc.strerror}") from exc
        cid.check_verifiable()
        cid.verify(data, where="stored block")
        return data

    def block_paths(self) -> Iterator[Path]:
        """Every stored block file (tests use this to damage blocks)."""
        for shard in sorted((self.root / "blocks").iterdir()):
            if shard.is_dir():
                yield from sorted(shard.iterdir())

    # --- BlobStore ---------------------------------------------------------------------------

    def put(
        self,
        stream: BinaryIO,
        *,
        cid_version: int = 0,
        raw_leaves: bool | None = None,
        pin: bool = True,
    ) -> CID:
        return self.put_many([stream], cid_version=cid_version, raw_leaves=raw_leaves, pin=pin)[0]

    def put_many(
        self,
        streams: Sequence[BinaryIO],
        *,
        cid_version: int = 0,
        raw_leaves: bool | None = None,
        pin: bool = True,
    ) -> list[CID]:
        """:meth:`put` for several files at once: their blocks are made durable
        together (one group of fsyncs, each directory once) and pinned in one
        transaction. All or nothing is returned; on an error, files already
        whole stay in the store unpinned (``gc`` collects them)."""
        with self._thread_lock, self._flock("gc.lock", exclusive=False):
            cids = []
            try:
                for stream in streams:
                    result = import_stream(
                        stream, self._write_block, cid_version=cid_version, raw_leaves=raw_leaves
                    )
                    cids.append(result.cid)
            except OSError as exc:
                self._abort()
                raise StorageError(f"cannot read the input: {exc.strerror}") from exc
            except BaseException:
                self._abort()
                raise
            self._sync_dirs()  # every block durable and in place before the CID is returned
            if pin:
                self._add_pins(cids)
            return cids

    def get(self, cid: CID | str) -> Iterator[bytes]:
        root = parse_cid(cid)
        return read_file(root, self._read_block)

    def has(self, cid: CID | str) -> bool:
        return self._path(parse_cid(cid)).exists()

    def stat(self, cid: CID | str) -> BlobStat:
        c = parse_cid(cid)
        block = self._read_block(c)
        size, _links, _inline = file_node_info(c, block)
        return BlobStat(c, size, len(block), c.codec_name, self._is_pinned(c))

    def verify(self, cid: CID | str) -> int:
        """Read and hash the whole DAG without returning data; the file size."""
        return sum(len(chunk) for chunk in self.get(cid))

    # --- pins --------------------------------------------------------------------------------

    def _add_pins(self, cids: list[CID]) -> None:
        self._pins.add(cids)

    def _is_pinned(self, cid: CID) -> bool:
        return self._pins.contains(cid)

    def pins(self) -> list[CID]:
        """Every recursive pin, in the order first pinned."""
        return self._pins.all()

    def pin(self, cid: CID | str) -> None:
        c = parse_cid(cid)
        with self._thread_lock, self._flock("gc.lock", exclusive=False):
            # A recursive pin needs the whole DAG, intact.
            for _ in carlib.walk([c], self._read_block):
                pass
            self._add_pins([c])

    def unpin(self, cid: CID | str) -> None:
        c = parse_cid(cid)
        if not self._pins.remove(c):
            raise BlobNotFound(f"{c} is not pinned", cid=str(c))

    def gc(self) -> GCReport:
        with self._thread_lock, self._flock("gc.lock", exclusive=True):
            live: set[Path] = set()
            # Marking reads (and verifies) every pinned block; a damaged or missing one
            # stops gc before anything is deleted, since its children cannot be known.
            for cid, _block in carlib.walk(self._pins.all(), self._read_block):
                live.add(self._path(cid))
            removed: list[CID] = []
            freed = 0
            for path in list(self.block_paths()):
                if path in live:
                    continue
                try:
                    size = path.stat().st_size
                    path.unlink()
                except FileNotFoundError:
                    continue
                freed += size
                with contextlib.suppress(InvalidCID):
                    removed.append(CID.parse(path.name))
            for tmp in (self.root / "tmp").iterdir():
                with contextlib.suppress(OSError):
                    tmp.unlink()
            return GCReport(removed, freed)

    def sweep_leftovers(self) -> SweepReport:
        # Writers hold gc.lock (shared) while their temp files exist: holding it
        # exclusively, every file left in tmp/ belongs to a dead writer.
        with self._thread_lock, self._flock("gc.lock", exclusive=True):
            files = size = 0
            for tmp in (self.root / "tmp").iterdir():
                try:
                    n = tmp.stat().st_size
                    tmp.unlink()
                except OSError:
                    continue
                files += 1
                size += n
            return SweepReport(files, size)

    # --- CAR ---------------------------------------------------------------------------------

    def export_car(self, cid: CID | str, out: BinaryIO) -> int:
        c = parse_cid(cid)
        blocks, _written = carlib.write_car([c], self._read_block, out)
        return blocks

    def export_car_roots(self, roots: list[CID], out: BinaryIO) -> int:
        blocks, _written = carlib.write_car(roots, self._read_block, out)
        return blocks

    def import_car(self, stream: BinaryIO, *, pin_roots: bool = True) -> CarImport:
        with self._thread_lock, self._flock("gc.lock", exclusive=False):
            roots, sections = carlib.read_car(stream)
            count = 0
            try:
                for cid, block in sections:
                    self._write_block(cid, block)
                    count += 1
            except BaseException:
                self._abort()
                raise
            self._sync_dirs()
            if pin_roots:
                for root in roots:
                    for _ in carlib.walk([root], self._read_block):
                        pass
                self._add_pins(roots)
            return CarImport(roots, count)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:  # some filesystems cannot fsync a directory
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)
