"""Post-quantum capsules end to end: MARKET's HPKE key is ML-KEM-768 + X25519,
TAX's and COURT's X25519. Records go both ways through the brokers' API over
real HTTP, each capsule in the suite of its recipient's registered key; then TAX
rotates to a post-quantum key and still serves and reads what it published
before (its own capsules open with its retired key)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from govshare.broker import governance
from govshare.broker.consent import approve
from govshare.broker.db import WrappedKey
from govshare.broker.exchange import ExchangeRequest
from govshare.broker.fetch import fetch
from govshare.broker.serve_exchange import serve_exchange
from govshare.chain.devnode import AnvilProcess
from govshare.crypto import unwrap_dek
from govshare.crypto.keys import KEM_MLKEM768_X25519, KEM_X25519, kem_of
from integration.world import (
    CATEGORY,
    PASSWORD,
    Broker,
    World,
    build_world,
    make_services,
    start_broker,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with AnvilProcess() as node:
        w = build_world(
            node.url, tmp_path_factory.mktemp("home"), kems={"MARKET": KEM_MLKEM768_X25519}
        )
        yield w
        w.close()


@pytest.fixture(scope="module")
def brokers(world: World) -> Iterator[dict[str, Broker]]:
    started = {c: start_broker(world, c) for c in ("TAX", "MARKET")}
    yield started
    for b in started.values():
        b.close()


def publish(b: Broker, data: bytes) -> str:
    r = b.client.post(
        "/v1/records",
        headers={**b.auth(), "Idempotency-Key": os.urandom(8).hex()},
        files={"file": ("r.pdf", data, "application/pdf")},
        data={"category": CATEGORY},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["record_id"])


def granted(world: World, owner: Broker, requester: Broker, rid: str) -> int:
    r = requester.client.post(
        "/v1/requests",
        headers=requester.auth(),
        json={"owner": owner.dept.code, "record_id": rid, "purpose": "licence"},
    )
    assert r.status_code == 201, r.text
    gid = int(r.json()["request_id"])
    approve(world.ledger, world[owner.dept.code].admin, gid, max_uses=3, expires_in=3600)
    return gid


def capsule_for(owner: Broker, requester: str) -> bytes:
    with owner.runtime.svc.db.session(readonly=True) as s:
        rows = s.scalars(select(WrappedKey).where(WrappedKey.recipient_dept == requester)).all()
    return bytes(rows[-1].capsule)


def fetched(b: Broker, rid: str, gid: int) -> bytes:
    r = b.client.get(f"/v1/records/{rid}/content", headers=b.auth(), params={"grant": gid})
    assert r.status_code == 200, r.text
    return bytes(r.content)


def test_the_keys_registered_are_of_each_departments_kem(world: World) -> None:
    entries = {c: world.ledger.registry.get_department(c) for c in ("TAX", "MARKET", "COURT")}
    assert {c: kem_of(e.encryption_key) for c, e in entries.items()} == {
        "TAX": KEM_X25519, "MARKET": KEM_MLKEM768_X25519, "COURT": KEM_X25519,
    }  # fmt: skip


def test_classic_to_post_quantum_and_back(world: World, brokers: dict[str, Broker]) -> None:
    tax, market = brokers["TAX"], brokers["MARKET"]
    # TAX (X25519) → MARKET (ML-KEM-768 + X25519): a suite 2 capsule
    data = b"TAX's certificate " + os.urandom(64)
    rid = publish(tax, data)
    assert fetched(market, rid, granted(world, tax, market, rid)) == data
    assert capsule_for(tax, "MARKET")[5] == 2 and len(capsule_for(tax, "MARKET")) == 1174
    # MARKET → TAX: MARKET's own capsule is suite 2, TAX's a suite 1
    theirs = b"MARKET's licence file " + os.urandom(64)
    mid = publish(market, theirs)
    assert fetched(tax, mid, granted(world, market, tax, mid)) == theirs
    assert capsule_for(market, "TAX")[5] == 1 and len(capsule_for(market, "TAX")) == 86
    # and MARKET reads its own, through its own PQ capsule
    own = market.client.get(f"/v1/records/{mid}/content", headers=market.auth())
    assert own.status_code == 200 and own.content == theirs


def test_after_rotating_to_a_pq_key_the_old_records_still_serve(
    world: World, brokers: dict[str, Broker]
) -> None:
    tax, market = brokers["TAX"], brokers["MARKET"]
    before = b"published before the rotation " + os.urandom(32)
    rid = publish(tax, before)
    gid = granted(world, tax, market, rid)
    prof = world["TAX"].profile
    out = governance.rotate(
        world.ledger,
        world["TAX"].admin,
        prof,
        encryption_kem=KEM_MLKEM768_X25519,
        key_password=PASSWORD,
    )
    assert kem_of(out.department.encryption_key) == KEM_MLKEM768_X25519
    assert len(list((prof.dir / "retired").glob("*hpke.key.json"))) == 1
    # TAX's broker as it starts after the rotation: the new key, the old one retired
    world.depts["TAX"] = dataclasses.replace(world["TAX"], hpke=prof.unlock_hpke(PASSWORD))
    svc = make_services(world, "TAX")
    try:
        assert svc.hpke.kem == KEM_MLKEM768_X25519 and len(svc.retired_hpke) == 1
        # an old record, read by its owner and served to MARKET (suite 2 both ends now)
        path = world.home / "own-before.bin"
        assert fetch(svc, rid, path).sha256 and path.read_bytes() == before
        req = ExchangeRequest.new("MARKET", "TAX", gid, bytes.fromhex(rid[2:]),
                                  now=world.ledger.now())  # fmt: skip
        answer = serve_exchange(svc, req.to_json(), req.sign(world["MARKET"].broker, svc.domain))
        _drain(answer.chunks)
        assert len(answer.capsule) == 1174
        dek = unwrap_dek(
            answer.capsule, world["MARKET"].hpke, record_id=bytes.fromhex(rid[2:]),
            grant_id=gid, recipient_dept="MARKET",
        )  # fmt: skip
        assert len(dek) == 32
    finally:
        svc.close()
        svc.store.close()
        svc.db.close()


def _drain(chunks: Any) -> None:
    for _ in chunks:
        pass
