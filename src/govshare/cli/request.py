"""``govshare request create|list``: asking another department for a record, and
the requests that concern yours, through the department's broker API.

A request is a transaction from your department's broker key; the owning
department's administrator answers it with ``govshare grant approve|deny``.
"""

from __future__ import annotations

import uuid
from typing import Any

import click

from govshare.cli._client import broker_options, check_record_id, open_client
from govshare.cli.main import Ctx, common_options, echo, pass_ctx
from govshare.profile import normalise_code
from govshare.util import MAX_REQUEST_DEADLINE, parse_duration

_STATUSES = ["pending", "approved", "denied", "revoked", "expired"]


@click.group()
@common_options
def request() -> None:
    """Access requests: ask another department for a record; list yours."""


@request.command("create")
@click.option("--owner", required=True, metavar="CODE", help="The department holding the record.")
@click.option(
    "--record", "record_id", default=None, metavar="ID", help="The record's id (or --category "
    "and --subject)."
)  # fmt: skip
@click.option(
    "--category", default=None, help="With --subject: the owner's records of this category."
)
@click.option(
    "--subject",
    default=None,
    metavar="ID",
    help="With --category: the records about this citizen or enterprise (only its keyed "
    "reference leaves your broker).",
)
@click.option(
    "--latest-only",
    is_flag=True,
    help="By subject: only the version current when granted (default: that one and those "
    "published while the grant is valid).",
)
@click.option("--purpose", required=True, help="Why you need it (recorded on chain).")
@click.option("--legal-basis", default="", help="The law or regulation you rely on.")
@click.option(
    "--deadline",
    default=None,
    help="How long the owner has to decide: 30m, 12h, 3d, 2w (default 3d, at most 365d).",
)
@click.option(
    "--idempotency-key",
    default=None,
    help="Retry an interrupted request with the same key (default: a new key).",
)
@broker_options
@common_options
@pass_ctx
def create_cmd(
    ctx: Ctx,
    owner: str,
    record_id: str | None,
    category: str | None,
    subject: str | None,
    latest_only: bool,
    purpose: str,
    legal_basis: str,
    deadline: str | None,
    idempotency_key: str | None,
    dept: str,
    token: str | None,
    broker_url: str | None,
) -> None:
    """Ask department OWNER for a record (--record ID), or for its records of a
    category about a subject (--category C --subject ID), with a purpose."""
    owner_code = normalise_code(owner)
    body: dict[str, Any] = {"owner": owner_code, "purpose": purpose, "legal_basis": legal_basis}
    what = _what_is_asked(record_id, category, subject, latest_only)
    body.update(what)
    if deadline:  # a clear error before any network call
        parse_duration(deadline, MAX_REQUEST_DEADLINE, what="deadline")
        body["deadline"] = deadline
    key = (idempotency_key or "").strip() or f"cli-{uuid.uuid4().hex}"
    with open_client(ctx, dept, token, broker_url) as client:
        out = client.call(
            "POST", "/v1/requests", json=body, headers={"Idempotency-Key": key}
        ).json()
    shown = {k: v for k, v in what.items() if k != "subject"}  # the id stays off the output
    out = {**out, "owner": owner_code, **shown, "idempotency_key": key}
    ctx.emit(out, _created_text(out, client.code, owner_code, record_id, category))


def _what_is_asked(
    record_id: str | None, category: str | None, subject: str | None, latest_only: bool
) -> dict[str, Any]:
    if record_id and (category or subject):
        raise click.UsageError("Ask for one record (--record) or by subject, not both.")
    if record_id:
        if latest_only:
            raise click.UsageError("--latest-only goes with --category and --subject.")
        return {"record_id": check_record_id(record_id)}
    if not (category and subject):
        raise click.UsageError(
            "Say what you ask for: --record ID, or --category C and --subject ID."
        )
    return {"category": category, "subject": subject, "latest_only": latest_only}


def _created_text(
    out: dict[str, Any], broker: str, owner: str, record_id: str | None, category: str | None
) -> str:
    req_id = out.get("request_id")
    if req_id is None:
        return (
            f"Request accepted by {broker}'s broker (operation {out.get('operation_id')}) "
            "but not on chain yet; see `govshare request list`."
        )
    again = " (already sent under this idempotency key)" if out.get("replayed") else ""
    asked = f"record {record_id}" if record_id else f"{category} records about the subject"
    if out.get("granted"):
        return (
            f"Request #{req_id} for {owner}'s {asked}{again}: granted at once by the contract "
            f"({owner} shares this category unconditionally). Fetch with "
            + (
                f"`govshare record fetch {record_id}`."
                if record_id
                else f"`govshare record fetch --owner {owner} --category {category} "
                "--subject ID -o FILE`."
            )
        )
    return (
        f"Request #{req_id} sent to {owner} for {'' if record_id else 'its '}{asked}{again}.\n"
        f"{owner}'s administrator decides: "
        f"govshare grant approve {req_id} --dept {owner} --expires 30d --max-uses 1"
    )


@request.command("list")
@click.option(
    "--incoming", "direction", flag_value="incoming", help="Only requests for your records."
)
@click.option("--outgoing", "direction", flag_value="outgoing", help="Only your own requests.")
@click.option("--status", type=click.Choice(_STATUSES), default=None, help="Only this state.")
@click.option("--record", "record_id", default=None, metavar="ID", help="Only for this record.")
@broker_options
@common_options
@pass_ctx
def list_cmd(
    ctx: Ctx,
    direction: str | None,
    status: str | None,
    record_id: str | None,
    dept: str,
    token: str | None,
    broker_url: str | None,
) -> None:
    """Requests for your department's records and by it, newest first."""
    params: dict[str, Any] = {}
    if direction:
        params["direction"] = direction
    if status:
        params["status"] = status
    if record_id:
        params["record_id"] = check_record_id(record_id)
    with open_client(ctx, dept, token, broker_url) as client:
        resp = client.call("GET", "/v1/requests", params=params)
    rows = resp.json()
    synced = resp.headers.get("govshare-synced") != "false"
    if not synced:
        echo("Warning: the chain did not answer; this list may be out of date.", err=True)

    def human() -> None:
        from rich.console import Console

        from govshare.cli._render import SafeTable

        if not rows:
            echo("No requests.")
            return
        t = SafeTable(title=f"Requests concerning {client.code}")
        for col in ["id", "from", "to", "record", "purpose", "status", "uses", "expires"]:
            t.add_column(col)
        for r in rows:
            t.add_row(
                str(r["id"]),
                r["requester"],
                r["owner"],
                _asked(r),
                r["purpose"],
                r["status"] + (f" ({r['reason']})" if r.get("reason") else ""),
                f"{r['uses']}/{r['max_uses']}" if r.get("max_uses") else "-",
                _when(r.get("expires_at")),
            )
        Console(width=220).print(t)

    ctx.emit(rows, human)


def _asked(r: dict[str, Any]) -> str:
    """What a request asks for, in a table cell."""
    if r.get("subject_ref"):
        latest = ", latest only" if r.get("latest_only") else ""
        return f"{r.get('category')} about {str(r['subject_ref'])[:10]}…{latest}"
    return str(r["record_id"])[:18] + "…"


def _when(text: str | None) -> str:
    """An API time for the table: to the second; the broker's stand-in for a time
    beyond the year 9999 (9999-12-31T23:59:59) reads as "never"."""
    if not text:
        return "-"
    return "never" if text.startswith("9999-12-31T23:59:59") else text[:19]


# Supervision of overdue requests (催办 / 督办): `govshare request remind|escalate`.
from govshare.cli import supervise  # noqa: E402 - registered once the group exists

supervise.register(request)

# Following the department's notifications: `govshare request watch`.
from govshare.cli import watch  # noqa: E402 - registered once the group exists

watch.register(request)
