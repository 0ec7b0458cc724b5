"""Backends for the storage conformance suite: the embedded local store, and the
Kubo client talking to a real Kubo daemon (``engines.KuboDaemon``, built by
``make setup``; those cases skip, saying why, where it cannot run)."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import engines
from govshare.storage import CID, BlobStore, KuboBlobStore, LocalBlobStore
from govshare.storage.unixfs import import_stream

TOKEN = "s3cret-token"

# Import defaults unlike Kubo's stock ones (IPIP-499's unixfs-v1-2025 profile, and
# trickle): our client must pass every CID-shaping option itself, so the CIDs in
# these tests would change if it relied on any node default.
ODD_IMPORT_DEFAULTS = {
    "Import.CidVersion": 1,
    "Import.UnixFSRawLeaves": True,
    "Import.UnixFSChunker": "size-1048576",
    "Import.UnixFSFileMaxLinks": 1024,
    "Import.UnixFSDAGLayout": "trickle",
    "Import.HashFunction": "sha2-512",
}


@dataclass
class Backend:
    name: str
    store: BlobStore
    workdir: Path  # a scratch directory of this test's own
    block_file: Callable[[CID], Path]  # the file on disk holding one block (to damage it)

    def dag_files(self, data: bytes, *, cid_version: int = 0) -> list[Path]:
        """The files holding every block of ``data``'s DAG as ``put`` stores it (root last)."""
        cids: list[CID] = []
        import_stream(io.BytesIO(data), lambda c, _b: cids.append(c), cid_version=cid_version)
        return [self.block_file(c) for c in dict.fromkeys(cids)]


@pytest.fixture(scope="session")
def storage_kubo() -> Iterator[engines.KuboDaemon]:
    """The storage suite's own Kubo: an API token, and odd import defaults."""
    try:
        daemon = engines.KuboDaemon(token=TOKEN, config=ODD_IMPORT_DEFAULTS)
    except engines.EngineUnavailable as exc:
        pytest.skip(str(exc))
    with engines.running(daemon):
        yield daemon


@pytest.fixture
def kubo_store(storage_kubo: engines.KuboDaemon) -> Iterator[KuboBlobStore]:
    store = KuboBlobStore(storage_kubo.api_url, token=TOKEN, backoff=0)
    yield store
    store.close()


@pytest.fixture(params=["local", "kubo"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "local":
        local = LocalBlobStore(tmp_path / "blobs")
        yield Backend("local", local, tmp_path, local._path)
        return
    daemon: engines.KuboDaemon = request.getfixturevalue("storage_kubo")
    store = KuboBlobStore(daemon.api_url, token=TOKEN, backoff=0)
    yield Backend("kubo", store, tmp_path, daemon.block_file)
    store.close()


@pytest.fixture
def local_store(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")
