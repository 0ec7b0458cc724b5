"""Requests by subject over real HTTP, between brokers on a real chain: what the
API refuses (and that it changes nothing), that a retry or a resumed operation
never sends a request twice, and that the subject's id stays out of the
requesting broker's database and logs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from govshare.broker.access import _send
from govshare.broker.consent import approve
from govshare.broker.outbox import StepContext
from integration.world import CATEGORY, Broker, World, start_broker

pytestmark = pytest.mark.integration

SUBJECT = "91350200MA2Y0LQX3K"


@pytest.fixture(scope="module")
def brokers(world: World) -> Iterator[dict[str, Broker]]:
    started = {c: start_broker(world, c) for c in ("TAX", "MARKET")}
    yield started
    for b in started.values():
        b.close()


def publish(tax: Broker, data: bytes, key: str, subject: str = SUBJECT) -> str:
    r = tax.client.post(
        "/v1/records",
        headers={**tax.auth(), "Idempotency-Key": key, "Prefer": "respond-async"},
        files={"file": ("status.pdf", data, "application/pdf")},
        data={"category": CATEGORY, "subject": subject},
    )
    assert r.status_code == 202, r.text
    assert tax.svc.record_batcher.run_once(force=True).action == "submitted"
    return str(r.json()["record_id"])


def ask(b: Broker, body: dict, key: str | None = None) -> httpx.Response:
    headers = {**b.auth(), **({"Idempotency-Key": key} if key else {})}
    full = {"owner": "TAX", "purpose": "licence", "legal_basis": "art. 5", **body}
    return b.client.post("/v1/requests", headers=headers, json=full)


def requests_count(world: World) -> int:
    return world.ledger.access.request_count()


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({}, 400, "input.invalid"),
        ({"category": CATEGORY}, 400, "input.invalid"),
        ({"subject": SUBJECT}, 400, "input.invalid"),
        ({"record_id": "0x" + "ab" * 32, "category": CATEGORY, "subject": SUBJECT}, 400,
         "input.invalid"),
        ({"category": "no spaces allowed", "subject": SUBJECT}, 422, "input.validation_failed"),
        ({"category": CATEGORY, "subject": "bell\x07"}, 422, "input.validation_failed"),
        ({"category": CATEGORY, "subject": "x" * 257}, 422, "input.validation_failed"),
        ({"category": "undeclared", "subject": SUBJECT}, 404, "not_found"),
        ({"category": CATEGORY, "subject": "  - "}, 400, "input.invalid"),
        # nothing personal on chain: a purpose or legal basis naming a subject
        ({"category": CATEGORY, "subject": SUBJECT, "purpose": f"licence of {SUBJECT}"}, 422,
         "input.identifier_in_text"),
        ({"record_id": "0x" + "ab" * 32, "purpose": "licence of 9135 0200 MA2Y 0LQX 3K"}, 422,
         "input.identifier_in_text"),
        ({"category": CATEGORY, "subject": SUBJECT, "legal_basis": "citizen 110105199001011234"},
         422, "input.identifier_in_text"),
    ],
)  # fmt: skip
def test_bad_requests_by_subject_are_refused_and_send_nothing(
    world: World, brokers: dict[str, Broker], body: dict, status: int, code: str
) -> None:
    before = requests_count(world)
    r = ask(brokers["MARKET"], body)
    assert r.status_code == status, r.text
    assert r.json()["code"] == code
    assert requests_count(world) == before


def test_find_and_fetch_by_subject_need_a_user_and_a_clean_body(
    brokers: dict[str, Broker],
) -> None:
    market = brokers["MARKET"]
    body = {"owner": "TAX", "category": CATEGORY, "subject": SUBJECT}
    for path in ("/v1/records/find", "/v1/records/by-subject/content"):
        assert market.client.post(path, json=body).status_code == 401
        r = market.client.post(path, headers=market.auth(), json={**body, "extra": 1})
        assert r.status_code == 422
        r = market.client.post(path, headers=market.auth(), json={**body, "subject": "\x1b[2J"})
        assert r.status_code == 422 and "\x1b" not in r.text
    # Another department's user token is not MARKET's.
    tax = brokers["TAX"]
    assert market.client.post("/v1/records/find", headers=tax.auth(), json=body).status_code == 401
    # An auditor may find, but a fetch spends a grant: clerks and administrators only.
    r = market.client.post("/v1/records/find", headers=market.auth("auditor"), json=body)
    assert r.status_code == 200
    r = market.client.post(
        "/v1/records/by-subject/content", headers=market.auth("auditor"), json=body
    )
    assert r.status_code == 403


def test_request_retry_resume_and_the_subject_stays_home(
    world: World, brokers: dict[str, Broker], tmp_path: Path
) -> None:
    tax, market = brokers["TAX"], brokers["MARKET"]
    data = os.urandom(500)
    rid = publish(tax, data, "subject-v1")
    found = market.client.post(
        "/v1/records/find",
        headers=market.auth(),
        json={"owner": "TAX", "category": CATEGORY, "subject": SUBJECT.lower()},
    )
    assert found.status_code == 200 and [r["record_id"] for r in found.json()] == [rid]
    nothing = market.client.post(
        "/v1/records/find",
        headers=market.auth(),
        json={"owner": "TAX", "category": CATEGORY, "subject": "NOBODY123"},
    )
    assert nothing.json() == []

    before = requests_count(world)
    first = ask(market, {"category": CATEGORY, "subject": SUBJECT}, key="subject-1")
    assert first.status_code == 201, first.text
    assert first.json()["granted"] is False
    gid = int(first.json()["request_id"])
    again = ask(market, {"category": CATEGORY, "subject": SUBJECT}, key="subject-1")
    assert again.status_code == 200 and int(again.json()["request_id"]) == gid
    # The same key with another body is a conflict, not a second request.
    other = ask(market, {"category": CATEGORY, "subject": "OTHER123"}, key="subject-1")
    assert other.status_code == 409
    assert requests_count(world) == before + 1

    # A "send" step run again after a crash finds the request it sent.
    op = market.svc.outbox.get(first.json()["operation_id"])
    ctx = StepContext(
        op.id, op.kind, op.principal, dict(op.payload), {}, "send", attempt=2, resumed=True
    )
    assert _send(market.svc, ctx)["request_id"] == gid
    assert requests_count(world) == before + 1

    pending = market.client.post(
        "/v1/records/by-subject/content",
        headers=market.auth(),
        json={"owner": "TAX", "category": CATEGORY, "subject": SUBJECT},
    )
    assert pending.status_code == 403 and pending.json()["code"] == "grant.pending"
    approve(world.ledger, world["TAX"].admin, gid, max_uses=2, expires_in=3600)
    got = market.client.post(
        "/v1/records/by-subject/content",
        headers=market.auth(),
        json={"owner": "TAX", "category": CATEGORY, "subject": SUBJECT},
    )
    assert got.status_code == 200, got.text
    assert got.content == data and got.headers["govshare-record-id"] == rid

    # Nothing MARKET's broker wrote holds the subject's id: only its keyed reference.
    home = Path(world.home) / "depts" / "MARKET"
    normal = SUBJECT.encode()
    for path in home.rglob("*"):
        if path.is_file():
            blob = path.read_bytes()
            assert normal not in blob and normal.lower() not in blob, path
