"""A small real consortium with history, for the auditor's tools: TAX publishes a
record in three versions; MARKET and COURT are granted versions 1 and 2 and fetch
them (real ``serve_exchange`` calls, so real receipts signed by both); a request
for version 3 is denied, another is left past its deadline, reminded and
escalated to a supervisor; one grant is revoked. TAX's receipts are anchored in
two batches by the broker's own batcher.

Times: everything but the overdue request happens before the chain's clock is
moved forward (receipts carry the owner's wall clock, grants the chain's)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from govshare.broker.access import request_access
from govshare.broker.consent import approve, deny, revoke
from govshare.broker.exchange import ExchangeAck, ExchangeRequest
from govshare.broker.publish import PublishRequest, publish, stage_file
from govshare.broker.runtime import BrokerRuntime, RuntimeSettings
from govshare.broker.serve_exchange import acknowledge, serve_exchange
from govshare.broker.services import BrokerServices
from govshare.chain.devnode import AnvilProcess
from integration.world import CATEGORY, World, build_world, open_runtime

GOVSHARE = Path(sys.executable).parent / "govshare"
SCHEMAS = Path(__file__).parent.parent.parent / "docs" / "schemas"
FILES = [b"tax clearance certificate v1", b"tax clearance certificate v2", b"v3 of the certificate"]


@dataclass
class Story:
    world: World
    tax: BrokerServices
    market: BrokerServices
    court: BrokerServices
    versions: list[str]
    files: list[Path]
    grants: dict[str, int]
    denied: int
    overdue: int
    supervisor: str
    extra: dict[str, Any] = field(default_factory=dict)
    runtimes: list[BrokerRuntime] = field(default_factory=list)

    @property
    def home(self) -> Path:
        return self.world.home


def exchange(owner: BrokerServices, requester: BrokerServices, grant: int, record: str) -> int:
    req = ExchangeRequest.new(
        requester.dept, owner.dept, grant, bytes.fromhex(record[2:]), now=owner.ledger.now()
    )
    answer = serve_exchange(owner, req.to_json(), req.sign(requester.account, owner.domain))
    for _ in answer.chunks:
        pass
    # the requester acknowledges the delivery, as its broker does after verifying
    r = answer.receipt
    ack = ExchangeAck(r.request_hash, r.ciphertext_cid, r.issued_at)
    acknowledge(
        owner, ack.to_json(requester.dept, owner.dept), ack.sign(requester.account, owner.domain)
    )
    return r.seq


def _publish(svc: BrokerServices, data: bytes, key: str, supersedes: str | None) -> str:
    staged = stage_file(svc, io.BytesIO(data))
    out = publish(
        svc, "user:1", key, staged, PublishRequest(CATEGORY, supersedes=supersedes), anchor_wait=30
    )
    assert out.record_id
    return str(out.record_id)


def build_story(node: AnvilProcess, home: Path) -> Story:
    w = build_world(node.url, home)
    # TAX's runtime anchors receipts by threes, and whatever waits at once
    batching = RuntimeSettings(receipt_batch_size=3, receipt_batch_age=0)
    runtimes = [
        open_runtime(w, c, batching if c == "TAX" else None) for c in ("TAX", "MARKET", "COURT")
    ]
    for rt in runtimes:
        rt.start(threads=False)
    tax, market, court = (rt.svc for rt in runtimes)
    versions: list[str] = []
    files = []
    for i, data in enumerate(FILES):
        versions.append(_publish(tax, data, f"v{i}", versions[-1] if versions else None))
        path = home / f"certificate-v{i + 1}.txt"
        path.write_bytes(data)
        files.append(path)
    admin = w["TAX"].admin

    def ask(svc: BrokerServices, rid: str, purpose: str, **kw: Any) -> int:
        out = request_access(
            svc,
            "user:9",
            "TAX",
            rid,
            purpose,
            "art. 5",
            idempotency_key=purpose.replace(" ", "-").replace("/", "-"),
            **kw,
        )
        assert out.request_id is not None
        return int(out.request_id)

    g_market = ask(market, versions[0], "business licence")
    g_court = ask(court, versions[1], "court case 12/2026")
    denied = ask(market, versions[2], "curiosity")
    approve(tax.ledger, admin, g_market, max_uses=5, expires_in=86400)
    approve(tax.ledger, admin, g_court, max_uses=3, expires_in=86400)
    deny(tax.ledger, admin, denied, "no legal basis")
    for _ in range(3):
        exchange(tax, market, g_market, versions[0])
    for _ in range(2):
        exchange(tax, court, g_court, versions[1])
    runtimes[0].run_once()  # the batcher submits 1-3, the outbox worker anchors them
    assert tax.ledger.access.last_receipt_seq("TAX") == 3
    runtimes[0].run_once()
    assert tax.ledger.access.last_receipt_seq("TAX") == 5

    # a supervisor, voted in; an overdue request, reminded and escalated
    sup = Account.create().address
    pid = tax.ledger.registry.propose_add_supervisor(w["TAX"].admin, sup).value
    tax.ledger.registry.approve(w["MARKET"].admin, pid)
    overdue = ask(court, versions[2], "enforcement", deadline_in=60)
    tax.ledger.conn.request("evm_increaseTime", [600])
    tax.ledger.conn.request("evm_mine", [])
    tax.ledger.access.remind(w["COURT"].broker, overdue)
    tax.ledger.access.escalate(w["COURT"].admin, overdue)
    revoke(tax.ledger, admin, g_market, "licence withdrawn")
    return Story(
        w,
        tax,
        market,
        court,
        versions,
        files,
        {"MARKET": g_market, "COURT": g_court},
        denied,
        overdue,
        sup,
        runtimes=runtimes,
    )


@pytest.fixture(scope="session")
def story(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    with AnvilProcess() as node:
        s = build_story(node, tmp_path_factory.mktemp("home"))
        yield s
        for rt in s.runtimes:
            rt.stop()
        s.world.close()


@dataclass
class Run:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def json(self) -> Any:
        return json.loads(self.stdout)


def govshare(home: Path, *args: str, timeout: float = 120) -> Run:
    env = {**os.environ, "GOVSHARE_HOME": str(home)}
    for name in ("GOVSHARE_STORE", "GOVSHARE_RPC", "GOVSHARE_DEPLOYMENT_FILE", "GOVSHARE_DEPT"):
        env.pop(name, None)
    p = subprocess.run(
        [str(GOVSHARE), *args], capture_output=True, text=True, env=env, timeout=timeout
    )
    return Run(p.returncode, p.stdout, p.stderr)


def schema(name: str) -> dict[str, Any]:
    return dict(json.loads((SCHEMAS / f"{name}.schema.json").read_text()))
