"""``govshare audit …``: prove where a document came from and who saw it.

Every command works from the chain and the receipt manifests alone. It needs no
department profile and no key (``audit subject`` needs the consortium subject key
to turn an id into its reference), but the deployment file (``HOME/deployment.json``
or ``--deployment``) and a chain node (``--rpc``); checking access receipts needs
also somewhere to read their manifests (``--manifests``: a Kubo node of the swarm,
a broker's URL with its auditor or admin token in ``GOVSHARE_AUDIT_TOKEN``, or a
store; by default every blob store of the home). Manifests are checked against the CIDs
and roots anchored on chain, so the source need not be trusted (see
``docs/audit.md``). The auditor's event index is a cache in ``HOME/audit/``.

A check that fails exits non-zero with one sentence on stderr (with ``--json``,
the full report is still printed on stdout).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from govshare.cli._output import atomic_output, check_output
from govshare.cli.main import EXIT_ERROR, Ctx, common_options, echo, from_settings, pass_ctx
from govshare.util import plural, printable

F = TypeVar("F", bound=Callable[..., Any])


def view_options(f: F) -> F:
    f = click.option(
        "--index",
        "index_path",
        type=click.Path(dir_okay=False),
        default=None,
        help="The auditor's event index (a cache; default HOME/audit/index.db).",
    )(f)
    f = click.option(
        "--manifests",
        "manifest_urls",
        multiple=True,
        metavar="SOURCE",
        help="Where to read receipt manifests: kubo:URL (a swarm node; no token), a "
        "broker's URL (its auditor or admin token in GOVSHARE_AUDIT_TOKEN) or local:PATH "
        "(repeatable; default: every blob store in the home).",
    )(f)
    f = click.option(
        "--deployment",
        "deployment_file",
        default=from_settings("deployment_file"),
        type=click.Path(dir_okay=False),
        help="Deployment file (default HOME/deployment.json).",
    )(f)
    f = click.option(
        "--rpc",
        default=from_settings("rpc"),
        help="Chain JSON-RPC URL (default: the deployment file's).",
    )(f)
    return f


def open_view(
    ctx: Ctx,
    rpc: str | None,
    deployment_file: str | None,
    manifest_urls: tuple[str, ...],
    index_path: str | None,
) -> Any:
    from govshare.audit.sources import ManifestSources
    from govshare.audit.view import AuditView
    from govshare.errors import DeploymentNotFound
    from govshare.home import deployment_path, mirror_path

    home = ctx.home
    dep = Path(deployment_file) if deployment_file else deployment_path(home)
    if not dep.is_file():
        raise DeploymentNotFound(
            f"No deployment file at {dep}: an auditor needs the consortium's deployment file "
            "(--deployment FILE, or HOME/deployment.json)."
        )
    index = Path(index_path) if index_path else mirror_path(home)
    settings = ctx.settings
    sources = ManifestSources.from_urls(
        manifest_urls,
        home=home,
        token=settings.secret("audit_token"),
        store=settings.store,
        kubo_token=settings.secret("kubo_token"),
    )
    return AuditView.open(dep, index, sources, rpc)


def fail(ctx: Ctx, sentence: str) -> None:
    """Exit non-zero with one sentence on stderr (after any report was printed)."""
    echo(f"Error: {printable(sentence)}", err=True)
    click.get_current_context().exit(EXIT_ERROR)


def output_options(f: Any) -> Any:
    """``-o FILE`` and ``--force``: the one rule of every ``-o`` (see ``cli._output``)."""
    f = click.option("--force", is_flag=True, help="Replace the output file if it exists.")(f)
    return click.option(
        "-o", "--output", type=click.Path(), metavar="FILE", help="Write to this file."
    )(f)


def write_out(data: str, target: Path | None) -> None:
    """``data`` to ``target`` (checked by :func:`check_output` before any work), or
    to stdout."""
    if target is not None:
        with atomic_output(target) as fh:
            fh.write(data.encode("utf-8"))
        echo(f"Written to {target}.", err=True)
    else:
        echo(data)


def _problems_text(problems: list[dict[str, Any]], limit: int = 20) -> None:
    for p in problems[:limit]:
        echo(f"  ✗ [{p['code']}] {printable(p['message'])}")
    if len(problems) > limit:
        echo(f"  … and {len(problems) - limit} more (use --json for all).")


@click.group()
@common_options
def audit() -> None:
    """Verify documents, trails and access receipts (no profile, no key; `subject`
    needs the consortium subject key).

    Every command needs the consortium's deployment file (--deployment, default
    HOME/deployment.json) and a chain node (--rpc, default the deployment file's).
    Checking access receipts (receipts; the receipts in trail and report) needs
    also their manifests (--manifests): a Kubo node of the consortium's swarm
    (no token), a broker's URL with an auditor or admin token of that broker in
    GOVSHARE_AUDIT_TOKEN, or local:PATH (a copy of a store; the default is every
    blob store in the home).
    """


# -- verify ---------------------------------------------------------------------------------


@audit.command("verify")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@view_options
@common_options
@pass_ctx
def verify_cmd(
    ctx: Ctx,
    file: str,
    rpc: str | None,
    deployment_file: str | None,
    manifest_urls: tuple[str, ...],
    index_path: str | None,
) -> None:
    """Is FILE an anchored record? Who published it, when, which version."""
    from govshare.audit.trail import verify_file

    view = open_view(ctx, rpc, deployment_file, manifest_urls, index_path)
    try:
        out = verify_file(view, Path(file))
    finally:
        view.close()

    def human() -> None:
        if not out["records"]:
            return
        echo(f"{file}: SHA-256 {out['sha256']}")
        for r in out["records"]:
            echo(
                f"  anchored as record {r['record_id']}\n"
                f"    owner {r['department']}, category {printable(r['category'])}\n"
                f"    published by {r['anchored_by']} at {r['anchored_at_iso']}, "
                f"block {r['block_number']}, transaction {r['tx_hash']}"
            )
            if r.get("version") is not None:
                echo(f"    version {r['version']} of {r['versions']}, {_state(r)}")
            if r.get("batch"):
                echo(_batch_text(r["batch"]))

    ctx.emit(out, human)
    unread = out["unread_batches"]
    if not out["ok"]:
        fail(
            ctx,
            f"{file}: a batched record with its SHA-256 does not prove against the chain "
            "(its batch's root on chain): the index or the manifest was altered.",
        )
    elif not out["anchored"]:
        more = (
            f" {len(unread)} anchored record batch(es) could not be read or checked "
            f"({printable(unread[0]['message'])}); it may be in one of them."
            if unread
            else ""
        )
        fail(
            ctx,
            f"{file} is not anchored: no record on chain or in a record batch has its "
            f"SHA-256 {out['sha256']} (a different or altered file).{more}",
        )


def _state(r: dict[str, Any]) -> str:
    if r["superseded"]:
        return f"superseded by {r['superseded_by']} (latest: {r['latest_record_id']})"
    return "current"


def _batch_text(b: dict[str, Any]) -> str:
    """Where a batched record sits, its proof against the chain, its materialisation."""
    verdict = "verified" if b["verified"] else "FAILED"
    mat = b.get("materialised")
    written = (
        f"written on chain by {mat['materialised_by']} at {mat['materialised_at_iso']} "
        f"(transaction {mat['tx_hash']})"
        if mat
        else "not written on chain yet (it is when first requested)"
    )
    return (
        f"    in {b['department']}'s record batch {b['sequence']}, leaf {b['leaf_index']} of "
        f"{b['count']} (root {b['merkle_root']}, manifest {printable(b['manifest_cid'])})\n"
        f"    inclusion proof against the root on chain: {verdict}\n"
        f"    {written}"
    )


# -- trail ----------------------------------------------------------------------------------


@audit.command("trail")
@click.argument("record")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "prov"]),
    default=None,
    help="text (default), json, or W3C PROV-JSON.",
)
@output_options
@view_options
@common_options
@pass_ctx
def trail_cmd(
    ctx: Ctx,
    record: str,
    fmt: str | None,
    output: str | None,
    force: bool,
    rpc: str | None,
    deployment_file: str | None,
    manifest_urls: tuple[str, ...],
    index_path: str | None,
) -> None:
    """The provenance of RECORD: versions, requests, decisions, grants, revocations,
    and access receipts, each receipt's inclusion proof checked."""
    from govshare.audit.prov import trail_to_prov
    from govshare.audit.trail import build_trail

    target = check_output(output, force=force) if output else None
    view = open_view(ctx, rpc, deployment_file, manifest_urls, index_path)
    try:
        trail = build_trail(view, record)
    finally:
        view.close()
    fmt = fmt or ("json" if ctx.json_out else "text")
    if fmt == "prov":
        write_out(json.dumps(trail_to_prov(trail), indent=2, sort_keys=True), target)
    elif fmt == "json":
        write_out(json.dumps(trail, indent=2, sort_keys=True), target)
    else:
        _trail_text(trail)
    if not trail["ok"]:
        fail(
            ctx,
            f"The trail of record {trail['record_id']} has {len(trail['problems'])} problem(s): "
            f"{printable(trail['problems'][0]['message'])}",
        )


def _timeline_text(doc: dict[str, Any], receipts: str) -> None:
    """A trail's or a history's timeline, its receipts' count and its problems."""
    echo("Timeline:")
    for e in doc["timeline"]:
        echo(f"  {e['at_iso']}  {e['kind']:<17} {printable(e['text'])}")
    r = doc["receipts"]
    echo(
        f"{receipts}: {r['anchored']} anchored, {r['verified']} verified "
        "(inclusion proof, both signatures, grant window)."
    )
    if doc["problems"]:
        echo("Problems:")
        _problems_text(doc["problems"])
    else:
        echo("No problems found.")


def _trail_text(t: dict[str, Any]) -> None:
    echo(f"Record {t['record_id']} (owner {t['owner']}), chain {t['chain_id']}")
    echo("Versions:")
    for v in t["versions"]:
        mark = " ◀ this" if v["this"] else ""
        echo(
            f"  v{v['version']} {v['record_id']} {v['anchored_at_iso']} by {v['anchored_by']}"
            f" (tx {v['tx_hash']}){' superseded' if not v['current'] else ''}{mark}"
        )
        if v.get("batch"):
            echo(_batch_text(v["batch"]))
    _timeline_text(t, "Receipts")


# -- receipts -------------------------------------------------------------------------------


def _held(path: str) -> list[Any]:
    from govshare.audit.receipts import ReceiptLeaf
    from govshare.errors import InputError

    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path} is not a JSON list of receipts ({exc}).") from None
    out = []
    for item in data if isinstance(data, list) else []:
        d = dict(item)
        d.pop("batch_id", None)
        for name in ("issued_at", "acked_at"):
            if isinstance(d.get(name), str):
                d[name] = int(datetime.fromisoformat(d[name]).timestamp())
        # a broker's listing: version 2 when it shows the acknowledgement fields
        d.setdefault("v", 2 if "ack_signature" in d else 1)
        out.append(ReceiptLeaf.from_json(d))
    return out


@audit.command("subject")
@click.argument("subject", required=False)
@click.option(
    "--subject-ref",
    "subject_ref",
    default=None,
    metavar="0xHEX",
    help="The subject's keyed reference, as a member computed it, instead of its id.",
)
@click.option(
    "--dept",
    "dept",
    default=from_settings("dept"),
    metavar="CODE",
    help="A department of this home whose copy of the consortium subject key turns the id "
    "into its reference (or GOVSHARE_SUBJECT_KEY / GOVSHARE_SUBJECT_KEY_FILE).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "html"]),
    default=None,
    help="text (default), json, or a standalone HTML page.",
)
@output_options
@view_options
@common_options
@pass_ctx
def subject_cmd(
    ctx: Ctx,
    subject: str | None,
    subject_ref: str | None,
    dept: str | None,
    fmt: str | None,
    output: str | None,
    force: bool,
    rpc: str | None,
    deployment_file: str | None,
    manifest_urls: tuple[str, ...],
    index_path: str | None,
) -> None:
    """The access history of SUBJECT (a person's or an enterprise's id): every
    record about it in every department, and every request, decision, delivery
    and revocation, each receipt checked as `audit trail` checks it. For the
    subject's own right to know (an auditor or an ombudsman runs it for them)."""
    from govshare.audit.subject import build_subject_history

    ref, label = _subject_of(ctx, subject, subject_ref, dept)
    target = check_output(output, force=force) if output else None
    view = open_view(ctx, rpc, deployment_file, manifest_urls, index_path)
    try:
        history = build_subject_history(view, ref, label=label)
    finally:
        view.close()
    fmt = fmt or ("json" if ctx.json_out else "text")
    if fmt == "json":
        write_out(json.dumps(history, indent=2, sort_keys=True), target)
    elif fmt == "html":
        from govshare.audit.html import subject_page

        write_out(subject_page(history), target)
    else:
        _subject_text(history)
    if not history["ok"]:
        fail(
            ctx,
            f"The history of subject {history['subject']} has {len(history['problems'])} "
            f"problem(s): {printable(history['problems'][0]['message'])}",
        )


def _subject_of(
    ctx: Ctx, subject: str | None, subject_ref: str | None, dept: str | None
) -> tuple[bytes, str]:
    """The subject's keyed reference and how to show it (its id masked)."""
    from govshare.audit.subject import reference_of
    from govshare.broker.subjects import load_subject_key
    from govshare.errors import InputError

    if (subject is None) == (subject_ref is None):
        raise InputError("Name the subject by its id, or by --subject-ref; one of them.")
    if subject is None:  # (then --subject-ref was given)
        text = str(subject_ref).strip().lower().removeprefix("0x")
        if not re.fullmatch(r"[0-9a-f]{64}", text):
            raise InputError("--subject-ref is 0x and 64 hex digits (a keyed reference).")
        return bytes.fromhex(text), "0x" + text
    settings = ctx.settings
    key_dir = None
    if dept:
        from govshare.profile import load_profile

        key_dir = load_profile(ctx.home, dept).dir
    elif not (settings.secret("subject_key") or settings.subject_key_file):
        raise InputError(
            "Turning an id into its reference needs the consortium subject key: name a "
            "department of this home (--dept CODE) or set GOVSHARE_SUBJECT_KEY."
        )
    key = load_subject_key(
        key_dir or ctx.home,
        key=settings.secret("subject_key"),
        key_file=settings.subject_key_file,
    )
    return reference_of(key, subject)


def _subject_text(h: dict[str, Any]) -> None:
    echo(f"Subject {h['subject']} (reference {h['subject_ref']}), chain {h['chain_id']}")
    if not h["records"] and not h["requests"]:
        echo("No record about this subject is anchored, and no department asked for one.")
        return
    echo(f"Records ({len(h['records'])}):")
    for r in h["records"]:
        last = r["versions"][-1]
        echo(  # every value read from the chain, escaped as a whole line
            printable(
                f"  {r['record_id']} {r['owner']} {r['category']}: "
                f"{plural(len(r['versions']), 'version')}, first "
                f"{r['versions'][0]['anchored_at_iso']}, latest {last['anchored_at_iso']}"
            )
        )
    echo(f"Requests ({len(h['requests'])}):")
    for q in h["requests"]:
        basis = f" (legal basis: {q['legal_basis']})" if q["legal_basis"] else ""
        echo(
            printable(
                f"  #{q['id']} {q['requester']} → {q['owner']} {q['status']}: "
                f"{q['purpose']}{basis}; deliveries: {len(q['receipts'])}"
            )
        )
    _timeline_text(h, "Deliveries")


@audit.command("receipts")
@click.option("--dept", "dept_code", default=None, help="Only this department's receipt log.")
@click.option(
    "--held",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Receipts a requester kept (JSON, as GET /v1/receipts answers): each must be anchored.",
)
@view_options
@common_options
@pass_ctx
def receipts_cmd(
    ctx: Ctx,
    dept_code: str | None,
    held: str | None,
    rpc: str | None,
    deployment_file: str | None,
    manifest_urls: tuple[str, ...],
    index_path: str | None,
) -> None:
    """Check every anchored receipt batch: manifest vs root, signatures, grants,
    no gap, overlap or omission."""
    from govshare.audit.checks import audit_receipts
    from govshare.profile import normalise_code

    code = normalise_code(dept_code) if dept_code else None
    held_receipts = _held(held) if held else []
    view = open_view(ctx, rpc, deployment_file, manifest_urls, index_path)
    try:
        report = audit_receipts(view, code, held=held_receipts)
    finally:
        view.close()

    def human() -> None:
        for d in report["departments"]:
            echo(
                f"{d['department']}: {d['batches']} batch(es), {d['receipts']} receipt(s) "
                f"checked, last anchored receipt {d['last_seq']}"
            )
            dl = d.get("delivery") or {}
            if d["receipts"]:
                echo(
                    f"  delivery: {dl.get('acknowledged', 0)} acknowledged by the requester, "
                    f"{dl.get('unacknowledged', 0)} delivered unacknowledged, "
                    f"{dl.get('not recorded', 0)} not recorded (version 1 receipts)"
                )
        for b in report["batches"]:
            mark = "✓" if b["ok"] else "✗"
            echo(
                f"  {mark} {b['department']} batch {b['index']}: receipts {b['first_seq']}-"
                f"{b['last_seq']}, root {b['root'][:18]}…, manifest "
                f"{'from ' + b['manifest_source'] if b['manifest_found'] else 'NOT FOUND'}"
            )
        if report["problems"]:
            echo(f"{len(report['problems'])} problem(s):")
            _problems_text(report["problems"])
        else:
            echo(f"All {report['receipts_checked']} receipt(s) verified.")

    ctx.emit(report, human)
    if not report["ok"]:
        fail(
            ctx,
            f"The receipt audit found {len(report['problems'])} problem(s): "
            f"{printable(report['problems'][0]['message'])}",
        )


# -- record batches -------------------------------------------------------------------------


@audit.command("batches")
@click.option("--dept", "dept_code", default=None, help="Only this department's batches.")
@view_options
@common_options
@pass_ctx
def batches_cmd(
    ctx: Ctx,
    dept_code: str | None,
    rpc: str | None,
    deployment_file: str | None,
    manifest_urls: tuple[str, ...],
    index_path: str | None,
) -> None:
    """Anchored record batches and their manifests: read and checked against the
    root on chain, not found (yet), or not describing the batch."""
    from govshare.audit.batched import record_batches

    view = open_view(ctx, rpc, deployment_file, manifest_urls, index_path)
    try:
        out = record_batches(view, dept_code.upper() if dept_code else None)
    finally:
        view.close()

    def human() -> None:
        for b in out["batches"]:
            mark = "✓" if b["state"] == "indexed" else "✗"
            echo(
                f"  {mark} {b['department']} batch {b['sequence']}: {b['count']} record(s), "
                f"root {b['merkle_root'][:18]}…, "
                f"manifest {printable(b['manifest_cid'])}: {b['state']}"
                + (f" ({printable(b['problem'])})" if b["problem"] else "")
            )
        counts = ", ".join(f"{n} {state}" for state, n in sorted(out["counts"].items()))
        echo(f"{len(out['batches'])} record batch(es){': ' + counts if counts else ''}.")

    ctx.emit(out, human)
    if not out["ok"]:
        fail(
            ctx,
            f"{len(out['problems'])} record batch(es) could not be read or checked: "
            f"{printable(out['problems'][0]['message'])}",
        )


# -- overdue --------------------------------------------------------------------------------


@audit.command("overdue")
@click.option("--dept", "dept_code", default=None, help="Only requests to or from this department.")
@view_options
@common_options
@pass_ctx
def overdue_cmd(
    ctx: Ctx,
    dept_code: str | None,
    rpc: str | None,
    deployment_file: str | None,
    manifest_urls: tuple[str, ...],
    index_path: str | None,
) -> None:
    """Open requests past their deadline, with their reminders and escalations."""
    from govshare.audit.checks import overdue_requests
    from govshare.profile import normalise_code

    code = normalise_code(dept_code) if dept_code else None
    view = open_view(ctx, rpc, deployment_file, manifest_urls, index_path)
    try:
        out = overdue_requests(view, code)
    finally:
        view.close()

    def human() -> None:
        if not out["requests"]:
            echo("No overdue requests.")
            return
        for r in out["requests"]:
            hours = r["overdue_seconds"] / 3600
            echo(
                f"#{r['id']} {r['requester']} → {r['owner']}: "
                f"{printable(repr(r['purpose']))}, deadline {r['deadline_iso']} "
                f"({hours:.1f} h overdue), {r['reminders']} reminder(s), "
                f"{r['escalations']} escalation(s)"
            )
            for h in r["history"]:
                echo(f"    {h['at_iso']} {h['kind']} by {h['by']}")

    ctx.emit(out, human)


# -- report ---------------------------------------------------------------------------------

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_AGO = re.compile(r"^\d+[smhdw]$")


def _unix_seconds(digits: str) -> int:
    from govshare.util import MAX_DATETIME_SECONDS

    if len(digits) > 12 or int(digits) > MAX_DATETIME_SECONDS:
        raise click.BadParameter(
            f"{digits[:20]} is not a time: Unix seconds go up to {MAX_DATETIME_SECONDS} "
            "(9999-12-31)."
        )
    return int(digits)


def parse_when(text: str, *, end: bool = False) -> int | None:
    """``2026-05-01`` or ``today`` (the day's start, or with ``end`` its end), an
    ISO 8601 time, ``7d`` (that long ago), or Unix seconds; None for ``now`` (the
    ledger's now: the later of the wall clock and the latest block). A time before
    1970 or after 9999 is refused with one sentence (click's usage error)."""
    from govshare.errors import InputError
    from govshare.util import MAX_DATETIME_SECONDS, parse_duration

    t = (text or "").strip()
    if t == "now":
        return None
    if t == "today":
        t = datetime.now(UTC).date().isoformat()
    now = int(datetime.now(UTC).timestamp())
    if _AGO.match(t):  # "7d": that long before now (and not before 1970)
        try:
            return now - parse_duration(t, now, what="time ago")
        except InputError as exc:
            raise click.BadParameter(exc.message) from None
    if t.isdigit():
        return _unix_seconds(t)
    try:
        dt = datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not a date: use YYYY-MM-DD, today, an ISO 8601 time, 30d (ago) or now."
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    when = int(dt.timestamp())
    if end and _DATE.match(t):
        when += 86400 - 1
    if not 0 <= when <= MAX_DATETIME_SECONDS:
        raise click.BadParameter(f"{text!r} is not a time between 1970 and 9999.")
    return when


@audit.command("report")
@click.option(
    "--since", required=True, help="Start: YYYY-MM-DD, today, an ISO 8601 time, or 30d (ago)."
)
@click.option("--until", default="now", show_default=True, help="End (a date counts whole).")
@click.option("--dept", "dept_code", default=None, help="Only this department (as either party).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "prov", "html"]),
    default="json",
    show_default=True,
)
@output_options
@view_options
@common_options
@pass_ctx
def report_cmd(
    ctx: Ctx,
    since: str,
    until: str,
    dept_code: str | None,
    fmt: str,
    output: str | None,
    force: bool,
    rpc: str | None,
    deployment_file: str | None,
    manifest_urls: tuple[str, ...],
    index_path: str | None,
) -> None:
    """A period report: records published, requests, decisions and their delays,
    accesses per grant, anomalies."""
    from govshare.audit.report import period_report, render_report_html, report_prov
    from govshare.profile import normalise_code

    start, stop = parse_when(since), parse_when(until, end=True)
    target = check_output(output, force=force) if output else None
    code = normalise_code(dept_code) if dept_code else None
    view = open_view(ctx, rpc, deployment_file, manifest_urls, index_path)
    try:
        now = view.ledger.now()
        start = now if start is None else start
        stop = now if stop is None else stop
        if stop < start:
            raise click.BadParameter("--until is before --since.")
        report = period_report(view, start, stop, code)
        if fmt == "prov":
            write_out(json.dumps(report_prov(view, report), indent=2, sort_keys=True), target)
    finally:
        view.close()
    if fmt == "html":
        write_out(render_report_html(report), target)
    elif fmt == "json":
        write_out(json.dumps(report, indent=2, sort_keys=True), target)
    # overdue requests, late decisions and bulk pulls are findings to read; receipts
    # or batches that fail their checks are failures
    failed = [a for a in report["anomalies"] if a["kind"] in _FAILURES]
    if failed:
        fail(
            ctx,
            f"{len(failed)} access(es) or batch(es) in {report['since_iso']} to "
            f"{report['until_iso']} fail their checks: {printable(failed[0]['message'])}",
        )


_FAILURES = frozenset({"batch_invalid", "receipt_invalid", "outside_grant_window"})
