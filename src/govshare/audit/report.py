"""``audit report``: what happened in a period, and what looks wrong.

    report = period_report(view, since, until, dept="TAX")   # JSON-ready
    prov = report_prov(view, report)                          # PROV-JSON of the records involved
    html = render_report_html(report)                         # a standalone page

Contents: records published; requests; decisions and their delays; revocations;
accesses per grant (from the anchored receipts); anomalies — accesses outside
a grant's window (before approval, after revocation or expiry), receipts or
batches that fail their checks, bulk pulls (many accesses of one grant in a
short time), requests left past their deadline, decisions taken after it.
"""

from __future__ import annotations

import html
import statistics
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from govshare.audit.prov import trails_to_prov
from govshare.audit.trail import build_trail
from govshare.audit.view import AuditView
from govshare.chain.contracts import AccessRequest, RequestStatus, decode_category
from govshare.chain.mirror import IndexedEvent
from govshare.util import iso, plural

REPORT_FORMAT = "govshare-report/1"
#: A grant accessed this many times within BULK_WINDOW seconds is a bulk pull.
BULK_COUNT = 10
BULK_WINDOW = 3600

_WINDOW_CODES = {"receipt.before_grant", "receipt.after_revocation", "receipt.after_expiry"}


def _code(value: Any) -> str:
    return bytes.fromhex(str(value)[2:]).rstrip(b"\0").decode("ascii", "replace")


_Row = Callable[[AccessRequest, IndexedEvent, int], dict[str, Any]]
_Mine = Callable[..., bool]


def _published_row(e: IndexedEvent, t: int) -> dict[str, Any]:
    a = e.args
    return {
        "record_id": a["recordId"],
        "department": _code(a["department"]),
        "category": decode_category(bytes.fromhex(a["category"][2:])),
        "previous_record_id": a["previousRecordId"] if int(a["previousRecordId"], 16) else None,
        "at": t,
        "at_iso": iso(t),
        "tx_hash": e.tx_hash,
    }


def _request_row(r: AccessRequest, e: IndexedEvent, t: int) -> dict[str, Any]:
    return {
        "id": r.id,
        "requester": r.requester_department,
        "owner": r.owner_department,
        "record_id": "0x" + r.record_id.hex(),
        "purpose": r.purpose,
        "at": t,
        "at_iso": iso(t),
        "deadline": r.deadline,
        "status": r.status.value,
        "tx_hash": e.tx_hash,
    }


def _decision_row(r: AccessRequest, e: IndexedEvent, t: int) -> dict[str, Any]:
    return {
        "id": r.id,
        "kind": "approved" if e.event == "AccessApproved" else "denied",
        "owner": r.owner_department,
        "requester": r.requester_department,
        "by": r.decided_by,
        "at": r.decided_at,
        "at_iso": iso(r.decided_at),
        "delay_seconds": r.decided_at - r.requested_at,
        "after_deadline": r.decided_at > r.deadline,
        "tx_hash": e.tx_hash,
    }


def _revocation_row(r: AccessRequest, e: IndexedEvent, t: int) -> dict[str, Any]:
    return {
        "id": r.id,
        "owner": r.owner_department,
        "requester": r.requester_department,
        "by": r.revoked_by,
        "at": r.revoked_at,
        "at_iso": iso(r.revoked_at),
        "reason": r.revoke_reason,
        "tx_hash": e.tx_hash,
    }


#: event -> (report section, the argument naming the request, its row)
_REQUEST_ROWS: dict[str, tuple[str, str, _Row]] = {
    "AccessRequested": ("requests", "requestId", _request_row),
    "AccessApproved": ("decisions", "requestId", _decision_row),
    "AccessDenied": ("decisions", "requestId", _decision_row),
    "AccessRevoked": ("revocations", "grantId", _revocation_row),
}


def _period_rows(
    view: AuditView,
    events: list[IndexedEvent],
    times: dict[int, int],
    since: int,
    until: int,
    mine: _Mine,
) -> tuple[dict[str, list[dict[str, Any]]], set[tuple[str, int]]]:
    """The period's rows per section, and every anchored receipt batch (of any time)."""
    rows: dict[str, list[dict[str, Any]]] = {
        "published": [],
        "requests": [],
        "decisions": [],
        "revocations": [],
    }
    batch_keys: set[tuple[str, int]] = set()
    for e in events:
        t = times[e.block_number]
        a = e.args
        if e.event == "ReceiptsAnchored":
            batch_keys.add((_code(a["department"]), int(a["batchIndex"])))
        if not since <= t <= until:
            continue
        if e.event == "RecordAnchored":
            if mine(_code(a["department"])):
                rows["published"].append(_published_row(e, t))
        elif e.event in _REQUEST_ROWS:
            section, id_arg, row = _REQUEST_ROWS[e.event]
            r = view.request(int(a[id_arg]))
            if r is not None and mine(r.requester_department, r.owner_department):
                rows[section].append(row(r, e, t))
    return rows, batch_keys


def _receipt_accesses(
    view: AuditView,
    batch_keys: set[tuple[str, int]],
    since: int,
    until: int,
    mine: _Mine,
) -> tuple[list[dict[str, Any]], dict[int, list[int]], dict[int, dict[str, Any]]]:
    """The anchored receipts of the period: the anomalies their checks found, the
    access times per grant, and each grant's parties."""
    anomalies: list[dict[str, Any]] = []
    accesses: dict[int, list[int]] = defaultdict(list)
    access_meta: dict[int, dict[str, Any]] = {}
    for code, index in sorted(batch_keys):
        b = view.batch(code, index)
        if b.problems and mine(code) and since <= b.batch.anchored_at <= until:
            anomalies += [{"kind": "batch_invalid", **p} for p in b.problems]
        for c in b.receipts:
            rc = c.receipt
            if not (since <= rc.issued_at <= until) or not mine(rc.owner, rc.requester):
                continue
            accesses[rc.grant_id].append(rc.issued_at)
            access_meta.setdefault(
                rc.grant_id,
                {"owner": rc.owner, "requester": rc.requester, "record_id": rc.record_id},
            )
            for p in c.problems:
                kind = "outside_grant_window" if p["code"] in _WINDOW_CODES else "receipt_invalid"
                anomalies.append({"kind": kind, **p})
    return anomalies, accesses, access_meta


def _bulk_pull(grant_id: int, stamps: list[int], count: int, window: int) -> dict[str, Any] | None:
    """The first run of ``count`` accesses (sorted ``stamps``) within ``window`` seconds."""
    lo = 0
    for hi in range(len(stamps)):
        while stamps[hi] - stamps[lo] > window:
            lo += 1
        if hi - lo + 1 >= count:
            return {
                "kind": "bulk_pull",
                "code": "access.bulk",
                "message": f"Grant #{grant_id}: {hi - lo + 1} accesses within "
                f"{window} s (from {iso(stamps[lo])}).",
                "grant": grant_id,
            }
    return None


def _deadline_anomalies(
    view: AuditView, events: list[IndexedEvent], since: int, until: int, mine: _Mine, now: int
) -> list[dict[str, Any]]:
    """Requests whose deadline falls in the period: left undecided past it, or decided late."""
    anomalies: list[dict[str, Any]] = []
    decided = {
        int(e.args["requestId"]) for e in events if e.event in ("AccessApproved", "AccessDenied")
    }
    for e in events:
        if e.event != "AccessRequested":
            continue
        r = view.request(int(e.args["requestId"]))
        if r is None or not mine(r.requester_department, r.owner_department):
            continue
        if not since <= r.deadline <= until:
            continue
        pending = r.id not in decided and r.status is RequestStatus.PENDING
        if pending and min(now, until) > r.deadline:
            anomalies.append(
                {
                    "kind": "overdue",
                    "code": "request.overdue",
                    "message": f"Request #{r.id} of {r.requester_department} to "
                    f"{r.owner_department} is past its deadline {iso(r.deadline)} undecided "
                    f"({plural(r.reminder_count, 'reminder')}, "
                    f"{plural(r.escalation_count, 'escalation')}).",
                    "request": r.id,
                }
            )
        elif not pending and r.decided_at > r.deadline:
            anomalies.append(
                {
                    "kind": "late_decision",
                    "code": "request.decided_late",
                    "message": f"Request #{r.id} was decided {r.decided_at - r.deadline} s "
                    "after its deadline.",
                    "request": r.id,
                }
            )
    return anomalies


def period_report(
    view: AuditView,
    since: int,
    until: int,
    dept: str | None = None,
    *,
    bulk_count: int = BULK_COUNT,
    bulk_window: int = BULK_WINDOW,
) -> dict[str, Any]:
    """The report for ``[since, until]`` (Unix seconds), of one department
    (as owner or requester) or of all."""

    def mine(*codes: str) -> bool:
        return dept is None or dept in codes

    events = view.index.events(
        [
            "RecordAnchored",
            "AccessRequested",
            "AccessApproved",
            "AccessDenied",
            "AccessRevoked",
            "ReceiptsAnchored",
        ]
    )
    times = view.block_times(e.block_number for e in events)
    rows, batch_keys = _period_rows(view, events, times, since, until, mine)
    published, requests = rows["published"], rows["requests"]
    decisions, revocations = rows["decisions"], rows["revocations"]

    anomalies, accesses, access_meta = _receipt_accesses(view, batch_keys, since, until, mine)
    per_grant: list[dict[str, Any]] = []
    for grant_id, stamps in sorted(accesses.items()):
        stamps.sort()
        g = view.request(grant_id)
        per_grant.append(
            {
                "grant_id": grant_id,
                **access_meta[grant_id],
                "accesses": len(stamps),
                "first_at_iso": iso(stamps[0]),
                "last_at_iso": iso(stamps[-1]),
                "max_uses": g.max_uses if g else None,
            }
        )
        bulk = _bulk_pull(grant_id, stamps, bulk_count, bulk_window)
        if bulk is not None:
            anomalies.append(bulk)

    now = view.ledger.now()
    anomalies += _deadline_anomalies(view, events, since, until, mine, now)

    delays = [int(d["delay_seconds"]) for d in decisions]
    return {
        "format": REPORT_FORMAT,
        "since": since,
        "since_iso": iso(since),
        "until": until,
        "until_iso": iso(until),
        "department": dept,
        "chain_id": view.ledger.chain_id,
        "generated_at_iso": iso(now),
        "summary": {
            "records_published": len(published),
            "requests": len(requests),
            "approved": sum(d["kind"] == "approved" for d in decisions),
            "denied": sum(d["kind"] == "denied" for d in decisions),
            "revoked": len(revocations),
            "accesses": sum(len(v) for v in accesses.values()),
            "decision_delay_seconds": {
                "mean": round(statistics.fmean(delays), 1) if delays else None,
                "median": statistics.median(delays) if delays else None,
                "max": max(delays) if delays else None,
            },
            "anomalies": len(anomalies),
        },
        "published": published,
        "requests": requests,
        "decisions": decisions,
        "revocations": revocations,
        "accesses_per_grant": per_grant,
        "anomalies": anomalies,
    }


def report_prov(view: AuditView, report: dict[str, Any]) -> dict[str, Any]:
    """PROV-JSON of every record the report touches (their whole trails)."""
    ids: list[str] = []
    for item in (*report["published"], *report["requests"], *report["accesses_per_grant"]):
        rid = str(item["record_id"]).lower()
        if rid not in ids:
            ids.append(rid)
    seen_first: set[str] = set()
    trails = []
    for rid in ids:
        t = build_trail(view, rid)
        first = t["versions"][0]["record_id"]
        if first in seen_first:
            continue  # another version of a chain already included
        seen_first.add(first)
        trails.append(t)
    return trails_to_prov(trails)


# -- HTML -----------------------------------------------------------------------------------

#: Tables fit the page: long values (record ids, hashes, accounts) wrap, and a
#: table still too wide scrolls inside its own box, never the page.
_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#1b1f24;max-width:72rem}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{border-bottom:1px solid #d0d7de;padding:.3rem .5rem;text-align:left;vertical-align:top}
td{overflow-wrap:break-word}td code,td.id{word-break:break-all}td.id{font-family:monospace}
th{background:#f6f8fa}.bad{color:#b42318;font-weight:600}.ok{color:#067647;font-weight:600}
table.facts{width:auto}table.facts th{background:none;font-weight:normal;padding-right:2rem}
code{font-size:.85em}.muted{color:#57606a}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


#: Columns whose values are yes/no, and the words they are shown as (true, false).
_WORDS: dict[str, tuple[str, str]] = {
    "after_deadline": ("late", "on time"),
    "active": ("active", "suspended"),
    "superseded": ("superseded", "current"),
    "current": ("current", "superseded"),
    "ok": ("verified", "FAILED"),
}
#: Columns of long identifiers (record ids, hashes, accounts): monospace, wrapped anywhere.
_IDS = {"record_id", "tx_hash", "by", "root", "manifest_cid"}


def _cell(key: str, value: Any) -> str:
    """One value as a reader reads it: booleans as words, never ``True``/``False``."""
    if isinstance(value, bool):
        yes, no = _WORDS.get(key, ("yes", "no"))
        return _e(yes if value else no)
    return _e(value)


def _table(rows: list[dict[str, Any]], cols: list[tuple[str, str]]) -> str:
    """Rows under a header row of titles (each column has one), in a box that scrolls
    sideways rather than widen the page."""
    if not rows:
        return '<p class="muted">None.</p>'
    head = "".join(f'<th scope="col">{_e(title)}</th>' for _, title in cols)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td{' class=id' if k in _IDS else ''}>{_cell(k, r.get(k))}</td>" for k, _ in cols
        )
        + "</tr>"
        for r in rows
    )
    return (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def _facts(pairs: list[tuple[str, Any]]) -> str:
    """Label and value pairs: a table with the label heading each row (no header row)."""
    body = "".join(f'<tr><th scope="row">{_e(k)}</th><td>{_e(v)}</td></tr>' for k, v in pairs)
    return f'<table class="facts"><tbody>{body}</tbody></table>'


def render_report_html(report: dict[str, Any]) -> str:
    """A standalone HTML page of a period report (no scripts, no external assets)."""
    s = report["summary"]
    who = report["department"] or "all departments"
    delay = s["decision_delay_seconds"]
    status = (
        f'<p class="bad">{plural(s["anomalies"], "anomaly", "anomalies")} found.</p>'
        if s["anomalies"]
        else '<p class="ok">No anomalies found.</p>'
    )
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>govshare audit report {_e(report['since_iso'])} – "
        f"{_e(report['until_iso'])}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Audit report: {_e(who)}, {_e(report['since_iso'])} to {_e(report['until_iso'])}</h1>",
        f'<p class="muted">Chain {_e(report["chain_id"])}; '
        f"generated {_e(report['generated_at_iso'])}.</p>",
        status,
        "<h2>Summary</h2>",
        _facts(
            [
                ("records published", s["records_published"]),
                ("requests", s["requests"]),
                ("approved / denied", f"{s['approved']} / {s['denied']}"),
                ("revoked", s["revoked"]),
                ("accesses", s["accesses"]),
                (
                    "decision delay (mean / median / max, seconds)",
                    f"{delay['mean']} / {delay['median']} / {delay['max']}",
                ),
            ]
        ),
        "<h2>Anomalies</h2>",
        _table(report["anomalies"], [("kind", "kind"), ("code", "code"), ("message", "what")]),
        "<h2>Records published</h2>",
        _table(
            report["published"],
            [
                ("at_iso", "when"),
                ("department", "department"),
                ("category", "category"),
                ("record_id", "record"),
                ("tx_hash", "transaction"),
            ],
        ),
        "<h2>Requests</h2>",
        _table(
            report["requests"],
            [
                ("at_iso", "when"),
                ("id", "#"),
                ("requester", "from"),
                ("owner", "to"),
                ("purpose", "purpose"),
                ("status", "status"),
            ],
        ),
        "<h2>Decisions</h2>",
        _table(
            report["decisions"],
            [
                ("at_iso", "when"),
                ("id", "#"),
                ("kind", "decision"),
                ("by", "signed by"),
                ("delay_seconds", "delay (seconds)"),
                ("after_deadline", "deadline"),
            ],
        ),
        "<h2>Revocations</h2>",
        _table(
            report["revocations"],
            [("at_iso", "when"), ("id", "grant"), ("by", "signed by"), ("reason", "reason")],
        ),
        "<h2>Accesses per grant</h2>",
        _table(
            report["accesses_per_grant"],
            [
                ("grant_id", "grant"),
                ("owner", "owner"),
                ("requester", "requester"),
                ("accesses", "accesses"),
                ("max_uses", "quota"),
                ("first_at_iso", "first"),
                ("last_at_iso", "last"),
            ],
        ),
        "</body></html>",
    ]
    return "\n".join(parts)
