"""Two departments' brokers, each storing in its own Kubo node (the pinned build)
of one private swarm: TAX's record, its record-batch manifest and its receipt-batch
manifests go to TAX's node only. MARKET's broker materialises TAX's batched record
for its request from the manifest its own node fetches from the swarm; and an
auditor with nothing but the deployment file and the URL of MARKET's node — no
broker token, no home of any department — verifies every receipt batch of TAX's."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

import engines
from govshare.broker.access import request_access
from govshare.broker.consent import approve
from govshare.broker.exchange import ExchangeAck, ExchangeRequest
from govshare.broker.publish import PublishRequest, publish, stage_file
from govshare.broker.receipt_batches import ReceiptBatcher
from govshare.broker.serve_exchange import acknowledge, serve_exchange
from govshare.broker.services import BrokerServices
from govshare.chain.devnode import AnvilProcess
from govshare.consortium.kubo import format_swarm_key, generate_swarm_key
from integration.world import CATEGORY, GOVSHARE, World, build_world, make_services

pytestmark = pytest.mark.integration

CODES = ("TAX", "MARKET")


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, engines.KuboDaemon]]:
    try:
        engines.tool("kubo", "ipfs")
    except engines.EngineUnavailable as exc:
        pytest.skip(str(exc))
    key = format_swarm_key(generate_swarm_key())
    root = tmp_path_factory.mktemp("kubo")
    daemons = {c: engines.KuboDaemon(root / c.lower(), swarm_key=key) for c in CODES}
    with ExitStack() as stack:
        for d in daemons.values():
            stack.enter_context(engines.running(d))
        daemons["MARKET"].rpc("swarm/connect", arg=daemons["TAX"].swarm_addr)
        yield daemons


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with AnvilProcess() as node:
        w = build_world(node.url, tmp_path_factory.mktemp("home"), codes=CODES)
        yield w
        w.close()


@pytest.fixture(scope="module")
def brokers(
    world: World, nodes: dict[str, engines.KuboDaemon]
) -> Iterator[dict[str, BrokerServices]]:
    svcs = {c: make_services(world, c, store_url=f"kubo:{nodes[c].api_url}") for c in CODES}
    yield svcs
    for s in svcs.values():
        s.close()
        s.store.close()
        s.db.close()


def test_manifests_cross_the_swarm_to_a_broker_and_to_an_auditor(
    world: World,
    nodes: dict[str, engines.KuboDaemon],
    brokers: dict[str, BrokerServices],
    tmp_path: Path,
) -> None:
    tax, market = brokers["TAX"], brokers["MARKET"]
    data = os.urandom(20_000)
    out = publish(
        tax, "user:1", "swarm-1", stage_file(tax, io.BytesIO(data)), PublishRequest(CATEGORY),
        anchor_wait=30,
    )  # fmt: skip
    assert out.state.value == "done" and out.record_id is not None, out
    rid = str(out.record_id)
    batch = world.ledger.records.get_batch("TAX", 1)
    assert not market.store.has(batch.manifest_cid)  # only TAX's node holds it

    # MARKET asks for the batched record: its broker reads TAX's manifest from the swarm
    req = request_access(market, "user:2", "TAX", rid, "licence", "art. 5", idempotency_key="s-1")
    assert req.request_id is not None
    approve(world.ledger, world["TAX"].admin, req.request_id, max_uses=10, expires_in=86400)
    for _ in range(4):
        ask = ExchangeRequest.new(
            "MARKET", "TAX", int(req.request_id), bytes.fromhex(rid[2:]), now=tax.ledger.now()
        )
        answer = serve_exchange(tax, ask.to_json(), ask.sign(market.account, tax.domain))
        assert b"".join(answer.chunks)
        r = answer.receipt  # MARKET acknowledges, as its broker does after verifying
        ack = ExchangeAck(r.request_hash, r.ciphertext_cid, r.issued_at)
        acknowledge(tax, ack.to_json("MARKET", "TAX"), ack.sign(market.account, tax.domain))
    batcher = ReceiptBatcher(tax, max_count=2, max_age=3600)
    assert batcher.run_once(drive=True).action == "submitted"
    assert batcher.run_once(drive=True).action == "submitted"
    receipt_manifests = [
        world.ledger.access.get_receipt_batch("TAX", i).manifest_cid for i in (1, 2)
    ]
    assert not any(market.store.has(c) for c in receipt_manifests)

    # the auditor: a home of their own, the deployment file, and MARKET's node
    home = tmp_path / "auditor"
    home.mkdir()
    shutil.copy(world.deployment, home / "deployment.json")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVSHARE_")}
    done = subprocess.run(
        [str(GOVSHARE), "audit", "receipts", "--manifests", f"kubo:{nodes['MARKET'].api_url}",
         "--json"],
        env={**env, "GOVSHARE_HOME": str(home)},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] and report["receipts_checked"] == 4, report
    tax_batches = [b for b in report["batches"] if b["department"] == "TAX"]
    assert [(b["first_seq"], b["last_seq"]) for b in tax_batches] == [(1, 2), (3, 4)]
    assert all(b["ok"] and b["manifest_found"] for b in tax_batches), tax_batches
    assert all("kubo:" in b["manifest_source"] for b in tax_batches), tax_batches
