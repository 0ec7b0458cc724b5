"""``govshare webhook add|list|remove|deliveries``: where a department's broker
POSTs its notifications, signed with HMAC-SHA256 (docs/events.md). Administrators
only, through the broker API: the token is ``--token``, ``GOVSHARE_TOKEN``, else
the administrator's token ``govshare dev up`` saved (``api-admin.token``), else
the one ``govshare login`` saved.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from govshare.cli._client import (
    ADMIN_TOKEN_FILE,
    BrokerClient,
    broker_options,
    open_client,
    token_path,
)
from govshare.cli.main import Ctx, common_options, echo, pass_ctx
from govshare.errors import InputError
from govshare.profile import normalise_code
from govshare.util import printable


def _client(ctx: Ctx, dept: str, token: str | None, broker_url: str | None) -> BrokerClient:
    if not token:
        saved = token_path(ctx.home, normalise_code(dept), ADMIN_TOKEN_FILE)
        if saved.is_file():
            token = saved.read_text().strip() or None
    return open_client(ctx, dept, token, broker_url)


def _read_secret(path: str) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"Cannot read the secret file {path} ({type(exc).__name__}).") from None
    lines = text.splitlines()
    secret = lines[0].strip() if lines else ""
    if not secret:
        raise InputError(f"The secret file {path} is empty: its first line is the secret.")
    return secret


@click.group("webhook")
@common_options
def webhook() -> None:
    """Signed webhooks: your department's notifications POSTed to a URL."""


@webhook.command("add")
@click.argument("url")
@click.option(
    "--secret-file",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="Sign with the secret on this file's first line (default: one is generated and "
    "shown once).",
)
@broker_options
@common_options
@pass_ctx
def add_cmd(
    ctx: Ctx,
    url: str,
    secret_file: str | None,
    dept: str,
    token: str | None,
    broker_url: str | None,
) -> None:
    """POST your department's notifications from now on to URL (http or https)."""
    body: dict[str, Any] = {"url": url}
    if secret_file:
        body["secret"] = _read_secret(secret_file)
    with _client(ctx, dept, token, broker_url) as client:
        out = client.call("POST", "/v1/webhooks", json=body).json()
    hook = out["webhook"]
    if out.get("generated"):
        tail = (
            "Its signing secret (shown only now; give it to the receiver, which checks "
            f"Govshare-Webhook-Signature with it):\n\n  {out['secret']}\n"
        )
    else:
        tail = "It signs with the secret of the file given."
        out = {k: v for k, v in out.items() if k != "secret"}  # the caller has it already
    ctx.emit(
        out,
        f"Webhook {hook['id']} added for {client.code}: {printable(hook['url'])}\n{tail}",
    )


@webhook.command("list")
@broker_options
@common_options
@pass_ctx
def list_cmd(ctx: Ctx, dept: str, token: str | None, broker_url: str | None) -> None:
    """Your department's webhooks and how their deliveries fare."""
    with _client(ctx, dept, token, broker_url) as client:
        rows = client.call("GET", "/v1/webhooks").json()

    def human() -> None:
        from rich.console import Console

        from govshare.cli._render import SafeTable

        if not rows:
            echo(f"No webhooks for {client.code}.")
            return
        t = SafeTable(title=f"Webhooks of {client.code}")
        for col in ["id", "url", "secret", "pending", "done", "failed", "last"]:
            t.add_column(col)
        for r in rows:
            last = r.get("last_error") or (str(r["last_status"]) if r.get("last_status") else "-")
            t.add_row(
                str(r["id"]),
                r["url"],
                r["secret_hint"],
                str(r["pending"]),
                str(r["done"]),
                str(r["failed"]),
                last,
            )
        Console(width=200).print(t)

    ctx.emit(rows, human)


@webhook.command("remove")
@click.argument("webhook_id", type=click.IntRange(1, 2**31 - 1), metavar="ID")
@broker_options
@common_options
@pass_ctx
def remove_cmd(
    ctx: Ctx, webhook_id: int, dept: str, token: str | None, broker_url: str | None
) -> None:
    """Remove webhook ID: nothing more is sent to it, its secret is forgotten."""
    with _client(ctx, dept, token, broker_url) as client:
        out = client.call("DELETE", f"/v1/webhooks/{webhook_id}").json()
    ctx.emit(out, f"Webhook {webhook_id} removed ({printable(out['url'])}).")


@webhook.command("deliveries")
@click.argument("webhook_id", type=click.IntRange(1, 2**31 - 1), metavar="ID")
@broker_options
@common_options
@pass_ctx
def deliveries_cmd(
    ctx: Ctx, webhook_id: int, dept: str, token: str | None, broker_url: str | None
) -> None:
    """Webhook ID's delivery log, newest first."""
    with _client(ctx, dept, token, broker_url) as client:
        rows = client.call("GET", f"/v1/webhooks/{webhook_id}/deliveries").json()

    def human() -> None:
        from rich.console import Console

        from govshare.cli._render import SafeTable

        t = SafeTable(title=f"Deliveries of webhook {webhook_id}")
        for col in ["id", "notification", "state", "attempts", "last", "next attempt"]:
            t.add_column(col)
        for r in rows:
            last = r.get("last_error") or (str(r["last_status"]) if r.get("last_status") else "-")
            nxt = r["next_attempt_at"][:19] if r["state"] == "pending" else "-"
            t.add_row(
                str(r["id"]), str(r["notification_id"]), r["state"], str(r["attempts"]), last, nxt
            )
        Console(width=200).print(t)

    ctx.emit(rows, human)
