"""``govshare audit …`` as an auditor uses it: the real console script, against a
real chain with a history (see conftest.py), from a home that holds only the
deployment file — no department profile, no key."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from prov.model import ProvDocument

from audit.conftest import Story, govshare, schema

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def auditor(story: Story, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An auditor's home: the deployment file and nothing else."""
    home = tmp_path_factory.mktemp("auditor")
    shutil.copy(story.home / "deployment.json", home / "deployment.json")
    return home


@pytest.fixture(scope="module")
def manifests(story: Story) -> list[str]:
    return ["--manifests", f"local:{story.home / 'depts' / 'TAX' / 'blobs'}"]


def test_verify_an_anchored_file_names_its_record_and_version(story: Story, auditor: Path) -> None:
    r = govshare(auditor, "audit", "verify", str(story.files[0]), "--json")
    assert r.exit_code == 0, r.output
    out = r.json()
    jsonschema.validate(out, schema("audit-verify"))
    (rec,) = out["records"]
    assert rec["record_id"] == story.versions[0]
    assert rec["department"] == "TAX" and rec["version"] == 1 and rec["versions"] == 3
    assert rec["superseded"] is True and rec["superseded_by"] == story.versions[1]
    assert rec["latest_record_id"] == story.versions[2]
    assert rec["anchored_by"].lower() == story.world["TAX"].broker.address.lower()
    assert rec["tx_hash"].startswith("0x")
    human = govshare(auditor, "audit", "verify", str(story.files[2]))
    assert human.exit_code == 0, human.output
    assert "version 3 of 3, current" in human.stdout


def test_verify_a_file_one_byte_different_fails_with_a_sentence(
    story: Story, auditor: Path, tmp_path: Path
) -> None:
    altered = tmp_path / "altered.txt"
    data = bytearray(story.files[1].read_bytes())
    data[-1] ^= 1
    altered.write_bytes(bytes(data))
    r = govshare(auditor, "audit", "verify", str(altered))
    assert r.exit_code == 1, r.output
    assert "Traceback" not in r.output
    assert "is not anchored" in r.stderr
    j = govshare(auditor, "audit", "verify", str(altered), "--json")
    assert j.exit_code == 1 and j.json()["anchored"] is False


def trail(auditor: Path, manifests: list[str], record: str, *args: str) -> Any:
    r = govshare(auditor, "audit", "trail", record, *manifests, *args)
    assert r.exit_code == 0, r.output
    return r


def test_trail_covers_the_version_chain_requests_and_verified_receipts(
    story: Story, auditor: Path, manifests: list[str]
) -> None:
    out = trail(auditor, manifests, story.versions[1], "--format", "json").json()
    jsonschema.validate(out, schema("audit-trail"))
    assert out["ok"] is True and out["problems"] == []
    assert [v["record_id"] for v in out["versions"]] == story.versions
    assert [v["this"] for v in out["versions"]] == [False, True, False]
    by_id = {r["id"]: r for r in out["requests"]}
    m, c = by_id[story.grants["MARKET"]], by_id[story.grants["COURT"]]
    assert m["status"] == "revoked" and m["revocation"]["reason"] == "licence withdrawn"
    assert m["decision"]["by"].lower() == story.world["TAX"].admin.address.lower()
    assert len(m["receipts"]) == 3 and len(c["receipts"]) == 2
    assert all(x["inclusion"]["verified"] and x["ok"] for x in m["receipts"] + c["receipts"])
    assert by_id[story.denied]["decision"]["kind"] == "denied"
    od = by_id[story.overdue]
    assert od["status"] == "pending" and od["overdue"] is True
    assert len(od["reminders"]) == 1 and len(od["escalations"]) == 1
    assert out["receipts"] == {"anchored": 5, "verified": 5}
    kinds = [e["kind"] for e in out["timeline"]]
    for kind in ("published", "requested", "approved", "denied", "accessed", "revoked"):
        assert kind in kinds
    assert kinds.index("published") < kinds.index("approved") < kinds.index("accessed")


def test_trail_as_prov_is_read_by_the_prov_library(
    story: Story, auditor: Path, manifests: list[str], tmp_path: Path
) -> None:
    path = tmp_path / "trail.prov.json"
    trail(auditor, manifests, story.versions[0], "--format", "prov", "-o", str(path))
    doc = ProvDocument.deserialize(content=path.read_text(), format="json")
    provn = doc.get_provn()
    for relation in (
        "wasGeneratedBy",
        "wasDerivedFrom",
        "used",
        "wasAssociatedWith",
        "actedOnBehalfOf",
        "wasInvalidatedBy",
    ):
        assert relation + "(" in provn, relation
    records = [r for r in doc.get_records() if str(r.identifier).startswith("rec:")]
    assert len(records) == 3
    raw = json.loads(path.read_text())
    assert len([k for k in raw["activity"] if k.startswith("act:access-")]) == 5


def test_trail_in_text_and_unknown_record(
    story: Story, auditor: Path, manifests: list[str]
) -> None:
    text = trail(auditor, manifests, story.versions[0]).stdout
    assert "Receipts: 5 anchored, 5 verified" in text and "No problems found." in text
    r = govshare(auditor, "audit", "trail", "0x" + "ab" * 32, *manifests)
    assert r.exit_code == 1 and "No record" in r.stderr and "Traceback" not in r.output
    bad = govshare(auditor, "audit", "trail", "not-a-record", *manifests)
    assert bad.exit_code == 1 and "not a record id" in bad.stderr


def test_receipts_all_verified(story: Story, auditor: Path, manifests: list[str]) -> None:
    r = govshare(auditor, "audit", "receipts", *manifests, "--json")
    assert r.exit_code == 0, r.output
    out = r.json()
    jsonschema.validate(out, schema("audit-receipts"))
    tax = next(d for d in out["departments"] if d["department"] == "TAX")
    assert tax == {
        "department": "TAX",
        "batches": 2,
        "receipts": 5,
        "last_seq": 5,
        "grants": {str(story.grants["MARKET"]): 3, str(story.grants["COURT"]): 2},
        # the requesters acknowledged every delivery (leaf version 2)
        "delivery": {"acknowledged": 5, "unacknowledged": 0, "not recorded": 0},
    }
    human = govshare(auditor, "audit", "receipts", "--dept", "TAX", *manifests)
    assert human.exit_code == 0 and "All 5 receipt(s) verified." in human.stdout
    assert "delivery: 5 acknowledged by the requester" in human.stdout


def test_receipts_without_a_source_fail_and_a_damaged_store_is_not_believed(
    story: Story, auditor: Path, tmp_path: Path
) -> None:
    r = govshare(auditor, "audit", "receipts", "--dept", "TAX")  # the auditor home has no store
    assert r.exit_code == 1 and "No manifest source holds" in r.stderr
    copy = tmp_path / "blobs"
    shutil.copytree(story.home / "depts" / "TAX" / "blobs", copy)
    batch = story.tax.ledger.access.get_receipt_batch("TAX", 2)
    from govshare.storage import LocalBlobStore, parse_cid

    store = LocalBlobStore(copy)
    block = store._path(parse_cid(batch.manifest_cid))
    block.chmod(0o600)
    block.write_bytes(block.read_bytes().replace(b'"seq":5', b'"seq":6'))
    bad = govshare(auditor, "audit", "receipts", "--dept", "TAX", "--manifests", f"local:{copy}")
    assert bad.exit_code == 1, bad.output
    assert "batch 2" in bad.stdout and "NOT FOUND" in bad.stdout


def test_receipts_held_by_the_requester_must_be_anchored(
    story: Story, auditor: Path, manifests: list[str], tmp_path: Path
) -> None:
    from govshare.broker.queries import list_receipts

    # (the requester's copies are the same receipts: here, taken from TAX's table)
    mine = list_receipts(story.tax.db, owner="TAX", grant_id=story.grants["MARKET"])
    held = [v.to_dict() for v in mine]
    assert len(held) == 3
    path = tmp_path / "held.json"
    path.write_text(json.dumps(held))
    ok = govshare(auditor, "audit", "receipts", "--dept", "TAX", "--held", str(path), *manifests)
    assert ok.exit_code == 0, ok.output
    held[1]["seq"] = 99  # a receipt the owner never anchored
    path.write_text(json.dumps(held))
    r = govshare(auditor, "audit", "receipts", "--held", str(path), *manifests, "--json")
    assert r.exit_code == 1
    assert [p["code"] for p in r.json()["problems"]] == ["receipt.omitted"]


def test_overdue_lists_the_open_request_with_its_history(story: Story, auditor: Path) -> None:
    r = govshare(auditor, "audit", "overdue", "--json")
    assert r.exit_code == 0, r.output
    out = r.json()
    jsonschema.validate(out, schema("audit-overdue"))
    (req,) = out["requests"]
    assert req["id"] == story.overdue and req["requester"] == "COURT" and req["owner"] == "TAX"
    assert [h["kind"] for h in req["history"]] == ["reminded", "escalated"]
    assert req["history"][1]["supervisors"] == [story.supervisor]
    assert (
        govshare(auditor, "audit", "overdue", "--dept", "MARKET", "--json").json()["requests"] == []
    )
    human = govshare(auditor, "audit", "overdue", "--dept", "COURT")
    assert f"#{story.overdue} COURT → TAX" in human.stdout


def test_report_in_json_html_and_prov(
    story: Story, auditor: Path, manifests: list[str], tmp_path: Path
) -> None:
    args = ["audit", "report", "--since", "2000-01-01", "--until", "now", *manifests]
    r = govshare(auditor, *args, "--format", "json")
    assert r.exit_code == 0, r.output
    out = r.json()
    jsonschema.validate(out, schema("audit-report"))
    s = out["summary"]
    assert s["records_published"] == 3 and s["requests"] == 4
    assert (s["approved"], s["denied"], s["revoked"], s["accesses"]) == (2, 1, 1, 5)
    assert any(a["kind"] == "overdue" for a in out["anomalies"])
    html = tmp_path / "r.html"
    assert govshare(auditor, *args, "--format", "html", "-o", str(html)).exit_code == 0
    page = html.read_text()
    assert "<table>" in page and "Accesses per grant" in page and "<script" not in page
    prov = tmp_path / "r.prov.json"
    assert govshare(auditor, *args, "--format", "prov", "-o", str(prov)).exit_code == 0
    ProvDocument.deserialize(content=prov.read_text(), format="json")
    market = govshare(auditor, *args, "--dept", "MARKET").json()
    assert market["summary"]["accesses"] == 3 and market["summary"]["records_published"] == 0
