"""HTML for the auditor's web page (served by the broker at ``/audit``).

Server-rendered fragments — a trail as a timeline and a graph (inline SVG), the
records a hash matches, receipt-batch status, overdue requests. The page shell
(``govshare/api/templates/audit.html``, a little JavaScript: the token kept in
the tab's session storage, files hashed in the browser with WebCrypto, these
fragments fetched with the token) uses :data:`PAGE_CSS`. No external asset, no
CDN: the page works on a machine without internet. Everything interpolated is
escaped.
"""

from __future__ import annotations

import html
from typing import Any

from govshare.audit.report import _CSS
from govshare.util import iso, plural

#: A receipt's delivery, in the page's words (``ReceiptLeaf.delivery``).
_DELIVERY = {
    "acknowledged": "acknowledged by the requester",
    "unacknowledged": "delivered, unacknowledged",
    "not recorded": "not recorded (version 1 receipt)",
}


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _short(h: str | None, n: int = 10) -> str:
    return "-" if not h else (h if len(h) <= n + 4 else f"{h[: n + 2]}…")


def _rec_link(rid: str) -> str:
    return f'<a href="#" class="rec" data-record="{_e(rid)}"><code>{_e(_short(rid))}</code></a>'


PAGE_CSS = (
    _CSS
    + """
form{display:flex;gap:.5rem;align-items:center;margin:.4rem 0;flex-wrap:wrap}
input[type=text],input[type=password]{font-family:monospace;width:28rem;max-width:100%;
 padding:.3rem}
button{padding:.3rem .8rem}
.timeline{list-style:none;padding-left:0;border-left:3px solid #d0d7de;margin-left:.5rem}
.timeline li{margin:0 0 .6rem 0;padding-left:1rem;position:relative}
.timeline li::before{content:"";position:absolute;left:-.5rem;top:.35rem;width:.7rem;height:.7rem;
 border-radius:50%;background:#57606a}
.timeline li.published::before{background:#0969da}.timeline li.approved::before{background:#1a7f37}
.timeline li.denied::before,.timeline li.revoked::before{background:#b42318}
.timeline li.accessed::before{background:#8250df}.timeline li.reminded::before,
.timeline li.escalated::before{background:#bf8700}
.kind{font-weight:600;text-transform:uppercase;font-size:.75rem;letter-spacing:.03em}
section{margin-top:1.5rem}#result:empty,#status:empty{display:none}
.card{border:1px solid #d0d7de;border-radius:6px;padding:1rem;margin:.8rem 0}
svg text{font-family:system-ui,sans-serif;font-size:11px}
"""
)


def render_trail(t: dict[str, Any]) -> str:
    """A trail: verdict, versions, timeline, graph, requests with their receipts."""
    verdict = _verdict(t, "Trail", "trail", plural(t["receipts"]["anchored"], "receipt"))
    versions = "".join(
        f"<tr><td>v{v['version']}{' (this)' if v['this'] else ''}</td>"
        f"<td>{_rec_link(v['record_id'])}</td>"
        f"<td>{_e(v['department'])}</td><td><code>{_e(_short(v['anchored_by']))}</code></td>"
        f"<td>{_e(v['anchored_at_iso'])}</td><td><code>{_e(_short(v['tx_hash']))}</code></td>"
        f"<td>{'current' if v['current'] else 'superseded'}</td>"
        f"<td>{_batch_cell(v.get('batch'))}</td></tr>"
        for v in t["versions"]
    )
    timeline = _timeline(t["timeline"])
    reqs = _request_cards(t["requests"])
    return (
        f'<div id="trail" data-record="{_e(t["record_id"])}">'
        f"<h2>Trail of record <code>{_e(t['record_id'])}</code> (owner {_e(t['owner'])})</h2>"
        + verdict
        + "<h3>Versions</h3><div class=scroll><table><thead><tr><th>version</th><th>record</th>"
        "<th>owner</th><th>anchored by</th><th>at</th><th>transaction</th><th>status</th>"
        "<th>batch</th></tr></thead>"
        f"<tbody>{versions}</tbody></table></div>"
        + "<h3>Graph</h3>"
        + render_graph(t)
        + f'<h3>Timeline</h3><ol class="timeline">{timeline}</ol>'
        + "<h3>Requests and accesses</h3>"
        + ("".join(reqs) or '<p class="muted">No requests.</p>')
        + "</div>"
    )


def render_subject(h: dict[str, Any]) -> str:
    """A subject's access history (``audit subject``): verdict, records in every
    department, requests with their receipts, one timeline."""
    verdict = _verdict(
        h, "History", "history", plural(h["receipts"]["anchored"], "delivery", "deliveries")
    )
    records = "".join(
        f"<tr><td>{_rec_link(r['record_id'])}</td><td>{_e(r['owner'])}</td>"
        f"<td>{_e(r['category'])}</td><td>{len(r['versions'])}</td>"
        f"<td>{_e(r['versions'][0]['anchored_at_iso'])}</td>"
        f"<td>{_e(r['versions'][-1]['anchored_at_iso'])}</td></tr>"
        for r in h["records"]
    )
    reqs = _request_cards(h["requests"])
    return (
        f'<div id="subject"><h2>Access history of subject {_e(h["subject"])}</h2>'
        f'<p class="muted">Reference <code>{_e(h["subject_ref"])}</code>: the chain holds only '
        "this keyed reference, never the id.</p>"
        + verdict
        + "<h3>Records about the subject</h3>"
        + (
            "<div class=scroll><table><thead><tr><th>record</th><th>owner</th><th>category</th>"
            "<th>versions</th><th>first</th><th>latest</th></tr></thead>"
            f"<tbody>{records}</tbody></table></div>"
            if records
            else '<p class="muted">No record about this subject is anchored.</p>'
        )
        + f'<h3>Timeline</h3><ol class="timeline">{_timeline(h["timeline"])}</ol>'
        + "<h3>Requests and accesses</h3>"
        + ("".join(reqs) or '<p class="muted">No requests.</p>')
        + "</div>"
    )


def subject_page(h: dict[str, Any]) -> str:
    """A subject's access history as a standalone page (``audit subject --format
    html``): no script, no external asset; the id is not in it."""
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>govshare: access history of subject {_e(h['subject'])}</title>"
        f"<style>{PAGE_CSS}</style></head><body>"
        f'<p class="muted">Chain {_e(h["chain_id"])}, block {_e(h["block"])}; '
        f"generated {_e(h['generated_at'])}.</p>" + render_subject(h) + "</body></html>\n"
    )


def _verdict(doc: dict[str, Any], title: str, noun: str, counted: str) -> str:
    """ "Trail verified: 5 of 5 receipts proven …", or the problems found."""
    if doc["ok"]:
        return (
            f'<p class="ok" id="verdict">{title} verified: {doc["receipts"]["verified"]} of '
            f"{counted} proven against their anchored roots.</p>"
        )
    return (
        f'<p class="bad" id="verdict">{plural(len(doc["problems"]), "problem")} in this '
        f"{noun}.</p><ul>"
        + "".join(f"<li>{_e(p['message'])}</li>" for p in doc["problems"][:50])
        + "</ul>"
    )


def _timeline(entries: list[dict[str, Any]]) -> str:
    return "".join(
        f'<li class="{_e(e["kind"])}"><span class="kind">{_e(e["kind"])}</span> '
        f'<span class="muted">{_e(e["at_iso"])}</span><br>{_e(e["text"])}'
        + (
            f' <code class="muted">tx {_e(_short(e.get("tx_hash")))}</code>'
            if e.get("tx_hash")
            else ""
        )
        + "</li>"
        for e in entries
    )


def _asked(r: dict[str, Any]) -> str:
    """What a request asked for: a version by id, or a category's records by subject."""
    if r.get("version") is not None:
        return f"version {r['version']}"
    return f"its {_e(r.get('category') or '')} records about the subject"


def _request_cards(requests: list[dict[str, Any]]) -> list[str]:
    """One card per request: its decision, revocation, supervision, receipts."""
    reqs = []
    for r in requests:
        dec = r["decision"]
        decided = (
            f"{_e(dec['kind'])} by <code>{_e(_short(dec['by']))}</code> ({_e(r['owner'])} "
            f"administrator) at {_e(dec['at_iso'])}"
            if dec
            else ("pending, overdue" if r["overdue"] else "pending")
        )
        receipts = "".join(
            f"<tr><td>{c['seq']}</td><td>{_e(c['requester'])}</td><td>{c['batch_index']}</td>"
            f"<td>{c['inclusion']['leaf_index'] + 1}/{c['inclusion']['tree_size']}</td>"
            f"<td>{_e(_DELIVERY.get(c.get('delivery', ''), '-'))}</td>"
            + (
                '<td class="ok">verified</td></tr>'
                if c["ok"]
                else '<td class="bad">FAILED</td></tr>'
            )
            for c in r["receipts"]
        )
        reqs.append(
            f'<div class="card"><b>Request #{r["id"]}</b> {_e(r["requester"])} → {_e(r["owner"])},'
            f" {_asked(r)}: “{_e(r['purpose'])}” ({_e(r['status'])})<br>"
            f"Decision: {decided}"
            + (
                f"<br>Revoked by <code>{_e(_short(r['revocation']['by']))}</code> at "
                f"{_e(r['revocation']['at_iso'])}: {_e(r['revocation']['reason'])}"
                if r["revocation"]
                else ""
            )
            + (
                f"<br>{plural(len(r['reminders']), 'reminder')}, "
                f"{plural(len(r['escalations']), 'escalation')}"
                if r["reminders"] or r["escalations"]
                else ""
            )
            + (
                "<div class=scroll><table><thead><tr><th>receipt</th><th>by</th><th>batch</th>"
                "<th>leaf</th><th>delivery</th>"
                f"<th>proof</th></tr></thead><tbody>{receipts}</tbody></table></div>"
                if receipts
                else ""
            )
            + "</div>"
        )
    return reqs


def render_graph(t: dict[str, Any]) -> str:
    """Versions left to right; under each, its requests; under each grant, its
    accesses. Arrows: derivation between versions, request → version, access → grant."""
    col_w, top, row = 210, 20, 90
    by_version: dict[int, list[dict[str, Any]]] = {}
    for r in t["requests"]:
        by_version.setdefault(r["version"], []).append(r)
    rows = max([len(v) for v in by_version.values()] or [0])
    width = max(1, len(t["versions"])) * col_w + 20
    height = top + row * (1 + 2 * rows) + 20
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="graph" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="provenance graph">',
        '<defs><marker id="arr" markerWidth="8" markerHeight="8" refX="7" refY="4" '
        'orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="#57606a"/></marker></defs>',
    ]

    def box(x: int, y: int, w: int, label: str, sub: str, fill: str) -> None:
        parts.append(
            f'<rect x="{x}" y="{y}" width="{w}" height="44" rx="6" fill="{fill}" '
            'stroke="#57606a"/>'
            f'<text x="{x + 8}" y="{y + 18}">{_e(label)}</text>'
            f'<text x="{x + 8}" y="{y + 34}" fill="#57606a">{_e(sub)}</text>'
        )

    def arrow(x1: int, y1: int, x2: int, y2: int) -> None:
        parts.append(
            f'<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="#57606a" '
            'marker-end="url(#arr)"/>'
        )

    for i, v in enumerate(t["versions"]):
        x = 10 + i * col_w
        fill = "#ddf4ff" if v["this"] else "#f6f8fa"
        box(x, top, col_w - 30, f"v{v['version']} {v['department']}", _short(v["record_id"]), fill)
        if i:
            arrow(x, top + 22, x - 30, top + 22)  # derived from the previous version
        for j, r in enumerate(by_version.get(v["version"], [])):
            y = top + row * (1 + 2 * j)
            colour = {"approved": "#dafbe1", "revoked": "#ffebe9", "denied": "#ffebe9"}
            box(
                x,
                y,
                col_w - 30,
                f"#{r['id']} {r['requester']} ({r['status']})",
                (r["purpose"] or "")[:26],
                colour.get(r["status"], "#fff8c5"),
            )
            # along the column's left edge, past the boxes above, up to the version
            arrow(x + 8, y, x + 8, top + 44)
            if r["receipts"]:
                ok = all(c["ok"] for c in r["receipts"])
                box(
                    x + 20,
                    y + row,
                    col_w - 50,
                    plural(len(r["receipts"]), "access", "accesses"),
                    "proofs verified" if ok else "PROOF FAILED",
                    "#fbefff" if ok else "#ffebe9",
                )
                arrow(x + 40, y + row, x + 40, y + 44)
    parts.append("</svg>")
    return "".join(parts)


def render_matches(result: dict[str, Any]) -> str:
    """The records a hash (or an uploaded file's hash) is anchored as."""
    if not result["records"]:
        return (
            f'<div id="matches"><p class="bad" id="verdict">Not anchored: no record on chain '
            f"has SHA-256 <code>{_e(result['sha256'])}</code>.</p></div>"
        )
    rows = "".join(
        f"<tr><td>{_rec_link(r['record_id'])}</td><td>{_e(r['department'])}</td>"
        f"<td>v{r['version']} of {r['versions']}</td>"
        f"<td>{'superseded' if r['superseded'] else 'current'}</td>"
        f"<td><code>{_e(_short(r['anchored_by']))}</code></td><td>{_e(r['anchored_at_iso'])}</td>"
        f"<td><code>{_e(_short(r['tx_hash']))}</code></td>"
        f"<td>{_batch_cell(r.get('batch'))}</td></tr>"
        for r in result["records"]
    )
    return (
        '<div id="matches"><p class="ok" id="verdict">Anchored: SHA-256 '
        f"<code>{_e(result['sha256'])}</code> is "
        f"{plural(len(result['records']), 'record')}.</p>"
        "<div class=scroll><table><thead><tr><th>record</th><th>owner</th>"
        "<th>version</th><th>status</th><th>published by</th><th>at</th><th>transaction</th>"
        "<th>batch</th></tr>"
        f"</thead><tbody>{rows}</tbody></table></div></div>"
    )


def _batch_cell(b: dict[str, Any] | None) -> str:
    """Where a batched record sits, whether its proof holds, and its materialisation."""
    if not b:
        return ""
    mat = b.get("materialised")
    state = (
        f"on chain since {_e(iso(mat['materialised_at']))}, by "
        f"<code>{_e(_short(mat['materialised_by']))}</code>"
        if mat
        else "not on chain yet"
    )
    proof = "proof ok" if b.get("verified") else '<span class="bad">proof fails</span>'
    return (
        f"batch {_e(b['sequence'])}, leaf {_e(b['leaf_index'])} of {_e(b['count'])} "
        f"(anchored {_e(b.get('anchored_at_iso') or '?')}); {proof}; {state}"
    )


def render_record_batches(batches: dict[str, Any]) -> str:
    """Anchored record batches whose manifest could not be read or checked."""
    rows = "".join(
        f"<tr><td>{_e(b['department'])}</td><td>{_e(b['sequence'])}</td>"
        f"<td>{_e(b['count'])}</td><td><code>{_e(_short(b['manifest_cid'], 16))}</code></td>"
        f'<td class="bad">{_e(b["state"])}</td><td>{_e(b["problem"] or "")}</td></tr>'
        for b in batches["batches"]
        if b["state"] in ("unavailable", "invalid")
    )
    n = sum(batches["counts"].values())
    verdict = (
        f'<p class="ok">{"All " if n != 1 else ""}{plural(n, "record batch manifest")} read '
        "and checked against their roots.</p>"
        if batches["ok"]
        else f'<p class="bad">{plural(len(batches["problems"]), "record batch", "record batches")} '
        "could not be read "
        "or checked.</p>"
    )
    return (
        '<div id="record-batches"><h2>Record batches</h2>'
        + verdict
        + (
            "<div class=scroll><table><thead><tr><th>department</th><th>batch</th><th>records</th>"
            f"<th>manifest</th><th>state</th><th>why</th></tr></thead><tbody>{rows}</tbody></table></div>"
            if rows
            else ""
        )
        + "</div>"
    )


def render_status(
    receipts: dict[str, Any],
    overdue: dict[str, Any],
    record_batches: dict[str, Any] | None = None,
) -> str:
    """Receipt-batch status (per department and batch), overdue requests, and the
    record batches whose manifest could not be read or checked."""
    depts = "".join(
        f"<tr><td>{_e(d['department'])}</td><td>{d['batches']}</td><td>{d['receipts']}</td>"
        f"<td>{d['last_seq']}</td></tr>"
        for d in receipts["departments"]
    )
    batches = "".join(
        f"<tr><td>{_e(b['department'])}</td><td>{b['index']}</td><td>{b['first_seq']}–{b['last_seq']}</td>"
        f"<td><code>{_e(_short(b['root']))}</code></td>"
        f"<td>{'found' if b['manifest_found'] else 'not found'}</td>"
        f'<td class="{"ok" if b["ok"] else "bad"}">{"verified" if b["ok"] else "FAILED"}</td></tr>'
        for b in receipts["batches"]
    )
    late = "".join(
        f"<tr><td>#{r['id']}</td><td>{_e(r['requester'])} → {_e(r['owner'])}</td>"
        f"<td>{_e(r['purpose'])}</td><td>{_e(r['deadline_iso'])}</td>"
        f"<td>{r['overdue_seconds'] // 3600} h</td><td>{r['reminders']}</td>"
        f"<td>{r['escalations']}</td></tr>"
        for r in overdue["requests"]
    )
    verdict = (
        '<p class="ok">All anchored receipts verified.</p>'
        if receipts["ok"]
        else f'<p class="bad">{plural(len(receipts["problems"]), "problem")} in the receipt '
        "log.</p>"
    )
    return (
        '<div id="batch-status"><h2>Receipt batches</h2>'
        + verdict
        + "<div class=scroll><table><thead><tr><th>department</th><th>batches</th><th>receipts</th>"
        f"<th>last anchored</th></tr></thead><tbody>{depts}</tbody></table></div>"
        + (
            "<div class=scroll><table><thead><tr><th>department</th><th>batch</th><th>receipts</th>"
            "<th>root</th>"
            f"<th>manifest</th><th>check</th></tr></thead><tbody>{batches}</tbody></table></div>"
            if batches
            else ""
        )
        + '</div><div id="overdue"><h2>Overdue requests</h2>'
        + (
            "<div class=scroll><table><thead><tr><th>request</th><th>from → to</th><th>purpose</th>"
            "<th>deadline</th>"
            f"<th>late by</th><th>reminders</th><th>escalations</th></tr></thead><tbody>{late}"
            "</tbody></table></div>"
            if late
            else '<p class="muted">No overdue requests.</p>'
        )
        + "</div>"
        + (render_record_batches(record_batches) if record_batches is not None else "")
    )
