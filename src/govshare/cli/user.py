"""``govshare user add|list|token|revoke``: who may use a department's broker API.

Users live in the department's broker database (``HOME/depts/CODE/broker.db``).
A token is printed once, when it is made, and never again: only its hash is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import click

from govshare.cli.main import Ctx, common_options, echo, from_settings, pass_ctx
from govshare.util import printable

if TYPE_CHECKING:
    from govshare.broker.users import IssuedToken, Users

# The user store is imported only when a user command runs (and SQLAlchemy only
# when the database is not a SQLite file at the newest schema: users.py). Same
# values as govshare.broker.users.Role (a test checks).
ROLES = ("clerk", "admin", "auditor")

F = TypeVar("F", bound=Callable[..., Any])


def dept_option(f: F) -> F:
    return click.option(
        "--dept",
        "dept",
        required=True,
        default=from_settings("dept"),
        metavar="CODE",
        help="The department whose broker this is (env GOVSHARE_DEPT).",
    )(f)


@contextmanager
def _users(ctx: Ctx, dept: str) -> Iterator[tuple[Users, str]]:
    from govshare.broker.users import department_users
    from govshare.profile import load_profile

    profile = load_profile(ctx.home, dept)  # a clear error if there is no such department
    with department_users(ctx.home, profile.code, ctx.settings.secret("database_url")) as users:
        yield users, profile.code


def _token_lines(issued: IssuedToken) -> str:
    return (
        f"Token for {issued.info.user} (shown only now; store it safely, "
        f"e.g. in a password manager):\n\n  {issued.token}\n\n"
        "Send it as 'Authorization: Bearer <token>'."
    )


@click.group("user")
@common_options
def user() -> None:
    """Broker users of a department (clerk, admin, auditor) and their API tokens."""


@user.command("add")
@click.argument("name")
@click.option(
    "--role",
    required=True,
    type=click.Choice(ROLES),
    help="clerk: publish and request; admin: manage users; auditor: read trails.",
)
@dept_option
@click.option("--label", default=None, help="A note on the token (e.g. the device).")
@common_options
@pass_ctx
def add(ctx: Ctx, name: str, role: str, dept: str, label: str | None) -> None:
    """Add user NAME to department CODE's broker and print their first token."""
    with _users(ctx, dept) as (users, code):
        info, issued = users.add(name, role, code, label=label)
    ctx.emit(
        {"user": info.to_dict(), "token": issued.token, "token_id": issued.info.id},
        f"Added {info.role.value} {printable(info.name)} to {code}'s broker.\n"
        + _token_lines(issued),
    )


@user.command("list")
@dept_option
@common_options
@pass_ctx
def list_(ctx: Ctx, dept: str) -> None:
    """List department CODE's broker users."""
    with _users(ctx, dept) as (users, code):
        infos = users.list_users()

    def human() -> None:
        if not infos:
            echo(f"{code}'s broker has no users yet: add one with `govshare user add`.")
            return
        echo(f"{'NAME':<24} {'ROLE':<8} {'STATUS':<9} {'TOKENS':>6}  CREATED")
        for u in infos:
            echo(
                f"{printable(u.name):<24} {u.role.value:<8} "
                f"{'active' if u.active else 'revoked':<9} "
                f"{u.active_tokens:>6}  {u.created_at:%Y-%m-%d %H:%M}Z"
            )

    ctx.emit([u.to_dict() for u in infos], human)


@user.command("token")
@click.argument("name")
@dept_option
@click.option("--label", default=None, help="A note on the token (e.g. the device).")
@common_options
@pass_ctx
def token(ctx: Ctx, name: str, dept: str, label: str | None) -> None:
    """Issue another token for NAME (e.g. a lost one; revoke the user to cut
    off every token)."""
    with _users(ctx, dept) as (users, _code):
        issued = users.issue_token(name, label=label)
    ctx.emit(
        {"user": name, "token": issued.token, "token_id": issued.info.id}, _token_lines(issued)
    )


@user.command("revoke")
@click.argument("name")
@dept_option
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@common_options
@pass_ctx
def revoke(ctx: Ctx, name: str, dept: str, yes: bool) -> None:
    """Disable user NAME and revoke all their tokens, effective at once."""
    with _users(ctx, dept) as (users, code):
        users.get(name)  # refuse an unknown name before asking
        if not yes:
            click.confirm(f"Revoke {name} of {code} and all their tokens?", abort=True)
        info = users.revoke(name)
    ctx.emit(info.to_dict(), f"Revoked {printable(info.name)}: their tokens no longer work.")
