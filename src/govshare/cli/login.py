"""``govshare login|logout``: remember a user's API token for a department, so
the clerk commands need no ``--token``.

The token is checked against the department's broker (``GET /v1/me``), then kept
in ``HOME/depts/CODE/api.token`` (0600). ``GOVSHARE_TOKEN`` and ``--token`` on a
command still win over the saved one.

A token already saved there (``govshare dev up`` saves a clerk's) is not lost: it
moves to ``api.token.previous`` (0600, replacing an older one) and the output
says so, with the command that puts it back. Saving the same token again
changes nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from govshare.cli._client import (
    ENV_TOKEN,
    BrokerClient,
    save_token,
    token_path,
)
from govshare.cli.main import Ctx, common_options, from_settings, pass_ctx
from govshare.errors import ConfigError, InputError
from govshare.profile import normalise_code
from govshare.util import printable


@click.command("login")
@click.option(
    "--dept",
    "dept",
    required=True,
    default=from_settings("dept"),
    metavar="CODE",
    help="The department whose broker the token is for.",
)
@click.option(
    "--token",
    default=from_settings("token"),
    help=f"The token (default: ${ENV_TOKEN}, else asked without echo).",
)
@click.option("--broker", "broker_url", default=None, metavar="URL", help="Broker URL.")
@click.option("--no-check", is_flag=True, help="Save without asking the broker first.")
@common_options
@pass_ctx
def login(ctx: Ctx, dept: str, token: str | None, broker_url: str | None, no_check: bool) -> None:
    """Save your API token for department CODE (checked against its broker)."""
    code = normalise_code(dept)
    if not token:
        try:
            token = click.prompt(f"API token for {code}", hide_input=True)
        except click.exceptions.Abort:
            raise InputError(f"No token given: pass --token or set {ENV_TOKEN}.") from None
    token = (token or "").strip()
    if not token:
        raise InputError("The token is empty.")
    me = None
    if not no_check:
        with BrokerClient.open(ctx, code, token, broker_url) as client:
            me = client.call("GET", "/v1/me").json()
        if me.get("department") != code:
            raise InputError(
                f"That token is a user of {me.get('department')}, not of {code}; nothing saved."
            )
    previous = _keep_previous(token_path(ctx.home, code), token)
    path = save_token(ctx.home, code, token)
    who = f" as {printable(me['name'])} ({printable(me['role'])})" if me else ""
    replaced = (
        f"\nIt replaces the token saved before, kept in {previous} "
        f"(`mv {previous} {path}` puts it back)."
        if previous
        else ""
    )
    ctx.emit(
        {
            "department": code,
            "token_file": str(path),
            "user": me,
            "previous_token_file": str(previous) if previous else None,
        },
        f"Logged in to {code}'s broker{who}; token saved in {path}.{replaced}",
    )


def _keep_previous(path: Path, token: str) -> Path | None:
    """Move a different token saved at ``path`` aside (``….previous``), so a login
    never silently loses the one `dev up` or an earlier login saved."""
    try:
        old = path.read_text().strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"Cannot read the token file {path} ({exc.strerror}).") from None
    if not old or old == token:
        return None
    previous = path.with_name(path.name + ".previous")
    os.replace(path, previous)  # same folder, same 0600 mode
    return previous


@click.command("logout")
@click.option(
    "--dept",
    "dept",
    required=True,
    default=from_settings("dept"),
    metavar="CODE",
    help="The department whose saved token to forget.",
)
@common_options
@pass_ctx
def logout(ctx: Ctx, dept: str) -> None:
    """Forget the API token saved for department CODE (it stays valid on the
    broker: an administrator revokes it with `govshare user revoke`)."""
    code = normalise_code(dept)
    path = token_path(ctx.home, code)
    existed = path.exists()
    path.unlink(missing_ok=True)
    ctx.emit(
        {"department": code, "removed": existed},
        f"Forgot {code}'s saved token." if existed else f"No token was saved for {code}.",
    )
