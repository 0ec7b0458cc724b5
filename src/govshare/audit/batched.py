"""Batched records, proved for an auditor from the chain and the batch's manifest.

    ev = batched_evidence(view, leaf)       # the proof of one leaf, checked
    found = batched_by_hash(view, sha256)   # every batched record with that content

A record anchored in a batch is on chain only as its batch's Merkle root
(``RecordBatchAnchored``) until someone requests it (``materialise`` writes it
as an ordinary record, ``RecordMaterialised``). Its evidence is the leaf the
batch's manifest lists (read by the index from any source, the bytes checked
against the CID and the lines against the root when indexed), its audit path,
and the root **read from the chain now** (``getBatch``): the path must lead from
the leaf to that root in a tree of the chain's count, checked here and by the
contract's own ``verifyBatchedRecord``. The index is a cache: a leaf the index
holds that does not prove against the chain is reported, never believed.
"""

from __future__ import annotations

from typing import Any

from govshare.audit.errors import ProofError
from govshare.audit.merkle import verify_inclusion
from govshare.audit.view import AuditView, problem
from govshare.chain.batchindex import IndexedBatch, IndexedLeaf
from govshare.errors import ContractReverted
from govshare.util import iso, printable


def _materialised(view: AuditView, record_id: str) -> dict[str, Any] | None:
    events = view.index.events_for_record(record_id, "RecordMaterialised")
    if not events:
        return None
    e = events[0]
    at = view.block_time(e.block_number)
    return {
        "materialised_by": e.args.get("materialisedBy"),
        "materialised_at": at,
        "materialised_at_iso": iso(at),
        "block_number": e.block_number,
        "tx_hash": e.tx_hash,
        "sequence": e.args.get("sequence"),
        "leaf_index": e.args.get("leafIndex"),
    }


def batched_evidence(view: AuditView, leaf: IndexedLeaf) -> dict[str, Any]:
    """The proof of ``leaf`` against its batch's root on chain, checked: where it
    sits (batch, leaf, root, manifest), when the batch was anchored and by whom,
    whether and when the record was materialised, and ``ok`` / ``problems``."""
    b = leaf.batch
    rid = "0x" + leaf.record.record_id.hex()
    out: dict[str, Any] = {
        "department": b.department,
        "sequence": b.sequence,
        "leaf_index": leaf.leaf_index,
        "count": b.count,
        "merkle_root": b.merkle_root,
        "manifest_cid": printable(b.manifest_cid),
        "manifest_source": None if b.source is None else printable(b.source),
        "batch_tx_hash": b.tx_hash,
        "batch_block": b.block_number,
        "leaf_hash": "0x" + leaf.record.leaf_hash().hex(),
    }
    problems: list[dict[str, Any]] = []
    proof: list[bytes] = []
    try:
        on_chain = view.ledger.records.get_batch(b.department, b.sequence)
    except ContractReverted:
        on_chain = None
    if on_chain is None or on_chain.count == 0:
        problems.append(
            problem(
                "batch.unknown",
                f"{b.department} has no batch {b.sequence} on this chain.",
                department=b.department,
                sequence=b.sequence,
            )
        )
    else:
        out["anchored_by"] = on_chain.anchored_by
        out["anchored_at"] = on_chain.anchored_at
        out["anchored_at_iso"] = iso(on_chain.anchored_at)
        try:
            p = view.batches.proof_of(leaf) if view.batches else None
            proof = list(p.proof) if p else []
            verify_inclusion(
                leaf.leaf_index,
                on_chain.count,
                leaf.record.leaf_hash(),
                proof,
                on_chain.merkle_root,
            )
            included = p is not None and view.ledger.records.verify_batched_record(p)
        except ProofError:
            included = False
        if not included:
            problems.append(
                problem(
                    "batch.leaf_not_included",
                    f"Record {rid} does not prove against the root of {b.department}'s "
                    f"batch {b.sequence} on chain.",
                    department=b.department,
                    sequence=b.sequence,
                    leaf_index=leaf.leaf_index,
                )
            )
    out["proof"] = ["0x" + h.hex() for h in proof]
    out["verified"] = not problems
    out["materialised"] = _materialised(view, rid)
    out["problems"] = problems
    return out


def batched_record_dict(view: AuditView, leaf: IndexedLeaf) -> dict[str, Any]:
    """A batched record as ``audit verify`` shows a record (fields of the leaf,
    its batch's anchoring as its own), with ``batch`` the checked evidence."""
    r = leaf.record
    ev = batched_evidence(view, leaf)
    return {
        "record_id": "0x" + r.record_id.hex(),
        "department": r.department,
        "content_hash": "0x" + r.content_hash.hex(),
        "cid": r.cid,
        "category": r.category,
        "subject_ref": None if r.subject_ref is None else "0x" + r.subject_ref.hex(),
        "previous_record_id": (
            None if r.previous_record_id is None else "0x" + r.previous_record_id.hex()
        ),
        "anchored_by": ev.get("anchored_by"),
        "anchored_at": ev.get("anchored_at"),
        "anchored_at_iso": ev.get("anchored_at_iso"),
        "block_number": leaf.batch.block_number,
        "tx_hash": leaf.batch.tx_hash,
        "superseded_by": None,  # set by whoever knows the version chain
        "on_chain": False,
        "batch": ev,
    }


def batched_by_hash(view: AuditView, content_hash: bytes) -> list[IndexedLeaf]:
    """Every record of an indexed batch whose plaintext has SHA-256 ``content_hash``."""
    return [] if view.batches is None else view.batches.by_content_hash(content_hash)


def batch_problems(view: AuditView, department: str | None = None) -> list[dict[str, Any]]:
    """Anchored record batches whose manifest is missing or does not describe them."""
    if view.batches is None:
        return []
    return [_batch_problem(b) for b in view.batches.problems(department)]


def _batch_problem(b: IndexedBatch) -> dict[str, Any]:
    code = "batch.manifest_unavailable" if b.state == "unavailable" else "batch.manifest_invalid"
    return problem(
        code,
        f"{b.department}'s record batch {b.sequence} (manifest {printable(b.manifest_cid)}): "
        f"{printable(b.problem or b.state)}",
        department=b.department,
        sequence=b.sequence,
        attempts=b.attempts,
    )


def record_batches(view: AuditView, department: str | None = None) -> dict[str, Any]:
    """Every anchored record batch the index knows (``department``'s, or all), with
    the state of its manifest: ``indexed`` (read, checked against the root on
    chain), ``pending``, ``unavailable`` (no source had it; tried again later) or
    ``invalid`` (it does not describe the batch). ``ok`` when every one is indexed."""
    if view.batches is None:
        return {"batches": [], "counts": {}, "problems": [], "ok": True}
    rows = view.batches.batches(department)
    batches = [
        {
            **b.to_dict(),
            "manifest_cid": printable(b.manifest_cid),
            "problem": None if b.problem is None else printable(b.problem),
            "source": None if b.source is None else printable(b.source),
        }
        for b in rows
    ]
    problems = [_batch_problem(b) for b in rows if b.state in ("unavailable", "invalid")]
    counts: dict[str, int] = {}
    for b in rows:
        counts[b.state] = counts.get(b.state, 0) + 1
    return {"batches": batches, "counts": counts, "problems": problems, "ok": not problems}
