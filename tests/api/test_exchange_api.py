"""Three departments' brokers over real HTTP (uvicorn threads, each its own app,
database and store), on this module's own anvil: publishing, requests and
grants through the API, the exchange between two brokers, and every refusal
with its code, at the requester's API and at the owner's exchange endpoint."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from fakeclock import ManualClock, warp_chain
from govshare.broker.consent import approve, deny, revoke
from govshare.broker.exchange import H_SIGNATURE, ExchangeRequest
from govshare.chain.devnode import AnvilProcess
from govshare.storage import parse_cid
from govshare.storage.unixfs import compute_cid
from integration.world import CATEGORY, Broker, World, anchored_record

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"


def problem(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM), r.headers
    body: dict[str, Any] = r.json()
    assert body["code"] == code, body
    assert "Traceback" not in r.text
    return body


def publish(b: Broker, data: bytes, key: str, **fields: str) -> httpx.Response:
    form = {"category": CATEGORY, **fields}
    return b.client.post(
        "/v1/records",
        headers={**b.auth(), "Idempotency-Key": key},
        files={"file": ("certificate.pdf", data, "application/pdf")},
        data=form,
    )


def published(b: Broker, data: bytes, key: str) -> str:
    r = publish(b, data, key)
    assert r.status_code == 201, r.text
    return str(r.json()["record_id"])


def ask(requester: Broker, owner: str, record_id: str, purpose: str = "licence") -> int:
    r = requester.client.post(
        "/v1/requests",
        headers=requester.auth(),
        json={"owner": owner, "record_id": record_id, "purpose": purpose, "legal_basis": "art. 5"},
    )
    assert r.status_code == 201, r.text
    return int(r.json()["request_id"])


def granted(world: World, requester: Broker, rid: str, *, uses: int = 5, ttl: int = 3600) -> int:
    gid = ask(requester, "TAX", rid)
    approve(world.ledger, world["TAX"].admin, gid, max_uses=uses, expires_in=ttl)
    return gid


def content(b: Broker, rid: str, **params: object) -> httpx.Response:
    return b.client.get(f"/v1/records/{rid}/content", headers=b.auth(), params=params)


def spool(b: Broker) -> list[str]:
    return sorted(p.name for p in b.svc.spool.iterdir())


def receipts(b: Broker, **params: object) -> list[dict[str, Any]]:
    r = b.client.get("/v1/receipts", headers=b.auth("auditor"), params=params)
    assert r.status_code == 200, r.text
    return list(r.json())


# -- publishing ---------------------------------------------------------------------------


def test_publish_over_http_and_idempotent_retries(tax: Broker) -> None:
    data = os.urandom(20_000)
    r = publish(tax, data, "http-1", subject="91110000710928411X")
    assert r.status_code == 201, r.text
    body = r.json()
    rid = body["record_id"]
    assert body["state"] == "done" and not body["replayed"] and body["tx_hash"]
    assert r.headers["location"] == f"/v1/records/{rid}"
    again = publish(tax, data, "http-1", subject="91110000710928411X")
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.json()["record_id"] == rid and again.json()["replayed"]
    problem(publish(tax, b"other", "http-1"), 409, "idempotency.conflict")

    shown = tax.client.get(f"/v1/records/{rid}", headers=tax.auth("auditor")).json()
    assert shown["status"] == "anchored" and shown["filename"] == "certificate.pdf"
    assert shown["media_type"] == "application/pdf" and shown["size"] == len(data)
    assert shown["subject_ref"] and "9111" not in str(shown)
    listed = tax.client.get("/v1/records", headers=tax.auth(), params={"status": "anchored"})
    assert rid in {x["record_id"] for x in listed.json()}
    own = content(tax, rid)
    assert own.status_code == 200 and own.content == data
    assert (
        own.headers["govshare-content-sha256"]
        and "certificate.pdf" in own.headers["content-disposition"]
    )
    assert spool(tax) == []


def test_publish_refusals(tax: Broker) -> None:
    problem(
        tax.client.post(
            "/v1/records",
            headers=tax.auth(),
            files={"file": ("a", b"x")},
            data={"category": CATEGORY},
        ),
        400,
        "idempotency.key_required",
    )
    problem(
        tax.client.post(
            "/v1/records",
            headers={**tax.auth(), "Idempotency-Key": "j"},
            json={"category": CATEGORY},
        ),
        415,
        "input.not_multipart",
    )
    problem(publish(tax, b"x", "cat-1", category="undeclared"), 422, "record.unknown_category")
    problem(
        tax.client.post(
            "/v1/records",
            headers={**tax.auth(), "Idempotency-Key": "nofile"},
            data={"category": CATEGORY},
            files={"other": ("a", b"x")},
        ),
        400,
        "input.invalid",
    )
    limits = tax.svc.limits
    tax.svc.limits = replace(limits, max_upload=1000)
    try:
        problem(publish(tax, os.urandom(5000), "big-1"), 413, "input.too_large")

        # a body without Content-Length (chunked) is cut off while streaming
        def chunks() -> Iterator[bytes]:
            yield b'--B\r\nContent-Disposition: form-data; name="file"; filename="x"\r\n\r\n'
            for _ in range(10):
                yield os.urandom(500)

        r = tax.client.post(
            "/v1/records",
            headers={
                **tax.auth(),
                "Idempotency-Key": "big-2",
                "Content-Type": "multipart/form-data; boundary=B",
            },
            content=chunks(),
        )
        problem(r, 413, "input.too_large")
    finally:
        tax.svc.limits = limits
    auditor = tax.client.post(
        "/v1/records",
        headers={**tax.auth("auditor"), "Idempotency-Key": "aud"},
        files={"file": ("a", b"x")},
        data={"category": CATEGORY},
    )
    problem(auditor, 403, "auth.forbidden")
    problem(tax.client.get("/v1/records"), 401, "auth.required")
    assert spool(tax) == []


# -- the exchange ---------------------------------------------------------------------------


def test_a_granted_department_fetches_exactly_the_bytes(
    world: World, tax: Broker, market: Broker
) -> None:
    data = os.urandom(600_000)  # three blocks
    rid = published(tax, data, "grant-ok")
    gid = granted(world, market, rid, uses=3)
    r = content(market, rid)
    assert r.status_code == 200, r.text
    assert r.content == data
    assert r.headers["govshare-record-owner"] == "TAX"
    assert r.headers["govshare-grant-id"] == str(gid)
    seq = int(r.headers["govshare-receipt-seq"])
    assert spool(market) == []

    # both sides keep the receipt, signed by both
    theirs = [x for x in receipts(tax, grant=gid)]
    ours = [x for x in receipts(market, grant=gid, owner="TAX")]
    assert len(theirs) == len(ours) == 1
    assert theirs[0]["seq"] == ours[0]["seq"] == seq
    for k in ("request_hash", "requester_signature", "owner_signature", "capsule_hash"):
        assert theirs[0][k] == ours[0][k]
    assert theirs[0]["ciphertext_cid"] == world.ledger.records.get_record(rid).cid

    grants = tax.client.get("/v1/grants", headers=tax.auth(), params={"direction": "incoming"})
    g = {x["id"]: x for x in grants.json()}[gid]
    assert (g["status"], g["max_uses"], g["uses"], g["requester"]) == ("approved", 3, 1, "MARKET")
    out = market.client.get(
        "/v1/requests", headers=market.auth("auditor"), params={"direction": "outgoing"}
    )
    assert out.headers["govshare-synced"] == "true"
    assert {x["id"]: x["status"] for x in out.json()}[gid] == "approved"


def test_every_refusal_at_the_requester_api(
    world: World, tax: Broker, market: Broker, court: Broker
) -> None:
    rid = published(tax, b"refusals", "ref-rec")

    # no grant at all
    problem(content(court, rid), 403, "grant.none")
    # pending, then denied
    pending = ask(market, "TAX", rid, "pending one")
    problem(content(market, rid, grant=pending), 403, "grant.pending")
    deny(world.ledger, world["TAX"].admin, pending, "no legal basis")
    problem(content(market, rid, grant=pending), 403, "grant.denied")
    # revoked
    gid = granted(world, market, rid)
    assert content(market, rid, grant=gid).status_code == 200
    revoke(world.ledger, world["TAX"].admin, gid, "licence refused")
    problem(content(market, rid, grant=gid), 403, "grant.revoked")
    # expired: the chain's clock moves past the grant's expiry
    short = granted(world, market, rid, ttl=2)
    warp_chain(world.ledger.conn, 3)
    problem(content(market, rid, grant=short), 403, "grant.expired")
    # quota used up
    once = granted(world, market, rid, uses=1)
    assert content(market, rid, grant=once).status_code == 200
    problem(content(market, rid, grant=once), 403, "grant.quota_exhausted")
    # without ?grant, the best grant held is chosen: none usable is left
    problem(content(market, rid), 403, "grant.quota_exhausted")
    # a record nobody anchored
    problem(content(market, "0x" + "42" * 32), 404, "record.unknown")


def test_a_departments_token_never_reaches_another_departments_objects(
    tax: Broker, market: Broker
) -> None:
    rid = published(market, b"market's own", "mk-own")
    # MARKET's clerk token means nothing to TAX's broker
    problem(tax.client.get("/v1/records", headers=market.auth()), 401, "auth.invalid_token")
    problem(
        tax.client.get(f"/v1/records/{rid}/content", headers=market.auth()),
        401,
        "auth.invalid_token",
    )
    # TAX's clerk cannot read MARKET's record through TAX's broker without a grant
    problem(content(tax, rid), 403, "grant.none")
    listed = tax.client.get("/v1/records", headers=tax.auth()).json()
    assert rid not in {x["record_id"] for x in listed}
    # auditors read lists and receipts, not content
    problem(
        market.client.get(f"/v1/records/{rid}/content", headers=market.auth("auditor")),
        403,
        "auth.forbidden",
    )
    problem(market.client.get("/v1/receipts", headers=market.auth()), 403, "auth.forbidden")


# -- the owner's exchange endpoint, called directly --------------------------------------------


def exchange(
    tax: Broker, req: ExchangeRequest, signer: Any, *, signature: str | None = None
) -> httpx.Response:
    sig = signature or "0x" + req.sign(signer, tax.svc.domain).hex()
    return tax.client.post("/v1/exchange", json=req.to_json(), headers={H_SIGNATURE: sig})


def test_every_refusal_at_the_exchange_endpoint(world: World, tax: Broker, market: Broker) -> None:
    rid = published(tax, b"for the endpoint", "ex-rec")
    gid = granted(world, market, rid, uses=10)
    rec = bytes.fromhex(rid[2:])
    now = world.ledger.now()
    mk = world["MARKET"].broker

    def req(**kw: Any) -> ExchangeRequest:
        base = ExchangeRequest.new("MARKET", "TAX", gid, rec, now=now)
        return replace(base, **kw)

    ok = req()
    r = exchange(tax, ok, mk)
    assert r.status_code == 200, r.text
    assert compute_cid(r.content, cid_version=1) == parse_cid(
        world.ledger.records.get_record(rid).cid
    )
    problem(exchange(tax, ok, mk), 409, "exchange.replayed")

    problem(
        tax.client.post("/v1/exchange", json=req().to_json()), 401, "exchange.signature_required"
    )
    problem(exchange(tax, req(), mk, signature="0xabc"), 401, "exchange.bad_signature")
    problem(exchange(tax, req(), mk, signature="0x" + "00" * 65), 401, "exchange.bad_signature")
    problem(exchange(tax, req(expires_at=now - 1), mk), 401, "exchange.expired")
    problem(exchange(tax, req(expires_at=now + 3600), mk), 401, "exchange.expired")
    # signed by MARKET's administrator, by COURT's broker, by a stranger
    problem(exchange(tax, req(), world["MARKET"].admin), 403, "exchange.wrong_signer")
    problem(exchange(tax, req(), world["COURT"].broker), 403, "exchange.wrong_signer")
    # COURT's broker signing for itself, with MARKET's grant
    problem(exchange(tax, req(requester="COURT"), world["COURT"].broker), 403, "grant.mismatch")
    problem(exchange(tax, req(record_id=b"\x42" * 32), mk), 404, "record.unknown")
    problem(exchange(tax, req(grant_id=10_000), mk), 404, "grant.unknown")
    problem(exchange(tax, req(owner="COURT"), mk), 400, "exchange.malformed")
    bad = tax.client.post(
        "/v1/exchange", json={"requester": "MARKET"}, headers={H_SIGNATURE: "0x" + "11" * 65}
    )
    problem(bad, 422, "input.validation_failed")
    # only the one good request spent a use
    assert len(receipts(tax, grant=gid)) == 1


def test_tampered_ciphertext_at_the_owner_is_never_released(
    world: World, tax: Broker, market: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = b"the genuine certificate"
    rid = published(tax, data, "tamper-rec")
    gid = granted(world, market, rid, uses=10)
    cid = parse_cid(world.ledger.records.get_record(rid).cid)
    spent = len(receipts(tax, grant=gid))

    # 1. a damaged block in the owner's store: the owner's store notices, no use is spent
    block = tax.svc.store.root / "blocks" / cid.digest[:1].hex() / cid.to_v1().encode()
    good = block.read_bytes()
    block.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    try:
        problem(content(market, rid, grant=gid), 502, "storage.block_corrupted")
    finally:
        block.write_bytes(good)
    assert len(receipts(tax, grant=gid)) == spent
    assert spool(market) == []

    # 2. an owner's store that serves other (well-formed) ciphertext: the requester
    #    recomputes the CID and refuses before a byte of plaintext is released
    other_rid = published(tax, b"some other record", "tamper-other")
    other_cid = anchored_record(tax.svc, other_rid).cid  # in a batch, never requested
    real_get = tax.svc.store.get
    monkeypatch.setattr(
        tax.svc.store, "get", lambda c: real_get(other_cid if str(c) == str(cid) else c)
    )
    monkeypatch.setattr(
        tax.svc.store,
        "stat",
        lambda c: tax.svc.store.__class__.stat(
            tax.svc.store, other_cid if str(c) == str(cid) else c
        ),
    )
    problem(content(market, rid, grant=gid), 502, "exchange.ciphertext_mismatch")
    assert spool(market) == []
    monkeypatch.undo()

    # 3. receipts signed by a key that is not TAX's registered broker key
    from eth_account import Account

    real_account = tax.svc.account
    tax.svc.account = Account.create()
    try:
        problem(content(market, rid, grant=gid), 502, "exchange.receipt_invalid")
    finally:
        tax.svc.account = real_account
    assert spool(market) == []
    # and, all repaired, the record comes through
    r = content(market, rid, grant=gid)
    assert r.status_code == 200 and r.content == data


def test_a_chain_that_moved_on_since_its_last_reading_costs_a_new_request_not_a_use(
    world: World, tax: Broker, market: Broker
) -> None:
    """The requester signs its request's expiry from the chain's time as read
    within the last second. When the chain has moved past that reading's expiry
    meanwhile, the owner refuses it (exchange.expired, before any use is spent)
    and the requester signs one more on a fresh reading: the clerk sees nothing."""
    rid = published(tax, b"a reading gone stale", "stale-rec")
    gid = granted(world, market, rid, uses=2, ttl=30 * 86400)
    ledger = market.svc.ledger
    wall = ledger.clock
    ledger.clock = ManualClock()  # stands still: the reading below stays "recent"
    try:
        stale = ledger.recent_now()
        warp_chain(world.ledger.conn, 2 * 3600)  # far past any request's expiry from it
        assert ledger.recent_now() == stale  # no round trip: the recent reading
        r = content(market, rid, grant=gid)
        assert r.status_code == 200, r.text
        assert r.content == b"a reading gone stale"
        assert ledger.recent_now() >= stale + 2 * 3600  # the retry read the chain afresh
    finally:
        ledger.clock = wall
    # the refused request spent nothing: this second fetch is the grant's last use
    assert content(market, rid, grant=gid).status_code == 200
    problem(content(market, rid, grant=gid), 403, "grant.quota_exhausted")


# -- the chain goes away: fail closed (last: it stops this module's chain) ----------------------


def test_chain_down_fails_closed(
    node: AnvilProcess, world: World, tax: Broker, market: Broker
) -> None:
    rid = published(tax, b"before the outage", "down-rec")
    gid = granted(world, market, rid)
    assert tax.client.get("/v1/requests", headers=tax.auth()).headers["govshare-synced"] == "true"
    node.stop()
    # a publish is accepted (encrypted, stored) and told "anchoring" at once: its
    # batch is anchored when the chain answers again
    accepted = publish(tax, b"during the outage", "down-pub")
    assert accepted.status_code == 202 and accepted.json()["state"] == "anchoring", accepted.text
    assert spool(tax) == []  # nothing staged left behind
    problem(content(market, rid, grant=gid), 503, "chain.unavailable")
    assert tax.client.get("/readyz").status_code == 503
    listing = tax.client.get("/v1/requests", headers=tax.auth())
    assert listing.status_code == 200 and listing.headers["govshare-synced"] == "false"
    assert gid in {x["id"] for x in listing.json()}


def test_openapi_documents_the_exchange(tax: Broker) -> None:
    spec = tax.client.get("/openapi.json").json()
    ex = spec["paths"]["/v1/exchange"]["post"]
    assert ex["security"] == [{"peerSignature": []}]
    assert "Govshare-Capsule" in ex["responses"]["200"]["headers"]
    pub = spec["paths"]["/v1/records"]["post"]
    assert "multipart/form-data" in pub["requestBody"]["content"]
    assert any(p["name"] == "Idempotency-Key" for p in pub["parameters"])
