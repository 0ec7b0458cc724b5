"""``govshare grant …``: consent, by a department's administrator.

Approving, denying and revoking are transactions signed with the owning
department's *administrator* key, read from its keystore: that signature is the
consent evidence on chain. A broker key cannot consent, and neither can another
department's administrator — the contract refuses both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from govshare.cli._chain import admin_of, confirm, open_ledger, rpc_option, yes_option
from govshare.cli.main import Ctx, common_options, echo, from_settings, pass_ctx
from govshare.profile import normalise_code
from govshare.util import MAX_GRANT_EXPIRY, iso, parse_duration, printable

# The broker's consent flow and the chain stack are imported when a command runs.
if TYPE_CHECKING:
    from govshare.broker import consent
    from govshare.chain.contracts import AccessRequest, GrantStatus

#: The states ``grant list --status`` takes: RequestStatus's values but "none" (a
#: test checks).
STATUSES = ("pending", "approved", "denied", "revoked")


def dept_option(f: Any) -> Any:
    return click.option(
        "--dept",
        "--as",
        "dept_code",
        required=True,
        default=from_settings("dept"),
        help="Your department (its administrator key signs).",
    )(f)


@click.group()
@common_options
def grant() -> None:
    """Consent: approve, deny or revoke access to your department's records."""


def request_dict(r: AccessRequest, st: GrantStatus) -> dict[str, Any]:
    from govshare.chain.contracts import RequestStatus

    d: dict[str, Any] = r.to_dict()
    d["status"] = r.status.value
    d["record_id"] = "0x" + r.record_id.hex()
    d["scope"] = r.scope_label if r.status is not RequestStatus.PENDING else None
    for k in ["deadline", "requested_at", "decided_at", "expires_at", "revoked_at"]:
        d[f"{k}_iso"] = iso(d[k])
    d["usable"] = st.usable
    d["usable_reason"] = st.reason.value
    return d


def _decision_dict(done: consent.Decision) -> dict[str, Any]:
    return {**request_dict(done.request, done.grant), "tx_hash": done.tx_hash}


def asked_for(r: AccessRequest, *, short: bool = False) -> str:
    """What request ``r`` asks for: a record, or the owner's records of a category
    about a subject (named by its keyed reference only)."""
    if r.by_subject:
        assert r.subject_ref is not None
        ref = "0x" + r.subject_ref.hex()
        if short:
            return f"{printable(r.category or '')} about {ref[:10]}…" + (
                " (latest only)" if r.latest_only else ""
            )
        scope = (
            "only the version current when granted"
            if r.latest_only
            else "the version current when granted, and those published while it is valid"
        )
        return f"its {printable(r.category or '')} records about the subject {ref} ({scope})"
    rid = "0x" + r.record_id.hex()
    return rid[:18] + "…" if short else f"record {rid}"


def _describe(r: AccessRequest) -> str:
    return (
        f"Request #{r.id}: {r.requester_department} asks {r.owner_department} for "
        f"{asked_for(r)}\n  purpose: {printable(r.purpose)}"
        f"\n  legal basis: {printable(r.legal_basis or '-')}"
        f"\n  asked by {r.requested_by} at {iso(r.requested_at)}, deadline {iso(r.deadline)}"
    )


@grant.command("approve")
@click.argument("request_id", metavar="REQUEST", type=int)
@click.option(
    "--expires", required=True, help="How long the grant lasts, e.g. 30d, 12h (at most 3650d)."
)
@click.option(
    "--max-uses",
    type=click.IntRange(1, 2**32 - 1),
    required=True,
    help="How many times the requester may fetch the record.",
)
@click.option(
    "--scope",
    default="full",
    show_default=True,
    help="What the grant covers (a short label recorded on chain).",
)
@dept_option
@rpc_option
@yes_option
@common_options
@pass_ctx
def approve_cmd(
    ctx: Ctx,
    request_id: int,
    expires: str,
    max_uses: int,
    scope: str,
    dept_code: str,
    rpc: str | None,
    yes: bool,
) -> None:
    """Approve REQUEST: a grant for --max-uses fetches until --expires from now."""
    from govshare.broker import consent
    from govshare.broker.signed import department_journal

    seconds = parse_duration(expires, MAX_GRANT_EXPIRY, what="grant lifetime")
    code = normalise_code(dept_code)
    ledger = open_ledger(ctx, rpc)
    plan = consent.prepare_approval(
        ledger, request_id, dept=code, max_uses=max_uses, expires_in=seconds
    )
    _, admin = admin_of(ctx, code)
    r = plan.request
    confirm(yes, f"{_describe(r)}\nApprove it for {max_uses} use(s) until {iso(plan.expires_at)}?")
    with department_journal(ctx.home, code, ledger) as journal:
        done = consent.approve(
            ledger,
            admin,
            request_id,
            max_uses=max_uses,
            expires_at=plan.expires_at,
            scope=scope,
            dept=code,
            journal=journal,
        )
    ctx.emit(
        _decision_dict(done),
        f"Approved request #{request_id} for {r.requester_department}: "
        f"{max_uses} use(s) until {iso(plan.expires_at)} (grant #{request_id}).",
    )


@grant.command("deny")
@click.argument("request_id", metavar="REQUEST", type=int)
@click.option("--reason", required=True, help="Why (recorded on chain for the requester).")
@dept_option
@rpc_option
@yes_option
@common_options
@pass_ctx
def deny_cmd(
    ctx: Ctx, request_id: int, reason: str, dept_code: str, rpc: str | None, yes: bool
) -> None:
    """Deny REQUEST, with a reason."""
    from govshare.broker import consent
    from govshare.broker.signed import department_journal

    code = normalise_code(dept_code)
    ledger = open_ledger(ctx, rpc)
    r = consent.prepare_denial(ledger, request_id, reason, dept=code)
    _, admin = admin_of(ctx, code)
    confirm(yes, f"{_describe(r)}\nDeny it?")
    with department_journal(ctx.home, code, ledger) as journal:
        done = consent.deny(ledger, admin, request_id, reason, dept=code, journal=journal)
    ctx.emit(_decision_dict(done), f"Denied request #{request_id} of {r.requester_department}.")


@grant.command("revoke")
@click.argument("grant_id", metavar="GRANT", type=int)
@click.option("--reason", required=True, help="Why (recorded on chain).")
@dept_option
@rpc_option
@yes_option
@common_options
@pass_ctx
def revoke_cmd(
    ctx: Ctx, grant_id: int, reason: str, dept_code: str, rpc: str | None, yes: bool
) -> None:
    """Revoke GRANT: from the next block the owner's broker refuses it."""
    from govshare.broker import consent
    from govshare.broker.signed import department_journal

    code = normalise_code(dept_code)
    ledger = open_ledger(ctx, rpc)
    r = consent.prepare_revocation(ledger, grant_id, reason, dept=code)
    _, admin = admin_of(ctx, code)
    confirm(
        yes, f"{_describe(r)}\nRevoke grant #{grant_id}? Data already delivered stays delivered."
    )
    with department_journal(ctx.home, code, ledger) as journal:
        done = consent.revoke(ledger, admin, grant_id, reason, dept=code, journal=journal)
    ctx.emit(_decision_dict(done), f"Revoked grant #{grant_id} of {r.requester_department}.")


@grant.command("list")
@click.option(
    "--dept",
    "dept_code",
    default=from_settings("dept"),
    help="Only requests to or from this department.",
)
@click.option(
    "--status",
    type=click.Choice(STATUSES),
    default=None,
    help="Only requests in this state.",
)
@click.option(
    "--incoming",
    "direction",
    flag_value="incoming",
    help="Only requests asking this department (needs --dept).",
)
@click.option(
    "--outgoing",
    "direction",
    flag_value="outgoing",
    help="Only requests this department made (needs --dept).",
)
@rpc_option
@common_options
@pass_ctx
def list_cmd(
    ctx: Ctx, dept_code: str | None, status: str | None, direction: str | None, rpc: str | None
) -> None:
    """Requests and grants on chain (pending ones are what waits for your decision).
    Read through this home's ledger mirror (HOME/audit/index.db), then the chain."""
    from govshare.broker import consent

    if direction and not dept_code:
        raise click.UsageError("--incoming/--outgoing need --dept CODE.")
    from govshare.audit.view import open_index
    from govshare.home import mirror_path

    code = normalise_code(dept_code) if dept_code else None
    ledger = open_ledger(ctx, rpc)
    mirror = open_index(ledger, mirror_path(ctx.home))
    try:
        rows = consent.list_requests(ledger, mirror, dept=code, direction=direction, status=status)
    finally:
        mirror.close()
    out = [{**request_dict(r, g), "asked": asked_for(r, short=True)} for r, g in rows]

    def human() -> None:
        from rich.console import Console

        from govshare.cli._render import SafeTable

        if not out:
            echo("No requests.")
            return
        t = SafeTable(title="Requests and grants")
        for col in ["id", "from", "to", "record", "purpose", "status", "uses", "expires"]:
            t.add_column(col)
        for d in out:
            state = d["status"]
            if state == "approved" and not d.get("usable"):
                state = f"approved ({d['usable_reason']})"
            t.add_row(
                str(d["id"]),
                d["requester_department"],
                d["owner_department"],
                d["asked"],
                d["purpose"],
                state,
                f"{d['used_count']}/{d['max_uses']}" if d["max_uses"] else "-",
                d["expires_at_iso"],
            )
        Console(width=200).print(t)

    ctx.emit({"requests": out}, human)
