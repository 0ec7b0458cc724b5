"""The Kubo backend against a fake Kubo (``fake_kubo.py``, over ``httpx.MockTransport``),
for what a real, honest daemon cannot be made to do on cue: lie about a CID on add,
refuse exactly one connection, time out, or show how many attempts were made and
that nothing was sent. Everything else about the backend runs against real daemons
(``test_kubo_daemon.py`` and the conformance suite). The store-URL tests need no Kubo.
"""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import pytest

from govshare.errors import StorageUnavailable
from govshare.storage import (
    BlockCorrupted,
    InvalidStoreURL,
    KuboBlobStore,
    LocalBlobStore,
    open_store,
)

from .fake_kubo import FakeKubo

TOKEN = "s3cret-token"


@pytest.fixture
def fake(tmp_path: Path) -> FakeKubo:
    return FakeKubo(LocalBlobStore(tmp_path / "kubo"), token=TOKEN)


@pytest.fixture
def kubo(fake: FakeKubo) -> KuboBlobStore:
    return KuboBlobStore("http://kubo:5001", token=TOKEN, transport=fake.transport(), backoff=0)


def test_a_lying_kubo_is_caught_on_add(fake: FakeKubo, kubo: KuboBlobStore) -> None:
    fake.lie_about_cid = True
    with pytest.raises(BlockCorrupted, match="bytes make"):
        kubo.put(io.BytesIO(b"the real bytes"))


def test_kubo_down_is_storage_unavailable_after_bounded_retries(
    fake: FakeKubo, kubo: KuboBlobStore
) -> None:
    fake.down = True
    with pytest.raises(StorageUnavailable, match="cannot reach Kubo") as exc:
        kubo.has("QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH")
    assert exc.value.code == "storage.unavailable"
    assert len(fake.requests) == 4  # one try and three retries


def test_retry_recovers_when_kubo_comes_back(fake: FakeKubo, kubo: KuboBlobStore) -> None:
    calls = {"n": 0}
    inner = fake.handle

    def flaky(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            raise httpx.ConnectError("refused", request=request)
        return inner(request)

    store = KuboBlobStore(
        "http://kubo:5001", token=TOKEN, transport=httpx.MockTransport(flaky), backoff=0
    )
    cid = store.put(io.BytesIO(b"after a hiccup"))
    assert b"".join(store.get(cid)) == b"after a hiccup"


def test_timeout_is_storage_unavailable(tmp_path: Path) -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    store = KuboBlobStore("http://kubo:5001", transport=httpx.MockTransport(slow))
    with pytest.raises(StorageUnavailable, match="in time"):
        store.stat("QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH")


def test_import_refuses_a_bad_car_before_sending(fake: FakeKubo, kubo: KuboBlobStore) -> None:
    from govshare.storage import InvalidCAR

    with pytest.raises(InvalidCAR):
        kubo.import_car(io.BytesIO(b"\x05hello"))
    assert not any(r.url.path == "/api/v0/dag/import" for r in fake.requests)


@pytest.mark.parametrize("url", ["kubo:localhost:5001", "ipfs:http://x", "nothing", "kubo:"])
def test_bad_store_urls(url: str) -> None:
    with pytest.raises(InvalidStoreURL):
        open_store(url)


def test_local_url_and_default_home(tmp_path: Path) -> None:
    store = open_store(f"local:{tmp_path / 'x'}")
    assert isinstance(store, LocalBlobStore)
    default = open_store(None, home=tmp_path / "home")
    assert isinstance(default, LocalBlobStore)
    assert default.root == tmp_path / "home" / "blobs"


def test_a_store_dropped_without_close_releases_its_connections() -> None:
    # An unclosed pooled socket, collected, is a ResourceWarning in whatever code
    # runs then: a store nobody closed must still close its HTTP client.
    import gc

    from govshare.audit.sources import HttpSource

    store = KuboBlobStore("http://127.0.0.1:1")
    source = HttpSource("http://127.0.0.1:1")
    clients = [store._client, source.client]
    assert not any(c.is_closed for c in clients)
    del store, source
    gc.collect()
    assert all(c.is_closed for c in clients)


def test_close_is_idempotent_and_final() -> None:
    store = KuboBlobStore("http://127.0.0.1:1")
    store.close()
    store.close()
    assert store._client.is_closed
