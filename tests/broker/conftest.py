"""Fixtures for broker tests: a real, migrated SQLite database file per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from govshare.broker.db import Database, sqlite_url


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "broker.db"


@pytest.fixture
def db(db_path: Path) -> Iterator[Database]:
    database = Database.open(sqlite_url(db_path))
    try:
        yield database
    finally:
        database.close()
