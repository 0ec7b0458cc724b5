"""Benchmark the auditor's two heavy paths, each beside a baseline in the same run.

(a) ``audit trail`` for one record among 100,000 anchored records (indexed).
    The record has 3 versions, 3 requests (2 grants, 1 denial) and 20 access
    receipts in 2 anchored batches, all real on this run's anvil. The auditor's
    event index holds those events plus 100,000 ``RecordAnchored`` events of
    other records, written straight into the mirror (same schema, same keys) —
    anchoring 100,000 records on anvil 1.7.1 takes too long, since it rebuilds
    its whole state trie for every block; ``--onchain N`` anchors N extra
    records for real instead (120 per block), at that cost. Timed: the library
    call ``build_trail`` (what ``govshare audit trail --json`` runs, without
    process start-up), from a fresh ``AuditView`` each time: index catch-up,
    the chain reads, the manifests fetched from the store, CID and root checks,
    every receipt's inclusion proof and signatures. Baselines: (1) the raw
    indexed SQLite lookup of the record's events in the same index; (2) the
    bare chain reads a trail cannot do without (getRecord and requestsForRecord
    per version, getRequest per request) as raw JSON-RPC ``eth_call``s on a
    keep-alive HTTP session.
(b) Verifying 100,000 receipts' inclusion proofs: 10 manifests of 10,000
    receipt lines (the broker's largest batch), real-size leaves (one receipt
    signed as brokers sign, its sequence number and nonce varied: inclusion
    does not look at signatures). Timed: parse each manifest, build its tree,
    and for every receipt compute its audit path and verify it against the
    root (``MerkleTree.inclusion_proof`` + ``verify_inclusion``). Baseline: raw
    SHA-256 of the same 100,000 leaves with the leaf prefix (the hashing any
    check of them must do).

Usage: .venv/bin/python scripts/bench/bench_audit.py [--records N] [--receipts N]
       [--runs N] [--onchain N]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))  # the test helpers make receipts as brokers do

from audit.bulk import Use, bulk_anchor, synth_receipts  # noqa: E402
from govshare.audit.merkle import MerkleTree, leaf_hash, verify_inclusion  # noqa: E402
from govshare.audit.receipts import (  # noqa: E402
    ReceiptLeaf,
    build_manifest,
    parse_manifest,
    uses_per_grant,
)
from govshare.audit.sources import ManifestSources, StoreSource  # noqa: E402
from govshare.audit.trail import build_trail  # noqa: E402
from govshare.audit.view import AuditView, open_index  # noqa: E402
from govshare.chain.contracts import AnchorInput, encode_category, encode_code  # noqa: E402
from govshare.chain.devnode import AnvilProcess  # noqa: E402
from govshare.chain.mirror import Mirror  # noqa: E402
from govshare.storage import open_store  # noqa: E402
from integration.world import CATEGORY, build_world  # noqa: E402

CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


def ms(values: list[float]) -> str:
    v = sorted(values)
    p95 = v[min(len(v) - 1, int(len(v) * 0.95))]
    return f"median {statistics.median(v) * 1000:.2f} ms, p95 {p95 * 1000:.2f} ms"


def story(world: Any, home: Path) -> tuple[str, list[str]]:
    """The benchmarked record: 3 versions, 3 requests, 20 receipts in 2 batches."""
    ledger = world.ledger
    tax = world["TAX"]
    versions: list[bytes] = []
    for _ in range(3):
        rid = os.urandom(32)
        prev = versions[-1] if versions else None
        ledger.records.anchor(tax.broker, rid, os.urandom(32), CID, CATEGORY, None, prev)
        versions.append(rid)
    uses = []
    for rec, who in [(versions[0], "MARKET"), (versions[1], "COURT")]:
        sent = ledger.access.request_access(
            world[who].broker, "TAX", rec, "case", "", ledger.now() + 86400
        )
        ledger.access.approve(tax.admin, sent.value, expires_at=ledger.now() + 86400, max_uses=100)
        uses.append(Use(sent.value, who, bytes(world[who].broker.key), "0x" + rec.hex(), CID))
    denied = ledger.access.request_access(
        world["MARKET"].broker, "TAX", versions[2], "x", "", ledger.now() + 86400
    )
    ledger.access.deny(tax.admin, denied.value, "no basis")
    view_sep = AuditView(ledger, open_index(ledger, home / "tmp.db"), ManifestSources([])).separator
    decided = ledger.now()
    receipts = synth_receipts(view_sep, "TAX", bytes(tax.broker.key), 1, uses, [decided] * 20)
    store = open_store(f"local:{home / 'depts' / 'TAX' / 'blobs'}")
    for part in (receipts[:10], receipts[10:]):
        body, root = build_manifest("TAX", ledger.chain_id, ledger.access.address, part)
        cid = store.put(io.BytesIO(body), cid_version=1)
        ledger.access.anchor_receipts(
            tax.broker, root, part[0].seq, part[-1].seq, str(cid), uses_per_grant(part)
        )
    return "0x" + versions[1].hex(), ["0x" + v.hex() for v in versions]


def pad_index(index: Mirror, n: int, first_block: int) -> None:
    """``n`` RecordAnchored events of other records, as the mirror stores them
    (at block ``first_block``, one log index each), with their keys."""
    dept = "0x" + encode_code("TAX").hex()
    cat = "0x" + encode_category(CATEGORY).hex()
    raw = index.engine.raw_connection()
    try:
        db = raw.cursor()
        db.execute("BEGIN IMMEDIATE")
        for i in range(n):
            rid = "0x" + os.urandom(32).hex()
            args = {
                "recordId": rid,
                "department": dept,
                "contentHash": "0x" + os.urandom(32).hex(),
                "cid": CID,
                "category": cat,
                "subjectRef": "0x" + "00" * 32,
                "previousRecordId": "0x" + "00" * 32,
                "anchoredBy": "0x" + "00" * 20,
            }
            db.execute(
                "INSERT INTO mirror_events (block_number, block_hash, tx_hash, log_index, "
                "contract, address, event, indexed_args, args) "
                "VALUES (?, ?, ?, ?, 'RecordRegistry', ?, 'RecordAnchored', ?, ?)",
                (
                    first_block,
                    "0x" + "00" * 32,
                    "0x" + os.urandom(32).hex(),
                    i,
                    "0x" + "00" * 20,
                    json.dumps({k: args[k] for k in ("recordId", "department", "contentHash")}),
                    json.dumps(args),
                ),
            )
            seq = db.lastrowid
            db.executemany(
                "INSERT INTO mirror_event_keys (event_seq, kind, value) VALUES (?, ?, ?)",
                [(seq, "record", rid), (seq, "department", "TAX")],
            )
        db.execute("COMMIT")
    finally:
        raw.close()


def bench_trail(records: int, runs: int, onchain: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, AnvilProcess() as node:
        home = Path(tmp)
        world = build_world(node.url, home)
        ledger = world.ledger
        if onchain:
            t = time.perf_counter()
            items = [
                AnchorInput(os.urandom(32), os.urandom(32), CID, CATEGORY) for _ in range(onchain)
            ]
            bulk_anchor(ledger, world["TAX"].broker, items)
            print(f"  anchored {onchain} records on chain in {time.perf_counter() - t:.0f} s")
        target, versions = story(world, home)
        store = open_store(f"local:{home / 'depts' / 'TAX' / 'blobs'}")
        index = open_index(ledger, home / "audit-index.db")
        index.run_once()
        synthetic = max(0, records - onchain)
        t = time.perf_counter()
        pad_index(index, synthetic, 0)  # (block 0: before the deployment)
        total = len(index.events("RecordAnchored"))
        print(
            f"(a) index: {total} RecordAnchored events ({synthetic} written into the index, "
            f"{total - synthetic} on chain); padding took {time.perf_counter() - t:.1f} s"
        )

        def fresh() -> AuditView:
            return AuditView(ledger, index, ManifestSources([StoreSource(store, "TAX")]))

        trail = build_trail(fresh(), target)  # warm-up (imports, first connections)
        assert trail["ok"] and trail["receipts"] == {"anchored": 20, "verified": 20}, trail[
            "problems"
        ]
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            view = fresh()
            view.sync()
            build_trail(view, target)
            times.append(time.perf_counter() - t)
        print(f"    audit trail (3 versions, 3 requests, 20 receipts verified): {ms(times)}")

        sql = (
            "SELECT e.block_number, e.tx_hash, e.event, e.args FROM mirror_event_keys k "
            "JOIN mirror_events e ON e.seq = k.event_seq WHERE k.kind = 'record' AND k.value = ? "
            "ORDER BY e.block_number, e.log_index"
        )
        lookups = []
        raw_db = sqlite3.connect(index.engine.url.database or "")
        for _ in range(runs * 10):
            t = time.perf_counter()
            rows = raw_db.execute(sql, (target,)).fetchall()
            lookups.append(time.perf_counter() - t)
        raw_db.close()
        assert rows
        print(f"    baseline 1, raw indexed SQLite lookup of the record's events: {ms(lookups)}")

        session = httpx.Client()  # keep-alive
        rr, ac = ledger.records, ledger.access
        calls: list[tuple[str, bytes]] = []
        for v in versions:
            calls.append((rr.address, rr._fn("getRecord").encode([bytes.fromhex(v[2:])])))
            calls.append((ac.address, ac._fn("requestsForRecord").encode([bytes.fromhex(v[2:])])))
        for i in (1, 2, 3):
            calls.append((ac.address, ac._fn("getRequest").encode([i])))
        for i in (1, 2):
            calls.append((ac.address, ac._fn("getReceiptBatch").encode([encode_code("TAX"), i])))
        raw = []
        for _ in range(runs):
            t = time.perf_counter()
            for to, data in calls:
                body = {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "eth_call",
                    "params": [{"to": to, "data": "0x" + data.hex()}, "latest"],
                }
                session.post(node.url, json=body, timeout=10).raise_for_status()
            raw.append(time.perf_counter() - t)
        print(
            f"    baseline 2, the trail's bare chain reads ({len(calls)} raw eth_calls): {ms(raw)}"
        )
        index.close()
        world.close()


def bench_proofs(n: int) -> None:
    from eth_account import Account

    sep = hashlib.sha256(b"bench").digest()
    owner, requester = Account.create(), Account.create()
    (template,) = synth_receipts(
        sep,
        "TAX",
        bytes(owner.key),
        1,
        [Use(7, "MARKET", bytes(requester.key), "0x" + "ab" * 32, CID)],
        [1_800_000_000],
    )
    batch = 10_000
    manifests = []
    for start in range(1, n + 1, batch):
        leaves = [
            ReceiptLeaf(**{**template.__dict__, "seq": s, "nonce": str(s * 7919)})
            for s in range(start, min(n, start + batch - 1) + 1)
        ]
        manifests.append(build_manifest("TAX", 31337, "0x" + "00" * 20, leaves))
    size = sum(len(b) for b, _ in manifests)
    print(
        f"(b) {n} receipts in {len(manifests)} manifests "
        f"({size / 1e6:.1f} MB, {size // n} bytes a line)"
    )

    t = time.perf_counter()
    checked = 0
    for body, root in manifests:
        m = parse_manifest(body, strict=True)
        tree = MerkleTree(leaf_hash(x) for x in m.leaves)
        for i in range(tree.size):
            verify_inclusion(i, tree.size, tree.leaf(i), tree.inclusion_proof(i), root)
            checked += 1
    full = time.perf_counter() - t
    assert checked == n

    all_leaves = [line for body, _ in manifests for line in body.split(b"\n")[1:-1]]
    t = time.perf_counter()
    for leaf in all_leaves:
        hashlib.sha256(b"\x00" + leaf).digest()
    base = time.perf_counter() - t
    print(
        f"    verify every inclusion proof (parse, tree, audit path, verify): {full:.2f} s "
        f"({full / n * 1e6:.1f} µs a receipt)"
    )
    print(f"    baseline, raw SHA-256 of the same {n} leaves: {base:.3f} s ({full / base:.0f}x)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--receipts", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument(
        "--onchain", type=int, default=0, help="anchor this many of the records for real"
    )
    args = ap.parse_args()
    bench_trail(args.records, args.runs, args.onchain)
    bench_proofs(args.receipts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
