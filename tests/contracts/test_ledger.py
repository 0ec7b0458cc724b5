"""AccessLedger: requests, consent, grants, receipts, supervision."""

from __future__ import annotations

import pytest

from .helpers import DAY, b32, deploy_reverts, event_names, events, h32, one_event
from .world import RECORD, SUPERVISOR, Ops, World

NONE = b"\0" * 32
PENDING, APPROVED, DENIED, REVOKED = 1, 2, 3, 4
(
    OK,
    R_UNKNOWN,
    R_PENDING,
    R_DENIED,
    R_REVOKED,
    R_OWNER_INACTIVE,
    R_REQUESTER_INACTIVE,
    R_EXPIRED,
    R_QUOTA,
) = range(9)
SCOPE = b"read".ljust(32, b"\0")


def led(world: World):
    return world.chain.ledger.functions


# ---------------------------------------------------------------- deployment


def test_constructor_refuses_zero_addresses(world: World) -> None:
    c = world.chain
    zero, deployer = "0x" + "00" * 20, c.rpc.accounts[0]
    cases = [
        ((zero, c.records.address), "AccessLedgerZeroRegistry"),
        ((c.registry.address, zero), "AccessLedgerZeroRecords"),
        ((zero, zero), "AccessLedgerZeroRegistry"),
    ]
    for args, error in cases:
        rv = deploy_reverts(c.rpc, "AccessLedger", deployer, *args)
        assert (rv.name, rv.args) == (error, ())


# ------------------------------------------------------------------ requests


def test_request_access(world: World) -> None:
    c, f = world.chain, led(world)
    deadline = c.now() + 3 * DAY
    rc = c.send(
        f.requestAccess(b32("TAX"), RECORD["TAX"], "licence", "Licensing Act s.5", deadline),
        world.broker("MARKET"),
    )
    assert one_event(rc, c.ledger, "AccessRequested") == {
        "requestId": 1,
        "requesterDepartment": b32("MARKET"),
        "ownerDepartment": b32("TAX"),
        "recordId": RECORD["TAX"],
        "purpose": "licence",
        "legalBasis": "Licensing Act s.5",
        "deadline": deadline,
        "requestedBy": world.broker("MARKET"),
    }
    req = f.getRequest(1).call()
    assert req[:9] == (
        b32("MARKET"),
        b32("TAX"),
        RECORD["TAX"],
        "licence",
        "Licensing Act s.5",
        deadline,
        world.broker("MARKET"),
        c.now(),
        PENDING,
    )
    undecided = ("0x" + "0" * 40, 0, "", NONE, 0, 0, 0, "0x" + "0" * 40, 0, "", 0, 0, 0, 0)
    assert req[9:] == (*undecided, NONE, NONE, False)  # (not a request by subject)
    assert f.requestCount().call() == 1
    assert f.grantStatus(1).call() == [False, R_PENDING]
    # Ids are sequential; the legal basis may be empty.
    c.send(f.requestAccess(b32("TAX"), RECORD["TAX"], "again", "", deadline), world.broker("COURT"))
    assert f.requestCount().call() == 2
    assert f.requestsForRecord(RECORD["TAX"]).call() == [1, 2]
    assert f.requestsForRecord(RECORD["MARKET"]).call() == []


def test_request_access_reverts(world: World) -> None:
    c, f = world.chain, led(world)
    now = c.now()
    later = now + DAY
    cases = [
        (
            f.requestAccess(b32("HEALTH"), RECORD["HEALTH"], "p", "", later),
            "AccessLedgerDepartmentNotActive",
            (b32("HEALTH"),),
        ),
        (
            f.requestAccess(b32("NOPE"), RECORD["TAX"], "p", "", later),
            "AccessLedgerDepartmentNotActive",
            (b32("NOPE"),),
        ),
        (
            f.requestAccess(b32("MARKET"), RECORD["MARKET"], "p", "", later),
            "AccessLedgerSelfRequest",
            (b32("MARKET"),),
        ),
        (
            f.requestAccess(b32("TAX"), h32("ghost"), "p", "", later),
            "AccessLedgerUnknownRecord",
            (h32("ghost"),),
        ),
        (
            f.requestAccess(b32("TAX"), RECORD["COURT"], "p", "", later),
            "AccessLedgerRecordNotOwned",
            (RECORD["COURT"], b32("TAX"), b32("COURT")),
        ),
        (f.requestAccess(b32("TAX"), RECORD["TAX"], "", "", later), "AccessLedgerEmptyPurpose", ()),
    ]
    for fn, error, args in cases:
        rv = c.reverts(fn, world.broker("MARKET"))
        assert (rv.name, rv.args) == (error, args)
    rv = c.reverts(
        f.requestAccess(b32("TAX"), RECORD["TAX"], "p", "", now - 5), world.broker("MARKET")
    )
    assert rv.name == "AccessLedgerInvalidDeadline" and rv.args[0] == now - 5 and rv.args[1] >= now
    for caller in (world.admin("MARKET"), world.broker("HEALTH"), world.outsider(), SUPERVISOR):
        rv = c.reverts(f.requestAccess(b32("TAX"), RECORD["TAX"], "p", "", later), caller)
        assert (rv.name, rv.args) == ("AccessLedgerNotActiveBroker", (caller,))


# --------------------------------------------------------------- decisions


def test_approve(world: World, ops: Ops) -> None:
    c, f = world.chain, led(world)
    rid = ops.request()
    expires = c.now() + 30 * DAY
    rc = c.send(f.approve(rid, SCOPE, expires, 3), world.admin("TAX", 1))
    assert one_event(rc, c.ledger, "AccessApproved") == {
        "requestId": rid,
        "ownerDepartment": b32("TAX"),
        "requesterDepartment": b32("MARKET"),
        "recordId": RECORD["TAX"],
        "scope": SCOPE,
        "expiresAt": expires,
        "maxUses": 3,
        "approvedBy": world.admin("TAX", 1),
    }
    req = f.getRequest(rid).call()
    assert req[8:16] == (APPROVED, world.admin("TAX", 1), c.now(), "", SCOPE, expires, 3, 0)
    assert f.grantStatus(rid).call() == [True, OK]


def test_approve_reverts(world: World, ops: Ops) -> None:
    c, f = world.chain, led(world)
    rid = ops.request()
    now = c.now()
    rv = c.reverts(f.approve(99, SCOPE, now + DAY, 1), world.admin("TAX"))
    assert (rv.name, rv.args) == ("AccessLedgerUnknownRequest", (99,))
    rv = c.reverts(f.approve(rid, SCOPE, now + DAY, 0), world.admin("TAX"))
    assert (rv.name, rv.args) == ("AccessLedgerInvalidMaxUses", ())
    rv = c.reverts(f.approve(rid, SCOPE, now - 1, 1), world.admin("TAX"))
    assert rv.name == "AccessLedgerInvalidExpiry" and rv.args[0] == now - 1
    for caller in (
        world.broker("TAX"),
        world.admin("MARKET"),
        world.admin("COURT"),
        world.outsider(),
    ):
        rv = c.reverts(f.approve(rid, SCOPE, now + DAY, 1), caller)
        assert (rv.name, rv.args) == ("AccessLedgerNotOwnerAdmin", (rid, caller))
    ops.approve(rid)
    rv = c.reverts(f.approve(rid, SCOPE, now + DAY, 1), world.admin("TAX"))
    assert (rv.name, rv.args) == ("AccessLedgerRequestNotPending", (rid, APPROVED))
    rv = c.reverts(f.deny(rid, "no"), world.admin("TAX"))
    assert (rv.name, rv.args) == ("AccessLedgerRequestNotPending", (rid, APPROVED))


def test_cannot_approve_for_a_suspended_requester(world: World, ops: Ops) -> None:
    c, f = world.chain, led(world)
    rid = ops.request()
    ops.suspend("MARKET", "TAX", ("COURT",))
    rv = c.reverts(f.approve(rid, SCOPE, c.now() + DAY, 1), world.admin("TAX"))
    assert (rv.name, rv.args) == ("AccessLedgerDepartmentNotActive", (b32("MARKET"),))
    # ...but it can still be denied, which closes it.
    c.send(f.deny(rid, "requester suspended"), world.admin("TAX"))


def test_suspended_owner_cannot_decide(world: World, ops: Ops) -> None:
    c, f = world.chain, led(world)
    rid = ops.request()
    ops.suspend("TAX", "MARKET", ("COURT",))
    rv = c.reverts(f.deny(rid, "x"), world.admin("TAX"))
    assert (rv.name, rv.args) == ("AccessLedgerNotOwnerAdmin", (rid, world.admin("TAX")))


def test_deny(world: World, ops: Ops) -> None:
    c, f = world.chain, led(world)
    rid = ops.request()
    rv = c.reverts(f.deny(rid, ""), world.admin("TAX"))
    assert (rv.name, rv.args) == ("AccessLedgerEmptyReason", ())
    rc = c.send(f.deny(rid, "purpose not covered"), world.admin("TAX"))
    assert one_event(rc, c.ledger, "AccessDenied") == {
        "requestId": rid,
        "ownerDepartment": b32("TAX"),
        "requesterDepartment": b32("MARKET"),
        "reason": "purpose not covered",
        "deniedBy": world.admin("TAX"),
    }
    req = f.getRequest(rid).call()
    assert req[8:12] == (DENIED, world.admin("TAX"), c.now(), "purpose not covered")
    assert f.grantStatus(rid).call() == [False, R_DENIED]
    rv = c.reverts(f.deny(rid, "again"), world.admin("TAX"))
    assert (rv.name, rv.args) == ("AccessLedgerRequestNotPending", (rid, DENIED))
    rv = c.reverts(f.approve(rid, SCOPE, c.now() + DAY, 1), world.admin("TAX"))
    assert (rv.name, rv.args) == ("AccessLedgerRequestNotPending", (rid, DENIED))


def test_revoke(world: World, ops: Ops) -> None:
    c, f = world.chain, led(world)
    gid = ops.grant()
    rv = c.reverts(f.revoke(gid, ""), world.admin("TAX"))
    assert (rv.name, rv.args) == ("AccessLedgerEmptyReason", ())
    rc = c.send(f.revoke(gid, "investigation closed"), world.admin("TAX", 1))
    assert one_event(rc, c.ledger, "AccessRevoked") == {
        "grantId": gid,
        "ownerDepartment": b32("TAX"),
        "requesterDepartment": b32("MARKET"),
        "reason": "investigation closed",
        "revokedBy": world.admin("TAX", 1),
    }
    req = f.getRequest(gid).call()
    assert req[8] == REVOKED and req[16:19] == (
        world.admin("TAX", 1),
        c.now(),
        "investigation closed",
    )
    assert f.grantStatus(gid).call() == [False, R_REVOKED]
    # Revocation is final: neither revoke nor approve brings it back.
    rv = c.reverts(f.revoke(gid, "again"), world.admin("TAX"))
    assert (rv.name, rv.args) == ("AccessLedgerGrantNotApproved", (gid, REVOKED))
    rv = c.reverts(f.approve(gid, SCOPE, c.now() + DAY, 1), world.admin("TAX"))
    assert (rv.name, rv.args) == ("AccessLedgerRequestNotPending", (gid, REVOKED))


def test_revoke_reverts(world: World, ops: Ops) -> None:
    c, f = world.chain, led(world)
    pending = ops.request()
    rv = c.reverts(f.revoke(pending, "x"), world.admin("TAX"))
    assert (rv.name, rv.args) == ("AccessLedgerGrantNotApproved", (pending, PENDING))
    c.send(f.deny(pending, "no"), world.admin("TAX"))
    rv = c.reverts(f.revoke(pending, "x"), world.admin("TAX"))
    assert (rv.name, rv.args) == ("AccessLedgerGrantNotApproved", (pending, DENIED))
    rv = c.reverts(f.revoke(42, "x"), world.admin("TAX"))
    assert (rv.name, rv.args) == ("AccessLedgerUnknownRequest", (42,))
    gid = ops.grant()
    for caller in (
        world.broker("TAX"),
        world.admin("MARKET"),
        world.broker("MARKET"),
        world.outsider(),
    ):
        rv = c.reverts(f.revoke(gid, "x"), caller)
        assert (rv.name, rv.args) == ("AccessLedgerNotOwnerAdmin", (gid, caller))


# -------------------------------------------------------------- grant status


def test_grant_status_expiry_boundary(world: World, ops: Ops) -> None:
    c, f = world.chain, led(world)
    gid = ops.grant(expires_in=1000)
    expires = f.getRequest(gid).call()[13]
    c.mine(expires - 1)
    assert f.grantStatus(gid).call() == [True, OK]
    c.mine(expires)
    assert f.grantStatus(gid).call() == [False, R_EXPIRED]


def test_grant_status_quota_and_inactive_parties(world: World, ops: Ops) -> None:
    c, f = world.chain, led(world)
    assert f.grantStatus(0).call() == [False, R_UNKNOWN]
    assert f.grantStatus(77).call() == [False, R_UNKNOWN]
    gid = ops.grant(max_uses=2)
    ops.receipts("TAX", 1, 1, [gid], [1])
    assert f.grantStatus(gid).call() == [True, OK]
    ops.receipts("TAX", 2, 2, [gid], [1])
    assert f.grantStatus(gid).call() == [False, R_QUOTA]
    g2 = ops.grant("COURT", "TAX")
    g3 = ops.grant("TAX", "COURT")
    ops.suspend("COURT", "TAX", ("MARKET",))
    assert f.grantStatus(g2).call() == [False, R_REQUESTER_INACTIVE]
    assert f.grantStatus(g3).call() == [False, R_OWNER_INACTIVE]
    ops.pass_proposal(c.registry.functions.proposeReactivateDepartment(b32("COURT")))
    assert f.grantStatus(g2).call() == [True, OK]


# ----------------------------------------------------------------- receipts


def test_anchor_receipts(world: World, ops: Ops) -> None:
    c, f = world.chain, led(world)
    g1, g2 = ops.grant(max_uses=5), ops.grant("COURT", "TAX", max_uses=5)
    fn = f.anchorReceipts(h32("root1"), 1, 4, "bafyManifest", [g1, g2], [3, 1])
    rc = c.send(fn, world.broker("TAX"))
    # Each grant's uses are checked and added first; the batch is stored last.
    assert event_names(rc, c.ledger) == [
        "GrantUsesRecorded",
        "GrantUsesRecorded",
        "ReceiptsAnchored",
    ]
    assert one_event(rc, c.ledger, "ReceiptsAnchored") == {
        "department": b32("TAX"),
        "batchIndex": 1,
        "root": h32("root1"),
        "firstSeq": 1,
        "lastSeq": 4,
        "manifestCid": "bafyManifest",
        "anchoredBy": world.broker("TAX"),
    }
    assert events(rc, c.ledger, "GrantUsesRecorded") == [
        {"grantId": g1, "department": b32("TAX"), "batchIndex": 1, "uses": 3, "usedCount": 3},
        {"grantId": g2, "department": b32("TAX"), "batchIndex": 1, "uses": 1, "usedCount": 1},
    ]
    assert f.lastReceiptSeq(b32("TAX")).call() == 4
    assert f.receiptBatchCount(b32("TAX")).call() == 1
    assert f.getReceiptBatch(b32("TAX"), 1).call() == (
        h32("root1"),
        1,
        4,
        "bafyManifest",
        world.broker("TAX"),
        c.now(),
    )
    assert f.getRequest(g1).call()[15] == 3
    # The same grant twice in one batch adds up; the next batch continues at 5.
    rc = c.send(f.anchorReceipts(h32("root2"), 5, 6, "m2", [g1, g1], [1, 1]), world.broker("TAX"))
    assert one_event(rc, c.ledger, "ReceiptsAnchored")["batchIndex"] == 2
    assert f.getRequest(g1).call()[15] == 5
    assert f.lastReceiptSeq(b32("MARKET")).call() == 0
    for index in (0, 3):
        rv = c.call_reverts(f.getReceiptBatch(b32("TAX"), index))
        assert (rv.name, rv.args) == ("AccessLedgerUnknownReceiptBatch", (b32("TAX"), index))


def test_receipts_of_revoked_or_expired_grants_are_still_anchored(world: World, ops: Ops) -> None:
    c, f = world.chain, led(world)
    g1, g2 = ops.grant(), ops.grant(expires_in=100)
    c.send(f.revoke(g1, "done"), world.admin("TAX"))
    ops.warp(1000)
    ops.receipts("TAX", 1, 2, [g1, g2], [1, 1])
    assert f.getRequest(g1).call()[15] == 1
    assert f.getRequest(g2).call()[15] == 1


def test_anchor_receipts_reverts(world: World, ops: Ops) -> None:
    c, f = world.chain, led(world)
    gid = ops.grant(max_uses=2)
    other = ops.grant("TAX", "MARKET")  # owned by MARKET
    pending = ops.request()
    ops.receipts("TAX", 1, 1, [gid], [1])
    cases = [
        ((NONE, 2, 2, "m", [gid], [1]), "AccessLedgerEmptyReceiptRoot", ()),
        ((h32("r"), 2, 2, "", [gid], [1]), "AccessLedgerEmptyCid", ()),
        ((h32("r"), 3, 2, "m", [gid], [1]), "AccessLedgerInvalidReceiptRange", (3, 2)),
        (
            (h32("r"), 3, 3, "m", [gid], [1]),
            "AccessLedgerReceiptRangeNotContiguous",
            (b32("TAX"), 2, 3),
        ),
        (
            (h32("r"), 1, 2, "m", [gid], [1]),
            "AccessLedgerReceiptRangeNotContiguous",
            (b32("TAX"), 2, 1),
        ),
        ((h32("r"), 2, 2, "m", [gid], []), "AccessLedgerLengthMismatch", (1, 0)),
        ((h32("r"), 2, 3, "m", [gid, gid], [1, 0]), "AccessLedgerZeroUses", (gid,)),
        ((h32("r"), 2, 3, "m", [gid], [1]), "AccessLedgerReceiptCountMismatch", (2, 1)),
        ((h32("r"), 2, 2, "m", [], []), "AccessLedgerReceiptCountMismatch", (1, 0)),
        ((h32("r"), 2, 3, "m", [gid], [2]), "AccessLedgerQuotaExceeded", (gid, 1, 2, 2)),
        (
            (h32("r"), 2, 2, "m", [other], [1]),
            "AccessLedgerGrantNotOwned",
            (other, b32("MARKET"), b32("TAX")),
        ),
        ((h32("r"), 2, 2, "m", [pending], [1]), "AccessLedgerGrantNotApproved", (pending, PENDING)),
        ((h32("r"), 2, 2, "m", [99], [1]), "AccessLedgerGrantNotApproved", (99, 0)),
    ]
    for args, error, eargs in cases:
        rv = c.reverts(f.anchorReceipts(*args), world.broker("TAX"))
        assert (rv.name, rv.args) == (error, eargs), args
    c.send(f.deny(pending, "no"), world.admin("TAX"))
    rv = c.reverts(f.anchorReceipts(h32("r"), 2, 2, "m", [pending], [1]), world.broker("TAX"))
    assert (rv.name, rv.args) == ("AccessLedgerGrantNotApproved", (pending, DENIED))
    for caller in (world.admin("TAX"), world.broker("HEALTH"), world.outsider()):
        rv = c.reverts(f.anchorReceipts(h32("r"), 2, 2, "m", [gid], [1]), caller)
        assert (rv.name, rv.args) == ("AccessLedgerNotActiveBroker", (caller,))
    assert f.lastReceiptSeq(b32("TAX")).call() == 1


def test_receipt_sequence_survives_broker_rotation(world: World, ops: Ops) -> None:
    c, f = world.chain, led(world)
    gid = ops.grant()
    ops.receipts("TAX", 1, 1, [gid], [1])
    new = c.account("TAX:broker2")
    c.send(c.registry.functions.setBroker(new), world.admin("TAX"))
    rv = c.reverts(f.anchorReceipts(h32("r"), 1, 1, "m", [gid], [1]), new)
    assert (rv.name, rv.args) == ("AccessLedgerReceiptRangeNotContiguous", (b32("TAX"), 2, 1))
    rc = c.send(f.anchorReceipts(h32("r"), 2, 2, "m", [gid], [1]), new)
    assert one_event(rc, c.ledger, "ReceiptsAnchored")["anchoredBy"] == new


# -------------------------------------------------------------- supervision


def test_remind_and_escalate_after_deadline(world: World, ops: Ops) -> None:
    c, f = world.chain, led(world)
    rid = ops.request(deadline_in=1000)
    deadline = f.getRequest(rid).call()[5]
    for fn in (f.remind(rid), f.escalate(rid)):
        rv = c.reverts(fn, world.broker("MARKET"))
        assert (rv.name, rv.args) == ("AccessLedgerNotOverdue", (rid, deadline))
    c.mine(deadline)
    assert f.isOverdue(rid).call() is False
    c.mine(deadline + 1)
    assert f.isOverdue(rid).call() is True
    rc = c.send(f.remind(rid), world.broker("MARKET"))
    assert one_event(rc, c.ledger, "RequestReminded") == {
        "requestId": rid,
        "requesterDepartment": b32("MARKET"),
        "ownerDepartment": b32("TAX"),
        "reminderCount": 1,
        "by": world.broker("MARKET"),
    }
    rc = c.send(f.remind(rid), world.admin("MARKET"))
    assert one_event(rc, c.ledger, "RequestReminded")["reminderCount"] == 2
    rc = c.send(f.escalate(rid), world.admin("MARKET"))
    assert one_event(rc, c.ledger, "RequestEscalated") == {
        "requestId": rid,
        "requesterDepartment": b32("MARKET"),
        "ownerDepartment": b32("TAX"),
        "escalationCount": 1,
        "supervisors": [SUPERVISOR],
        "by": world.admin("MARKET"),
    }
    t = c.now()
    req = f.getRequest(rid).call()
    assert req[19:23] == (2, 1, req[21], t)
    # The decision closes the loop.
    c.send(f.deny(rid, "late, but no"), world.admin("TAX"))
    assert f.isOverdue(rid).call() is False
    for fn in (f.remind(rid), f.escalate(rid)):
        rv = c.reverts(fn, world.broker("MARKET"))
        assert (rv.name, rv.args) == ("AccessLedgerRequestNotPending", (rid, DENIED))
    assert f.getRequest(rid).call()[19:21] == (2, 1)


def test_supervision_reverts(world: World, ops: Ops) -> None:
    c, f = world.chain, led(world)
    rid = ops.request(deadline_in=10)
    ops.warp(100)
    for fn_name in ("remind", "escalate"):
        rv = c.reverts(getattr(f, fn_name)(77), world.broker("MARKET"))
        assert (rv.name, rv.args) == ("AccessLedgerUnknownRequest", (77,))
        for caller in (
            world.broker("TAX"),
            world.admin("TAX"),
            world.broker("COURT"),
            world.outsider(),
            SUPERVISOR,
        ):
            rv = c.reverts(getattr(f, fn_name)(rid), caller)
            assert (rv.name, rv.args) == ("AccessLedgerNotRequesterAccount", (rid, caller))
    ops.pass_proposal(c.registry.functions.proposeRemoveSupervisor(SUPERVISOR))
    rv = c.reverts(f.escalate(rid), world.broker("MARKET"))
    assert (rv.name, rv.args) == ("AccessLedgerNoSupervisors", ())
    ops.suspend("MARKET", "TAX", ("COURT",))
    rv = c.reverts(f.remind(rid), world.broker("MARKET"))
    assert (rv.name, rv.args) == ("AccessLedgerNotRequesterAccount", (rid, world.broker("MARKET")))


def test_views(world: World) -> None:
    c, f = world.chain, led(world)
    assert f.registry().call() == c.registry.address
    assert f.records().call() == c.records.address
    rv = c.call_reverts(f.getRequest(1))
    assert (rv.name, rv.args) == ("AccessLedgerUnknownRequest", (1,))
    assert f.isOverdue(1).call() is False
    domain = f.eip712Domain().call()
    assert domain[1:5] == ["govshare", "1", c.rpc.chain_id, c.ledger.address]


@pytest.mark.parametrize("max_uses", [1, 2**32 - 1])
def test_max_uses_range(world: World, ops: Ops, max_uses: int) -> None:
    gid = ops.grant(max_uses=max_uses)
    assert led(world).getRequest(gid).call()[14] == max_uses
