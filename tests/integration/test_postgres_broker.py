"""A department's broker on a real PostgreSQL cluster (``govshare serve
--database URL``, the session's private cluster), beside another department's
broker on SQLite, used from the command line as clerks and an administrator
would: users added there, a record published, asked for, approved and fetched,
the receipt numbered in PostgreSQL; and a broker killed mid-publish completes
its record on restart, once."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from engines import PostgresCluster
from govshare.broker.db import Database, Receipt, Record
from govshare.chain.devnode import AnvilProcess
from govshare.cli._client import save_token
from integration.world import (
    CATEGORY,
    ServeProcess,
    World,
    build_world,
    run_cli,
    spawn_serve,
    wait_serving,
)

pytestmark = pytest.mark.integration

CODES = ("TAX", "MARKET")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with AnvilProcess() as node:
        w = build_world(node.url, tmp_path_factory.mktemp("home"), codes=CODES)
        yield w
        w.close()


@pytest.fixture(scope="module")
def tax_db(postgres_cluster: PostgresCluster) -> str:
    return postgres_cluster.create_database("tax_broker")


def cli_json(world: World, *args: str, env: dict[str, str] | None = None) -> tuple[int, Any]:
    r = run_cli(world, *args, "--json", env=env)
    assert "Traceback" not in r.stdout + r.stderr, r.stdout + r.stderr
    try:
        return r.returncode, json.loads(r.stdout)
    except ValueError:
        raise AssertionError(r.stdout + r.stderr) from None


@pytest.fixture(scope="module")
def brokers(world: World, tax_db: str) -> Iterator[dict[str, ServeProcess]]:
    pg = {"GOVSHARE_DATABASE_URL": tax_db}
    # each department's administrator adds its clerk where its broker keeps users
    for code, env in (("TAX", pg), ("MARKET", None)):
        code_, out = cli_json(
            world, "user", "add", f"{code.lower()}-clerk", "--role", "clerk", "--dept", code,
            env=env,
        )  # fmt: skip
        assert code_ == 0, out
        save_token(world.home, code, out["token"])  # what `govshare login` keeps
    procs = {"TAX": spawn_serve(world, "TAX", env=pg), "MARKET": spawn_serve(world, "MARKET")}
    wait_serving(list(procs.values()))
    yield procs
    for p in procs.values():
        p.stop()


def tax_rows(tax_db: str) -> tuple[list[Record], list[Receipt]]:
    db = Database.open(tax_db)
    try:
        with db.session(readonly=True) as s:
            records, receipts = list(s.scalars(select(Record))), list(s.scalars(select(Receipt)))
            for r in [*records, *receipts]:
                s.expunge(r)
            return records, receipts
    finally:
        db.close()


def test_the_whole_loop_with_one_broker_on_postgresql(
    world: World, brokers: dict[str, ServeProcess], tax_db: str, tmp_path: Path
) -> None:
    data = os.urandom(40_000)
    src = tmp_path / "licence.pdf"
    src.write_bytes(data)
    code, pub = cli_json(
        world, "record", "publish", str(src), "--category", CATEGORY, "--dept", "TAX",
        "--idempotency-key", "pg-1",
    )  # fmt: skip
    assert code == 0 and pub["state"] == "done", pub
    rid = pub["record_id"]
    code, req = cli_json(
        world, "request", "create", "--owner", "TAX", "--record", rid,
        "--purpose", "business licence", "--dept", "MARKET",
    )  # fmt: skip
    assert code == 0, req
    code, ok = cli_json(
        world, "grant", "approve", str(req["request_id"]), "--dept", "TAX",
        "--expires", "1d", "--max-uses", "2", "-y",
    )  # fmt: skip
    assert code == 0, ok
    for n in (1, 2):
        out = tmp_path / f"got-{n}.pdf"
        code, got = cli_json(world, "record", "fetch", rid, "-o", str(out), "--dept", "MARKET")
        assert code == 0, got
        assert out.read_bytes() == data
    code, refused = cli_json(
        world, "record", "fetch", rid, "-o", str(tmp_path / "third.pdf"), "--dept", "MARKET"
    )
    assert code == 1 and refused["error"]["code"] == "grant.quota_exhausted", refused
    records, receipts = tax_rows(tax_db)
    assert [r.status for r in records if r.record_id == rid] == ["anchored"]
    assert sorted(r.seq for r in receipts if r.owner == "TAX") == [1, 2]


def test_a_broker_on_postgresql_killed_mid_publish_completes_it_once(
    world: World, brokers: dict[str, ServeProcess], tax_db: str, tmp_path: Path
) -> None:
    brokers["TAX"].stop()
    pg = {"GOVSHARE_DATABASE_URL": tax_db}
    data = os.urandom(30_000)
    src = tmp_path / "doomed.pdf"
    src.write_bytes(data)
    doomed = spawn_serve(
        world,
        "TAX",
        env={**pg, "GOVSHARE_TESTING": "1", "GOVSHARE_TEST_CRASH_AT": "publish.before_store"},
    )
    wait_serving([doomed])
    args = ("record", "publish", str(src), "--category", CATEGORY, "--dept", "TAX",
            "--idempotency-key", "pg-crash")  # fmt: skip
    code, out = cli_json(world, *args)
    assert code == 1 and out["error"]["code"] == "cli.broker_unreachable", out
    assert doomed.proc.wait(10) == -signal.SIGKILL
    brokers["TAX"] = tax = spawn_serve(world, "TAX", env=pg)
    wait_serving([tax])
    sha = hashlib.sha256(data).hexdigest()
    deadline = time.monotonic() + 30
    while not any(r.sha256 == sha and r.status == "anchored" for r in tax_rows(tax_db)[0]):
        assert time.monotonic() < deadline, "the resumed publish was not anchored"
        time.sleep(0.1)
    code, again = cli_json(world, *args)
    assert code == 0 and again["replayed"] is True, again
    assert [r.record_id for r in tax_rows(tax_db)[0] if r.sha256 == sha] == [again["record_id"]]
