"""Sharing types per catalog category, and requests by subject.

A category is shared conditionally (an admin decides, the default), unconditionally
(the ledger grants an active member's request in the same transaction, on the
category's defaults) or not at all (the ledger refuses). A request by subject names
the owner's category and the subject's keyed reference instead of a record.
"""

from __future__ import annotations

import pytest

from .helpers import DAY, b32, event_names, h32, one_event
from .world import CATEGORY, RECORD, SUPERVISOR, Ops, World

CONDITIONAL, UNCONDITIONAL, NONE_SHARED = 0, 1, 2
PENDING, APPROVED = 1, 2
ZERO = b"\0" * 32
MAX_TTL = 3653 * DAY
SUBJECT = h32("subject")  # the reference the base world's records carry
TAX_CAT = CATEGORY["TAX"]


def rec(world: World):
    return world.chain.records.functions


def led(world: World):
    return world.chain.ledger.functions


def share(world: World, sharing: int, ttl: int = 0, uses: int = 0, code: str = "TAX") -> dict:
    return world.chain.send(
        rec(world).setSharing(CATEGORY[code], sharing, ttl, uses), world.admin(code)
    )


def by_subject(world: World, requester: str = "MARKET", **kw: object) -> dict:
    c = world.chain
    args = {
        "owner": b32("TAX"),
        "category": TAX_CAT,
        "subject": SUBJECT,
        "latest": False,
        "purpose": "licence check",
        "basis": "Licensing Act s.5",
        "deadline": c.now() + DAY,
    }
    args.update(kw)
    fn = led(world).requestBySubject(*args.values())
    return c.send(fn, world.broker(requester))


# ------------------------------------------------------------------ the catalog


def test_a_new_category_is_conditional(world: World) -> None:
    entry = rec(world).getCategory(b32("TAX"), TAX_CAT).call()
    assert entry[6:] == (CONDITIONAL, 0, 0)
    assert rec(world).categorySharing(b32("TAX"), TAX_CAT).call() == [
        True, True, CONDITIONAL, 0, 0,
    ]  # fmt: skip
    assert rec(world).categorySharing(b32("TAX"), b32("nope")).call() == [
        False, False, CONDITIONAL, 0, 0,
    ]  # fmt: skip
    assert rec(world).maxDefaultTtl().call() == MAX_TTL


def test_set_sharing_records_it_with_an_event(world: World) -> None:
    c = world.chain
    c.mine(c.now() + 100)
    rc = share(world, UNCONDITIONAL, 30 * DAY, 3)
    assert one_event(rc, c.records, "CategorySharingChanged") == {
        "department": b32("TAX"),
        "category": TAX_CAT,
        "by": world.admin("TAX"),
        "sharing": UNCONDITIONAL,
        "defaultTtl": 30 * DAY,
        "defaultMaxUses": 3,
    }
    entry = rec(world).getCategory(b32("TAX"), TAX_CAT).call()
    assert entry[5:] == (c.now(), UNCONDITIONAL, 30 * DAY, 3)  # updatedAt moved
    assert entry[4] < c.now()  # declaredAt did not
    # Re-declaring the category keeps its sharing.
    c.send(rec(world).declareCategory(TAX_CAT, "new words", h32("s")), world.admin("TAX"))
    assert rec(world).getCategory(b32("TAX"), TAX_CAT).call()[6:] == (UNCONDITIONAL, 30 * DAY, 3)
    assert rec(world).recordSharing(RECORD["TAX"]).call() == [
        b32("TAX"), TAX_CAT, UNCONDITIONAL, 30 * DAY, 3,
    ]  # fmt: skip
    assert rec(world).recordSharing(h32("ghost")).call() == [ZERO, ZERO, CONDITIONAL, 0, 0]


@pytest.mark.parametrize(
    ("sharing", "ttl", "uses"),
    [
        (UNCONDITIONAL, 0, 3),
        (UNCONDITIONAL, DAY, 0),
        (UNCONDITIONAL, 0, 0),
        (UNCONDITIONAL, MAX_TTL + 1, 3),
        (NONE_SHARED, DAY, 0),
        (NONE_SHARED, 0, 1),
        (CONDITIONAL, DAY, 0),
        (CONDITIONAL, 0, 2),
        (CONDITIONAL, MAX_TTL + 1, 2),
    ],
)
def test_set_sharing_refuses_defaults_that_do_not_fit(
    world: World, sharing: int, ttl: int, uses: int
) -> None:
    before = rec(world).getCategory(b32("TAX"), TAX_CAT).call()
    rv = world.chain.reverts(rec(world).setSharing(TAX_CAT, sharing, ttl, uses), world.admin("TAX"))
    assert (rv.name, rv.args) == (
        "RecordRegistryInvalidSharingDefaults", (TAX_CAT, sharing, ttl, uses),
    )  # fmt: skip
    assert rec(world).getCategory(b32("TAX"), TAX_CAT).call() == before


def test_set_sharing_accepts_the_bounds(world: World) -> None:
    share(world, UNCONDITIONAL, MAX_TTL, 2**32 - 1)
    share(world, CONDITIONAL, 1, 1)
    share(world, CONDITIONAL)
    share(world, NONE_SHARED)
    assert rec(world).getCategory(b32("TAX"), TAX_CAT).call()[6:] == (NONE_SHARED, 0, 0)


def test_set_sharing_needs_a_declared_active_category(world: World) -> None:
    c, r = world.chain, rec(world)
    rv = c.reverts(r.setSharing(b32("nope"), UNCONDITIONAL, DAY, 1), world.admin("TAX"))
    assert (rv.name, rv.args) == ("RecordRegistryUnknownCategory", (b32("TAX"), b32("nope")))
    c.send(r.retireCategory(TAX_CAT), world.admin("TAX"))
    rv = c.reverts(r.setSharing(TAX_CAT, UNCONDITIONAL, DAY, 1), world.admin("TAX"))
    assert (rv.name, rv.args) == ("RecordRegistryCategoryRetired", (b32("TAX"), TAX_CAT))
    # A broker key cannot set it, nor another department's admin for TAX's category.
    rv = c.reverts(r.setSharing(TAX_CAT, CONDITIONAL, 0, 0), world.broker("TAX"))
    assert (rv.name, rv.args) == ("RecordRegistryNotActiveAdmin", (world.broker("TAX"),))


# ----------------------------------------------------------- unconditional


def test_unconditional_request_is_granted_by_the_contract_in_the_same_transaction(
    world: World,
) -> None:
    c, f = world.chain, led(world)
    share(world, UNCONDITIONAL, 30 * DAY, 3)
    fn = f.requestAccess(b32("TAX"), RECORD["TAX"], "licence", "Act s.5", c.now() + DAY)
    rc = c.send(fn, world.broker("MARKET"))
    assert event_names(rc, c.ledger) == ["AccessRequested", "AccessApproved"]
    now = c.now()
    assert one_event(rc, c.ledger, "AccessApproved") == {
        "requestId": 1,
        "ownerDepartment": b32("TAX"),
        "requesterDepartment": b32("MARKET"),
        "recordId": RECORD["TAX"],
        "scope": ZERO,
        "expiresAt": now + 30 * DAY,
        "maxUses": 3,
        "approvedBy": c.ledger.address,
    }
    req = f.getRequest(1).call()
    assert (req[8], req[9], req[10], req[13], req[14]) == (
        APPROVED, c.ledger.address, now, now + 30 * DAY, 3,
    )  # fmt: skip
    assert f.grantStatus(1).call() == [True, 0]


def test_unconditional_by_subject_too(world: World) -> None:
    c, f = world.chain, led(world)
    share(world, UNCONDITIONAL, DAY, 1)
    rc = by_subject(world, latest=True)
    assert event_names(rc, c.ledger) == ["AccessRequested", "SubjectRequested", "AccessApproved"]
    assert one_event(rc, c.ledger, "AccessApproved")["approvedBy"] == c.ledger.address
    assert f.grantStatus(1).call() == [True, 0]


def test_unconditional_grants_nothing_to_a_suspended_or_removed_member(
    world: World, ops: Ops
) -> None:
    c, f = world.chain, led(world)
    share(world, UNCONDITIONAL, 30 * DAY, 3)
    # HEALTH is suspended in the base world: its broker cannot even ask.
    for fn in (
        f.requestAccess(b32("TAX"), RECORD["TAX"], "p", "", c.now() + DAY),
        f.requestBySubject(b32("TAX"), TAX_CAT, SUBJECT, False, "p", "", c.now() + DAY),
    ):
        rv = c.reverts(fn, world.broker("HEALTH"))
        assert (rv.name, rv.args) == ("AccessLedgerNotActiveBroker", (world.broker("HEALTH"),))
    assert f.requestCount().call() == 0
    # A member granted unconditionally, then suspended, can use the grant no more.
    by_subject(world, "COURT")
    assert f.grantStatus(1).call() == [True, 0]
    ops.suspend("COURT")
    assert f.grantStatus(1).call() == [False, 6]  # RequesterInactive


def test_changing_the_type_keeps_grants_already_given(world: World) -> None:
    c, f = world.chain, led(world)
    share(world, UNCONDITIONAL, 30 * DAY, 3)
    by_subject(world)
    share(world, NONE_SHARED)
    assert f.grantStatus(1).call() == [True, 0]
    rv = c.reverts(
        f.requestBySubject(b32("TAX"), TAX_CAT, SUBJECT, False, "p", "", c.now() + DAY),
        world.broker("MARKET"),
    )
    assert rv.name == "AccessLedgerCategoryNotShared"
    share(world, CONDITIONAL)
    by_subject(world)
    assert f.getRequest(2).call()[8] == PENDING


# ------------------------------------------------------------------- none


def test_a_category_not_shared_refuses_every_request(world: World) -> None:
    c, f = world.chain, led(world)
    share(world, NONE_SHARED)
    for fn in (
        f.requestAccess(b32("TAX"), RECORD["TAX"], "p", "", c.now() + DAY),
        f.requestBySubject(b32("TAX"), TAX_CAT, SUBJECT, True, "p", "", c.now() + DAY),
    ):
        rv = c.reverts(fn, world.broker("MARKET"))
        assert (rv.name, rv.args) == ("AccessLedgerCategoryNotShared", (b32("TAX"), TAX_CAT))
    assert f.requestCount().call() == 0
    # Another department's categories are not affected.
    fn = f.requestAccess(b32("COURT"), RECORD["COURT"], "p", "", c.now() + DAY)
    c.send(fn, world.broker("MARKET"))
    assert f.getRequest(1).call()[8] == PENDING


# --------------------------------------------------------------- by subject


def test_request_by_subject(world: World) -> None:
    c, f = world.chain, led(world)
    deadline = c.now() + 3 * DAY
    rc = by_subject(world, latest=True, deadline=deadline)
    assert one_event(rc, c.ledger, "AccessRequested") == {
        "requestId": 1,
        "requesterDepartment": b32("MARKET"),
        "ownerDepartment": b32("TAX"),
        "recordId": ZERO,
        "purpose": "licence check",
        "legalBasis": "Licensing Act s.5",
        "deadline": deadline,
        "requestedBy": world.broker("MARKET"),
    }
    assert one_event(rc, c.ledger, "SubjectRequested") == {
        "requestId": 1,
        "ownerDepartment": b32("TAX"),
        "category": TAX_CAT,
        "subjectRef": SUBJECT,
        "latestOnly": True,
    }
    req = f.getRequest(1).call()
    assert req[2] == ZERO and req[8] == PENDING
    assert req[-3:] == (TAX_CAT, SUBJECT, True)
    assert f.requestsForRecord(ZERO).call() == []
    # Decided as any request is: by the owner's admin.
    scope = b"read".ljust(32, b"\0")
    c.send(f.approve(1, scope, c.now() + DAY, 2), world.admin("TAX"))
    assert f.grantStatus(1).call() == [True, 0]


def test_request_by_subject_reverts(world: World) -> None:
    c, f = world.chain, led(world)
    later = c.now() + DAY

    def ask(owner: str, category: bytes, subject: bytes, purpose: str = "p") -> object:
        return f.requestBySubject(b32(owner), category, subject, False, purpose, "", later)

    cases = [
        (ask("TAX", TAX_CAT, ZERO), "AccessLedgerEmptySubject", ()),
        (
            ask("TAX", b32("nope"), SUBJECT),
            "AccessLedgerUnknownCategory",
            (b32("TAX"), b32("nope")),
        ),
        # A category of MARKET's, asked of TAX: TAX never declared it.
        (
            ask("TAX", CATEGORY["MARKET"], SUBJECT),
            "AccessLedgerUnknownCategory",
            (b32("TAX"), CATEGORY["MARKET"]),
        ),
        (ask("MARKET", CATEGORY["MARKET"], SUBJECT), "AccessLedgerSelfRequest", (b32("MARKET"),)),
        (
            ask("HEALTH", CATEGORY["HEALTH"], SUBJECT),
            "AccessLedgerDepartmentNotActive",
            (b32("HEALTH"),),
        ),
        (ask("TAX", TAX_CAT, SUBJECT, ""), "AccessLedgerEmptyPurpose", ()),
    ]
    for fn, error, args in cases:
        rv = c.reverts(fn, world.broker("MARKET"))
        assert (rv.name, rv.args) == (error, args)
    for caller in (world.admin("MARKET"), world.outsider(), SUPERVISOR):
        rv = c.reverts(ask("TAX", TAX_CAT, SUBJECT), caller)
        assert (rv.name, rv.args) == ("AccessLedgerNotActiveBroker", (caller,))
    assert f.requestCount().call() == 0


def test_a_retired_category_can_still_be_asked_by_subject(world: World) -> None:
    """Retiring stops new records; the records already anchored can still be asked for."""
    c = world.chain
    c.send(rec(world).retireCategory(TAX_CAT), world.admin("TAX"))
    by_subject(world)
    assert led(world).getRequest(1).call()[8] == PENDING
