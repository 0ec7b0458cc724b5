"""The exchange's cache of registry entries and anchors (broker/peercache.py):
it answers repeated fetches without re-reading the registry, and a change on
chain (an endpoint, an encryption key) takes effect at the next mirror tick.
The grant is never cached: a revocation refuses the very next exchange."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select

from govshare.broker.consent import approve, revoke
from govshare.broker.db import WrappedKey
from govshare.chain.devnode import AnvilProcess, free_port
from govshare.crypto.keys import HpkePrivateKey
from integration.world import Broker, World, build_world, start_broker

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with AnvilProcess() as node:
        w = build_world(node.url, tmp_path_factory.mktemp("home"))
        yield w
        w.close()


@pytest.fixture(scope="module")
def brokers(world: World) -> Iterator[dict[str, Broker]]:
    started = {c: start_broker(world, c) for c in ("TAX", "MARKET")}
    yield started
    for b in started.values():
        b.close()


def publish(tax: Broker, data: bytes, key: str) -> str:
    r = tax.client.post(
        "/v1/records",
        headers={**tax.auth(), "Idempotency-Key": key},
        files={"file": ("r.bin", data, "application/octet-stream")},
        data={"category": "tax-clearance"},
    )
    assert r.status_code in (200, 201), r.text
    return str(r.json()["record_id"])


def grant(world: World, market: Broker, rid: str, uses: int = 20) -> int:
    r = market.client.post(
        "/v1/requests",
        headers=market.auth(),
        json={"owner": "TAX", "record_id": rid, "purpose": "cache", "legal_basis": "art. 5"},
    )
    assert r.status_code == 201, r.text
    gid = int(r.json()["request_id"])
    approve(world.ledger, world["TAX"].admin, gid, max_uses=uses, expires_in=3600)
    return gid


def fetch(market: Broker, rid: str, gid: int) -> httpx.Response:
    return market.client.get(
        f"/v1/records/{rid}/content", headers=market.auth(), params={"grant": gid}
    )


def tick(*brokers: Broker) -> None:
    for b in brokers:
        b.svc.mirror.run_once()


def test_repeated_fetches_read_the_registry_once(world: World, brokers: dict[str, Broker]) -> None:
    tax, market = brokers["TAX"], brokers["MARKET"]
    data = os.urandom(1024)
    rid = publish(tax, data, "cache-hits")
    gid = grant(world, market, rid)
    tick(tax, market)
    assert fetch(market, rid, gid).content == data
    before = (market.svc.chain_cache.misses, tax.svc.chain_cache.misses)
    for _ in range(3):
        r = fetch(market, rid, gid)
        assert r.status_code == 200 and r.content == data
    # the anchor and TAX's entry at MARKET, MARKET's binding and entry at TAX: all hits
    assert (market.svc.chain_cache.misses, tax.svc.chain_cache.misses) == before
    # the grant is read live: revoked on chain, refused at once (no tick in between)
    revoke(world.ledger, world["TAX"].admin, gid, reason="cache test")
    r = fetch(market, rid, gid)
    assert r.status_code == 403 and r.json()["code"] == "grant.revoked"


def test_an_endpoint_change_takes_effect_at_the_next_tick(
    world: World, brokers: dict[str, Broker]
) -> None:
    tax, market = brokers["TAX"], brokers["MARKET"]
    data = os.urandom(1024)
    rid = publish(tax, data, "cache-endpoint")
    gid = grant(world, market, rid)
    assert fetch(market, rid, gid).status_code == 200  # TAX's entry cached at MARKET
    real = world["TAX"].url
    nowhere = f"http://127.0.0.1:{free_port()}"
    world.ledger.registry.set_endpoint(world["TAX"].admin, nowhere)
    try:
        tick(market)
        r = fetch(market, rid, gid)
        assert r.status_code == 503 and r.json()["code"] == "exchange.peer_unreachable", r.text
        assert nowhere in r.json()["detail"]
    finally:
        world.ledger.registry.set_endpoint(world["TAX"].admin, real)
    tick(market)
    r = fetch(market, rid, gid)
    assert r.status_code == 200 and r.content == data


def test_a_key_rotation_takes_effect_at_the_next_tick(
    world: World, brokers: dict[str, Broker]
) -> None:
    tax, market = brokers["TAX"], brokers["MARKET"]
    rid = publish(tax, os.urandom(1024), "cache-rotation")
    gid = grant(world, market, rid)
    assert fetch(market, rid, gid).status_code == 200  # MARKET's entry cached at TAX
    old = world["MARKET"].hpke.public_key_bytes
    new_key = HpkePrivateKey.generate().public_key_bytes
    world.ledger.registry.set_encryption_key(world["MARKET"].admin, new_key)
    try:
        tick(tax)
        # TAX now wraps the record's key for the new public key only; MARKET,
        # still holding the old private key, cannot open it and releases nothing
        r = fetch(market, rid, gid)
        assert r.status_code != 200
        with tax.svc.db.session(readonly=True) as s:
            ids = list(
                s.scalars(
                    select(WrappedKey.recipient_key_id).where(WrappedKey.grant_id == str(gid))
                )
            )
        assert ids[-1] == hashlib.sha256(new_key).hexdigest()[:32]
        assert hashlib.sha256(old).hexdigest()[:32] in ids[:-1]
    finally:
        world.ledger.registry.set_encryption_key(world["MARKET"].admin, old)
    tick(tax)
    assert fetch(market, rid, gid).status_code == 200
