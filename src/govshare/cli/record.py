"""``govshare record publish|list|show|fetch``: a clerk's records, through the
department's broker API.

Publishing streams the file (never held in memory) with an idempotency key: a
retry with ``--idempotency-key`` returns the original record, never a second
one. Fetching writes to a temporary file beside the target and renames it into
place only once every byte arrived and its SHA-256 is the one anchored on chain.
"""

from __future__ import annotations

import mimetypes
import re
import shlex
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from govshare.broker.errors import OperationInProgress
from govshare.clerk.download import MAX_RESUMES, Opened, TransferBroken, download
from govshare.cli._client import (
    BrokerClient,
    BrokerUnreachable,
    broker_options,
    check_record_id,
    open_client,
)
from govshare.cli._output import atomic_output, check_output
from govshare.cli._transfer import CountingReader, transfer_bar
from govshare.cli.errors import Interrupted
from govshare.cli.main import Ctx, common_options, echo, pass_ctx
from govshare.errors import GovShareError, InputError, from_problem
from govshare.profile import normalise_code
from govshare.util import printable

if TYPE_CHECKING:
    import httpx

_CHUNK = 256 * 1024
_STATUSES = ["pending", "stored", "anchored", "failed"]


@click.group()
@common_options
def record() -> None:
    """Your department's records: publish, list, show, fetch (own and granted)."""


# -- publish ---------------------------------------------------------------------------


def _retry_hint(exc: GovShareError, key: str, retryable: bool) -> GovShareError:
    """Add the idempotency key to an error after which a retry is safe and useful."""
    exc.details["idempotency_key"] = key
    if retryable:
        exc.message = (
            f"{exc.message.rstrip()} Retry with --idempotency-key {key}: the broker "
            "returns the original record, never a second one."
        )
        exc.args = (exc.message,)
    return exc


@record.command("publish")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--category", required=True, help="A category your department declared.")
@click.option(
    "--subject", default=None, help="Who the record is about (only a keyed hash is anchored)."
)
@click.option(
    "--supersedes", default=None, metavar="ID", help="The record this is a new version of."
)
@click.option(
    "--idempotency-key",
    default=None,
    help="Retry an interrupted publish with the key it printed (default: a new key).",
)
@click.option(
    "--wait",
    "wait_s",
    type=click.FloatRange(0, 3600),
    default=120.0,
    show_default=True,
    help="Seconds to wait for the anchor after the broker accepted the record "
    "(0: return once accepted; the record is anchored with its batch all the same).",
)
@broker_options
@common_options
@pass_ctx
def publish_cmd(
    ctx: Ctx,
    file: Path,
    category: str,
    subject: str | None,
    supersedes: str | None,
    idempotency_key: str | None,
    wait_s: float,
    dept: str,
    token: str | None,
    broker_url: str | None,
) -> None:
    """Publish FILE: the broker encrypts it, stores it and anchors its hash on chain."""
    if not file.is_file():
        raise InputError(f"{file} is not a readable file.")
    if supersedes:
        supersedes = check_record_id(supersedes)
    key = (idempotency_key or "").strip() or f"cli-{uuid.uuid4().hex}"
    size = file.stat().st_size
    fields = {
        k: v
        for k, v in {"category": category, "subject": subject, "supersedes": supersedes}.items()
        if v
    }
    media_type = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
    resume = _resume_command(file, category, subject, supersedes, key, dept, broker_url)
    sent = False  # whether the upload may have reached the broker
    accepted: dict[str, Any] = {}  # the broker's answer, once it came
    with open_client(ctx, dept, token, broker_url) as client:
        if not ctx.json_out:
            echo(
                f"Publishing {printable(file.name)} ({size} bytes) to {client.code}'s broker; "
                f"idempotency key {key}",
                err=True,
            )
        try:
            with (
                file.open("rb") as fh,
                transfer_bar("uploading", size, enabled=not ctx.json_out) as bar,
            ):
                body = CountingReader(fh, bar, then="encrypting, storing, anchoring")
                sent = True
                resp = client.call(
                    "POST",
                    "/v1/records",
                    headers={"Idempotency-Key": key, "Prefer": "respond-async"},
                    data=fields,
                    files={"file": (file.name, body, media_type)},
                )
            accepted = resp.json()
            answer = _await_anchor(ctx, client, accepted, wait_s)
        except BrokerUnreachable as exc:
            raise _retry_hint(exc, key, retryable=True) from None
        except GovShareError as exc:  # the broker's answer, rebuilt
            retryable = exc.status >= 500 or isinstance(exc, OperationInProgress)
            raise _retry_hint(exc, key, retryable) from None
        except KeyboardInterrupt:
            made = str(accepted.get("record_id") or "") or None
            raise _interrupted(client.code, sent, key, resume, made) from None
    out: dict[str, Any] = {**answer, "idempotency_key": key, "department": client.code}
    if out.get("state") == "anchoring":
        ctx.emit(
            out,
            f"Accepted record {out['record_id']} (operation {out['operation_id']}); its batch "
            "is being anchored. `govshare record show` tells when it is; a retry with "
            f"--idempotency-key {key} returns this record.",
        )
        return
    if out.get("replayed"):
        human = (
            f"Already published under idempotency key {key}: record {out['record_id']} "
            f"(anchored in block {out.get('block_number')})."
        )
    else:
        human = (
            f"Published record {out['record_id']}\n"
            f"  category  {category}\n"
            f"  sha256    {out.get('sha256')}\n"
            f"  size      {out.get('size')} bytes\n"
            f"  CID       {out.get('cid')}\n"
            f"  anchored  block {out.get('block_number')}, tx {out.get('tx_hash')}"
        )
    ctx.emit(out, human)


def _resume_command(
    file: Path, category: str, subject: str | None, supersedes: str | None,
    key: str, dept: str, broker_url: str | None,
) -> str:  # fmt: skip
    """The exact command that resumes this publish: the same file and fields
    under the same idempotency key (the broker answers a replay with the record
    it made, never a second one)."""
    parts = ["govshare", "record", "publish", str(file), "--category", category]
    if subject:
        parts += ["--subject", subject]
    if supersedes:
        parts += ["--supersedes", supersedes]
    parts += ["--dept", normalise_code(dept), "--idempotency-key", key]
    if broker_url:
        parts += ["--broker", broker_url]
    return shlex.join(parts)


def _interrupted(
    broker: str, sent: bool, key: str, resume: str, record_id: str | None
) -> Interrupted:
    """What an interrupted publish may have left, and how to finish it."""
    if not sent:
        state = "before anything was sent: no record was made."
    elif record_id:
        state = (
            f"after {broker}'s broker accepted the file as record {record_id}: the record "
            "exists and its anchor is on its way (`govshare record show` tells when)."
        )
    else:
        state = (
            f"after the upload to {broker}'s broker began: the record may exist "
            "(the broker may have received it and go on to anchor it)."
        )
    return Interrupted(
        f"Interrupted {state} To finish (or find) it without making a second one, run:\n  {resume}",
        idempotency_key=key,
        record_may_exist=sent,
        record_id=record_id,
        resume=resume,
    )


def _await_anchor(ctx: Ctx, client: Any, accepted: dict[str, Any], wait_s: float) -> dict[str, Any]:
    """An answer "anchoring": say so, and poll the publish's operation until its
    batch lands (or ``wait_s`` passes). The publish answer then, or the accepted
    one still anchoring."""
    if accepted.get("state") != "anchoring":
        return accepted
    if not ctx.json_out:
        echo(f"Accepted: record {accepted.get('record_id')}, anchoring with its batch…", err=True)
    op_id = str(accepted["operation_id"])
    deadline = time.monotonic() + wait_s
    pause = 0.1
    while time.monotonic() < deadline:
        time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
        pause = min(1.0, pause * 1.5)
        op = client.call("GET", f"/v1/operations/{op_id}").json()
        if op.get("state") == "done":  # the publish's result: the anchored record
            return {**accepted, **(op.get("result") or {}), "state": "done"}
        if op.get("state") == "failed":
            err = op.get("error") or {}
            raise from_problem(err, operation_id=op_id)
    return accepted


# -- list and show ---------------------------------------------------------------------


@record.command("list")
@click.option("--status", type=click.Choice(_STATUSES), default=None, help="Only this state.")
@click.option("--category", default=None, help="Only this category.")
@click.option("--limit", type=click.IntRange(1, 500), default=100, show_default=True)
@broker_options
@common_options
@pass_ctx
def list_cmd(
    ctx: Ctx,
    status: str | None,
    category: str | None,
    limit: int,
    dept: str,
    token: str | None,
    broker_url: str | None,
) -> None:
    """Your department's records, newest first."""
    params: dict[str, Any] = {"limit": limit}
    if status:
        params["status"] = status
    if category:
        params["category"] = category
    with open_client(ctx, dept, token, broker_url) as client:
        rows = client.call("GET", "/v1/records", params=params).json()

    def human() -> None:
        from rich.console import Console

        from govshare.cli._render import SafeTable

        if not rows:
            echo(f"{client.code} has no records yet.")
            return
        t = SafeTable(title=f"{client.code}'s records")
        for col in ["record", "category", "status", "size", "file", "published"]:
            t.add_column(col)
        for r in rows:
            t.add_row(
                r["record_id"],
                r["category"],
                r["status"],
                str(r.get("size") or "-"),
                r.get("filename") or "-",
                (r.get("created_at") or "-")[:19],
            )
        Console(width=220).print(t)

    ctx.emit(rows, human)


@record.command("show")
@click.argument("record_id", metavar="ID")
@broker_options
@common_options
@pass_ctx
def show_cmd(
    ctx: Ctx, record_id: str, dept: str, token: str | None, broker_url: str | None
) -> None:
    """One record: your own (with its local details) or another department's
    public anchor on chain."""
    rid = check_record_id(record_id)
    with open_client(ctx, dept, token, broker_url) as client:
        rec = client.call("GET", f"/v1/records/{rid}").json()
    order = [
        "record_id", "department", "category", "status", "sha256", "cid", "size",
        "filename", "media_type", "subject_ref", "supersedes", "superseded_by",
        "published_by", "anchor_tx", "anchor_block", "anchored_at", "created_at",
    ]  # fmt: skip
    lines = [f"  {k:<14} {printable(rec[k])}" for k in order if rec.get(k) is not None]
    ctx.emit(rec, "Record\n" + "\n".join(lines))


# -- fetch -----------------------------------------------------------------------------


class _HttpContent:
    """:class:`govshare.clerk.download.ContentSource` over the broker's content
    routes: the first answer by id (``?grant=``) or by subject, continuations by
    id with ``Govshare-Exchange`` and ``Range``."""

    def __init__(
        self, client: BrokerClient, grant: int | None, subject: dict[str, str] | None
    ) -> None:
        self.client = client
        self.grant = grant
        self.subject = subject

    @contextmanager
    def open(self, record_id: str | None, offset: int, exchange: str | None) -> Iterator[Opened]:
        first = offset == 0 and exchange is None
        if first and self.subject is not None:
            opened = self.client.stream("POST", "/v1/records/by-subject/content", json=self.subject)
        else:
            headers = {"Govshare-Exchange": exchange} if exchange else {}
            if offset:
                headers["Range"] = f"bytes={offset}-"
            params = {"grant": self.grant} if self.grant and exchange is None else None
            opened = self.client.stream(
                "GET", f"/v1/records/{record_id}/content", params=params, headers=headers
            )
        with opened as resp:
            yield Opened(resp.status_code, resp.headers, _broken_off(resp))


def _broken_off(resp: httpx.Response) -> Iterator[bytes]:
    """The body; a connection that drops mid-way is :class:`TransferBroken` (resumed)."""
    import httpx

    try:
        yield from resp.iter_bytes(_CHUNK)
    except httpx.TransportError as exc:
        raise TransferBroken(type(exc).__name__) from None


def _download(
    client: BrokerClient, rid: str | None, out: Path, grant: int | None, bar_on: bool,
    subject: dict[str, str] | None = None, exchange: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Stream record ``rid`` (or, with ``subject``, the newest version a grant by
    subject covers: owner, category, subject) into ``out``, atomically, resuming
    a transfer that breaks off (:func:`govshare.clerk.download.download`)."""
    with (
        atomic_output(out) as fh,
        transfer_bar("downloading", None, enabled=bar_on) as bar,
    ):

        def resuming(done: int, total: int | None, attempt: int) -> None:
            echo(
                f"The transfer broke off after {done} of {total or '?'} bytes; resuming "
                f"(try {attempt} of {MAX_RESUMES}, no new use of the grant)...",
                err=True,
            )

        got = download(
            _HttpContent(client, grant, subject),
            rid,
            fh,
            exchange=exchange,
            on_start=bar.set_total,
            on_bytes=bar.advance,
            on_resume=resuming,
        )
    return {**got.to_dict(), "path": str(out)}


@record.command("fetch")
@click.argument("record_id", metavar="[ID]", required=False)
@click.option(
    "-o",
    "--output",
    "output",
    required=True,
    type=click.Path(path_type=Path),
    metavar="FILE",
    help="Where to write the record (a new file; an existing one with --force).",
)
@click.option("--grant", type=click.IntRange(min=1), default=None, help="Use this grant.")
@click.option("--owner", default=None, metavar="CODE", help="By subject: the owning department.")
@click.option("--category", default=None, help="By subject: the owner's category.")
@click.option(
    "--subject", default=None, metavar="ID", help="By subject: the citizen or enterprise."
)
@click.option("--force", is_flag=True, help="Replace the output file if it exists.")
@click.option(
    "--exchange",
    default=None,
    metavar="ID",
    help="Fetch again through this earlier exchange (no new use, within the owner's "
    "resume window): the id a broken fetch printed.",
)
@broker_options
@common_options
@pass_ctx
def fetch_cmd(
    ctx: Ctx,
    record_id: str | None,
    output: Path,
    grant: int | None,
    owner: str | None,
    category: str | None,
    subject: str | None,
    force: bool,
    exchange: str | None,
    dept: str,
    token: str | None,
    broker_url: str | None,
) -> None:
    """Fetch record ID into a file: your own, or another department's under a
    grant (one use of it). A transfer that breaks off is resumed from the byte it
    reached (up to 3 times, said on stderr), without another use. With --owner,
    --category and --subject instead of an ID: the newest version of the owner's
    record about that subject that your grant by subject covers. Your broker
    checks the ciphertext against the anchored CID and the plaintext against the
    anchored SHA-256; the file appears only when every byte arrived and matches."""
    query = _subject_query(record_id, grant, owner, category, subject)
    rid = check_record_id(record_id) if record_id else None
    if exchange is not None:
        if rid is None or grant:
            raise click.UsageError("--exchange goes with a record ID, without --grant.")
        if not re.fullmatch(r"0x[0-9a-fA-F]{64}", exchange):
            raise click.BadParameter("0x and 64 hex digits.", param_hint="--exchange")
    out = check_output(output, force=force)
    with open_client(ctx, dept, token, broker_url) as client:
        got = _download(
            client, rid, out, grant, bar_on=not ctx.json_out, subject=query, exchange=exchange
        )
    via = (
        f"from {got['owner']} under grant #{got['grant_id']} (receipt {got['receipt_seq']})"
        if got["grant_id"]
        else "(own record)"
    )
    ctx.emit(
        got,
        f"Fetched record {got['record_id']} {via}\n"
        f"  file    {output} ({got['size']} bytes)\n"
        f"  sha256  {got['sha256']}  — matches the hash anchored on chain",
    )


def _subject_query(
    record_id: str | None,
    grant: int | None,
    owner: str | None,
    category: str | None,
    subject: str | None,
) -> dict[str, str] | None:
    """The by-subject query of ``record fetch``, or None for a fetch by id."""
    by_subject = owner or category or subject
    if record_id and by_subject:
        raise click.UsageError("Fetch one record by ID, or by --owner/--category/--subject.")
    if not record_id and not by_subject:
        raise click.UsageError("Say which record: an ID, or --owner, --category and --subject.")
    if not by_subject:
        return None
    if not (owner and category and subject):
        raise click.UsageError("A fetch by subject needs --owner, --category and --subject.")
    if grant:
        raise click.UsageError("--grant goes with a fetch by ID (by subject, the grant is found).")
    return {"owner": normalise_code(owner), "category": category, "subject": subject}


@record.command("find")
@click.option("--owner", required=True, metavar="CODE", help="The department holding them.")
@click.option("--category", required=True, help="The owner's catalog category.")
@click.option(
    "--subject",
    required=True,
    metavar="ID",
    help="The citizen or enterprise (only its keyed reference is looked up).",
)
@broker_options
@common_options
@pass_ctx
def find_cmd(
    ctx: Ctx,
    owner: str,
    category: str,
    subject: str,
    dept: str,
    token: str | None,
    broker_url: str | None,
) -> None:
    """List OWNER's anchored records of CATEGORY about SUBJECT, newest version
    first, from the chain (your broker looks them up by the subject's keyed
    reference; the id itself goes nowhere else)."""
    owner_code = normalise_code(owner)
    body = {"owner": owner_code, "category": category, "subject": subject}
    with open_client(ctx, dept, token, broker_url) as client:
        rows = client.call("POST", "/v1/records/find", json=body).json()

    def human() -> None:
        from rich.console import Console

        from govshare.cli._render import SafeTable

        if not rows:
            echo(f"{owner_code} has anchored no {category} record about this subject.")
            return
        t = SafeTable(title=f"{owner_code}'s {category} records about the subject")
        for col in ["record", "anchored", "version", "block"]:
            t.add_column(col)
        for r in rows:
            version = (
                f"superseded by {str(r['superseded_by'])[:12]}…" if r.get("superseded_by")
                else "current"
            )  # fmt: skip
            t.add_row(r["record_id"], str(r["anchored_at"])[:19], version, str(r["block_number"]))
        Console(width=200).print(t)
        echo(
            f"Ask for them: govshare request create --owner {owner_code} --category {category} "
            "--subject ID --purpose TEXT"
        )

    ctx.emit(rows, human)


# -- bulk import -----------------------------------------------------------------------


@record.command("import")
@click.argument("directory", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))
@click.option("--category", required=True, help="A category your department declared.")
@click.option(
    "--subject-from",
    type=click.Choice(["none", "name", "csv"]),
    default="none",
    show_default=True,
    help="Each record's subject: the file name (up to its first dot), or a CSV row.",
)
@click.option(
    "--subject-csv",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="With --subject-from csv: a CSV with 'path' (relative to DIR) and 'subject' columns.",
)
@click.option(
    "--jobs",
    type=click.IntRange(1, 64),
    default=8,
    show_default=True,
    help="Requests in flight at once (at most 2 when several files go per request).",
)
@click.option(
    "--per-request",
    type=click.IntRange(1, 256),
    default=256,
    show_default=True,
    help="Files sent in one request, accepted together by the broker (1: each alone).",
)
@click.option(
    "--max-size",
    type=click.IntRange(min=0),
    default=256 * 1024**2,
    show_default=True,
    help="Largest file sent, in bytes (the broker's upload limit).",
)
@click.option("--quiet", is_flag=True, help="No progress, only the summary.")
@broker_options
@common_options
@pass_ctx
def import_cmd(
    ctx: Ctx,
    directory: Path,
    category: str,
    subject_from: str,
    subject_csv: Path | None,
    jobs: int,
    per_request: int,
    max_size: int,
    quiet: bool,
    dept: str,
    token: str | None,
    broker_url: str | None,
) -> None:
    """Publish every file of DIR (an archive), resumably: running it again skips
    what is already there. Exits non-zero when any file failed."""
    from govshare.cli import _import

    if subject_from == "csv" and subject_csv is None:
        raise InputError("--subject-from csv needs --subject-csv FILE.")
    with open_client(ctx, dept, token, broker_url) as client:
        _import.run(
            ctx, client, directory, category, subject_from,  # type: ignore[arg-type]
            subject_csv, jobs, per_request, max_size, quiet,
        )  # fmt: skip
