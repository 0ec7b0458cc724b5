"""Access requests and grants: ask another department (clerks); list what
concerns this department (all its users). Consent itself is not an API call:
an administrator signs it with their own key (``govshare grant …``)."""

from __future__ import annotations

import logging
import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response, status
from fastapi.responses import JSONResponse

from govshare.api.deps import ClerkUser, CurrentUser, OverseerUser, ServicesDep
from govshare.api.errors import problem_response, problem_responses
from govshare.api.schemas import (
    MAX_INT64,
    RECORD_ID_LENGTH,
    RECORD_ID_PATTERN,
    ReceiptOut,
    RequestCreate,
    RequestCreated,
    RequestOut,
)
from govshare.broker.access import request_access, request_by_subject
from govshare.broker.outbox import IDEMPOTENCY_KEY_PATTERN
from govshare.broker.queries import list_receipts, list_requests
from govshare.broker.services import BrokerServices
from govshare.errors import GovShareError, InputError
from govshare.util import MAX_REQUEST_DEADLINE, parse_duration

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["requests"])

_STATUS = "^(pending|approved|denied|revoked|expired)$"
_DIRECTION = "^(incoming|outgoing)$"
SYNC_HEADER = "Govshare-Synced"


def _sync(svc: BrokerServices, response: Response) -> None:
    """Bring the local view up to date from the chain; when the chain does not
    answer, list what is known and say so in a header (lists never fail closed:
    no grant is ever used from them without asking the chain)."""
    try:
        svc.sync.run_once()
        response.headers[SYNC_HEADER] = "true"
    except GovShareError as exc:
        log.warning("request sync failed: %s", exc.code)
        response.headers[SYNC_HEADER] = "false"


@router.post(
    "/requests",
    response_model=RequestCreated,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": RequestCreated, "description": "A retry: the original request"},
        **problem_responses(400, 401, 403, 404, 409, 422, 500, 503),
    },
)
def create_request(
    body: RequestCreate,
    request: Request,
    user: ClerkUser,
    svc: ServicesDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            pattern=IDEMPOTENCY_KEY_PATTERN,
            description="A retry with the same key returns the "
            "original request (default: a new key each call)",
        ),
    ] = None,
) -> JSONResponse:
    """Ask another department for one of its records (``record_id``), or for its
    records of a category about a subject (``category`` and ``subject``), with a
    purpose (and a legal basis): a transaction from this department's broker key.
    The owner's administrator decides by ``deadline`` (default 3 days); a category
    the owner shares unconditionally is granted at once by the contract, one it
    does not share is refused."""
    deadline = (
        parse_duration(body.deadline, MAX_REQUEST_DEADLINE, what="deadline")
        if body.deadline
        else None
    )
    key = idempotency_key or f"auto-{uuid.uuid4().hex}"
    by_subject = body.category is not None or body.subject is not None
    if by_subject == (body.record_id is not None) or (
        by_subject and (body.category is None or body.subject is None)
    ):
        raise InputError(
            "Ask for one record (record_id), or for a subject's records of a category "
            "(category and subject): one of the two."
        )
    if body.category is not None and body.subject is not None:
        out = request_by_subject(
            svc, user, body.owner, body.category, body.subject, body.purpose,
            body.legal_basis, latest_only=body.latest_only, deadline_in=deadline,
            idempotency_key=key,
        )  # fmt: skip
    else:
        assert body.record_id is not None
        out = request_access(
            svc, user, body.owner, body.record_id, body.purpose, body.legal_basis,
            deadline_in=deadline, idempotency_key=key,
        )  # fmt: skip
    if out.state == "failed" or (out.state != "done" and out.error):
        err = out.error or {}
        return problem_response(
            int(err.get("status", 500)),
            str(err.get("code", "operation.failed")),
            str(err.get("message", "The request could not be sent.")),
            instance=request.url.path,
            details={"operation_id": out.operation_id},
        )
    payload = RequestCreated(
        operation_id=out.operation_id,
        state=out.state,  # type: ignore[arg-type]
        replayed=not out.created,
        request_id=out.request_id,
        granted=out.granted,
    )
    code = status.HTTP_201_CREATED if out.created else status.HTTP_200_OK
    return JSONResponse(payload.model_dump(mode="json"), status_code=code)


@router.get(
    "/requests",
    response_model=list[RequestOut],
    responses=problem_responses(401, 403, 422, 500),
)
def get_requests(
    _user: CurrentUser,
    svc: ServicesDep,
    response: Response,
    direction: Annotated[str | None, Query(pattern=_DIRECTION)] = None,
    status_: Annotated[str | None, Query(alias="status", pattern=_STATUS)] = None,
    record_id: Annotated[
        str | None,
        Query(pattern=RECORD_ID_PATTERN, min_length=RECORD_ID_LENGTH, max_length=RECORD_ID_LENGTH),
    ] = None,
) -> list[RequestOut]:
    """Requests that concern this department: ``incoming`` (for its records),
    ``outgoing`` (its own), or both; newest first. Read from the chain's events
    (the ``Govshare-Synced`` header says whether the chain answered)."""
    _sync(svc, response)
    views = list_requests(
        svc.db,
        svc.dept,
        direction=direction,
        status=status_,
        record_id=record_id,
        clock=svc.clock,
    )
    return [RequestOut.of(v) for v in views]


@router.get(
    "/grants",
    response_model=list[RequestOut],
    responses=problem_responses(401, 403, 422, 500),
)
def get_grants(
    _user: CurrentUser,
    svc: ServicesDep,
    response: Response,
    direction: Annotated[str | None, Query(pattern=_DIRECTION)] = None,
    status_: Annotated[str | None, Query(alias="status", pattern=_STATUS)] = None,
) -> list[RequestOut]:
    """Grants (approved requests, then possibly revoked or expired) given by
    this department (``incoming``) or to it (``outgoing``), with their expiry,
    quota and uses."""
    _sync(svc, response)
    views = list_requests(
        svc.db, svc.dept, direction=direction, status=status_, grants_only=True, clock=svc.clock
    )
    return [RequestOut.of(v) for v in views]


@router.get(
    "/receipts",
    response_model=list[ReceiptOut],
    responses=problem_responses(401, 403, 422, 500),
)
def get_receipts(
    _user: OverseerUser,
    svc: ServicesDep,
    grant: Annotated[int | None, Query(ge=1, le=MAX_INT64)] = None,
    record_id: Annotated[
        str | None,
        Query(pattern=RECORD_ID_PATTERN, min_length=RECORD_ID_LENGTH, max_length=RECORD_ID_LENGTH),
    ] = None,
    owner: Annotated[str | None, Query(min_length=2, max_length=16)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_INT64)] = 0,
) -> list[ReceiptOut]:
    """Exchange receipts this broker keeps, signed by both departments: those it
    issued as owner (its own gap-free sequence) and those it received as
    requester. For administrators and auditors."""
    views = list_receipts(
        svc.db,
        owner=owner.upper() if owner else None,
        grant_id=grant,
        record_id=record_id,
        limit=limit,
        offset=offset,
    )
    return [ReceiptOut.of(v) for v in views]
