"""Users and bearer tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from fakeclock import ManualClock
from govshare.broker.db import ApiToken, Database, Role
from govshare.broker.errors import AlreadyExists, InvalidToken, LastAdministrator
from govshare.broker.users import (
    TOKEN_PREFIX,
    Users,
    hash_token,
    looks_like_token,
    normalise_dept,
)
from govshare.errors import InputError, NotFound


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
