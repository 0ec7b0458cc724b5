"""The real ``govshare`` console script, run as a user would (shared by the
CLI, broker and other test packages through their conftest)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    def __init__(self, home: Path, env: dict[str, str] | None = None) -> None:
        self.home = home
        self.env = {**os.environ, "GOVSHARE_HOME": str(home)}
        self.env.pop("GOVSHARE_DEPT", None)  # a profile picked by the caller's shell
        self.env.update(env or {})

    def __call__(self, *args: str, input: str | None = None, timeout: float = 120) -> Result:
        proc = subprocess.run(
            [str(GOVSHARE), *args],
            capture_output=True,
            text=True,
            env=self.env,
            input=input,
            timeout=timeout,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def ok(self, *args: str, **kw: Any) -> Result:
        r = self(*args, **kw)
        assert r.exit_code == 0, r.output
        return r

    def fails(self, *args: str, **kw: Any) -> Result:
        """A refused command: non-zero exit, one clean message, no traceback."""
        r = self(*args, **kw)
        assert r.exit_code != 0, r.output
        assert "Traceback" not in r.output, r.output
        return r
