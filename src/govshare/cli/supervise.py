"""``govshare request remind|escalate``: the supervision loop (催办 → 督办).

A request carries a deadline. Once it has passed with no decision, the
requesting department may remind the owner (``remind``, 催办) and escalate to the
consortium's supervisors (``escalate``, 督办): each is a transaction, signed by
the requesting department's administrator key (or, with ``--key broker``, its
broker key), recorded on chain with a count and a time. The owner's decision
closes the loop (反馈): after it, both are refused. ``govshare audit overdue``
lists what is still open.

The commands live here and are attached to the ``request`` group with
:func:`register`; ``python -m govshare.cli.supervise remind|escalate ...`` runs
them on their own.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from govshare.cli.main import Ctx, GovShareGroup, common_options, from_settings, pass_ctx


def _options(f: Any) -> Any:
    f = click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")(f)
    f = click.option("--rpc", default=from_settings("rpc"), help="Chain JSON-RPC URL.")(f)
    f = click.option(
        "--key",
        type=click.Choice(["admin", "broker"]),
        default="admin",
        show_default=True,
        help="Sign with the department's administrator key or its broker key.",
    )(f)
    f = click.option(
        "--as",
        "--dept",
        "dept_code",
        required=True,
        default=from_settings("dept"),
        help="Your department: the one that made the request.",
    )(f)
    return f


def _signer(ctx: Ctx, code: str, key: str) -> Any:
    from govshare.profile import load_profile

    prof = load_profile(ctx.home, code)
    passwords = ctx.settings.passwords()
    if key == "admin":
        return prof.unlock_admin(passwords=passwords)
    return prof.unlock_broker(passwords=passwords)


def _describe(r: Any) -> str:
    from govshare.util import iso

    return (
        f"Request #{r.id}: {r.requester_department} asked {r.owner_department} on "
        f"{iso(r.requested_at)}, deadline {iso(r.deadline)}; {r.reminder_count} reminder(s), "
        f"{r.escalation_count} escalation(s) so far."
    )


def _result(done: Any) -> dict[str, Any]:
    r = done.request
    return {
        "request_id": r.id,
        "requester": r.requester_department,
        "owner": r.owner_department,
        "deadline": r.deadline,
        "reminder_count": r.reminder_count,
        "escalation_count": r.escalation_count,
        "last_reminded_at": r.last_reminded_at,
        "last_escalated_at": r.last_escalated_at,
        "tx_hash": done.tx_hash,
        "block_number": done.block_number,
    }


@click.command("remind")
@click.argument("request_id", metavar="REQUEST", type=int)
@_options
@common_options
@pass_ctx
def remind(ctx: Ctx, request_id: int, dept_code: str, key: str, rpc: str | None, yes: bool) -> None:
    """Remind the owner of overdue REQUEST (催办): an on-chain event."""
    from govshare.broker import consent
    from govshare.broker.signed import department_journal
    from govshare.cli._chain import confirm, open_ledger
    from govshare.profile import normalise_code

    code = normalise_code(dept_code)
    ledger = open_ledger(ctx, rpc)
    r = consent.prepare_reminder(ledger, request_id, dept=code)
    account = _signer(ctx, code, key)
    confirm(yes, f"{_describe(r)}\nRemind {r.owner_department}?")
    with department_journal(ctx.home, code, ledger) as journal:
        done = consent.remind(ledger, account, request_id, dept=code, journal=journal)
    out = _result(done)
    ctx.emit(
        out,
        f"Reminded {r.owner_department} of request #{request_id} "
        f"(reminder {out['reminder_count']}, transaction {done.tx_hash}).",
    )


@click.command("escalate")
@click.argument("request_id", metavar="REQUEST", type=int)
@_options
@common_options
@pass_ctx
def escalate(
    ctx: Ctx, request_id: int, dept_code: str, key: str, rpc: str | None, yes: bool
) -> None:
    """Escalate overdue REQUEST to the consortium's supervisors (督办)."""
    from govshare.broker import consent
    from govshare.broker.signed import department_journal
    from govshare.cli._chain import confirm, open_ledger
    from govshare.profile import normalise_code

    code = normalise_code(dept_code)
    ledger = open_ledger(ctx, rpc)
    plan = consent.prepare_escalation(ledger, request_id, dept=code)
    account = _signer(ctx, code, key)
    confirm(
        yes,
        f"{_describe(plan.request)}\nEscalate it to the supervisors "
        f"({', '.join(plan.supervisors)})?",
    )
    with department_journal(ctx.home, code, ledger) as journal:
        done = consent.escalate(ledger, account, request_id, dept=code, journal=journal)
    out = {**_result(done), "supervisors": list(done.supervisors)}
    ctx.emit(
        out,
        f"Escalated request #{request_id} of {code} to {len(done.supervisors)} supervisor(s) "
        f"(escalation {out['escalation_count']}, transaction {done.tx_hash}).",
    )


def register(group: click.Group) -> None:
    """Attach ``remind`` and ``escalate`` to ``group`` (the ``request`` group)."""
    group.add_command(remind)
    group.add_command(escalate)


@click.group(cls=GovShareGroup, name="request")
@common_options
def _standalone() -> None:
    """Supervision of overdue requests (remind, escalate)."""


register(_standalone)

if __name__ == "__main__":
    sys.exit(_standalone.main(prog_name="govshare request"))
