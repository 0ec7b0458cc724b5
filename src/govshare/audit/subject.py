"""A subject's access history: ``govshare audit subject ID``.

Everything the consortium did with the records about one person or enterprise,
for a department's auditor or an ombudsman acting for the subject (PIPL Art.
44–45; Estonia's Data Tracker shows a citizen the same): every record about the
subject across all departments (owner, category, versions, when), and every
request for them, decision, delivery and revocation, with its purpose and legal
basis. It is built like ``audit trail``, from the chain and the receipt
manifests, and checked the same way: each record's versions and batch proofs,
each delivery's receipt against its anchored root. It is one trail per record
(:func:`govshare.audit.trail.build_trail`), merged, plus the requests by subject
that delivered nothing (pending, denied, or asked before any record existed).

The subject is found by its keyed reference (``broker/subjects.py``): reading the
history needs the consortium subject key, which only member departments hold, or
a reference one of them computed. The subject's id itself is not in the result,
only its reference and the id masked.
"""

from __future__ import annotations

import time
from typing import Any

from govshare.audit.trail import build_trail, request_trail, sort_timeline
from govshare.audit.view import AuditView
from govshare.util import iso

SUBJECT_FORMAT = "govshare-subject-history/v1"


def _ref_of(value: Any) -> str:
    """An event's bytes32 argument as lower-case 0x-hex ("" when it is not one:
    another member wrote it)."""
    text = value if isinstance(value, str) else ""
    return text.lower() if len(text) == 66 and text.startswith("0x") else ""


def reference_of(key: bytes, subject: str) -> tuple[bytes, str]:
    """A subject id's keyed reference, and how its history shows it: masked."""
    from govshare.broker.subjects import masked, normalise_subject, subject_ref

    return subject_ref(key, subject), masked(normalise_subject(subject))


def records_about(view: AuditView, subject_ref: bytes) -> list[str]:
    """The ids of every record about ``subject_ref``, in the order they were
    anchored: those anchored on chain (``RecordAnchored``, which a batched record
    also gets when it is materialised) and those only in an indexed batch."""
    want = "0x" + subject_ref.hex()
    found: list[str] = []
    for e in view.index.events("RecordAnchored"):
        rid = _ref_of(e.args.get("recordId"))
        if rid and _ref_of(e.args.get("subjectRef")) == want and rid not in found:
            found.append(rid)
    if view.batches is not None:
        for leaf in view.batches.about_subject(subject_ref):
            rid = "0x" + leaf.record.record_id.hex()
            if rid not in found:
                found.append(rid)
    return found


def subject_requests(view: AuditView, subject_ref: bytes) -> list[int]:
    """The ids of the requests by subject that name ``subject_ref``, oldest first."""
    want = "0x" + subject_ref.hex()
    out: list[int] = []
    for e in view.index.events("SubjectRequested"):
        rid = e.args.get("requestId")
        if _ref_of(e.args.get("subjectRef")) == want and isinstance(rid, int) and rid > 0:
            out.append(rid)
    return out


def build_subject_history(view: AuditView, subject_ref: bytes, *, label: str) -> dict[str, Any]:
    """The subject's whole history (see the module docstring). ``label``: how the
    subject is shown (its id masked, or its reference)."""
    records: list[dict[str, Any]] = []
    requests: dict[int, dict[str, Any]] = {}
    timeline: list[dict[str, Any]] = []
    problems: list[dict[str, Any]] = []
    anchored = verified = 0
    covered: set[str] = set()
    for rid in records_about(view, subject_ref):
        if rid in covered:
            continue  # a version of a record already followed
        trail = build_trail(view, rid)
        covered.update(v["record_id"] for v in trail["versions"])
        records.append(
            {
                "record_id": trail["record_id"],
                "owner": trail["owner"],
                "category": trail["versions"][0].get("category"),
                "versions": trail["versions"],
                "ok": trail["ok"],
            }
        )
        for r in trail["requests"]:
            _merge(requests, r)
        timeline += trail["timeline"]
        problems += trail["problems"]
        anchored += trail["receipts"]["anchored"]
        verified += trail["receipts"]["verified"]
    # requests by subject that delivered none of those records: still the subject's
    for req_id in subject_requests(view, subject_ref):
        req = view.request(req_id)
        if req is None or req_id in requests:
            continue
        rd, entries, probs, n_total, n_ok = request_trail(view, req, None, {})
        requests[req_id] = rd
        timeline += entries
        problems += probs
        anchored += n_total
        verified += n_ok
    timeline = _unique(timeline)
    sort_timeline(timeline)
    return {
        "format": SUBJECT_FORMAT,
        "subject": label,
        "subject_ref": "0x" + subject_ref.hex(),
        "chain_id": view.ledger.chain_id,
        "block": view.ledger.block_number(),
        "generated_at": iso(time.time()),
        "records": records,
        "requests": [requests[k] for k in sorted(requests)],
        "departments": sorted(
            {r["owner"] for r in records}
            | {str(q.get("requester")) for q in requests.values() if q.get("requester")}
        ),
        "timeline": timeline,
        "receipts": {"anchored": anchored, "verified": verified},
        "problems": problems,
        "ok": not problems,
    }


def _merge(requests: dict[int, dict[str, Any]], r: dict[str, Any]) -> None:
    """Add one trail's view of a request: a request by subject appears in the
    trail of each record it delivered, each with the receipts of that record."""
    have = requests.get(int(r["id"]))
    if have is None:
        requests[int(r["id"])] = {**r, "receipts": list(r["receipts"])}
        return
    seqs = {x["seq"] for x in have["receipts"]}
    have["receipts"] += [x for x in r["receipts"] if x["seq"] not in seqs]
    have["receipts"].sort(key=lambda x: x["seq"])


def _unique(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Timeline entries once each (two records' trails share a request by subject)."""
    seen: set[tuple[Any, ...]] = set()
    out = []
    for e in entries:
        key = (e["at"], e["kind"], e["text"])
        if key not in seen:
            seen.add(key)
            out.append(e)
    return out
