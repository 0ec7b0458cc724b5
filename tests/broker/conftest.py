"""Fixtures for broker tests: a real, migrated database per test (SQLite, then PostgreSQL)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from cliharness import Cli
from govshare.broker.db import Database, sqlite_url
from govshare.chain.devnode import AnvilProcess
from integration.world import DATABASES, World, build_world, put_databases


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "broker.db"


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, db_path: Path) -> Iterator[Database]:
    """A migrated broker database: a SQLite file, then (the test's second run) a
    fresh database of the session's PostgreSQL cluster. A test of SQLite itself
    marks itself ``sqlite_only`` and runs once."""
    if request.param == "postgresql":
        cluster = request.getfixturevalue("postgres_cluster")
        database = Database.open(cluster.create_database(f"t_{uuid.uuid4().hex[:16]}"))
    else:
        database = Database.open(sqlite_url(db_path))
    try:
        yield database
    finally:
        database.close()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A ``sqlite_only`` test has no PostgreSQL run (deselected, not skipped)."""
    drop = [
        i
        for i in items
        if i.get_closest_marker("sqlite_only")
        and getattr(getattr(i, "callspec", None), "params", {}).get("db") == "postgresql"
    ]
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = [i for i in items if i not in drop]


# -- a consortium on a real chain ------------------------------------------------------------


@pytest.fixture(scope="module", params=DATABASES)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """A module's consortium on its own anvil: the departments, their brokers'
    databases in SQLite files, then (the module's second run) in the session's
    PostgreSQL cluster. A module that needs another defines its own."""
    with AnvilProcess() as node:
        w = build_world(node.url, tmp_path_factory.mktemp("home"))
        put_databases(w, request)
        yield w
        w.close()


# -- the real console script (shared with tests/cli) ------------------------------------


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "home")
