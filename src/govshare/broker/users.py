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

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError as SAIntegrityError
from sqlalchemy.orm import Session

from govshare.broker.database import ApiToken, Database, Role, User
from govshare.broker.errors import AlreadyExists, InvalidToken, LastAdministrator
from govshare.clock import SYSTEM_CLOCK, Clock, utcnow
from govshare.errors import InputError, NotFound

TOKEN_PREFIX = "gs_"  # noqa: S105 (a prefix, not a secret)
_TOKEN_BYTES = 32
_TOKEN_RE = re.compile(r"gs_[A-Za-z0-9_-]{43}")
#: A user name: 1-64 of letters, digits and ``. _ @ -``, the first a letter or digit
#: (the API's schema states the same pattern).
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"
_NAME_RE = re.compile(NAME_PATTERN.strip("^$"))
_DEPT_RE = re.compile(r"[A-Z0-9_]{2,16}")

_INVALID_TOKEN = "The bearer token is unknown, revoked or expired."  # noqa: S105


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


def _token_info(t: ApiToken, user_name: str) -> TokenInfo:
    return TokenInfo(
        id=t.id,
        user=user_name,
        hint=t.hint,
        label=t.label,
        created_at=t.created_at,
        expires_at=t.expires_at,
        revoked_at=t.revoked_at,
        last_used_at=t.last_used_at,
    )


class Users:
    """Users and tokens of one broker database."""

    def __init__(
        self,
        db: Database,
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
        try:
            with self.db.session() as s:
                user = User(name=name, role=r.value, department=dept, created_at=utcnow(self.clock))
                s.add(user)
                s.flush()
                issued = self._issue(s, user, label, expires_at)
                info = self._user_info(s, user)
        except SAIntegrityError:
            raise AlreadyExists(f"A user named {name!r} already exists.", user=name) from None
        return info, issued

    def get(self, name: str) -> UserInfo:
        with self.db.session(readonly=True) as s:
            return self._user_info(s, self._load(s, name))

    def list_users(self) -> list[UserInfo]:
        with self.db.session(readonly=True) as s:
            users = s.scalars(select(User).order_by(User.name)).all()
            return [self._user_info(s, u) for u in users]

    def revoke(self, name: str) -> UserInfo:
        """Disable a user and revoke all their tokens (their name stays taken).
        The department's last active administrator cannot be revoked (as the
        contract keeps a department's last admin key): the API and the CLI
        would have no one left to manage the broker's users."""
        now = utcnow(self.clock)
        with self.db.session() as s:
            user = self._load(s, name)
            if user.disabled_at is None and user.role == Role.ADMIN.value:
                self._keep_an_admin(s, user)
            if user.disabled_at is None:
                user.disabled_at = now
            for t in user.tokens:
                if t.revoked_at is None:
                    t.revoked_at = now
            s.flush()
            return self._user_info(s, user)

    def _keep_an_admin(self, s: Session, user: User) -> None:
        others = s.scalar(
            select(func.count())
            .select_from(User)
            .where(
                User.department == user.department,
                User.role == Role.ADMIN.value,
                User.disabled_at.is_(None),
                User.id != user.id,
            )
        )
        if not others:
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
        with self.db.session() as s:
            user = self._load(s, name)
            if user.disabled_at is not None:
                raise InputError(f"User {name!r} is disabled; add a new user instead.")
            return self._issue(s, user, label, expires_at)

    def tokens(self, name: str) -> list[TokenInfo]:
        with self.db.session(readonly=True) as s:
            user = self._load(s, name)
            return [_token_info(t, user.name) for t in sorted(user.tokens, key=lambda t: t.id)]

    def revoke_token(self, token_id: int) -> TokenInfo:
        with self.db.session() as s:
            t = s.get(ApiToken, token_id)
            if t is None:
                raise NotFound(f"No token with id {token_id}.", token_id=token_id)
            if t.revoked_at is None:
                t.revoked_at = utcnow(self.clock)
            return _token_info(t, t.user.name)

    def authenticate(self, token: str) -> Principal:
        """The user behind ``token``; :class:`InvalidToken` if it is malformed,
        unknown, revoked, expired, or its user is disabled (one message for all:
        a caller learns nothing about which tokens exist)."""
        if not looks_like_token(token):
            raise InvalidToken(_INVALID_TOKEN)
        digest = hash_token(token)
        now = utcnow(self.clock)
        tok, usr = ApiToken.__table__.c, User.__table__.c
        # Core, not the ORM: this runs on every request
        with self.db.reading() as conn:
            row = conn.execute(
                select(
                    tok.id, tok.token_hash, tok.revoked_at, tok.expires_at, tok.last_used_at,
                    usr.id, usr.name, usr.role, usr.department, usr.disabled_at,
                )
                .join_from(ApiToken.__table__, User.__table__, tok.user_id == usr.id)
                .where(tok.token_hash == digest)
            ).first()  # fmt: skip
        if row is None:
            raise InvalidToken(_INVALID_TOKEN)
        (token_id, token_hash, revoked_at, expires_at, last_used_at,
         user_id, name, role, department, disabled_at) = row  # fmt: skip
        usable = (
            hmac.compare_digest(token_hash, digest)
            and revoked_at is None
            and (expires_at is None or expires_at > now)
            and disabled_at is None
        )
        if not usable:
            raise InvalidToken(_INVALID_TOKEN)
        principal = Principal(
            user_id=user_id, name=name, role=Role(role), department=department, token_id=token_id
        )
        stale = last_used_at is None or now - last_used_at >= self._touch_every
        if stale:
            with self.db.session() as s:
                fresh = s.get(ApiToken, principal.token_id)
                if fresh is not None:
                    fresh.last_used_at = now
        return principal

    # -- internals -----------------------------------------------------------------

    def _issue(
        self, s: Session, user: User, label: str | None, expires_at: datetime | None
    ) -> IssuedToken:
        if label is not None and len(label) > 64:
            raise InputError("A token label is at most 64 characters.")
        token = new_token()
        t = ApiToken(
            user_id=user.id,
            token_hash=hash_token(token),
            hint=token[: len(TOKEN_PREFIX) + 4],
            label=label,
            created_at=utcnow(self.clock),
            expires_at=expires_at,
        )
        s.add(t)
        s.flush()
        return IssuedToken(token=token, info=_token_info(t, user.name))

    def _load(self, s: Session, name: str) -> User:
        user = s.scalars(select(User).where(User.name == name)).first()
        if user is None:
            raise NotFound(f"No user named {name!r}.", user=name)
        return user

    def _user_info(self, s: Session, user: User) -> UserInfo:
        active = s.scalar(
            select(func.count())
            .select_from(ApiToken)
            .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        )
        return UserInfo(
            id=user.id,
            name=user.name,
            role=Role(user.role),
            department=user.department,
            created_at=user.created_at,
            disabled_at=user.disabled_at,
            active_tokens=int(active or 0),
        )
