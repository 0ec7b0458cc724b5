"""A suspended department (issue 14): its publish is refused before anything is
stored, its receipt batcher pauses instead of retrying, and /readyz says so.
Three brokers over real HTTP on this module's own anvil; the batcher's clock is
moved, never waited for."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
from sqlalchemy import func, select

from fakeclock import ManualClock
from govshare.broker.consent import approve
from govshare.broker.db import Operation, Record
from govshare.broker.receipt_batches import INACTIVE_RECHECK, ReceiptBatcher
from govshare.chain.contracts import DepartmentStatus
from govshare.home import dept_dir
from integration.world import CATEGORY, Broker, World

pytestmark = pytest.mark.integration


def publish(b: Broker, data: bytes, key: str) -> object:
    return b.client.post(
        "/v1/records",
        headers={**b.auth(), "Idempotency-Key": key},
        files={"file": ("c.pdf", data, "application/pdf")},
        data={"category": CATEGORY},
    )


def blob_files(world: World, code: str) -> set[Path]:
    root = dept_dir(world.home, code) / "blobs"
    return {p for p in root.rglob("*") if p.is_file()}


def counts(b: Broker) -> tuple[int, int]:
    with b.svc.db.session(readonly=True) as s:
        records = s.scalar(select(func.count()).select_from(Record))
        ops = s.scalar(select(func.count()).select_from(Operation))
    return int(records or 0), int(ops or 0)


def vote(world: World, verb: str, code: str) -> None:
    reg = world.ledger.registry
    propose = {
        "suspend": reg.propose_suspend_department,
        "reactivate": reg.propose_reactivate_department,
    }[verb]
    sent = propose(world["MARKET"].admin, code)
    assert reg.approve(world["COURT"].admin, sent.value).value is True


def test_a_suspended_department_publishes_nothing_and_its_batcher_pauses(
    world: World, brokers: dict[str, Broker], caplog: pytest.LogCaptureFixture
) -> None:
    tax, market = brokers["TAX"], brokers["MARKET"]
    # a receipt waiting to be anchored: MARKET fetched one of TAX's records
    r = publish(tax, os.urandom(5000), "before")
    assert r.status_code == 201, r.text  # type: ignore[attr-defined]
    rid = r.json()["record_id"]  # type: ignore[attr-defined]
    ask = market.client.post(
        "/v1/requests",
        headers=market.auth(),
        json={"owner": "TAX", "record_id": rid, "purpose": "licence"},
    )
    assert ask.status_code == 201, ask.text
    approve(
        world.ledger, world["TAX"].admin, int(ask.json()["request_id"]), max_uses=2, expires_in=3600
    )
    got = market.client.get(f"/v1/records/{rid}/content", headers=market.auth())
    assert got.status_code == 200, got.text
    assert tax.client.get("/readyz").json()["membership"] == "active"

    vote(world, "suspend", "TAX")
    tax.svc.sync.run_once()  # the mirror's tick that sees it (and drops the cache)
    assert tax.client.get("/readyz").json()["membership"] == "suspended"
    assert tax.client.get("/readyz").status_code == 200  # still serves its clerks' reads

    blobs, (records, ops) = blob_files(world, "TAX"), counts(tax)
    refused = publish(tax, os.urandom(300_000), "while-suspended")
    assert refused.status_code == 403, refused.text  # type: ignore[attr-defined]
    body = refused.json()  # type: ignore[attr-defined]
    assert body["code"] == "department.inactive"
    assert "suspended" in body["detail"] and "Nothing was stored" in body["detail"]
    # nothing stored: no block, no record, no operation, no staged upload
    assert blob_files(world, "TAX") == blobs
    assert counts(tax) == (records, ops)
    assert list(tax.svc.spool.iterdir()) == []
    # a bulk publish too, item by item
    items = [{"idempotency_key": f"bulk-{i}", "category": CATEGORY} for i in range(2)]
    bulk = tax.client.post(
        "/v1/records/batch",
        headers=tax.auth(),
        files=[("file", (f"{i}.pdf", os.urandom(3000), "application/pdf")) for i in range(2)],
        data={"items": json.dumps(items)},
    )
    assert bulk.status_code < 500, bulk.text
    results = bulk.json()["results"]
    assert [(x["status"], x["body"]["code"]) for x in results] == [(403, "department.inactive")] * 2
    assert blob_files(world, "TAX") == blobs and counts(tax) == (records, ops)
    assert list(tax.svc.spool.iterdir()) == []

    # the receipt batcher pauses, logs once, asks again only every 300 s
    clock = ManualClock()
    tax.svc.clock = clock
    batcher = ReceiptBatcher(tax.svc, max_age=0)
    asked: list[str] = []
    real = tax.svc.ledger.registry.department_status

    def counted(code: str) -> DepartmentStatus:
        asked.append(code)
        return real(code)

    tax.svc.ledger.registry.department_status = counted  # type: ignore[method-assign]
    try:
        with caplog.at_level(logging.INFO, logger="govshare.broker.receipt_batches"):
            assert batcher.run_once(drive=True).action == "paused"
            for _ in range(20):  # forty seconds of 2 s rounds
                clock.advance(2)
                assert batcher.run_once(drive=True).action == "paused"
            assert len(asked) == 1
            paused = [r for r in caplog.records if "pausing" in r.getMessage()]
            assert len(paused) == 1 and "suspended" in paused[0].getMessage()

            vote(world, "reactivate", "TAX")
            tax.svc.sync.run_once()
            clock.advance(INACTIVE_RECHECK)
            done = batcher.run_once(drive=True)
            assert done.action == "submitted", done
            assert done.operation is not None and done.operation.state.value == "done"
            assert any("active again" in r.getMessage() for r in caplog.records)
        assert len(asked) == 1  # reinstated: the mirror-fed cache said so, no live read
        assert world.ledger.access.last_receipt_seq("TAX") >= 1
    finally:
        del tax.svc.ledger.registry.department_status  # type: ignore[method-assign]

    # reinstated: publishing works again
    again = publish(tax, os.urandom(5000), "after")
    assert again.status_code == 201, again.text  # type: ignore[attr-defined]
