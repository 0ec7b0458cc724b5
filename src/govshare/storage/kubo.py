"""A :class:`~govshare.storage.base.BlobStore` over Kubo's RPC API (``/api/v0``), via httpx.

* ``put`` — ``POST /api/v0/add`` with ``cid-version``, ``raw-leaves``,
  ``chunker=size-262144``, ``max-file-links=174``, ``hash``, ``trickle`` and
  ``pin`` always passed explicitly (a node's ``Import.*`` config cannot change
  the CID behind our back; ``Import.UnixFSPBNodeFieldOrder=data-first`` has no
  per-request override, and such a node's CIDs are refused as different), the file streamed
  as multipart. While uploading, the same bytes run through our own importer
  (hashing only): Kubo's answer must equal the CID we computed, or the put fails.
* ``get`` — ``POST /api/v0/block/get`` block by block from the root, each block
  hashed against its CID before a byte of it is yielded. We do not use ``cat``
  for data: ``cat`` streams bytes that can only be checked at the end (after the
  caller has seen them) and only by re-chunking with the very parameters the file
  was added with — a DAG made another way (trickle, other chunk size, imported
  from a CAR) would be unverifiable. Block-wise fetching verifies any UnixFS DAG
  and never releases an unverified byte.
* ``has``/``stat`` — ``block/stat`` and the root block; ``pin``/``unpin`` —
  ``pin/add``/``pin/rm``; ``gc`` — ``repo/gc``; CAR — ``dag/export`` (every block
  re-hashed as it streams, and the DAG checked complete: a block Kubo could not
  find ends its stream early with only an HTTP trailer to say so) and
  ``dag/import`` (the CAR is verified locally before it is sent).

Reads, pins and exports use only the node's own blocks (``offline=true``), as the
local store does: an online Kubo asked for a block it lacks would otherwise wait
on the swarm, for ever when it has no peers. ``swarm_timeout=N`` lets the node
fetch missing blocks from its swarm, each request bounded by Kubo's ``timeout``
option; what is still missing then is :class:`BlobNotFound`.

Authentication: ``Authorization: Bearer <token>`` for Kubo's
``API.Authorizations``. The token never appears in an error or a log line.
Connection failures are retried a bounded number of times and then reported as
:class:`StorageUnavailable`; Kubo's own errors (HTTP 500 with
``{"Message", "Code", "Type": "error"}``) become typed govshare errors.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO, cast

import httpx

from govshare.storage import car as carlib
from govshare.storage.base import CAR, GC, PIN, BlobStat, CarImport, GCReport, SweepReport
from govshare.storage.cid import CID, encode_varint, parse_cid
from govshare.storage.errors import (
    BlobNotFound,
    BlockCorrupted,
    InvalidCID,
    KuboError,
    StorageUnavailable,
    UnsupportedOperation,
)
from govshare.storage.unixfs import (
    CHUNK_SIZE,
    MAX_BLOCK_SIZE,
    MAX_LINKS,
    FileImporter,
    file_node_info,
    read_file,
)

#: The setting that gives the token (quoted in messages; read by govshare.settings).
ENV_TOKEN = "GOVSHARE_KUBO_TOKEN"  # noqa: S105 - the name of the variable, not a secret
DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=120.0, write=120.0, pool=5.0)
_NOT_FOUND_HINTS = ("not found", "could not find", "no link named", "not pinned")
# Kubo's answer when its `timeout` option ran out (here: a swarm fetch found nothing).
_DEADLINE = "context deadline exceeded"


class KuboBlobStore:
    """Talks to one Kubo node's RPC API (keep that API private: it is admin access)."""

    capabilities = frozenset({PIN, GC, CAR})

    def __init__(
        self,
        api_url: str,
        *,
        token: str | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        retries: int = 3,
        backoff: float = 0.2,
        transport: httpx.BaseTransport | None = None,
        swarm_timeout: float | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.Client(
            base_url=self.api_url + "/api/v0/",
            headers=headers,
            timeout=timeout,
            transport=transport,
        )
        # A store dropped without close() still releases its sockets when it is
        # collected (as a chain Connection does); long-lived owners close it.
        self._release = weakref.finalize(self, self._client.close)
        self._retries = max(0, retries)
        self._backoff = backoff
        if swarm_timeout is not None and swarm_timeout <= 0:
            raise ValueError("swarm_timeout must be a positive number of seconds, or None")
        self.swarm_timeout = swarm_timeout

    def __repr__(self) -> str:
        return f"KuboBlobStore({self.api_url!r})"  # never the token

    def close(self) -> None:
        self._release()

    # --- transport ---------------------------------------------------------------------------

    def _send(self, build: Callable[[], httpx.Request], *, stream: bool = False) -> httpx.Response:
        """Send with bounded retries on connection failures (nothing was sent then)."""
        attempt = 0
        while True:
            request = build()
            try:
                response = self._client.send(request, stream=stream)
            except httpx.ConnectError as exc:
                if attempt < self._retries:
                    time.sleep(self._backoff * (2**attempt))
                    attempt += 1
                    continue
                raise StorageUnavailable(
                    f"cannot reach Kubo at {self.api_url}: is the daemon running and its API"
                    " address right?",
                    url=self.api_url,
                ) from exc
            except httpx.TimeoutException as exc:
                raise StorageUnavailable(
                    f"Kubo at {self.api_url} did not answer in time", url=self.api_url
                ) from exc
            except httpx.HTTPError as exc:
                raise StorageUnavailable(
                    f"talking to Kubo at {self.api_url} failed: {type(exc).__name__}",
                    url=self.api_url,
                ) from exc
            if response.status_code != 200:
                try:
                    if stream:
                        response.read()
                    self._raise_for(response)
                finally:
                    response.close()
            return response

    def _raise_for(self, response: httpx.Response) -> None:
        status = response.status_code
        if status in (401, 403):
            raise StorageUnavailable(
                f"Kubo at {self.api_url} refused the request (HTTP {status}): check the API"
                f" token (${ENV_TOKEN}) and Kubo's API.Authorizations",
                url=self.api_url,
            )
        message = ""
        try:
            body = response.json()
            if isinstance(body, dict):
                message = str(body.get("Message", ""))
        except (ValueError, UnicodeDecodeError):
            message = response.text[:200] if status != 404 else ""
        if status == 404 or status == 405:
            raise KuboError(
                f"Kubo at {self.api_url} does not offer this RPC endpoint (HTTP {status});"
                " is this a Kubo RPC API address (port 5001), not a gateway?",
                url=self.api_url,
            )
        low = message.lower()
        if any(hint in low for hint in _NOT_FOUND_HINTS):
            raise BlobNotFound(f"Kubo has no such content: {message}")
        if _DEADLINE in low and self.swarm_timeout is not None:
            raise BlobNotFound(
                f"Kubo found no such content, locally or in its swarm within"
                f" {self.swarm_timeout:g} s"
            )
        raise KuboError(f"Kubo refused the request: {message or f'HTTP {status}'}")

    def _post(
        self, endpoint: str, params: dict[str, Any] | None = None, **kw: Any
    ) -> httpx.Response:
        return self._send(lambda: self._client.build_request("POST", endpoint, params=params, **kw))

    @staticmethod
    def _json(response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except (ValueError, UnicodeDecodeError) as exc:
            raise KuboError("Kubo answered with something that is not JSON") from exc
        if not isinstance(body, dict):
            raise KuboError("Kubo answered with unexpected JSON")
        return body

    @staticmethod
    def _ndjson(text: str) -> list[dict[str, Any]]:
        out = []
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except ValueError as exc:
                raise KuboError("Kubo answered with malformed JSON lines") from exc
            if isinstance(item, dict):
                if item.get("Type") == "error" or (item.get("Error")):
                    raise KuboError(f"Kubo reported: {item.get('Message') or item.get('Error')}")
                out.append(item)
        return out

    def _reach(self) -> dict[str, str]:
        """Query options for commands that may need blocks the node does not hold."""
        if self.swarm_timeout is None:
            return {"offline": "true"}
        return {"timeout": f"{self.swarm_timeout:g}s"}

    # --- blocks ------------------------------------------------------------------------------

    def _block_get(self, cid: CID) -> bytes:
        response = self._post("block/get", {"arg": str(cid), **self._reach()})
        data = response.content
        if len(data) > MAX_BLOCK_SIZE:
            raise KuboError(f"Kubo returned an oversized block for {cid}")
        return data

    # --- BlobStore ---------------------------------------------------------------------------

    def put(
        self,
        stream: BinaryIO,
        *,
        cid_version: int = 0,
        raw_leaves: bool | None = None,
        pin: bool = True,
    ) -> CID:
        raw = (cid_version == 1) if raw_leaves is None else raw_leaves
        start = _tell(stream)
        # Our own importer hashes the very bytes that go to Kubo (one per attempt).
        local = [FileImporter(lambda _c, _b: None, cid_version=cid_version, raw_leaves=raw)]

        def body(importer: FileImporter) -> Iterator[bytes]:
            while True:
                chunk = stream.read(CHUNK_SIZE)
                if not chunk:
                    return
                importer.write(chunk)
                yield chunk

        params = {
            "cid-version": str(cid_version),
            "raw-leaves": _flag(raw),
            "chunker": f"size-{CHUNK_SIZE}",
            # Kubo's Import.UnixFSFileMaxLinks (1024 under its unixfs-v1-2025 profile)
            # would otherwise reshape every file of more than 174 chunks.
            "max-file-links": str(MAX_LINKS),
            "pin": _flag(pin),
            "hash": "sha2-256",
            "trickle": "false",
            "progress": "false",
        }

        def build() -> httpx.Request:
            if start is not None:
                stream.seek(start)
            local[0] = FileImporter(lambda _c, _b: None, cid_version=cid_version, raw_leaves=raw)
            boundary = os.urandom(16).hex()
            return self._client.build_request(
                "POST",
                "add",
                params=params,
                content=_multipart(boundary, "file", "blob", body(local[0])),
                headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
            )

        response = self._send(build) if start is not None else self._send_once(build)
        events = [e for e in self._ndjson(response.text) if "Hash" in e]
        if not events:
            raise KuboError("Kubo's add answer named no CID")
        try:
            remote = CID.parse(str(events[-1]["Hash"]))
        except InvalidCID as exc:
            raise KuboError(f"Kubo's add answer has a bad CID: {exc.message}") from exc
        expected = local[0].finish().cid
        if remote != expected:
            raise BlockCorrupted(
                f"Kubo stored the file as {remote} but its bytes make {expected} as"
                " `ipfs add` builds it: either the node changed the bytes, or a node-wide"
                " setting shaped another DAG (Import.UnixFSPBNodeFieldOrder=data-first"
                " has no per-request override; set it back to links-first)",
                kubo=str(remote),
                expected=str(expected),
            )
        return expected

    def _send_once(self, build: Callable[[], httpx.Request]) -> httpx.Response:
        retries, self._retries = self._retries, 0
        try:
            return self._send(build)
        finally:
            self._retries = retries

    def get(self, cid: CID | str) -> Iterator[bytes]:
        return read_file(parse_cid(cid), self._block_get)

    def has(self, cid: CID | str) -> bool:
        c = parse_cid(cid)
        try:
            self._post("block/stat", {"arg": str(c), "offline": "true"})
        except BlobNotFound:
            return False
        return True

    def stat(self, cid: CID | str) -> BlobStat:
        c = parse_cid(cid)
        info = self._json(self._post("block/stat", {"arg": str(c), **self._reach()}))
        block = self._block_get(c)
        c.check_verifiable()
        c.verify(block, where="block from Kubo")
        if int(info.get("Size", len(block))) != len(block):
            raise KuboError(f"Kubo's block/stat size for {c} disagrees with the block")
        size, _links, _inline = file_node_info(c, block)
        return BlobStat(c, size, len(block), c.codec_name, None)

    def pin(self, cid: CID | str) -> None:
        c = parse_cid(cid)
        # Kubo 0.43's pin/add waits until its timeout when a block *below* the root is
        # missing, even offline; dag/stat walks the same DAG and fails at once.
        self._ndjson(
            self._post("dag/stat", {"arg": str(c), "progress": "false", **self._reach()}).text
        )
        self._post(
            "pin/add", {"arg": str(c), "recursive": "true", "progress": "false", **self._reach()}
        )

    def unpin(self, cid: CID | str) -> None:
        c = parse_cid(cid)
        self._post("pin/rm", {"arg": str(c), "recursive": "true"})

    def gc(self) -> GCReport:
        response = self._post("repo/gc", {"quiet": "false"})
        removed = []
        for event in self._ndjson(response.text):
            key = event.get("Key")
            if isinstance(key, dict) and "/" in key:
                try:
                    removed.append(CID.parse(str(key["/"])))
                except InvalidCID:
                    continue
        return GCReport(removed, 0)

    def sweep_leftovers(self) -> SweepReport:
        # Kubo keeps its own repository: nothing of an interrupted add is ours to remove.
        raise UnsupportedOperation(f"{self!r} does not support sweep")

    def export_car(self, cid: CID | str, out: BinaryIO) -> int:
        c = parse_cid(cid)
        response = self._send(
            lambda: self._client.build_request(
                "POST", "dag/export", params={"arg": str(c), "progress": "false", **self._reach()}
            ),
            stream=True,
        )
        try:
            reader = cast(BinaryIO, _ResponseReader(response))
            roots = carlib.read_header(reader)
            if roots != [c]:
                raise KuboError(f"Kubo exported a CAR for {roots} instead of {c}")
            out.write(carlib.encode_header(roots))
            count = 0
            seen: set[bytes] = set()
            wanted: set[bytes] = {bytes(c.to_v1())}
            for block_cid, block in carlib.read_sections(reader):  # each block verified
                raw = bytes(block_cid)
                out.write(encode_varint(len(raw) + len(block)) + raw)
                out.write(block)
                count += 1
                seen.add(bytes(block_cid.to_v1()))
                wanted.update(bytes(link.to_v1()) for link in carlib.links_of(block_cid, block))
            if wanted - seen:
                # Kubo reports a block it could not find only in an HTTP trailer, after
                # a clean-looking end of the CAR: a missing link is how we learn of it.
                raise BlobNotFound(
                    f"Kubo's export of {c} lacks {len(wanted - seen)} of the DAG's blocks:"
                    " the node does not hold the whole DAG",
                    cid=str(c),
                )
            return count
        except httpx.HTTPError as exc:
            raise StorageUnavailable(
                f"the CAR export from Kubo at {self.api_url} broke off"
            ) from exc
        finally:
            response.close()

    def import_car(self, stream: BinaryIO, *, pin_roots: bool = True) -> CarImport:
        # Verify every block here first (spooled to disk: constant memory), then send.
        with tempfile.TemporaryFile() as spool:
            roots, sections = carlib.read_car(stream)
            spool.write(carlib.encode_header(roots))
            count = 0
            for cid, block in sections:
                raw = bytes(cid)
                spool.write(encode_varint(len(raw) + len(block)) + raw + block)
                count += 1

            def build() -> httpx.Request:
                spool.seek(0)
                boundary = os.urandom(16).hex()
                return self._client.build_request(
                    "POST",
                    "dag/import",
                    params={"pin-roots": _flag(pin_roots), "stats": "false"},
                    content=_multipart(boundary, "file", "import.car", _iter_file(spool)),
                    headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
                )

            response = self._send(build)
        for event in self._ndjson(response.text):
            root = event.get("Root")
            if isinstance(root, dict) and root.get("PinErrorMsg"):
                raise KuboError(
                    f"Kubo imported the CAR but could not pin it: {root['PinErrorMsg']}"
                )
        return CarImport(roots, count)


# --- helpers ----------------------------------------------------------------------------------


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _tell(stream: BinaryIO) -> int | None:
    """The stream's position if it can be rewound for a retry, else None."""
    try:
        if stream.seekable():
            return stream.tell()
    except (OSError, AttributeError, ValueError):
        pass
    return None


def _iter_file(fh: BinaryIO) -> Iterator[bytes]:
    while True:
        chunk = fh.read(CHUNK_SIZE)
        if not chunk:
            return
        yield chunk


def _multipart(boundary: str, field: str, filename: str, parts: Iterator[bytes]) -> Iterator[bytes]:
    """A one-file multipart/form-data body, streamed (httpx's ``files=`` needs a file object)."""
    yield (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    yield from parts
    yield f"\r\n--{boundary}--\r\n".encode()


class _ResponseReader:
    """A ``read(n)`` view of a streamed httpx response, for the CAR reader."""

    def __init__(self, response: httpx.Response) -> None:
        self._it = response.iter_bytes()
        self._buf = bytearray()

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._buf) < n:
            try:
                self._buf += next(self._it)
            except StopIteration:
                break
        if n < 0:
            n = len(self._buf)
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out
