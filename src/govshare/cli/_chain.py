"""What the chain-facing commands share: the ledger of this home, acting as a
department's administrator, and confirmation prompts."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

from govshare.cli.errors import Cancelled
from govshare.cli.main import Ctx, from_settings
from govshare.home import deployment_path
from govshare.profile import Profile, load_profile
from govshare.util import printable

# The chain stack is imported when a command opens the ledger, not by --help.
if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from govshare.chain.ledger import Ledger

F = TypeVar("F", bound=Callable[..., Any])


def rpc_option(f: F) -> F:
    return click.option(
        "--rpc",
        default=from_settings("rpc"),
        help="Chain JSON-RPC URL (default: the one in the home's deployment file).",
    )(f)


def as_option(f: F) -> F:
    return click.option(
        "--as",
        "as_code",
        required=True,
        default=from_settings("dept"),
        help="Act as this department: sign with its administrator key.",
    )(f)


def yes_option(f: F) -> F:
    return click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")(f)


def open_ledger(ctx: Ctx, rpc: str | None) -> Ledger:
    """The deployment of this home (or the ``deployment_file`` setting), on ``rpc``
    or the URL it was deployed at."""
    from govshare.chain.ledger import Ledger

    path = ctx.settings.deployment_file or deployment_path(ctx.home)
    return Ledger.from_deployment(path, rpc)


def dev_funder(ledger: Ledger) -> Callable[[Sequence[str]], object]:
    """Gives new accounts gas on the dev chain (does nothing on any other)."""
    from govshare.chain.devfund import fund_if_dev

    return lambda addresses: fund_if_dev(ledger.conn, ledger.sender, addresses)


def admin_of(ctx: Ctx, code: str) -> tuple[Profile, LocalAccount]:
    """The profile of ``code`` and its unlocked administrator account."""
    prof = load_profile(ctx.home, code)
    return prof, prof.unlock_admin(passwords=ctx.settings.passwords())


def confirm(yes: bool, question: str) -> None:
    """Ask before a transaction, unless ``-y``. No terminal and no ``-y``: refuse."""
    if yes:
        return
    try:  # (the question quotes what other departments wrote: shown, never obeyed)
        ok = click.confirm(printable(question, keep_newlines=True), default=False)
    except click.exceptions.Abort:
        ok = False
    if not ok:
        raise Cancelled("Cancelled; nothing was sent. (Pass -y to skip this question.)")
