"""The auditor's web page and read-only audit API of a broker.

* ``GET /audit`` — the page (public: a shell with no data; it asks for a token);
* ``GET /audit/view?record_id=…|hash=…`` — a trail (timeline, graph, receipts
  with their proofs checked) or the records a SHA-256 is anchored as, as HTML;
* ``GET /audit/status`` — this department's receipt batches and every overdue
  request, as HTML;
* ``GET /v1/audit/trail/{record_id}`` — the trail as JSON (``?format=prov``:
  PROV-JSON);
* ``GET /v1/audit/manifests/{cid}`` — one of this department's anchored receipt
  manifests (what ``govshare audit --manifests http://…`` reads);
* ``POST /v1/audit/subject`` (JSON) and ``POST /audit/subject`` (HTML) — a
  subject's access history (``govshare audit subject``), the id in the body,
  turned into its keyed reference with this broker's consortium subject key.

All but the page need an administrator's or auditor's token. Verdicts come
from the chain (through the broker's own ledger mirror, in its database) and
from manifests checked against
their anchored CIDs and roots, exactly as the ``govshare audit`` commands do;
a file looked up by upload is hashed in the browser and never sent.
"""

from __future__ import annotations

import html
import re
import threading
from pathlib import Path as FsPath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from govshare.api.auth import public
from govshare.api.deps import OverseerUser, ServicesDep, SettingsDep
from govshare.api.errors import problem_responses
from govshare.api.schemas import RecordIdPath as RecordId
from govshare.api.schemas import SubjectIn
from govshare.audit.batched import record_batches
from govshare.audit.checks import audit_receipts, overdue_requests
from govshare.audit.html import (
    PAGE_CSS,
    render_matches,
    render_status,
    render_subject,
    render_trail,
)
from govshare.audit.prov import trail_to_prov
from govshare.audit.sources import ManifestSources, StoreSource
from govshare.audit.subject import build_subject_history, reference_of
from govshare.audit.trail import build_trail, verify_hash
from govshare.audit.view import AuditView
from govshare.broker.services import BrokerServices
from govshare.errors import InputError, NotFound

router = APIRouter(tags=["audit"])

_TEMPLATE = FsPath(__file__).parent.parent / "templates" / "audit.html"

_HASH = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")

#: The page runs its one inline script and talks to this origin only.
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; "
    "style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; "
    "form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_FRAGMENT_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}


class _AuditState:
    """The lock that serialises audits on this broker (rare and read-only); they
    read the broker's own ledger mirror."""

    def __init__(self, svc: BrokerServices) -> None:
        self.svc = svc
        self.lock = threading.Lock()

    def view(self) -> AuditView:
        sources = ManifestSources([StoreSource(self.svc.store, f"{self.svc.dept}'s store")])
        v = AuditView(self.svc.ledger, self.svc.mirror, sources)
        v.sync()
        return v


def _state(request: Request, svc: BrokerServices) -> _AuditState:
    app_state = request.app.state
    with _INIT_LOCK:
        st = getattr(app_state, "govshare_audit", None)
        if st is None:
            st = app_state.govshare_audit = _AuditState(svc)
    return st


_INIT_LOCK = threading.Lock()


# The page and its fragments are not API: they stay out of the OpenAPI document.
@router.get(
    "/audit", response_class=HTMLResponse, dependencies=[Depends(public)], include_in_schema=False
)
def audit_page(settings: SettingsDep) -> HTMLResponse:
    """The auditor's page: look up a record, a hash or a file; see the trail,
    receipt batches and overdue requests."""
    page = (
        _TEMPLATE.read_text(encoding="utf-8")
        .replace("{{css}}", PAGE_CSS)
        .replace("{{department}}", html.escape(settings.department))
    )
    return HTMLResponse(page, headers=_PAGE_HEADERS)


@router.get("/audit/view", response_class=HTMLResponse, include_in_schema=False)
def audit_view(
    request: Request,
    _user: OverseerUser,
    svc: ServicesDep,
    record_id: Annotated[str | None, Query(max_length=66)] = None,
    hash: Annotated[str | None, Query(max_length=66)] = None,
) -> HTMLResponse:
    """A record's trail, or the records a SHA-256 is anchored as (an HTML fragment)."""
    st = _state(request, svc)
    with st.lock:
        view = st.view()
        if record_id:
            body = render_trail(build_trail(view, record_id))
        elif hash:
            if not _HASH.match(hash):
                raise InputError("A SHA-256 is 64 hex digits (0x optional).")
            digest = bytes.fromhex(hash.removeprefix("0x"))
            found = verify_hash(view, digest)
            body = render_matches(
                {"sha256": "0x" + digest.hex(), "anchored": bool(found), "records": found}
            )
        else:
            raise InputError("Give a record id or a SHA-256.")
    return HTMLResponse(body, headers=_FRAGMENT_HEADERS)


@router.get("/audit/status", response_class=HTMLResponse, include_in_schema=False)
def audit_status(request: Request, _user: OverseerUser, svc: ServicesDep) -> HTMLResponse:
    """This department's receipt batches, checked, every overdue request, and the
    record batches whose manifest could not be read or checked."""
    st = _state(request, svc)
    with st.lock:
        view = st.view()
        body = render_status(
            audit_receipts(view, svc.dept), overdue_requests(view), record_batches(view)
        )
    return HTMLResponse(body, headers=_FRAGMENT_HEADERS)


def _history(request: Request, svc: BrokerServices, subject: str) -> dict[str, Any]:
    """A subject's history, by the keyed reference of its id (never logged)."""
    ref, label = reference_of(svc.subject_key, subject)
    st = _state(request, svc)
    with st.lock:
        return build_subject_history(st.view(), ref, label=label)


@router.post("/audit/subject", response_class=HTMLResponse, include_in_schema=False)
def audit_subject_view(
    request: Request, body: SubjectIn, _user: OverseerUser, svc: ServicesDep
) -> HTMLResponse:
    """A subject's access history (an HTML fragment of the page)."""
    return HTMLResponse(
        render_subject(_history(request, svc, body.subject)), headers=_FRAGMENT_HEADERS
    )


@router.post("/v1/audit/subject", responses=problem_responses(400, 401, 403, 422, 500, 503))
def audit_subject(
    request: Request, body: SubjectIn, _user: OverseerUser, svc: ServicesDep
) -> JSONResponse:
    """A subject's access history across departments (``govshare audit subject
    --json``): every record about it, and every request, decision, delivery and
    revocation, each delivery proven. The id goes in the body, never a URL."""
    return JSONResponse(_history(request, svc, body.subject))


@router.get(
    "/v1/audit/trail/{record_id}", responses=problem_responses(401, 403, 404, 422, 500, 503)
)
def audit_trail(
    request: Request,
    record_id: RecordId,
    _user: OverseerUser,
    svc: ServicesDep,
    format: Annotated[str, Query(pattern="^(json|prov)$")] = "json",
) -> JSONResponse:
    """The trail of a record (``govshare audit trail --format json|prov``)."""
    st = _state(request, svc)
    with st.lock:
        trail: dict[str, Any] = build_trail(st.view(), record_id)
    return JSONResponse(trail_to_prov(trail) if format == "prov" else trail)


@router.get(
    "/v1/audit/manifests/{cid}",
    response_class=Response,
    responses={
        200: {"content": {"application/x-ndjson": {}}},
        **problem_responses(401, 403, 404, 422, 500, 503),
    },
)
def audit_manifest(
    request: Request,
    cid: Annotated[str, Path(min_length=10, max_length=128, pattern=r"^[A-Za-z0-9]+$")],
    _user: OverseerUser,
    svc: ServicesDep,
) -> Response:
    """One of this department's anchored receipt manifests, by its CID. (Only
    manifests: the store's other blobs are not served here.)"""
    access = svc.ledger.access
    anchored = {
        access.get_receipt_batch(svc.dept, i).manifest_cid
        for i in range(1, access.receipt_batch_count(svc.dept) + 1)
    }
    if cid not in anchored or not svc.store.has(cid):
        raise NotFound(f"{svc.dept} has anchored no receipt manifest {cid}.")
    return Response(b"".join(svc.store.get(cid)), media_type="application/x-ndjson")
