"""The whole exchange on a second Ethereum client: ``geth --dev`` (a block every
second, no instant mining, no ``anvil_*`` calls, geth's own txpool) instead of
anvil, with the brokers over real HTTP. A record is published and anchored in a
batch, asked for, approved, fetched and its receipt checked; a revoked grant is
refused; the ledger mirror follows geth's blocks. Nothing here may rely on
anvil's behaviour."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from eth_account import Account

import engines
from govshare.broker.consent import approve, revoke
from integration.world import CATEGORY, Broker, World, anchored_record, build_world, start_broker

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def world(
    geth_dev: engines.GethDevNode, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    w = build_world(
        geth_dev.url,
        tmp_path_factory.mktemp("home"),
        codes=("TAX", "MARKET"),
        funder=Account.from_key(engines.GETH_DEV_KEY),
    )
    yield w
    w.close()


@pytest.fixture(scope="module")
def brokers(world: World) -> Iterator[dict[str, Broker]]:
    started = {c: start_broker(world, c) for c in ("TAX", "MARKET")}
    yield started
    for b in started.values():
        b.close()


def test_publish_request_approve_fetch_and_revoke_on_geth(
    world: World, brokers: dict[str, Broker]
) -> None:
    tax, market = brokers["TAX"], brokers["MARKET"]
    assert world.ledger.chain_id == engines.GETH_DEV_CHAIN_ID
    data = os.urandom(50_000)
    r = tax.client.post(
        "/v1/records",
        headers={**tax.auth(), "Idempotency-Key": "geth-1", "Prefer": "wait=30"},
        files={"file": ("licence.pdf", data, "application/pdf")},
        data={"category": CATEGORY},
    )
    assert r.status_code == 201, r.text  # anchored within the wait: its batch mined
    rid = r.json()["record_id"]
    assert anchored_record(tax.svc, rid).department == "TAX"

    r = market.client.post(
        "/v1/requests",
        headers=market.auth(),
        json={"owner": "TAX", "record_id": rid, "purpose": "licence", "legal_basis": "art. 5"},
    )
    assert r.status_code == 201, r.text
    gid = int(r.json()["request_id"])
    approve(world.ledger, world["TAX"].admin, gid, max_uses=3, expires_in=3600)

    got = market.client.get(f"/v1/records/{rid}/content", headers=market.auth())
    assert got.status_code == 200, got.text
    assert got.content == data
    seq = int(got.headers["Govshare-Receipt-Seq"])
    receipts = tax.client.get("/v1/receipts", headers=tax.auth("auditor")).json()
    assert any(x["seq"] == seq and x["grant_id"] == gid for x in receipts), receipts

    revoke(world.ledger, world["TAX"].admin, gid, "licence refused")
    refused = market.client.get(f"/v1/records/{rid}/content", headers=market.auth())
    assert refused.status_code == 403 and refused.json()["code"] == "grant.revoked", refused.text

    # the mirror followed geth's blocks: MARKET's broker lists the request as revoked
    market.runtime.run_once()
    listed = market.client.get("/v1/requests", headers=market.auth()).json()
    assert [x["status"] for x in listed if x["id"] == gid] == ["revoked"], listed


def test_twenty_clerks_publishing_at_once_are_all_anchored_on_geth(
    world: World, brokers: dict[str, Broker]
) -> None:
    """20 publishes at once, each clerk waiting for the anchor: batches follow one
    another on geth's one-second blocks, sent from one key through geth's txpool;
    every record anchored, none lost or doubled."""
    tax = brokers["TAX"]

    def publish(i: int) -> httpx.Response:
        with httpx.Client(base_url=str(tax.client.base_url), timeout=60) as c:
            return c.post(
                "/v1/records",
                headers={**tax.auth(), "Idempotency-Key": f"geth-many-{i}", "Prefer": "wait=30"},
                files={"file": (f"{i}.pdf", os.urandom(1000), "application/pdf")},
                data={"category": CATEGORY},
            )

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(publish, range(20)))
    assert all(a.status_code == 201 for a in answers), [a.text for a in answers]
    ids = {a.json()["record_id"] for a in answers}
    assert len(ids) == 20
    for rid in ids:
        assert anchored_record(tax.svc, rid).department == "TAX"
