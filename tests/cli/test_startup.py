"""`govshare` starts light (issue 14): `--help` at every level and the commands that
touch no chain import none of the heavy stacks (web3, eth-account, eth-abi,
SQLAlchemy, httpx, HPKE, …). Each case runs the CLI in a fresh interpreter and
asserts on the modules it loaded, not on a duration (see
``scripts/bench/bench_startup.py`` for the times). The registry that lets the root
group list its commands without importing them is checked against the commands.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from govshare.cli.main import COMMANDS, cli

CLI_DIR = Path(__file__).resolve().parents[2] / "src" / "govshare" / "cli"

#: Never needed to show help or to run a command that touches no chain.
CHAIN = (
    "web3",
    "eth_account",
    "eth_abi",
    "eth_keyfile",
    "govshare.chain.contracts",
    "govshare.chain.mirror",
    "govshare.broker.db",
    "cryptography.hazmat.primitives.hpke",
    "alembic",
    "fastapi",
    "uvicorn",
)
#: Heavy too, and not needed by `--help` (the database and HTTP clients, Rich, pydantic).
HEAVY = (*CHAIN, "sqlalchemy", "httpx", "rich", "pydantic", "pydantic_settings")

# Runs the real entry point on argv, output discarded, then prints the loaded modules.
_PROBE = """
import contextlib, io, json, sys
from govshare.cli.main import main
out = io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
    code = main(sys.argv[1:])
print(json.dumps({"code": code, "output": out.getvalue(), "modules": sorted(sys.modules)}))
"""


def loaded(*argv: str, home: Path, env: dict[str, str] | None = None) -> set[str]:
    """The modules a fresh interpreter holds after `govshare ARGV` (which must succeed)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("GOVSHARE_")}
    environ.update(GOVSHARE_HOME=str(home), **(env or {}))
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, *argv],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.splitlines()[-1])
    assert result["code"] == 0, result["output"]
    return set(result["modules"])


def _present(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return [n for n in names if n in modules]


def test_root_help_imports_no_command_and_nothing_heavy(tmp_path: Path) -> None:
    modules = loaded("--help", home=tmp_path)
    assert _present(modules, HEAVY) == []
    commands = {target.split(":")[0] for target, _ in COMMANDS.values()}
    assert sorted(commands & modules) == []


@pytest.mark.parametrize("group", sorted(COMMANDS))
def test_group_help_is_light(tmp_path: Path, group: str) -> None:
    assert _present(loaded(group, "--help", home=tmp_path), HEAVY) == []


@pytest.mark.parametrize(
    "argv",
    [
        ("record", "fetch", "--help"),
        ("record", "publish", "--help"),
        ("grant", "approve", "--help"),
        ("dept", "list", "--help"),
        ("catalog", "list", "--help"),
        ("request", "create", "--help"),
        ("webhook", "add", "--help"),
        ("user", "add", "--help"),
        ("dev", "up", "--help"),
        ("blob", "add", "--help"),
        ("audit", "verify", "--help"),
        ("serve", "--help"),
        ("consortium", "deploy", "--help"),
        ("consortium", "genesis", "--help"),
    ],
    ids=" ".join,
)
def test_command_help_is_light(tmp_path: Path, argv: tuple[str, ...]) -> None:
    assert _present(loaded(*argv, home=tmp_path), HEAVY) == []


def test_dev_status_with_nothing_running_makes_no_http_client(tmp_path: Path) -> None:
    modules = loaded("dev", "status", home=tmp_path)
    assert _present(modules, (*CHAIN, "sqlalchemy", "httpx", "rich", "pydantic_settings")) == []


def test_user_commands_load_the_user_store_only(tmp_path: Path) -> None:
    env = {"GOVSHARE_PASSWORD": "startup-pw"}
    loaded("init", "TAX", "--name", "Tax Bureau", "--scrypt-n", "1024", home=tmp_path, env=env)
    first = loaded("user", "add", "first", "--role", "clerk", "--dept", "TAX", home=tmp_path)
    assert "sqlalchemy" in first  # a new database: created and migrated the full way
    for argv in (
        ("user", "add", "alice", "--role", "clerk", "--dept", "TAX"),
        ("user", "list", "--dept", "TAX"),
    ):
        modules = loaded(*argv, home=tmp_path)
        assert "govshare.broker.users" in modules
        # the SQLite file at the newest revision opens with the standard library's
        # sqlite3: no SQLAlchemy, no Alembic, no mirror tables, no chain code
        assert (
            _present(modules, (*CHAIN, "sqlalchemy", "alembic", "httpx", "rich", "govshare.chain"))
            == []
        )


def test_the_registry_matches_the_commands() -> None:
    ctx = click.Context(cli)
    for name, (target, short_help) in COMMANDS.items():
        module, attr = target.split(":")
        cmd = getattr(__import__(module, fromlist=[attr]), attr)
        assert isinstance(cmd, click.Command), name
        assert cmd.name == name, f"{target} is named {cmd.name!r}, registered as {name!r}"
        assert cmd.get_short_help_str(limit=10**6) == short_help, name
        assert cli.get_command(ctx, name) is cmd
    assert cli.list_commands(ctx) == sorted(COMMANDS)


def _top_level_commands(path: Path) -> list[str]:
    """Names of the click commands and groups a module defines at top level with
    ``@click.command`` / ``@click.group`` (the subcommands are ``@group.command``)."""
    found = []
    for node in ast.parse(path.read_text()).body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for dec in node.decorator_list:
            call = dec.func if isinstance(dec, ast.Call) else dec
            if (
                isinstance(call, ast.Attribute)
                and isinstance(call.value, ast.Name)
                and call.value.id == "click"
                and call.attr in ("command", "group")
            ):
                found.append(f"govshare.cli.{path.stem}:{node.name}")
    return found


def _tree(cmd: click.Command) -> list[click.Command]:
    subs = cmd.commands.values() if isinstance(cmd, click.Group) else []
    return [cmd, *(c for sub in subs for c in _tree(sub))]


STANDALONE = {"govshare.cli.net:standalone", "govshare.cli.supervise:_standalone"}


def test_no_command_module_defines_an_unregistered_command() -> None:
    """Every command a module under cli/ defines at top level is registered, or is
    a subcommand of a registered one (consortium's network generators, say), or
    one of the groups ``python -m govshare.cli.net|supervise`` run on their own."""
    ctx = click.Context(cli)
    reachable = {id(c) for name in COMMANDS for c in _tree(cli.get_command(ctx, name))}
    defined = [t for p in sorted(CLI_DIR.glob("*.py")) for t in _top_level_commands(p)]
    assert len(defined) > len(COMMANDS), "the scan found too few commands: it is broken"
    missing = []
    for target in defined:
        module, attr = target.split(":")
        obj = getattr(__import__(module, fromlist=[attr]), attr)
        if obj is not cli and id(obj) not in reachable and target not in STANDALONE:
            missing.append(target)
    assert missing == [], f"top-level commands missing from COMMANDS in cli/main.py: {missing}"


def test_values_repeated_for_help_match_their_sources() -> None:
    from govshare.broker.users import Role
    from govshare.chain.contracts import RequestStatus
    from govshare.cli import grant, net, user
    from govshare.consortium import besu, compose

    assert tuple(s.value for s in RequestStatus if s is not RequestStatus.NONE) == grant.STATUSES
    assert tuple(r.value for r in Role) == user.ROLES
    assert net.EPOCH_LENGTH == besu.DEFAULT_EPOCH_LENGTH
    assert net.DEFAULT_ORGS == compose.DEFAULT_ORGS


def test_shell_completion_lists_the_commands_without_importing_them(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVSHARE_")}
    env.update(_GOVSHARE_COMPLETE="bash_complete", COMP_WORDS="govshare gr", COMP_CWORD="1")
    # (click writes completions as bytes to stdout: the modules go to stderr)
    probe = (
        "import json, sys\n"
        "from govshare.cli.main import main\n"
        "main([])\n"
        "sys.stdout.flush()\n"
        "print(json.dumps(sorted(sys.modules)), file=sys.stderr)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=False
    )
    assert proc.stdout.split() == ["plain,grant"], proc.stderr
    modules = set(json.loads(proc.stderr.splitlines()[-1]))
    assert _present(modules, HEAVY) == []
    assert "govshare.cli.grant" not in modules


def test_python_m_govshare_is_the_command(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVSHARE_")}
    env["GOVSHARE_HOME"] = str(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "govshare", "--help"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Usage: govshare ")
    bad = subprocess.run(
        [sys.executable, "-m", "govshare", "no-such-command", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2
    assert json.loads(bad.stdout)["error"]["code"] == "cli.usage"
