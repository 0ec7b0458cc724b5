"""Round trips of every wrapper against deployed contracts, on anvil (this
module's own: a test moves the chain's clock) and on geth --dev (the chain
layer's conformance suite: nothing here may rely on anvil's behaviour)."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from eth_account import Account

from govshare.chain.abi import CONTRACT_NAMES, load_artifact
from govshare.chain.batch import BatchRecord, build_batch, index_manifests, parse_manifest
from govshare.chain.connection import Connection, connect
from govshare.chain.contracts import (
    AccountRole,
    AnchorInput,
    DepartmentInit,
    DepartmentStatus,
    GrantReason,
    ProposalKind,
    ProposalStatus,
    RequestStatus,
    SharingType,
)
from govshare.chain.devnode import AnvilProcess
from govshare.errors import ContractReverted, InputError, NotFound, Unauthorized

from .conftest import Consortium, anvil_only, hpke_key, node_url

#: The chain layer's conformance suite: every test on anvil and on geth --dev.
CHAINS = ("anvil", "geth")


@pytest.fixture(scope="module")
def conn(request: pytest.FixtureRequest, chain: str) -> Iterator[Connection]:
    """On anvil, one of this module's own (a test moves its clock); on geth, the
    session's node."""
    if chain != "anvil":
        yield connect(node_url(request, chain))
        return
    node = AnvilProcess().start()
    try:
        yield connect(node.url)
    finally:
        node.stop()


def rid() -> bytes:
    return os.urandom(32)


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def warp(conn: Connection, seconds: int) -> None:
    anvil_only(conn, "the test moves the chain's clock")
    conn.request("evm_increaseTime", [seconds])
    conn.request("evm_mine", [])


def test_every_contract_function_has_a_wrapper() -> None:
    source = (Path(__file__).parents[2] / "src/govshare/chain/contracts.py").read_text()
    used = set(re.findall(r'"([a-zA-Z0-9]+)"', source))
    for name in CONTRACT_NAMES:
        missing = {fn.name for fn in load_artifact(name).functions.values() if fn.name not in used}
        assert not missing, f"{name} functions without a wrapper: {missing}"


# -- ConsortiumRegistry -----------------------------------------------------------------


def test_registry_views(consortium: Consortium) -> None:
    reg = consortium.ledger.registry
    tax = consortium["TAX"]
    assert sorted(reg.active_departments()) == ["COURT", "MARKET", "TAX"]
    assert reg.all_departments() == ["TAX", "MARKET", "COURT"]
    assert reg.active_department_count() == 3
    dept = reg.get_department("tax")
    assert dept.code == "TAX" and dept.name == "Department TAX"
    assert dept.broker == tax.broker.address
    assert dept.admins == (tax.admin.address, tax.admin2.address)
    assert dept.encryption_key == hpke_key("TAX")
    assert dept.endpoint == "http://tax.example:8700"
    assert dept.status is DepartmentStatus.ACTIVE and dept.active
    assert dept.joined_at > 0 and dept.updated_at >= dept.joined_at
    assert dept.to_dict()["status"] == "active"
    assert [d.code for d in reg.departments()] == ["TAX", "MARKET", "COURT"]
    assert reg.department_status("TAX") is DepartmentStatus.ACTIVE
    assert reg.department_status("NOPE") is DepartmentStatus.NONE
    b = reg.department_of(tax.broker.address)
    assert (b.code, b.role) == ("TAX", AccountRole.BROKER)
    assert reg.department_of(tax.admin2.address).role is AccountRole.ADMIN
    assert reg.department_of(consortium.outsider.address).code is None
    assert reg.is_active_broker("TAX", tax.broker.address)
    assert not reg.is_active_broker("TAX", tax.admin.address)
    assert reg.is_active_admin("TAX", tax.admin.address)
    assert not reg.is_active_admin("MARKET", tax.admin.address)
    accounts = set(reg.active_accounts())
    assert {tax.broker.address, tax.admin.address, tax.admin2.address} <= accounts
    assert len(accounts) == 9
    assert reg.is_valid_department_code("TAX") and not reg.is_valid_department_code("tax")
    assert reg.supervisors() == [consortium.supervisor.address]
    assert reg.is_supervisor(consortium.supervisor.address)
    assert reg.threshold() == 2
    assert reg.proposal_lifetime() == 7 * 24 * 3600


def test_add_department_by_proposal(make_consortium) -> None:
    c: Consortium = make_consortium()
    reg = c.ledger.registry
    court_broker, court_admin = Account.create(), Account.create()
    new = DepartmentInit(
        "LAND", "Land registry", court_broker.address, (court_admin.address,), b"k" * 32, "http://l"
    )
    sent = reg.propose_add_department(c["TAX"].admin, new)
    pid = sent.value
    assert pid == 1 == reg.proposal_count()
    assert sent.tx.event("ProposalCreated").args["kind"] == ProposalKind.ADD_DEPARTMENT.index
    p = reg.get_proposal(pid)
    assert p.kind is ProposalKind.ADD_DEPARTMENT and p.status is ProposalStatus.PENDING
    assert p.proposer_department == "TAX" and p.proposer == c["TAX"].admin.address
    assert p.target_department == "LAND" and p.approval_count == 1
    assert reg.proposed_department(pid) == new
    assert reg.proposal_approvals(pid) == ["TAX"]
    assert reg.active_approval_count(pid) == 1
    assert reg.has_approved(pid, "TAX") and not reg.has_approved(pid, "MARKET")
    assert reg.department_status("LAND") is DepartmentStatus.NONE  # not before the threshold
    done = reg.approve(c["MARKET"].admin, pid)
    assert done.value is True
    assert reg.get_proposal(pid).status is ProposalStatus.EXECUTED
    assert reg.get_department("LAND").name == "Land registry"
    assert reg.active_department_count() == 4
    assert [p.id for p in reg.proposals()] == [1]


def test_suspend_reactivate_remove_threshold_supervisors(make_consortium) -> None:
    c: Consortium = make_consortium()
    reg = c.ledger.registry
    tax, market = c["TAX"].admin, c["MARKET"].admin

    def passes(sent) -> None:
        assert reg.approve(market, sent.value).value is True

    passes(reg.propose_suspend_department(tax, "COURT"))
    assert reg.department_status("COURT") is DepartmentStatus.SUSPENDED
    passes(reg.propose_reactivate_department(tax, "COURT"))
    assert reg.department_status("COURT") is DepartmentStatus.ACTIVE
    passes(reg.propose_threshold(tax, 3))
    assert reg.threshold() == 3
    sup = Account.create().address
    p = reg.propose_add_supervisor(tax, sup)
    reg.approve(market, p.value)
    assert not reg.is_supervisor(sup)  # 2 of 3 now
    assert reg.approve(c["COURT"].admin, p.value).value is True
    assert reg.is_supervisor(sup)
    p = reg.propose_remove_supervisor(tax, sup)
    reg.approve(market, p.value)
    reg.approve(c["COURT"].admin, p.value)
    assert not reg.is_supervisor(sup)
    # A proposal that reached the threshold after a lowering is executed by anyone.
    p = reg.propose_remove_department(tax, "COURT")
    reg.approve(market, p.value)
    assert reg.get_proposal(p.value).status is ProposalStatus.PENDING
    q = reg.propose_threshold(tax, 2)
    reg.approve(market, q.value)
    reg.approve(c["COURT"].admin, q.value)
    assert reg.threshold() == 2
    reg.execute(c.outsider, p.value)
    assert reg.department_status("COURT") is DepartmentStatus.REMOVED


def test_self_management(make_consortium) -> None:
    c: Consortium = make_consortium()
    reg = c.ledger.registry
    tax = c["TAX"]
    new_broker, new_admin = Account.create().address, Account.create().address
    tx = reg.set_broker(tax.admin, new_broker)
    assert tx.event("BrokerRotated").args["newBroker"] == new_broker
    reg.set_encryption_key(tax.admin, b"\x42" * 32)
    reg.set_endpoint(tax.admin, "https://tax.gov.example")
    reg.add_admin(tax.admin, new_admin)
    reg.remove_admin(tax.admin, tax.admin2.address)
    d = reg.get_department("TAX")
    assert d.broker == new_broker and d.encryption_key == b"\x42" * 32
    assert d.endpoint == "https://tax.gov.example"
    assert d.admins == (tax.admin.address, new_admin)
    with pytest.raises(Unauthorized) as err:
        reg.set_endpoint(tax.broker, "http://x")  # the old broker, and never an admin
    assert err.value.reason == "ConsortiumRegistryNotActiveAdmin"


# -- RecordRegistry ---------------------------------------------------------------------


def test_records_round_trip(consortium: Consortium) -> None:
    recs = consortium.ledger.records
    tax = consortium["TAX"]
    assert recs.registry_address() == consortium.deployment.address("ConsortiumRegistry")
    decl = recs.declare_category(tax.admin, "tax-clearance", "Tax clearance", sha(b"schema"))
    assert decl.event("CategoryDeclared").args["description"] == "Tax clearance"
    cat = recs.get_category("TAX", "tax-clearance")
    assert (cat.category, cat.description, cat.schema_hash, cat.active) == (
        "tax-clearance",
        "Tax clearance",
        sha(b"schema"),
        True,
    )
    before = recs.record_count()
    r1, subject = rid(), sha(b"subject")
    tx = recs.anchor(tax.broker, r1, sha(b"v1"), "bafy-v1", "tax-clearance", subject)
    ev = tx.event("RecordAnchored")
    assert ev.args["recordId"] == r1 and ev.args["anchoredBy"] == tax.broker.address
    assert recs.record_exists(r1) and recs.owner_of(r1) == "TAX"
    rec = recs.get_record(r1)
    assert rec.record_id == r1 and rec.department == "TAX" and rec.content_hash == sha(b"v1")
    assert rec.cid == "bafy-v1" and rec.category == "tax-clearance" and rec.subject_ref == subject
    assert rec.previous_record_id is None and rec.superseded_by is None
    # The contract keeps no block number: the anchoring event has it, found by the id.
    anchored = recs.anchored_event(r1)
    assert anchored is not None and anchored.args["recordId"] == r1
    assert (anchored.tx_hash, anchored.block_number) == (tx.tx_hash, tx.block_number)
    assert recs.anchored_event(rid()) is None
    r2 = rid()
    tx2 = recs.anchor(
        tax.broker, "0x" + r2.hex(), sha(b"v2"), "bafy-v2", "tax-clearance", previous_record_id=r1
    )
    assert tx2.event("RecordSuperseded").args["previousRecordId"] == r1
    assert [r.record_id for r in recs.versions(r2)] == [r1, r2]
    assert [r.record_id for r in recs.versions(r1)] == [r1, r2]
    assert recs.records_by_hash(sha(b"v1")) == [r1]
    assert recs.record_count() == before + 2
    assert recs.is_valid_category("a.b_c-d") and not recs.is_valid_category("no spaces")
    assert recs.get_record(r1, block=tx.block_number).superseded_by is None  # history
    recs.retire_category(tax.admin, "tax-clearance")
    assert [c.active for c in recs.categories("TAX")] == [False]
    with pytest.raises(ContractReverted) as err:
        recs.anchor(tax.broker, rid(), sha(b"x"), "bafy", "tax-clearance")
    assert err.value.reason == "RecordRegistryCategoryRetired"
    assert err.value.revert_args == {"department": "TAX", "category": "tax-clearance"}


def test_record_batches_and_bulk_anchor(consortium: Consortium) -> None:
    recs = consortium.ledger.records
    market = consortium["MARKET"]
    recs.declare_category(market.admin, "licence", "Business licences")
    sent = recs.anchor_batch(market.broker, sha(b"root1"), 10, "bafy-manifest-1")
    assert sent.value == 1 == recs.batch_count("MARKET")
    b = recs.get_batch("MARKET", 1)
    assert (b.merkle_root, b.count, b.manifest_cid, b.anchored_by) == (
        sha(b"root1"),
        10,
        "bafy-manifest-1",
        market.broker.address,
    )
    items = [AnchorInput(rid(), sha(bytes([i])), f"bafy{i}", "licence") for i in range(20)]
    results = recs.anchor_many(market.broker, items)
    assert [r.event("RecordAnchored").args["recordId"] for r in results] == [
        i.record_id for i in items
    ]
    pending = recs.submit_anchor(market.broker, AnchorInput(rid(), sha(b"p"), "bafy-p", "licence"))
    assert pending.wait().tx_hash == pending.tx_hash
    # One bad item: nothing of the batch is sent.
    count = recs.record_count()
    bad = [*items[:1], AnchorInput(rid(), sha(b"q"), "bafy-q", "licence")]
    with pytest.raises(ContractReverted) as err:
        recs.anchor_many(market.broker, bad)
    assert err.value.reason == "RecordRegistryRecordExists"
    assert recs.record_count() == count


def test_sharing_types_and_requests_by_subject(consortium: Consortium) -> None:
    L = consortium.ledger
    recs, acc = L.records, L.access
    court, market = consortium["COURT"], consortium["MARKET"]
    recs.declare_category(court.admin, "judgement", "Judgements")
    share = recs.category_sharing("COURT", "judgement")
    assert (share.declared, share.active, share.sharing) == (True, True, SharingType.CONDITIONAL)
    assert recs.category_sharing("COURT", "nope").declared is False
    assert recs.max_default_ttl() == 3653 * 24 * 3600
    tx = recs.set_sharing(
        court.admin, "judgement", SharingType.UNCONDITIONAL, default_ttl=3600, default_max_uses=2
    )
    assert tx.event("CategorySharingChanged").args["sharing"] == SharingType.UNCONDITIONAL.index
    cat = recs.get_category("COURT", "judgement")
    assert (cat.sharing, cat.default_ttl, cat.default_max_uses) == (
        SharingType.UNCONDITIONAL, 3600, 2,
    )  # fmt: skip
    assert cat.to_dict()["sharing"] == "unconditional"
    r = rid()
    subject = sha(b"company 9111")
    recs.anchor(court.broker, r, sha(b"j1"), "bafy-j1", "judgement", subject)
    on_chain = recs.record_sharing(r)
    assert on_chain is not None and (on_chain.department, on_chain.category) == (
        "COURT", "judgement",
    )  # fmt: skip
    assert recs.record_sharing(rid()) is None
    # Unconditional: granted by the ledger itself, in the same transaction.
    deadline = L.latest_timestamp() + 3600
    sent = acc.request_by_subject(
        market.broker, "COURT", "judgement", subject, "licence", "art. 5", deadline,
        latest_only=True,
    )  # fmt: skip
    assert sent.tx.event("AccessApproved").args["approvedBy"] == acc.address
    got = acc.get_request(sent.value)
    assert got.by_subject and got.record_id == b"\0" * 32
    assert (got.category, got.subject_ref, got.latest_only) == ("judgement", subject, True)
    assert got.status is RequestStatus.APPROVED and got.max_uses == 2
    assert acc.grant_status(sent.value).usable
    # None: refused with the ledger's own error and a sentence.
    recs.set_sharing(court.admin, "judgement", SharingType.NONE)
    with pytest.raises(ContractReverted) as err:
        acc.request_by_subject(
            market.broker, "COURT", "judgement", subject, "licence", "", deadline
        )
    assert err.value.reason == "AccessLedgerCategoryNotShared"
    assert "does not share its judgement records" in str(err.value)
    with pytest.raises(InputError):
        acc.request_by_subject(market.broker, "COURT", "judgement", b"\0" * 32, "p", "", deadline)


# -- AccessLedger -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def tax_record(consortium: Consortium) -> bytes:
    recs = consortium.ledger.records
    tax = consortium["TAX"]
    recs.declare_category(tax.admin, "certificate", "Certificates")
    r = rid()
    recs.anchor(tax.broker, r, sha(b"cert"), "bafy-cert", "certificate")
    return r


def test_request_approve_use_revoke(consortium: Consortium, tax_record: bytes) -> None:
    L = consortium.ledger
    acc, tax, market = L.access, consortium["TAX"], consortium["MARKET"]
    assert acc.registry_address() == consortium.deployment.address("ConsortiumRegistry")
    assert acc.records_address() == consortium.deployment.address("RecordRegistry")
    now = L.latest_timestamp()
    sent = acc.request_access(market.broker, "TAX", tax_record, "licence", "art. 5", now + 3600)
    gid = sent.value
    assert acc.request_count() >= gid
    ev = sent.tx.event("AccessRequested").args
    assert (ev["requestId"], ev["purpose"], ev["legalBasis"]) == (gid, "licence", "art. 5")
    r = acc.get_request(gid)
    assert r.status is RequestStatus.PENDING and r.requester_department == "MARKET"
    assert r.owner_department == "TAX" and r.record_id == tax_record
    assert r.requested_by == market.broker.address and r.decided_by is None
    assert acc.grant_status(gid).reason is GrantReason.PENDING
    assert gid in acc.requests_for_record(tax_record)
    assert not acc.is_overdue(gid)
    acc.approve(tax.admin2, gid, expires_at=now + 86400, max_uses=2, scope="read")
    r = acc.get_request(gid)
    assert r.status is RequestStatus.APPROVED and r.decided_by == tax.admin2.address
    assert (r.scope_label, r.expires_at, r.max_uses, r.used_count) == ("read", now + 86400, 2, 0)
    st = acc.grant_status(gid)
    assert st.usable and st.reason is GrantReason.OK and st.to_dict()["reason"] == "ok"
    # Receipts: TAX's broker anchors one batch recording one use of the grant.
    seq0 = acc.last_receipt_seq("TAX")
    batch = acc.anchor_receipts(
        tax.broker, sha(b"receipts"), seq0 + 1, seq0 + 1, "bafy-r", {gid: 1}
    )
    assert batch.value == acc.receipt_batch_count("TAX")
    rb = acc.get_receipt_batch("TAX", batch.value)
    assert (rb.root, rb.first_seq, rb.last_seq, rb.manifest_cid) == (
        sha(b"receipts"),
        seq0 + 1,
        seq0 + 1,
        "bafy-r",
    )
    assert acc.last_receipt_seq("TAX") == seq0 + 1
    assert acc.get_request(gid).used_count == 1
    acc.revoke(tax.admin, gid, "licence granted")
    r = acc.get_request(gid)
    assert r.status is RequestStatus.REVOKED and r.revoke_reason == "licence granted"
    assert r.revoked_by == tax.admin.address
    assert acc.grant_status(gid).reason is GrantReason.REVOKED
    assert any(x.id == gid for x in acc.requests())


def test_deny_remind_escalate(consortium: Consortium, tax_record: bytes, conn) -> None:
    L = consortium.ledger
    acc, tax, court = L.access, consortium["TAX"], consortium["COURT"]
    now = L.latest_timestamp()
    a = acc.request_access(court.broker, "TAX", tax_record, "case 12", "", now + 60).value
    b = acc.request_access(court.broker, "TAX", tax_record, "case 13", "", now + 60).value
    acc.deny(tax.admin, a, "no legal basis")
    r = acc.get_request(a)
    assert r.status is RequestStatus.DENIED and r.deny_reason == "no legal basis"
    with pytest.raises(ContractReverted) as err:
        acc.remind(court.broker, b)
    assert err.value.reason == "AccessLedgerNotOverdue"
    warp(conn, 120)
    assert acc.is_overdue(b)
    tx = acc.remind(court.broker, b)
    assert tx.event("RequestReminded").args["reminderCount"] == 1
    tx = acc.escalate(court.admin, b)
    assert tx.event("RequestEscalated").args["supervisors"] == [consortium.supervisor.address]
    r = acc.get_request(b)
    assert (r.reminder_count, r.escalation_count) == (1, 1)
    assert r.last_reminded_at > 0 and r.last_escalated_at >= r.last_reminded_at


def test_eip712_domain(consortium: Consortium) -> None:
    d = consortium.ledger.access.eip712_domain()
    assert (d.name, d.version) == ("govshare", "1")
    assert d.chain_id == consortium.ledger.chain_id == consortium.deployment.chain_id
    assert d.verifying_contract == consortium.deployment.address("AccessLedger")


def test_inputs_are_checked_before_the_chain(consortium: Consortium) -> None:
    L = consortium.ledger
    with pytest.raises(InputError, match="not a valid department code"):
        L.registry.get_department("T")
    with pytest.raises(InputError, match="32 bytes"):
        L.records.get_record(b"short")
    with pytest.raises(InputError, match="not a valid category"):
        L.records.get_category("TAX", "has space")
    with pytest.raises(InputError, match="not an Ethereum account"):
        L.registry.is_supervisor("0x1234")


def test_batched_records_materialise_in_version_order(consortium: Consortium) -> None:
    L = consortium.ledger
    recs, market, tax = L.records, consortium["MARKET"], consortium["TAX"]
    recs.declare_category(market.admin, "permit", "Permits")

    def record(label: bytes, previous: bytes | None = None) -> BatchRecord:
        return BatchRecord(
            sha(label + b"id"),
            "MARKET",
            sha(label),
            f"bafy-{label.decode()}",
            "permit",
            sha(b"subject"),
            previous,
        )

    v1, other = record(b"v1"), record(b"other")
    v2 = record(b"v2", v1.record_id)
    v3 = record(b"v3", v2.record_id)
    m1 = build_batch("MARKET", [other, v1])
    m2 = build_batch("MARKET", [v3, v2])  # any order inside a batch
    seqs = []
    for m in (m1, m2):
        cid = f"bafy-manifest-{m.root.hex()[:8]}"
        seqs.append(recs.anchor_batch(market.broker, m.root, m.count, cid).value)
        assert parse_manifest(m.data, department="MARKET", count=m.count, root=m.root) == m
    assert recs.batch_root("MARKET", seqs[1]) == m2.root
    index = index_manifests(dict(zip(seqs, (m1, m2), strict=True)))
    assert recs.record_leaf_hash(v3) == v3.leaf_hash()
    assert recs.verify_batched_record(index[v3.record_id])
    wrong = replace(index[v3.record_id], leaf_index=1)
    assert not recs.verify_batched_record(wrong)

    # Before it is on chain, a request for it is refused, with a sentence that says why.
    now = L.latest_timestamp()
    with pytest.raises(ContractReverted) as err:
        L.access.request_access(tax.broker, "MARKET", v3.record_id, "p", "", now + 600)
    assert err.value.reason == "AccessLedgerUnknownRecord"
    assert "materialised from its batch" in err.value.message
    with pytest.raises(ContractReverted) as err:
        recs.materialise(tax.broker, wrong)
    assert err.value.reason == "RecordRegistryInvalidProof"
    assert err.value.revert_args == {"department": "MARKET", "sequence": seqs[1], "leafIndex": 1}
    with pytest.raises(Unauthorized) as uerr:
        recs.materialise(tax.admin, index[v1.record_id])
    assert uerr.value.reason == "RecordRegistryNotActiveBroker"

    # The requester materialises v3 with its missing predecessors, oldest first.
    sent = recs.materialise_chain(tax.broker, v3.record_id, index.get)
    assert [t.event("RecordAnchored").args["recordId"] for t in sent] == [
        v1.record_id,
        v2.record_id,
        v3.record_id,
    ]
    assert [r.record_id for r in recs.versions(v3.record_id)] == [
        v1.record_id,
        v2.record_id,
        v3.record_id,
    ]
    got = recs.get_record(v3.record_id)
    batch2 = recs.get_batch("MARKET", seqs[1])
    assert (got.anchored_by, got.anchored_at) == (market.broker.address, batch2.anchored_at)
    assert (got.cid, got.category, got.subject_ref) == (v3.cid, "permit", v3.subject_ref)
    assert recs.materialise_chain(tax.broker, v3.record_id, index.get) == []
    with pytest.raises(ContractReverted) as err:
        recs.materialise(tax.broker, index[v1.record_id])
    assert err.value.reason == "RecordRegistryRecordExists"
    with pytest.raises(NotFound):
        recs.materialise_chain(tax.broker, rid(), index.get)
    # Then the request goes through.
    req = L.access.request_access(tax.broker, "MARKET", v3.record_id, "p", "", now + 600).value
    assert L.access.get_request(req).record_id == v3.record_id
