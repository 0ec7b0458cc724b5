"""Receipts anchored by real ``govshare serve`` processes, audited by the real CLI.

TAX and MARKET run as their own processes (their batcher set to anchor a
receipt after 1 s); TAX publishes over HTTP, MARKET asks, TAX's administrator
approves, MARKET fetches: the receipt is anchored by TAX's broker on its own,
and the auditor — a home with only the deployment file — verifies the file, the
trail and the receipt log, with MARKET's copies as a cross-check. Then TAX's
broker is killed (SIGKILL) holding receipts it has not anchored yet; after the
restart they are anchored, each exactly once."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from audit.conftest import govshare
from govshare.broker.consent import approve
from govshare.broker.db import Database
from govshare.broker.users import Users
from govshare.chain.devnode import AnvilProcess
from integration.world import CATEGORY, ServeProcess, World, build_world, spawn_serve, wait_serving

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with AnvilProcess() as node:
        w = build_world(node.url, tmp_path_factory.mktemp("home"), codes=("TAX", "MARKET"))
        yield w
        w.close()


@pytest.fixture(scope="module")
def tokens(world: World) -> dict[str, dict[str, str]]:
    out = {}
    for code in ("TAX", "MARKET"):
        db = Database.for_department(world.home, code)
        try:
            users = Users(db)
            out[code] = {
                r: users.add(f"{code.lower()}-{r}", r, code)[1].token for r in ("clerk", "auditor")
            }
        finally:
            db.close()
    return out


def serve(world: World, code: str, batch_age: str) -> ServeProcess:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GOVSHARE_RECEIPT_BATCH_AGE", batch_age)
        mp.setenv("GOVSHARE_RECEIPT_BATCH_SIZE", "100")
        p = spawn_serve(world, code)
    wait_serving([p])
    return p


def wait_anchored(world: World, seq: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while world.ledger.access.last_receipt_seq("TAX") < seq:
        assert time.monotonic() < deadline, "TAX's broker did not anchor its receipts"
        time.sleep(0.1)


def test_receipts_anchored_by_the_broker_and_audited(
    world: World, tokens: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    procs = {c: serve(world, c, "1") for c in ("TAX", "MARKET")}
    with ExitStack() as clients:  # closed however the test ends
        tax = clients.enter_context(httpx.Client(base_url=procs["TAX"].url, timeout=60))
        market = clients.enter_context(httpx.Client(base_url=procs["MARKET"].url, timeout=60))
        try:
            _receipts_story(world, tokens, tmp_path, procs, tax, market)
        finally:
            for p in procs.values():
                p.stop()


def _receipts_story(
    world: World,
    tokens: dict[str, dict[str, str]],
    tmp_path: Path,
    procs: dict[str, Any],
    tax: httpx.Client,
    market: httpx.Client,
) -> None:
    bearer = lambda code, role: {"Authorization": f"Bearer {tokens[code][role]}"}  # noqa: E731
    cert = os.urandom(50_000)
    r = tax.post(
        "/v1/records",
        headers={"Idempotency-Key": "cert", **bearer("TAX", "clerk")},
        files={"file": ("certificate.pdf", cert, "application/pdf")},
        data={"category": CATEGORY},
    )
    assert r.status_code == 201, r.text
    rid = r.json()["record_id"]
    r = market.post(
        "/v1/requests",
        json={"owner": "TAX", "record_id": rid, "purpose": "business licence"},
        headers=bearer("MARKET", "clerk"),
    )
    assert r.status_code == 201, r.text
    gid = int(r.json()["request_id"])
    approve(world.ledger, world["TAX"].admin, gid, max_uses=5, expires_in=3600)
    got = market.get(f"/v1/records/{rid}/content", headers=bearer("MARKET", "clerk"))
    assert got.status_code == 200 and got.content == cert
    wait_anchored(world, 1)

    auditor = tmp_path / "auditor"
    auditor.mkdir()
    shutil.copy(world.home / "deployment.json", auditor / "deployment.json")
    src = ["--manifests", f"local:{world.home / 'depts' / 'TAX' / 'blobs'}"]
    file = tmp_path / "certificate.pdf"
    file.write_bytes(cert)
    v = govshare(auditor, "audit", "verify", str(file), "--json")
    assert v.exit_code == 0 and v.json()["records"][0]["record_id"] == rid, v.output
    t = govshare(auditor, "audit", "trail", rid, *src, "--json")
    assert t.exit_code == 0, t.output
    trail = t.json()
    assert trail["receipts"] == {"anchored": 1, "verified": 1}
    held = market.get("/v1/receipts", headers=bearer("MARKET", "auditor")).json()
    assert [x["owner"] for x in held] == ["TAX"]
    (tmp_path / "held.json").write_text(json.dumps(held))
    rc = govshare(auditor, "audit", "receipts", *src, "--held", str(tmp_path / "held.json"))
    assert rc.exit_code == 0 and "All 1 receipt(s) verified." in rc.stdout, rc.output

    # TAX's broker dies holding receipts it has not anchored yet
    procs["TAX"].stop()
    procs["TAX"] = serve(world, "TAX", "3600")
    for _ in range(2):
        got = market.get(f"/v1/records/{rid}/content", headers=bearer("MARKET", "clerk"))
        assert got.status_code == 200
    # (that a batch younger than its age waits is the batcher's unit test, on a clock)
    assert world.ledger.access.last_receipt_seq("TAX") == 1
    procs["TAX"].proc.send_signal(signal.SIGKILL)
    procs["TAX"].proc.wait(10)
    procs["TAX"] = serve(world, "TAX", "1")
    wait_anchored(world, 3)
    access = world.ledger.access
    ranges = [
        (b.first_seq, b.last_seq)
        for b in (
            access.get_receipt_batch("TAX", i)
            for i in range(1, access.receipt_batch_count("TAX") + 1)
        )
    ]
    # receipts 2 and 3 in one batch, or two when MARKET's acknowledgement of 3
    # (sent after its clerk had the record) reached TAX only after the restart
    assert ranges in ([(1, 1), (2, 3)], [(1, 1), (2, 2), (3, 3)]), ranges
    assert access.get_request(gid).used_count == 3
    rc = govshare(auditor, "audit", "receipts", "--dept", "TAX", *src)
    assert rc.exit_code == 0 and "All 3 receipt(s) verified." in rc.stdout, rc.output
