"""`govshare audit subject`: one subject's history across departments, from the
chain and the receipt manifests, on a real chain with real brokers' receipts.

TAX publishes a record about ACME in two versions and one about someone else;
MARKET publishes one about ACME too. MARKET asks TAX for the first version by
its id (granted, delivered, then revoked); COURT asks TAX by subject (granted,
delivered the current version) and MARKET by subject (denied). TAX anchors its
receipts. The history names exactly ACME's records and those three requests,
with both deliveries verified, and never the id in clear."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from referencing import Registry, Resource

from audit.conftest import exchange, govshare, schema
from audit.test_audit_page import readable
from govshare.broker.access import request_access, request_by_subject
from govshare.broker.consent import approve, deny, revoke
from govshare.broker.publish import PublishRequest, publish, stage_file
from govshare.broker.services import BrokerServices
from govshare.broker.subjects import load_subject_key, subject_ref
from govshare.chain.devnode import AnvilProcess
from integration.world import CATEGORY, Broker, build_world, start_broker

pytestmark = pytest.mark.integration

ACME = "91110000710928411X"
SOMEONE_ELSE = "110105199001011234"


@dataclass
class History:
    home: Path
    brokers: dict[str, Broker]
    tax_versions: list[str]
    market_record: str
    other_record: str
    grants: dict[str, int]


def _publish(
    svc: BrokerServices, data: bytes, key: str, subject: str, supersedes: str | None = None
) -> str:
    staged = stage_file(svc, io.BytesIO(data))
    meta = PublishRequest(CATEGORY, subject=subject, supersedes=supersedes)
    out = publish(svc, "user:1", key, staged, meta, anchor_wait=30)
    assert out.record_id
    return str(out.record_id)


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[History]:
    with AnvilProcess() as node:
        home = tmp_path_factory.mktemp("home")
        w = build_world(node.url, home)
        brokers = {c: start_broker(w, c) for c in ("TAX", "MARKET", "COURT")}
        tax, market, court = (brokers[c].runtime.svc for c in ("TAX", "MARKET", "COURT"))
        try:
            v1 = _publish(tax, b"ACME: tax clearance v1", "acme-1", ACME)
            v2 = _publish(tax, b"ACME: tax clearance v2", "acme-2", ACME, supersedes=v1)
            other = _publish(tax, b"someone else's clearance", "other-1", SOMEONE_ELSE)
            theirs = _publish(market, b"ACME: licence file", "acme-m", ACME)

            by_id = request_access(
                market, "user:9", "TAX", v1, "business licence", "art. 5", idempotency_key="m1"
            ).request_id
            by_subject = request_by_subject(
                court, "user:9", "TAX", CATEGORY, ACME, "enforcement", "art. 7",
                idempotency_key="c1",
            ).request_id  # fmt: skip
            refused = request_by_subject(
                court, "user:9", "MARKET", CATEGORY, ACME, "curiosity", idempotency_key="c2"
            ).request_id
            assert by_id and by_subject and refused
            approve(tax.ledger, w["TAX"].admin, by_id, max_uses=2, expires_in=86400)
            approve(tax.ledger, w["TAX"].admin, by_subject, max_uses=2, expires_in=86400)
            deny(tax.ledger, w["MARKET"].admin, refused, "no legal basis")
            exchange(tax, market, by_id, v1)
            exchange(tax, court, by_subject, v2)
            revoke(tax.ledger, w["TAX"].admin, by_id, "licence withdrawn")
            brokers["TAX"].runtime.batcher.run_once(drive=True, force=True)  # both receipts
            assert tax.ledger.access.last_receipt_seq("TAX") == 2
            grants = {"by_id": by_id, "by_subject": by_subject, "refused": refused}
            yield History(home, brokers, [v1, v2], theirs, other, grants)
        finally:
            for b in brokers.values():
                b.close()
            w.close()


def test_the_history_names_the_subjects_records_and_every_act_on_them(history: History) -> None:
    r = govshare(history.home, "audit", "subject", ACME, "--dept", "TAX", "--json")
    assert r.exit_code == 0, r.output
    h = r.json()
    trail = Resource.from_contents(schema("audit-trail"))
    jsonschema.Draft202012Validator(
        schema("audit-subject"), registry=Registry().with_resource(trail.id() or "", trail)
    ).validate(h)
    assert h["format"] == "govshare-subject-history/v1" and h["ok"] is True, h["problems"]
    assert ACME not in r.stdout and h["subject"] == "9111…1X"
    # ACME's records in both departments, versions followed; not someone else's
    by_owner = {rec["owner"]: rec for rec in h["records"]}
    assert set(by_owner) == {"TAX", "MARKET"}
    assert [v["record_id"] for v in by_owner["TAX"]["versions"]] == history.tax_versions
    assert by_owner["MARKET"]["record_id"] == history.market_record
    assert history.other_record not in r.stdout
    # every request, its decision and purpose; both deliveries, proven
    reqs = {q["id"]: q for q in h["requests"]}
    g = history.grants
    assert set(reqs) == {g["by_id"], g["by_subject"], g["refused"]}
    assert reqs[g["by_id"]]["status"] == "revoked" and reqs[g["by_id"]]["purpose"] == (
        "business licence"
    )
    assert reqs[g["by_subject"]]["status"] == "approved"
    assert reqs[g["refused"]]["status"] == "denied" and reqs[g["refused"]]["owner"] == "MARKET"
    assert [len(reqs[g[k]]["receipts"]) for k in ("by_id", "by_subject", "refused")] == [1, 1, 0]
    assert h["receipts"] == {"anchored": 2, "verified": 2}
    kinds = [e["kind"] for e in h["timeline"]]
    assert {"published", "requested", "approved", "denied", "accessed", "revoked"} <= set(kinds)
    assert h["departments"] == ["COURT", "MARKET", "TAX"]


def test_the_text_and_the_reference_give_the_same_history(history: History) -> None:
    text = govshare(history.home, "audit", "subject", " 9111 0000-7109 2841 1x ", "--dept", "TAX")
    assert text.exit_code == 0, text.output
    assert "Records (2):" in text.stdout and "Requests (3):" in text.stdout
    assert "Deliveries: 2 anchored, 2 verified" in text.stdout
    assert "No problems found." in text.stdout and ACME not in text.stdout
    key = load_subject_key(history.home / "depts" / "TAX")
    ref = "0x" + subject_ref(key, ACME).hex()
    by_ref = govshare(history.home, "audit", "subject", "--subject-ref", ref, "--json")
    by_id = govshare(history.home, "audit", "subject", ACME, "--dept", "TAX", "--json")
    drop = ("generated_at", "subject")
    assert {k: v for k, v in by_ref.json().items() if k not in drop} == {
        k: v for k, v in by_id.json().items() if k not in drop
    }


def test_a_subject_nobody_holds_has_an_empty_history(history: History) -> None:
    r = govshare(history.home, "audit", "subject", "91350200MA2Y0LQX3K", "--dept", "TAX")
    assert r.exit_code == 0, r.output
    assert "No record about this subject is anchored" in r.stdout


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ((), "one of them"),
        ((ACME, "--subject-ref", "0x" + "ab" * 32), "one of them"),
        (("--subject-ref", "0x1234"), "64 hex digits"),
        ((ACME,), "GOVSHARE_SUBJECT_KEY"),  # no department named, no key set
        ((ACME, "--dept", "NOSUCH"), "NOSUCH"),
    ],
)
def test_bad_subject_arguments_are_refused_in_a_sentence(
    history: History, args: tuple[str, ...], says: str
) -> None:
    r = govshare(history.home, "audit", "subject", *args)
    assert r.exit_code != 0 and says in r.stderr, r.output
    assert "Traceback" not in r.output


# -- the same view on the auditor's page, and as JSON from the broker ------------------------


def test_the_broker_serves_the_history_to_its_auditors_only(history: History) -> None:
    tax = history.brokers["TAX"]
    body = {"subject": ACME}
    assert tax.client.post("/v1/audit/subject", json=body).status_code == 401
    assert tax.client.post("/v1/audit/subject", json=body, headers=tax.auth()).status_code == 403
    r = tax.client.post("/v1/audit/subject", json=body, headers=tax.auth("auditor"))
    assert r.status_code == 200, r.text
    cli = govshare(history.home, "audit", "subject", ACME, "--dept", "TAX", "--json").json()
    # the same history as the command line's, but for when and where manifests were read
    drop = ("generated_at", "block", "manifest_source")
    assert _without(r.json(), drop) == _without(cli, drop)
    assert ACME not in r.text
    for bad, status in (({"subject": "bell\x07"}, 422), ({"subject": " - "}, 400),
                        ({"subject": ACME, "more": 1}, 422), ({}, 422)):  # fmt: skip
        got = tax.client.post("/v1/audit/subject", json=bad, headers=tax.auth("auditor"))
        assert got.status_code == status, (bad, got.text)


def test_the_page_shows_the_history_in_words(history: History) -> None:
    tax = history.brokers["TAX"]
    r = tax.client.post("/audit/subject", json={"subject": ACME}, headers=tax.auth("admin"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "History verified: 2 of 2 deliveries proven" in r.text
    assert "Access history of subject 9111…1X" in r.text and ACME not in r.text
    assert history.market_record in r.text and history.other_record not in r.text
    readable(r.text)
    page = tax.client.get("/audit")
    assert 'id="by-subject"' in page.text and "never in a URL" in page.text


def _without(value: Any, keys: tuple[str, ...]) -> Any:
    """``value`` with ``keys`` left out of every object in it."""
    if isinstance(value, dict):
        return {k: _without(v, keys) for k, v in value.items() if k not in keys}
    if isinstance(value, list):
        return [_without(v, keys) for v in value]
    return value


def test_the_history_as_a_standalone_page(history: History, tmp_path: Path) -> None:
    out = tmp_path / "acme.html"
    r = govshare(history.home, "audit", "subject", ACME, "--dept", "TAX", "--format", "html",
                 "-o", str(out))  # fmt: skip
    assert r.exit_code == 0, r.output
    page = out.read_text()
    assert page.startswith("<!doctype html>") and "<script" not in page
    assert "History verified: 2 of 2 deliveries proven" in page and ACME not in page
    assert "http://" not in page and "https://" not in page  # no external asset
    readable(page)
    again = govshare(history.home, "audit", "subject", ACME, "--dept", "TAX", "--format",
                     "html", "-o", str(out))  # fmt: skip
    assert again.exit_code != 0 and "--force" in again.stderr  # the rule of every -o
