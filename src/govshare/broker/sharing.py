"""Catalog-driven sharing: finding an owner's records about a subject, and the
versions a grant by subject covers (requests by subject themselves:
:func:`govshare.broker.access.request_by_subject`).

    find_records(svc, "TAX", "tax-clearance", "91110000710928411X")   # newest first
    fetch_by_subject(svc, "TAX", "tax-clearance", "91110000710928411X", Path("out.pdf"))
    covered(svc, grant, record_id)          # the owner's check, in the exchange

The subject id never leaves this broker: it is turned into the consortium's
keyed reference here (:mod:`govshare.broker.subjects`), and only the reference
is looked up (in this broker's ledger mirror) or sent (on chain).

Which versions a grant by subject covers — one rule,
:func:`govshare.chain.contracts.covers`, used by the requester to pick a version,
by the owner to check it and by auditors to check each receipt:

* the version that was current when the grant was given (anchored by then, not
  superseded by then) — and, unless the request said *latest only*,
* every version anchored after that, while the grant is valid.

A receipt names the exact version delivered.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import and_

from govshare.broker.db import AccessRequest, RequestStatus
from govshare.broker.errors import GrantMismatch, NoGrant, RecordUnknown
from govshare.broker.fetch import FetchResult, best_grant, fetch_granted, leaf_record
from govshare.broker.queries import batched_leaf, own_successor
from govshare.broker.subjects import subject_ref
from govshare.broker.users import normalise_dept
from govshare.chain.contracts import AccessRequest as ChainRequest
from govshare.chain.contracts import Record as ChainRecord
from govshare.chain.contracts import covers
from govshare.chain.subjectindex import SubjectRecord, records_about
from govshare.errors import InputError

if TYPE_CHECKING:
    from govshare.broker.services import BrokerServices


@dataclass(frozen=True)
class FoundRecord:
    """One of an owner's records about a subject, with when it was anchored."""

    record: SubjectRecord
    anchored_at: int  # chain seconds

    def to_dict(self) -> dict[str, object]:
        return {**self.record.to_dict(), "anchored_at": self.anchored_at}


def subject_reference(svc: BrokerServices, subject: str) -> str:
    """The consortium's keyed reference of ``subject`` (0x-hex)."""
    return "0x" + subject_ref(svc.subject_key, subject).hex()


def find_records(svc: BrokerServices, owner: str, category: str, subject: str) -> list[FoundRecord]:
    """``owner``'s anchored records of ``category`` about ``subject``, newest
    first, from this broker's ledger mirror (caught up first)."""
    owner = normalise_dept(owner)
    ref = subject_reference(svc, subject)
    svc.sync.run_once()
    return [
        FoundRecord(r, anchored_time(svc, r))
        for r in records_about(svc.db.engine, owner, category, ref)
    ]


def anchored_time(svc: BrokerServices, r: SubjectRecord) -> int:
    """When ``r`` was anchored (chain seconds): its batch's time, or its own."""
    if r.batch_sequence is not None:
        return svc.ledger.records.get_batch(r.department, r.batch_sequence).anchored_at
    rec = svc.chain_cache.anchor(r.record_id)
    if rec is None:  # listed by the mirror, so on chain; a rewound chain says otherwise
        raise RecordUnknown(f"There is no anchored record {r.record_id}.", record_id=r.record_id)
    return rec.anchored_at


def choose_subject_grant(svc: BrokerServices, owner: str, category: str, ref: str) -> AccessRequest:
    """This department's grant by subject for (owner, category, subject): the
    newest that looks usable, else the newest of any status (the owner then says
    why not); see :func:`govshare.broker.fetch.best_grant`."""
    row = best_grant(
        svc, owner, and_(AccessRequest.category == category, AccessRequest.subject_ref == ref)
    )
    if row is None:
        raise NoGrant(
            f"{svc.dept} holds no grant for {owner}'s {category} records about this subject: "
            f"ask {owner} for them first (`govshare request create --owner {owner} --category "
            f"{category} --subject ...`).",
            owner=owner,
            category=category,
        )
    return row


def fetch_by_subject(
    svc: BrokerServices,
    owner: str,
    category: str,
    subject: str,
    dst: Path,
    *,
    overwrite: bool = False,
    durable: bool = True,
) -> FetchResult:
    """Fetch the newest version of ``owner``'s ``category`` record about
    ``subject`` that this department's grant by subject covers."""
    owner = normalise_dept(owner)
    if owner == svc.dept:
        raise InputError("Read your own records with `govshare record fetch ID`.")
    ref = subject_reference(svc, subject)
    grant = choose_subject_grant(svc, owner, category, ref)
    found = find_records(svc, owner, category, subject)
    if not found:
        raise RecordUnknown(
            f"{owner} has anchored no {category} record about this subject (that this broker "
            "could read: a batch whose manifest is not available yet is not listed).",
            owner=owner,
            category=category,
        )
    chosen = _pick(found, grant)
    return fetch_granted(
        svc, _chain_record(svc, chosen.record), int(grant.request_id), dst,
        overwrite=overwrite, durable=durable,
    )  # fmt: skip


def _pick(found: list[FoundRecord], grant: AccessRequest) -> FoundRecord:
    """The newest listed version the grant covers (any version, for a grant not
    usable: the owner then refuses it with the grant's own reason)."""
    if grant.decided_at is None or grant.status != RequestStatus.APPROVED.value:
        return found[0]
    decided = int(grant.decided_at.timestamp())
    when = {f.record.record_id: f.anchored_at for f in found}
    for f in found:
        successor = f.record.superseded_by
        if covers(
            latest_only=bool(grant.latest_only),
            decided_at=decided,
            anchored_at=f.anchored_at,
            superseded_at=when.get(successor) if successor else None,
        ):
            return f
    raise GrantMismatch(
        f"Grant {grant.request_id} covers none of the versions listed (it covers only the "
        "version current when it was given).",
        grant_id=int(grant.request_id),
    )


def _chain_record(svc: BrokerServices, r: SubjectRecord) -> ChainRecord:
    """What the exchange checks the delivery against (hash, CID, owner): the
    record on chain, or its leaf in a batch the mirror checked against the root."""
    on_chain = svc.chain_cache.anchor(r.record_id)
    if on_chain is not None:
        return on_chain
    leaf = batched_leaf(svc, r.record_id)
    if leaf is None or leaf.record.department != r.department:
        raise RecordUnknown(f"There is no anchored record {r.record_id}.", record_id=r.record_id)
    return leaf_record(leaf)


# -- the owner's side ----------------------------------------------------------------------


def covered(svc: BrokerServices, grant: ChainRequest, record_id: str) -> bool:
    """Whether ``grant`` (by subject, of this department) covers this department's
    record ``record_id`` (0x-hex): same category and subject, and a version the
    grant covers (:func:`covers`), by the chain's times and this broker's own
    version links."""
    rec = svc.chain_cache.anchor(record_id)
    if rec is not None:
        category, ref, anchored_at = rec.category, rec.subject_ref, rec.anchored_at
    else:
        leaf = batched_leaf(svc, record_id)
        if leaf is None or leaf.record.department != svc.dept:
            return False
        category, ref = leaf.record.category, leaf.record.subject_ref
        anchored_at = svc.ledger.records.get_batch(svc.dept, leaf.batch.sequence).anchored_at
    if category != grant.category or ref is None or ref != grant.subject_ref:
        return False
    successor = own_successor(svc.db, record_id)
    superseded_at = _own_anchor_time(svc, successor) if successor else None
    return covers(
        latest_only=grant.latest_only,
        decided_at=grant.decided_at,
        anchored_at=anchored_at,
        superseded_at=superseded_at,
    )


def _own_anchor_time(svc: BrokerServices, record_id: str) -> int | None:
    """When this department's ``record_id`` was anchored (None: not yet)."""
    rec = svc.chain_cache.anchor(record_id)
    if rec is not None:
        return rec.anchored_at
    leaf = batched_leaf(svc, record_id)
    if leaf is None:
        return None
    return svc.ledger.records.get_batch(svc.dept, leaf.batch.sequence).anchored_at
