"""Schemathesis against a live broker (chain, store) over real HTTP, with a
clerk's token and an administrator's: every check (``--checks all``), a
bounded number of cases per operation, a fixed seed. The OpenAPI document must
agree with the routes: no server error, no schema violation, no failure at
all (tests/api/schemathesis.toml names the refusals the document cannot state).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from govshare.broker.notifications import NotifySettings
from govshare.chain.devnode import AnvilProcess
from integration.world import Broker, World, build_world, start_broker

pytestmark = pytest.mark.integration

ST = Path(sys.executable).parent / "st"
CONFIG = Path(__file__).parent / "schemathesis.toml"
#: Test cases per operation and phase at most (the coverage phase adds its own
#: deterministic boundary cases): about a minute per token on 2 cores.
MAX_EXAMPLES = 10
SEED = 14


@pytest.fixture(scope="module")
def world(node: AnvilProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = build_world(node.url, tmp_path_factory.mktemp("home"), codes=("TAX", "MARKET"))
    yield w
    w.close()


@pytest.fixture(scope="module")
def tax(world: World) -> Iterator[Broker]:
    b = start_broker(world, "TAX")
    # GET /v1/events streams until the client leaves: here each stream ends at
    # once (its first poll), so that every case gets its whole answer
    b.svc.notifications.settings = NotifySettings(poll_interval=0.01, stream_max_age=0.01)
    yield b
    b.close()


def schemathesis(b: Broker, who: str, report: Path, *extra: str) -> subprocess.Popen[str]:
    """Start ``st run`` against ``b`` as ``who``, its JSON report to ``report``.
    One worker: hypothesis is not thread-safe everywhere (a second worker
    thread once failed in its lambda-source cache); the two tokens' runs go side
    by side instead, one core each."""
    cmd = [
        str(ST),
        "--config-file",
        str(CONFIG),
        "run",
        f"{b.dept.url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--header",
        f"Authorization: Bearer {b.tokens[who]}",
        # a publish answers at once (202) instead of waiting for its batch
        "--header",
        "Prefer: respond-async",
        "--report",
        "json",
        "--report-json-path",
        str(report),
        "--output-truncate",
        "false",
        *extra,
    ]
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=report.parent
    )


def test_schemathesis_finds_nothing(tax: Broker, tmp_path: Path) -> None:
    runs = {
        "clerk": schemathesis(tax, "clerk", tmp_path / "clerk.json"),
        # an administrator's run would revoke its own user (schemathesis lists the
        # users and revokes them): revoking is tested in test_hardening.py
        "admin": schemathesis(
            tax,
            "admin",
            tmp_path / "admin.json",
            "--exclude-path-regex",
            r"^/v1/users/\{name\}/revoke$",
        ),
    }
    outputs = {who: proc.communicate(timeout=600)[0] for who, proc in runs.items()}
    total = 0
    for who, output in outputs.items():
        path = tmp_path / f"{who}.json"
        assert path.is_file(), output
        report: dict[str, Any] = json.loads(path.read_text())
        cases = report["test_cases"]
        total += cases["generated"]
        print(f"schemathesis as {who}: {cases['generated']} test cases", file=sys.stderr)
        assert report["failures"] == [], output
        assert report["errors"] == [], output
        assert cases["with_failures"] == 0 and cases["errored"] == 0, output
        assert cases["generated"] >= 500, cases
        assert report["operations"]["tested"] >= 25, report["operations"]
        assert report["exit_code"] == 0, output
    print(f"schemathesis: {total} test cases, no failure", file=sys.stderr)
