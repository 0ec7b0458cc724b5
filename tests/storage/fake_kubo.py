"""A fake Kubo RPC API for ``httpx.MockTransport``, backed by our own local store.

The Kubo backend runs against real Kubo daemons (``test_kubo_daemon.py``, the
conformance suite). This double stays for what a real, honest daemon cannot be
made to do on cue: lie about a CID, refuse exactly one connection, time out, or
show that nothing was sent. It answers in the shapes the real daemon gives
(``add``: NDJSON ``{"Name", "Hash", "Size"}``; ``block/stat``: ``{"Key", "Size"}``;
``block/get``: the raw block; errors: HTTP 500 ``{"Message", "Code": 0,
"Type": "error"}``; HTTP 403 without the right bearer token).

It logs requests so tests can assert what the client sent, and has switches to
misbehave (lie about a CID, be down).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Any

import httpx

from govshare.errors import GovShareError
from govshare.storage.cid import CID
from govshare.storage.errors import BlobNotFound
from govshare.storage.local import LocalBlobStore


def _err(message: str, status: int = 500) -> httpx.Response:
    return httpx.Response(status, json={"Message": message, "Code": 0, "Type": "error"})


def _ndjson(items: list[dict[str, Any]]) -> httpx.Response:
    body = "".join(json.dumps(i) + "\n" for i in items)
    return httpx.Response(200, text=body, headers={"Content-Type": "application/json"})


def _multipart_file(request: httpx.Request) -> bytes:
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith("multipart/form-data") or "boundary=" not in ctype:
        raise ValueError("expected multipart/form-data")
    boundary = ctype.split("boundary=", 1)[1].encode()
    body = request.read()
    start = body.index(b"\r\n\r\n", body.index(b"--" + boundary)) + 4
    end = body.rindex(b"\r\n--" + boundary + b"--")
    return body[start:end]


@dataclass
class FakeKubo:
    store: LocalBlobStore
    token: str | None = None
    down: bool = False
    lie_about_cid: bool = False
    requests: list[httpx.Request] = field(default_factory=list)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        if request.method != "POST":
            return httpx.Response(405, text="405 - Method Not Allowed")
        auth = request.headers.get("authorization")
        if self.token is not None and auth != f"Bearer {self.token}":
            return httpx.Response(403, text="403 - Forbidden")
        path = request.url.path
        if not path.startswith("/api/v0/"):
            return httpx.Response(404, text="404 page not found")
        cmd = path[len("/api/v0/") :]
        params = request.url.params
        handler = getattr(self, "_" + cmd.replace("/", "_"), None)
        if handler is None:
            return httpx.Response(404, text="404 page not found")
        try:
            return handler(request, params)
        except BlobNotFound as exc:
            missing = exc.details.get("cid", "")
            return _err(f"block was not found locally (offline): ipld: could not find {missing}")
        except GovShareError as exc:
            return _err(exc.message)

    def _cid(self, params: httpx.QueryParams) -> CID:
        arg = params.get("arg")
        if not arg:
            raise ValueError("argument 'arg' is required")
        return CID.parse(arg)

    # commands ------------------------------------------------------------------------------

    def _add(self, request: httpx.Request, params: httpx.QueryParams) -> httpx.Response:
        for name in ("cid-version", "raw-leaves", "chunker", "pin"):
            if name not in params:  # the client must never rely on the node's defaults
                return _err(f"test double: option {name} was not passed explicitly")
        if params["chunker"] != "size-262144":
            return _err("test double: unexpected chunker")
        data = _multipart_file(request)
        cid = self.store.put(
            io.BytesIO(data),
            cid_version=int(params["cid-version"]),
            raw_leaves=params["raw-leaves"] == "true",
            pin=params["pin"] == "true",
        )
        if self.lie_about_cid:
            cid = self.store.put(io.BytesIO(data + b"!"), pin=False)
        return _ndjson([{"Name": "blob", "Hash": str(cid), "Size": str(len(data))}])

    def _block_get(self, request: httpx.Request, params: httpx.QueryParams) -> httpx.Response:
        cid = self._cid(params)
        path = self.store._path(cid)
        if not path.exists():
            return _err(f"block was not found locally (offline): ipld: could not find {cid}")
        data = path.read_bytes()  # as Kubo's blockstore would hand it out
        return httpx.Response(200, content=data, headers={"Content-Type": "text/plain"})

    def _block_stat(self, request: httpx.Request, params: httpx.QueryParams) -> httpx.Response:
        cid = self._cid(params)
        path = self.store._path(cid)
        if not path.exists():
            return _err(f"block was not found locally (offline): ipld: could not find {cid}")
        return httpx.Response(200, json={"Key": str(cid), "Size": path.stat().st_size})
