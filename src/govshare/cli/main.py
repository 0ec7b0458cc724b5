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
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn, TypeVar

import click

from govshare import __version__
from govshare.errors import GovShareError
from govshare.home import resolve_home
from govshare.util import printable

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem

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

    # The root group is lazy (click's LazyGroup pattern): it lists and describes
    # its commands from COMMANDS and imports a command's module only to run it.
    def list_commands(self, ctx: click.Context) -> list[str]:
        if self is cli:
            return sorted({*self.commands, *COMMANDS})
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if self is cli and cmd_name not in self.commands and cmd_name in COMMANDS:
            self.add_command(_load(cmd_name), cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        if self is not cli:
            return super().format_commands(ctx, formatter)
        names = self.list_commands(ctx)
        if not names:
            return None
        limit = formatter.width - 6 - max(len(n) for n in names)
        rows = [(n, _short_help(self, n, limit)) for n in names]
        with formatter.section("Commands"):
            formatter.write_dl(rows)
        return None

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[CompletionItem]:
        if self is not cli:
            return super().shell_complete(ctx, incomplete)
        # the command names from the registry (click's own would import every module)
        from click.shell_completion import CompletionItem

        items = [
            CompletionItem(n, help=_short_help(self, n))
            for n in self.list_commands(ctx)
            if n.startswith(incomplete)
        ]
        return items + click.Command.shell_complete(self, ctx, incomplete)

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
    from govshare.broker.database import database_unavailable

    return database_unavailable(exc)


@click.group(cls=GovShareGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="govshare")
@common_options
def cli() -> None:
    """govshare: share government records safely over a consortium ledger."""


class Entry(NamedTuple):
    """A top-level command: where it lives and its short help (its docstring's
    first paragraph, checked against the command by a test)."""

    target: str  # "module:attribute"
    help: str


# Each domain's group lives in its own module, imported only when used: the
# chain stack (web3, eth-account, eth-abi), SQLAlchemy, httpx and pydantic cost
# most of a second to import, and `govshare --help` or `govshare dev status`
# should not pay for them. `--help` and shell completion read this table.
COMMANDS: dict[str, Entry] = {
    "init": Entry(
        "govshare.cli.init_cmd:init",
        "Create the profile of department CODE: broker and administrator keys (Ethereum "
        "v3 keystores), an HPKE encryption key pair, and its endpoint.",
    ),
    "dev": Entry("govshare.cli.dev:dev", "The local development consortium (one machine)."),
    "consortium": Entry(
        "govshare.cli.consortium:consortium",
        "Deploy the consortium's contracts and generate its network configuration.",
    ),
    "dept": Entry(
        "govshare.cli.dept:dept", "Member departments: list, show, propose, approve, rotate keys."
    ),
    "catalog": Entry(
        "govshare.cli.catalog:catalog", "The departments' catalogs of record categories."
    ),
    "blob": Entry("govshare.cli.blob:blob", "Store and fetch files by CID (local store or Kubo)."),
    "user": Entry(
        "govshare.cli.user:user",
        "Broker users of a department (clerk, admin, auditor) and their API tokens.",
    ),
    "grant": Entry(
        "govshare.cli.grant:grant",
        "Consent: approve, deny or revoke access to your department's records.",
    ),
    "serve": Entry(
        "govshare.cli.serve:serve",
        "Run department CODE's broker: its clerks' API and its peers' exchange.",
    ),
    "audit": Entry(
        "govshare.cli.audit:audit",
        "Verify documents, trails and access receipts (no profile, no key; `subject` "
        "needs the consortium subject key).",
    ),
    "record": Entry(
        "govshare.cli.record:record",
        "Your department's records: publish, list, show, fetch (own and granted).",
    ),
    "request": Entry(
        "govshare.cli.request:request",
        "Access requests: ask another department for a record; list yours.",
    ),
    "webhook": Entry(
        "govshare.cli.webhook:webhook",
        "Signed webhooks: your department's notifications POSTed to a URL.",
    ),
    "login": Entry(
        "govshare.cli.login:login",
        "Save your API token for department CODE (checked against its broker).",
    ),
    "logout": Entry(
        "govshare.cli.login:logout",
        "Forget the API token saved for department CODE (it stays valid on the broker: "
        "an administrator revokes it with `govshare user revoke`).",
    ),
}


def _short_help(group: click.Group, name: str, limit: int = 45) -> str:
    """A command's short help, cut as click cuts it, without importing the command
    (once imported, its own)."""
    loaded = group.commands.get(name)
    if loaded is None:  # (a bare command carrying the registry's text: click's own cut)
        loaded = click.Command(name, help=COMMANDS[name].help)
    return loaded.get_short_help_str(limit=limit)


def _load(name: str) -> click.Command:
    import importlib

    module, attr = COMMANDS[name].target.split(":")
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
