"""Users and bearer tokens."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from fakeclock import ManualClock
from govshare.broker.db import ApiToken, Database, Role, sqlite_url
from govshare.broker.errors import AlreadyExists, InvalidToken, LastAdministrator
from govshare.broker.sqlstore import SCHEMA_REVISION, broker_db_path, open_sqlite
from govshare.broker.users import (
    TOKEN_PREFIX,
    Users,
    department_users,
    hash_token,
    looks_like_token,
    normalise_dept,
)
from govshare.errors import DatabaseUnavailable, InputError, NotFound


@pytest.fixture
def users(db: Database) -> Users:
    return Users(db)


def test_add_issues_a_prefixed_token_stored_only_as_its_hash(users: Users, db: Database) -> None:
    info, issued = users.add("alice", "clerk", "tax")
    assert info.role is Role.CLERK and info.department == "TAX" and info.active_tokens == 1
    assert issued.token.startswith(TOKEN_PREFIX) and looks_like_token(issued.token)
    assert issued.token not in repr(issued)
    with db.session(readonly=True) as s:
        stored = s.scalars(select(ApiToken)).one()
    assert stored.token_hash == hash_token(issued.token)
    # the secret is nowhere in the database file
    raw = db.engine.url.database
    assert raw is not None
    db.close()
    for path in [Path(raw), Path(raw + "-wal")]:
        if path.exists():
            assert issued.token.encode() not in path.read_bytes()


def test_authenticate(users: Users) -> None:
    _, issued = users.add("alice", "auditor", "TAX")
    p = users.authenticate(issued.token)
    assert (p.name, p.role, p.department) == ("alice", Role.AUDITOR, "TAX")


@pytest.mark.parametrize(
    "token",
    ["", "gs_", "Bearer x", "gs_" + "a" * 42, "xx_" + "a" * 43, "gs_" + "a" * 43 + "\n"],
)
def test_malformed_or_unknown_tokens_are_refused(users: Users, token: str) -> None:
    users.add("alice", "clerk", "TAX")
    with pytest.raises(InvalidToken):
        users.authenticate(token)


def test_unknown_well_formed_token(users: Users) -> None:
    with pytest.raises(InvalidToken):
        users.authenticate("gs_" + "A" * 43)


def test_revoke_user_revokes_all_tokens(users: Users) -> None:
    _, t1 = users.add("alice", "clerk", "TAX")
    t2 = users.issue_token("alice", label="laptop")
    assert users.authenticate(t2.token).name == "alice"
    info = users.revoke("alice")
    assert not info.active and info.active_tokens == 0
    for t in (t1, t2):
        with pytest.raises(InvalidToken):
            users.authenticate(t.token)
    with pytest.raises(InputError):
        users.issue_token("alice")


def test_the_last_active_administrator_of_a_department_stays(users: Users) -> None:
    _, token = users.add("adam", "admin", "TAX")
    users.add("mark", "admin", "MARKET")  # another department's admin does not count
    users.add("old", "admin", "TAX")
    users.revoke("old")  # a revoked admin does not count either
    with pytest.raises(LastAdministrator) as caught:
        users.revoke("adam")
    assert caught.value.code == "user.last_admin" and caught.value.status == 409
    assert caught.value.message == (
        "adam is TAX's last active administrator: add another administrator before revoking them."
    )
    assert users.get("adam").active and users.authenticate(token.token).name == "adam"
    users.add("ada", "admin", "TAX")
    assert not users.revoke("adam").active
    assert not users.revoke("adam").active  # revoking a revoked user again is fine
    with pytest.raises(LastAdministrator):
        users.revoke("ada")
    users.add("clara", "clerk", "TAX")
    assert not users.revoke("clara").active  # clerks and auditors: no such rule


def test_revoke_one_token(users: Users) -> None:
    _, t1 = users.add("alice", "clerk", "TAX")
    t2 = users.issue_token("alice")
    users.revoke_token(t1.info.id)
    with pytest.raises(InvalidToken):
        users.authenticate(t1.token)
    assert users.authenticate(t2.token).name == "alice"
    assert [t.revoked_at is not None for t in users.tokens("alice")] == [True, False]
    with pytest.raises(NotFound):
        users.revoke_token(999)


def test_expired_token(users: Users) -> None:
    _, issued = users.add("alice", "clerk", "TAX", expires_at=datetime.now(UTC) - timedelta(1))
    with pytest.raises(InvalidToken):
        users.authenticate(issued.token)


def test_a_token_expires_when_the_clock_reaches_its_expiry(db: Database) -> None:
    clock = ManualClock()
    users = Users(db, clock=clock)
    _, issued = users.add("alice", "clerk", "TAX", expires_at=clock.utc() + timedelta(hours=1))
    clock.advance(3599)
    assert users.authenticate(issued.token).name == "alice"
    clock.advance(1)
    with pytest.raises(InvalidToken):
        users.authenticate(issued.token)


def test_last_used_is_recorded_but_not_on_every_call(db: Database) -> None:
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC).timestamp())
    users = Users(db, clock=clock, touch_every=timedelta(minutes=1))
    _, issued = users.add("alice", "clerk", "TAX")
    users.authenticate(issued.token)
    first = users.tokens("alice")[0].last_used_at
    assert first == clock.utc()
    clock.advance(10)
    users.authenticate(issued.token)
    assert users.tokens("alice")[0].last_used_at == first
    clock.advance(120)
    users.authenticate(issued.token)
    assert users.tokens("alice")[0].last_used_at == clock.utc()


def test_duplicate_name_and_bad_input(users: Users) -> None:
    users.add("alice", "clerk", "TAX")
    with pytest.raises(AlreadyExists):
        users.add("alice", "admin", "TAX")
    with pytest.raises(InputError):
        users.add("bob", "root", "TAX")
    with pytest.raises(InputError):
        users.add("../bob", "clerk", "TAX")
    with pytest.raises(InputError):
        users.add("bob", "clerk", "../TAX")
    assert [u.name for u in users.list_users()] == ["alice"]


def test_get_and_list(users: Users) -> None:
    users.add("bob", "admin", "TAX")
    users.add("alice", "clerk", "TAX")
    assert [u.name for u in users.list_users()] == ["alice", "bob"]
    assert users.get("bob").role is Role.ADMIN
    with pytest.raises(NotFound):
        users.get("carol")


@pytest.mark.parametrize(
    "code", ["TAX", "tax", " market ", "A1", "X" * 16, "X" * 17, "T", "T-X", "", "../E"]
)
def test_department_codes_follow_the_profile_rule(code: str) -> None:
    from govshare.profile import normalise_code

    try:
        expected: str | None = normalise_code(code)
    except InputError:
        expected = None
    try:
        got: str | None = normalise_dept(code)
    except InputError:
        got = None
    assert got == expected


# -- the command line's way in: the same store on the standard library's sqlite3 ----------


@pytest.mark.sqlite_only
def test_rows_written_by_either_driver_read_the_same_by_the_other(
    db: Database, db_path: Path
) -> None:
    """The broker writes through SQLAlchemy, `govshare user` through sqlite3: each
    reads the other's users, tokens and timestamps exactly (aware UTC)."""
    clock = ManualClock(datetime(2026, 12, 6, 9, 30, 15, 123456, tzinfo=UTC).timestamp())
    broker = Users(db, clock=clock)
    lite_store = open_sqlite(db_path)
    assert lite_store is not None
    lite = Users(lite_store, clock=clock)
    try:
        info, first = broker.add("alice", "admin", "TAX", label="laptop")
        assert lite.get("alice") == info
        expires = clock.utc() + timedelta(days=30)
        _, second = lite.add("bob", "clerk", "TAX", expires_at=expires)
        assert broker.get("bob") == lite.get("bob")
        assert broker.tokens("bob") == lite.tokens("bob") == [second.info]
        assert second.info.expires_at == expires and second.info.created_at == clock.utc()
        assert lite.authenticate(first.token).name == "alice"
        assert broker.authenticate(second.token).name == "bob"
        assert broker.tokens("alice")[0].last_used_at == clock.utc()
        lite.revoke("bob")
        assert not broker.get("bob").active and broker.tokens("bob")[0].revoked_at == clock.utc()
        with pytest.raises(AlreadyExists):
            lite.add("alice", "clerk", "TAX")
        with pytest.raises(LastAdministrator):
            lite.revoke("alice")
    finally:
        lite_store.close()
    with db.session(readonly=True) as s:
        assert len(s.scalars(select(ApiToken)).all()) == 2  # the refused add left nothing


def test_open_sqlite_declines_what_it_should_not_open(tmp_path: Path) -> None:
    """No file, not a database, or another schema revision: None, and nothing
    created; the caller then takes the full way, which migrates or explains."""
    missing = tmp_path / "missing.db"
    assert open_sqlite(missing) is None and not missing.exists()
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database at all" * 100)
    assert open_sqlite(garbage) is None
    older = tmp_path / "older.db"
    Database.open(sqlite_url(older)).close()
    with sqlite3.connect(older) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0009'")
    assert open_sqlite(older) is None
    with sqlite3.connect(older) as conn:
        conn.execute("UPDATE alembic_version SET version_num = ?", (SCHEMA_REVISION,))
    store = open_sqlite(older)
    assert store is not None
    store.close()


def test_department_users_create_then_reopen_without_sqlalchemy(tmp_path: Path) -> None:
    path = broker_db_path(tmp_path, "TAX")
    with department_users(tmp_path, "TAX") as users:  # no file: created and migrated
        assert users.db.__class__.__name__ == "Database"
        users.add("alice", "admin", "TAX")
    assert path.stat().st_mode & 0o777 == 0o600
    with department_users(tmp_path, "TAX") as users:
        assert users.db.__class__.__name__ == "SqliteFile"
        assert [u.name for u in users.list_users()] == ["alice"]


def test_a_file_replaced_under_the_command_is_an_outage_not_a_traceback(db_path: Path) -> None:
    Database.open(sqlite_url(db_path)).close()
    store = open_sqlite(db_path)
    assert store is not None
    try:
        with sqlite3.connect(db_path) as other:
            other.execute("DROP TABLE api_tokens")
            other.execute("DROP TABLE users")
        with pytest.raises(DatabaseUnavailable, match="missing or was replaced"):
            Users(store).add("alice", "clerk", "TAX")
    finally:
        store.close()
