"""Consent and supervision: an administrator's decisions on requests for its
department's records, and the requester's reminders and escalations.

    plan = prepare_approval(ledger, 7, dept="TAX", max_uses=3, expires_in=30 * 86400)
    plan.request, plan.expires_at                  # what to show before signing
    done = approve(ledger, admin, 7, max_uses=3, expires_at=plan.expires_at, dept="TAX")
    done.request.status, done.grant.usable, done.tx_hash

* :func:`approve`, :func:`deny`, :func:`revoke` — consent, signed by an
  administrator of the owning department (a ``LocalAccount`` the caller
  unlocked): that signature is the consent evidence on chain. A broker key
  cannot consent; the contract refuses it, and any other department's admin.
* :func:`remind` (催办) and :func:`escalate` (督办) — the requesting department
  chases an overdue request, signed by its administrator (or its broker) key.

Each ``prepare_*`` function makes every check its action makes, without
signing, and returns what a confirmation prompt shows; the action runs the same
checks again (the chain may have moved while a person was reading), sends, and
returns the request as the chain holds it afterwards. The contract refuses what
these checks let through (a request already decided, say) with its own error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from govshare.broker.outbox import Outbox
from govshare.broker.signed import send_journaled
from govshare.broker.subjects import refuse_identifiers
from govshare.chain.contracts import AccessRequest, GrantStatus, RequestStatus
from govshare.chain.ledger import Ledger
from govshare.chain.mirror import Mirror
from govshare.chain.tx import TxResult
from govshare.errors import InputError, NotFound
from govshare.util import iso

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

# -- results ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """A consent transaction that was mined, and the request (and its grant) after it."""

    request: AccessRequest
    grant: GrantStatus
    tx: TxResult

    @property
    def tx_hash(self) -> str:
        """The transaction's hash."""
        return self.tx.tx_hash

    @property
    def block_number(self) -> int:
        """The block the transaction was mined in."""
        return self.tx.block_number


@dataclass(frozen=True)
class ApprovalPlan:
    """What an approval will do: the request, and the grant's terms in chain time."""

    request: AccessRequest
    expires_at: int
    max_uses: int


@dataclass(frozen=True)
class EscalationPlan:
    """An escalation about to be sent: the overdue request and who will be told."""

    request: AccessRequest
    supervisors: tuple[str, ...]


@dataclass(frozen=True)
class Supervision:
    """A reminder or escalation that was mined, and the request after it."""

    request: AccessRequest
    tx: TxResult
    supervisors: tuple[str, ...] = ()

    @property
    def tx_hash(self) -> str:
        """The transaction's hash."""
        return self.tx.tx_hash

    @property
    def block_number(self) -> int:
        """The block the transaction was mined in."""
        return self.tx.block_number


# -- checks -----------------------------------------------------------------------------


def find_request(ledger: Ledger, request_id: int) -> AccessRequest:
    """The request ``request_id`` as the chain holds it now (``NotFound`` if none)."""
    if request_id < 1 or request_id > ledger.access.request_count():
        raise NotFound(f"There is no request {request_id}.")
    return ledger.access.get_request(request_id)


def _reason(reason: str, what: str) -> str:
    text = (reason or "").strip()
    if not text:
        raise InputError(f"Say why the {what} (a reason is required).")
    return refuse_identifiers(text, "reason")  # nothing personal on chain (docs/privacy.md)


def _expiry(ledger: Ledger, expires_at: int | None, expires_in: int | None) -> int:
    if (expires_at is None) == (expires_in is None):
        raise InputError("Give the grant's expiry as expires_at or expires_in (one of them).")
    if expires_at is not None:
        return int(expires_at)
    # chain time: the contract compares the expiry with block timestamps
    return ledger.now() + int(expires_in or 0)


def prepare_decision(ledger: Ledger, request_id: int, *, dept: str | None) -> AccessRequest:
    """The request an administrator of ``dept`` is about to decide on (or revoke).

    Raises ``NotFound`` for an unknown request and ``InputError`` when it asks
    another department than ``dept`` (the contract refuses that too; saying it
    before signing is kinder). ``dept=None`` leaves the owner check to the contract.
    """
    r = find_request(ledger, int(request_id))
    if dept is not None and r.owner_department != dept:
        raise InputError(
            f"Request #{r.id} asks {r.owner_department}, not {dept}: only an "
            f"administrator of {r.owner_department} can decide on it."
        )
    return r


def prepare_approval(
    ledger: Ledger,
    request_id: int,
    *,
    dept: str | None,
    max_uses: int,
    expires_at: int | None = None,
    expires_in: int | None = None,
) -> ApprovalPlan:
    """Check an approval (see :func:`prepare_decision`) and fix its expiry: at
    ``expires_at``, or ``expires_in`` seconds from now in chain time."""
    if max_uses < 1:
        raise InputError("A grant allows at least one use (max_uses ≥ 1).")
    when = _expiry(ledger, expires_at, expires_in)
    return ApprovalPlan(prepare_decision(ledger, request_id, dept=dept), when, int(max_uses))


def prepare_denial(
    ledger: Ledger, request_id: int, reason: str, *, dept: str | None
) -> AccessRequest:
    """Check a denial: a reason, then :func:`prepare_decision`."""
    _reason(reason, "request is denied")
    return prepare_decision(ledger, request_id, dept=dept)


def prepare_revocation(
    ledger: Ledger, grant_id: int, reason: str, *, dept: str | None
) -> AccessRequest:
    """Check a revocation: a reason, then :func:`prepare_decision` (a grant has
    its request's id)."""
    _reason(reason, "grant is revoked")
    return prepare_decision(ledger, grant_id, dept=dept)


def _decided(ledger: Ledger, request_id: int, tx: TxResult) -> Decision:
    return Decision(
        ledger.access.get_request(request_id), ledger.access.grant_status(request_id), tx
    )


# -- what waits for a decision -------------------------------------------------------------


def list_requests(
    ledger: Ledger,
    mirror: Mirror,
    *,
    dept: str | None = None,
    direction: str | None = None,
    status: str | None = None,
) -> list[tuple[AccessRequest, GrantStatus]]:
    """Requests on chain (those to or from ``dept``; ``direction`` "incoming" or
    "outgoing" narrows to one side), with their grants' status, oldest first.

    Which requests exist is read from ``mirror`` (brought up to date first: one
    tick), their state from the chain at its head in two batched round trips —
    never one call per request."""
    if direction not in (None, "incoming", "outgoing"):
        raise InputError("direction is incoming or outgoing.")
    if direction and not dept:
        raise InputError("Say which department's incoming or outgoing requests to list.")
    mirror.run_once()
    events = (
        mirror.events_for_department(dept, "AccessRequested")
        if dept
        else mirror.events("AccessRequested")
    )
    ids = sorted({int(e.args["requestId"]) for e in events})
    found = ledger.access.get_requests(ids)
    grants = ledger.access.grant_statuses(ids)
    out = []
    for rid in ids:
        r = found.get(rid)
        if r is None or rid not in grants:
            continue  # gone since the mirror read it (a rewind): the next list shows it
        if direction == "incoming" and r.owner_department != dept:
            continue
        if direction == "outgoing" and r.requester_department != dept:
            continue
        if status and r.status.value != status:
            continue
        out.append((r, grants[rid]))
    return out


# -- consent ----------------------------------------------------------------------------


def approve(
    ledger: Ledger,
    admin: LocalAccount,
    request_id: int,
    *,
    max_uses: int,
    expires_at: int | None = None,
    expires_in: int | None = None,
    scope: bytes | str | None = None,
    dept: str | None = None,
    journal: Outbox | None = None,
) -> Decision:
    """Approve a request (consent), signed by an administrator of the owning
    department: usable until ``expires_at`` (or ``expires_in`` seconds from now,
    chain time) for at most ``max_uses`` fetches. ``dept``: the department the
    administrator acts for, checked against the request's owner before signing.
    ``journal``: the department's outbox, which keeps the signed decision so its
    broker can send it again if the chain loses it (see ``signed.py``)."""
    plan = prepare_approval(
        ledger,
        request_id,
        dept=dept,
        max_uses=max_uses,
        expires_at=expires_at,
        expires_in=expires_in,
    )
    req = ledger.access.approve_request(
        plan.request.id, expires_at=plan.expires_at, max_uses=plan.max_uses, scope=scope
    )
    return _decided(ledger, plan.request.id, send_journaled(journal, ledger, admin, req))


def deny(
    ledger: Ledger,
    admin: LocalAccount,
    request_id: int,
    reason: str,
    *,
    dept: str | None = None,
    journal: Outbox | None = None,
) -> Decision:
    """Deny a request with a reason, signed by an administrator of the owning department."""
    r = prepare_denial(ledger, request_id, reason, dept=dept)
    req = ledger.access.deny_request(r.id, reason.strip())
    return _decided(ledger, r.id, send_journaled(journal, ledger, admin, req))


def revoke(
    ledger: Ledger,
    admin: LocalAccount,
    grant_id: int,
    reason: str,
    *,
    dept: str | None = None,
    journal: Outbox | None = None,
) -> Decision:
    """Revoke a grant, signed by an administrator of the owning department. From
    the next block on, the owner's broker refuses it."""
    r = prepare_revocation(ledger, grant_id, reason, dept=dept)
    req = ledger.access.revoke_request(r.id, reason.strip())
    return _decided(ledger, r.id, send_journaled(journal, ledger, admin, req))


# -- supervision (催办 / 督办) -------------------------------------------------------------


def _overdue(ledger: Ledger, request_id: int, dept: str, verb: str) -> AccessRequest:
    """The request, if ``dept`` may ``verb`` it now; else a sentence saying why not."""
    r = find_request(ledger, int(request_id))
    if r.requester_department != dept:
        raise InputError(
            f"Request #{r.id} was made by {r.requester_department}, not {dept}: only "
            f"the requesting department can {verb} it."
        )
    if r.status is not RequestStatus.PENDING:
        raise InputError(
            f"Request #{r.id} is {r.status.value} already: the owner has answered, "
            f"there is nothing to {verb}."
        )
    if ledger.now() <= r.deadline:
        raise InputError(
            f"Request #{r.id} is not overdue: {r.owner_department} has until "
            f"{iso(r.deadline)} to decide."
        )
    return r


def prepare_reminder(ledger: Ledger, request_id: int, *, dept: str) -> AccessRequest:
    """The overdue request ``dept`` (its requester) may remind the owner of."""
    return _overdue(ledger, request_id, dept, "remind")


def prepare_escalation(ledger: Ledger, request_id: int, *, dept: str) -> EscalationPlan:
    """The overdue request ``dept`` may escalate, and the supervisors it goes to
    (none: ``InputError``, the consortium must vote one in first)."""
    r = _overdue(ledger, request_id, dept, "escalate")
    supervisors = tuple(ledger.registry.supervisors())
    if not supervisors:
        raise InputError(
            "The consortium has no supervisors to escalate to; its members can add one "
            "(a governance proposal)."
        )
    return EscalationPlan(r, supervisors)


def remind(
    ledger: Ledger,
    account: LocalAccount,
    request_id: int,
    *,
    dept: str,
    journal: Outbox | None = None,
) -> Supervision:
    """Remind the owner of an overdue request (an on-chain event), signed by the
    requesting department's administrator or broker key."""
    r = prepare_reminder(ledger, request_id, dept=dept)
    tx = send_journaled(journal, ledger, account, ledger.access.remind_request(r.id))
    return Supervision(ledger.access.get_request(r.id), tx)


def escalate(
    ledger: Ledger,
    account: LocalAccount,
    request_id: int,
    *,
    dept: str,
    journal: Outbox | None = None,
) -> Supervision:
    """Escalate an overdue request to the consortium's supervisors, signed by the
    requesting department's administrator or broker key."""
    plan = prepare_escalation(ledger, request_id, dept=dept)
    req = ledger.access.escalate_request(plan.request.id)
    tx = send_journaled(journal, ledger, account, req)
    return Supervision(ledger.access.get_request(plan.request.id), tx, plan.supervisors)
