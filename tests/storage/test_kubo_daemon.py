"""The Kubo backend against real Kubo daemons: what the recorded responses could not
show. The storage suite's daemon (``conftest.storage_kubo``) wants an API token and
has odd import defaults; tests that stop, damage or reconfigure a daemon start
their own."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import engines
from govshare.errors import StorageUnavailable
from govshare.storage import (
    BlobNotFound,
    BlockCorrupted,
    KuboBlobStore,
    KuboError,
    compute_cid,
    open_store,
)
from govshare.storage.unixfs import CHUNK_SIZE, MAX_LINKS, import_stream

from .conftest import TOKEN

pytestmark = pytest.mark.integration


@pytest.fixture
def own_kubo(tmp_path: Path) -> Iterator[engines.KuboDaemon]:
    """A daemon of this test's own, to stop, damage or reconfigure."""
    try:
        daemon = engines.KuboDaemon(tmp_path / "kubo")
    except engines.EngineUnavailable as exc:
        pytest.skip(str(exc))
    with engines.running(daemon):
        yield daemon


def _dag_cids(data: bytes) -> list:  # type: ignore[type-arg]
    cids: list = []  # type: ignore[type-arg]
    import_stream(io.BytesIO(data), lambda c, _b: cids.append(c))
    return cids  # leaves first, root last


def test_node_import_defaults_do_not_reshape_a_file_of_more_than_174_chunks(
    kubo_store: KuboBlobStore,
) -> None:
    # The storage daemon's Import.UnixFSFileMaxLinks is 1024: unless the client passes
    # max-file-links itself, Kubo builds a one-level DAG where we build two levels.
    data = os.urandom((MAX_LINKS + 1) * CHUNK_SIZE)
    for version in (0, 1):
        cid = kubo_store.put(io.BytesIO(data), cid_version=version, pin=False)
        assert cid == compute_cid(data, cid_version=version)


def test_a_node_that_writes_dag_pb_data_first_is_refused(tmp_path: Path) -> None:
    """Import.UnixFSPBNodeFieldOrder has no per-request override: such a node's CIDs
    for multi-block files differ from ``ipfs add``'s, and put refuses them."""
    try:
        daemon = engines.KuboDaemon(
            tmp_path / "kubo", config={"Import.UnixFSPBNodeFieldOrder": "data-first"}
        )
    except engines.EngineUnavailable as exc:
        pytest.skip(str(exc))
    with engines.running(daemon):
        store = KuboBlobStore(daemon.api_url, backoff=0)
        assert store.put(io.BytesIO(b"one block")) == compute_cid(b"one block")
        with pytest.raises(BlockCorrupted, match="UnixFSPBNodeFieldOrder") as exc:
            store.put(io.BytesIO(os.urandom(CHUNK_SIZE + 1)))
        assert exc.value.code == "storage.block_corrupted"
        store.close()


def test_a_stopped_daemon_is_unavailable_and_a_restarted_one_has_everything(
    own_kubo: engines.KuboDaemon,
) -> None:
    store = KuboBlobStore(own_kubo.api_url, backoff=0)
    data = os.urandom(2 * CHUNK_SIZE + 3)
    cid = store.put(io.BytesIO(data))
    own_kubo.stop()
    for call in (
        lambda: store.has(cid),
        lambda: b"".join(store.get(cid)),
        lambda: store.put(io.BytesIO(b"while down")),
        lambda: store.pin(cid),
    ):
        with pytest.raises(StorageUnavailable, match="cannot reach Kubo") as exc:
            call()
        assert exc.value.code == "storage.unavailable"
    own_kubo.start()  # same repo, same API address
    assert b"".join(store.get(cid)) == data
    store.gc()  # the pin survived the restart
    assert store.has(cid)
    store.close()


def test_a_killed_daemon_comes_back_with_what_it_acknowledged(
    own_kubo: engines.KuboDaemon,
) -> None:
    store = KuboBlobStore(own_kubo.api_url, backoff=0)
    data = os.urandom(CHUNK_SIZE + 1)
    cid = store.put(io.BytesIO(data))
    own_kubo.stop(hard=True)
    own_kubo.start()
    assert b"".join(store.get(cid)) == data
    store.close()


def test_missing_content_is_not_found_at_once_not_waited_for(kubo_store: KuboBlobStore) -> None:
    # An online Kubo with no peers would wait for ever on the swarm; we ask offline.
    missing = compute_cid(b"never stored anywhere")
    with pytest.raises(BlobNotFound):
        b"".join(kubo_store.get(missing))
    with pytest.raises(BlobNotFound):
        kubo_store.pin(missing)
    with pytest.raises(BlobNotFound):
        kubo_store.export_car(missing, io.BytesIO())


def test_a_dag_with_a_block_gone_is_not_found_for_get_pin_and_export(
    own_kubo: engines.KuboDaemon,
) -> None:
    store = KuboBlobStore(own_kubo.api_url, backoff=0)
    data = os.urandom(3 * CHUNK_SIZE)
    cid = store.put(io.BytesIO(data), pin=False)
    second_leaf = _dag_cids(data)[1]
    own_kubo.block_file(second_leaf).unlink()
    out = bytearray()
    with pytest.raises(BlobNotFound):
        for chunk in store.get(cid):
            out += chunk
    assert bytes(out) == data[:CHUNK_SIZE]  # the verified first leaf, then the gap
    # Kubo's pin/add would wait out its timeout here; dag/stat fails at once.
    with pytest.raises(BlobNotFound):
        store.pin(cid)
    # dag/export stops at the gap with a clean-looking CAR; only the missing links tell.
    with pytest.raises(BlobNotFound, match=r"lacks \d+ of the DAG's blocks"):
        store.export_car(cid, io.BytesIO())
    store.close()


def test_swarm_timeout_bounds_a_fetch_from_the_swarm(kubo_daemon: engines.KuboDaemon) -> None:
    store = KuboBlobStore(kubo_daemon.api_url, backoff=0, swarm_timeout=0.5)
    missing = compute_cid(b"nobody in the swarm has this")
    with pytest.raises(BlobNotFound, match=r"in its swarm within 0\.5 s"):
        b"".join(store.get(missing))
    with pytest.raises(BlobNotFound, match="swarm"):
        store.pin(missing)
    held = store.put(io.BytesIO(b"held here"))
    assert b"".join(store.get(held)) == b"held here"
    store.close()
    with pytest.raises(ValueError, match="swarm_timeout"):
        KuboBlobStore(kubo_daemon.api_url, swarm_timeout=0)


def test_the_token_is_required_and_never_shown(storage_kubo: engines.KuboDaemon) -> None:
    missing = compute_cid(b"x")
    for token in ("wrong-token", None):
        store = KuboBlobStore(storage_kubo.api_url, token=token or "", backoff=0)
        with pytest.raises(StorageUnavailable, match="HTTP 403") as exc:
            store.has(missing)
        assert TOKEN not in exc.value.message
        assert "wrong-token" not in exc.value.message and "wrong-token" not in repr(store)
        store.close()


def test_the_token_from_the_environment(
    storage_kubo: engines.KuboDaemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    from govshare.settings import load_settings

    monkeypatch.setenv("GOVSHARE_KUBO_TOKEN", TOKEN)
    settings = load_settings()  # the entry point's one read; the store gets the value
    store = open_store(f"kubo:{storage_kubo.api_url}", token=settings.secret("kubo_token"))
    assert isinstance(store, KuboBlobStore)
    cid = store.put(io.BytesIO(b"via the environment"))
    assert store.has(cid)
    store.close()


def test_a_gateway_address_gets_a_hint(kubo_daemon: engines.KuboDaemon) -> None:
    store = KuboBlobStore(kubo_daemon.gateway_url, backoff=0)
    with pytest.raises(KuboError, match="port 5001"):
        store.has(compute_cid(b"x"))
    store.close()


def test_kubo_errors_keep_kubo_s_message(kubo_store: KuboBlobStore) -> None:
    with pytest.raises(KuboError, match="Kubo refused the request: invalid path"):
        kubo_store._post("block/stat", {"arg": "/ipfs/not-a-cid-at-all"})


def test_a_non_seekable_input_streams_once(kubo_store: KuboBlobStore) -> None:
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

    cid = kubo_store.put(io.BufferedReader(OneWay()))
    assert cid == compute_cid(b"z" * 1_000_000)
    assert b"".join(kubo_store.get(cid)) == b"z" * 1_000_000
