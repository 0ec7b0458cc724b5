"""Fixtures for broker tests: a real, migrated SQLite database file per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cliharness import Cli
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


# -- the real console script (shared with tests/cli) ------------------------------------


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "home")
