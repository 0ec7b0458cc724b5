"""Bounds on what a member can write: deadlines, expiries, texts, CIDs, keys, admins,
receipt batches. Each bound is tested at its edge (accepted) and one past it (the exact
custom error with its arguments), and from the accounts that may write the value."""

from __future__ import annotations

import pytest

from .helpers import DAY, address_for, b32, dept_init, h32
from .world import CATEGORY, CONTENT, RECORD, Ops, World

YEAR = 365 * DAY
DEADLINE_HORIZON = 366 * DAY
EXPIRY_HORIZON = 3653 * DAY
MAX_TEXT = 8192
MAX_CID = 128
MAX_NAME = 256
MAX_ENDPOINT = 2048
MAX_KEY = 2048
MAX_ADMINS = 32
MAX_RECEIPTS = 100_000
SCOPE = b"read".ljust(32, b"\0")


def led(world: World):
    return world.chain.ledger.functions


def at_next_block(world: World) -> int:
    """Pin the next block's time (one second after the latest) and return it: the
    contract measures horizons from the block that includes the transaction."""
    t = world.chain.now() + 1
    world.chain.set_next_timestamp(t)
    return t


def test_horizons_and_limits_are_readable(world: World) -> None:
    f = led(world)
    assert f.deadlineHorizon().call() == DEADLINE_HORIZON
    assert f.expiryHorizon().call() == EXPIRY_HORIZON
    assert f.maxTextLength().call() == MAX_TEXT
    assert f.maxCidLength().call() == MAX_CID
    assert f.maxReceiptsPerBatch().call() == MAX_RECEIPTS
    r = world.chain.records.functions
    assert (r.maxCidLength().call(), r.maxDescriptionLength().call()) == (MAX_CID, MAX_TEXT)
    g = world.chain.registry.functions
    assert g.maxNameLength().call() == MAX_NAME
    assert g.maxEndpointLength().call() == MAX_ENDPOINT
    assert g.maxEncryptionKeyLength().call() == MAX_KEY
    assert g.maxAdmins().call() == MAX_ADMINS
    assert g.maxProposalLifetime().call() == YEAR


# ------------------------------------------------------------------ deadlines


def _request(world: World, deadline: int, purpose: str = "p", legal_basis: str = ""):
    return led(world).requestAccess(b32("TAX"), RECORD["TAX"], purpose, legal_basis, deadline)


@pytest.mark.parametrize("deadline", [2**64 - 1, 2**63, 2**63 - 1, 2**40])
def test_a_deadline_beyond_the_horizon_is_refused(world: World, deadline: int) -> None:
    t = at_next_block(world)
    rv = world.chain.reverts(_request(world, deadline), world.broker("MARKET"))
    assert (rv.name, rv.args) == ("AccessLedgerDeadlineTooFar", (deadline, t + DEADLINE_HORIZON))


def test_a_deadline_at_the_horizon_is_accepted_one_second_more_is_not(world: World) -> None:
    c = world.chain
    t = at_next_block(world)
    rv = c.reverts(_request(world, t + DEADLINE_HORIZON + 1), world.broker("MARKET"))
    assert (rv.name, rv.args) == (
        "AccessLedgerDeadlineTooFar",
        (t + DEADLINE_HORIZON + 1, t + DEADLINE_HORIZON),
    )
    t = at_next_block(world)
    c.send(_request(world, t + DEADLINE_HORIZON), world.broker("MARKET"))
    assert led(world).getRequest(1).call()[5] == t + DEADLINE_HORIZON


@pytest.mark.parametrize("offset", [None, -1, 0])
def test_a_deadline_not_in_the_future_is_refused(world: World, offset: int | None) -> None:
    t = at_next_block(world)
    deadline = 0 if offset is None else t + offset
    rv = world.chain.reverts(_request(world, deadline), world.broker("MARKET"))
    assert (rv.name, rv.args) == ("AccessLedgerInvalidDeadline", (deadline, t))


def test_purpose_and_legal_basis_are_bounded(world: World) -> None:
    c = world.chain
    later = c.now() + DAY
    big = "x" * (MAX_TEXT + 1)
    rv = c.reverts(_request(world, later, purpose=big), world.broker("MARKET"))
    assert (rv.name, rv.args) == ("AccessLedgerPurposeTooLong", (MAX_TEXT + 1, MAX_TEXT))
    rv = c.reverts(_request(world, later, legal_basis=big), world.broker("MARKET"))
    assert (rv.name, rv.args) == ("AccessLedgerLegalBasisTooLong", (MAX_TEXT + 1, MAX_TEXT))
    # the bound is in bytes: 2,048 four-byte characters fill it exactly
    full = "\U0001f600" * (MAX_TEXT // 4)
    # (two full texts fill about 520 storage slots)
    c.send(
        _request(world, later, purpose=full, legal_basis=full), world.broker("MARKET"), 20_000_000
    )
    assert led(world).getRequest(1).call()[3:5] == (full, full)


# ------------------------------------------------------------------- expiries


@pytest.mark.parametrize("expires", [2**64 - 1, 2**63, 2**63 - 1, 2**40])
def test_an_expiry_beyond_the_horizon_is_refused(world: World, ops: Ops, expires: int) -> None:
    rid = ops.request()
    t = at_next_block(world)
    rv = world.chain.reverts(led(world).approve(rid, SCOPE, expires, 1), world.admin("TAX"))
    assert (rv.name, rv.args) == ("AccessLedgerExpiryTooFar", (expires, t + EXPIRY_HORIZON))


def test_an_expiry_at_the_horizon_is_accepted_one_second_more_is_not(
    world: World, ops: Ops
) -> None:
    c, f = world.chain, led(world)
    rid = ops.request()
    t = at_next_block(world)
    rv = c.reverts(f.approve(rid, SCOPE, t + EXPIRY_HORIZON + 1, 1), world.admin("TAX"))
    assert (rv.name, rv.args) == (
        "AccessLedgerExpiryTooFar",
        (t + EXPIRY_HORIZON + 1, t + EXPIRY_HORIZON),
    )
    t = at_next_block(world)
    c.send(f.approve(rid, SCOPE, t + EXPIRY_HORIZON, 2**32 - 1), world.admin("TAX"))
    assert f.getRequest(rid).call()[13:15] == (t + EXPIRY_HORIZON, 2**32 - 1)


@pytest.mark.parametrize("offset", [None, -1, 0])
def test_an_expiry_not_in_the_future_is_refused(world: World, ops: Ops, offset: int | None) -> None:
    rid = ops.request()
    t = at_next_block(world)
    expires = 0 if offset is None else t + offset
    rv = world.chain.reverts(led(world).approve(rid, SCOPE, expires, 1), world.admin("TAX"))
    assert (rv.name, rv.args) == ("AccessLedgerInvalidExpiry", (expires, t))


def test_reasons_are_bounded(world: World, ops: Ops) -> None:
    c, f = world.chain, led(world)
    big = "r" * (MAX_TEXT + 1)
    pending, grant = ops.request(), ops.grant()
    rv = c.reverts(f.deny(pending, big), world.admin("TAX"))
    assert (rv.name, rv.args) == ("AccessLedgerReasonTooLong", (MAX_TEXT + 1, MAX_TEXT))
    rv = c.reverts(f.revoke(grant, big), world.admin("TAX"))
    assert (rv.name, rv.args) == ("AccessLedgerReasonTooLong", (MAX_TEXT + 1, MAX_TEXT))
    c.send(f.deny(pending, "r" * MAX_TEXT), world.admin("TAX"), 10_000_000)
    c.send(f.revoke(grant, "r" * MAX_TEXT), world.admin("TAX"), 10_000_000)


# ------------------------------------------------------------------- receipts


def test_receipt_manifest_cids_and_batch_sizes_are_bounded(world: World, ops: Ops) -> None:
    c, f = world.chain, led(world)
    gid = ops.grant(max_uses=2**32 - 1)
    root = h32("root")
    rv = c.reverts(
        f.anchorReceipts(root, 1, 1, "c" * (MAX_CID + 1), [gid], [1]), world.broker("TAX")
    )
    assert (rv.name, rv.args) == ("AccessLedgerCidTooLong", (MAX_CID + 1, MAX_CID))
    rv = c.reverts(
        f.anchorReceipts(root, 1, MAX_RECEIPTS + 1, "cid", [gid], [MAX_RECEIPTS + 1]),
        world.broker("TAX"),
    )
    assert (rv.name, rv.args) == (
        "AccessLedgerReceiptBatchTooLarge",
        (MAX_RECEIPTS + 1, MAX_RECEIPTS),
    )
    rv = c.reverts(f.anchorReceipts(root, 1, 2**64 - 1, "cid", [gid], [1]), world.broker("TAX"))
    assert (rv.name, rv.args) == ("AccessLedgerReceiptBatchTooLarge", (2**64 - 1, MAX_RECEIPTS))
    c.send(
        f.anchorReceipts(root, 1, MAX_RECEIPTS, "c" * MAX_CID, [gid], [MAX_RECEIPTS]),
        world.broker("TAX"),
    )
    assert f.lastReceiptSeq(b32("TAX")).call() == MAX_RECEIPTS


# -------------------------------------------------------------------- records


def test_record_cids_and_descriptions_are_bounded(world: World) -> None:
    c, r = world.chain, world.chain.records.functions
    broker, admin = world.broker("TAX"), world.admin("TAX")

    def anchor(cid: str, n: int):
        return r.anchor(h32(f"r{n}"), CONTENT["TAX"], cid, CATEGORY["TAX"], h32("s"), b"\0" * 32)

    rv = c.reverts(anchor("c" * (MAX_CID + 1), 1), broker)
    assert (rv.name, rv.args) == ("RecordRegistryCidTooLong", (MAX_CID + 1, MAX_CID))
    c.send(anchor("c" * MAX_CID, 2), broker)
    rv = c.reverts(r.anchorBatch(h32("m"), 1, "c" * (MAX_CID + 1)), broker)
    assert (rv.name, rv.args) == ("RecordRegistryCidTooLong", (MAX_CID + 1, MAX_CID))
    c.send(r.anchorBatch(h32("m"), 1, "c" * MAX_CID), broker)
    cat = CATEGORY["TAX"]
    rv = c.reverts(r.declareCategory(cat, "d" * (MAX_TEXT + 1), h32("x")), admin)
    assert (rv.name, rv.args) == ("RecordRegistryDescriptionTooLong", (cat, MAX_TEXT + 1, MAX_TEXT))
    c.send(r.declareCategory(cat, "d" * MAX_TEXT, h32("x")), admin, 10_000_000)


# ---------------------------------------------------------------- departments


def _init(code: str, **changes: object) -> tuple[object, ...]:
    d = list(dept_init(code))
    fields = ["code", "name", "broker", "admins", "key", "endpoint"]
    for k, v in changes.items():
        d[fields.index(k)] = v
    return tuple(d)


@pytest.mark.parametrize(
    ("changes", "error", "args"),
    [
        ({"name": "n" * (MAX_NAME + 1)}, "ConsortiumRegistryNameTooLong", (MAX_NAME + 1, MAX_NAME)),
        (
            {"endpoint": "https://" + "e" * MAX_ENDPOINT},
            "ConsortiumRegistryEndpointTooLong",
            (MAX_ENDPOINT + 8, MAX_ENDPOINT),
        ),
        (
            {"key": b"k" * (MAX_KEY + 1)},
            "ConsortiumRegistryEncryptionKeyTooLong",
            (MAX_KEY + 1, MAX_KEY),
        ),
        (
            {"admins": [address_for(f"LAND:a{i}") for i in range(MAX_ADMINS + 1)]},
            "ConsortiumRegistryTooManyAdmins",
            (MAX_ADMINS + 1, MAX_ADMINS),
        ),
    ],
)
def test_a_proposed_department_is_bounded(
    world: World, changes: dict[str, object], error: str, args: tuple[int, int]
) -> None:
    rv = world.chain.reverts(
        world.chain.registry.functions.proposeAddDepartment(_init("LAND", **changes)),
        world.admin("TAX"),
    )
    assert (rv.name, rv.args) == (error, (b32("LAND"), *args))


def test_a_department_at_every_bound_is_accepted(world: World) -> None:
    full = _init(
        "LAND",
        name="n" * MAX_NAME,
        endpoint="https://" + "e" * (MAX_ENDPOINT - 8),
        key=b"k" * MAX_KEY,
        admins=[address_for(f"LAND:a{i}") for i in range(MAX_ADMINS)],
    )
    g = world.chain.registry.functions
    world.chain.send(g.proposeAddDepartment(full), world.admin("TAX"), 25_000_000)
    world.chain.send(g.approve(g.proposalCount().call()), world.admin("MARKET"), 25_000_000)
    assert g.departmentStatus(b32("LAND")).call() == 1  # executed: stored at every bound


def test_self_management_is_bounded(world: World) -> None:
    c, g = world.chain, world.chain.registry.functions
    admin, tax = world.admin("MARKET"), b32("MARKET")
    rv = c.reverts(g.setEndpoint("h" * (MAX_ENDPOINT + 1)), admin)
    assert (rv.name, rv.args) == (
        "ConsortiumRegistryEndpointTooLong",
        (tax, MAX_ENDPOINT + 1, MAX_ENDPOINT),
    )
    rv = c.reverts(g.setEncryptionKey(b"k" * (MAX_KEY + 1)), admin)
    assert (rv.name, rv.args) == (
        "ConsortiumRegistryEncryptionKeyTooLong",
        (tax, MAX_KEY + 1, MAX_KEY),
    )
    c.send(g.setEndpoint("h" * MAX_ENDPOINT), admin, 10_000_000)
    c.send(g.setEncryptionKey(b"k" * MAX_KEY), admin, 10_000_000)
    for i in range(MAX_ADMINS - 1):  # MARKET has one admin already
        c.send(g.addAdmin(address_for(f"MARKET:extra{i}")), admin)
    extra = address_for("MARKET:one-too-many")
    rv = c.reverts(g.addAdmin(extra), admin)
    assert (rv.name, rv.args) == (
        "ConsortiumRegistryTooManyAdmins",
        (tax, MAX_ADMINS + 1, MAX_ADMINS),
    )


@pytest.mark.parametrize("lifetime", [YEAR + 1, 2**64 - 1])
def test_the_proposal_lifetime_is_bounded(world: World, lifetime: int) -> None:
    from .helpers import deploy_reverts

    rpc = world.chain.rpc
    rv = deploy_reverts(
        rpc, "ConsortiumRegistry", rpc.accounts[0], [dept_init("AA")], 1, lifetime, []
    )
    assert (rv.name, rv.args) == ("ConsortiumRegistryInvalidLifetime", (lifetime,))
