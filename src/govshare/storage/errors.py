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
    """Not a CID govshare can parse (bad base, varint or multihash)."""

    code = "storage.invalid_cid"
    remedy = "Copy the CID again as `govshare blob add` or `ipfs add` printed it."


class UnsupportedCID(InputError):
    """A valid CID govshare cannot verify (a hash other than sha2-256 or identity)."""

    code = "storage.unsupported_cid"
    remedy = "Use a CIDv0/CIDv1 with sha2-256, as `ipfs add` makes by default."


class InvalidBlock(InputError):
    """Bytes that are not valid dag-pb, UnixFS or dag-cbor."""

    code = "storage.invalid_block"
    status = 422
    remedy = "Do not use the block; fetch it from another source."


class InvalidCAR(InputError):
    """A CAR stream that does not follow the CARv1 spec."""

    code = "storage.invalid_car"
    remedy = "Export the CAR again (`ipfs dag export`) and import that."


class BlobNotFound(NotFound):
    """The blob store has no such block or DAG."""

    code = "storage.not_found"
    remedy = "Check the CID and the store URL; the blob may live in another department's store."


class BlockCorrupted(IntegrityError):
    """A block's bytes do not hash to its CID (disk, CAR or Kubo)."""

    code = "storage.block_corrupted"
    remedy = "Do not use the data; repair the store from another copy."


class InvalidStoreURL(ConfigError):
    """A blob store URL that is not local:PATH or kubo:http(s)://HOST:PORT."""

    code = "storage.invalid_url"
    status = 400
    remedy = "Fix --store / GOVSHARE_STORE, e.g. kubo:http://127.0.0.1:5001."


class UnsupportedOperation(StorageError):
    """The blob store does not declare this capability (pin, gc, CAR)."""

    code = "storage.unsupported"
    status = 501
    remedy = "Use a store that has it (Kubo pins and garbage-collects)."


class KuboError(StorageError):
    """Kubo answered with an error govshare could not map."""

    code = "storage.kubo_error"
    remedy = "Read Kubo's message; check the node's version and log."
