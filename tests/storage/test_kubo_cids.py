"""The embedded store's CIDs equal a real Kubo daemon's ``ipfs add`` CIDs, at every
edge of the balanced DAG layout, in both CID versions, with and without raw leaves.

The daemon is a stock one (``conftest.kubo_daemon``): its ``add`` gets only the
flags a user would type (``--cid-version``, and ``--raw-leaves`` where it differs
from that version's default), plus ``--only-hash``, which builds the same DAG
without writing it. Our side is the importer the local store runs (``put`` itself
for the smaller files; ``compute_cid``, the same importer without the writes, for
the 44 MiB ones).

Edges with Kubo's own chunker (256 KiB, 174 links per node): empty, one byte,
one chunk −1/+0/+1, two chunks, and the 174-link boundary (the last one-level
tree and the first two-level one). Deeper trees would need gigabytes at 256 KiB,
so they use the same layout with small chunks (``--chunker=size-256``: the
174-link and the three-level boundaries) and few links (``--max-file-links=3``: five and
six levels), which the importer takes as parameters.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

import engines
from govshare.storage import CID, LocalBlobStore, compute_cid
from govshare.storage.unixfs import CHUNK_SIZE, MAX_LINKS, import_stream

from .gen_data import kubo_deterministic

pytestmark = pytest.mark.integration

C, L = CHUNK_SIZE, MAX_LINKS
# (cid_version, raw_leaves): None is `ipfs add`'s default for that version.
VARIANTS = [(0, None), (0, True), (1, None), (1, False)]
DEFAULT_SIZES = [0, 1, C - 1, C, C + 1, 2 * C, L * C, L * C + 1]
STORED_UP_TO = 2 * C  # above this, compare with compute_cid (no 44 MiB fsync'd writes)
SMALL_CHUNK = 256
# With 256-byte chunks and 174 links: the 174-link boundary in every variant, and the
# last two-level / first three-level tree (30,277 blocks: ~2 s a case) in each
# version's default, for time.
SMALL_CASES = [
    *((size, v) for size in (L * SMALL_CHUNK, L * SMALL_CHUNK + 1) for v in VARIANTS),
    *((size, v) for size in (L * L * SMALL_CHUNK, L * L * SMALL_CHUNK + 1) for v in VARIANTS[::2]),
]
FEW_LINKS = 3
FEW_LINK_SIZES = [  # with 256-byte chunks and 3 links per node
    FEW_LINKS**4 * SMALL_CHUNK,
    FEW_LINKS**4 * SMALL_CHUNK + 1,
    FEW_LINKS**5 * SMALL_CHUNK + 2 * SMALL_CHUNK + 5,
]
LARGEST = max([*DEFAULT_SIZES, *(size for size, _v in SMALL_CASES), *FEW_LINK_SIZES])


@pytest.fixture(scope="module")
def data() -> bytes:
    # Kubo's own deterministic test input (test/cli/testutils), so a failure reproduces.
    return kubo_deterministic(LARGEST, "govshare kubo cids").read()


def _variant_id(v: tuple[int, bool | None]) -> str:
    version, raw = v
    return f"v{version}-raw_leaves={'default' if raw is None else raw}"


def kubo_add(
    daemon: engines.KuboDaemon, data: bytes, version: int, raw: bool | None, **flags: str
) -> CID:
    params = {"cid-version": str(version), "only-hash": "true", "pin": "false", "quieter": "true"}
    if raw is not None:
        params["raw-leaves"] = "true" if raw else "false"
    params.update(flags)
    answer = daemon.rpc("add", files={"file": ("f", data)}, **params)
    return CID.parse(json.loads(answer.text.strip().splitlines()[-1])["Hash"])


@pytest.mark.parametrize("variant", VARIANTS, ids=_variant_id)
@pytest.mark.parametrize("size", DEFAULT_SIZES)
def test_default_chunker_edges(
    kubo_daemon: engines.KuboDaemon,
    data: bytes,
    size: int,
    variant: tuple[int, bool | None],
    tmp_path: Path,
) -> None:
    version, raw = variant
    blob = data[:size]
    if size <= STORED_UP_TO:
        ours = LocalBlobStore(tmp_path / "blobs").put(
            io.BytesIO(blob), cid_version=version, raw_leaves=raw
        )
    else:
        ours = compute_cid(blob, cid_version=version, raw_leaves=raw)
    assert ours == kubo_add(kubo_daemon, blob, version, raw)


def _ours(blob: bytes, version: int, raw: bool | None, max_links: int) -> CID:
    result = import_stream(
        io.BytesIO(blob),
        lambda _c, _b: None,
        cid_version=version,
        raw_leaves=raw,
        chunk_size=SMALL_CHUNK,
        max_links=max_links,
    )
    return result.cid


@pytest.mark.parametrize(
    ("size", "variant"), SMALL_CASES, ids=[f"{n}-{_variant_id(v)}" for n, v in SMALL_CASES]
)
def test_multi_level_trees_with_small_chunks(
    kubo_daemon: engines.KuboDaemon, data: bytes, size: int, variant: tuple[int, bool | None]
) -> None:
    version, raw = variant
    blob = data[:size]
    kubo = kubo_add(kubo_daemon, blob, version, raw, chunker=f"size-{SMALL_CHUNK}")
    assert _ours(blob, version, raw, MAX_LINKS) == kubo


@pytest.mark.parametrize("variant", VARIANTS, ids=_variant_id)
@pytest.mark.parametrize("size", FEW_LINK_SIZES)
def test_deep_trees_with_few_links(
    kubo_daemon: engines.KuboDaemon, data: bytes, size: int, variant: tuple[int, bool | None]
) -> None:
    version, raw = variant
    blob = data[:size]
    kubo = kubo_add(
        kubo_daemon,
        blob,
        version,
        raw,
        chunker=f"size-{SMALL_CHUNK}",
        **{"max-file-links": str(FEW_LINKS)},
    )
    assert _ours(blob, version, raw, FEW_LINKS) == kubo
