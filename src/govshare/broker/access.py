"""Requests: asking another department for a record, and keeping the broker's
view of requests in step with the chain (consent itself: :mod:`govshare.broker.consent`).

    out = request_access(svc, principal, "TAX", record_id, "business licence", "art. 5")
    out.request_id                                   # the on-chain request id
    sync_requests(svc)                               # access_requests rows, from events

* :func:`request_access` — a transaction from the requesting department's broker
  key (``requestAccess``), run as a one-step durable operation: a retry with the
  same ``Idempotency-Key`` returns the same request, and a step that runs again
  after a crash first looks for the request it may already have sent.
* :func:`sync_requests` — reads the AccessLedger's events since the last
  checkpoint and, for every request that concerns this department (as owner or
  requester), copies its current state from ``getRequest`` into
  ``access_requests``. Idempotent (a full copy, not a delta), so applying an
  event twice is harmless; the checkpoint is committed with the rows.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete

from govshare.broker.db import AccessRequest, ExchangeNonce, RequestStatus, SyncState, utcnow
from govshare.broker.errors import RecordUnknown
from govshare.broker.outbox import JSON, StepContext, fingerprint, principal_of
from govshare.broker.users import Principal, normalise_dept
from govshare.chain.contracts import AccessRequest as ChainRequest
from govshare.chain.contracts import DepartmentStatus, decode_code, to_bytes32
from govshare.chain.contracts import RequestStatus as ChainStatus
from govshare.errors import InputError, NotFound

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from govshare.broker.services import BrokerServices

log = logging.getLogger(__name__)

KIND = "request"
SYNC_NAME = "access_ledger"
#: Blocks per eth_getLogs call (Besu's default --rpc-max-logs-range is 5000).
SYNC_RANGE = 2000

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


def _ts(value: int) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value else None


# -- asking -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestOutcome:
    operation_id: str
    created: bool
    state: str
    request_id: int | None
    error: JSON | None


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
    owner = normalise_dept(owner)
    if owner == svc.dept:
        raise InputError("A department cannot request its own record.")
    rid = "0x" + to_bytes32(record_id, "record id", allow_zero=False).hex()
    purpose = (purpose or "").strip()
    if not purpose:
        raise InputError("Say what the record is for (a purpose is required).")
    if len(purpose) > _PURPOSE_MAX or len(legal_basis or "") > _PURPOSE_MAX:
        raise InputError(f"Purpose and legal basis are at most {_PURPOSE_MAX} characters each.")
    legal_basis = (legal_basis or "").strip()
    seconds = svc.limits.request_deadline if deadline_in is None else int(deadline_in)
    if seconds <= 0:
        raise InputError("The deadline must be in the future.")
    principal = principal_of(user)
    body = {
        "kind": KIND,
        "owner": owner,
        "record_id": rid,
        "purpose": purpose,
        "legal_basis": legal_basis,
        "deadline_in": seconds,
    }
    fp = fingerprint(body)
    if svc.outbox.find(principal, idempotency_key) is None:
        _check_request(svc, owner, rid)
        payload = {**body, "deadline": svc.ledger.now() + seconds}
    else:
        payload = {}  # a retry: the original operation answers
    sub = svc.outbox.submit(KIND, idempotency_key, principal, fp, payload, run=False)
    view = svc.outbox.run(sub.operation.id, wait=False) if sub.created else sub.operation
    view = svc.outbox.settle(view)  # the outbox worker may be the one driving it
    rid_out = (view.result or {}).get("request_id")
    return RequestOutcome(
        view.id, sub.created, view.state.value, int(rid_out) if rid_out else None, view.error
    )


def _check_request(svc: BrokerServices, owner: str, record_id: str) -> None:
    if owner not in svc.ledger.registry.all_departments():
        raise NotFound(f"There is no department {owner}.", department=owner)
    if svc.ledger.registry.department_status(owner) is not DepartmentStatus.ACTIVE:
        raise InputError(f"Department {owner} is not active; it cannot be asked for records.")
    if not svc.ledger.records.record_exists(record_id):
        raise RecordUnknown(f"There is no anchored record {record_id}.", record_id=record_id)
    rec = svc.ledger.records.get_record(record_id)
    if rec.department != owner:
        raise InputError(
            f"Record {record_id} belongs to {rec.department}, not {owner}: ask {rec.department}.",
            record_id=record_id,
        )


def register(svc: BrokerServices) -> None:
    """Register the ``request`` operation kind on ``svc.outbox``."""
    svc.outbox.register(KIND, [("send", lambda ctx: _send(svc, ctx))])


def _send(svc: BrokerServices, ctx: StepContext) -> JSON:
    p = ctx.payload
    access = svc.ledger.access
    found: int | None = None
    if ctx.resumed:
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
        found, tx_hash, block = sent.value, sent.tx_hash, sent.block_number
    else:
        tx_hash, block = "", svc.ledger.block_number()
    req = access.get_request(found)
    with svc.db.session() as s:
        upsert_request(s, req, block)
    return {"request_id": found, "tx_hash": tx_hash, "block_number": block}


# -- the local mirror of the chain ------------------------------------------------------

_STATUS = {
    ChainStatus.PENDING: RequestStatus.PENDING,
    ChainStatus.APPROVED: RequestStatus.APPROVED,
    ChainStatus.DENIED: RequestStatus.DENIED,
    ChainStatus.REVOKED: RequestStatus.REVOKED,
}


def upsert_request(s: Session, req: ChainRequest, block: int) -> AccessRequest:
    """Copy a request's on-chain state into ``access_requests`` (never backwards:
    a row already updated from a later block is kept)."""
    key = str(req.id)
    row = s.get(AccessRequest, key)
    if row is not None and row.updated_block > block:
        return row
    if row is None:
        row = AccessRequest(request_id=key, updated_block=block)
        s.add(row)
    granted = req.status in (ChainStatus.APPROVED, ChainStatus.REVOKED)
    values: dict[str, Any] = {
        "requester": req.requester_department,
        "owner": req.owner_department,
        "record_id": "0x" + req.record_id.hex(),
        "status": _STATUS.get(req.status, RequestStatus.PENDING).value,
        "purpose": req.purpose,
        "legal_basis": req.legal_basis or None,
        "deadline": _ts(req.deadline),
        "grant_id": key if granted else None,
        "expires_at": _ts(req.expires_at) if granted else None,
        "max_uses": req.max_uses if granted else None,
        "uses": req.used_count,
        "decided_by": req.decided_by,
        "reason": req.revoke_reason or req.deny_reason or None,
        "updated_block": block,
        "updated_at": utcnow(),
    }
    for k, v in values.items():
        setattr(row, k, v)
    return row


class RequestSync:
    """Follows the AccessLedger's events into one broker's ``access_requests``."""

    def __init__(self, svc: BrokerServices) -> None:
        self.svc = svc
        self._lock = threading.Lock()

    def run_once(self) -> int:
        """Apply every event up to the chain's head; returns the requests updated.
        Concurrent callers wait for the one running (then find little to do)."""
        with self._lock:
            return self._run()

    def _checkpoint(self) -> tuple[int, str]:
        deployment = self.svc.ledger.deployment
        with self.svc.db.session(readonly=True) as s:
            state = s.get(SyncState, SYNC_NAME)
            if state is None:
                return deployment.deploy_block - 1, ""
            return state.block, state.block_hash

    def _run(self) -> int:
        ledger = self.svc.ledger
        conn = ledger.conn
        cp, cp_hash = self._checkpoint()
        if cp_hash and conn.get_block(cp).get("hash") != cp_hash:
            # The chain under this checkpoint changed (a reset dev chain): read it all again.
            log.warning("chain changed under the request checkpoint; re-reading from deploy")
            cp = ledger.deployment.deploy_block - 1
        head = conn.block_number()
        updated = 0
        start = cp + 1
        while start <= head:
            end = min(head, start + SYNC_RANGE - 1)
            ids: set[int] = set()
            for raw in conn.get_logs(start, end, [ledger.access.address]):
                ev = ledger.log_decoder(raw)
                if ev is None or ev.name not in _EVENTS:
                    continue
                depts = {
                    decode_code(v)
                    for k, v in ev.args.items()
                    if k in ("requesterDepartment", "ownerDepartment", "department")
                    and isinstance(v, bytes)
                }
                if self.svc.dept in depts:
                    ids.add(int(ev.args.get("requestId", ev.args.get("grantId", 0))))
            requests = [ledger.access.get_request(i, block=end) for i in sorted(ids) if i]
            end_hash = str(conn.get_block(end).get("hash", ""))
            with self.svc.db.session() as s:
                for req in requests:
                    upsert_request(s, req, end)
                state = s.get(SyncState, SYNC_NAME)
                if state is None:
                    state = SyncState(name=SYNC_NAME, block=end, block_hash=end_hash)
                    s.add(state)
                state.block, state.block_hash, state.updated_at = end, end_hash, utcnow()
            updated += len(requests)
            start = end + 1
        return updated


def sync_requests(svc: BrokerServices) -> int:
    """One pass of :class:`RequestSync` (a throwaway follower: for scripts and tests)."""
    return RequestSync(svc).run_once()


def forget_old_nonces(svc: BrokerServices, *, grace: int = 60) -> int:
    """Drop exchange nonces whose requests expired more than ``grace`` seconds
    ago: a replay of those is refused as expired anyway."""
    cutoff = datetime.fromtimestamp(datetime.now(UTC).timestamp() - grace, UTC)
    with svc.db.session() as s:
        res = s.execute(delete(ExchangeNonce).where(ExchangeNonce.expires_at < cutoff))
        return int(getattr(res, "rowcount", 0) or 0)
