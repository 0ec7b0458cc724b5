"""Storage errors: subclasses of the govshare tree, each with its own stable code.

InputError
├── InvalidCID           not a CID we can parse (bad base, bad varint, bad multihash)
├── UnsupportedCID       a valid CID we cannot verify (hash other than sha2-256 / identity)
├── InvalidBlock         bytes that are not valid dag-pb / UnixFS / dag-cbor
└── InvalidCAR           a CAR stream that does not follow the CARv1 spec
NotFound
└── BlobNotFound         the store has no such block / DAG
IntegrityError
└── BlockCorrupted       a block's bytes do not hash to its CID (disk, CAR or Kubo)
ConfigError
└── InvalidStoreURL      ``open_store`` could not make sense of the URL
StorageError
├── UnsupportedOperation the backend does not declare this capability
├── KuboError            Kubo answered with an error we could not map
└── StorageUnavailable   (from govshare.errors) Kubo down, timed out, refused the token
"""

from __future__ import annotations

from govshare.errors import (
    ConfigError,
    InputError,
    IntegrityError,
    NotFound,
    StorageError,
    StorageUnavailable,
)

__all__ = [
    "BlobNotFound",
    "BlockCorrupted",
    "InvalidBlock",
    "InvalidCAR",
    "InvalidCID",
    "InvalidStoreURL",
    "KuboError",
    "StorageError",
    "StorageUnavailable",
    "UnsupportedCID",
    "UnsupportedOperation",
]


class InvalidCID(InputError):
    code = "storage.invalid_cid"


class UnsupportedCID(InputError):
    code = "storage.unsupported_cid"


class InvalidBlock(InputError):
    code = "storage.invalid_block"
    status = 422


class InvalidCAR(InputError):
    code = "storage.invalid_car"


class BlobNotFound(NotFound):
    code = "storage.not_found"


class BlockCorrupted(IntegrityError):
    code = "storage.block_corrupted"


class InvalidStoreURL(ConfigError):
    code = "storage.invalid_url"
    status = 400


class UnsupportedOperation(StorageError):
    code = "storage.unsupported"
    status = 501


class KuboError(StorageError):
    code = "storage.kubo_error"
