"""``govshare user add|list|token|revoke`` through the real console script."""

from __future__ import annotations

from collections.abc import Iterator

import click
import pytest

from govshare.broker.db import Database, Role
from govshare.broker.errors import InvalidToken
from govshare.broker.users import Users, looks_like_token
from govshare.cli.main import cli as govshare_cli

from .conftest import Cli

pytestmark = pytest.mark.integration  # starts processes (see tests/conftest.py)


@pytest.fixture(scope="module")
def tax(tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """One home with department TAX's profile (made by the real `govshare init`);
    tests use distinct user names in it."""
    cli = Cli(tmp_path_factory.mktemp("cli") / "home")
    cli.env["GOVSHARE_PASSWORD"] = "broker-pw"
    cli.ok("init", "TAX", "--name", "Tax Bureau", "--scrypt-n", "1024")
    return cli


@pytest.fixture
def users(tax: Cli) -> Iterator[Users]:
    db = Database.for_department(tax.home, "TAX")
    try:
        yield Users(db)
    finally:
        db.close()


def test_role_choices_match_the_model() -> None:
    group = govshare_cli.get_command(click.Context(govshare_cli), "user")
    assert isinstance(group, click.Group)
    [role] = [p for p in group.commands["add"].params if p.name == "role"]
    assert isinstance(role.type, click.Choice)
    assert tuple(role.type.choices) == tuple(r.value for r in Role)


def test_add_prints_the_token_once_and_it_works(tax: Cli, users: Users) -> None:
    r = tax.ok("user", "add", "alice", "--role", "clerk", "--dept", "tax")
    [token] = [w for w in r.stdout.split() if w.startswith("gs_")]
    assert looks_like_token(token)
    assert "alice" in r.stdout and "shown only now" in r.stdout
    assert (tax.home / "depts" / "TAX" / "broker.db").is_file()

    p = users.authenticate(token)
    assert (p.name, p.role.value, p.department) == ("alice", "clerk", "TAX")

    listed = tax.ok("user", "list", "--dept", "TAX")
    assert "alice" in listed.stdout and "clerk" in listed.stdout
    assert token not in listed.stdout  # never shown again


def test_json_output(tax: Cli) -> None:
    out = tax.ok("user", "add", "bob", "--role", "admin", "--dept", "TAX", "--json").json()
    assert out["user"]["name"] == "bob" and out["user"]["role"] == "admin"
    assert out["user"]["department"] == "TAX" and looks_like_token(out["token"])
    env = dict(tax.env)
    try:
        tax.env["GOVSHARE_DEPT"] = "TAX"  # the department from the environment
        listed = tax.ok("user", "list", "--json").json()
    finally:
        tax.env = env
    assert ("bob", "admin", True, 1) in [
        (u["name"], u["role"], u["active"], u["active_tokens"]) for u in listed
    ]
    assert out["token"] not in str(listed)


def test_token_and_revoke(tax: Cli, users: Users) -> None:
    first = tax.ok("user", "add", "carol", "--role", "auditor", "--dept", "TAX", "--json").json()
    second = tax.ok("user", "token", "carol", "--dept", "TAX", "--json").json()
    assert second["token"] != first["token"]
    assert users.authenticate(second["token"]).name == "carol"

    # without -y it asks; answering no changes nothing
    r = tax.fails("user", "revoke", "carol", "--dept", "TAX", input="n\n")
    assert "Aborted" in r.output
    assert users.authenticate(first["token"]).name == "carol"

    out = tax.ok("user", "revoke", "carol", "--dept", "TAX", "-y", "--json").json()
    assert out["active"] is False and out["active_tokens"] == 0
    for t in (first["token"], second["token"]):
        with pytest.raises(InvalidToken):
            users.authenticate(t)


def test_refusals(tax: Cli, users: Users) -> None:
    users.add("dave", "clerk", "TAX")
    dup = tax.fails("user", "add", "dave", "--role", "admin", "--dept", "TAX")
    assert dup.exit_code == 1 and "already exists" in dup.stderr
    assert users.get("dave").role is Role.CLERK

    no_dept = tax.fails("user", "add", "erin", "--role", "clerk", "--dept", "MARKET")
    assert no_dept.exit_code == 1 and "govshare init MARKET" in no_dept.stderr
    assert not (tax.home / "depts" / "MARKET").exists()

    bad_code = tax.fails("user", "list", "--dept", "../etc")
    assert "not a department code" in bad_code.stderr

    unknown = tax.fails("user", "revoke", "nobody", "--dept", "TAX", "-y", "--json")
    assert unknown.json()["error"]["code"] == "not_found"

    bad_role = tax.fails("user", "add", "erin", "--role", "root", "--dept", "TAX")
    assert bad_role.exit_code == 2 and "root" in bad_role.stderr
    assert [u.name for u in users.list_users() if u.name == "erin"] == []


def test_a_damaged_database_is_one_sentence_and_a_typed_error(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    cli = Cli(tmp_path_factory.mktemp("cli") / "home")
    cli.env["GOVSHARE_PASSWORD"] = "broker-pw"
    cli.ok("init", "TAX", "--name", "Tax Bureau", "--scrypt-n", "1024")
    (cli.home / "depts" / "TAX" / "broker.db").write_bytes(b"not a database " * 512)
    err = cli.fails("user", "list", "--dept", "TAX", "--json").json()["error"]
    assert err["code"] == "db.unavailable" and "damaged" in err["message"]
    human = cli.fails("user", "list", "--dept", "TAX")
    assert human.stderr.startswith("Error: The broker's database cannot be used now")
    assert human.stderr.count("\n") == 1


def test_the_last_administrator_stays(tax: Cli, users: Users) -> None:
    users.add("head", "admin", "TAX")
    for u in users.list_users():
        if u.role is Role.ADMIN and u.active and u.name != "head":
            users.revoke(u.name)
    r = tax.fails("user", "revoke", "head", "--dept", "TAX", "-y", "--json")
    err = r.json()["error"]
    assert err["code"] == "user.last_admin" and "last active administrator" in err["message"]
    assert users.get("head").active
