"""What an auditor reads: the chain (through the auditor's own event index) and
receipt manifests, checked batch by batch.

    view = AuditView.open(home / "deployment.json", index_path, sources)
    batch = view.batch("TAX", 3)           # BatchAudit: manifest found, root, receipts, problems
    view.sync()                            # catch the index up with the chain

The index (:class:`govshare.chain.mirror.Mirror`: a SQLite file the auditor
keeps, by default ``HOME/audit/index.db``, or a broker's own ledger mirror) is
only a cache of the chain's events:
delete it and it is rebuilt. Every fact that decides a verdict — records, grants,
batches, roots — is read from the contracts; the index supplies transaction hashes,
block numbers and the history of keys.

Nothing here needs a department's keys.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from govshare.audit.errors import ManifestError, ManifestUnavailable, RootMismatchError
from govshare.audit.merkle import MerkleTree, leaf_hash, verify_inclusion
from govshare.audit.receipts import (
    MANIFEST_FORMAT,
    Manifest,
    ReceiptLeaf,
    ack_digest,
    domain_separator,
    parse_manifest,
    receipt_digest,
    recover_signer,
    request_digest,
)
from govshare.audit.sources import ManifestSources
from govshare.chain.batchindex import BatchIndex
from govshare.chain.contracts import (
    AccessRequest,
    ReceiptBatch,
    Record,
    RequestStatus,
    covers,
)
from govshare.chain.deploy import Deployment, load_deployment
from govshare.chain.ledger import Ledger
from govshare.chain.mirror import IndexedEvent, Mirror, Projection
from govshare.chain.subjectindex import SubjectIndex
from govshare.errors import ContractReverted, DeploymentStale

#: Seconds a receipt may be issued after its request's expiry (clock skew between
#: the owner's wall clock and the requester's).
REQUEST_EXPIRY_SLACK = 60
#: Seconds of skew allowed between a receipt's time (the owner's wall clock) and
#: the chain's block times: the owner checks the grant on the latest block, so a
#: revocation mined a moment before the answer is a race, not a violation.
CLOCK_SLACK = 30


def open_index(ledger: Ledger, path: Path, sources: ManifestSources | None = None) -> Mirror:
    """The auditor's own ledger mirror of ``ledger``'s deployment, in a SQLite file
    at ``path``, with its record batch index reading manifests from ``sources``;
    a file built for another chain (a reset dev chain) or by an older govshare is
    deleted and rebuilt — it is only a cache of the chain's events."""

    def drop() -> None:
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                Path(str(path) + suffix).unlink()

    def index() -> list[Projection]:
        return [BatchIndex(sources, clock=ledger.clock), SubjectIndex()]

    if path.exists() and _legacy_index(path):
        drop()
    try:
        return Mirror.open_file(ledger.conn, ledger.deployment, path, projections=index())
    except DeploymentStale:
        drop()
        return Mirror.open_file(ledger.conn, ledger.deployment, path, projections=index())


def batch_index_of(mirror: Mirror) -> BatchIndex | None:
    """The record batch index that ``mirror`` runs (a broker's, an auditor's)."""
    return next((p for p in mirror.projections if isinstance(p, BatchIndex)), None)


def _legacy_index(path: Path) -> bool:
    """An index file of the indexer this mirror replaced (tables ``meta``, ``events``)."""
    try:
        with contextlib.closing(sqlite3.connect(path)) as db:
            names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError:
        return True
    return "events" in names and "mirror_events" not in names


def problem(code: str, message: str, **where: Any) -> dict[str, Any]:
    """One finding: a stable ``code``, a sentence, and where (department, batch, seq...)."""
    return {"code": code, "message": message, **{k: v for k, v in where.items() if v is not None}}


@dataclass
class ReceiptCheck:
    """One anchored receipt, checked."""

    receipt: ReceiptLeaf
    department: str
    batch_index: int
    leaf_index: int
    tree_size: int
    root: bytes
    proof: list[bytes]
    included: bool
    problems: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.included and not self.problems

    def to_dict(self) -> dict[str, Any]:
        r = self.receipt
        return {
            "owner": r.owner,
            "seq": r.seq,
            "grant_id": r.grant_id,
            "record_id": r.record_id,
            "requester": r.requester,
            "issued_at": r.issued_at,
            "ciphertext_cid": r.ciphertext_cid,
            "request_hash": r.request_hash,
            "delivery": r.delivery,
            "acked_at": r.acked_at,
            "batch_index": self.batch_index,
            "inclusion": {
                "verified": self.included,
                "leaf_index": self.leaf_index,
                "tree_size": self.tree_size,
                "root": "0x" + self.root.hex(),
                "leaf_hash": "0x" + leaf_hash(r.leaf()).hex(),
                "proof": ["0x" + h.hex() for h in self.proof],
            },
            "ok": self.ok,
            "problems": list(self.problems),
        }


@dataclass
class BatchAudit:
    """One anchored receipt batch: where its manifest came from, whether it
    hashes to the anchored root, and every receipt in it checked."""

    batch: ReceiptBatch
    tx_hash: str | None
    source: str | None = None
    manifest_found: bool = False
    computed_root: bytes | None = None
    receipts: list[ReceiptCheck] = field(default_factory=list)
    problems: list[dict[str, Any]] = field(default_factory=list)

    @property
    def root_ok(self) -> bool:
        return self.computed_root == self.batch.root

    @property
    def ok(self) -> bool:
        return not self.problems and all(c.ok for c in self.receipts)

    def all_problems(self) -> list[dict[str, Any]]:
        return [*self.problems, *(p for c in self.receipts for p in c.problems)]

    def to_dict(self, *, receipts: bool = False) -> dict[str, Any]:
        b = self.batch
        out: dict[str, Any] = {
            "department": b.department,
            "index": b.index,
            "first_seq": b.first_seq,
            "last_seq": b.last_seq,
            "root": "0x" + b.root.hex(),
            "manifest_cid": b.manifest_cid,
            "anchored_by": b.anchored_by,
            "anchored_at": b.anchored_at,
            "tx_hash": self.tx_hash,
            "manifest_source": self.source,
            "manifest_found": self.manifest_found,
            "root_ok": self.root_ok,
            "receipts_checked": len(self.receipts),
            "ok": self.ok,
            "problems": self.all_problems(),
        }
        if receipts:
            out["receipts"] = [c.to_dict() for c in self.receipts]
        return out


class AuditView:
    """The chain and the manifests, as an auditor reads them (cached per run)."""

    def __init__(
        self, ledger: Ledger, index: Mirror, sources: ManifestSources, *, owns_index: bool = False
    ) -> None:
        self.ledger = ledger
        self.index = index
        self._owns_index = owns_index
        self.sources = sources
        self.separator = domain_separator(ledger.chain_id, ledger.access.address)
        self._requests: dict[int, AccessRequest] = {}
        self._records: dict[str, Record | None] = {}
        self._batches: dict[tuple[str, int], BatchAudit] = {}
        self._block_times: dict[int, int] = {}
        self._brokers: dict[str, list[tuple[str, int, int | None]]] | None = None
        # a receipt's findings depend only on its bytes and on chain state read once
        # per view, so a receipt seen in several manifests is checked once
        self._checked: dict[tuple[str, bytes], list[dict[str, Any]]] = {}
        self._batch_events: dict[tuple[str, int], tuple[str | None, dict[int, int]]] | None = None
        self._now: int | None = None
        self._synced = False

    @classmethod
    def open(
        cls,
        deployment: Path | Deployment,
        index_path: Path,
        sources: ManifestSources,
        rpc: str | None = None,
        *,
        sync: bool = True,
    ) -> AuditView:
        """Connect, open (or build) the index, and catch it up with the chain."""
        dep = deployment if isinstance(deployment, Deployment) else load_deployment(deployment)
        ledger = Ledger.from_deployment(dep, rpc)
        view = cls(ledger, open_index(ledger, index_path, sources), sources, owns_index=True)
        if sync:
            view.sync()
        return view

    def close(self) -> None:
        """Close the index and the ledger if this view opened them (a broker's
        mirror and ledger stay open)."""
        if self._owns_index:
            self.index.close()
            self.ledger.close()

    @property
    def batches(self) -> BatchIndex | None:
        """The index of record batches (their manifests' records), if the mirror has one."""
        return batch_index_of(self.index)

    def sync(self) -> int:
        """Bring the index up to the chain's head, and read every record batch
        manifest that is due; returns the new events."""
        n = self.index.run_once()
        batches = self.batches
        # Each round reads up to per_tick due manifests; one that is not found waits
        # for its back-off, so the rounds end (and are bounded besides).
        for _ in range(10_000 if batches is not None else 0):
            assert batches is not None
            r = batches.index_pending()
            if r.indexed + r.unavailable + r.invalid == 0:
                break
        self._synced = True
        self._brokers = None
        self._batch_events = None
        self._now = None
        return n

    # -- chain reads, cached ---------------------------------------------------------

    def request(self, request_id: int) -> AccessRequest | None:
        if request_id not in self._requests:
            try:
                r = self.ledger.access.get_request(request_id)
            except ContractReverted:
                return None
            if r.status is RequestStatus.NONE:
                return None
            self._requests[request_id] = r
        return self._requests[request_id]

    def record(self, record_id: str) -> Record | None:
        key = record_id.lower()
        if key not in self._records:
            try:
                self._records[key] = self.ledger.records.get_record(key)
            except ContractReverted:
                self._records[key] = None
        return self._records[key]

    def grant_names(self, grant: AccessRequest, record_id: str) -> bool:
        """Whether ``grant`` allows delivering ``record_id``: the record it names, or
        for a grant by subject, a record of the owner's with its category and subject
        in a version it covers (:func:`govshare.chain.contracts.covers`)."""
        if not grant.by_subject:
            return "0x" + grant.record_id.hex() == record_id
        found = self._anchor_facts(record_id)
        if found is None:
            return False
        dept, category, ref, anchored_at = found
        if (dept, category, ref) != (grant.owner_department, grant.category, grant.subject_ref):
            return False
        return covers(
            latest_only=grant.latest_only,
            decided_at=grant.decided_at,
            anchored_at=anchored_at,
            superseded_at=self._superseded_at(record_id),
        )

    def _anchor_facts(self, record_id: str) -> tuple[str, str, bytes | None, int] | None:
        """Owner, category, subject reference and anchoring time of a record, on
        chain or in an indexed batch (None: neither)."""
        rec = self.record(record_id)
        if rec is not None:
            return rec.department, rec.category, rec.subject_ref, rec.anchored_at
        leaves = self.batches.leaves_of(record_id) if self.batches is not None else []
        if not leaves:
            return None
        leaf = leaves[0]
        at = self.ledger.records.get_batch(leaf.record.department, leaf.batch.sequence)
        return leaf.record.department, leaf.record.category, leaf.record.subject_ref, at.anchored_at

    def _superseded_at(self, record_id: str) -> int | None:
        """When the version after ``record_id`` was anchored (None: there is none)."""
        rec = self.record(record_id)
        successor = "0x" + rec.superseded_by.hex() if rec and rec.superseded_by else None
        if successor is None and self.batches is not None:
            nxt = self.batches.successors_of(record_id)
            successor = "0x" + nxt[0].record.record_id.hex() if nxt else None
        if successor is None:
            return None
        facts = self._anchor_facts(successor)
        return facts[3] if facts else None

    def now(self) -> int:
        """The ledger's now (the later of the wall clock and the latest block),
        read once per view."""
        if self._now is None:
            self._now = self.ledger.now()
        return self._now

    def block_time(self, number: int) -> int:
        return self.block_times([number])[number]

    def block_times(self, numbers: Iterable[int]) -> dict[int, int]:
        """Block timestamps, fetched in JSON-RPC batches and cached."""
        asked = {int(n) for n in numbers}
        want = sorted(asked - set(self._block_times))
        for i in range(0, len(want), 200):
            chunk = want[i : i + 200]
            answers = self.ledger.conn.batch(
                [("eth_getBlockByNumber", [hex(n), False]) for n in chunk]
            )
            for n, block in zip(chunk, answers, strict=True):
                ts = block.get("timestamp") if isinstance(block, dict) else None
                self._block_times[n] = int(ts, 16) if ts else 0
        return {n: self._block_times[n] for n in asked}

    def tx_of(self, events: list[IndexedEvent], name: str) -> IndexedEvent | None:
        return next((e for e in events if e.event == name), None)

    def broker_periods(self, code: str) -> list[tuple[str, int, int | None]]:
        """Each broker account ``code`` has had: (account, from, until) in chain
        time (Unix seconds); until is None for the current one."""
        if self._brokers is None:
            events = self.index.events(["DepartmentAdded", "BrokerRotated"])
            times = self.block_times(e.block_number for e in events)
            periods: dict[str, list[tuple[str, int, int | None]]] = {}
            for e in events:
                code_ = _code(e.args["code"])
                t = times[e.block_number]
                lst = periods.setdefault(code_, [])
                if e.event == "DepartmentAdded":
                    lst.append((str(e.args["broker"]).lower(), t, None))
                else:
                    if lst and lst[-1][2] is None:
                        acct, start, _ = lst[-1]
                        lst[-1] = (acct, start, t)
                    lst.append((str(e.args["newBroker"]).lower(), t, None))
            self._brokers = periods
        return self._brokers.get(code, [])

    def was_broker(self, code: str, account: str | None, at: int) -> bool:
        if account is None:
            return False
        for acct, start, until in self.broker_periods(code):
            # a key signs before its registration block is mined only by clock skew
            if acct == account.lower() and start - 300 <= at and (until is None or at <= until):
                return True
        return False

    # -- receipt batches ---------------------------------------------------------------

    def batch_count(self, department: str) -> int:
        return self.ledger.access.receipt_batch_count(department)

    def batch(self, department: str, index: int, *, fresh: bool = False) -> BatchAudit:
        """Batch ``index`` of ``department``, its manifest fetched and every receipt
        checked (once per view; ``fresh`` reads the chain and the manifest again)."""
        key = (department, index)
        if fresh or key not in self._batches:
            self._batches[key] = self._audit_batch(department, index)
        return self._batches[key]

    def _uses_recorded(self, department: str, index: int) -> tuple[str | None, dict[int, int]]:
        """The anchoring transaction of a batch and the uses it recorded per grant.
        (Read by event name, once per view: a department's key in the index also
        names every record it anchored, far more rows than its batches.)"""
        if self._batch_events is None:
            table: dict[tuple[str, int], tuple[str | None, dict[int, int]]] = {}
            for e in self.index.events(["ReceiptsAnchored", "GrantUsesRecorded"]):
                key = (_code(e.args["department"]), int(e.args["batchIndex"]))
                tx, uses = table.get(key, (None, {}))
                if e.event == "ReceiptsAnchored":
                    tx = e.tx_hash
                else:
                    uses[int(e.args["grantId"])] = int(e.args["uses"])
                table[key] = (tx, uses)
            self._batch_events = table
        return self._batch_events.get((department, index), (None, {}))

    def _audit_batch(self, department: str, index: int) -> BatchAudit:
        b = self.ledger.access.get_receipt_batch(department, index)
        tx, uses_onchain = self._uses_recorded(department, index)
        out = BatchAudit(b, tx)
        where = {"department": department, "batch": index}
        try:
            data, out.source = self.sources.fetch(b.manifest_cid)
        except ManifestUnavailable as exc:
            out.problems.append(problem("manifest.unavailable", exc.message, **where))
            return out
        out.manifest_found = True
        try:
            manifest = parse_manifest(data)
        except ManifestError as exc:
            out.problems.append(problem("manifest.malformed", exc.message, **where))
            return out
        tree = MerkleTree(leaf_hash(x) for x in manifest.leaves)
        out.computed_root = tree.root
        if tree.root != b.root:
            err = RootMismatchError(b.root, tree.root)
            out.problems.append(
                problem(
                    "manifest.root_mismatch",
                    f"Batch {index} of {department}: the manifest's receipts hash to "
                    f"0x{tree.root.hex()}, not to the anchored root 0x{b.root.hex()} — a "
                    "receipt was removed, altered, added or reordered.",
                    expected="0x" + err.expected.hex(),
                    calculated="0x" + err.calculated.hex(),
                    **where,
                )
            )
        h = manifest.header
        if (
            h.get("format") != MANIFEST_FORMAT
            or h.get("department") != department
            or (
                h.get("first_seq"),
                h.get("last_seq"),
            )
            != (b.first_seq, b.last_seq)
        ):
            out.problems.append(
                problem(
                    "manifest.header_mismatch",
                    f"Batch {index} of {department}: the manifest's header does not name this "
                    "department and range.",
                    **where,
                )
            )
        if len(manifest.receipts) != len(manifest.leaves):
            out.problems.append(
                problem(
                    "manifest.malformed_receipt",
                    f"Batch {index} of {department}: "
                    f"{len(manifest.leaves) - len(manifest.receipts)} line(s) are not receipts.",
                    **where,
                )
            )
        expected = list(range(b.first_seq, b.last_seq + 1))
        seqs = [r.seq for r in manifest.receipts]
        if seqs != expected:
            out.problems.append(
                problem(
                    "manifest.sequence",
                    f"Batch {index} of {department} anchors receipts {b.first_seq} to "
                    f"{b.last_seq}, but its manifest has them {_sequence_faults(expected, seqs)}.",
                    **where,
                )
            )
        in_manifest = Counter(r.grant_id for r in manifest.receipts)
        if dict(in_manifest) != uses_onchain:
            out.problems.append(
                problem(
                    "manifest.uses_mismatch",
                    f"Batch {index} of {department}: the uses recorded on chain per grant "
                    f"({_uses(uses_onchain)}) are not the manifest's ({_uses(in_manifest)}).",
                    **where,
                )
            )
        # each receipt: its inclusion proof against the anchored root, then its content
        for leaf_index, r in zip(manifest.positions, manifest.receipts, strict=True):
            out.receipts.append(
                self._receipt_check(department, index, b.root, tree, manifest, leaf_index, r)
            )
        return out

    def _receipt_check(
        self,
        department: str,
        index: int,
        root: bytes,
        tree: MerkleTree,
        manifest: Manifest,
        leaf_index: int,
        r: ReceiptLeaf,
    ) -> ReceiptCheck:
        proof = tree.inclusion_proof(leaf_index)
        try:
            verify_inclusion(leaf_index, tree.size, tree.leaf(leaf_index), proof, root)
            included = True
        except RootMismatchError:
            included = False
        check = ReceiptCheck(r, department, index, leaf_index, tree.size, root, proof, included)
        # (not included ⇔ the manifest's root is not the anchored one: one batch
        # problem above says so, not one per receipt)
        memo = (department, manifest.leaves[leaf_index])
        if memo not in self._checked:
            self._checked[memo] = self.check_receipt(r, department)
        check.problems += self._checked[memo]
        return check

    def check_receipt(self, r: ReceiptLeaf, department: str) -> list[dict[str, Any]]:  # noqa: C901 — a checklist, one branch per receipt property
        """The content of one receipt: both signatures, the grant at that time,
        the ciphertext served. Returns the problems (empty when all holds)."""
        where = {"department": department, "seq": r.seq, "grant": r.grant_id}
        out: list[dict[str, Any]] = []
        if r.owner != department:
            out.append(
                problem("receipt.owner", f"Receipt {r.seq} names {r.owner} as owner.", **where)
            )
        try:
            req_digest = request_digest(self.separator, r)
            rcpt_digest = receipt_digest(self.separator, r)
        except ValueError:
            return [*out, problem("receipt.malformed", f"Receipt {r.seq} is malformed.", **where)]
        if "0x" + req_digest.hex() != r.request_hash:
            out.append(
                problem(
                    "receipt.request_hash",
                    f"Receipt {r.seq}'s request hash is not the hash of the request it records.",
                    **where,
                )
            )
        requester_signer = recover_signer(req_digest, r.requester_signature)
        if not self.was_broker(r.requester, requester_signer, r.issued_at):
            out.append(
                problem(
                    "receipt.requester_signature",
                    f"Receipt {r.seq}'s request is not signed by {r.requester}'s registered "
                    "broker key.",
                    **where,
                )
            )
        owner_signer = recover_signer(rcpt_digest, r.owner_signature)
        if not self.was_broker(department, owner_signer, r.issued_at):
            out.append(
                problem(
                    "receipt.owner_signature",
                    f"Receipt {r.seq} is not signed by {department}'s registered broker key.",
                    **where,
                )
            )
        if r.ack_signature is not None:
            try:
                acker = recover_signer(ack_digest(self.separator, r), r.ack_signature)
            except ValueError:
                acker = None
            if (
                r.acked_at is None
                or r.acked_at < r.issued_at
                or not self.was_broker(r.requester, acker, r.acked_at)
            ):
                out.append(
                    problem(
                        "receipt.ack_signature",
                        f"Receipt {r.seq}'s acknowledgement is not signed by {r.requester}'s "
                        "registered broker key, or is dated before the receipt.",
                        **where,
                    )
                )
        grant = self.request(r.grant_id)
        if grant is None:
            return [
                *out,
                problem("receipt.grant_unknown", f"Receipt {r.seq} names no grant.", **where),
            ]
        if (
            grant.owner_department != department
            or grant.requester_department != r.requester
            or not self.grant_names(grant, r.record_id.lower())
        ):
            out.append(
                problem(
                    "receipt.grant_mismatch",
                    f"Receipt {r.seq}: grant {r.grant_id} is not {r.requester}'s grant for "
                    f"record {r.record_id} of {department}.",
                    **where,
                )
            )
        if grant.status not in (RequestStatus.APPROVED, RequestStatus.REVOKED) or (
            grant.decided_at and r.issued_at + CLOCK_SLACK < grant.decided_at
        ):
            out.append(
                problem(
                    "receipt.before_grant",
                    f"Receipt {r.seq} was issued when grant {r.grant_id} was not approved.",
                    **where,
                )
            )
        if grant.revoked_at and r.issued_at > grant.revoked_at + CLOCK_SLACK:
            out.append(
                problem(
                    "receipt.after_revocation",
                    f"Receipt {r.seq} was issued after grant {r.grant_id} was revoked "
                    f"({r.issued_at - grant.revoked_at} s later).",
                    **where,
                )
            )
        if grant.expires_at and r.issued_at >= grant.expires_at + CLOCK_SLACK:
            out.append(
                problem(
                    "receipt.after_expiry",
                    f"Receipt {r.seq} was issued after grant {r.grant_id} expired.",
                    **where,
                )
            )
        if r.request_expires_at is not None and r.issued_at > (
            r.request_expires_at + REQUEST_EXPIRY_SLACK
        ):
            out.append(
                problem(
                    "receipt.request_expired",
                    f"Receipt {r.seq} answers a request that had expired.",
                    **where,
                )
            )
        rec = self.record(r.record_id)
        if rec is not None and rec.cid != r.ciphertext_cid:
            out.append(
                problem(
                    "receipt.ciphertext",
                    f"Receipt {r.seq} served {r.ciphertext_cid}, not record {r.record_id}'s "
                    f"anchored ciphertext {rec.cid}.",
                    **where,
                )
            )
        return out


def _code(value: Any) -> str:
    return bytes.fromhex(str(value)[2:]).rstrip(b"\0").decode("ascii", "replace")


def _sequence_faults(expected: list[int], seqs: list[int]) -> str:
    """How the receipt numbers ``seqs`` differ from ``expected``, in words."""
    missing = sorted(set(expected) - set(seqs))
    extra = sorted(set(seqs) - set(expected))
    dup = sorted(s for s, n in Counter(seqs).items() if n > 1)
    parts = []
    if missing:
        parts.append(f"missing {_span(missing)}")
    if extra:
        parts.append(f"outside the range {_span(extra)}")
    if dup:
        parts.append(f"twice {_span(dup)}")
    return "; ".join(parts) or "out of order"


def _span(values: list[int]) -> str:
    if len(values) > 5:
        return f"{values[0]}…{values[-1]} ({len(values)} receipts)"
    return ", ".join(str(v) for v in values)


def _uses(uses: dict[int, int] | Counter[int]) -> str:
    return ", ".join(f"grant {g}: {n}" for g, n in sorted(uses.items())) or "none"
