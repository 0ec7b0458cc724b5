"""The broker database: migrations, SQLite settings, constraints, timestamps."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from govshare.broker.db import (
    SCHEMA_REVISION,
    AccessRequest,
    ApiToken,
    Database,
    ExchangeNonce,
    Operation,
    Receipt,
    Record,
    User,
    WrappedKey,
    broker_db_path,
    schema,
    sqlite_url,
)
from govshare.errors import ConfigError

H = "0x" + "ab" * 32


def test_open_migrates_to_head_and_models_match_migrations(db: Database) -> None:
    from alembic.script import ScriptDirectory

    from govshare.broker.db import alembic_config

    # (a database at SCHEMA_REVISION opens without Alembic: it must be the head)
    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == SCHEMA_REVISION
    assert db.revision() == "0010"
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), schema())
    assert diff == [], diff


@pytest.mark.sqlite_only
def test_open_is_idempotent(db_path: Path, db: Database) -> None:
    with db.session() as s:
        s.add(User(name="alice", role="clerk", department="TAX"))
    again = Database.open(sqlite_url(db_path))
    try:
        assert again.revision() == "0010"
        with again.session(readonly=True) as s:
            assert s.scalar(select(User.name)) == "alice"
    finally:
        again.close()


@pytest.mark.sqlite_only
def test_sqlite_pragmas_on_every_connection(db: Database) -> None:
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000


@pytest.mark.sqlite_only
def test_write_sessions_take_the_write_lock_up_front(db: Database) -> None:
    """BEGIN IMMEDIATE: while one write session is open, another writer waits
    (here: a raw connection with no busy timeout fails at once)."""
    with db.session() as s:
        s.execute(text("SELECT 1"))
        raw = sqlite3.connect(db.engine.url.database, timeout=0, isolation_level=None)
        try:
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                raw.execute("BEGIN IMMEDIATE")
            raw.execute("SELECT count(*) FROM users").fetchone()  # readers are not blocked
        finally:
            raw.close()


def test_session_rolls_back_on_error(db: Database) -> None:
    with pytest.raises(RuntimeError), db.session() as s:
        s.add(User(name="bob", role="clerk", department="TAX"))
        s.flush()
        raise RuntimeError("boom")
    with db.session(readonly=True) as s:
        assert s.scalar(select(User).where(User.name == "bob")) is None


def test_foreign_keys_are_enforced(db: Database) -> None:
    with pytest.raises(IntegrityError), db.session() as s:
        s.add(ApiToken(user_id=999, token_hash="0" * 64, hint="gs_x"))


def test_check_constraints(db: Database) -> None:
    with pytest.raises(IntegrityError), db.session() as s:
        s.add(User(name="eve", role="superuser", department="TAX"))


def test_unique_constraints(db: Database) -> None:
    later = datetime.now(UTC) + timedelta(minutes=5)
    with db.session() as s:
        s.add(ExchangeNonce(signer="0x" + "11" * 20, nonce="7", expires_at=later))
    with pytest.raises(IntegrityError), db.session() as s:
        s.add(ExchangeNonce(signer="0x" + "11" * 20, nonce="7", expires_at=later))

    def receipt(seq: int, request_hash: str) -> Receipt:
        return Receipt(
            owner="TAX",
            seq=seq,
            grant_id=H,
            record_id=H,
            requester="MARKET",
            request_hash=request_hash,
            ciphertext_cid="bafy",
            capsule_hash=H,
            issued_at=datetime.now(UTC),
            requester_signature="0x01",
            owner_signature="0x02",
        )

    with db.session() as s:
        s.add(receipt(1, "0x" + "01" * 32))
    with pytest.raises(IntegrityError), db.session() as s:
        s.add(receipt(1, "0x" + "02" * 32))  # same (owner, seq)
    with db.session(readonly=True) as s:
        assert s.scalar(select(Receipt.seq)) == 1


def test_timestamps_come_back_aware_utc(db: Database) -> None:
    plus8 = timezone(timedelta(hours=8))
    local = datetime(2026, 1, 2, 11, 0, tzinfo=plus8)
    with db.session() as s:
        s.add(
            AccessRequest(
                request_id=H,
                requester="MARKET",
                owner="TAX",
                record_id=H,
                purpose="business licence",
                deadline=local,
                updated_block=5,
            )
        )
    with db.session(readonly=True) as s:
        got = s.get(AccessRequest, H)
        assert got is not None
        assert got.deadline == local
        assert got.deadline is not None and got.deadline.utcoffset() == timedelta(0)
        assert got.updated_at.tzinfo is not None


def test_naive_datetimes_are_refused(db: Database) -> None:
    with pytest.raises(Exception, match="naive datetime"), db.session() as s:
        s.add(User(name="n", role="clerk", department="TAX", created_at=datetime(2026, 1, 1)))
        s.flush()


def test_record_with_wrapped_keys_round_trip(db: Database) -> None:
    with db.session() as s:
        rec = Record(
            record_id=H,
            category="tax-clearance",
            subject_ref="0x" + "cd" * 32,
            sha256="ef" * 32,
            size=4096,
            own_capsule=b"\x00capsule",
        )
        rec.wrapped_keys.append(
            WrappedKey(
                recipient_dept="MARKET",
                recipient_key_id="x25519:abcd",
                grant_id=H,
                algorithm="hpke-x25519",
                capsule=b"\x01\x02",
                capsule_hash="0x" + "99" * 32,
            )
        )
        s.add(rec)
    with db.session(readonly=True) as s:
        got = s.get(Record, H)
        assert got is not None and got.status == "pending" and got.own_capsule == b"\x00capsule"
        assert [w.recipient_dept for w in got.wrapped_keys] == ["MARKET"]


def test_in_memory_sqlite_is_refused() -> None:
    with pytest.raises(ConfigError, match="file"):
        Database.open("sqlite://")


def test_bad_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        Database.open("not a url")


def test_broker_db_path_is_under_the_department(tmp_path: Path) -> None:
    assert broker_db_path(tmp_path, "tax") == tmp_path / "depts" / "TAX" / "broker.db"


def test_committed_write_survives_a_killed_process(tmp_path: Path) -> None:
    """What a session committed is on disk, even if the process dies right after."""
    path = tmp_path / "b.db"
    code = (
        "import os\n"
        "from govshare.broker.db import Database, Operation, sqlite_url\n"
        f"db = Database.open(sqlite_url({str(path)!r}))\n"
        "with db.session() as s:\n"
        "    s.add(Operation(id='op1', kind='k', principal='system', idempotency_key='k',\n"
        "                    fingerprint='0'*64, payload={'a': 1}))\n"
        "os._exit(9)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 9, proc.stderr
    db = Database.open(sqlite_url(path))
    try:
        with db.session(readonly=True) as s:
            op = s.get(Operation, "op1")
            assert op is not None and op.payload == {"a": 1}
    finally:
        db.close()


def test_department_database_is_private(tmp_path: Path) -> None:
    """The broker database holds token hashes and receipts: owner-only, like the keys."""
    import stat

    db = Database.for_department(tmp_path, "TAX")
    with db.session() as s:
        s.execute(text("SELECT 1"))
    db.close()
    for f in (tmp_path / "depts" / "TAX").glob("broker.db*"):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
