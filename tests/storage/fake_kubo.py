"""A fake Kubo RPC API for ``httpx.MockTransport``, backed by our own local store.

No Kubo can run here, so the Kubo backend is tested against the request and
response shapes of Kubo's RPC reference (https://docs.ipfs.tech/reference/kubo/rpc/):

* every command is ``POST /api/v0/<cmd>`` with arguments in the query string;
* ``add`` takes a multipart file and answers NDJSON ``{"Name", "Hash", "Size"}``
  (``Size`` a string, the DAG's cumulative size);
* ``block/stat`` answers ``{"Key": cid, "Size": n}``; ``block/get`` the raw block;
* ``pin/add`` / ``pin/rm`` answer ``{"Pins": [cid]}``;
* ``repo/gc`` answers NDJSON ``{"Key": {"/": cid}}``;
* ``dag/export`` streams a CARv1; ``dag/import`` takes a multipart CAR and
  answers NDJSON ``{"Root": {"Cid": {"/": cid}, "PinErrorMsg": ""}}``;
* errors are HTTP 500 with ``{"Message": "...", "Code": 0, "Type": "error"}``;
  a request without the right ``Authorization: Bearer`` token (when Kubo's
  ``API.Authorizations`` is set) gets HTTP 403.

The fake keeps a log of requests so tests can assert what the client sent, and
has switches to misbehave (lie about a CID, return a tampered block, be down).
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
    tamper_blocks: bool = False
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
        if self.tamper_blocks and data:
            data = bytes([data[0] ^ 1]) + data[1:]
        return httpx.Response(200, content=data, headers={"Content-Type": "text/plain"})

    def _block_stat(self, request: httpx.Request, params: httpx.QueryParams) -> httpx.Response:
        cid = self._cid(params)
        path = self.store._path(cid)
        if not path.exists():
            return _err(f"block was not found locally (offline): ipld: could not find {cid}")
        return httpx.Response(200, json={"Key": str(cid), "Size": path.stat().st_size})

    def _pin_add(self, request: httpx.Request, params: httpx.QueryParams) -> httpx.Response:
        cid = self._cid(params)
        self.store.pin(cid)
        return httpx.Response(200, json={"Pins": [str(cid)]})

    def _pin_rm(self, request: httpx.Request, params: httpx.QueryParams) -> httpx.Response:
        cid = self._cid(params)
        try:
            self.store.unpin(cid)
        except GovShareError:
            return _err("not pinned or pinned indirectly")
        return httpx.Response(200, json={"Pins": [str(cid)]})

    def _repo_gc(self, request: httpx.Request, params: httpx.QueryParams) -> httpx.Response:
        report = self.store.gc()
        return _ndjson([{"Key": {"/": str(c)}} for c in report.removed])

    def _dag_export(self, request: httpx.Request, params: httpx.QueryParams) -> httpx.Response:
        cid = self._cid(params)
        out = io.BytesIO()
        self.store.export_car(cid, out)
        return httpx.Response(200, content=out.getvalue())

    def _dag_import(self, request: httpx.Request, params: httpx.QueryParams) -> httpx.Response:
        data = _multipart_file(request)
        result = self.store.import_car(
            io.BytesIO(data), pin_roots=params.get("pin-roots") == "true"
        )
        return _ndjson([{"Root": {"Cid": {"/": str(r)}, "PinErrorMsg": ""}} for r in result.roots])
