"""Real processes end to end: this module's own anvil and three ``govshare
serve`` brokers (TAX, MARKET, COURT), each its own process, database and
store, talking over HTTP. The main loop (publish, request, consent from the
CLI, fetch, refusals, revoke) and the concurrency limits: 50 parallel fetches
under a quota of 10, 50 parallel publishes. Run twice: the brokers' databases in
SQLite files, then in a real PostgreSQL cluster (``serve --database``)."""

from __future__ import annotations

import os
import subprocess
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from govshare.broker.consent import approve, revoke
from govshare.broker.users import Users
from govshare.chain.devnode import AnvilProcess
from integration.world import (
    CATEGORY,
    DATABASES,
    GOVSHARE,
    ServeProcess,
    World,
    build_world,
    cli_env,
    dept_manifests,
    put_databases,
    serving,
)

pytestmark = pytest.mark.integration

CODES = ("TAX", "MARKET", "COURT")


class Client:
    """A clerk (or auditor) of one department, calling its broker."""

    def __init__(self, proc: ServeProcess, token: str) -> None:
        self.code = proc.code
        self.http = httpx.Client(
            base_url=proc.url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
            limits=httpx.Limits(max_connections=60),
        )

    def publish(self, data: bytes, key: str, **fields: str) -> httpx.Response:
        return self.http.post(
            "/v1/records",
            headers={"Idempotency-Key": key},
            files={"file": ("doc.pdf", data, "application/pdf")},
            data={"category": CATEGORY, **fields},
        )

    def ask(self, owner: str, record_id: str, purpose: str) -> int:
        r = self.http.post(
            "/v1/requests", json={"owner": owner, "record_id": record_id, "purpose": purpose}
        )
        assert r.status_code == 201, r.text
        return int(r.json()["request_id"])

    def content(self, record_id: str, **params: Any) -> httpx.Response:
        return self.http.get(f"/v1/records/{record_id}/content", params=params)


@pytest.fixture(scope="module", params=DATABASES)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """Three departments whose brokers keep their databases in SQLite files, or
    each in a database of the session's PostgreSQL cluster."""
    with AnvilProcess() as node:
        w = build_world(node.url, tmp_path_factory.mktemp("home"))
        put_databases(w, request)
        yield w
        w.close()


@pytest.fixture(scope="module")
def tokens(world: World) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for code in CODES:
        db = world.database(code)
        try:
            users = Users(db)
            out[code] = {
                role: users.add(f"{code.lower()}-{role}", role, code)[1].token
                for role in ("clerk", "auditor")
            }
        finally:
            db.close()
    return out


@pytest.fixture(scope="module")
def clerks(world: World, tokens: dict[str, dict[str, str]]) -> Iterator[dict[str, Client]]:
    # COURT is configured through the environment, as docker/compose.yml does
    with serving(world, CODES, via_env=("COURT",)) as procs:
        clients = {c: Client(p, tokens[c]["clerk"]) for c, p in procs.items()}
        yield clients
        for c in clients.values():
            c.http.close()


def code_of(r: httpx.Response) -> str:
    assert r.headers["content-type"].startswith("application/problem+json"), r.text
    return str(r.json()["code"])


def test_the_main_loop(world: World, clerks: dict[str, Client]) -> None:
    tax, market, court = clerks["TAX"], clerks["MARKET"], clerks["COURT"]
    certificate = os.urandom(400_000)

    # TAX publishes a tax-clearance certificate
    r = tax.publish(certificate, "cert-1", subject="91110000710928411X")
    assert r.status_code == 201, r.text
    rid = r.json()["record_id"]

    # MARKET asks for it, with a purpose
    gid = market.ask("TAX", rid, "business licence for ACME Ltd")
    incoming = tax.http.get("/v1/requests", params={"direction": "incoming", "status": "pending"})
    assert gid in {x["id"] for x in incoming.json()}

    # TAX's administrator approves from the CLI, signing with the admin key
    cli = subprocess.run(
        [
            str(GOVSHARE),
            "grant",
            "approve",
            str(gid),
            "--dept",
            "TAX",
            "--expires",
            "30d",
            "--max-uses",
            "2",
            "-y",
            "--json",
        ],
        env=cli_env(world),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 0, cli.stdout + cli.stderr

    # MARKET fetches: exactly the anchored bytes
    got = market.content(rid)
    assert got.status_code == 200, got.text
    assert got.content == certificate
    assert got.headers["govshare-record-owner"] == "TAX"

    # COURT, without a grant, is refused
    assert code_of(court.content(rid)) == "grant.none"

    # TAX revokes; MARKET is refused from then on
    revoke(world.ledger, world["TAX"].admin, gid, "licence application withdrawn")
    refused = market.content(rid)
    assert refused.status_code == 403 and code_of(refused) == "grant.revoked"

    grants = market.http.get("/v1/grants", params={"direction": "outgoing"}).json()
    g = {x["id"]: x for x in grants}[gid]
    assert g["status"] == "revoked" and g["reason"] == "licence application withdrawn"


def test_fifty_parallel_fetches_under_a_quota_of_ten(
    world: World, clerks: dict[str, Client], tokens: dict[str, dict[str, str]]
) -> None:
    tax, market = clerks["TAX"], clerks["MARKET"]
    data = os.urandom(30_000)
    r = tax.publish(data, "quota-rec")
    assert r.status_code == 201, r.text
    rid = r.json()["record_id"]
    gid = market.ask("TAX", rid, "quota")
    approve(world.ledger, world["TAX"].admin, gid, max_uses=10, expires_in=3600)

    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(lambda _: market.content(rid, grant=gid), range(50)))
    outcome = Counter("ok" if a.status_code == 200 else code_of(a) for a in answers)
    assert outcome == {"ok": 10, "grant.quota_exhausted": 40}, outcome
    assert all(a.content == data for a in answers if a.status_code == 200)

    # TAX kept exactly ten receipts for the grant, in a gap-free sequence
    auditor = httpx.Client(
        base_url=tax.http.base_url,
        headers={"Authorization": f"Bearer {tokens['TAX']['auditor']}"},
    )
    with auditor:
        mine = auditor.get("/v1/receipts", params={"limit": 500}).json()
    assert sum(1 for x in mine if x["grant_id"] == gid) == 10
    seqs = [x["seq"] for x in mine if x["owner"] == "TAX"]
    assert seqs == list(range(1, len(seqs) + 1))


def test_fifty_parallel_publishes_are_all_anchored(world: World, clerks: dict[str, Client]) -> None:
    tax = clerks["TAX"]
    files = [os.urandom(4096) for _ in range(50)]
    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(lambda i: tax.publish(files[i], f"bulk-{i}"), range(50)))
    assert [a.status_code for a in answers] == [201] * 50, [
        a.text for a in answers if a.status_code != 201
    ]
    ids = {a.json()["record_id"] for a in answers}
    assert len(ids) == 50
    import hashlib

    # each a leaf of one of TAX's batches on chain, once; fifty clerks waiting at
    # once share batches (group commit), not one transaction each
    leaves = {
        "0x" + r.record_id.hex(): (seq, r)
        for seq, m in dept_manifests(world, "TAX").items()
        for r in m.records
    }
    for data, a in zip(files, answers, strict=True):
        seq, rec = leaves[a.json()["record_id"]]
        assert a.json()["batch"]["sequence"] == seq
        assert rec.department == "TAX" and rec.content_hash == hashlib.sha256(data).digest()
    assert len({leaves[i][0] for i in ids}) < 50
