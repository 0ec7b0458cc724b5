"""``govshare audit`` over batched records, as an auditor runs it (the real console
script, a home holding only the deployment file): a file found by its content
hash in a batch, materialised or not, proved from chain + manifest; the trail
and PROV show the batch and the materialisation; manifests that do not describe
their batch (wrong root, a leaf moved, another department's) and a tampered
index are refused, never believed."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from prov.model import ProvDocument

from audit.conftest import govshare, schema
from govshare.broker.access import request_access
from govshare.broker.runtime import BrokerRuntime
from govshare.broker.services import BrokerServices
from govshare.chain.batch import BatchManifest, BatchRecord, build_batch
from govshare.chain.devnode import AnvilProcess
from govshare.storage import compute_cid
from integration.world import CATEGORY, World, build_world, open_runtime

pytestmark = pytest.mark.integration


@dataclass
class Scene:
    world: World
    tax: BrokerServices
    market: BrokerServices
    files: dict[str, Path]
    ids: dict[str, str]
    runtimes: list[BrokerRuntime]


def record(content: bytes, dept: str = "TAX", previous: bytes | None = None) -> BatchRecord:
    return BatchRecord(
        os.urandom(32),
        dept,
        hashlib.sha256(content).digest(),
        "bafy" + os.urandom(6).hex(),
        CATEGORY,
        os.urandom(32),
        previous,
    )


def anchor(
    svc: BrokerServices,
    m: BatchManifest,
    *,
    data: bytes | None = None,
    root: bytes | None = None,
    store: bool = True,
) -> int:
    body = m.data if data is None else data
    cid = str(svc.store.put(io.BytesIO(body), cid_version=1)) if store else ""
    cid = cid or str(compute_cid(body, cid_version=1))
    return svc.ledger.records.anchor_batch(svc.account, root or m.root, m.count, cid).value


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    with AnvilProcess() as node:
        home = tmp_path_factory.mktemp("home")
        w = build_world(node.url, home)
        runtimes = [open_runtime(w, c) for c in ("TAX", "MARKET")]
        for rt in runtimes:
            rt.start(threads=False)
        tax, market = (rt.svc for rt in runtimes)
        files: dict[str, Path] = {}
        contents: dict[str, bytes] = {}
        for name in ("f1", "f1v2", "f2", "f3", "wrong_root", "moved", "foreign", "missing"):
            contents[name] = f"certificate {name} ".encode() + os.urandom(8)
            files[name] = home / f"{name}.txt"
            files[name].write_bytes(contents[name])
        r1, r2, r3 = (record(contents[n]) for n in ("f1", "f2", "f3"))
        v2 = record(contents["f1v2"], previous=r1.record_id)
        anchor(tax, build_batch("TAX", [r1, r2, r3]))
        anchor(tax, build_batch("TAX", [record(b"filler"), v2]))
        # Tampered batches: a root that is not the manifest's, a leaf moved, TAX's
        # manifest anchored by MARKET, and a manifest stored nowhere.
        wr = build_batch("TAX", [record(contents["wrong_root"]), record(b"x")])
        anchor(tax, wr, root=os.urandom(32))
        a, b = record(contents["moved"]), record(b"y")
        anchor(tax, build_batch("TAX", [a, b]), data=build_batch("TAX", [b, a]).data)
        foreign = build_batch("TAX", [record(contents["foreign"])])
        anchor(market, foreign)
        anchor(tax, build_batch("TAX", [record(contents["missing"])]), store=False)
        # MARKET asks for r2: its broker materialises it from TAX's batch.
        out = request_access(market, "user:1", "TAX", r2.record_id, "licence", idempotency_key="r2")
        assert out.request_id is not None, out
        ids = {
            "r1": "0x" + r1.record_id.hex(),
            "r2": "0x" + r2.record_id.hex(),
            "r3": "0x" + r3.record_id.hex(),
            "v2": "0x" + v2.record_id.hex(),
        }
        yield Scene(w, tax, market, files, ids, runtimes)
        for rt in runtimes:
            rt.stop()
        w.close()


@pytest.fixture(scope="module")
def auditor(scene: Scene, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("auditor")
    shutil.copy(scene.world.home / "deployment.json", home / "deployment.json")
    return home


@pytest.fixture(scope="module")
def manifests(scene: Scene) -> list[str]:
    depts = scene.world.home / "depts"
    return [
        *("--manifests", f"local:{depts / 'TAX' / 'blobs'}"),
        *("--manifests", f"local:{depts / 'MARKET' / 'blobs'}"),
    ]


def audit(auditor: Path, manifests: list[str], *args: str) -> Any:
    return govshare(auditor, "audit", *args, *manifests)


def test_verify_a_batched_file_not_on_chain(
    scene: Scene, auditor: Path, manifests: list[str]
) -> None:
    r = audit(auditor, manifests, "verify", str(scene.files["f1"]), "--json")
    assert r.exit_code == 0, r.output
    out = r.json()
    jsonschema.validate(out, schema("audit-verify"))
    (rec,) = out["records"]
    assert rec["record_id"] == scene.ids["r1"] and rec["on_chain"] is False
    assert rec["version"] == 1 and rec["versions"] == 2
    assert rec["superseded_by"] == scene.ids["v2"] and rec["latest_record_id"] == scene.ids["v2"]
    b = rec["batch"]
    assert b["verified"] is True and b["problems"] == []
    assert (b["department"], b["sequence"], b["leaf_index"], b["count"]) == ("TAX", 1, 0, 3)
    assert b["materialised"] is None and len(b["proof"]) == 2
    assert b["anchored_by"].lower() == scene.tax.account.address.lower()
    assert rec["anchored_at"] == b["anchored_at"] > 0
    human = audit(auditor, manifests, "verify", str(scene.files["f1"]))
    assert human.exit_code == 0, human.output
    assert "in TAX's record batch 1, leaf 0 of 3" in human.stdout
    assert "inclusion proof against the root on chain: verified" in human.stdout
    assert "version 1 of 2, superseded" in human.stdout


def test_verify_a_materialised_batched_file(
    scene: Scene, auditor: Path, manifests: list[str]
) -> None:
    r = audit(auditor, manifests, "verify", str(scene.files["f2"]), "--json")
    assert r.exit_code == 0, r.output
    (rec,) = r.json()["records"]
    assert rec["record_id"] == scene.ids["r2"] and rec["on_chain"] is True
    mat = rec["batch"]["materialised"]
    assert mat["materialised_by"].lower() == scene.market.account.address.lower()
    assert mat["sequence"] == 1 and mat["leaf_index"] == 1 and mat["tx_hash"].startswith("0x")
    # Anchored when its batch was, by TAX's broker: the materialiser wrote, TAX committed.
    assert rec["anchored_by"].lower() == scene.tax.account.address.lower()
    assert rec["anchored_at"] == rec["batch"]["anchored_at"]


@pytest.mark.parametrize("name", ["wrong_root", "moved", "foreign", "missing"])
def test_files_of_batches_whose_manifest_does_not_hold_are_not_anchored(
    scene: Scene, auditor: Path, manifests: list[str], name: str
) -> None:
    r = audit(auditor, manifests, "verify", str(scene.files[name]))
    assert r.exit_code == 1, r.output
    assert "Traceback" not in r.output
    assert "is not anchored" in r.stderr and "could not be read or checked" in r.stderr
    j = audit(auditor, manifests, "verify", str(scene.files[name]), "--json")
    assert j.json()["anchored"] is False and j.json()["records"] == []


def test_audit_batches_lists_what_was_refused_and_why(
    scene: Scene, auditor: Path, manifests: list[str]
) -> None:
    r = audit(auditor, manifests, "batches", "--json")
    assert r.exit_code == 1, r.output
    out = r.json()
    assert out["counts"] == {"indexed": 2, "invalid": 3, "unavailable": 1}
    why = {(b["department"], b["sequence"]): b["problem"] for b in out["batches"]}
    assert "do not hash to the batch's anchored root" in why[("TAX", 3)]
    assert "do not hash to the batch's anchored root" in why[("TAX", 4)]  # a leaf moved
    assert "is TAX's, not MARKET's" in why[("MARKET", 1)]
    assert "No manifest source holds" in why[("TAX", 5)]
    text = audit(auditor, manifests, "batches", "--dept", "tax")
    assert text.exit_code == 1 and "TAX batch 1: 3 record(s)" in text.stdout
    assert "MARKET batch" not in text.stdout


def test_trail_of_a_batched_record_and_its_prov(
    scene: Scene, auditor: Path, manifests: list[str], tmp_path: Path
) -> None:
    r = audit(auditor, manifests, "trail", scene.ids["v2"], "--format", "json")
    assert r.exit_code == 0, r.output
    t = r.json()
    jsonschema.validate(t, schema("audit-trail"))
    assert [v["record_id"] for v in t["versions"]] == [scene.ids["r1"], scene.ids["v2"]]
    assert [v["this"] for v in t["versions"]] == [False, True]
    assert [v["current"] for v in t["versions"]] == [False, True]
    assert [v["batch"]["sequence"] for v in t["versions"]] == [1, 2]
    assert t["ok"] is True and t["requests"] == []
    published = [e for e in t["timeline"] if e["kind"] == "published"]
    assert "in batch 2 (leaf 1 of 2)" in published[1]["text"]
    # r2: materialised by MARKET, then requested.
    t2 = audit(auditor, manifests, "trail", scene.ids["r2"], "--format", "json").json()
    kinds = [e["kind"] for e in t2["timeline"]]
    assert kinds.index("published") < kinds.index("materialised") < kinds.index("requested")
    path = tmp_path / "r2.prov.json"
    p = audit(auditor, manifests, "trail", scene.ids["r2"], "--format", "prov", "-o", str(path))
    assert p.exit_code == 0, p.output
    doc = ProvDocument.deserialize(content=path.read_text(), format="json")
    assert "act:materialise-" in doc.get_provn()
    raw = json.loads(path.read_text())
    publish = raw["activity"][f"act:publish-{scene.ids['r2']}"]
    assert publish["gs:batchSequence"] == 1 and publish["gs:leafIndex"] == 1
    text = audit(auditor, manifests, "trail", scene.ids["r1"])
    assert text.exit_code == 0 and "in TAX's record batch 1, leaf 0 of 3" in text.stdout


def test_a_tampered_index_is_not_believed(
    scene: Scene, auditor: Path, manifests: list[str], tmp_path: Path
) -> None:
    """Someone edits the auditor's index so that another file seems to be r3: the
    proof against the chain's root fails, and verify says so."""
    home = tmp_path / "auditor"
    shutil.copytree(auditor, home)
    r = audit(home, manifests, "verify", str(scene.files["f3"]), "--json")
    assert r.exit_code == 0, r.output  # the index is built
    forged = tmp_path / "forged.txt"
    forged.write_bytes(b"not a certificate")
    digest = "0x" + hashlib.sha256(forged.read_bytes()).hexdigest()
    with sqlite3.connect(home / "audit" / "index.db") as db:
        n = db.execute(
            "UPDATE mirror_batch_records SET content_hash = ? WHERE record_id = ?",
            (digest, scene.ids["r3"]),
        ).rowcount
    assert n == 1
    bad = audit(home, manifests, "verify", str(forged), "--json")
    assert bad.exit_code == 1, bad.output
    (rec,) = bad.json()["records"]
    assert rec["batch"]["verified"] is False
    assert rec["batch"]["problems"][0]["code"] == "batch.leaf_not_included"
    assert bad.json()["ok"] is False
    assert "does not prove against the chain" in bad.stderr
