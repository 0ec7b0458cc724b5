"""The broker database's engine, sessions and user tables: what every use of the
database needs, without the rest of the schema.

:class:`Database` opens (and migrates) a broker's database; :class:`Base` is the
declarative base of every model; ``users`` and ``api_tokens`` (the user store,
``users.py``) are defined here so that `govshare user …` and API authentication
load neither the other models nor the ledger mirror's tables (and the chain code
behind them). :mod:`govshare.broker.db` holds the other tables and re-exports
this module: import from there.
"""

from __future__ import annotations

import contextlib
import enum
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Dialect,
    Engine,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    TypeDecorator,
    create_engine,
    event,
    text,
)
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DatabaseError,
    DataError,
    IntegrityError,
    InterfaceError,
    NotSupportedError,
    ProgrammingError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    mapped_column,
    relationship,
    sessionmaker,
)

from govshare.broker.sqlstore import (
    SCHEMA_REVISION,
    SQLITE_PRAGMAS,
    AlchemySql,
    Sql,
    broker_db_path,
    unavailable,
)
from govshare.broker.users import Role
from govshare.clock import utcnow
from govshare.errors import ConfigError, DatabaseUnavailable
from govshare.util import SQL_NAMING_CONVENTION

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).with_name("migrations")

# Column defaults below read the system clock (``utcnow``); wherever a time is
# compared with *now*, the code writes it from the clock it was given instead.

# Option on an engine/connection telling the SQLite "begin" hook which BEGIN to emit.
_BEGIN_OPTION = "govshare_sqlite_begin"


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware.

    SQLite has no timezone type (values come back naive); PostgreSQL's
    ``timestamptz`` converts naive values with the session's time zone. So:
    aware UTC in, aware UTC out, on both; naive datetimes are refused.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: govshare stores timezone-aware UTC timestamps")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _values(e: type[enum.Enum]) -> str:
    return ", ".join(f"'{m.value}'" for m in e)


class Base(DeclarativeBase):
    # Named constraints: Alembic can later alter them (SQLite batch mode needs names).
    metadata = MetaData(naming_convention=SQL_NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        bytes: LargeBinary(),
    }


# Widths: record / request / grant ids and hashes are 0x-prefixed 32-byte hex (66);
# department codes are short; CIDs (CIDv1 base32) fit in 128.
_ID = 66
_DEPT = 16
_CID = 128


class User(Base):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint(f"role IN ({_values(Role)})", name="role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    department: Mapped[str] = mapped_column(String(_DEPT))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    disabled_at: Mapped[datetime | None]

    tokens: Mapped[list[ApiToken]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )


class ApiToken(Base):
    """A bearer token, kept only as its SHA-256 (see ``users.py`` for why that suffices)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hint: Mapped[str] = mapped_column(String(16))  # "gs_AbCd": tells tokens apart in lists
    label: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]

    user: Mapped[User] = relationship(back_populates="tokens")


# -- engine and sessions -------------------------------------------------------------


def _install_sqlite_pragmas(engine: Engine) -> None:
    """Per-connection SQLite settings, and SQLAlchemy-controlled transactions.

    pysqlite's own transaction handling is switched off (it would start
    transactions lazily and never for DDL); SQLAlchemy emits ``BEGIN`` itself,
    as recommended by its SQLite dialect documentation.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        try:
            for pragma in SQLITE_PRAGMAS:
                cur.execute(pragma)
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(_BEGIN_OPTION, "IMMEDIATE")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if mode == "IMMEDIATE" else "BEGIN")


# -- database failures -----------------------------------------------------------------

#: What a database that cannot be used now raises (SQLite locked past the busy
#: timeout, disk full, a read-only or damaged file; PostgreSQL down): each becomes
#: :class:`~govshare.errors.DatabaseUnavailable`. OperationalError is a DatabaseError.
DATABASE_FAILURES: tuple[type[SQLAlchemyError], ...] = (DatabaseError, InterfaceError, PoolTimeout)
# Bugs, not outages: a constraint (handled where expected), bad SQL, bad data.
_NOT_FAILURES = (IntegrityError, ProgrammingError, DataError, NotSupportedError)


def database_unavailable(exc: BaseException) -> DatabaseUnavailable | None:
    """``exc`` as a :class:`DatabaseUnavailable` when it is a database outage,
    else None. The sentence names the cause, never the SQL or a password."""
    if not isinstance(exc, DATABASE_FAILURES) or isinstance(exc, _NOT_FAILURES):
        return None
    return unavailable(getattr(exc, "orig", None) or exc)


@contextmanager
def translate_database_errors() -> Iterator[None]:
    """Re-raise a database outage inside the block as :class:`DatabaseUnavailable`."""
    try:
        yield
    except DATABASE_FAILURES as exc:
        translated = database_unavailable(exc)
        if translated is None:
            raise
        raise translated from exc


def _parse_url(url: str | URL) -> URL:
    try:
        return make_url(url)
    except ArgumentError as exc:
        raise ConfigError("The broker database URL is not a valid database URL.") from exc


def _make_engine(url: URL) -> Engine:
    if url.get_backend_name() == "sqlite":
        if url.database in (None, "", ":memory:"):
            raise ConfigError(
                "The broker database must be a file: an in-memory SQLite database "
                "would lose every acknowledged write when the broker stops."
            )
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url)
        _install_sqlite_pragmas(engine)
        return engine
    return create_engine(url, pool_pre_ping=True)


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic configuration built in code, pointing at the packaged migrations."""
    from alembic.config import Config  # imported when needed: Alembic is not light

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def sqlite_url(path: Path) -> str:
    """The SQLAlchemy URL of a SQLite database file."""
    return f"sqlite:///{Path(path).expanduser().resolve()}"


def _safe_url(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def insert_if_absent(conn: Connection, entity: type[Base], **values: Any) -> None:
    """``INSERT … ON CONFLICT DO NOTHING`` on SQLite and PostgreSQL: the row of a
    counter, created by whoever comes first."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        conn.execute(postgresql.insert(entity).values(**values).on_conflict_do_nothing())
    else:
        from sqlalchemy.dialects import sqlite

        conn.execute(sqlite.insert(entity).values(**values).on_conflict_do_nothing())


def bump(
    conn: Connection,
    stmt: Any,
    entity: type[Base],
    *,
    params: dict[str, Any] | None = None,
    **row: Any,
) -> Any:
    """Run ``stmt`` (an ``UPDATE … RETURNING`` of a counter row, with ``params``
    for its bound parameters) and return its value; when it touched nothing
    because the row does not exist yet, create the row (``row``, by whoever comes
    first) and run it once more. None: the row exists and ``stmt``'s condition
    refused (a quota used up). The common case costs one statement."""
    value = conn.scalar(stmt, params)
    if value is None:
        insert_if_absent(conn, entity, **row)
        value = conn.scalar(stmt, params)
    return value


class Database:
    """A migrated broker database: an engine and its sessions.

    ``with db.session() as s: ...`` is one write transaction (committed on
    success, rolled back on error); ``db.session(readonly=True)`` reads without
    taking SQLite's write lock.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._writer = sessionmaker(engine, expire_on_commit=False)
        # Reads need no write lock: a plain (deferred) BEGIN on SQLite.
        self._read_engine = (
            engine.execution_options(**{_BEGIN_OPTION: "DEFERRED"})
            if engine.dialect.name == "sqlite"
            else engine
        )
        self._reader = sessionmaker(self._read_engine, expire_on_commit=False)
        # SQLite has one writer at a time, and a writer that finds the lock taken
        # polls for it with growing sleeps (its busy handler): under load a thread
        # can lose that race for seconds. This process's writers queue here
        # instead and are woken as soon as the one before them commits; another
        # process's writer still meets SQLite's own wait (``busy_timeout``).
        self._write_turn: threading.RLock | None = (
            threading.RLock() if engine.dialect.name == "sqlite" else None
        )

    @classmethod
    def open(cls, url: str | URL, *, migrate: bool = True) -> Database:
        """Connect to ``url`` and bring its schema to the newest revision."""
        parsed = _parse_url(url)
        engine = _make_engine(parsed)
        db = cls(engine)
        if migrate:
            try:
                with translate_database_errors():
                    if db._stored_revision() != SCHEMA_REVISION:
                        db.migrate()
            except DatabaseUnavailable:
                engine.dispose()
                raise
            except SQLAlchemyError as exc:
                engine.dispose()
                raise ConfigError(
                    f"Could not open the broker database at {_safe_url(parsed)}: "
                    f"{type(exc).__name__}."
                ) from exc
        return db

    @classmethod
    def for_department(cls, home: Path, dept: str, url: str | None = None) -> Database:
        """The department's own broker database: ``url`` when one is configured
        (``GOVSHARE_DATABASE_URL``: PostgreSQL, say), else its database in the home's
        dev cluster (``dev up --database postgresql``), else its SQLite file under
        the govshare home, readable by its owner only (SQLite gives its -wal and
        -shm files the same mode)."""
        if not url:
            from govshare.broker.devpostgres import dev_database_url

            url = dev_database_url(home, dept)  # a dev home on PostgreSQL
        if url:
            return cls.open(url)
        path = broker_db_path(home, dept)
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        os.chmod(path, 0o600)
        return cls.open(sqlite_url(path))

    @property
    def read_engine(self) -> Engine:
        """The engine for reads (on SQLite, a plain BEGIN: no write lock)."""
        return self._read_engine

    @property
    def url(self) -> str:
        """The database URL, password hidden (safe to log)."""
        return _safe_url(self.engine.url)

    def _stored_revision(self) -> str | None:
        """The revision Alembic recorded, read with one query and no Alembic; None
        when there is none to read (a new database) or the query fails: then
        :meth:`migrate` runs, and says what is wrong."""
        try:
            with self._read_engine.connect() as conn:
                rows = conn.execute(text("SELECT version_num FROM alembic_version")).all()
        except SQLAlchemyError:
            return None
        return str(rows[0][0]) if len(rows) == 1 else None

    def migrate(self, revision: str = "head") -> None:
        """Upgrade the schema to ``revision`` (idempotent; one transaction)."""
        from alembic import command

        with self.engine.begin() as conn:
            command.upgrade(alembic_config(conn), revision)

    def revision(self) -> str | None:
        """The schema revision the database is at."""
        from alembic.runtime.migration import MigrationContext

        with self._read_engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    @contextmanager
    def session(self, *, readonly: bool = False) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back on error.
        A database outage raises :class:`~govshare.errors.DatabaseUnavailable`."""
        maker = self._reader if readonly else self._writer
        turn = self._write_turn if not readonly else None
        with (
            turn if turn is not None else contextlib.nullcontext(),
            translate_database_errors(),
            maker() as s,
            s.begin(),
        ):
            yield s

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A Core connection for reads on a hot path (no ORM session to build):
        one transaction, closed when the block ends."""
        with translate_database_errors(), self._read_engine.connect() as conn:
            yield conn

    @contextmanager
    def writing(self) -> Iterator[Connection]:
        """:meth:`session`'s Core twin for a hot path: one write transaction,
        committed when the block ends, rolled back on error."""
        turn = self._write_turn
        with (
            turn if turn is not None else contextlib.nullcontext(),
            translate_database_errors(),
            self.engine.begin() as conn,
        ):
            yield conn

    @contextmanager
    def sql_reading(self) -> Iterator[Sql]:
        """:meth:`reading` for plain SQL (the user store's, ``sqlstore.py``)."""
        with self.reading() as conn:
            yield AlchemySql(conn)

    @contextmanager
    def sql_writing(self) -> Iterator[Sql]:
        """:meth:`writing` for plain SQL (the user store's, ``sqlstore.py``)."""
        with self.writing() as conn:
            yield AlchemySql(conn)

    def ping(self) -> None:
        """A trivial query; raises :class:`~govshare.errors.DatabaseUnavailable`
        if the database cannot answer (readiness probe)."""
        with translate_database_errors(), self._read_engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
