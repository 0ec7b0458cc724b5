"""``audit receipts`` and ``audit overdue``: the whole receipt log, and the
supervision loop.

    report = audit_receipts(view, dept="TAX")     # every batch, every receipt
    report["ok"], report["problems"]
    overdue = overdue_requests(view)               # open requests past their deadline
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from govshare.audit.receipts import ReceiptLeaf
from govshare.audit.view import AuditView, problem
from govshare.chain.contracts import RequestStatus
from govshare.util import iso

RECEIPTS_FORMAT = "govshare-receipts-audit/1"
OVERDUE_FORMAT = "govshare-overdue/1"


def audit_receipts(
    view: AuditView,
    dept: str | None = None,
    *,
    held: Iterable[ReceiptLeaf] = (),
) -> dict[str, Any]:
    """Check every anchored receipt batch (of ``dept``, or of every department):

    * each batch's manifest is found by its CID and hashes to the anchored root;
    * its header names the batch; its receipts are exactly ``first..last``, in
      order (no gap, overlap or omission); the uses per grant match the chain's;
    * every receipt's request hash, both signatures (the departments' registered
      broker keys at that time), grant (approved, not yet revoked or expired,
      for this requester and record) and ciphertext (the record's CID);
    * batches continue each other from 1 up to ``lastReceiptSeq``; no request is
      served twice; no grant has more receipts than its quota, and the chain's
      use count equals the receipts found.

    ``held``: receipts a requester kept (its copies); each must be anchored, as
    the same leaf. Returns a JSON-ready report; ``ok`` is false on any problem.
    """
    codes = [dept] if dept else view.ledger.registry.all_departments()
    problems: list[dict[str, Any]] = []
    departments = []
    batches = []
    anchored: dict[tuple[str, int], bytes] = {}
    for code in codes:
        count = view.batch_count(code)
        prev_last = 0
        per_grant: Counter[int] = Counter()
        hashes: Counter[str] = Counter()
        delivery: Counter[str] = Counter()
        complete = True
        n_receipts = 0
        for index in range(1, count + 1):
            b = view.batch(code, index)
            batches.append(b.to_dict())
            problems += b.all_problems()
            if b.batch.first_seq != prev_last + 1:
                problems.append(
                    problem(
                        "log.gap",
                        f"{code}'s batch {index} starts at receipt {b.batch.first_seq}, "
                        f"not {prev_last + 1}.",
                        department=code,
                        batch=index,
                    )
                )
            prev_last = b.batch.last_seq
            complete &= b.manifest_found and b.root_ok
            for c in b.receipts:
                per_grant[c.receipt.grant_id] += 1
                hashes[c.receipt.request_hash] += 1
                delivery[c.receipt.delivery] += 1
                anchored[(code, c.receipt.seq)] = c.receipt.leaf()
                n_receipts += 1
        onchain_last = view.ledger.access.last_receipt_seq(code)
        if onchain_last != prev_last:
            problems.append(
                problem(
                    "log.last_seq",
                    f"{code}'s last anchored receipt is {onchain_last} on chain, but its batches "
                    f"end at {prev_last}.",
                    department=code,
                )
            )
        problems += _replay_problems(code, hashes)
        problems += _grant_problems(view, code, per_grant, complete)
        departments.append(
            {
                "department": code,
                "batches": count,
                "receipts": n_receipts,
                "last_seq": onchain_last,
                "grants": {str(g): n for g, n in sorted(per_grant.items())},
                # acknowledged by the requester / anchored after the resume window
                # without it / version 1 receipts, from before acknowledgements
                "delivery": {
                    k: delivery[k] for k in ("acknowledged", "unacknowledged", "not recorded")
                },
            }
        )
    held_checked, held_problems = _held_problems(held, dept, anchored)
    problems += held_problems
    return {
        "format": RECEIPTS_FORMAT,
        "chain_id": view.ledger.chain_id,
        "block": view.ledger.block_number(),
        "departments": departments,
        "batches": batches,
        "receipts_checked": sum(d["receipts"] for d in departments),
        "held_checked": held_checked,
        "manifest_sources": view.sources.describe(),
        "rejected_sources": [{"source": s, "cid": c} for s, c in view.sources.rejected],
        "problems": problems,
        "ok": not problems,
    }


def _replay_problems(code: str, hashes: Counter[str]) -> list[dict[str, Any]]:
    """One problem per request hash ``code`` served more than once."""
    return [
        problem(
            "receipt.replayed",
            f"{code} has {n} receipts for the same request {h[:18]}…: one signed "
            "request was served more than once.",
            department=code,
        )
        for h, n in hashes.items()
        if n > 1
    ]


def _grant_problems(
    view: AuditView, code: str, per_grant: Counter[int], complete: bool
) -> list[dict[str, Any]]:
    """Receipts per grant against its quota and (when every manifest of ``code``
    was found and matched) against the uses anchored on chain."""
    problems: list[dict[str, Any]] = []
    for grant_id, n in sorted(per_grant.items()):
        g = view.request(grant_id)
        if g is None:
            continue
        if n > g.max_uses:
            problems.append(
                problem(
                    "grant.over_quota",
                    f"Grant #{grant_id} has {n} receipts for a quota of {g.max_uses}.",
                    department=code,
                    grant=grant_id,
                )
            )
        if complete and g.owner_department == code and n != g.used_count:
            problems.append(
                problem(
                    "grant.uses_mismatch",
                    f"Grant #{grant_id}: {n} receipt(s) in {code}'s manifests, but "
                    f"{g.used_count} use(s) anchored on chain.",
                    department=code,
                    grant=grant_id,
                )
            )
    return problems


def _held_problems(
    held: Iterable[ReceiptLeaf], dept: str | None, anchored: dict[tuple[str, int], bytes]
) -> tuple[int, list[dict[str, Any]]]:
    """How many held receipts (of ``dept``) were checked, and those not anchored as held."""
    checked = 0
    problems: list[dict[str, Any]] = []
    for r in held:
        if dept and r.owner != dept:
            continue
        checked += 1
        leaf = anchored.get((r.owner, r.seq))
        if leaf is None:
            problems.append(
                problem(
                    "receipt.omitted",
                    f"Receipt {r.seq} of {r.owner} (held by {r.requester}) is in no anchored "
                    "batch: the owner left it out of its log.",
                    department=r.owner,
                    seq=r.seq,
                    grant=r.grant_id,
                )
            )
        elif _exchange_part(ReceiptLeaf.parse(leaf)) != _exchange_part(r):
            problems.append(
                problem(
                    "receipt.differs",
                    f"Receipt {r.seq} of {r.owner} held by {r.requester} is not the one "
                    "anchored under that number.",
                    department=r.owner,
                    seq=r.seq,
                    grant=r.grant_id,
                )
            )
    return checked, problems


def _exchange_part(r: ReceiptLeaf) -> bytes:
    """A receipt without the requester's acknowledgement: what both sides signed
    at the exchange. A requester's copy may lack the acknowledgement (it was
    sent, then the requester stopped before noting it), or hold one the owner
    refused after its window: the exchange itself must be the anchored one."""
    return replace(r, acked_at=None, ack_signature=None, version=1).leaf()


def overdue_requests(view: AuditView, dept: str | None = None) -> dict[str, Any]:
    """Open requests past their deadline (of ``dept`` as owner or requester), with
    their reminder (催办) and escalation (督办) history."""
    now = view.ledger.now()
    decided = {
        int(e.args["requestId"]) for e in view.index.events(["AccessApproved", "AccessDenied"])
    }
    out = []
    for e in view.index.events("AccessRequested"):
        rid = int(e.args["requestId"])
        if rid in decided:
            continue
        r = view.request(rid)
        if r is None or r.status is not RequestStatus.PENDING or now <= r.deadline:
            continue
        if dept and dept not in (r.owner_department, r.requester_department):
            continue
        history = view.index.events_for_request(rid, ["RequestReminded", "RequestEscalated"])
        times = view.block_times(h.block_number for h in history)
        out.append(
            {
                "id": rid,
                "record_id": "0x" + r.record_id.hex(),
                "requester": r.requester_department,
                "owner": r.owner_department,
                "purpose": r.purpose,
                "requested_at": r.requested_at,
                "requested_at_iso": iso(r.requested_at),
                "deadline": r.deadline,
                "deadline_iso": iso(r.deadline),
                "overdue_seconds": now - r.deadline,
                "reminders": r.reminder_count,
                "escalations": r.escalation_count,
                "last_reminded_at": r.last_reminded_at or None,
                "last_escalated_at": r.last_escalated_at or None,
                "history": [
                    {
                        "kind": "reminded" if h.event == "RequestReminded" else "escalated",
                        "at": times[h.block_number],
                        "at_iso": iso(times[h.block_number]),
                        "by": h.args["by"],
                        "tx_hash": h.tx_hash,
                        **(
                            {"supervisors": list(h.args["supervisors"])}
                            if h.event == "RequestEscalated"
                            else {}
                        ),
                    }
                    for h in history
                ],
            }
        )
    return {
        "format": OVERDUE_FORMAT,
        "now": now,
        "now_iso": iso(now),
        "department": dept,
        "requests": out,
    }
