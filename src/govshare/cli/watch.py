"""``govshare request watch --dept CODE``: follow the department's notifications
in a terminal, from its broker's ``GET /v1/events`` (docs/events.md).

One line per notification (what another department wrote is shown escaped:
:func:`govshare.util.printable`), or one JSON object per line with ``--json``.
A broken connection is retried with ``Last-Event-ID``, so nothing is lost or
shown twice; Ctrl-C ends it with status 0. ``--no-follow`` prints what is there
(after ``--after``) and exits.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import click

from govshare.cli._client import (
    CONNECT_TIMEOUT_SECONDS,
    BrokerClient,
    BrokerUnreachable,
    broker_options,
    open_client,
)
from govshare.cli.main import Ctx, common_options, echo, pass_ctx
from govshare.errors import GovShareError
from govshare.util import plural, printable

#: Seconds between reconnections at most.
MAX_BACKOFF = 30.0
#: A broker sends a comment at least every 15 s (by default): silence this long is a
#: broken connection, retried.
READ_TIMEOUT_SECONDS = 60.0
#: Characters of a line read from the stream at most (longer lines are dropped).
MAX_LINE = 64 * 1024


def parse_sse(lines: Iterator[str]) -> Iterator[tuple[str | None, str, str]]:
    """``(id, event, data)`` per event of a text/event-stream; comments skipped."""
    event_id: str | None = None
    kind, data = "message", list[str]()
    for raw in lines:
        line = raw.rstrip("\r\n")
        if len(line) > MAX_LINE:
            continue
        if not line:
            if data:
                yield event_id, kind, "\n".join(data)
            kind, data = "message", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "id":
            event_id = value
        elif name == "event":
            kind = value
        elif name == "data":
            data.append(value)


def describe(n: dict[str, Any]) -> str:
    """One terminal line for notification ``n`` (every value escaped)."""
    d = n.get("data") if isinstance(n.get("data"), dict) else {}
    assert isinstance(d, dict)
    kind = str(n.get("kind", "?"))
    rid = d.get("request_id")
    what = {
        "request.incoming": lambda: (
            f"{d.get('requester')} asks for "
            + (
                f"{d.get('category')} records of subject {str(d.get('subject_ref'))[:18]}…"
                if d.get("by_subject")
                else f"record {str(d.get('record_id'))[:18]}…"
            )
            + f" (purpose: {json.dumps(d.get('purpose'), ensure_ascii=False)}, "
            f"deadline {d.get('deadline')})"
        ),
        "request.approved": lambda: (
            f"{d.get('owner')} approved"
            + (" (unconditional category)" if d.get("unconditional") else "")
            + f": grant #{d.get('grant_id')}, expires {d.get('expires_at')}, "
            + (
                plural(d["max_uses"], "use")
                if isinstance(d.get("max_uses"), int)
                else f"{d.get('max_uses')} uses"
            )
        ),
        "request.denied": lambda: (
            f"{d.get('owner')} denied: {json.dumps(d.get('reason'), ensure_ascii=False)}"
        ),
        "grant.revoked": lambda: (
            f"grant #{d.get('grant_id')} ({d.get('requester')} ← {d.get('owner')}) revoked: "
            f"{json.dumps(d.get('reason'), ensure_ascii=False)}"
        ),
        "request.reminded": lambda: (
            f"{d.get('requester')} reminds you (reminder {d.get('reminder_count')})"
        ),
        "request.escalated": lambda: (
            f"{d.get('requester')} escalated to the supervisors "
            f"(escalation {d.get('escalation_count')})"
        ),
        "request.deadline_approaching": lambda: (
            f"the deadline of {d.get('requester')}'s request is {d.get('deadline')}"
        ),
        "subject.delivered": lambda: (
            f"{d.get('category')} record {str(d.get('record_id'))[:18]}… delivered to "
            f"{d.get('requester')} (receipt {d.get('receipt_seq')}, purpose: "
            f"{json.dumps(d.get('purpose'), ensure_ascii=False)}): tell subject "
            f"{str(d.get('subject_ref'))[:18]}…"
        ),
    }.get(kind, lambda: json.dumps(d, ensure_ascii=False, sort_keys=True))()
    when = str(n.get("created_at", ""))[:19]
    return printable(f"#{n.get('id')} {when} {kind} request #{rid}: {what}")


def _show(ctx: Ctx, n: dict[str, Any]) -> None:
    if ctx.json_out:
        echo(json.dumps(n, sort_keys=True))
    else:
        echo(describe(n))


def _retryable(exc: GovShareError) -> bool:
    """A broker that is gone, restarting or busy: worth trying again (a bad token
    or cursor is not)."""
    return isinstance(exc, BrokerUnreachable) or exc.status in (502, 503, 504)


class _Follower:
    """One ``request watch``: its cursor survives reconnections."""

    def __init__(self, ctx: Ctx, client: BrokerClient, after: int | None) -> None:
        self.ctx, self.client, self.cursor = ctx, client, after
        self.announced = False

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "text/event-stream"}
        if self.cursor is not None:
            headers["Last-Event-ID"] = str(self.cursor)
        return headers

    def _on(self, event_id: str | None, kind: str, data: str) -> None:
        if event_id is not None and event_id.isdigit():
            self.cursor = int(event_id)
        if kind == "ready":  # connected: say so once, on stderr
            if not self.announced:
                echo(
                    f"Following {self.client.code}'s notifications after #{self.cursor} "
                    "(Ctrl-C stops).",
                    err=True,
                )
                self.announced = True
            return
        try:
            item = json.loads(data)
        except ValueError:
            return
        if isinstance(item, dict):
            _show(self.ctx, item)

    def run(self) -> None:
        import httpx

        timeout = httpx.Timeout(READ_TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS)
        backoff = 1.0
        while True:
            try:
                with self.client.stream(
                    "GET", "/v1/events", headers=self._headers(), timeout=timeout
                ) as resp:
                    backoff = 1.0
                    for event in parse_sse(resp.iter_lines()):
                        self._on(*event)
            except GovShareError as exc:
                if not _retryable(exc):
                    raise
                echo(f"{printable(exc.message)} Reconnecting in {backoff:.0f}s…", err=True)
                time.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
            # else the broker ended the stream (a restart, its age limit): resume at once


def _backlog(ctx: Ctx, client: BrokerClient, after: int) -> None:
    while True:
        page = client.call("GET", "/v1/notifications", params={"after": after, "limit": 500}).json()
        for item in page:
            _show(ctx, item)
            after = int(item["id"])
        if len(page) < 500:
            return


@click.command("watch")
@click.option(
    "--after",
    type=click.IntRange(0),
    default=None,
    metavar="ID",
    help="Start after this notification id (0: from the first; default: from now on).",
)
@click.option(
    "--follow/--no-follow",
    default=True,
    show_default=True,
    help="Keep following; --no-follow prints what is there and exits.",
)
@broker_options
@common_options
@pass_ctx
def watch(
    ctx: Ctx,
    after: int | None,
    follow: bool,
    dept: str,
    token: str | None,
    broker_url: str | None,
) -> None:
    """Follow your department's notifications: incoming requests, decisions on
    yours, revocations, reminders, escalations, deadlines approaching."""
    with open_client(ctx, dept, token, broker_url) as client:
        if not follow:
            _backlog(ctx, client, after or 0)
            return
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: a clean stop, status 0
            _Follower(ctx, client, after).run()


def register(group: click.Group) -> None:
    """Attach ``watch`` to ``group`` (the ``request`` group)."""
    group.add_command(watch)
