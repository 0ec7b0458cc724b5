"""Writing a command's output file (``-o FILE``): one rule for every command.

- A path that exists and is not a regular file (a device such as ``/dev/full`` or
  ``/dev/null``, a fifo, a socket, a directory, or a symlink to one) is refused:
  replacing it would turn a device into a plain file holding the plaintext.
- An existing regular file is replaced only with ``--force``; a symlink to one
  is followed (its target is replaced, the link stays).
- The bytes go to a temporary file in the target's folder, flushed to disk and
  renamed over the target only when complete: a failure (disk full, file too
  large, an interrupt) never leaves a partial file under the target's name.
- Any write error becomes one sentence naming the file (:class:`WriteFailed`).

The transfer code calls :func:`check_output` before any network call and
:func:`atomic_output` around its writes.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from govshare.cli.errors import OutputRefused, WriteFailed

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a fifo (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
)


def check_output(path: str | os.PathLike[str], *, force: bool) -> Path:
    """The file to write for ``-o path``, absolute, symlinks followed; refused
    (:class:`OutputRefused`) when it exists and is not a regular file, exists
    without ``force``, or its folder does not exist."""
    given = Path(path).expanduser()
    target = Path(os.path.realpath(given))  # a symlink: its target is what is written
    try:
        st = target.stat()
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise OutputRefused(f"Cannot write {given}: {exc.strerror}.", path=str(given)) from None
    if st is not None:
        if not stat.S_ISREG(st.st_mode):
            kind = next((k for test, k in _KINDS if test(st.st_mode)), "not a regular file")
            via = f" (through the symlink {given})" if given.is_symlink() else ""
            raise OutputRefused(
                f"Refusing to write {target}{via}: it is {kind}, not a regular file; "
                "name a regular file with -o.",
                path=str(given),
            )
        if not force:
            raise OutputRefused(
                f"{given} already exists; pass --force to replace it.", path=str(given)
            )
    if not target.parent.is_dir():
        raise OutputRefused(f"The folder {target.parent} does not exist.", path=str(given))
    return target


def write_failed(target: Path, exc: OSError) -> WriteFailed:
    """One sentence for an OS error while writing ``target``."""
    reason = {
        errno.ENOSPC: "the disk is full",
        errno.EDQUOT: "the disk quota is exceeded",
        errno.EFBIG: "the file is larger than this system or its limits allow",
        errno.EACCES: "permission denied",
        errno.EPERM: "operation not permitted",
        errno.EROFS: "the file system is read-only",
        errno.EIO: "an input/output error",
    }.get(exc.errno or 0, exc.strerror or type(exc).__name__)
    return WriteFailed(
        f"Could not write {target}: {reason}; nothing was written under that name.",
        path=str(target),
        errno=errno.errorcode.get(exc.errno or 0, str(exc.errno)),
    )


@contextmanager
def atomic_output(target: Path) -> Iterator[BinaryIO]:
    """A binary file to write ``target``'s bytes to: a temporary file beside it,
    renamed over ``target`` when the block ends without error (after an fsync),
    removed otherwise. An OS error becomes :class:`WriteFailed`."""
    try:
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=".part", dir=target.parent
        )
    except OSError as exc:
        raise write_failed(target, exc) from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise write_failed(target, exc) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
