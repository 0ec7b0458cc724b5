"""Plain SQL on the broker database, with or without SQLAlchemy.

The user store (``users.py``) is the one part of the broker a command line uses
on its own (`govshare user add|list|token|revoke`), and importing SQLAlchemy
costs more than the rest of such a command. So the store speaks plain SQL with
``:name`` parameters, portable between SQLite and PostgreSQL, through :class:`Sql`:

- :class:`SqliteSql`, over the standard library's ``sqlite3``: what the CLI uses
  on a department's SQLite file that is already at :data:`SCHEMA_REVISION`
  (:func:`open_sqlite`), with the same pragmas and ``BEGIN IMMEDIATE`` as the
  broker's engine;
- :class:`AlchemySql`, over a SQLAlchemy connection: what the broker itself uses
  (``Database.sql_reading`` / ``Database.sql_writing``), and the CLI on
  PostgreSQL or on a database that still needs migrating.

Both store timestamps as SQLAlchemy's ``UTCDateTime`` does (on SQLite, naive UTC
text ``YYYY-MM-DD HH:MM:SS.ffffff``; on PostgreSQL, ``timestamptz``), so rows
written either way read back the same either way (a test writes with one and
reads with the other). Nothing here imports SQLAlchemy.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from govshare.errors import DatabaseUnavailable
from govshare.home import dept_dir

#: The newest migration's revision (a test checks it is Alembic's head): a database
#: already there opens without loading Alembic and its scripts.
SCHEMA_REVISION = "0010"

#: Milliseconds a connection waits for SQLite's write lock before giving up.
SQLITE_BUSY_TIMEOUT_MS = 30_000

#: Every SQLite connection of a broker, whichever driver opens it: wait for the
#: write lock, write-ahead log, a commit survives a power cut, foreign keys on.
SQLITE_PRAGMAS = (
    f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}",
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = FULL",
    "PRAGMA foreign_keys = ON",
)

_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"

# What a driver says → what a clerk or operator reads (first match wins).
_CAUSES = (
    ("locked", "another writer held it locked past the busy timeout"),
    ("busy", "another writer held it locked past the busy timeout"),
    ("disk is full", "the disk is full"),
    ("no space left", "the disk is full"),
    ("readonly", "its file is read-only"),
    ("read-only", "its file is read-only"),
    ("disk i/o error", "the disk failed to read or write it"),
    ("unable to open", "its file cannot be opened (missing folder or permissions)"),
    ("no such table", "its file is missing or was replaced"),
    ("not a database", "its file is damaged (not a database)"),
    ("malformed", "its file is damaged"),
    ("connection refused", "the database server refuses connections (is it running?)"),
    ("could not connect", "the database server cannot be reached"),
    ("connection", "the connection to the database server failed"),
    ("timeout", "the database did not answer in time"),
    ("terminating", "the database server is shutting down"),
)


def unavailable(driver_error: BaseException) -> DatabaseUnavailable:
    """A driver's outage as the sentence a clerk reads: it names the cause,
    never the SQL or a password."""
    said = str(driver_error).lower()
    cause = next(
        (why for needle, why in _CAUSES if needle in said),
        f"the database driver reported {type(driver_error).__name__}",
    )
    return DatabaseUnavailable(
        f"The broker's database cannot be used now: {cause}. Nothing was changed; "
        "retry once it is fixed.",
        cause=type(driver_error).__name__,
    )


def broker_db_path(home: Path, dept: str) -> Path:
    """Where a department's broker keeps its SQLite database: ``HOME/depts/CODE/broker.db``."""
    return dept_dir(home, dept) / "broker.db"


class UniqueViolation(Exception):
    """A statement broke a unique constraint (whichever driver ran it)."""


def to_utc(value: Any) -> datetime | None:
    """A timestamp column's value, as an aware UTC datetime (None stays None)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise TypeError(f"not a timestamp: {type(value).__name__}")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Sql(Protocol):
    """One transaction's statements: ``:name`` parameters, rows as tuples."""

    def all(self, sql: str, **params: Any) -> list[tuple[Any, ...]]: ...

    def run(self, sql: str, **params: Any) -> None:
        """A statement that returns no rows (an ``UPDATE``)."""
        ...

    def first(self, sql: str, **params: Any) -> tuple[Any, ...] | None: ...


def _sqlite_param(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime: govshare stores timezone-aware UTC timestamps")
        return value.astimezone(UTC).replace(tzinfo=None).strftime(_SQLITE_TIME)
    return value


class _Statements:
    """:class:`Sql`'s three calls over a driver's ``_execute`` (whose result, a
    ``sqlite3`` cursor or a SQLAlchemy result, has ``fetchall``)."""

    def _execute(self, sql: str, params: dict[str, Any]) -> Any:
        raise NotImplementedError

    def all(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self._execute(sql, params).fetchall()]

    def run(self, sql: str, **params: Any) -> None:
        self._execute(sql, params)

    def first(self, sql: str, **params: Any) -> tuple[Any, ...] | None:
        rows = self.all(sql, **params)
        return rows[0] if rows else None


class SqliteSql(_Statements):
    """:class:`Sql` on a ``sqlite3`` connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def _execute(self, sql: str, params: dict[str, Any]) -> sqlite3.Cursor:
        try:
            return self._conn.execute(sql, {k: _sqlite_param(v) for k, v in params.items()})
        except sqlite3.IntegrityError as exc:
            if "unique" in str(exc).lower():
                raise UniqueViolation(str(exc)) from exc
            raise


class AlchemySql(_Statements):
    """:class:`Sql` on a SQLAlchemy connection (SQLite or PostgreSQL)."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self._sqlite = conn.dialect.name == "sqlite"

    def _execute(self, sql: str, params: dict[str, Any]) -> Any:
        from sqlalchemy.exc import IntegrityError

        if self._sqlite:
            params = {k: _sqlite_param(v) for k, v in params.items()}
        try:
            return self._conn.execute(_text(sql), params)
        except IntegrityError as exc:
            if "unique" in str(exc.orig).lower():
                raise UniqueViolation(str(exc.orig)) from exc
            raise


@functools.lru_cache(maxsize=64)
def _text(sql: str) -> Any:
    """The statement for ``sql``, built once (the token check runs on every request)."""
    from sqlalchemy import text

    return text(sql)


class SqliteFile:
    """A broker's SQLite database opened with the standard library: the user
    store's statements, one transaction per block, nothing else. Opened only at
    :data:`SCHEMA_REVISION` (:func:`open_sqlite`)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[Sql]:
        try:
            self._conn.execute(begin)
            try:
                yield SqliteSql(self._conn)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        except sqlite3.IntegrityError:
            raise
        except (sqlite3.OperationalError, sqlite3.DatabaseError) as exc:
            raise unavailable(exc) from exc

    def sql_reading(self) -> AbstractContextManager[Sql]:
        """A read transaction (a plain ``BEGIN``: no write lock)."""
        return self._transaction("BEGIN")

    def sql_writing(self) -> AbstractContextManager[Sql]:
        """A write transaction (``BEGIN IMMEDIATE``, as the broker's engine)."""
        return self._transaction("BEGIN IMMEDIATE")

    def close(self) -> None:
        self._conn.close()


def open_sqlite(path: Path) -> SqliteFile | None:
    """``path`` opened with ``sqlite3`` when it is a broker database already at
    :data:`SCHEMA_REVISION`; None otherwise (no file yet, an older schema, not a
    database, a read failure): the caller then opens it the full way, which
    creates, migrates or says what is wrong."""
    if not path.is_file():
        return None
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except sqlite3.Error:
        return None
    try:
        for pragma in SQLITE_PRAGMAS:
            conn.execute(pragma)
        rows = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    except sqlite3.Error:
        conn.close()
        return None
    if len(rows) != 1 or rows[0][0] != SCHEMA_REVISION:
        conn.close()
        return None
    return SqliteFile(conn)
