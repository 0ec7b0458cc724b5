"""A department's notifications, from the ledger mirror on a real chain (this
module's own anvil; SQLite, then PostgreSQL): each department is told its own
business only, each fact once; requests by subject and grants by the contract
itself; synthetic events for hostile arguments; rewinds; deadlines on a clock
the test moves."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import func, select

from fakeclock import ManualClock, warp_chain
from govshare.broker import consent, governance
from govshare.broker.db import Notification
from govshare.broker.errors import EventCursorInvalid
from govshare.broker.notifications import (
    MAX_DATA,
    NotificationProjection,
    NotificationView,
    parse_cursor,
    scan_deadlines,
)
from govshare.broker.services import BrokerServices
from govshare.chain.contracts import SharingType
from govshare.chain.mirror import IndexedEvent
from integration.world import CATEGORY, World, open_runtime

pytestmark = pytest.mark.integration

CODES = ("TAX", "MARKET", "COURT")


@pytest.fixture(scope="module")
def svcs(world: World) -> Iterator[dict[str, BrokerServices]]:
    runtimes = {c: open_runtime(world, c) for c in CODES}
    try:
        yield {c: r.svc for c, r in runtimes.items()}
    finally:
        for r in runtimes.values():
            r.stop()
            r.svc.ledger.close()


def ask(world: World, owner: str, requester: str, deadline_in: int = 3600) -> int:
    """A fresh record of ``owner`` on chain, and ``requester``'s request for it."""
    rid = "0x" + os.urandom(32).hex()
    ledger = world.ledger
    ledger.records.anchor(
        world[owner].broker, rid, hashlib.sha256(rid.encode()).digest(), "bafkreiexample", CATEGORY
    )
    sent = ledger.access.request_access(
        world[requester].broker, owner, rid, "licence\x1b[2J", "art. 5", ledger.now() + deadline_in
    )
    return int(sent.value)


def tick(svcs: dict[str, BrokerServices]) -> None:
    for svc in svcs.values():
        svc.mirror.run_once()


def told(svc: BrokerServices, request_id: int | None = None) -> list[NotificationView]:
    out = svc.notifications.read_after(0, 1000)
    if request_id is None:
        return out
    return [n for n in out if n.data.get("request_id") == request_id]


def kinds(svc: BrokerServices, request_id: int) -> list[str]:
    return [n.kind for n in told(svc, request_id)]


def test_an_incoming_request_is_told_to_its_owner_only(
    world: World, svcs: dict[str, BrokerServices]
) -> None:
    to_tax = ask(world, "TAX", "MARKET")
    between_others = ask(world, "COURT", "MARKET")
    tick(svcs)
    tax, market, court = svcs["TAX"], svcs["MARKET"], svcs["COURT"]
    (n,) = told(tax, to_tax)
    assert n.kind == "request.incoming" and n.department == "TAX"
    assert n.data["owner"] == "TAX" and n.data["requester"] == "MARKET"
    assert n.data["by_subject"] is False and n.data["record_id"].startswith("0x")
    assert n.data["purpose"] == "licence\x1b[2J"  # kept as sent; terminals escape it
    assert n.data["requested_by"] == world["MARKET"].broker.address.lower()
    assert n.block_number is not None and n.tx_hash and n.tx_hash.startswith("0x")
    # never at the requester, never at a department the request does not concern
    assert told(market, to_tax) == [] and told(court, to_tax) == []
    assert told(tax, between_others) == []
    assert kinds(court, between_others) == ["request.incoming"]
    # each fact once: more ticks, nothing more
    tick(svcs)
    assert len(told(tax, to_tax)) == 1
    body = n.to_json()
    assert body["id"] == n.id and body["kind"] == "request.incoming"
    assert body["created_at"].endswith("Z") and body["chain"]["block"] == n.block_number


def test_decisions_reach_the_requester_and_supervision_the_owner(
    world: World, svcs: dict[str, BrokerServices]
) -> None:
    ledger, admin = world.ledger, world["TAX"].admin
    approved, denied = ask(world, "TAX", "MARKET"), ask(world, "TAX", "MARKET")
    consent.approve(ledger, admin, approved, max_uses=2, expires_in=3600, dept="TAX")
    consent.deny(ledger, admin, denied, reason="not for\nthis purpose", dept="TAX")
    consent.revoke(ledger, admin, approved, reason="withdrawn", dept="TAX")
    overdue = ask(world, "TAX", "MARKET", deadline_in=60)
    warp_chain(ledger.conn, 120)
    ledger.access.remind(world["MARKET"].broker, overdue)
    sup = "0x" + "5e" * 20
    if not ledger.registry.is_supervisor(sup):
        pid = governance.propose_add_supervisor(ledger, world["TAX"].admin, sup).view.proposal.id
        assert governance.approve_proposal(ledger, world["COURT"].admin, pid).executed
    ledger.access.escalate(world["MARKET"].broker, overdue)
    tick(svcs)
    tax, market, court = svcs["TAX"], svcs["MARKET"], svcs["COURT"]

    assert kinds(market, approved) == ["request.approved", "grant.revoked"]
    ok = told(market, approved)[0].data
    assert ok["grant_id"] == approved and ok["max_uses"] == 2 and ok["unconditional"] is False
    assert ok["approved_by"] == admin.address.lower() and ok["expires_at"].endswith("Z")
    revoked = told(market, approved)[1].data
    assert revoked["reason"] == "withdrawn" and revoked["direction"] == "outgoing"
    # the owner: the request, and the revocation as confirmation; not its own decisions
    assert kinds(tax, approved) == ["request.incoming", "grant.revoked"]
    assert told(tax, approved)[1].data["direction"] == "incoming"

    assert kinds(market, denied) == ["request.denied"]
    assert told(market, denied)[0].data["reason"] == "not for\nthis purpose"
    assert kinds(tax, denied) == ["request.incoming"]

    assert kinds(tax, overdue) == ["request.incoming", "request.reminded", "request.escalated"]
    reminded, escalated = told(tax, overdue)[1:]
    assert reminded.data["reminder_count"] == 1 and escalated.data["escalation_count"] == 1
    assert escalated.data["supervisors"] == [sup]
    assert kinds(market, overdue) == []  # the requester did it: nothing to tell it
    assert all(told(court, r) == [] for r in (approved, denied, overdue))


def synthetic(svc: BrokerServices, event: str, seq: int, **args: Any) -> IndexedEvent:
    return IndexedEvent(
        block_number=10**9 + seq,
        block_hash="0x" + "ab" * 32,
        tx_hash="0x" + f"{seq:064x}",
        log_index=0,
        contract="AccessLedger",
        address=svc.ledger.deployment.address("AccessLedger"),
        event=event,
        args=args,
        indexed_args={},
        seq=10**9 + seq,
    )


def code(text: str) -> str:
    return "0x" + text.encode().ljust(32, b"\0").hex()


def apply(svc: BrokerServices, *events: IndexedEvent) -> None:
    with svc.db.writing() as db:
        NotificationProjection(svc).apply(db, events, None, 0)


def test_a_request_by_subject_is_an_incoming_request(
    world: World, svcs: dict[str, BrokerServices]
) -> None:
    """A request by subject on chain (``AccessRequested`` with a zero record id, then
    ``SubjectRequested`` in the same transaction) is one incoming request, at the
    owner only; an unconditional category's grant, given by the ledger itself, is
    told to the requester as such."""
    ledger = world.ledger
    ref = "0x" + "5a" * 32
    deadline = ledger.now() + 3600
    sent = ledger.access.request_by_subject(
        world["MARKET"].broker, "TAX", CATEGORY, ref, "licence", "art. 5", deadline,
        latest_only=True,
    )  # fmt: skip
    rid = int(sent.value)
    tick(svcs)
    tax, market, court = svcs["TAX"], svcs["MARKET"], svcs["COURT"]
    (n,) = told(tax, rid)
    assert n.kind == "request.incoming"
    assert {k: n.data[k] for k in ("by_subject", "category", "subject_ref", "latest_only")} == {
        "by_subject": True, "category": CATEGORY, "subject_ref": ref, "latest_only": True,
    }  # fmt: skip
    assert n.data["record_id"] is None and n.data["purpose"] == "licence"
    assert told(market, rid) == [] and told(court, rid) == []

    # COURT shares its category unconditionally: MARKET's request is granted at once.
    court_cat = "court-judgment"
    ledger.records.declare_category(world["COURT"].admin, court_cat, "Judgements")
    ledger.records.set_sharing(
        world["COURT"].admin, court_cat, SharingType.UNCONDITIONAL, default_ttl=3600,
        default_max_uses=1,
    )  # fmt: skip
    granted = ledger.access.request_by_subject(
        world["MARKET"].broker, "COURT", court_cat, ref, "licence", "", deadline
    )
    tick(svcs)
    assert kinds(court, int(granted.value)) == ["request.incoming"]
    (approved,) = told(market, int(granted.value))
    assert approved.kind == "request.approved" and approved.data["unconditional"] is True
    assert approved.data["approved_by"] == ledger.access.address.lower()


def test_hostile_arguments_are_decoded_totally_and_bounded(
    svcs: dict[str, BrokerServices],
) -> None:
    tax = svcs["TAX"]
    garbage = [
        # no request id, departments that are no bytes32, wrong types everywhere
        synthetic(tax, "AccessRequested", 3, requestId="7", ownerDepartment=code("TAX")),
        synthetic(tax, "AccessRequested", 4, requestId=0, ownerDepartment=code("TAX"),
                  requesterDepartment=code("MARKET")),
        synthetic(tax, "AccessRequested", 5, requestId=True, ownerDepartment=code("TAX"),
                  requesterDepartment=code("MARKET")),
        synthetic(tax, "AccessRequested", 6, requestId=1, ownerDepartment="TAX",
                  requesterDepartment=code("MARKET")),
        synthetic(tax, "NotAnEvent", 7, requestId=1, ownerDepartment=code("TAX"),
                  requesterDepartment=code("MARKET")),
    ]  # fmt: skip
    before = len(told(tax))
    apply(tax, *garbage)
    assert len(told(tax)) == before

    huge = synthetic(
        tax,
        "AccessRequested",
        8,
        requestId=900_008,
        ownerDepartment=code("TAX"),
        requesterDepartment=code("MARKET"),
        recordId="not hex",
        purpose="\u202e" + "x" * 100_000,
        legalBasis=["not", "a", "string"],
        deadline=2**64 + 5,
        requestedBy="0xnot-an-address",
    )
    apply(tax, huge)
    (n,) = told(tax, 900_008)
    assert len(n.body()) <= MAX_DATA + 512
    assert n.data["purpose"].startswith("\u202e") and n.data["legal_basis"] == ""
    assert n.data["record_id"] is None and n.data["requested_by"] is None
    assert n.data["deadline"] is None


def test_a_rewind_retracts_and_a_reread_restores_under_the_same_id(
    svcs: dict[str, BrokerServices],
) -> None:
    tax = svcs["TAX"]
    args: dict[str, Any] = {
        "requestId": 900_010,
        "ownerDepartment": code("TAX"),
        "requesterDepartment": code("COURT"),
        "recordId": "0x" + "02" * 32,
        "purpose": "case 12",
        "legalBasis": "",
        "deadline": 2_000_000_000,
        "requestedBy": "0x" + "22" * 20,
    }
    ev = synthetic(tax, "AccessRequested", 10, **args)
    apply(tax, ev)
    (first,) = told(tax, 900_010)
    projection = NotificationProjection(tax)
    with tax.db.writing() as db:
        projection.apply_rewind(db, [ev], None, ev.block_number - 1)
    assert told(tax, 900_010) == []  # retracted: no longer streamed nor delivered
    # the same fact read again (re-sent in another transaction): its old id, told once
    again = replace(ev, seq=ev.seq + 1, tx_hash="0x" + "cd" * 32)
    apply(tax, again)
    (back,) = told(tax, 900_010)
    assert back.id == first.id and back.tx_hash == "0x" + "cd" * 32
    # retracted again, and now the chain says something else: told anew, new id
    with tax.db.writing() as db:
        projection.apply_rewind(db, [again], None, ev.block_number - 1)
    other = replace(ev, seq=ev.seq + 2, args={**args, "purpose": "another case"})
    apply(tax, other)
    (new,) = told(tax, 900_010)
    assert new.id > first.id and new.data["purpose"] == "another case"
    with tax.db.reading() as db:
        assert db.execute(select(func.count()).where(Notification.id == first.id)).scalar() == 1


def test_a_deadline_approaching_is_told_once(
    world: World, svcs: dict[str, BrokerServices], monkeypatch: pytest.MonkeyPatch
) -> None:
    tax = svcs["TAX"]
    clock = ManualClock(world.ledger.now())
    monkeypatch.setattr(tax, "clock", clock)
    monkeypatch.setattr(
        tax.notifications, "settings", replace(tax.notifications.settings, deadline_window=3600)
    )
    rid = ask(world, "TAX", "MARKET", deadline_in=2 * 3600)
    tick(svcs)
    scan_deadlines(tax)
    assert "request.deadline_approaching" not in kinds(tax, rid)  # two hours to go
    clock.advance(3600 + 60)
    assert scan_deadlines(tax) >= 1
    assert scan_deadlines(tax) == 0  # once
    (n,) = [x for x in told(tax, rid) if x.kind == "request.deadline_approaching"]
    assert n.data["requester"] == "MARKET" and n.data["deadline"].endswith("Z")
    assert n.block_number is None
    assert all(x.kind != "request.deadline_approaching" for x in told(svcs["MARKET"], rid))
    clock.advance(2 * 3600)  # past the deadline: nothing more
    assert scan_deadlines(tax) == 0


def test_cursors_are_whole_numbers() -> None:
    assert parse_cursor(None, "x") is None and parse_cursor(" ", "x") is None
    assert parse_cursor("0", "x") == 0 and parse_cursor(" 42 ", "x") == 42
    for bad in ("-1", "abc", "1.5", "0x10", "9" * 25, str(2**63)):
        with pytest.raises(EventCursorInvalid):
            parse_cursor(bad, "Last-Event-ID header")
