"""``govshare dept …``: the consortium's members and their governance.

Reading needs nothing but the deployment file. Proposing, approving and
rotating are transactions signed with the acting department's *administrator*
key (``--as CODE``): a broker key cannot vote.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from govshare.cli._chain import (
    admin_of,
    as_option,
    confirm,
    dev_funder,
    open_ledger,
    rpc_option,
    yes_option,
)
from govshare.cli.main import Ctx, common_options, echo, pass_ctx
from govshare.errors import InputError
from govshare.profile import load_profile, normalise_code
from govshare.util import iso, printable

# The governance flow and the chain stack are imported when a command runs.
if TYPE_CHECKING:
    from govshare.broker.governance import ProposalOutcome, ProposalView
    from govshare.chain.contracts import DepartmentInit


@click.group()
@common_options
def dept() -> None:
    """Member departments: list, show, propose, approve, rotate keys."""


def _dept_dict(d: Any) -> dict[str, Any]:
    out: dict[str, Any] = d.to_dict()
    out["status"] = d.status.value
    out["encryption_key"] = "0x" + bytes(d.encryption_key).hex()
    out["joined"] = iso(d.joined_at)
    out["updated"] = iso(d.updated_at)
    return out


@dept.command("list")
@rpc_option
@common_options
@pass_ctx
def list_cmd(ctx: Ctx, rpc: str | None) -> None:
    """Every department ever registered, with its status."""
    ledger = open_ledger(ctx, rpc)
    depts = ledger.registry.departments()
    rows = [_dept_dict(d) for d in depts]
    threshold = ledger.registry.threshold()

    def human() -> None:
        from rich.console import Console

        from govshare.cli._render import SafeTable

        t = SafeTable(title=f"Departments (threshold {threshold})")
        for col in ["code", "name", "status", "broker", "admins", "endpoint"]:
            t.add_column(col)
        for r in rows:
            t.add_row(
                r["code"], r["name"], r["status"], r["broker"], str(len(r["admins"])), r["endpoint"]
            )
        Console(width=200).print(t)

    ctx.emit({"departments": rows, "threshold": threshold}, human)


@dept.command("show")
@click.argument("code")
@rpc_option
@common_options
@pass_ctx
def show_cmd(ctx: Ctx, code: str, rpc: str | None) -> None:
    """One department's registry entry."""
    ledger = open_ledger(ctx, rpc)
    d = _dept_dict(ledger.registry.get_department(normalise_code(code)))
    lines = [f"{k:<15} {printable(v)}" for k, v in d.items() if k != "admins"]
    lines += [f"{'admin':<15} {a}" for a in d["admins"]]
    ctx.emit(d, "\n".join(lines))


def _proposal_dict(v: ProposalView) -> dict[str, Any]:
    p = v.proposal
    out: dict[str, Any] = p.to_dict()
    out["kind"] = p.kind.value
    out["status"] = p.status.value
    out["approved_by"] = list(v.approved_by)
    out["threshold"] = v.threshold
    out["expires"] = iso(p.expires_at)
    return out


def _describe(p: dict[str, Any]) -> str:
    kind = p["kind"]
    target = p.get("target_department") or p.get("target_account") or p.get("new_threshold")
    return f"#{p['id']} {kind} {target} by {p['proposer_department']}"


@dept.command("proposals")
@click.option("--all", "show_all", is_flag=True, help="Include executed and expired proposals.")
@rpc_option
@common_options
@pass_ctx
def proposals_cmd(ctx: Ctx, show_all: bool, rpc: str | None) -> None:
    """Open proposals and who approved them."""
    from govshare.broker import governance

    ledger = open_ledger(ctx, rpc)
    threshold = ledger.registry.threshold()
    items = [_proposal_dict(v) for v in governance.list_proposals(ledger, include_closed=show_all)]

    def human() -> None:
        if not items:
            echo("No open proposals." if not show_all else "No proposals.")
        for p in items:
            echo(
                f"{_describe(p)} — {p['status']}, approvals {p['approval_count']}/{threshold} "
                f"({', '.join(p['approved_by'])}), expires {p['expires']}"
            )

    ctx.emit({"proposals": items, "threshold": threshold}, human)


# -- proposing ------------------------------------------------------------------


@dept.group("propose")
@common_options
def propose() -> None:
    """Propose a change; it takes effect when enough departments approve."""


def _after_propose(ctx: Ctx, out: ProposalOutcome, what: str) -> None:
    p = _proposal_dict(out.view)
    pid = p["id"]
    data = {**p, "tx_hash": out.tx_hash, "block": out.block_number}
    done = out.executed
    ctx.emit(
        data,
        f"Proposal #{pid} to {what} "
        + (
            "executed at once (threshold reached)."
            if done
            else f"created: {p['approval_count']} of {p['threshold']} approvals. Other departments "
            f"approve with `govshare dept approve {pid} --as CODE`."
        ),
    )


def _public_entry(ctx: Ctx, code: str, from_file: str | None) -> DepartmentInit:
    from govshare.cli.consortium import _init_from_public

    if from_file:
        try:
            entry = json.loads(Path(from_file).read_text())
        except OSError as exc:
            raise InputError(f"Cannot read {from_file} ({exc.strerror}).") from None
        except ValueError:
            raise InputError(f"{from_file} is not valid JSON.") from None
        init = _init_from_public(entry, from_file)
        if init.code != normalise_code(code):
            raise InputError(f"{from_file} describes {init.code}, not {code.upper()}.")
        return init
    prof = load_profile(ctx.home, code)
    return _init_from_public(prof.public_info(), code)


@propose.command("add")
@click.argument("code")
@click.option(
    "--from",
    "from_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="The new department's public entry (`govshare init --json` output); "
    "default: its profile in this home.",
)
@as_option
@rpc_option
@yes_option
@common_options
@pass_ctx
def propose_add(
    ctx: Ctx, code: str, from_file: str | None, as_code: str, rpc: str | None, yes: bool
) -> None:
    """Propose admitting department CODE."""
    from govshare.broker import governance

    init = _public_entry(ctx, code, from_file)
    ledger = open_ledger(ctx, rpc)
    _, admin = admin_of(ctx, as_code)
    confirm(yes, f"Propose adding {init.code} ({init.name}) as {as_code.upper()}?")
    out = governance.propose_add_department(ledger, admin, init, fund=dev_funder(ledger))
    _after_propose(ctx, out, f"add {init.code}")


Propose = Callable[[Any, Any, str], "ProposalOutcome"]


def _target_proposal(verb: str, proposer: str, help_text: str, *, account: bool) -> click.Command:
    """A ``propose VERB TARGET --as CODE`` command: TARGET is a department code,
    or (``account``) a supervisor account; ``proposer`` names the function of
    :mod:`govshare.broker.governance` that proposes it (imported when it runs)."""

    @click.argument("target", metavar="ACCOUNT" if account else "CODE")
    @as_option
    @rpc_option
    @yes_option
    @common_options
    @pass_ctx
    def cmd(ctx: Ctx, target: str, as_code: str, rpc: str | None, yes: bool) -> None:
        from govshare.broker import governance

        if not account:
            target = normalise_code(target)
        ledger = open_ledger(ctx, rpc)
        _, admin = admin_of(ctx, as_code)
        confirm(yes, f"Propose to {verb} {target} as {as_code.upper()}?")
        propose: Propose = getattr(governance, proposer)
        _after_propose(ctx, propose(ledger, admin, target), f"{verb} {target}")

    cmd.__doc__ = help_text
    return click.command(verb)(cmd)


_TARGETS: list[tuple[str, str, str, bool]] = [
    (
        "suspend",
        "propose_suspend_department",
        "Propose suspending department CODE.",
        False,
    ),
    (
        "remove",
        "propose_remove_department",
        "Propose removing department CODE for good.",
        False,
    ),
    (
        "reactivate",
        "propose_reactivate_department",
        "Propose reactivating suspended department CODE.",
        False,
    ),
    (
        "add-supervisor",
        "propose_add_supervisor",
        "Propose ACCOUNT as a supervisor (escalations).",
        True,
    ),
    (
        "remove-supervisor",
        "propose_remove_supervisor",
        "Propose removing supervisor ACCOUNT.",
        True,
    ),
]
for _verb, _propose, _help, _account in _TARGETS:
    propose.add_command(_target_proposal(_verb, _propose, _help, account=_account))


@propose.command("threshold")
@click.argument("n", type=int)
@as_option
@rpc_option
@yes_option
@common_options
@pass_ctx
def propose_threshold(ctx: Ctx, n: int, as_code: str, rpc: str | None, yes: bool) -> None:
    """Propose changing the approval threshold to N."""
    from govshare.broker import governance

    ledger = open_ledger(ctx, rpc)
    _, admin = admin_of(ctx, as_code)
    confirm(yes, f"Propose threshold {n} as {as_code.upper()}?")
    _after_propose(ctx, governance.propose_threshold(ledger, admin, n), f"set threshold {n}")


@dept.command("approve")
@click.argument("proposal", type=int)
@as_option
@rpc_option
@yes_option
@common_options
@pass_ctx
def approve_cmd(ctx: Ctx, proposal: int, as_code: str, rpc: str | None, yes: bool) -> None:
    """Approve PROPOSAL for your department; it executes once the threshold is met."""
    from govshare.broker import governance

    ledger = open_ledger(ctx, rpc)
    p = _proposal_dict(governance.proposal_view(ledger, proposal))
    _, admin = admin_of(ctx, as_code)
    confirm(yes, f"Approve {_describe(p)} as {as_code.upper()}?")
    out = governance.approve_proposal(ledger, admin, proposal)
    after = _proposal_dict(out.view)
    data = {**after, "executed": out.executed, "tx_hash": out.tx_hash}
    ctx.emit(
        data,
        f"Approved proposal #{proposal}: "
        + (
            "the threshold is met and it has taken effect."
            if out.executed
            else f"{after['approval_count']} of {after['threshold']} approvals so far."
        ),
    )


# -- rotation -------------------------------------------------------------------


@dept.command("rotate")
@click.option("--endpoint", default=None, help="New broker endpoint URL.")
@click.option("--new-broker-key", is_flag=True, help="Generate and register a new broker key.")
@click.option("--new-encryption-key", is_flag=True, help="Generate and register a new HPKE key.")
@click.option(
    "--kem",
    type=click.Choice(("x25519", "mlkem768-x25519")),
    default=None,
    help="The new HPKE key's KEM (implies --new-encryption-key; default: the current key's). "
    "mlkem768-x25519 is hybrid post-quantum.",
)
@click.option("--add-admin", "add_admins", multiple=True, help="Add an administrator account.")
@click.option(
    "--remove-admin",
    "remove_admins",
    multiple=True,
    help="Remove an administrator account (never the last one).",
)
@as_option
@rpc_option
@yes_option
@common_options
@pass_ctx
def rotate_cmd(
    ctx: Ctx,
    endpoint: str | None,
    new_broker_key: bool,
    new_encryption_key: bool,
    kem: str | None,
    add_admins: tuple[str, ...],
    remove_admins: tuple[str, ...],
    as_code: str,
    rpc: str | None,
    yes: bool,
) -> None:
    """Change your own department's broker key, encryption key, endpoint or admins."""
    from govshare.broker import governance
    from govshare.crypto import resolve_password

    new_encryption_key = new_encryption_key or kem is not None
    if not (endpoint or new_broker_key or new_encryption_key or add_admins or remove_admins):
        raise click.UsageError("Say what to rotate (see --help).")
    ledger = open_ledger(ctx, rpc)
    prof, admin = admin_of(ctx, as_code)
    confirm(yes, f"Change {prof.code}'s registry entry on chain?")
    pw = None
    if new_broker_key or new_encryption_key:
        passwords = ctx.settings.passwords()
        pw = resolve_password(
            None,
            configured=passwords.broker,
            configured_file=passwords.broker_file,
            prompt=f"Password for {prof.code}'s broker key: ",
        )
    out = governance.rotate(
        ledger,
        admin,
        prof,
        endpoint=endpoint,
        new_broker_key=new_broker_key,
        new_encryption_key=new_encryption_key,
        encryption_kem=kem,
        add_admins=add_admins,
        remove_admins=remove_admins,
        key_password=pw,
        fund=dev_funder(ledger),
    )
    ctx.emit(
        {"department": _dept_dict(out.department), "transactions": out.transactions},
        f"{prof.code} updated on chain: {', '.join(out.transactions)}.",
    )
