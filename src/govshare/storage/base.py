"""The :class:`BlobStore` protocol every storage backend implements.

Required: ``put``, ``get``, ``has``, ``stat``. Optional operations are declared in
``capabilities`` (a frozenset of the names below) and raise
:class:`~govshare.storage.errors.UnsupportedOperation` when absent.

Every backend returns only verified data: each block is hashed against its CID
before a byte of it is handed to the caller.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol, runtime_checkable

from govshare.storage.cid import CID

# Optional capabilities.
PIN = "pin"  # pin / unpin / pins
GC = "gc"  # gc(): drop blocks no pin reaches
CAR = "car"  # export_car / import_car
SWEEP = "sweep"  # sweep_leftovers(): delete temporary files of interrupted writes


@dataclass(frozen=True, slots=True)
class BlobStat:
    cid: CID
    size: int  # file bytes
    block_size: int  # bytes of the root block
    codec: str  # "dag-pb" or "raw"
    pinned: bool | None = None  # None when the backend cannot tell cheaply

    def to_dict(self) -> dict[str, object]:
        return {
            "cid": str(self.cid),
            "size": self.size,
            "block_size": self.block_size,
            "codec": self.codec,
            "pinned": self.pinned,
        }


@dataclass(frozen=True, slots=True)
class GCReport:
    # Blocks deleted. Kubo keys blocks by multihash alone and reports each as a
    # raw-codec CIDv1: compare them with ``multihash``, not the whole CID.
    removed: list[CID] = field(default_factory=list)
    freed_bytes: int = 0

    def to_dict(self) -> dict[str, object]:
        return {"removed": [str(c) for c in self.removed], "freed_bytes": self.freed_bytes}


@dataclass(frozen=True, slots=True)
class SweepReport:
    """What :meth:`BlobStore.sweep_leftovers` removed."""

    files: int = 0  # temporary files removed
    bytes: int = 0  # their size

    def to_dict(self) -> dict[str, object]:
        return {"files": self.files, "bytes": self.bytes}


@dataclass(frozen=True, slots=True)
class CarImport:
    roots: list[CID]
    blocks: int


@runtime_checkable
class BlobStore(Protocol):
    """Content-addressed file storage with Kubo-identical CIDs."""

    capabilities: frozenset[str]

    def put(
        self,
        stream: BinaryIO,
        *,
        cid_version: int = 0,
        raw_leaves: bool | None = None,
        pin: bool = True,
    ) -> CID:
        """Store the bytes of ``stream`` as a UnixFS file; return its CID (as ``ipfs add``
        with ``--cid-version``; raw leaves default to ``cid_version == 1``)."""
        ...

    def get(self, cid: CID | str) -> Iterator[bytes]:
        """The file's bytes, in order. Each block is verified before its bytes are
        yielded; a mismatch raises :class:`BlockCorrupted` and yields nothing more."""
        ...

    def has(self, cid: CID | str) -> bool:
        """Whether the root block is held (locally, for Kubo: without network)."""
        ...

    def stat(self, cid: CID | str) -> BlobStat:
        """Size and codec of a stored file (raises :class:`BlobNotFound`)."""
        ...

    def pin(self, cid: CID | str) -> None:
        """Pin recursively (capability ``pin``)."""
        ...

    def unpin(self, cid: CID | str) -> None:
        """Remove a recursive pin (capability ``pin``)."""
        ...

    def gc(self) -> GCReport:
        """Delete blocks no pin reaches (capability ``gc``)."""
        ...

    def sweep_leftovers(self) -> SweepReport:
        """Delete the temporary files writes that never finished left behind (a
        killed process); waits for writes in progress (capability ``sweep``)."""
        ...

    def export_car(self, cid: CID | str, out: BinaryIO) -> int:
        """Write a CARv1 of the DAG; returns the number of blocks (capability ``car``)."""
        ...

    def import_car(self, stream: BinaryIO, *, pin_roots: bool = True) -> CarImport:
        """Load every block of a CARv1, each verified (capability ``car``)."""
        ...

    def close(self) -> None: ...


def put_many(
    store: BlobStore, streams: Sequence[BinaryIO], *, cid_version: int = 0, pin: bool = True
) -> list[CID]:
    """Store several files: in one go where the store can (the local store makes
    them durable and pins them together), else one :meth:`BlobStore.put` each."""
    many = getattr(store, "put_many", None)
    if callable(many):
        return list(many(streams, cid_version=cid_version, pin=pin))
    return [store.put(fh, cid_version=cid_version, pin=pin) for fh in streams]
