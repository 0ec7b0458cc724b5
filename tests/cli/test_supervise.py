"""``govshare request remind|escalate`` (催办 / 督办), run as their own module
(``python -m govshare.cli.supervise``) until the ``request`` group registers
them: real keystores, a real chain, each refusal a sentence and nothing sent."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account import Account

from govshare.chain.devnode import AnvilProcess
from integration.world import CATEGORY, GOVSHARE, PASSWORD, World, build_world, cli_env

pytestmark = pytest.mark.integration


@dataclass
class Setup:
    world: World
    request_id: int

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = cli_env(self.world, GOVSHARE_ADMIN_PASSWORD=PASSWORD)
        return subprocess.run(
            [sys.executable, "-m", "govshare.cli.supervise", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )

    def ok(self, *args: str) -> Any:
        p = self.run(*args, "-y", "--json")
        assert p.returncode == 0, p.stdout + p.stderr
        return json.loads(p.stdout)

    def fails(self, *args: str) -> str:
        p = self.run(*args, "-y")
        assert p.returncode != 0, p.stdout + p.stderr
        assert "Traceback" not in p.stderr
        return p.stderr


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    with AnvilProcess() as node:
        w = build_world(node.url, tmp_path_factory.mktemp("home"))
        rid = "0x" + os.urandom(32).hex()
        w.ledger.records.anchor(
            w["TAX"].broker, rid, hashlib.sha256(b"x").digest(), "bafkreiexample", CATEGORY
        )
        deadline = w.ledger.now() + 120
        sent = w.ledger.access.request_access(
            w["MARKET"].broker, "TAX", rid, "licence", "", deadline
        )
        yield Setup(w, sent.value)
        w.close()


def test_the_supervision_loop(setup: Setup) -> None:
    rid = str(setup.request_id)
    assert "is not overdue" in setup.fails("remind", rid, "--as", "MARKET")
    ledger = setup.world.ledger
    ledger.conn.request("evm_increaseTime", [300])
    ledger.conn.request("evm_mine", [])

    first = setup.ok("remind", rid, "--as", "MARKET")
    assert first["reminder_count"] == 1 and first["tx_hash"].startswith("0x")
    second = setup.ok("remind", rid, "--as", "MARKET", "--key", "broker")
    assert second["reminder_count"] == 2
    assert "only the requesting department" in setup.fails("remind", rid, "--as", "COURT")
    assert "There is no request 99" in setup.fails("remind", "99", "--as", "MARKET")

    assert "no supervisors" in setup.fails("escalate", rid, "--as", "MARKET")
    sup = Account.create().address
    pid = ledger.registry.propose_add_supervisor(setup.world["TAX"].admin, sup).value
    ledger.registry.approve(setup.world["COURT"].admin, pid)
    up = setup.ok("escalate", rid, "--as", "MARKET")
    assert up["escalation_count"] == 1 and up["supervisors"] == [sup]

    r = ledger.access.get_request(setup.request_id)
    assert (r.reminder_count, r.escalation_count) == (2, 1)
    # the events are the evidence: the auditor sees the history
    audit = subprocess.run(
        [str(GOVSHARE), "audit", "overdue", "--dept", "TAX", "--json"],
        capture_output=True,
        text=True,
        env=cli_env(setup.world),
        timeout=120,
    )
    assert audit.returncode == 0, audit.stderr
    (listed,) = json.loads(audit.stdout)["requests"]
    assert [h["kind"] for h in listed["history"]] == ["reminded", "reminded", "escalated"]

    # the decision closes the loop (反馈)
    ledger.access.approve(
        setup.world["TAX"].admin, setup.request_id, expires_at=ledger.now() + 3600, max_uses=1
    )
    assert "approved already" in setup.fails("remind", rid, "--as", "MARKET")
    assert "approved already" in setup.fails("escalate", rid, "--as", "MARKET")


def test_help_names_both_commands(setup: Setup) -> None:
    p = setup.run("--help")
    assert p.returncode == 0 and "remind" in p.stdout and "escalate" in p.stdout
