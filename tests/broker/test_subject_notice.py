"""``subject.delivered`` (PIPL Art. 35): each delivery of a record of a category
whose subjects must be told is one notification at the owner, written in the
transaction that keeps the delivery's receipt; other categories tell nothing."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from audit.conftest import exchange
from govshare.broker.access import request_access
from govshare.broker.consent import approve
from govshare.broker.errors import NonceReplayed
from govshare.broker.exchange import ExchangeRequest
from govshare.broker.publish import PublishRequest, publish, stage_file
from govshare.broker.serve_exchange import serve_exchange
from govshare.broker.services import BrokerServices
from govshare.broker.subjects import load_subject_key, subject_ref
from integration.world import CATEGORY, World, make_services

pytestmark = pytest.mark.integration

SUBJECT = "91110000710928411X"


@contextmanager
def _services(
    world: World, code: str, told: frozenset[str] = frozenset()
) -> Iterator[BrokerServices]:
    """CODE's broker services; ``told``: its categories whose subjects are told."""
    svc = make_services(world, code)
    svc.notifications.settings = dataclasses.replace(
        svc.notifications.settings, subject_categories=told
    )
    try:
        yield svc
    finally:
        svc.close()
        svc.store.close()
        svc.db.close()


@pytest.fixture
def tax(world: World) -> Iterator[BrokerServices]:
    with _services(world, "TAX", frozenset({CATEGORY})) as svc:
        yield svc


@pytest.fixture
def market(world: World) -> Iterator[BrokerServices]:
    with _services(world, "MARKET") as svc:
        yield svc


def _granted(
    world: World, tax: BrokerServices, market: BrokerServices, data: bytes
) -> tuple[str, int]:
    staged = stage_file(tax, io.BytesIO(data))
    key = data.hex()[:32]
    out = publish(tax, "user:1", key, staged, PublishRequest(CATEGORY, subject=SUBJECT),
                  anchor_wait=30)  # fmt: skip
    rid = str(out.record_id)
    req = request_access(market, "user:9", "TAX", rid, "licence", "art. 5", idempotency_key=key)
    assert req.request_id
    approve(tax.ledger, world["TAX"].admin, req.request_id, max_uses=5, expires_in=3600)
    return rid, int(req.request_id)


def _told(tax: BrokerServices) -> list[dict]:
    return [n.data for n in tax.notifications.read_after(0, limit=1000)
            if n.kind == "subject.delivered"]  # fmt: skip


def test_each_delivery_of_a_told_category_is_one_notification(
    world: World, tax: BrokerServices, market: BrokerServices
) -> None:
    before = len(_told(tax))
    rid, gid = _granted(world, tax, market, b"clearance about ACME " + bytes(8))
    seqs = [exchange(tax, market, gid, rid) for _ in range(2)]
    told = _told(tax)[before:]
    assert [n["receipt_seq"] for n in told] == seqs
    ref = "0x" + subject_ref(load_subject_key(world["TAX"].profile.dir), SUBJECT).hex()
    assert told[0] == {
        "request_id": gid, "record_id": rid, "owner": "TAX", "category": CATEGORY,
        "subject_ref": ref, "requester": "MARKET", "grant_id": gid,
        "receipt_seq": seqs[0], "purpose": "licence", "legal_basis": "art. 5",
    }  # fmt: skip
    assert SUBJECT not in str(told)


def test_a_refused_delivery_tells_nothing_and_other_categories_are_not_told(
    world: World, tax: BrokerServices, market: BrokerServices
) -> None:
    rid, gid = _granted(world, tax, market, b"another clearance " + bytes(8))
    req = ExchangeRequest.new("MARKET", "TAX", gid, bytes.fromhex(rid[2:]), now=tax.ledger.now())
    sig = req.sign(market.account, tax.domain)
    for _ in serve_exchange(tax, req.to_json(), sig).chunks:
        pass
    before = len(_told(tax))
    with pytest.raises(NonceReplayed):  # the same request again: no receipt, no notice
        serve_exchange(tax, req.to_json(), sig)
    assert len(_told(tax)) == before
    tax.notifications.settings = dataclasses.replace(
        tax.notifications.settings, subject_categories=frozenset({"another-category"})
    )
    exchange(tax, market, gid, rid)
    assert len(_told(tax)) == before
