"""Guards the public API of govshare.storage (the broker builds on it)."""

from __future__ import annotations

import inspect

import govshare.storage as storage
from govshare.storage.base import BlobStore


def test_exported_members() -> None:
    for name in storage.__all__:
        assert hasattr(storage, name), name
    assert {"open_store", "BlobStore", "CID", "save_to", "LocalBlobStore", "KuboBlobStore"} <= set(
        storage.__all__
    )


def test_backends_match_the_protocol_signatures() -> None:
    for backend in (storage.LocalBlobStore, storage.KuboBlobStore):
        for name in (
            "put",
            "get",
            "has",
            "stat",
            "pin",
            "unpin",
            "gc",
            "sweep_leftovers",
            "export_car",
            "import_car",
        ):
            proto = inspect.signature(getattr(BlobStore, name))
            impl = inspect.signature(getattr(backend, name))
            assert list(proto.parameters) == list(impl.parameters), (backend, name)


def test_error_codes_are_unique_and_stable() -> None:
    from govshare.storage import errors

    codes = {
        cls.code
        for cls in vars(errors).values()
        if isinstance(cls, type) and cls.__module__ == errors.__name__
    }
    assert codes == {
        "storage.invalid_cid",
        "storage.unsupported_cid",
        "storage.invalid_block",
        "storage.invalid_car",
        "storage.not_found",
        "storage.block_corrupted",
        "storage.invalid_url",
        "storage.unsupported",
        "storage.kubo_error",
    }
