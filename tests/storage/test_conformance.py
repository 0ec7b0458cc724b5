"""One conformance suite for every BlobStore backend (see ``conftest.backend``):
the embedded local store, and the Kubo client against a real Kubo daemon (with an
API token and deliberately odd import defaults). Damage is done to the blocks'
files on disk: the local store's own, or Kubo's flatfs."""

from __future__ import annotations

import io
import os

import pytest

from govshare.errors import IntegrityError, NotFound
from govshare.storage import (
    CAR,
    CID,
    GC,
    PIN,
    SWEEP,
    BlobNotFound,
    BlobStore,
    BlockCorrupted,
    InvalidCID,
    UnsupportedOperation,
    compute_cid,
    save_to,
)

from .conftest import Backend

SIZES = [0, 1, 262143, 262144, 262145, 3 * 262144 + 17]


def _data(n: int) -> bytes:
    return os.urandom(n)


def test_backend_is_a_blobstore(backend: Backend) -> None:
    assert isinstance(backend.store, BlobStore)
    assert {PIN, GC, CAR} <= backend.store.capabilities


def test_sweep_is_there_exactly_when_declared(backend: Backend) -> None:
    cid = backend.store.put(io.BytesIO(b"stays"))
    if SWEEP in backend.store.capabilities:
        assert backend.store.sweep_leftovers().files == 0
        assert backend.store.has(cid)
    else:
        with pytest.raises(UnsupportedOperation):
            backend.store.sweep_leftovers()


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("version", [0, 1])
def test_round_trip_and_kubo_cid(backend: Backend, size: int, version: int) -> None:
    data = _data(size)
    cid = backend.store.put(io.BytesIO(data), cid_version=version)
    assert cid == compute_cid(data, cid_version=version)
    assert cid.version == version
    assert b"".join(backend.store.get(cid)) == data
    assert b"".join(backend.store.get(str(cid))) == data
    stat = backend.store.stat(cid)
    assert stat.size == size
    assert backend.store.has(cid)


@pytest.mark.parametrize(
    ("data", "version", "expected"),
    [
        (b"hello world\n", 0, "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"),
        (b"", 0, "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"),
        (b"", 1, "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"),
        (b"hello world", 1, "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"),
    ],
)
def test_known_cids_on_every_backend(
    backend: Backend, data: bytes, version: int, expected: str
) -> None:
    assert str(backend.store.put(io.BytesIO(data), cid_version=version)) == expected


def test_unknown_cid_is_not_found(backend: Backend) -> None:
    missing = compute_cid(b"never stored")
    assert not backend.store.has(missing)
    with pytest.raises(BlobNotFound) as exc:
        b"".join(backend.store.get(missing))
    assert isinstance(exc.value, NotFound)
    with pytest.raises(BlobNotFound):
        backend.store.stat(missing)


def test_bad_cid_text_is_input_error(backend: Backend) -> None:
    for bad in ["", "Qm123", "bafy!!!", "zzzz", "hello"]:
        with pytest.raises(InvalidCID):
            backend.store.get(bad)


def test_tampered_block_is_an_integrity_error_with_no_data(backend: Backend) -> None:
    data = _data(3 * 262144)
    cid = backend.store.put(io.BytesIO(data))
    paths = backend.dag_files(data)
    assert len(paths) == 4  # three leaves and their parent
    assert all(p.is_file() for p in paths)
    for path in paths:
        original = path.read_bytes()
        damaged = bytearray(original)
        damaged[len(damaged) // 2] ^= 0x01
        path.write_bytes(bytes(damaged))
        out = bytearray()
        with pytest.raises(BlockCorrupted) as exc:
            for chunk in backend.store.get(cid):
                out += chunk
        assert isinstance(exc.value, IntegrityError)
        assert exc.value.code == "storage.block_corrupted"
        # Whatever came out before the damaged block is a verified prefix, never the damage.
        assert data.startswith(bytes(out)) and len(out) < len(data)
        if path == paths[-1]:  # the root: stat reads it too, and nothing came out
            assert out == b""
            with pytest.raises(BlockCorrupted):
                backend.store.stat(cid)
        path.write_bytes(original)
    assert b"".join(backend.store.get(cid)) == data


def test_save_to_is_all_or_nothing(backend: Backend, tmp_path: os.PathLike[str]) -> None:
    data = _data(2 * 262144 + 5)
    cid = backend.store.put(io.BytesIO(data))
    target = os.path.join(tmp_path, "out.bin")
    assert save_to(backend.store, cid, target) == len(data)
    with open(target, "rb") as fh:
        assert fh.read() == data
    os.unlink(target)
    for path in backend.dag_files(data):
        raw = path.read_bytes()
        path.write_bytes(raw[:-1] + bytes([raw[-1] ^ 0x80]))
    with pytest.raises(BlockCorrupted):
        save_to(backend.store, cid, target)
    assert not os.path.exists(target)
    assert [p for p in os.listdir(tmp_path) if p.startswith(".out.bin")] == []


def test_pin_unpin_gc(backend: Backend) -> None:
    keep = backend.store.put(io.BytesIO(_data(300_000)), pin=True)
    drop = backend.store.put(io.BytesIO(_data(300_000)), pin=False)
    report = backend.store.gc()
    assert drop.multihash in {c.multihash for c in report.removed}
    assert not backend.store.has(drop)
    assert backend.store.has(keep)
    backend.store.unpin(keep)
    with pytest.raises(BlobNotFound):
        backend.store.unpin(keep)
    backend.store.gc()
    assert not backend.store.has(keep)


def test_pin_needs_the_whole_dag(backend: Backend) -> None:
    data = _data(600_000)
    cid = backend.store.put(io.BytesIO(data), pin=False)
    backend.store.pin(cid)
    backend.store.unpin(cid)
    leaf = next(p for p in backend.dag_files(data) if p.stat().st_size > 200_000)
    leaf.unlink()
    with pytest.raises(BlobNotFound):
        backend.store.pin(cid)


def test_car_round_trip_between_backends(backend: Backend, tmp_path: os.PathLike[str]) -> None:
    from govshare.storage import LocalBlobStore

    data = _data(5 * 262144 + 1)
    cid = backend.store.put(io.BytesIO(data), cid_version=1)
    car = io.BytesIO()
    assert backend.store.export_car(cid, car) == 7  # six leaves, one parent
    other = LocalBlobStore(os.path.join(tmp_path, "other"))
    result = other.import_car(io.BytesIO(car.getvalue()))
    assert result.roots == [cid]
    assert result.blocks == 7
    assert b"".join(other.get(cid)) == data
    # and back into this backend, after forgetting it
    backend.store.unpin(cid)
    backend.store.gc()
    assert not backend.store.has(cid)
    again = io.BytesIO()
    other.export_car(cid, again)
    assert again.getvalue() == car.getvalue()
    assert backend.store.import_car(io.BytesIO(again.getvalue())).roots == [cid]
    assert b"".join(backend.store.get(cid)) == data


def test_car_import_rejects_a_tampered_block(backend: Backend) -> None:
    from govshare.storage import LocalBlobStore

    src = LocalBlobStore(backend.workdir / "src")
    cid = src.put(io.BytesIO(b"x" * 1000))
    car = io.BytesIO()
    src.export_car(cid, car)
    raw = bytearray(car.getvalue())
    raw[-1] ^= 0x01
    with pytest.raises(BlockCorrupted):
        backend.store.import_car(io.BytesIO(bytes(raw)))
    assert not backend.store.has(cid)


def test_stat_reports_root_block(backend: Backend) -> None:
    cid = backend.store.put(io.BytesIO(b"hello world\n"))
    stat = backend.store.stat(cid)
    assert stat.cid == cid
    assert stat.size == 12
    assert stat.codec == "dag-pb"
    assert stat.block_size == 20
    assert stat.to_dict()["cid"] == str(cid)


def test_cid_object_and_text_are_interchangeable(backend: Backend) -> None:
    cid = backend.store.put(io.BytesIO(b"abc"), cid_version=1)
    assert isinstance(cid, CID)
    assert backend.store.has(str(cid))
    assert backend.store.has(CID.parse(str(cid)))
