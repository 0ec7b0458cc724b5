"""Fixtures for broker tests: a real, migrated SQLite database file per test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


# -- the real console script (the pattern of tests/cli/conftest.py) -------------------

GOVSHARE = Path(sys.executable).parent / "govshare"


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def json(self) -> Any:
        return json.loads(self.stdout)


class Cli:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {**os.environ, "GOVSHARE_HOME": str(home)}
        self.env.pop("GOVSHARE_DEPT", None)

    def __call__(self, *args: str, input: str | None = None) -> Result:
        proc = subprocess.run(
            [str(GOVSHARE), *args],
            capture_output=True,
            text=True,
            env=self.env,
            input=input,
            timeout=120,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def ok(self, *args: str, **kw: Any) -> Result:
        r = self(*args, **kw)
        assert r.exit_code == 0, r.output
        return r

    def fails(self, *args: str, **kw: Any) -> Result:
        r = self(*args, **kw)
        assert r.exit_code != 0, r.output
        assert "Traceback" not in r.output, r.output
        return r


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "home")
