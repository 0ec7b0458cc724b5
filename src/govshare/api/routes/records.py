"""Records: publish (clerks), list and show (the department's users), content
(clerks and administrators; own records from the store, granted ones fetched
from their owner's broker)."""

from __future__ import annotations

import json
import pathlib
import re
import uuid
from collections.abc import Iterator
from functools import partial
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Header, Query, Request, status
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

from govshare.api.deps import ClerkUser, CurrentUser, ReaderUser, ServicesDep
from govshare.api.errors import (
    REQUIRED_HEADERS,
    error_response,
    problem_response,
    problem_responses,
)
from govshare.api.schemas import (
    CATEGORY_PATTERN,
    MAX_INT64,
    RECORD_ID_LENGTH,
    RECORD_ID_PATTERN,
    BulkItemIn,
    BulkItemOut,
    BulkPublishOut,
    FoundRecordOut,
    PublishOut,
    RecordOut,
    SubjectQuery,
)
from govshare.api.schemas import (
    RecordIdPath as RecordId,
)
from govshare.api.uploads import ReceivedUpload, receive_upload, receive_uploads
from govshare.broker.db import OpState
from govshare.broker.errors import IdempotencyKeyRequired, OperationInProgress
from govshare.broker.exchange import H_EXCHANGE, parse_range
from govshare.broker.faults import crash_point
from govshare.broker.fetch import FetchResult, fetch_content
from govshare.broker.outbox import IDEMPOTENCY_KEY_PATTERN
from govshare.broker.publish import (
    MAX_BULK,
    BulkItem,
    PublishOutcome,
    PublishRequest,
    publish,
    publish_many,
)
from govshare.broker.queries import list_records, show_record
from govshare.broker.sharing import fetch_by_subject, find_records
from govshare.errors import InputError
from govshare.util import chain_time

router = APIRouter(prefix="/v1/records", tags=["records"])

_CHUNK = 256 * 1024


_UPLOAD_SCHEMA: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "category"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "category": {
                            "type": "string",
                            "pattern": CATEGORY_PATTERN,
                            "description": "A category declared in the department's catalog",
                            "example": "tax-clearance",
                        },
                        "subject": {
                            "type": "string",
                            "maxLength": 256,
                            "description": "Who the record is about (a personal or enterprise "
                            "id); only its keyed hash is anchored",
                        },
                        "supersedes": {
                            "type": "string",
                            "pattern": RECORD_ID_PATTERN,
                            "minLength": RECORD_ID_LENGTH,
                            "maxLength": RECORD_ID_LENGTH,
                            "description": "Id of the record this one is a new version of",
                        },
                    },
                }
            }
        },
    },
    # The header is required (a publish without one is refused, 400
    # idempotency.key_required, rather than a validation error): said in the
    # document by the app's OpenAPI hook.
    REQUIRED_HEADERS: ["Idempotency-Key"],
}


_PREFER_WAIT = re.compile(r"^wait\s*=\s*(\d{1,4})$")


def anchor_wait(prefer: str | None, default: float) -> float:
    """Seconds to wait for a publish's anchor under an RFC 7240 ``Prefer``
    header: ``respond-async`` is 0, ``wait=N`` is N (never beyond ``default``,
    the broker's own bound); anything else is ignored, as the RFC says."""
    wait = default
    for part in (prefer or "")[:256].split(","):
        pref = part.split(";")[0].strip().lower()
        if pref == "respond-async":
            return 0.0
        m = _PREFER_WAIT.match(pref)
        if m:
            wait = min(default, float(m.group(1)))
    return wait


def _publish_answer(out: PublishOutcome, path: str) -> JSONResponse:
    if out.state is OpState.FAILED:
        err = out.error or {}
        return problem_response(
            int(err.get("status", 500)),
            str(err.get("code", "operation.failed")),
            str(err.get("message", "The publish failed.")),
            instance=path,
            details={"operation_id": out.operation_id},
        )
    if out.anchoring:
        # Accepted: encrypted, stored and held; its batch's transaction is under way.
        body = PublishOut(
            operation_id=out.operation_id,
            state="anchoring",
            replayed=not out.created,
            record_id=out.record_id,
            sha256=out.sha256,
            size=out.size,
        )
        headers = {
            "Location": f"/v1/operations/{out.operation_id}",
            "Retry-After": "1",
        }
        if not out.created:
            headers["Idempotent-Replayed"] = "true"
        return JSONResponse(
            body.model_dump(mode="json"), status_code=status.HTTP_202_ACCEPTED, headers=headers
        )
    if out.state is not OpState.DONE:
        err = out.error or {}
        if err.get("retryable"):
            # The chain or the store stopped answering mid-way: the outbox worker
            # completes it; a retry with the same key returns the outcome.
            return problem_response(
                int(err.get("status", 503)),
                str(err.get("code", "chain.unavailable")),
                f"{err.get('message', '')} The record is kept and will be anchored when it "
                "answers again; retry with the same Idempotency-Key to learn the outcome.",
                instance=path,
                headers={"Retry-After": "5"},
                details={"operation_id": out.operation_id, "record_id": out.record_id},
            )
        exc = OperationInProgress(
            "This Idempotency-Key's publish is still running; retry in a moment.",
            operation_id=out.operation_id,
        )
        return problem_response(
            exc.status,
            exc.code,
            exc.message,
            instance=path,
            headers={"Retry-After": "1"},
            details={"operation_id": out.operation_id},
        )
    result = out.result or {}
    body = PublishOut(
        operation_id=out.operation_id,
        state="done",
        replayed=not out.created,
        record_id=out.record_id,
        cid=result.get("cid"),
        sha256=result.get("sha256"),
        size=result.get("size"),
        tx_hash=result.get("tx_hash"),
        block_number=result.get("block_number"),
        batch=result.get("batch"),
    )
    code = status.HTTP_201_CREATED if out.created else status.HTTP_200_OK
    headers = {"Location": f"/v1/records/{out.record_id}"}
    if not out.created:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(body.model_dump(mode="json"), status_code=code, headers=headers)


@router.post(
    "",
    response_model=PublishOut,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": PublishOut, "description": "A retry: the original record"},
        202: {
            "model": PublishOut,
            "description": "Accepted, anchoring: the record is encrypted and stored, and its "
            "batch is being anchored (poll the operation in Location)",
        },
        **problem_responses(400, 401, 403, 404, 409, 413, 415, 422, 500, 502, 503),
    },
    openapi_extra=_UPLOAD_SCHEMA,
)
async def publish_record(
    request: Request,
    user: ClerkUser,
    svc: ServicesDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            pattern=IDEMPOTENCY_KEY_PATTERN,
            description="A retry with the same key returns the original record",
        ),
    ] = None,
) -> JSONResponse:
    """Publish a record: the file is encrypted, stored and anchored on chain
    (multipart: ``file``, ``category``, optional ``subject`` and ``supersedes``).
    Records are anchored in batches: the answer waits for the anchor (201) up
    to the broker's publish wait, then says 202 "anchoring"; with ``Prefer:
    respond-async`` it is 202 at once, and ``Prefer: wait=N`` waits up to N
    seconds (RFC 7240).
    The upload streams to disk, up to the broker's size limit. A retry with the
    same ``Idempotency-Key`` returns the original record (200) instead of a new
    one; the same key with another file or metadata is refused (409)."""
    if not idempotency_key:
        raise IdempotencyKeyRequired(
            "Publishing needs an Idempotency-Key header (any unique string per record), so "
            "that a retry never publishes twice."
        )
    upload = await receive_upload(request, svc.spool, max_size=svc.limits.max_upload)
    category = upload.fields.get("category", "").strip()
    if not category:
        (svc.spool / upload.staged.name).unlink(missing_ok=True)
        raise InputError("Say which catalog category the record belongs to ('category').")
    meta = PublishRequest(
        category=category,
        subject=upload.fields.get("subject") or None,
        supersedes=(upload.fields.get("supersedes") or "").strip() or None,
        filename=upload.filename,
        media_type=upload.media_type,
    )
    # From here the staged upload is publish's: it deletes it when it refuses the
    # request, and once its operation took it over, the operation resumes from it
    # (after a database error, or a shutdown that cancels this request) and the
    # spool clean-up removes it when no operation needs it.
    wait_for = anchor_wait(request.headers.get("prefer"), svc.limits.publish_wait)
    out = await run_in_threadpool(
        partial(publish, anchor_wait=wait_for), svc, user, idempotency_key, upload.staged, meta
    )
    return _publish_answer(out, request.url.path)


_BULK_SCHEMA: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["items", "file"],
                    "properties": {
                        "items": {
                            "type": "array",
                            "items": BulkItemIn.model_json_schema(),
                            "maxItems": MAX_BULK,
                            "description": "One BulkItemIn per file part, in the same order "
                            "(as many as there are files), sent as one JSON text",
                        },
                        "file": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "maxItems": MAX_BULK,
                        },
                    },
                },
                "encoding": {"items": {"contentType": "application/json"}},
            }
        },
    }
}
#: The ``items`` field: one short JSON object per file.
_MAX_ITEMS_FIELD = MAX_BULK * 2048
_ITEMS = TypeAdapter(list[BulkItemIn])


@router.post(
    "/batch",
    response_model=BulkPublishOut,
    responses=problem_responses(400, 401, 403, 413, 415, 422, 500, 503),
    openapi_extra=_BULK_SCHEMA,
)
async def publish_records(request: Request, user: ClerkUser, svc: ServicesDep) -> JSONResponse:
    """Publish up to 256 records in one request: how ``govshare record import``
    onboards an archive. Multipart: ``items`` (JSON, one object per file part:
    its ``idempotency_key``, ``category``, optional ``subject`` and
    ``supersedes``) and the ``file`` parts, in the same order; the files add up
    to the broker's upload limit at most. Each record is published as by ``POST
    /v1/records`` with ``Prefer: respond-async``, and its answer there (status
    and body) is its entry in ``results``; one record's refusal does not stop
    the others. New records are accepted together: two database transactions for
    the whole request."""
    uploads, fields = await receive_uploads(
        request,
        svc.spool,
        max_size=svc.limits.max_upload,
        max_files=MAX_BULK,
        max_field=_MAX_ITEMS_FIELD,
    )
    try:
        items = _bulk_items(fields, uploads)
    except BaseException:
        for up in uploads:
            (svc.spool / up.staged.name).unlink(missing_ok=True)
        raise
    results = await run_in_threadpool(publish_many, svc, user, items)
    path = request.url.path.rsplit("/", 1)[0]  # each answer as POST /v1/records gives it
    out = []
    for i, (item, res) in enumerate(zip(items, results, strict=True)):
        resp = (
            _publish_answer(res, path)
            if isinstance(res, PublishOutcome)
            else error_response(res, path)
        )
        body = json.loads(bytes(resp.body))
        out.append(BulkItemOut(index=i, idempotency_key=item.idempotency_key,
                               status=resp.status_code, body=body))  # fmt: skip
    return JSONResponse(BulkPublishOut(results=out).model_dump(mode="json"))


def _bulk_items(fields: dict[str, str], uploads: list[ReceivedUpload]) -> list[BulkItem]:
    extra = sorted(set(fields) - {"items"})
    if extra:
        raise InputError(f"A bulk publish has an 'items' field and 'file' parts, not {extra}.")
    raw = fields.get("items")
    if raw is None:
        raise InputError("Say what each file is: the 'items' field, a JSON list.")
    try:
        metas = _ITEMS.validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = "".join(f"{p}: " for p in [".".join(str(x) for x in first.get("loc", ()))] if p)
        raise InputError(f"The 'items' field is not valid: {where}{first.get('msg')}.") from None
    if len(metas) != len(uploads):
        raise InputError(
            f"The 'items' field describes {len(metas)} records but {len(uploads)} files came."
        )
    return [
        BulkItem(
            m.idempotency_key,
            up.staged,
            PublishRequest(
                category=m.category.strip(),
                subject=m.subject or None,
                supersedes=(m.supersedes or "").strip() or None,
                filename=up.filename,
                media_type=up.media_type,
            ),
        )
        for m, up in zip(metas, uploads, strict=True)
    ]


@router.get("", response_model=list[RecordOut], responses=problem_responses(401, 403, 422, 500))
def get_records(
    _user: CurrentUser,
    svc: ServicesDep,
    status_: Annotated[
        str | None,
        Query(alias="status", pattern="^(pending|stored|anchored|failed)$"),
    ] = None,
    category: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_INT64)] = 0,
) -> list[RecordOut]:
    """This department's records, newest first."""
    views = list_records(
        svc.db, svc.dept, status=status_, category=category, limit=limit, offset=offset
    )
    return [RecordOut.of(v) for v in views]


@router.get(
    "/{record_id}",
    response_model=RecordOut,
    responses=problem_responses(401, 403, 404, 422, 500, 503),
)
def get_record(record_id: RecordId, _user: CurrentUser, svc: ServicesDep) -> RecordOut:
    """One record: this department's own (with its local details), or another
    department's public anchor on chain."""
    return RecordOut.of(show_record(svc, record_id))


@router.get(
    "/{record_id}/content",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
            "description": "The plaintext, verified against the hash anchored on chain",
        },
        206: {
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
            "description": "The byte range asked for (Content-Range) of the verified plaintext",
        },
        **problem_responses(400, 401, 403, 404, 409, 410, 416, 422, 500, 502, 503),
    },
)
def get_content(
    record_id: RecordId,
    _user: ReaderUser,
    svc: ServicesDep,
    grant: Annotated[
        int | None,
        Query(ge=1, le=MAX_INT64, description="Use this grant (default: the best one held)"),
    ] = None,
    exchange: Annotated[
        str | None,
        Query(
            pattern=r"^0x[0-9a-fA-F]{64}$",
            description="Continue this exchange (the Govshare-Exchange of an earlier answer) "
            "instead of starting one: no new use, within the owner's resume window",
        ),
    ] = None,
    exchange_header: Annotated[
        str | None,
        Header(
            alias="Govshare-Exchange",
            pattern=r"^0x[0-9a-fA-F]{64}$",
            description="The same as ?exchange=",
        ),
    ] = None,
    range_: Annotated[
        str | None,
        Header(alias="Range", description="One byte range of the plaintext (RFC 9110)"),
    ] = None,
) -> Response:
    """The record's content. An own record is decrypted from this broker's
    store; another department's is fetched from its owner's broker under a grant
    (spending one use), its ciphertext checked against the anchored CID and its
    plaintext against the anchored SHA-256 before a byte is returned. The answer
    names its exchange (``Govshare-Exchange``): a transfer that broke off is
    continued with that header (or ``?exchange=``) and ``Range: bytes=N-``, within
    the owner's resume window, without spending another use (206)."""
    if exchange and exchange_header and exchange.lower() != exchange_header.lower():
        raise InputError("?exchange= and the Govshare-Exchange header name different exchanges.")
    tmp = svc.spool / f"fetch-{uuid.uuid4().hex}.out"
    try:
        # streamed and unlinked at once: no fsync of the plaintext
        out = fetch_content(
            svc,
            record_id,
            tmp,
            grant_id=grant,
            exchange=exchange or exchange_header,
            ranged=range_ is not None,
            durable=False,
        )
        span = parse_range(range_, out.size)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return _content(out, tmp, span)


@router.post(
    "/find",
    response_model=list[FoundRecordOut],
    responses=problem_responses(400, 401, 403, 422, 500, 503),
)
def find_records_route(
    body: SubjectQuery, _user: CurrentUser, svc: ServicesDep
) -> list[FoundRecordOut]:
    """Another department's anchored records of a category about a subject, newest
    first, from this broker's ledger mirror. The subject's id is sent here only (in
    the body, never a URL); the chain is searched by its keyed reference."""
    found = find_records(svc, body.owner, body.category, body.subject)
    return [
        FoundRecordOut(**{**f.record.to_dict(), "anchored_at": chain_time(f.anchored_at)})
        for f in found
    ]


@router.post(
    "/by-subject/content",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
            "description": "The newest version the grant by subject covers, verified as a "
            "fetch by id is (Govshare-Record-Id names it)",
        },
        **problem_responses(400, 401, 403, 404, 409, 422, 500, 502, 503),
    },
)
def get_content_by_subject(body: SubjectQuery, _user: ReaderUser, svc: ServicesDep) -> Response:
    """The content of the newest version of another department's record of a
    category about a subject that this department's grant by subject covers
    (spending one use of it). A POST, so that the subject's id is never in a URL."""
    tmp = svc.spool / f"fetch-{uuid.uuid4().hex}.out"
    try:
        out = fetch_by_subject(svc, body.owner, body.category, body.subject, tmp, durable=False)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return _content(out, tmp)


def _content(out: FetchResult, tmp: pathlib.Path, span: tuple[int, int] | None = None) -> Response:
    """Answer with the fetched plaintext in ``tmp`` (which is unlinked at once);
    ``span``: only that byte range of it (206)."""
    headers = {
        "Govshare-Record-Id": out.record_id,
        "Govshare-Record-Owner": out.owner,
        "Govshare-Content-Sha256": out.sha256,
    }
    if out.grant_id is not None:
        headers["Govshare-Grant-Id"] = str(out.grant_id)
    if out.receipt_seq is not None:
        headers["Govshare-Receipt-Seq"] = str(out.receipt_seq)
    if out.exchange is not None:
        headers[H_EXCHANGE] = out.exchange
    headers["Accept-Ranges"] = "bytes"
    # Stream from an open handle of a file already unlinked: the plaintext leaves
    # the disk's namespace at once and its blocks are freed when the answer ends.
    fh = tmp.open("rb")
    tmp.unlink()
    first, last = span if span is not None else (0, out.size - 1)
    length = last - first + 1
    headers["Content-Length"] = str(length)
    if span is not None:
        headers["Content-Range"] = f"bytes {first}-{last}/{out.size}"
    headers["Content-Disposition"] = _disposition(
        out.filename or f"record-{out.record_id[2:14]}.bin"
    )
    code = 206 if span is not None else 200

    media_type = out.media_type or "application/octet-stream"
    fh.seek(first)
    if length <= _CHUNK:  # one read here, not a stream's hops through the thread pool
        with fh:
            return Response(fh.read(length), code, media_type=media_type, headers=headers)

    def body() -> Iterator[bytes]:
        left = length
        with fh:
            while left > 0 and (chunk := fh.read(min(_CHUNK, left))):
                if left < length:
                    crash_point("content.mid_stream")  # tests: a network blip
                left -= len(chunk)
                yield chunk

    return StreamingResponse(body(), code, media_type=media_type, headers=headers)


def _disposition(filename: str) -> str:
    ascii_name = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in filename
    )
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"
