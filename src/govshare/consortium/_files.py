"""Atomic, permission-aware writes for generated consortium files.

Every generated file is written to a temporary file beside its destination,
fsynced and renamed into place, so a crash never leaves half a genesis or half a
key behind. Secrets are created 0600 from the first byte; public files 0644.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from govshare.errors import ConfigError

SECRET_MODE = 0o600
PUBLIC_MODE = 0o644


def write_file(
    dest: Path,
    data: bytes | str,
    *,
    secret: bool,
    overwrite: bool = True,
    executable: bool = False,
) -> Path:
    """Write ``data`` to ``dest`` atomically; ``secret`` files are 0600, others 0644.

    With ``overwrite=False`` an existing ``dest`` is an error: generated keys are
    never replaced silently. ``executable`` adds the x bits (public files only).
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not overwrite and dest.exists():
        raise ConfigError(
            f"{dest} already exists; refusing to overwrite it (use --force to regenerate).",
            path=str(dest),
        )
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        # mkstemp creates 0600; widen only public files, and only before any byte lands.
        mode = SECRET_MODE if secret else PUBLIC_MODE
        if executable and not secret:
            mode |= 0o111
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _fsync_dir(dest.parent)
    return dest


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
