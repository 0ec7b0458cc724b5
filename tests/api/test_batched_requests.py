"""A record anchored in a batch, asked for by another department over real HTTP:
the requester's broker finds it in its mirror's batch index, materialises it (and
its missing earlier versions) as durable outbox steps, then requests it; consent,
the exchange and the receipts are those of any record. The auditor then proves
it from chain + manifest, materialised or not."""

from __future__ import annotations

import io
import os
from typing import Any

import httpx
import pytest

from govshare.audit.sources import ManifestSources
from govshare.audit.trail import build_trail, verify_hash
from govshare.audit.view import AuditView
from govshare.broker.access import _materialise, _send, request_access
from govshare.broker.consent import approve
from govshare.broker.outbox import StepContext
from govshare.chain.batch import BatchRecord, build_batch
from integration.world import CATEGORY, Broker, World

pytestmark = pytest.mark.integration


def anchor_in_batch(tax: Broker, records: list[BatchRecord]) -> int:
    """TAX's broker commits to ``records`` with one ``anchorBatch``, its manifest
    stored and pinned in TAX's store (as the owner's batching publishes do)."""
    m = build_batch("TAX", records)
    cid = tax.svc.store.put(io.BytesIO(m.data), cid_version=1)
    return tax.svc.ledger.records.anchor_batch(tax.svc.account, m.root, m.count, str(cid)).value


def filler() -> BatchRecord:
    return BatchRecord(os.urandom(32), "TAX", os.urandom(32), "bafyfiller", CATEGORY)


def publish_batched(
    tax: Broker, monkeypatch: pytest.MonkeyPatch, data: bytes, key: str
) -> tuple[str, int]:
    """Publish through TAX's API as its clerks do (batch mode, the default): the
    record and two others are accepted at once ("anchoring") and anchored by one
    batch, the record at leaf 1. Returns its id and its batch's sequence."""
    del monkeypatch  # kept in the signature: the callers' fixtures

    def accept(body: bytes, k: str) -> str:
        r = tax.client.post(
            "/v1/records",
            headers={**tax.auth(), "Idempotency-Key": k, "Prefer": "respond-async"},
            files={"file": ("certificate.pdf", body, "application/pdf")},
            data={"category": CATEGORY},
        )
        assert r.status_code == 202 and r.json()["state"] == "anchoring", r.text
        return str(r.json()["record_id"])

    accept(os.urandom(100), f"{key}-before")
    rid = accept(data, key)
    accept(os.urandom(100), f"{key}-after")
    done = tax.svc.record_batcher.run_once(force=True)
    assert done.action == "submitted" and done.count == 3, done
    op = tax.client.get(f"/v1/records/{rid}", headers=tax.auth()).json()
    assert op["status"] == "anchored", op
    assert not tax.svc.ledger.records.record_exists(rid), "batched: not on chain until requested"
    assert done.operation is not None and done.operation.result is not None
    return rid, int(done.operation.result["sequence"])


def ask(b: Broker, owner: str, rid: str, key: str | None = None) -> httpx.Response:
    headers = {**b.auth(), **({"Idempotency-Key": key} if key else {})}
    return b.client.post(
        "/v1/requests",
        headers=headers,
        json={"owner": owner, "record_id": rid, "purpose": "licence", "legal_basis": "art. 5"},
    )


def test_batched_record_request_approve_fetch(
    world: World, brokers: dict[str, Broker], monkeypatch: pytest.MonkeyPatch
) -> None:
    tax, market, court = brokers["TAX"], brokers["MARKET"], brokers["COURT"]
    data = os.urandom(3000)
    rid, seq = publish_batched(tax, monkeypatch, data, "batched-1")

    r = ask(market, "TAX", rid, key="ask-batched-1")
    assert r.status_code == 201, r.text
    gid = int(r.json()["request_id"])
    # Materialised by MARKET's broker from TAX's batch, leaf 1, then requested.
    L = world.ledger
    assert L.records.record_exists(rid)
    market.svc.mirror.run_once()
    mats = market.svc.mirror.events_for_record(rid, "RecordMaterialised")
    assert len(mats) == 1
    assert mats[0].args["sequence"] == seq and mats[0].args["leafIndex"] == 1
    assert mats[0].args["materialisedBy"] == market.svc.account.address
    assert L.records.get_record(rid).anchored_by == tax.svc.account.address
    # The same key again: the same request, nothing sent twice.
    again = ask(market, "TAX", rid, key="ask-batched-1")
    assert again.status_code in (200, 201) and int(again.json()["request_id"]) == gid
    assert len(L.access.requests_for_record(rid)) == 1

    approve(world.ledger, world["TAX"].admin, gid, max_uses=2, expires_in=3600)
    got = market.client.get(f"/v1/records/{rid}/content", headers=market.auth())
    assert got.status_code == 200, got.text
    assert got.content == data

    # Another department asks for it now that it is on chain: no materialise sent.
    r2 = ask(court, "TAX", rid)
    assert r2.status_code == 201, r2.text
    court.svc.mirror.run_once()
    assert len(court.svc.mirror.events_for_record(rid, "RecordMaterialised")) == 1

    # The auditor's view over MARKET's mirror: the record, its batch and who wrote it.
    view = AuditView(L, market.svc.mirror, ManifestSources([]))
    view.sync()
    found = verify_hash(view, bytes.fromhex(L.records.get_record(rid).content_hash.hex()))
    assert [f["record_id"] for f in found] == [rid]
    assert found[0]["on_chain"] is True and found[0]["batch"]["verified"] is True
    mat = found[0]["batch"]["materialised"]
    assert mat["materialised_by"] == market.svc.account.address
    trail = build_trail(view, rid)
    assert trail["ok"], trail["problems"]
    kinds = [e["kind"] for e in trail["timeline"]]
    assert {"published", "materialised", "requested", "approved"} <= set(kinds)
    assert trail["versions"][0]["batch"]["sequence"] == seq


def test_a_record_in_no_batch_nor_on_chain_gets_a_sentence(brokers: dict[str, Broker]) -> None:
    market = brokers["MARKET"]
    r = ask(market, "TAX", "0x" + os.urandom(32).hex())
    assert r.status_code == 404, r.text
    body = r.json()
    assert body["code"] == "record.unknown"
    assert "neither anchored on chain nor in any anchored record batch" in body["detail"]


def test_versions_across_batches_materialise_oldest_first(
    world: World, brokers: dict[str, Broker]
) -> None:
    tax, market = brokers["TAX"], brokers["MARKET"]
    v1 = BatchRecord(os.urandom(32), "TAX", os.urandom(32), "bafyv1", CATEGORY)
    v2 = BatchRecord(os.urandom(32), "TAX", os.urandom(32), "bafyv2", CATEGORY, None, v1.record_id)
    v3 = BatchRecord(os.urandom(32), "TAX", os.urandom(32), "bafyv3", CATEGORY, None, v2.record_id)
    anchor_in_batch(tax, [filler(), v1])
    anchor_in_batch(tax, [v3, v2])  # within one batch, the newer first
    r = ask(market, "TAX", "0x" + v3.record_id.hex())
    assert r.status_code == 201, r.text
    L = world.ledger
    chain = L.records.versions(v3.record_id)
    assert [x.record_id for x in chain] == [v1.record_id, v2.record_id, v3.record_id]
    op = market.svc.outbox.get(r.json()["operation_id"])
    assert op.result is not None and len(op.result["materialised"]) == 3


def test_the_steps_are_idempotent_after_a_crash(world: World, brokers: dict[str, Broker]) -> None:
    """Each step run again as after a crash (``resumed``): nothing is sent twice."""
    tax, market = brokers["TAX"], brokers["MARKET"]
    rec = filler()
    anchor_in_batch(tax, [rec])
    market.svc.mirror.run_once()
    svc = market.svc
    rid = "0x" + rec.record_id.hex()
    payload = {
        "owner": "TAX",
        "record_id": rid,
        "purpose": "p",
        "legal_basis": "",
        "deadline": svc.ledger.now() + 3600,
    }

    def ctx(step: str, resumed: bool, results: dict[str, Any]) -> StepContext:
        return StepContext("op1", "request", "user:1", payload, results, step, 2, resumed)

    first = _materialise(svc, ctx("materialise", False, {}))
    assert len(first["tx_hashes"]) == 1  # type: ignore[arg-type, index]
    again = _materialise(svc, ctx("materialise", True, {}))
    assert again == {"tx_hashes": [], "resumed": True}
    sent = _send(svc, ctx("send", False, {"materialise": first}))
    resent = _send(svc, ctx("send", True, {"materialise": again}))
    assert resent["request_id"] == sent["request_id"]  # type: ignore[index]
    assert len(svc.ledger.access.requests_for_record(rid)) == 1
    # An operation that was at its "send" step before "materialise" existed resumes
    # at "materialise" (resumed) and its "send" looks for the request it sent.
    legacy = _send(svc, ctx("send", False, {"materialise": again}))
    assert legacy["request_id"] == sent["request_id"]  # type: ignore[index]


def test_request_access_over_a_batch_whose_manifest_is_missing(
    world: World, brokers: dict[str, Broker]
) -> None:
    """The index cannot read the manifest: the clerk is told so, nothing is sent."""
    tax, market = brokers["TAX"], brokers["MARKET"]
    rec = filler()
    m = build_batch("TAX", [rec])
    from govshare.storage import compute_cid

    cid = str(compute_cid(m.data, cid_version=1))  # stored nowhere
    tax.svc.ledger.records.anchor_batch(tax.svc.account, m.root, m.count, cid)
    before = world.ledger.access.request_count()
    from govshare.broker.errors import RecordUnknown

    with pytest.raises(RecordUnknown, match="could not be read yet"):
        request_access(
            market.svc, "clerk", "TAX", rec.record_id, "licence", idempotency_key="missing-1"
        )
    assert world.ledger.access.request_count() == before
    assert not world.ledger.records.record_exists(rec.record_id)


def test_the_audit_page_shows_batches(
    world: World, brokers: dict[str, Broker], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The broker's auditor page: a hash found in a batch (its place, its proof, not
    on chain yet) and, in the status, a batch whose manifest no source holds."""
    import hashlib

    from govshare.storage import compute_cid

    tax, market = brokers["TAX"], brokers["MARKET"]
    data = os.urandom(500)
    rid, seq = publish_batched(tax, monkeypatch, data, "page-1")
    lost = build_batch("TAX", [filler()])
    cid = str(compute_cid(lost.data, cid_version=1))  # stored nowhere
    lost_seq = tax.svc.ledger.records.anchor_batch(tax.svc.account, lost.root, 1, cid).value
    auditor = market.auth("auditor")
    r = market.client.get(
        "/audit/view", headers=auditor, params={"hash": hashlib.sha256(data).hexdigest()}
    )
    assert r.status_code == 200, r.text
    assert f'data-record="{rid}"' in r.text and f"batch {seq}, leaf 1 of 3" in r.text
    assert "proof ok" in r.text and "not on chain yet" in r.text
    s = market.client.get("/audit/status", headers=auditor)
    assert s.status_code == 200, s.text
    assert 'id="record-batches"' in s.text and "could not be read" in s.text
    assert f"<td>TAX</td><td>{lost_seq}</td>" in s.text and "No manifest source holds" in s.text
