"""``govshare record import DIR``: parse, call the bulk-import use case
(:mod:`govshare.clerk.importer`), render its progress and summary."""

from __future__ import annotations

import json
import mimetypes
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Literal, cast

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from govshare.clerk.importer import (
    ImportPlan,
    ImportSummary,
    ItemResult,
    Outgoing,
    PublishAnswer,
    StopImport,
    import_folder,
)
from govshare.cli._client import BrokerClient, BrokerUnreachable
from govshare.cli.main import EXIT_ERROR, Ctx, echo
from govshare.util import printable


class ApiPublisher:
    """The broker's ``POST /v1/records`` and ``POST /v1/records/batch``, as
    :class:`govshare.clerk.importer.BulkPublisher`."""

    def __init__(self, client: BrokerClient) -> None:
        self.client = client

    def publish(
        self, path: Path, *, key: str, filename: str, fields: dict[str, str]
    ) -> PublishAnswer:
        media_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        try:
            with path.open("rb") as fh:
                resp = self.client.call(
                    "POST",
                    "/v1/records",
                    # accepted at once; the broker anchors it with its batch
                    headers={"Idempotency-Key": key, "Prefer": "respond-async"},
                    data=fields,
                    files={"file": (filename, fh, media_type)},
                )
        except BrokerUnreachable as exc:
            raise StopImport(exc.message) from None
        body = resp.json() if resp.content else {}
        return PublishAnswer(
            record_id=body.get("record_id"),
            replayed=bool(body.get("replayed")),
            state=str(body.get("state") or ("done" if resp.status_code < 202 else "pending")),
        )

    def publish_many(self, files: list[Outgoing]) -> list[PublishAnswer | str]:
        """``POST /v1/records/batch``: the files of one chunk in one request, each
        accepted at once under its own key."""
        with ExitStack() as stack:
            data, parts = bulk_form(files, stack)
            try:
                resp = self.client.call("POST", "/v1/records/batch", data=data, files=parts)
            except BrokerUnreachable as exc:
                raise StopImport(exc.message) from None
        return bulk_answers(resp.json(), len(files))


def bulk_form(
    files: list[Outgoing], stack: ExitStack
) -> tuple[dict[str, str], list[tuple[str, tuple[str, BinaryIO, str]]]]:
    """The multipart form of ``POST /v1/records/batch`` for ``files``: its
    ``items`` field and its ``file`` parts (opened on ``stack``), in one order."""
    items = [{"idempotency_key": f.key, **{k: v for k, v in f.fields.items() if v}} for f in files]
    parts = [
        (
            "file",
            (
                f.filename,
                cast(BinaryIO, stack.enter_context(f.path.open("rb"))),
                mimetypes.guess_type(f.filename)[0] or "application/octet-stream",
            ),
        )
        for f in files
    ]
    return {"items": json.dumps(items)}, parts


def bulk_answers(body: Any, count: int) -> list[PublishAnswer | str]:
    """Each record's answer in a bulk reply, in order (:class:`StopImport` when
    the reply does not answer every record sent)."""
    results = body.get("results", []) if isinstance(body, dict) else []
    if not isinstance(results, list) or len(results) != count:
        raise StopImport(f"The broker answered {len(results)} of {count} records.")
    out: list[PublishAnswer | str] = []
    for entry in results:
        entry = entry if isinstance(entry, dict) else {}
        status, answer = entry.get("status"), entry.get("body")
        status = status if isinstance(status, int) else 0  # a malformed entry: refused
        out.append(_answer_of(status, answer if isinstance(answer, dict) else {}))
    return out


def _answer_of(status: int, body: dict[str, object]) -> PublishAnswer | str:
    """One record's answer in a bulk reply: as ``POST /v1/records`` gives it."""
    if not 200 <= status < 300:
        return str(body.get("detail") or body.get("code") or f"HTTP {status}")
    return PublishAnswer(
        record_id=str(body["record_id"]) if body.get("record_id") else None,
        replayed=bool(body.get("replayed")),
        state=str(body.get("state") or ("done" if status < 202 else "pending")),
    )


@contextmanager
def _progress(ctx: Ctx, quiet: bool):  # type: ignore[no-untyped-def]
    """(on_start, on_result): a bar on a terminal, a line per file otherwise."""
    console = Console(stderr=True)
    if ctx.json_out or quiet:
        yield None, None
        return
    if not console.is_terminal:

        def line(r: ItemResult) -> None:
            what = r.outcome if r.outcome != "already" else "already there"
            tail = (
                f" {r.record_id}" if r.record_id else f": {printable(r.reason)}" if r.reason else ""
            )
            echo(f"{what:13} {printable(r.relpath)}{tail}", err=True)

        yield None, line
        return
    with Progress(
        TextColumn("importing"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]} failed"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("import", total=None, failed=0)
        failed = 0

        def start(n: int) -> None:
            bar.update(task, total=n)

        def advance(r: ItemResult) -> None:
            nonlocal failed
            failed += r.outcome == "failed"
            bar.update(task, advance=1, failed=failed)

        yield start, advance


def run(
    ctx: Ctx,
    client: BrokerClient,
    directory: Path,
    category: str,
    subject_from: Literal["none", "name", "csv"],
    subject_csv: Path | None,
    jobs: int,
    per_request: int,
    max_size: int,
    quiet: bool,
) -> None:
    plan = ImportPlan(
        root=directory,
        dept=client.code,
        category=category.strip(),
        subject_from=subject_from,
        subject_csv=subject_csv,
        jobs=jobs,
        max_size=max_size,
        per_request=per_request,
    )
    with _progress(ctx, quiet) as (on_start, on_result):
        summary = import_folder(plan, ApiPublisher(client), on_start=on_start, progress=on_result)
    ctx.emit({**summary.to_dict(), "department": client.code}, lambda: _human(summary))
    if not summary.ok:
        click.get_current_context().exit(EXIT_ERROR)


def _human(s: ImportSummary) -> None:
    echo(
        f"Imported {s.total} files: {s.published} published, {s.already} already there, "
        f"{len(s.failed)} failed."
    )
    if s.anchoring:
        echo(f"  {s.anchoring} accepted and anchoring (their batch lands shortly).")
    for rel, reason in s.failed:
        echo(f"  failed  {printable(rel)}: {printable(reason)}")
    for err in s.csv_errors:
        echo(f"  subject CSV {printable(err)}")
    if not s.ok:
        echo("Run the same command again to retry: what is already there is skipped.")
