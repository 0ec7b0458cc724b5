"""Run the real ``govshare`` console script, as a user would."""

from __future__ import annotations

from pathlib import Path

import pytest

from cliharness import GOVSHARE, Cli, Result

__all__ = ["GOVSHARE", "Cli", "Result"]


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "home")
