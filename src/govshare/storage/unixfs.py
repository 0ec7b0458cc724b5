"""Build and read UnixFS file DAGs exactly as Kubo's ``ipfs add`` does.

The importer mirrors boxo's ``ipld/unixfs/importer/balanced`` layout with the
``size-262144`` chunker and at most 174 links per node (``helpers.DefaultLinksPerBlock``):

* The input is cut into fixed 256 KiB chunks (the last one shorter).
* Each chunk becomes a leaf: with ``raw_leaves`` a raw block (CIDv1, codec raw);
  otherwise a dag-pb node whose Data is ``UnixFS{Type: File, Data: chunk, filesize: len}``.
* One chunk: the leaf *is* the root. Empty input: one leaf with no data
  (``UnixFS{Type: File, filesize: 0}`` or the empty raw block).
* More chunks: leaves are grouped 174 to a parent, parents 174 to a grandparent,
  and so on; the tree is as deep as needed and filled left to right, so every
  subtree but the rightmost is full. A parent is ``PBNode{Links: [{Hash, Name: "",
  Tsize: cumulative size of the child}], Data: UnixFS{Type: File, filesize: sum,
  blocksizes: [file bytes under each child]}}``.

boxo builds this top-down (``fillNodeRec``); we build the same tree bottom-up as
the chunks stream in, keeping only the not-yet-closed parent at each level, so
memory is O(depth × 174 links), never the file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from govshare.storage.cid import CID, DAG_PB, RAW
from govshare.storage.dagpb import (
    UNIXFS_FILE,
    UNIXFS_RAW,
    PBLink,
    PBNode,
    UnixFSData,
    decode_pbnode,
    decode_unixfs,
    encode_pbnode,
    encode_unixfs,
)
from govshare.storage.errors import BlockCorrupted, InvalidBlock, UnsupportedCID

CHUNK_SIZE = 262144  # Kubo's default chunker: size-262144
MAX_LINKS = 174  # boxo helpers.DefaultLinksPerBlock
# Kubo refuses blocks above 1 MiB without --allow-big-block (bitswap limit); so do we.
MAX_BLOCK_SIZE = 1024 * 1024 + 4096

BlockSink = Callable[[CID, bytes], None]
BlockSource = Callable[[CID], bytes]


@dataclass(frozen=True, slots=True)
class _Link:
    cid: CID
    tsize: int  # cumulative size of the child's DAG (encoded bytes)
    filesize: int  # file bytes under the child


@dataclass(frozen=True, slots=True)
class ImportResult:
    cid: CID
    size: int  # file bytes
    cumulative_size: int  # bytes of every block of the DAG (Kubo's "Size")
    blocks: int


class FileImporter:
    """Streams chunks in, emits blocks through ``sink``, returns the root at :meth:`finish`."""

    def __init__(
        self,
        sink: BlockSink,
        *,
        cid_version: int = 0,
        raw_leaves: bool | None = None,
        chunk_size: int = CHUNK_SIZE,
        max_links: int = MAX_LINKS,
    ) -> None:
        if cid_version not in (0, 1):
            raise ValueError("cid_version must be 0 or 1")
        if not 0 < chunk_size <= 1024 * 1024:
            raise ValueError("chunk_size must be in 1..1048576")
        if max_links < 2:
            raise ValueError("max_links must be at least 2")
        self._sink = sink
        self._version = cid_version
        # Kubo: --cid-version=1 implies --raw-leaves unless said otherwise.
        self._raw_leaves = (cid_version == 1) if raw_leaves is None else raw_leaves
        self.chunk_size = chunk_size
        self._max_links = max_links
        self._levels: list[list[_Link]] = [[]]  # levels[0] holds leaves
        self._buf = bytearray()
        self._blocks = 0
        self._size = 0
        self._done = False

    # input -------------------------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._done:
            raise ValueError("importer already finished")
        self._buf += data
        cs = self.chunk_size
        # Keep the last full chunk back until more data (or the end) arrives: the end
        # decides whether a lone chunk is the root.
        while len(self._buf) > cs:
            chunk = bytes(self._buf[:cs])
            del self._buf[:cs]
            self._add_leaf(chunk)

    def finish(self) -> ImportResult:
        if self._done:
            raise ValueError("importer already finished")
        self._done = True
        if self._buf or not self._levels[0]:
            self._add_leaf(bytes(self._buf))  # also the empty file's single empty leaf
            self._buf.clear()
        root = self._close()
        return ImportResult(root.cid, root.filesize, root.tsize, self._blocks)

    # tree --------------------------------------------------------------------------------

    def _emit(self, cid: CID, block: bytes) -> None:
        self._blocks += 1
        self._sink(cid, block)

    def _add_leaf(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._raw_leaves:
            block = chunk
            cid = CID.for_block(block, codec=RAW, version=1)
        else:
            data = UnixFSData(UNIXFS_FILE, chunk if chunk else None, len(chunk))
            block = encode_pbnode(PBNode((), encode_unixfs(data)))
            cid = CID.for_block(block, codec=DAG_PB, version=self._version)
        self._emit(cid, block)
        self._push(0, _Link(cid, len(block), len(chunk)))

    def _push(self, level: int, link: _Link) -> None:
        if len(self._levels) <= level:
            self._levels.append([])
        if len(self._levels[level]) == self._max_links:
            # This level is full and more is coming: close it into a parent one level up.
            parent = self._make_parent(self._levels[level])
            self._levels[level] = []
            self._push(level + 1, parent)
        self._levels[level].append(link)

    def _make_parent(self, children: list[_Link]) -> _Link:
        data = UnixFSData(
            UNIXFS_FILE,
            None,
            sum(c.filesize for c in children),
            [c.filesize for c in children],
        )
        links = tuple(PBLink(c.cid, "", c.tsize) for c in children)
        block = encode_pbnode(PBNode(links, encode_unixfs(data)))
        cid = CID.for_block(block, codec=DAG_PB, version=self._version)
        self._emit(cid, block)
        return _Link(cid, len(block) + sum(c.tsize for c in children), data.filesize or 0)

    def _close(self) -> _Link:
        level = 0
        while True:
            top = all(not lv for lv in self._levels[level + 1 :])
            pending = self._levels[level]
            if top and len(pending) == 1:
                return pending[0]
            if pending:
                # Every open level below the top closes into a parent, even with one child:
                # that is what boxo's fillNodeRec produces for the rightmost subtree.
                parent = self._make_parent(pending)
                self._levels[level] = []
                self._push(level + 1, parent)
            level += 1


def import_stream(
    stream: BinaryIO,
    sink: BlockSink,
    *,
    cid_version: int = 0,
    raw_leaves: bool | None = None,
    chunk_size: int = CHUNK_SIZE,
    max_links: int = MAX_LINKS,
) -> ImportResult:
    """Chunk ``stream`` into a UnixFS file DAG, handing each block to ``sink``."""
    imp = FileImporter(
        sink,
        cid_version=cid_version,
        raw_leaves=raw_leaves,
        chunk_size=chunk_size,
        max_links=max_links,
    )
    while True:
        data = stream.read(chunk_size)
        if not data:
            break
        imp.write(data)
    return imp.finish()


def compute_cid(data: bytes, *, cid_version: int = 0, raw_leaves: bool | None = None) -> CID:
    """The CID ``ipfs add --only-hash`` gives ``data`` (no blocks kept)."""
    imp = FileImporter(lambda _c, _b: None, cid_version=cid_version, raw_leaves=raw_leaves)
    imp.write(data)
    return imp.finish().cid


# --- reading ------------------------------------------------------------------------------


def file_node_info(cid: CID, block: bytes) -> tuple[int, list[PBLink], bytes]:
    """For a verified file block: ``(file size, child links, inline data)``."""
    if cid.codec == RAW:
        return len(block), [], block
    if cid.codec != DAG_PB:
        raise UnsupportedCID(f"{cid} is a {cid.codec_name} block, not a UnixFS file")
    node = decode_pbnode(block)
    if node.data is None:
        raise InvalidBlock(f"{cid} is a dag-pb node without UnixFS data")
    fs = decode_unixfs(node.data)
    if fs.type not in (UNIXFS_FILE, UNIXFS_RAW):
        raise InvalidBlock(f"{cid} is not a UnixFS file (type {fs.type})")
    inline = fs.data or b""
    if node.links and len(fs.blocksizes) != len(node.links):
        raise InvalidBlock(f"{cid}: blocksizes do not match its links")
    size = fs.filesize if fs.filesize is not None else len(inline) + sum(fs.blocksizes)
    if size != len(inline) + sum(fs.blocksizes):
        raise InvalidBlock(f"{cid}: filesize does not match its data and blocksizes")
    return size, list(node.links), inline


def read_file(root: CID, fetch: BlockSource) -> Iterator[bytes]:
    """Yield the bytes of the UnixFS file ``root``, depth first.

    ``fetch`` returns a block's bytes; every block is hashed against its CID here,
    before any of its data is yielded, whatever ``fetch`` did. Sizes recorded in
    parents are checked against what the children hold."""
    stack: list[tuple[CID, int | None]] = [(root, None)]
    while stack:
        cid, expected = stack.pop()
        cid.check_verifiable()
        block = fetch(cid)
        if len(block) > MAX_BLOCK_SIZE:
            raise InvalidBlock(f"{cid} is larger than the 1 MiB block limit")
        cid.verify(block)
        size, links, inline = file_node_info(cid, block)
        if expected is not None and size != expected:
            raise BlockCorrupted(
                f"{cid} holds {size} bytes but its parent says {expected}", cid=str(cid)
            )
        if inline:
            yield inline
        if links:
            fs = decode_unixfs(decode_pbnode(block).data or b"")
            for link, bsize in reversed(list(zip(links, fs.blocksizes, strict=True))):
                stack.append((link.hash, bsize))
