"""Entry point of the ``govshare`` console script.

Every command takes ``--json`` and ``--home``; the root group turns any
:class:`~govshare.errors.GovShareError` into one clean line on stderr (or a JSON
object with ``--json``) and a non-zero exit code, never a traceback. Usage errors
(click's) keep exit status 2 and take the same JSON shape with ``--json``
(code ``cli.usage``); so does a command line that is not valid UTF-8.

Human output goes through :func:`echo`: text from the chain or another
department (a purpose, a reason, a name) is shown with its control characters
escaped (:func:`govshare.util.printable`), never obeyed by the terminal.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from govshare import __version__
from govshare.errors import GovShareError
from govshare.home import resolve_home
from govshare.util import printable

if TYPE_CHECKING:
    from govshare.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])

# Exit codes: 1 = govshare refused (bad input, refused by chain, ...), 2 = usage (click).
EXIT_ERROR = 1


@dataclass
class Ctx:
    """Options shared by every command, and the settings, read once per command line."""

    home_opt: str | None = None
    json_out: bool = False
    #: ``--json`` is on the command line (read before parsing: a usage error can
    #: stop the parse before ``--json`` is processed).
    json_asked: bool = False
    _settings: Settings | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        """The ``GOVSHARE_*`` settings, read from the environment the first time a
        command needs one (pydantic is not light: `govshare --help` skips it)."""
        if self._settings is None:
            from govshare.settings import load_settings, retired_names

            self._settings = load_settings()
            for warning in retired_names():
                echo(f"Warning: {warning}", err=True)
        return self._settings

    @property
    def home(self) -> Path:
        return resolve_home(self.home_opt or self.settings.home)

    def emit(self, data: Any, human: Callable[[], None] | str | None = None) -> None:
        """Print ``data`` as JSON with ``--json``, else the human form."""
        if self.json_out:
            click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
        elif callable(human):
            human()
        elif human is not None:
            echo(human)
        else:
            click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))

    @property
    def wants_json(self) -> bool:
        return self.json_out or self.json_asked


def echo(message: object = "", *, err: bool = False, nl: bool = True) -> None:
    """Print human text: the commands' one way to the terminal. Whatever it holds
    goes through :func:`~govshare.util.printable` (newlines kept), so a purpose,
    reason or name written by another department shows its escape sequences,
    carriage returns and bidi overrides instead of playing them. (A value that
    must stay on its line is passed through ``printable`` itself, which also
    escapes its newlines.) JSON output needs none of this: ``json.dumps`` escapes."""
    click.echo(printable(message, keep_newlines=True), err=err, nl=nl)


def from_settings(name: str) -> Callable[[], Any]:
    """A click option default taken from the setting ``name`` (``GOVSHARE_NAME``):
    the options' one way to the environment. A flag given on the command line wins."""

    def default() -> Any:
        ctx = click.get_current_context(silent=True)
        obj = ctx.find_object(Ctx) if ctx is not None else None
        if obj is None:
            obj = Ctx()
        value = obj.settings.secret(name)
        return str(value) if isinstance(value, Path) else value

    default.__name__ = f"GOVSHARE_{name.upper()}"
    return default


def _set_json(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.ensure_object(Ctx).json_out = True
    return value


def _set_home(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value:
        ctx.ensure_object(Ctx).home_opt = value
    return value


def common_options(f: F) -> F:
    """``--json`` and ``--home`` accepted on every command (and on the group)."""
    f = click.option(
        "--json",
        "json_out",
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=_set_json,
        help="Machine-readable JSON output.",
    )(f)
    f = click.option(
        "--home",
        "home_opt",
        type=click.Path(file_okay=False),
        expose_value=False,
        is_eager=True,
        callback=_set_home,
        help="govshare home directory (default ~/.govshare, env GOVSHARE_HOME).",
    )(f)
    return f


pass_ctx = click.make_pass_decorator(Ctx, ensure=True)


class GovShareGroup(click.Group):
    """A click group that renders GovShareError cleanly."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        # One Ctx for the whole command line, made at the root, so a subcommand's
        # --json also shapes the error the root prints.
        if parent is None:
            extra.setdefault("obj", Ctx(json_asked=_json_asked(args)))
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.ClickException as exc:
            obj = extra.get("obj") or (parent.find_object(Ctx) if parent else None)
            _click_error(obj, exc)

    def list_commands(self, ctx: click.Context) -> list[str]:
        if self is cli:
            return sorted({*self.commands, *COMMANDS})
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if self is cli and cmd_name not in self.commands and cmd_name in COMMANDS:
            self.add_command(_load(cmd_name), cmd_name)
        return super().get_command(ctx, cmd_name)

    def main(self, args: Any = None, *a: Any, **kw: Any) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        bad = undecodable(argv)
        if bad is not None:  # before click: its parser and help would choke on it too
            try:
                _click_error(Ctx(json_asked=_json_asked(argv)), click.UsageError(bad))
            except click.exceptions.Exit as done:
                sys.exit(done.exit_code)
            except click.ClickException as usage:
                usage.show()
                sys.exit(usage.exit_code)
        return super().main(argv, *a, **kw)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except GovShareError as exc:
            _render_error(ctx, exc)
        except click.ClickException as exc:
            _click_error(ctx.find_object(Ctx), exc)
        except Exception as exc:
            translated = _database_outage(exc)
            if translated is None:
                raise
            _render_error(ctx, translated)


def _render_error(ctx: click.Context, exc: GovShareError) -> None:
    obj = ctx.find_object(Ctx)
    if obj is not None and obj.wants_json:
        click.echo(json.dumps({"error": exc.to_dict()}, indent=2, default=str))
    else:
        # (messages may quote what another department wrote on chain)
        click.echo(f"Error: {printable(exc.message, keep_newlines=True)}", err=True)
    ctx.exit(getattr(exc, "exit_code", EXIT_ERROR))


def _json_asked(args: list[str]) -> bool:
    """Whether ``--json`` is among the options (before a ``--``)."""
    for arg in args:
        if arg == "--":
            return False
        if arg == "--json":
            return True
    return False


def undecodable(argv: list[str]) -> str | None:
    """A sentence naming the first argument that is not valid UTF-8 (Python hands
    such bytes over as lone surrogates, which no encoder, HTTP client or chain
    transaction takes), or None."""
    for i, arg in enumerate(argv):
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError as exc:
            if arg.startswith("--") and "=" in arg:
                what = f"The value of {arg.split('=', 1)[0]}"
            elif i > 0 and argv[i - 1].startswith("-") and argv[i - 1] != "--":
                what = f"The value of {argv[i - 1]}"
            elif arg.startswith("-"):
                what = f"The option {arg}"
            else:
                what = f"argument {i + 1}"
            raw = arg.encode("utf-8", "surrogateescape")[exc.start : exc.start + 1]
            shown = arg.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
            return (
                f"{what} ('{printable(shown)}') is not valid UTF-8 (byte 0x{raw.hex()} at "
                f"position {exc.start}): govshare takes text in UTF-8 only."
            )
    return None


def _click_error(obj: Ctx | None, exc: click.ClickException) -> NoReturn:
    """A usage error (or click's other refusals): with ``--json`` the same JSON
    object as any error (code ``cli.usage``), on stdout; otherwise click's own
    text, with what it quotes made printable. The exit status stays click's (2
    for usage)."""
    from govshare.cli.errors import UsageInvalid

    if obj is not None and obj.wants_json:
        message = printable(exc.format_message(), keep_newlines=True)
        err = UsageInvalid(message) if exc.exit_code == 2 else GovShareError(message)
        click.echo(json.dumps({"error": err.to_dict()}, indent=2, default=str))
        raise click.exceptions.Exit(exc.exit_code)
    exc.message = printable(exc.message, keep_newlines=True)  # type: ignore[misc]
    raise exc


def _database_outage(exc: Exception) -> GovShareError | None:
    """A database outage no lower layer translated (e.g. the ledger mirror's)."""
    if "sqlalchemy" not in sys.modules:  # nothing touched a database: keep start-up light
        return None
    from govshare.broker.db import database_unavailable

    return database_unavailable(exc)


@click.group(cls=GovShareGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="govshare")
@common_options
def cli() -> None:
    """govshare: share government records safely over a consortium ledger."""


# Each domain's group lives in its own module, imported only when used: the
# chain stack (eth-account, and the BLS code eth-keyfile imports) costs most of
# a second to import, and `govshare dev chain status` or `govshare blob add`
# should not pay for it.
COMMANDS: dict[str, str] = {
    "init": "govshare.cli.init_cmd:init",
    "dev": "govshare.cli.dev:dev",
    "consortium": "govshare.cli.consortium:consortium",
    "dept": "govshare.cli.dept:dept",
    "catalog": "govshare.cli.catalog:catalog",
    "blob": "govshare.cli.blob:blob",
    "user": "govshare.cli.user:user",
    "grant": "govshare.cli.grant:grant",
    "serve": "govshare.cli.serve:serve",
    "audit": "govshare.cli.audit:audit",
    "record": "govshare.cli.record:record",
    "request": "govshare.cli.request:request",
    "webhook": "govshare.cli.webhook:webhook",
    "login": "govshare.cli.login:login",
    "logout": "govshare.cli.login:logout",
}


def _load(name: str) -> click.Command:
    import importlib

    module, attr = COMMANDS[name].split(":")
    cmd: click.Command = getattr(importlib.import_module(module), attr)
    return cmd


def main(argv: list[str] | None = None) -> int:
    try:
        cli.main(args=argv, prog_name="govshare", standalone_mode=True)
    except SystemExit as exc:
        return int(exc.code or 0) if isinstance(exc.code, int) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
