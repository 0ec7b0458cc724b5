"""The Kubo backend's own behaviour: what it sends, how it reads Kubo's answers and
errors, and what it refuses to believe.

No Kubo can run on this machine: these tests run the client against ``FakeKubo``
(``fake_kubo.py``) through ``httpx.MockTransport``, which answers with the request
and response shapes of Kubo's RPC reference (https://docs.ipfs.tech/reference/kubo/rpc/):
``/api/v0/add`` NDJSON ``{"Name","Hash","Size"}``, ``block/stat`` ``{"Key","Size"}``,
errors as HTTP 500 ``{"Message","Code":0,"Type":"error"}``, HTTP 403 without the token.
"""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import pytest

from govshare.errors import StorageUnavailable
from govshare.storage import (
    BlobNotFound,
    BlockCorrupted,
    InvalidStoreURL,
    KuboBlobStore,
    KuboError,
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


def test_add_passes_every_import_option_explicitly(fake: FakeKubo, kubo: KuboBlobStore) -> None:
    kubo.put(io.BytesIO(b"x" * 300_000), cid_version=1, pin=False)
    add = next(r for r in fake.requests if r.url.path == "/api/v0/add")
    assert add.method == "POST"
    p = add.url.params
    assert (p["cid-version"], p["raw-leaves"], p["chunker"], p["pin"]) == (
        "1",
        "true",
        "size-262144",
        "false",
    )
    assert add.headers["authorization"] == f"Bearer {TOKEN}"
    assert add.headers["content-type"].startswith("multipart/form-data; boundary=")


def test_add_streams_a_non_seekable_input(kubo: KuboBlobStore) -> None:
    class OneWay(io.RawIOBase):
        def __init__(self) -> None:
            self.left = 1_000_000

        def readable(self) -> bool:
            return True

        def readinto(self, b) -> int:  # type: ignore[no-untyped-def]
            n = min(len(b), self.left, 65536)
            b[:n] = b"z" * n
            self.left -= n
            return n

    cid = kubo.put(io.BufferedReader(OneWay()))
    assert b"".join(kubo.get(cid)) == b"z" * 1_000_000


def test_a_lying_kubo_is_caught_on_add(fake: FakeKubo, kubo: KuboBlobStore) -> None:
    fake.lie_about_cid = True
    with pytest.raises(BlockCorrupted, match="hash to"):
        kubo.put(io.BytesIO(b"the real bytes"))


def test_a_tampered_block_from_kubo_releases_nothing(fake: FakeKubo, kubo: KuboBlobStore) -> None:
    cid = kubo.put(io.BytesIO(b"y" * 600_000))
    fake.tamper_blocks = True
    out = []
    with pytest.raises(BlockCorrupted):
        for chunk in kubo.get(cid):
            out.append(chunk)
    assert out == []  # the root was already wrong: not one byte came out
    with pytest.raises(BlockCorrupted):
        kubo.stat(cid)


def test_wrong_token_is_a_clear_error_without_the_token(fake: FakeKubo) -> None:
    store = KuboBlobStore("http://kubo:5001", token="wrong", transport=fake.transport())
    with pytest.raises(StorageUnavailable) as exc:
        store.has("QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH")
    assert "403" in exc.value.message
    assert "wrong" not in exc.value.message and TOKEN not in exc.value.message
    assert "wrong" not in repr(store)


def test_token_from_environment(fake: FakeKubo, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOVSHARE_KUBO_TOKEN", TOKEN)
    store = open_store("kubo:http://kubo:5001", transport=fake.transport())
    assert isinstance(store, KuboBlobStore)
    assert not store.has("QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH")


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


def test_kubo_error_shape_is_mapped() -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            500, json={"Message": "invalid path: bad thing", "Code": 0, "Type": "error"}
        )

    store = KuboBlobStore("http://kubo:5001", transport=httpx.MockTransport(fail))
    with pytest.raises(KuboError, match="invalid path: bad thing"):
        store.pin("QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH")


def test_not_found_error_is_blob_not_found(kubo: KuboBlobStore) -> None:
    with pytest.raises(BlobNotFound):
        kubo.stat("QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH")


def test_gateway_address_gets_a_hint() -> None:
    def gateway(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, text="404 page not found")

    store = KuboBlobStore("http://kubo:8080", transport=httpx.MockTransport(gateway))
    with pytest.raises(KuboError, match="port 5001"):
        store.has("QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH")


def test_export_uses_dag_export_and_verifies(fake: FakeKubo, kubo: KuboBlobStore) -> None:
    cid = kubo.put(io.BytesIO(b"car me" * 100_000))
    out = io.BytesIO()
    assert kubo.export_car(cid, out) == 4
    assert any(r.url.path == "/api/v0/dag/export" for r in fake.requests)


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
