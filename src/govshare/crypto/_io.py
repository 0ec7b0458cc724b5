"""Small I/O helpers shared by the envelope and keystore code."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Protocol, runtime_checkable


@runtime_checkable
class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


# What the envelope functions read from: a binary file object (anything with
# ``read(n)``), or an iterable of byte chunks such as ``httpx.Response.iter_bytes()``.
Source = Readable | Iterable[bytes]


class ChunkReader:
    """``read_exact(n)`` over a file object or an iterable of chunks.

    Returns exactly ``n`` bytes, or fewer only at end of stream. Holds at most
    one leftover chunk from an iterable source.
    """

    def __init__(self, src: Source) -> None:
        if isinstance(src, bytes | bytearray | memoryview | str):
            # An iterable of ints (or chars) is never what the caller meant.
            raise TypeError("pass a binary file object or an iterable of bytes chunks")
        self._file: Readable | None = src if isinstance(src, Readable) else None
        self._iter: Iterator[bytes] | None = (
            None if self._file is not None else iter(src)  # type: ignore[arg-type]
        )
        self._buf = bytearray()
        self._eof = False
        self.consumed = 0

    def read_exact(self, n: int) -> bytes:
        if n <= 0:
            return b""
        if self._file is not None:
            first = self._file.read(n)
            if len(first) == n:  # the common case: no copy
                self.consumed += n
                return bytes(first)
            parts = bytearray(first)
            if not first:
                self._eof = True
            while len(parts) < n and not self._eof:
                chunk = self._file.read(n - len(parts))
                if not chunk:
                    self._eof = True
                    break
                parts += chunk
            self.consumed += len(parts)
            return bytes(parts)
        assert self._iter is not None
        while len(self._buf) < n and not self._eof:
            try:
                chunk = next(self._iter)
            except StopIteration:
                self._eof = True
                break
            self._buf += chunk
        out = bytes(self._buf[:n])
        del self._buf[:n]
        self.consumed += len(out)
        return out


def fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temp_beside(dest: Path) -> tuple[IO[bytes], Path]:
    """A new 0600 temporary file in ``dest``'s directory, opened for binary writing."""
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    return os.fdopen(fd, "wb"), Path(name)


def discard(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def atomic_write(dest: Path, data: bytes, *, overwrite: bool) -> None:
    """Write ``data`` to ``dest`` with mode 0600: temp file, fsync, rename, fsync dir.

    With ``overwrite=False`` an existing ``dest`` is left alone and
    :class:`FileExistsError` raised (the link step is atomic).
    """
    fh, tmp = temp_beside(dest)
    try:
        with fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, dest)
        else:
            try:
                os.link(tmp, dest)
            except FileExistsError:
                raise
            except OSError:
                # No hard links here (some network/FUSE file systems): check, then rename.
                if dest.exists():
                    raise FileExistsError(str(dest)) from None
                os.replace(tmp, dest)
            else:
                tmp.unlink()
    except BaseException:
        discard(tmp)
        raise
    fsync_dir(dest.parent)
