"""Broker users and their bearer tokens.

A user has a name, a role (clerk, admin, auditor) and the department whose
broker they use. They call the API with ``Authorization: Bearer gs_...``.

Tokens
------
A token is ``gs_`` followed by 32 random bytes, base64url (43 characters). The
``gs_`` prefix makes a leaked token recognisable (log redaction, secret
scanners). Only its SHA-256 is stored, never the token: whoever reads the
database cannot call the API with what they read.

Why a plain SHA-256 and not bcrypt/argon2: slow, salted hashes protect
*low-entropy* secrets (passwords) against guessing. A token is 256 random bits;
no amount of guessing finds a preimage, with or without salt. A fast, unsalted
hash is what lets each request find its token by an indexed equality lookup.
The lookup is by hash, so response time depends on the hash of the presented
token, which an attacker cannot steer towards a stored one; the final comparison
is constant-time anyway (:func:`hmac.compare_digest`).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from govshare.broker.errors import AlreadyExists, InvalidToken, LastAdministrator
from govshare.broker.sqlstore import Sql, UniqueViolation, broker_db_path, open_sqlite, to_utc
from govshare.clock import SYSTEM_CLOCK, Clock, utcnow
from govshare.errors import InputError, NotFound

if TYPE_CHECKING:
    from contextlib import AbstractContextManager
    from pathlib import Path

TOKEN_PREFIX = "gs_"  # noqa: S105 (a prefix, not a secret)
_TOKEN_BYTES = 32
_TOKEN_RE = re.compile(r"gs_[A-Za-z0-9_-]{43}")
#: A user name: 1-64 of letters, digits and ``. _ @ -``, the first a letter or digit
#: (the API's schema states the same pattern).
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"
_NAME_RE = re.compile(NAME_PATTERN.strip("^$"))
_DEPT_RE = re.compile(r"[A-Z0-9_]{2,16}")

_INVALID_TOKEN = "The bearer token is unknown, revoked or expired."  # noqa: S105


class Role(enum.StrEnum):
    """What a broker user may do: clerks publish and request, administrators
    manage users (consent itself is signed with their own key, outside the API),
    auditors read trails and receipts."""

    CLERK = "clerk"
    ADMIN = "admin"
    AUDITOR = "auditor"


def normalise_dept(code: str) -> str:
    """A department code, upper-cased and checked: 2–16 of ``A-Z 0-9 _``, the
    rule of ``govshare.profile.normalise_code`` and the contracts (a test keeps
    them equal; not imported from there to keep the broker's import light)."""
    norm = (code or "").strip().upper()
    if not _DEPT_RE.fullmatch(norm):
        raise InputError(
            f"'{code}' is not a department code: use 2 to 16 letters, digits or '_' (e.g. TAX)."
        )
    return norm


def _check_name(name: str) -> str:
    if not _NAME_RE.fullmatch(name):
        raise InputError(
            f"{name!r} is not a valid user name: use up to 64 letters, digits or . _ @ -, "
            "starting with a letter or digit."
        )
    return name


def _role(role: str | Role) -> Role:
    try:
        return Role(role)
    except ValueError:
        roles = ", ".join(r.value for r in Role)
        raise InputError(f"Unknown role {role!r}: choose one of {roles}.") from None


def hash_token(token: str) -> str:
    """The stored form of a token: SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    """A fresh random token: ``gs_`` + 32 random bytes, base64url."""
    return TOKEN_PREFIX + secrets.token_urlsafe(_TOKEN_BYTES)


def looks_like_token(value: str) -> bool:
    return _TOKEN_RE.fullmatch(value) is not None


@dataclass(frozen=True)
class UserInfo:
    id: int
    name: str
    role: Role
    department: str
    created_at: datetime
    disabled_at: datetime | None
    active_tokens: int

    @property
    def active(self) -> bool:
        return self.disabled_at is None

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "role": self.role.value,
            "department": self.department,
            "created_at": self.created_at.isoformat(),
            "disabled_at": self.disabled_at.isoformat() if self.disabled_at else None,
            "active": self.active,
            "active_tokens": self.active_tokens,
        }


@dataclass(frozen=True)
class TokenInfo:
    id: int
    user: str
    hint: str
    label: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    def to_dict(self) -> dict[str, object]:
        def iso(d: datetime | None) -> str | None:
            return d.isoformat() if d else None

        return {
            "id": self.id,
            "user": self.user,
            "hint": self.hint,
            "label": self.label,
            "created_at": iso(self.created_at),
            "expires_at": iso(self.expires_at),
            "revoked_at": iso(self.revoked_at),
            "last_used_at": iso(self.last_used_at),
        }


@dataclass(frozen=True)
class IssuedToken:
    """A token just created. ``token`` is the only copy there will ever be."""

    token: str
    info: TokenInfo

    def __repr__(self) -> str:  # keep the secret out of logs and tracebacks
        return f"IssuedToken(hint={self.info.hint!r}, user={self.info.user!r})"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the authenticated user behind a token."""

    user_id: int
    name: str
    role: Role
    department: str
    token_id: int


class Store(Protocol):
    """Where users are kept: a broker :class:`~govshare.broker.database.Database`
    or, for a command line, a :class:`~govshare.broker.sqlstore.SqliteFile`."""

    def sql_reading(self) -> AbstractContextManager[Sql]: ...

    def sql_writing(self) -> AbstractContextManager[Sql]: ...

    def close(self) -> None: ...


# The statements (portable SQLite/PostgreSQL; ``sqlstore.py``). One user's columns:
_SELECT_USERS = (
    "SELECT u.id, u.name, u.role, u.department, u.created_at, u.disabled_at, "
    "(SELECT count(*) FROM api_tokens t WHERE t.user_id = u.id AND t.revoked_at IS NULL) "
    "FROM users u"
)
_SELECT_TOKENS = (
    "SELECT t.id, u.name, t.hint, t.label, t.created_at, t.expires_at, t.revoked_at, "
    "t.last_used_at FROM api_tokens t JOIN users u ON u.id = t.user_id"
)


class Users:
    """Users and tokens of one broker database."""

    def __init__(
        self,
        db: Store,
        *,
        clock: Clock = SYSTEM_CLOCK,
        touch_every: timedelta = timedelta(minutes=1),
    ) -> None:
        self.db = db
        #: What token expiry and last use are read against.
        self.clock = clock
        # last_used_at is refreshed at most this often: not one write per request.
        self._touch_every = touch_every

    # -- users ---------------------------------------------------------------------

    def add(
        self,
        name: str,
        role: str | Role,
        department: str,
        *,
        label: str | None = None,
        expires_at: datetime | None = None,
    ) -> tuple[UserInfo, IssuedToken]:
        """Create a user and their first token."""
        name = _check_name(name)
        r = _role(role)
        dept = normalise_dept(department)
        _check_label(label)
        try:
            with self.db.sql_writing() as sql:
                row = sql.first(
                    "INSERT INTO users (name, role, department, created_at) "
                    "VALUES (:name, :role, :dept, :now) RETURNING id",
                    name=name, role=r.value, dept=dept, now=utcnow(self.clock),
                )  # fmt: skip
                issued = self._issue(sql, _inserted(row), name, label, expires_at)
                info = self._user(sql, name)
        except UniqueViolation:
            raise AlreadyExists(f"A user named {name!r} already exists.", user=name) from None
        return info, issued

    def get(self, name: str) -> UserInfo:
        with self.db.sql_reading() as sql:
            return self._user(sql, name)

    def list_users(self) -> list[UserInfo]:
        with self.db.sql_reading() as sql:
            return [_user_info(row) for row in sql.all(_SELECT_USERS + " ORDER BY u.name")]

    def revoke(self, name: str) -> UserInfo:
        """Disable a user and revoke all their tokens (their name stays taken).
        The department's last active administrator cannot be revoked (as the
        contract keeps a department's last admin key): the API and the CLI
        would have no one left to manage the broker's users."""
        now = utcnow(self.clock)
        with self.db.sql_writing() as sql:
            user = self._user(sql, name)
            if user.active and user.role is Role.ADMIN:
                self._keep_an_admin(sql, user)
            if user.active:
                sql.run("UPDATE users SET disabled_at = :now WHERE id = :id", now=now, id=user.id)
            sql.run(
                "UPDATE api_tokens SET revoked_at = :now "
                "WHERE user_id = :id AND revoked_at IS NULL",
                now=now, id=user.id,
            )  # fmt: skip
            return self._user(sql, name)

    def _keep_an_admin(self, sql: Sql, user: UserInfo) -> None:
        row = sql.first(
            "SELECT count(*) FROM users WHERE department = :dept AND role = :role "
            "AND disabled_at IS NULL AND id != :id",
            dept=user.department, role=Role.ADMIN.value, id=user.id,
        )  # fmt: skip
        if not row or not row[0]:
            raise LastAdministrator(
                f"{user.name} is {user.department}'s last active administrator: add another "
                "administrator before revoking them.",
                user=user.name,
            )

    # -- tokens --------------------------------------------------------------------

    def issue_token(
        self, name: str, *, label: str | None = None, expires_at: datetime | None = None
    ) -> IssuedToken:
        """Another token for an active user (e.g. the old one was lost: revoke it)."""
        _check_label(label)
        with self.db.sql_writing() as sql:
            user = self._user(sql, name)
            if not user.active:
                raise InputError(f"User {name!r} is disabled; add a new user instead.")
            return self._issue(sql, user.id, user.name, label, expires_at)

    def tokens(self, name: str) -> list[TokenInfo]:
        with self.db.sql_reading() as sql:
            user = self._user(sql, name)
            rows = sql.all(_SELECT_TOKENS + " WHERE t.user_id = :id ORDER BY t.id", id=user.id)
            return [_token_info(row) for row in rows]

    def revoke_token(self, token_id: int) -> TokenInfo:
        with self.db.sql_writing() as sql:
            sql.run(
                "UPDATE api_tokens SET revoked_at = :now WHERE id = :id AND revoked_at IS NULL",
                now=utcnow(self.clock), id=token_id,
            )  # fmt: skip
            row = sql.first(_SELECT_TOKENS + " WHERE t.id = :id", id=token_id)
            if row is None:
                raise NotFound(f"No token with id {token_id}.", token_id=token_id)
            return _token_info(row)

    def authenticate(self, token: str) -> Principal:
        """The user behind ``token``; :class:`InvalidToken` if it is malformed,
        unknown, revoked, expired, or its user is disabled (one message for all:
        a caller learns nothing about which tokens exist)."""
        if not looks_like_token(token):
            raise InvalidToken(_INVALID_TOKEN)
        digest = hash_token(token)
        now = utcnow(self.clock)
        with self.db.sql_reading() as sql:
            row = sql.first(
                "SELECT t.id, t.token_hash, t.revoked_at, t.expires_at, t.last_used_at, "
                "u.id, u.name, u.role, u.department, u.disabled_at "
                "FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = :digest",
                digest=digest,
            )
        if row is None:
            raise InvalidToken(_INVALID_TOKEN)
        (token_id, token_hash, revoked_at, expires_at, last_used_at,
         user_id, name, role, department, disabled_at) = row  # fmt: skip
        expires = to_utc(expires_at)
        usable = (
            hmac.compare_digest(token_hash, digest)
            and revoked_at is None
            and (expires is None or expires > now)
            and disabled_at is None
        )
        if not usable:
            raise InvalidToken(_INVALID_TOKEN)
        principal = Principal(
            user_id=user_id, name=name, role=Role(role), department=department, token_id=token_id
        )
        last_used = to_utc(last_used_at)
        if last_used is None or now - last_used >= self._touch_every:
            with self.db.sql_writing() as sql:
                sql.run(
                    "UPDATE api_tokens SET last_used_at = :now WHERE id = :id", now=now, id=token_id
                )
        return principal

    # -- internals -----------------------------------------------------------------

    def _issue(
        self, sql: Sql, user_id: int, user_name: str, label: str | None, expires_at: datetime | None
    ) -> IssuedToken:
        token, now = new_token(), utcnow(self.clock)
        hint = token[: len(TOKEN_PREFIX) + 4]
        row = sql.first(
            "INSERT INTO api_tokens (user_id, token_hash, hint, label, created_at, expires_at) "
            "VALUES (:user_id, :hash, :hint, :label, :now, :expires) RETURNING id",
            user_id=user_id, hash=hash_token(token), hint=hint, label=label, now=now,
            expires=expires_at,
        )  # fmt: skip
        info = TokenInfo(
            id=_inserted(row),
            user=user_name,
            hint=hint,
            label=label,
            created_at=now,
            expires_at=to_utc(expires_at),
            revoked_at=None,
            last_used_at=None,
        )
        return IssuedToken(token=token, info=info)

    def _user(self, sql: Sql, name: str) -> UserInfo:
        row = sql.first(_SELECT_USERS + " WHERE u.name = :name", name=name)
        if row is None:
            raise NotFound(f"No user named {name!r}.", user=name)
        return _user_info(row)


def _inserted(row: tuple[Any, ...] | None) -> int:
    """The id an ``INSERT … RETURNING id`` returned (it always returns its row)."""
    if row is None:
        raise RuntimeError("INSERT … RETURNING returned no row")
    return int(row[0])


def _check_label(label: str | None) -> None:
    if label is not None and len(label) > 64:
        raise InputError("A token label is at most 64 characters.")


def _required(when: datetime | None) -> datetime:
    if when is None:  # a NOT NULL column
        raise ValueError("a required timestamp is missing")
    return when


def _user_info(row: tuple[Any, ...]) -> UserInfo:
    id_, name, role, department, created_at, disabled_at, active = row
    return UserInfo(
        id=id_,
        name=name,
        role=Role(role),
        department=department,
        created_at=_required(to_utc(created_at)),
        disabled_at=to_utc(disabled_at),
        active_tokens=int(active or 0),
    )


def _token_info(row: tuple[Any, ...]) -> TokenInfo:
    id_, user, hint, label, created_at, expires_at, revoked_at, last_used_at = row
    return TokenInfo(
        id=id_,
        user=user,
        hint=hint,
        label=label,
        created_at=_required(to_utc(created_at)),
        expires_at=to_utc(expires_at),
        revoked_at=to_utc(revoked_at),
        last_used_at=to_utc(last_used_at),
    )


@contextmanager
def department_users(home: Path, dept: str, database_url: str | None = None) -> Iterator[Users]:
    """The user store of department ``dept``'s broker, for a command line: its
    SQLite file through the standard library when it is already at the newest
    schema (no SQLAlchemy to import), else the full
    :meth:`~govshare.broker.database.Database.for_department` (PostgreSQL, a new
    file, one to migrate). Closed when the block ends."""
    store: Store | None = None
    if not database_url:
        from govshare.broker.devpostgres import dev_database_url

        if not dev_database_url(home, dept):  # not a dev home on PostgreSQL
            store = open_sqlite(broker_db_path(home, dept))
    if store is None:
        from govshare.broker.database import Database

        store = Database.for_department(home, dept, database_url)
    try:
        yield Users(store)
    finally:
        store.close()
