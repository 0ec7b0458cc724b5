"""Requests: asking another department for a record, and keeping the broker's
view of requests in step with the chain (consent itself: :mod:`govshare.broker.consent`).

    out = request_access(svc, principal, "TAX", record_id, "business licence", "art. 5")
    out.request_id                                   # the on-chain request id
    sync_requests(svc)                               # one mirror tick: access_requests rows

* :func:`request_access` — a transaction from the requesting department's broker
  key (``requestAccess``), run as a one-step durable operation: a retry with the
  same ``Idempotency-Key`` returns the same request, and a step that runs again
  after a crash first looks for the request it may already have sent.
* :class:`RequestProjection` — derives ``access_requests`` from the broker's
  ledger mirror (``chain/mirror.py``): for every AccessLedger event naming this
  department (as owner or requester), the request's state is read once at the
  tick's head and copied, in the transaction that stores the event. A rewind
  re-reads (or forgets) the requests whose events were rewound.
  :func:`sync_requests` runs one tick of the mirror.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection as DbConnection

from govshare.broker.db import AccessRequest, ExchangeNonce, RequestStatus
from govshare.broker.errors import CategoryNotShared, RecordUnknown
from govshare.broker.outbox import JSON, StepContext, fingerprint, principal_of
from govshare.broker.queries import batched_leaf
from govshare.broker.subjects import refuse_identifiers, subject_ref
from govshare.broker.users import Principal, normalise_dept
from govshare.chain.contracts import AccessRequest as ChainRequest
from govshare.chain.contracts import DepartmentStatus, SharingType, decode_code, to_bytes32
from govshare.chain.contracts import RequestStatus as ChainStatus
from govshare.chain.mirror import IndexedEvent, Projection
from govshare.clock import SYSTEM_CLOCK, Clock, utcnow
from govshare.errors import InputError, NotFound
from govshare.util import chain_time

if TYPE_CHECKING:
    from govshare.broker.services import BrokerServices

log = logging.getLogger(__name__)

KIND = "request"

_PURPOSE_MAX = 2000
_EVENTS = frozenset(
    {
        "AccessRequested",
        "AccessApproved",
        "AccessDenied",
        "AccessRevoked",
        "GrantUsesRecorded",
        "RequestReminded",
        "RequestEscalated",
    }
)


# -- asking -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestOutcome:
    operation_id: str
    created: bool
    state: str
    request_id: int | None
    error: JSON | None
    granted: bool = False  # at once, by the contract (an unconditional category)


def request_access(
    svc: BrokerServices,
    user: Principal | str,
    owner: str,
    record_id: bytes | str,
    purpose: str,
    legal_basis: str = "",
    *,
    deadline_in: int | None = None,
    idempotency_key: str,
) -> RequestOutcome:
    """Ask ``owner`` for its record ``record_id`` (a transaction from this
    department's broker key). Checks first, on chain: the owner is an active
    department other than this one, and the record is anchored and the owner's.
    The deadline defaults to ``svc.limits.request_deadline`` from now (chain time)."""
    owner = _other_department(svc, owner)
    rid = "0x" + to_bytes32(record_id, "record id", allow_zero=False).hex()
    terms = _terms(svc, purpose, legal_basis, deadline_in)
    body = {"kind": KIND, "owner": owner, "record_id": rid, **terms}
    return _submit(svc, user, body, idempotency_key, lambda: _check_request(svc, owner, rid))


def request_by_subject(
    svc: BrokerServices,
    user: Principal | str,
    owner: str,
    category: str,
    subject: str,
    purpose: str,
    legal_basis: str = "",
    *,
    latest_only: bool = False,
    deadline_in: int | None = None,
    idempotency_key: str,
) -> RequestOutcome:
    """Ask ``owner`` for its records of ``category`` about ``subject`` (an id, sent
    to nobody: only its keyed reference goes on chain and into this broker's
    operation log). The grant covers the version current when it is given and,
    unless ``latest_only``, the versions published while it is valid. An owner
    that shares the category unconditionally is granted at once by the contract;
    one that does not share it is refused (checked first, with a sentence)."""
    owner = _other_department(svc, owner)
    category = _category_label(category)
    ref = "0x" + subject_ref(svc.subject_key, subject).hex()
    terms = _terms(svc, purpose, legal_basis, deadline_in)
    body = {
        "kind": KIND,
        "owner": owner,
        "category": category,
        "subject_ref": ref,
        "latest_only": bool(latest_only),
        **terms,
    }
    return _submit(svc, user, body, idempotency_key, lambda: _check_subject(svc, owner, category))


def _other_department(svc: BrokerServices, owner: str) -> str:
    owner = normalise_dept(owner)
    if owner == svc.dept:
        raise InputError("A department cannot request its own record.")
    return owner


def _category_label(category: str) -> str:
    text = (category or "").strip()
    if not text or len(text.encode("utf-8")) > 32 or not text.isprintable():
        raise InputError(
            "A category is 1 to 32 characters from A-Z, a-z, 0-9, '.', '_' and '-'.",
            category=text[:64],
        )
    return text


def _terms(
    svc: BrokerServices, purpose: str, legal_basis: str, deadline_in: int | None
) -> dict[str, Any]:
    """A request's purpose, legal basis and deadline, checked (the same rules for
    every kind of request)."""
    purpose = (purpose or "").strip()
    if not purpose:
        raise InputError("Say what the record is for (a purpose is required).")
    if len(purpose) > _PURPOSE_MAX or len(legal_basis or "") > _PURPOSE_MAX:
        raise InputError(f"Purpose and legal basis are at most {_PURPOSE_MAX} characters each.")
    refuse_identifiers(purpose, "purpose")  # nothing personal on chain (docs/privacy.md)
    refuse_identifiers(legal_basis or "", "legal basis")
    seconds = svc.limits.request_deadline if deadline_in is None else int(deadline_in)
    if seconds <= 0:
        raise InputError("The deadline must be in the future.")
    return {"purpose": purpose, "legal_basis": (legal_basis or "").strip(), "deadline_in": seconds}


def _submit(
    svc: BrokerServices,
    user: Principal | str,
    body: dict[str, Any],
    idempotency_key: str,
    check: Callable[[], None],
) -> RequestOutcome:
    principal = principal_of(user)
    fp = fingerprint(body)
    if svc.outbox.find(principal, idempotency_key) is None:
        check()
        payload = {**body, "deadline": svc.ledger.now() + int(body["deadline_in"])}
    else:
        payload = {}  # a retry: the original operation answers
    sub = svc.outbox.submit(KIND, idempotency_key, principal, fp, payload, run=False)
    view = svc.outbox.run(sub.operation.id, wait=False) if sub.created else sub.operation
    view = svc.outbox.settle(view)  # the outbox worker may be the one driving it
    rid_out = (view.result or {}).get("request_id")
    return RequestOutcome(
        view.id,
        sub.created,
        view.state.value,
        int(rid_out) if rid_out else None,
        view.error,
        granted=bool((view.result or {}).get("granted")),
    )


def _check_owner(svc: BrokerServices, owner: str) -> None:
    if owner not in svc.ledger.registry.all_departments():
        raise NotFound(f"There is no department {owner}.", department=owner)
    if svc.ledger.registry.department_status(owner) is not DepartmentStatus.ACTIVE:
        raise InputError(f"Department {owner} is not active; it cannot be asked for records.")


def _check_subject(svc: BrokerServices, owner: str, category: str) -> None:
    _check_owner(svc, owner)
    share = svc.ledger.records.category_sharing(owner, category)
    if not share.declared:
        raise NotFound(
            f"Department {owner} has not declared the category {category!r} in its catalog "
            f"(see `govshare catalog list --dept {owner}`).",
            department=owner,
            category=category,
        )
    if share.sharing is SharingType.NONE:
        raise CategoryNotShared(
            f"Department {owner} does not share its {category} records: its catalog declares "
            "that category as not shared, so no request for it can be made.",
            department=owner,
            category=category,
        )


def _check_request(svc: BrokerServices, owner: str, record_id: str) -> None:
    _check_owner(svc, owner)
    if svc.ledger.records.record_exists(record_id):
        holder = svc.ledger.records.get_record(record_id).department
    else:
        holder = _batched_owner(svc, record_id)
    if holder != owner:
        raise InputError(
            f"Record {record_id} belongs to {holder}, not {owner}: ask {holder}.",
            record_id=record_id,
        )


def _batched_owner(svc: BrokerServices, record_id: str) -> str:
    """The department of a record that is in an anchored batch but not on chain
    yet (the request materialises it); the mirror is caught up once if needed."""
    found = batched_leaf(svc, record_id)
    if found is None:
        pending = svc.batches.batches(states=["pending", "unavailable"])
        waiting = (
            f" {len(pending)} anchored batch(es) could not be read yet (their manifests "
            "are not available here); it may be in one of them — try again later."
            if pending
            else ""
        )
        raise RecordUnknown(
            f"There is no record {record_id}: it is neither anchored on chain nor in "
            f"any anchored record batch.{waiting}",
            record_id=record_id,
        )
    return found.record.department


def register(svc: BrokerServices) -> None:
    """Register the ``request`` operation kind on ``svc.outbox``."""
    svc.outbox.register(
        KIND,
        [
            ("materialise", lambda ctx: _materialise(svc, ctx)),
            ("send", lambda ctx: _send(svc, ctx)),
        ],
        result=lambda results: {
            **(results.get("send") or {}),
            "materialised": (results.get("materialise") or {}).get("tx_hashes", []),
        },
    )


def _materialise(svc: BrokerServices, ctx: StepContext) -> JSON:
    """Put a batched record (and its earlier versions missing from the chain) on
    chain, oldest first: ``requestAccess`` needs the record there. Reads the chain
    first, so it sends nothing for a record already there, and takes a concurrent
    materialisation by another department as done; after a crash it sends only
    what did not land."""
    if "record_id" not in ctx.payload:  # a request by subject names no record
        return {"tx_hashes": [], "resumed": ctx.resumed}
    sent = svc.ledger.records.materialise_chain(
        svc.account, str(ctx.payload["record_id"]), svc.batches.locate
    )
    # ``resumed``: this step was started before (a crash). An operation that was
    # already at its "send" step before this step existed resumes here too, so the
    # "send" step then looks for a request it may have sent.
    return {"tx_hashes": [t.tx_hash for t in sent], "resumed": ctx.resumed}


def _send(svc: BrokerServices, ctx: StepContext) -> JSON:
    if "record_id" not in ctx.payload:
        return _send_by_subject(svc, ctx)
    p = ctx.payload
    access = svc.ledger.access
    found: int | None = None
    if ctx.resumed or (ctx.results.get("materialise") or {}).get("resumed"):
        # The transaction may have landed before the crash: a request by this
        # department for this record with this purpose and deadline is ours.
        for rid in access.requests_for_record(str(p["record_id"])):
            r = access.get_request(rid)
            if (
                r.requester_department == svc.dept
                and r.purpose == p["purpose"]
                and r.legal_basis == p["legal_basis"]
                and r.deadline == int(p["deadline"])
            ):
                found = rid
                break
    if found is None:
        sent = access.request_access(
            svc.account,
            str(p["owner"]),
            str(p["record_id"]),
            str(p["purpose"]),
            str(p["legal_basis"]),
            int(p["deadline"]),
        )
        return _sent(svc, sent.value, sent.tx_hash, sent.block_number)
    return _sent(svc, found, "", svc.ledger.block_number())


def _send_by_subject(svc: BrokerServices, ctx: StepContext) -> JSON:
    p = ctx.payload
    access = svc.ledger.access
    found = _sent_by_subject(svc, p) if ctx.resumed else None
    if found is None:
        sent = access.request_by_subject(
            svc.account,
            str(p["owner"]),
            str(p["category"]),
            str(p["subject_ref"]),
            str(p["purpose"]),
            str(p["legal_basis"]),
            int(p["deadline"]),
            latest_only=bool(p["latest_only"]),
        )
        return _sent(svc, sent.value, sent.tx_hash, sent.block_number)
    return _sent(svc, found, "", svc.ledger.block_number())


def _sent(svc: BrokerServices, request_id: int, tx_hash: str, block: int) -> JSON:
    """The "send" step's result: the request on chain, copied into the local view
    (read at ``block``), and whether the contract granted it at once."""
    req = svc.ledger.access.get_request(request_id)
    with svc.db.session() as s:
        upsert_request(s.connection(), req, block, clock=svc.clock)
    return {
        "request_id": request_id,
        "tx_hash": tx_hash,
        "block_number": block,
        "granted": req.status is ChainStatus.APPROVED,
    }


def _sent_by_subject(svc: BrokerServices, p: Mapping[str, Any]) -> int | None:
    """The request this step may have sent before a crash: this department's, by
    subject, with the same terms (found in the mirror, caught up first)."""
    svc.sync.run_once()
    with svc.db.session(readonly=True) as s:
        rows = s.scalars(
            select(AccessRequest).where(
                AccessRequest.requester == svc.dept,
                AccessRequest.owner == str(p["owner"]),
                AccessRequest.category == str(p["category"]),
                AccessRequest.subject_ref == str(p["subject_ref"]),
                AccessRequest.purpose == str(p["purpose"]),
            )
        ).all()
        deadline = chain_time(int(p["deadline"]))
        for row in rows:
            if (
                (row.legal_basis or "") == str(p["legal_basis"])
                and row.deadline == deadline
                and bool(row.latest_only) == bool(p["latest_only"])
            ):
                return int(row.request_id)
    return None


# -- requests and grants, derived from the ledger mirror ---------------------------------

_STATUS = {
    ChainStatus.PENDING: RequestStatus.PENDING,
    ChainStatus.APPROVED: RequestStatus.APPROVED,
    ChainStatus.DENIED: RequestStatus.DENIED,
    ChainStatus.REVOKED: RequestStatus.REVOKED,
}


def upsert_request(
    db: DbConnection, req: ChainRequest, block: int, *, clock: Clock = SYSTEM_CLOCK
) -> None:
    """Copy a request's on-chain state (read at ``block``) into ``access_requests``
    — never backwards: a row already updated from a later block is kept."""
    key = str(req.id)
    stored = db.execute(
        select(AccessRequest.updated_block).where(AccessRequest.request_id == key)
    ).scalar()
    if stored is not None and int(stored) > block:
        return
    granted = req.status in (ChainStatus.APPROVED, ChainStatus.REVOKED)
    values: dict[str, Any] = {
        "requester": req.requester_department,
        "owner": req.owner_department,
        "record_id": "0x" + req.record_id.hex(),
        "status": _STATUS.get(req.status, RequestStatus.PENDING).value,
        "purpose": req.purpose,
        "legal_basis": req.legal_basis or None,
        "deadline": chain_time(req.deadline),
        "grant_id": key if granted else None,
        "expires_at": chain_time(req.expires_at) if granted else None,
        "max_uses": req.max_uses if granted else None,
        "uses": req.used_count,
        "decided_by": req.decided_by,
        "decided_at": chain_time(req.decided_at) if req.decided_at else None,
        "category": req.category,
        "subject_ref": "0x" + req.subject_ref.hex() if req.subject_ref else None,
        "latest_only": req.latest_only,
        "reason": req.revoke_reason or req.deny_reason or None,
        "updated_block": block,
        "updated_at": utcnow(clock),
    }
    if stored is None:
        db.execute(insert(AccessRequest).values(request_id=key, **values))
    else:
        db.execute(update(AccessRequest).where(AccessRequest.request_id == key).values(**values))


class RequestProjection(Projection):
    """Keeps ``access_requests`` — the requests that concern this department, as
    owner or requester — in step with the ledger mirror. An AccessLedger event
    naming the department says the request changed: its state is read once, at
    the tick's head (never at a historical block), and copied."""

    def __init__(self, svc: BrokerServices) -> None:
        self.svc = svc

    def _ids(self, events: Sequence[IndexedEvent]) -> list[int]:
        ids: set[int] = set()
        for ev in events:
            if ev.contract != "AccessLedger" or ev.event not in _EVENTS:
                continue
            depts = {
                _code(v)
                for k, v in ev.args.items()
                if k in ("requesterDepartment", "ownerDepartment", "department")
            }
            if self.svc.dept in depts:
                rid = ev.args.get("requestId", ev.args.get("grantId", 0))
                if isinstance(rid, int) and rid > 0:
                    ids.add(rid)
        return sorted(ids)

    def _read(self, ids: list[int], head: int) -> dict[int, ChainRequest | None]:
        return self.svc.ledger.access.get_requests(ids, block=head)

    def prepare(self, events: Sequence[IndexedEvent], head: int) -> Any:
        return head, self._read(self._ids(events), head)

    def apply(
        self, db: DbConnection, events: Sequence[IndexedEvent], prepared: Any, head: int
    ) -> None:
        block, found = prepared
        for req in found.values():
            if req is not None:
                upsert_request(db, req, block, clock=self.svc.clock)

    def prepare_rewind(self, removed: Sequence[IndexedEvent], fork: int, head: int) -> Any:
        return head, self._read(self._ids(removed), head)

    def apply_rewind(
        self, db: DbConnection, removed: Sequence[IndexedEvent], prepared: Any, fork: int
    ) -> None:
        block, found = prepared
        for rid, req in found.items():
            row = AccessRequest.request_id == str(rid)
            mine = req is not None and self.svc.dept in (
                req.owner_department,
                req.requester_department,
            )
            if not mine:  # lost with the rewound blocks (its id may now be another's)
                db.execute(delete(AccessRequest).where(row))
            else:
                assert req is not None
                db.execute(update(AccessRequest).where(row).values(updated_block=fork))
                upsert_request(db, req, block, clock=self.svc.clock)

    def reset(self, db: DbConnection) -> None:
        db.execute(delete(AccessRequest))


def _code(value: Any) -> str:
    if isinstance(value, str) and value.startswith("0x"):
        try:
            return decode_code(bytes.fromhex(value[2:]))
        except ValueError:
            return ""
    return ""


def sync_requests(svc: BrokerServices) -> int:
    """One tick of the broker's ledger mirror (for scripts and tests)."""
    return svc.mirror.run_once()


def forget_old_nonces(svc: BrokerServices, *, grace: int = 60) -> int:
    """Drop exchange nonces whose requests expired more than ``grace`` seconds
    ago (by ``svc.clock``): a replay of those is refused as expired anyway."""
    cutoff = utcnow(svc.clock) - timedelta(seconds=grace)
    old = ExchangeNonce.expires_at < cutoff
    # A read first: an idle broker writes nothing (no empty write transaction
    # every round, which on SQLite also takes the database's write lock).
    with svc.db.session(readonly=True) as s:
        if s.execute(select(ExchangeNonce.expires_at).where(old).limit(1)).first() is None:
            return 0
    with svc.db.session() as s:
        res = s.execute(delete(ExchangeNonce).where(old))
        return int(getattr(res, "rowcount", 0) or 0)
