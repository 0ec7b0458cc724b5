"""The peer-facing exchange: another department's broker fetches a granted
record. Authenticated by an EIP-712 signature, not a user token (see
``docs/exchange.md`` and :mod:`govshare.broker.serve_exchange`)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header
from fastapi.responses import Response, StreamingResponse

from govshare.api.auth import peer_signed
from govshare.api.deps import ServicesDep
from govshare.api.errors import problem_responses
from govshare.api.schemas import ExchangeAckIn, ExchangeAckOut, ExchangeRequestIn, ExchangeResumeIn
from govshare.broker.exchange import (
    H_CAPSULE,
    H_CAPSULE_HASH,
    H_CIPHERTEXT_CID,
    H_EXCHANGE,
    H_RECEIPT_ISSUED_AT,
    H_RECEIPT_SEQ,
    H_RECEIPT_SIGNATURE,
    H_REQUEST_HASH,
)
from govshare.broker.faults import crash_point
from govshare.broker.serve_exchange import (
    ExchangeAnswer,
    acknowledge,
    resume_exchange,
    serve_exchange,
)
from govshare.errors import GovShareError

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["exchange"])

#: A ciphertext up to this size is answered in one body (one read of the store).
SMALL_ANSWER = 256 * 1024

_HEADERS = {
    H_CAPSULE: "The DEK wrapped (HPKE) for the requester's registered key, bound to record, "
    "grant and requester; base64",
    H_CIPHERTEXT_CID: "CID of the ciphertext that follows (the anchored one)",
    H_REQUEST_HASH: "EIP-712 digest of the signed request",
    H_CAPSULE_HASH: "SHA-256 of the capsule",
    H_RECEIPT_SEQ: "The owner department's receipt sequence number",
    H_RECEIPT_ISSUED_AT: "Unix seconds",
    H_RECEIPT_SIGNATURE: "The owner broker's EIP-712 signature of the ExchangeReceipt",
    H_EXCHANGE: "The exchange's id (its request hash), to resume it within the window",
}


def _guarded(chunks: Iterator[bytes], record_id: str) -> Iterator[bytes]:
    """The ciphertext stream; a store failure after the answer started can only
    cut it short (the requester notices: Content-Length, CID, AEAD)."""
    try:
        sent = False
        for chunk in chunks:
            if sent:
                crash_point("exchange.mid_stream")  # tests: a network blip
            yield chunk
            sent = True
    except GovShareError as exc:
        log.error("exchange: the stream of %s broke off: %s", record_id, exc.code)
        raise


@router.post(
    "/exchange",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
            "headers": {
                name: {"description": d, "schema": {"type": "string"}}
                for name, d in _HEADERS.items()
            },
            "description": "The ciphertext (envelope), with the capsule and receipt in headers",
        },
        **problem_responses(400, 401, 403, 404, 409, 422, 500, 502, 503),
    },
)
def exchange(
    body: ExchangeRequestIn,
    signature: Annotated[bytes, Depends(peer_signed)],
    svc: ServicesDep,
) -> Response:
    """Serve a granted record to the requesting department's broker. The body
    is the EIP-712 ``ExchangeRequest``; ``Govshare-Signature`` is its signature
    by the requester's registered broker key. Refused unless the signer,
    nonce, expiry and the grant on chain (for this requester and record, not
    revoked or expired, quota left — counted atomically here) all check out."""
    return _answer(serve_exchange(svc, body.model_dump(), signature))


def _answer(answer: ExchangeAnswer) -> Response:
    headers = answer.headers()
    if int(headers["Content-Length"]) <= SMALL_ANSWER:  # read here, not through the pool
        data = b"".join(_guarded(answer.chunks, answer.record_id))
        return Response(data, answer.status, media_type="application/octet-stream", headers=headers)
    return StreamingResponse(
        _guarded(answer.chunks, answer.record_id),
        answer.status,
        media_type="application/octet-stream",
        headers=headers,
    )


@router.post(
    "/exchange/resume",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
            "description": "Without Range: the whole ciphertext again, same headers",
        },
        206: {
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
            "headers": {
                "Content-Range": {
                    "description": "bytes FIRST-LAST/SIZE of the ciphertext",
                    "schema": {"type": "string"},
                },
                **{
                    name: {"description": d, "schema": {"type": "string"}}
                    for name, d in _HEADERS.items()
                },
            },
            "description": "The byte range asked for, with the exchange's capsule and receipt",
        },
        **problem_responses(400, 401, 403, 404, 409, 410, 416, 422, 500, 502, 503),
    },
)
def exchange_resume(
    body: ExchangeResumeIn,
    signature: Annotated[bytes, Depends(peer_signed)],
    svc: ServicesDep,
    range_: Annotated[
        str | None,
        Header(
            alias="Range",
            description="One byte range of the ciphertext (RFC 9110), e.g. bytes=262144-",
        ),
    ] = None,
) -> Response:
    """Continue an exchange this department answered, within its resume window,
    without spending another use: the same capsule and receipt, and the ciphertext
    from the byte ``Range`` names. Signed (``ExchangeResume``) by the requester's
    registered broker key; refused for an exchange that is not the signer's
    department's (404, as for none), after the window (410), for a grant revoked
    or expired since (403), and for a Range that is not one satisfiable byte range
    (416)."""
    return _answer(resume_exchange(svc, body.model_dump(), signature, range_))


@router.post(
    "/exchange/ack",
    response_model=ExchangeAckOut,
    responses=problem_responses(400, 401, 403, 404, 409, 410, 422, 500, 503),
)
def exchange_ack(
    body: ExchangeAckIn,
    signature: Annotated[bytes, Depends(peer_signed)],
    svc: ServicesDep,
) -> ExchangeAckOut:
    """The requester's acknowledgement that it received an exchange's ciphertext
    whole and verified: its ``ExchangeAck`` signature, kept in the receipt (leaf
    version 2). The receipt batcher holds an unacknowledged receipt until it is
    acknowledged or the resume window ends (then it is anchored as delivered,
    unacknowledged). The same acknowledgement again is answered as before."""
    out = acknowledge(svc, body.model_dump(), signature)
    return ExchangeAckOut(
        exchange=out.exchange, seq=out.seq, acked_at=out.acked_at, recorded=out.recorded
    )
