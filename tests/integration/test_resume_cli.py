"""Real processes: ``govshare record fetch`` survives cut connections between
real brokers (issue 14). TAX's ``govshare serve`` breaks off its exchange answer
once (``exchange.mid_stream``) and MARKET's its answer to the clerk once
(``content.mid_stream``), through the test-only cut points; the fetch resumes
both, spends one use of a single-use grant, and the file appears only whole."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from govshare.broker.consent import approve
from govshare.broker.users import Users
from govshare.chain.devnode import AnvilProcess
from integration.world import (
    CATEGORY,
    ServeProcess,
    World,
    add_clerks,
    build_world,
    run_cli,
    spawn_serve,
    wait_serving,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with AnvilProcess() as node:
        w = build_world(node.url, tmp_path_factory.mktemp("home"), codes=("TAX", "MARKET"))
        yield w
        w.close()


@pytest.fixture(scope="module")
def procs(world: World) -> Iterator[dict[str, ServeProcess]]:
    add_clerks(world, ("TAX", "MARKET"))
    cuts = {"TAX": "exchange.mid_stream", "MARKET": "content.mid_stream"}
    started = {
        code: spawn_serve(world, code, env={"GOVSHARE_TESTING": "1", "GOVSHARE_TEST_CUT_AT": cut})
        for code, cut in cuts.items()
    }
    try:
        wait_serving(list(started.values()))
        yield started
    finally:
        for p in started.values():
            p.stop()


def test_record_fetch_resumes_cut_connections_between_real_brokers(
    world: World, procs: dict[str, ServeProcess], tmp_path: Path
) -> None:
    data = os.urandom(1_500_000)
    src = tmp_path / "licence.pdf"
    src.write_bytes(data)
    out = run_cli(
        world, "record", "publish", str(src), "--category", CATEGORY, "--dept", "TAX", "--json"
    )
    assert out.returncode == 0, out.stderr + out.stdout
    rid = json.loads(out.stdout)["record_id"]
    db = world.database("MARKET")
    try:
        _, issued = Users(db).add("market-asker", "clerk", "MARKET")
    finally:
        db.close()
    r = httpx.post(
        procs["MARKET"].url + "/v1/requests",
        headers={"Authorization": f"Bearer {issued.token}"},
        json={"owner": "TAX", "record_id": rid, "purpose": "licence"},
        timeout=30,
    )
    assert r.status_code == 201, r.text
    gid = int(r.json()["request_id"])
    approve(world.ledger, world["TAX"].admin, gid, max_uses=1, expires_in=3600)

    target = tmp_path / "fetched.pdf"
    got = run_cli(world, "record", "fetch", rid, "-o", str(target), "--dept", "MARKET")
    assert got.returncode == 0, got.stderr + got.stdout
    assert target.read_bytes() == data
    assert hashlib.sha256(data).hexdigest() in got.stdout
    # the clerk's connection was cut once and resumed, and said so on stderr
    assert got.stderr.count("resuming (try 1 of 3") == 1, got.stderr
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []
    # the owner's answer was cut too, and resumed by MARKET's broker from its byte
    assert "resumed exchange" in procs["TAX"].log.read_text()

    # one use of the single-use grant was spent, for the one fetch
    again = run_cli(
        world, "record", "fetch", rid, "-o", str(tmp_path / "again.pdf"), "--dept", "MARKET"
    )
    assert again.returncode == 1
    assert "no uses left" in again.stderr + again.stdout
    assert not (tmp_path / "again.pdf").exists()
