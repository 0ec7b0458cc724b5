"""Backends for the storage conformance suite: the local store, and the Kubo client
talking to a fake Kubo (``fake_kubo.FakeKubo``) through ``httpx.MockTransport``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from govshare.storage import BlobStore, KuboBlobStore, LocalBlobStore

from .fake_kubo import FakeKubo


@dataclass
class Backend:
    name: str
    store: BlobStore
    blocks: LocalBlobStore  # where the blocks physically are (to damage them)
    fake: FakeKubo | None = None


@pytest.fixture(params=["local", "kubo"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    local = LocalBlobStore(tmp_path / "blobs")
    if request.param == "local":
        yield Backend("local", local, local)
        return
    fake = FakeKubo(local, token="s3cret-token")
    store = KuboBlobStore(
        "http://127.0.0.1:5001", token="s3cret-token", transport=fake.transport(), backoff=0
    )
    yield Backend("kubo", store, local, fake)
    store.close()


@pytest.fixture
def local_store(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")
