"""One error catalogue: unique codes across packages, a meaning and a remedy for
each, problem+json answers rebuilt into the registered class, docs/errors.md
generated from it, and database outages as a typed 503."""

from __future__ import annotations

import importlib
import pkgutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import govshare
from govshare.broker.errors import GrantExpired, OperationFailed
from govshare.errors import (
    CATALOGUE_MODULES,
    ContractReverted,
    DatabaseUnavailable,
    DuplicateErrorCode,
    GovShareError,
    InputError,
    RemoteError,
    Unauthorized,
    catalogue,
    from_problem,
    registered,
)

ROOT = Path(__file__).resolve().parent.parent
CLI_ERROR_MODULES = ("govshare.cli._client", "govshare.cli.errors")


def _every_module() -> list[str]:
    return [
        m.name
        for m in pkgutil.walk_packages(govshare.__path__, "govshare.")
        if ".migrations" not in m.name  # Alembic scripts run inside Alembic only
    ]


def _subclasses(cls: type[GovShareError]) -> set[type[GovShareError]]:
    out: set[type[GovShareError]] = set()
    for sub in cls.__subclasses__():
        out |= {sub, *_subclasses(sub)}
    return out


def test_every_module_imports_and_every_code_is_registered_once() -> None:
    for name in _every_module():
        importlib.import_module(name)  # a duplicate code would raise here
    classes = _subclasses(GovShareError) | {GovShareError}
    declaring = [
        c for c in classes if "code" in c.__dict__ and not c.__module__.startswith("tests")
    ]
    codes = [c.code for c in declaring]
    assert len(codes) == len(set(codes)), sorted(codes)
    for cls in declaring:
        assert registered(cls.code) is cls
    # Every error a broker may answer is found by from_problem without importing more:
    assert {c.__module__ for c in declaring} <= {*CATALOGUE_MODULES, *CLI_ERROR_MODULES}


def test_a_duplicate_code_fails_when_the_class_is_defined() -> None:
    with pytest.raises(DuplicateErrorCode, match=r"grant\.expired"):

        class Again(InputError):
            code = "grant.expired"

    assert registered("grant.expired") is GrantExpired
    with pytest.raises(TypeError, match="HTTP error status"):

        class NotAnError(InputError):
            code = "tests.ok_status"
            status = 200

    assert registered("tests.ok_status") is None


@pytest.mark.parametrize("cls", list(catalogue().values()), ids=lambda c: c.code)
def test_each_error_says_what_it_means_and_what_to_do(cls: type[GovShareError]) -> None:
    assert cls.meaning(), f"{cls.__qualname__} needs a docstring"
    assert "remedy" in cls.__dict__ and cls.remedy.strip(), f"{cls.__qualname__} needs a remedy"
    assert 400 <= cls.status <= 599


@pytest.mark.parametrize("cls", list(catalogue().values()), ids=lambda c: c.code)
def test_each_error_survives_a_problem_json_round_trip(cls: type[GovShareError]) -> None:
    body = {
        "type": f"urn:govshare:problem:{cls.code}",
        "title": "x",
        "status": cls.status,
        "detail": "What happened, in a sentence.",
        "code": cls.code,
        "details": {"record_id": "0x01"},
    }
    err = from_problem(body, cls.status)
    assert type(err) is cls
    assert (err.code, err.status, err.message) == (cls.code, cls.status, body["detail"])
    assert err.to_dict()["details"]["record_id"] == "0x01"


def test_a_revert_keeps_its_reason_and_its_wire_code() -> None:
    body = {
        "code": "chain.reverted.AccessLedgerRequestNotPending",
        "status": 409,
        "detail": "The request is not pending.",
        "details": {"reason": "AccessLedgerRequestNotPending", "args": {"requestId": "0x2"}},
    }
    err = from_problem(body, 409)
    assert isinstance(err, ContractReverted) and err.reason == "AccessLedgerRequestNotPending"
    assert err.to_dict() == {
        "code": "chain.reverted.AccessLedgerRequestNotPending",
        "message": "The request is not pending.",
        "details": {"reason": "AccessLedgerRequestNotPending", "args": {"requestId": "0x2"}},
    }
    unauth = from_problem({"code": "chain.unauthorized.AccessLedgerNotOwnerAdmin"}, 403)
    assert type(unauth) is Unauthorized and unauth.reason == "AccessLedgerNotOwnerAdmin"


def test_unknown_codes_and_bodies_keep_what_arrived() -> None:
    err = from_problem({"code": "future.thing", "title": "Teapot", "status": 418}, 418)
    assert type(err) is RemoteError
    assert (err.code, err.status, err.message) == ("future.thing", 418, "Teapot")
    bare = from_problem(b"<html>", 502, message="TAX's broker answered HTTP 502 Bad Gateway.")
    assert (type(bare), bare.code, bare.status) == (RemoteError, "http.502", 502)
    # details that do not fit a class's constructor still arrive
    odd = from_problem({"code": "operation.failed", "details": {"error": "not a dict", "n": 1}})
    assert isinstance(odd, OperationFailed) and odd.details["n"] == 1


def test_the_errors_doc_is_generated_from_the_registry() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_errors_doc.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    text = (ROOT / "docs" / "errors.md").read_text()
    for code, cls in catalogue().items():
        assert f"| `{code}` | {cls.status} |" in text


# ------------------------------------------------------------------ database outages


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_postgresql_server_that_is_down_is_a_typed_503() -> None:
    from govshare.broker.db import Database

    url = f"postgresql+psycopg://govshare:secret-pw@127.0.0.1:{_closed_port()}/govshare"
    with pytest.raises(DatabaseUnavailable) as info:
        Database.open(url)
    err = info.value
    assert (err.code, err.status) == ("db.unavailable", 503)
    assert "database server" in err.message and "secret-pw" not in err.message
    assert "\n" not in err.message


def test_a_sqlite_file_that_went_away_is_a_typed_503(tmp_path: Path) -> None:
    from govshare.broker.db import Database, sqlite_url
    from govshare.broker.users import Users

    path = tmp_path / "broker.db"
    db = Database.open(sqlite_url(path))
    Users(db).add("alice", "clerk", "TAX")
    db.engine.dispose()  # (the pool would keep the old file open)
    for p in tmp_path.glob("broker.db*"):
        p.unlink()
    path.mkdir()  # and something that is not a database file takes its place
    try:
        with pytest.raises(DatabaseUnavailable, match="cannot be opened"):
            Users(db).list_users()
        with pytest.raises(DatabaseUnavailable):
            db.ping()
    finally:
        db.close()
