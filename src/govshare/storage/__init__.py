"""Blob storage: content-addressed, Kubo-compatible file storage for ciphertext.

    from govshare.storage import open_store
    store = open_store("local:/var/lib/govshare/blobs")     # or "kubo:http://127.0.0.1:5001"
    cid = store.put(open("record.enc", "rb"))               # CIDv0, as `ipfs add`
    for chunk in store.get(cid): ...                        # verified block by block

Backends are picked by URL scheme from :data:`FACTORIES` (a plain dict):

* ``local:PATH`` — :class:`LocalBlobStore`, the embedded store (``local:`` alone:
  ``blobs/`` under the govshare home).
* ``kubo:http://HOST:5001`` — :class:`KuboBlobStore`, Kubo's RPC API; the bearer
  token comes from the ``token`` argument (the ``kubo_token`` setting,
  ``GOVSHARE_KUBO_TOKEN``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from govshare.storage.base import (
    CAR,
    GC,
    PIN,
    SWEEP,
    BlobStat,
    BlobStore,
    CarImport,
    GCReport,
    SweepReport,
    put_many,
)
from govshare.storage.cid import CID, parse_cid
from govshare.storage.errors import (
    BlobNotFound,
    BlockCorrupted,
    InvalidBlock,
    InvalidCAR,
    InvalidCID,
    InvalidStoreURL,
    KuboError,
    UnsupportedCID,
    UnsupportedOperation,
)
from govshare.storage.kubo import ENV_TOKEN, KuboBlobStore
from govshare.storage.local import LocalBlobStore
from govshare.storage.unixfs import compute_cid

__all__ = [
    "CAR",
    "CID",
    "ENV_TOKEN",
    "FACTORIES",
    "GC",
    "PIN",
    "SWEEP",
    "BlobNotFound",
    "BlobStat",
    "BlobStore",
    "BlockCorrupted",
    "CarImport",
    "GCReport",
    "InvalidBlock",
    "InvalidCAR",
    "InvalidCID",
    "InvalidStoreURL",
    "KuboBlobStore",
    "KuboError",
    "LocalBlobStore",
    "SweepReport",
    "UnsupportedCID",
    "UnsupportedOperation",
    "compute_cid",
    "open_store",
    "parse_cid",
    "put_many",
    "require",
    "save_to",
]


def _local(rest: str, *, home: Path | None = None, **_: Any) -> BlobStore:
    if rest:
        return LocalBlobStore(Path(rest).expanduser())
    from govshare.home import blob_dir, resolve_home

    return LocalBlobStore(blob_dir(home or resolve_home()))


def _kubo(rest: str, *, token: str | None = None, **kw: Any) -> BlobStore:
    if not rest.startswith(("http://", "https://")):
        raise InvalidStoreURL(
            f"a Kubo store URL looks like kubo:http://127.0.0.1:5001, not kubo:{rest}"
        )
    transport = kw.get("transport")
    return KuboBlobStore(
        rest, token=token, transport=transport, swarm_timeout=kw.get("swarm_timeout")
    )


FACTORIES: dict[str, Callable[..., BlobStore]] = {"local": _local, "kubo": _kubo}


def open_store(
    url: str | None = None,
    *,
    home: str | os.PathLike[str] | None = None,
    token: str | None = None,
    **options: Any,
) -> BlobStore:
    """Open the blob store named by ``url`` (default ``local:``; the ``store``
    setting, ``GOVSHARE_STORE``, is the caller's to pass). ``token`` is a Kubo
    RPC API's bearer token (the ``kubo_token`` setting)."""
    url = url or "local:"
    scheme, sep, rest = url.partition(":")
    factory = FACTORIES.get(scheme) if sep else None
    if factory is None:
        known = ", ".join(f"{k}:" for k in sorted(FACTORIES))
        raise InvalidStoreURL(f"unknown blob store {url!r}: use one of {known}")
    home_path = Path(home) if home is not None else None
    return factory(rest, home=home_path, token=token, **options)


def require(store: BlobStore, capability: str) -> None:
    """Raise :class:`UnsupportedOperation` unless ``store`` declares ``capability``."""
    if capability not in store.capabilities:
        raise UnsupportedOperation(f"{store!r} does not support {capability}")


def save_to(store: BlobStore, cid: CID | str, path: str | os.PathLike[str]) -> int:
    """Write a blob to ``path`` all-or-nothing: to a temp file beside it, renamed into
    place only once every block has verified. Returns the number of bytes."""
    import tempfile

    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent or ".", prefix=f".{target.name}.")
    total = 0
    try:
        with os.fdopen(fd, "wb") as fh:
            for chunk in store.get(cid):
                fh.write(chunk)
                total += len(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return total
