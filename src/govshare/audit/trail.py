"""The provenance trail of a record, and ``audit verify FILE``.

    trail = build_trail(view, record_id)     # JSON (docs/schemas/audit-trail.schema.json)
    found = verify_file(view, path)          # every anchored record with that file's SHA-256

A trail covers the record's whole version chain: each version (who anchored it,
when, in which transaction), every request for any version, its decision (the
administrator account that signed it), the grant's terms, its revocation,
reminders and escalations, and every access receipt anchored for the grant —
each receipt's inclusion proof checked against its batch's anchored root, its
two signatures against the departments' registered broker keys, and its time
against the grant's window. ``ok`` is false when anything failed; ``problems``
says what.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from govshare.audit.batched import (
    batch_problems,
    batched_by_hash,
    batched_evidence,
    batched_record_dict,
)
from govshare.audit.view import AuditView, problem
from govshare.chain.contracts import (
    AccessRequest,
    Record,
    RequestStatus,
    decode_category,
)
from govshare.chain.mirror import IndexedEvent
from govshare.errors import InputError, NotFound
from govshare.util import iso, plural

TRAIL_FORMAT = "govshare-trail/1"
_RECORD_ID = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")


def parse_record_id(text: str) -> str:
    t = (text or "").strip()
    if not _RECORD_ID.match(t):
        raise InputError(f"{text!r} is not a record id (0x and 64 hex digits).")
    return "0x" + t.removeprefix("0x").lower()


def _hex(b: bytes | None) -> str | None:
    return "0x" + b.hex() if b else None


def _code(value: Any) -> str:
    return bytes.fromhex(str(value)[2:]).rstrip(b"\0").decode("ascii", "replace")


def _version_dict(rec: Record, n: int, this: str, anchored: IndexedEvent | None) -> dict[str, Any]:
    rid = "0x" + rec.record_id.hex()
    return {
        "record_id": rid,
        "version": n,
        "department": rec.department,
        "content_hash": "0x" + rec.content_hash.hex(),
        "cid": rec.cid,
        "category": rec.category,
        "subject_ref": _hex(rec.subject_ref),
        "anchored_by": rec.anchored_by,
        "anchored_at": rec.anchored_at,
        "anchored_at_iso": iso(rec.anchored_at),
        "block_number": anchored.block_number if anchored else None,
        "tx_hash": anchored.tx_hash if anchored else None,
        "previous_record_id": _hex(rec.previous_record_id),
        "superseded_by": _hex(rec.superseded_by),
        "current": rec.superseded_by is None,
        "this": rid == this,
    }


def _entry(at: int, kind: str, text: str, **more: Any) -> dict[str, Any]:
    return {"at": at, "at_iso": iso(at), "kind": kind, "text": text, **more}


def build_trail(view: AuditView, record_id: str) -> dict[str, Any]:
    """The whole provenance of ``record_id`` and its versions (see the module docstring)."""
    rid = parse_record_id(record_id)
    problems: list[dict[str, Any]] = []
    timeline: list[dict[str, Any]] = []
    vdicts = _versions(view, rid)
    for vd in vdicts:
        timeline += _version_entries(vd)
        if vd.get("batch"):
            problems += vd["batch"]["problems"]

    requests = []
    receipts_total = receipts_ok = 0
    for vd in vdicts:
        for req_id in view.ledger.access.requests_for_record(vd["record_id"]):
            req = view.request(req_id)
            if req is None:
                continue
            rd, entries, probs, n_total, n_ok = request_trail(view, req, vd)
            requests.append(rd)
            timeline += entries
            problems += probs
            receipts_total += n_total
            receipts_ok += n_ok
    # Grants by subject cover versions without naming them: each receipt names the
    # version it delivered; those of this record's versions are listed here.
    by_id = {vd["record_id"]: vd for vd in vdicts}
    for req in _subject_requests(view, vdicts):
        rd, entries, probs, n_total, n_ok = request_trail(view, req, None, by_id)
        requests.append(rd)
        timeline += entries
        problems += probs
        receipts_total += n_total
        receipts_ok += n_ok
    sort_timeline(timeline)
    head = view.ledger.block_number()
    return {
        "format": TRAIL_FORMAT,
        "record_id": rid,
        "chain_id": view.ledger.chain_id,
        "block": head,
        "generated_at": iso(time.time()),
        "owner": vdicts[0]["department"],
        "versions": vdicts,
        "requests": requests,
        "timeline": timeline,
        "receipts": {"anchored": receipts_total, "verified": receipts_ok},
        "problems": problems,
        "ok": not problems,
    }


def _versions(view: AuditView, rid: str) -> list[dict[str, Any]]:
    """The whole version chain of ``rid``, oldest first: versions on chain (each
    with its batch when it was materialised from one) and versions only in a
    record batch (``on_chain`` false), back to the first and on to the latest
    the chain and the batch index know."""
    older = _batched_back(view, rid)  # rid and its predecessors not on chain
    cur = older[0]["previous_record_id"] if older else rid
    out: list[dict[str, Any]] = []
    if cur is not None and view.record(cur) is not None:
        versions = view.ledger.records.versions(cur)
        if older:  # nothing on chain can supersede ``cur``'s successor off chain
            versions = versions[: next(i for i, v in enumerate(versions, 1) if _id(v) == cur)]
        out = [_chain_version(view, rec, rid) for rec in versions]
    out += older
    seen = {v["record_id"] for v in out}
    while view.batches is not None and len(out) < _MAX_VERSIONS:
        nxt = [
            x
            for x in view.batches.successors_of(out[-1]["record_id"])
            if "0x" + x.record.record_id.hex() not in seen
            and view.record("0x" + x.record.record_id.hex()) is None
        ]
        if not nxt:
            break
        out.append(batched_record_dict(view, nxt[0]))
        seen.add(out[-1]["record_id"])
    for n, v in enumerate(out, start=1):
        v["version"] = n
        v["this"] = v["record_id"] == rid
        if n < len(out):
            v["superseded_by"] = out[n]["record_id"]
        v["current"] = v["superseded_by"] is None
    return out


_MAX_VERSIONS = 10_000


def _batched_back(view: AuditView, rid: str) -> list[dict[str, Any]]:
    """``rid`` and its earlier versions while they are only in record batches
    (oldest first); empty when ``rid`` is on chain. Raises NotFound when ``rid``
    is neither on chain nor in a batch whose manifest was read."""
    out: list[dict[str, Any]] = []
    cur: str | None = rid
    while cur is not None and view.record(cur) is None and len(out) < _MAX_VERSIONS:
        leaves = view.batches.leaves_of(cur) if view.batches is not None else []
        if not leaves:
            if not out:
                raise NotFound(
                    f"No record {rid} is anchored on this chain, nor in a record batch "
                    "whose manifest was read.",
                    record_id=rid,
                )
            break  # an earlier version nobody can show: the chain starts here
        d = batched_record_dict(view, leaves[0])
        d["superseded_by"] = None
        out.insert(0, d)
        cur = d["previous_record_id"]
    return out


def _chain_version(view: AuditView, rec: Record, rid: str) -> dict[str, Any]:
    v_id = _id(rec)
    events = view.index.events_for_record(v_id, "RecordAnchored")
    vd = _version_dict(rec, 1, rid, events[0] if events else None)
    leaves = view.batches.leaves_of(v_id) if view.batches is not None else []
    vd["on_chain"] = True
    vd["batch"] = batched_evidence(view, leaves[0]) if leaves else None
    return vd


def _id(rec: Record) -> str:
    return "0x" + rec.record_id.hex()


def _version_entries(vd: dict[str, Any]) -> list[dict[str, Any]]:
    """The timeline entries of one version: published (alone or in a batch), and
    materialised from its batch."""
    n, v_id, batch = vd["version"], vd["record_id"], vd.get("batch")
    prev = f" as version {n}, superseding {vd['previous_record_id']}" if n > 1 else ""
    where = (
        f" in batch {batch['sequence']} (leaf {batch['leaf_index']} of {batch['count']})"
        if batch
        else ""
    )
    entries = [
        _entry(
            vd["anchored_at"] or 0,
            "published",
            f"{vd['department']} anchored record {v_id}{prev}{where} (SHA-256 "
            f"{vd['content_hash'][:18]}…)",
            department=vd["department"],
            actor=vd["anchored_by"],
            record_id=v_id,
            tx_hash=(batch["batch_tx_hash"] if batch else vd["tx_hash"]),
        )
    ]
    mat = batch.get("materialised") if batch else None
    if mat:
        entries.append(
            _entry(
                mat["materialised_at"],
                "materialised",
                f"Record {v_id} was written on chain from its batch by {mat['materialised_by']}",
                department=vd["department"],
                actor=mat["materialised_by"],
                record_id=v_id,
                tx_hash=mat["tx_hash"],
            )
        )
    return entries


_ORDER = {
    "published": 0,
    "materialised": 0,
    "requested": 1,
    "reminded": 2,
    "escalated": 3,
    "approved": 4,
    "denied": 4,
    "accessed": 5,
    "receipts_anchored": 6,
    "revoked": 7,
}


def sort_timeline(entries: list[dict[str, Any]]) -> None:
    """In time order, and within one second in the order things happen (a record
    is published before it is asked for, approved before it is accessed)."""
    entries.sort(key=lambda e: (e["at"], _ORDER.get(e["kind"], 9)))


def _subject_requests(view: AuditView, vdicts: list[dict[str, Any]]) -> list[AccessRequest]:
    """The requests by subject that name the owner, category and subject of one of
    these versions (``SubjectRequested`` events, decoded totally: any member wrote
    them), oldest first."""
    wanted = {
        (vd["department"], vd["category"], str(vd["subject_ref"]).lower())
        for vd in vdicts
        if vd.get("subject_ref")
    }
    out = []
    for e in view.index.events("SubjectRequested") if wanted else []:
        owner, category, ref = (
            e.args.get(k) for k in ("ownerDepartment", "category", "subjectRef")
        )
        key = (_label(owner), _label(category), str(ref).lower())
        if key in wanted:
            req = view.request(_int(e.args.get("requestId")))
            if req is not None and req.by_subject:
                out.append(req)
    return out


def _label(value: Any) -> str:
    """A department code or category from an event's 0x-hex bytes32 ("" when the
    value is not one)."""
    raw = _bytes(value)
    return decode_category(raw) if raw is not None and len(raw) == 32 else ""


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _bytes(value: Any) -> bytes | None:
    if isinstance(value, str) and value.startswith("0x"):
        try:
            return bytes.fromhex(value[2:])
        except ValueError:
            return None
    return None


def request_trail(  # noqa: C901 — one request's life in event order: requested, decided, revoked, reminded
    view: AuditView,
    req: AccessRequest,
    version: dict[str, Any] | None,
    versions: dict[str, dict[str, Any]] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]], int, int]:
    """One request's life. ``version``: the version a request by id names; None
    for a request by subject, whose receipts are listed for ``versions`` only
    (each names the version it delivered)."""
    events = view.index.events_for_request(req.id)
    by_name: dict[str, list[IndexedEvent]] = {}
    for e in events:
        by_name.setdefault(e.event, []).append(e)
    times = view.block_times(e.block_number for e in events)

    def tx(name: str) -> str | None:
        found = by_name.get(name)
        return found[0].tx_hash if found else None

    asked = (
        f"version {version['version']}"
        if version is not None
        else f"its {req.category} records about the subject"
        + (" (the version current when granted)" if req.latest_only else "")
    )
    entries = [
        _entry(
            req.requested_at,
            "requested",
            f"{req.requester_department} asked {req.owner_department} for {asked} "
            f"(request #{req.id}): {req.purpose}",
            department=req.requester_department,
            actor=req.requested_by,
            request_id=req.id,
            record_id=version["record_id"] if version is not None else None,
            tx_hash=tx("AccessRequested"),
        )
    ]
    by_contract = (req.decided_by or "").lower() == view.ledger.access.address.lower()
    decision = None
    grant = None
    revocation = None
    if req.status in (RequestStatus.APPROVED, RequestStatus.REVOKED):
        decision = {
            "kind": "approved",
            "by": req.decided_by,
            "department": req.owner_department,
            "at": req.decided_at,
            "at_iso": iso(req.decided_at),
            "delay_seconds": req.decided_at - req.requested_at,
            "tx_hash": tx("AccessApproved"),
        }
        grant = {
            "grant_id": req.id,
            "scope": req.scope_label,
            "expires_at": req.expires_at,
            "expires_at_iso": iso(req.expires_at),
            "max_uses": req.max_uses,
            "used_count": req.used_count,
        }
        entries.append(
            _entry(
                req.decided_at,
                "approved",
                (
                    f"the access ledger granted request #{req.id} at once ({req.owner_department} "
                    "shares the category unconditionally)"
                    if by_contract
                    else f"{req.owner_department}'s administrator {req.decided_by} approved "
                    f"request #{req.id}"
                )
                + f": {plural(req.max_uses, 'use')} until {iso(req.expires_at)}",
                department=req.owner_department,
                actor=req.decided_by,
                request_id=req.id,
                tx_hash=decision["tx_hash"],
            )
        )
    elif req.status is RequestStatus.DENIED:
        decision = {
            "kind": "denied",
            "by": req.decided_by,
            "department": req.owner_department,
            "at": req.decided_at,
            "at_iso": iso(req.decided_at),
            "delay_seconds": req.decided_at - req.requested_at,
            "reason": req.deny_reason,
            "tx_hash": tx("AccessDenied"),
        }
        entries.append(
            _entry(
                req.decided_at,
                "denied",
                f"{req.owner_department}'s administrator {req.decided_by} denied request "
                f"#{req.id}: {req.deny_reason}",
                department=req.owner_department,
                actor=req.decided_by,
                request_id=req.id,
                tx_hash=decision["tx_hash"],
            )
        )
    if req.status is RequestStatus.REVOKED:
        revocation = {
            "by": req.revoked_by,
            "at": req.revoked_at,
            "at_iso": iso(req.revoked_at),
            "reason": req.revoke_reason,
            "tx_hash": tx("AccessRevoked"),
        }
        entries.append(
            _entry(
                req.revoked_at,
                "revoked",
                f"{req.owner_department}'s administrator {req.revoked_by} revoked grant "
                f"#{req.id}: {req.revoke_reason}",
                department=req.owner_department,
                actor=req.revoked_by,
                request_id=req.id,
                tx_hash=revocation["tx_hash"],
            )
        )
    reminders = []
    for e in by_name.get("RequestReminded", []):
        at = times[e.block_number]
        reminders.append(
            {
                "count": int(e.args["reminderCount"]),
                "at": at,
                "at_iso": iso(at),
                "by": e.args["by"],
                "tx_hash": e.tx_hash,
            }
        )
        entries.append(
            _entry(
                at,
                "reminded",
                f"{req.requester_department} reminded {req.owner_department} of request "
                f"#{req.id} (催办 {e.args['reminderCount']})",
                department=req.requester_department,
                actor=e.args["by"],
                request_id=req.id,
                tx_hash=e.tx_hash,
            )
        )
    escalations = []
    for e in by_name.get("RequestEscalated", []):
        at = times[e.block_number]
        escalations.append(
            {
                "count": int(e.args["escalationCount"]),
                "at": at,
                "at_iso": iso(at),
                "by": e.args["by"],
                "supervisors": list(e.args["supervisors"]),
                "tx_hash": e.tx_hash,
            }
        )
        entries.append(
            _entry(
                at,
                "escalated",
                f"{req.requester_department} escalated request #{req.id} to the supervisors "
                f"(督办 {e.args['escalationCount']})",
                department=req.requester_department,
                actor=e.args["by"],
                request_id=req.id,
                tx_hash=e.tx_hash,
            )
        )

    # access receipts: the batches that recorded uses of this grant
    problems: list[dict[str, Any]] = []
    receipts: list[dict[str, Any]] = []
    n_ok = 0
    all_uses = 0  # receipts of this grant, whatever version they delivered
    # Uses the indexed batches recorded on chain (their events' running total): the
    # count the receipts found must match. The grant itself is read live, so a batch
    # anchored after the index's last tick may already count in its used_count.
    recorded = 0
    seen_batches = set()
    for e in by_name.get("GrantUsesRecorded", []):
        recorded = max(recorded, _int(e.args.get("usedCount")))
        dept, index = _code(e.args["department"]), int(e.args["batchIndex"])
        if (dept, index) in seen_batches:
            continue
        seen_batches.add((dept, index))
        batch = view.batch(dept, index)
        problems += batch.problems
        mine = [c for c in batch.receipts if c.receipt.grant_id == req.id]
        all_uses += len(mine)
        if versions is not None:
            mine = [c for c in mine if c.receipt.record_id.lower() in versions]
        for c in mine:
            receipts.append(c.to_dict())
            problems += c.problems
            n_ok += c.ok
            who = c.receipt.requester
            delivered = (versions or {}).get(c.receipt.record_id.lower(), version or {})
            entries.append(
                _entry(
                    c.receipt.issued_at,
                    "accessed",
                    f"{who} received version {delivered.get('version', '?')} from "
                    f"{c.receipt.owner} under grant #{req.id} (receipt {c.receipt.seq}, "
                    f"{'proof verified' if c.included else 'PROOF FAILED'}; "
                    f"{_DELIVERY[c.receipt.delivery]})",
                    department=who,
                    request_id=req.id,
                    seq=c.receipt.seq,
                    batch=index,
                    verified=c.ok,
                )
            )
        if batch.batch.anchored_at:
            entries.append(
                _entry(
                    batch.batch.anchored_at,
                    "receipts_anchored",
                    f"{dept} anchored receipts {batch.batch.first_seq}-{batch.batch.last_seq} "
                    f"(batch {index}, root {('0x' + batch.batch.root.hex())[:18]}…)",
                    department=dept,
                    actor=batch.batch.anchored_by,
                    request_id=req.id,
                    batch=index,
                    tx_hash=batch.tx_hash,
                )
            )
    if grant is not None and not uses_ok(all_uses, recorded, req):
        problems.append(
            problem(
                "grant.uses_mismatch",
                f"Grant #{req.id}: {all_uses} receipt(s) found in the anchored manifests, "
                f"but {recorded} use(s) recorded on chain by those batches ({req.used_count} "
                f"now, quota {req.max_uses}).",
                grant=req.id,
            )
        )
    overdue = req.status is RequestStatus.PENDING and view.now() > req.deadline
    out = {
        "id": req.id,
        "record_id": "0x" + req.record_id.hex(),
        "version": version["version"] if version is not None else None,
        "by_subject": req.by_subject,
        "category": req.category,
        "subject_ref": _hex(req.subject_ref),
        "latest_only": req.latest_only,
        "granted_by_contract": by_contract,
        "requester": req.requester_department,
        "owner": req.owner_department,
        "purpose": req.purpose,
        "legal_basis": req.legal_basis,
        "requested_by": req.requested_by,
        "requested_at": req.requested_at,
        "requested_at_iso": iso(req.requested_at),
        "deadline": req.deadline,
        "deadline_iso": iso(req.deadline),
        "tx_hash": tx("AccessRequested"),
        "status": req.status.value,
        "overdue": overdue,
        "decision": decision,
        "grant": grant,
        "revocation": revocation,
        "reminders": reminders,
        "escalations": escalations,
        "receipts": sorted(receipts, key=lambda r: r["seq"]),
    }
    return out, entries, problems, len(receipts), n_ok


#: What a receipt says of the delivery, in the trail's words.
_DELIVERY = {
    "acknowledged": "delivery acknowledged by the requester",
    "unacknowledged": "delivered, unacknowledged",
    "not recorded": "acknowledgement not recorded (version 1 receipt)",
}


def uses_ok(receipts: int, recorded: int, req: AccessRequest) -> bool:
    """Whether ``receipts`` receipts of a grant, found in the batches that recorded
    ``recorded`` uses on chain, agree with them and with the grant (read later: it
    may count more uses, never fewer) and its quota."""
    return receipts == recorded <= req.used_count and receipts <= req.max_uses


# -- verify FILE ---------------------------------------------------------------------------


def sha256_file(path: Path) -> bytes:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.digest()


def verify_hash(view: AuditView, content_hash: bytes) -> list[dict[str, Any]]:
    """Every anchored record whose plaintext has SHA-256 ``content_hash``: owner,
    publishing account, transaction, block time, version position, superseded —
    on chain, or in an anchored record batch (``batch``: its leaf proved against
    the batch's root on chain; ``on_chain`` false until it is materialised)."""
    ids = ["0x" + raw.hex() for raw in view.ledger.records.records_by_hash(content_hash)]
    ids += [
        rid
        for rid in ("0x" + x.record.record_id.hex() for x in batched_by_hash(view, content_hash))
        if rid not in ids
    ]
    out = []
    for rid in ids:
        versions = _versions(view, rid)
        d = next(v for v in versions if v["record_id"] == rid)
        d["versions"] = len(versions)
        d["latest_record_id"] = versions[-1]["record_id"]
        d["superseded"] = d["superseded_by"] is not None
        out.append(d)
    return out


def verify_file(view: AuditView, path: Path) -> dict[str, Any]:
    """``audit verify``: the file's SHA-256 and the records anchored with it (on
    chain or in a record batch); ``ok`` is false when a batched record does not
    prove against the chain, and ``unread_batches`` lists batches whose manifest
    could not be read or checked (the file may be in one of them)."""
    digest = sha256_file(path)
    records = verify_hash(view, digest)
    proven = [r for r in records if r.get("batch") is None or r["batch"]["verified"]]
    return {
        "file": str(path),
        "sha256": "0x" + digest.hex(),
        "anchored": bool(proven),
        "ok": len(proven) == len(records),
        "records": records,
        "unread_batches": batch_problems(view),
    }


def verify_hashes(view: AuditView, hashes: Iterable[bytes], batch: int = 500) -> list[bool]:
    """Whether each content hash is anchored, many at once (JSON-RPC batches of
    ``recordsByHash`` calls): for checking many files quickly."""
    fn = view.ledger.records._fn("recordsByHash")
    address = view.ledger.records.address
    items = list(hashes)
    out: list[bool] = []
    for i in range(0, len(items), batch):
        chunk = items[i : i + batch]
        answers = view.ledger.conn.batch(
            [
                ("eth_call", [{"to": address, "data": "0x" + fn.encode([h]).hex()}, "latest"])
                for h in chunk
            ]
        )
        for a in answers:
            if not isinstance(a, str):
                raise NotFound("The chain did not answer a recordsByHash call.")
            out.append(bool(fn.decode(bytes.fromhex(a[2:]))[0]))
    return out
