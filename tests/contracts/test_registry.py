"""ConsortiumRegistry: deployment, proposals, threshold, supervisors, self-management, views."""

from __future__ import annotations

import pytest

from .helpers import (
    address_for,
    b32,
    deploy,
    deploy_reverts,
    dept_init,
    event_names,
    one_event,
)
from .world import ACTIVE, LIFETIME, SUPERVISOR, THRESHOLD, Ops, World

ZERO = "0x0000000000000000000000000000000000000000"
ACTIVE_S, SUSPENDED_S, REMOVED_S = 1, 2, 3
K_ADD, K_SUSPEND, K_REMOVE, K_REACTIVATE, K_THRESHOLD, K_ADD_SUP, K_REMOVE_SUP = range(7)
P_PENDING, P_EXECUTED, P_EXPIRED = 1, 2, 3


def reg(world: World):
    return world.chain.registry.functions


# ---------------------------------------------------------------- deployment


def test_deployment_registers_founders_threshold_and_supervisors(world: World) -> None:
    r = reg(world)
    assert sorted(r.activeDepartments().call()) == sorted(b32(c) for c in ACTIVE)
    assert r.activeDepartmentCount().call() == 3
    assert r.allDepartments().call() == [b32(c) for c in ("TAX", "MARKET", "COURT", "HEALTH")]
    assert r.threshold().call() == THRESHOLD
    assert r.proposalLifetime().call() == LIFETIME
    assert r.supervisors().call() == [SUPERVISOR]
    assert r.isSupervisor(SUPERVISOR).call() is True
    d = r.getDepartment(b32("TAX")).call()
    assert d[:6] == (
        b32("TAX"),
        "Department TAX",
        world.broker("TAX"),
        [world.admin("TAX", 0), world.admin("TAX", 1)],
        b"\x01" * 32 + b"TAX",
        "https://tax.example/api",
    )
    assert d[6] == ACTIVE_S and d[7] > 0
    assert r.getDepartment(b32("HEALTH")).call()[6] == SUSPENDED_S
    assert r.departmentOf(world.broker("TAX")).call() == [b32("TAX"), 1]
    assert r.departmentOf(world.admin("TAX", 1)).call() == [b32("TAX"), 2]
    assert r.departmentOf(world.outsider()).call() == [b"\0" * 32, 0]
    # Suspended HEALTH's accounts are not in the allowlist; active ones are, broker first.
    expected = []
    for c in r.activeDepartments().call():
        code = c.rstrip(b"\0").decode()
        expected.append(world.broker(code))
        expected += [world.admin(code, i) for i in range(2 if code == "TAX" else 1)]
    assert r.activeAccounts().call() == expected
    assert world.broker("HEALTH") not in expected


def test_deployment_events(world: World) -> None:
    rpc = world.chain.rpc
    deployer = rpc.accounts[0]
    c = deploy(
        rpc,
        "ConsortiumRegistry",
        deployer,
        [dept_init("AA", prefix="dep-aa")],
        1,
        60,
        [address_for("s")],
    )
    logs = c.events.DepartmentAdded().get_logs(from_block=0)
    assert len(logs) == 1 and logs[0]["args"]["code"] == b32("AA")
    assert logs[0]["args"]["proposalId"] == 0
    assert logs[0]["args"]["admins"] == [address_for("dep-aa:admin0")]
    t = c.events.ThresholdChanged().get_logs(from_block=0)[0]["args"]
    assert (t["previousThreshold"], t["newThreshold"], t["proposalId"]) == (0, 1, 0)
    s = c.events.SupervisorAdded().get_logs(from_block=0)[0]["args"]
    assert (s["account"], s["proposalId"]) == (address_for("s"), 0)


def _bad(base: str = "NEW", **changes: object) -> tuple:
    d = list(dept_init(base, prefix=f"bad-{base}"))
    fields = ["code", "name", "broker", "admins", "key", "endpoint"]
    for k, v in changes.items():
        d[fields.index(k)] = v
    return tuple(d)


@pytest.mark.parametrize(
    ("founders", "threshold", "lifetime", "sups", "error", "args"),
    [
        ([], 1, 60, [], "ConsortiumRegistryNoFounders", ()),
        ([_bad("AA")], 1, 0, [], "ConsortiumRegistryInvalidLifetime", (0,)),
        ([_bad("AA")], 0, 60, [], "ConsortiumRegistryInvalidThreshold", (0, 1)),
        ([_bad("AA")], 2, 60, [], "ConsortiumRegistryInvalidThreshold", (2, 1)),
        # The threshold is checked before any founder is registered.
        ([_bad("AA", name="")], 0, 60, [], "ConsortiumRegistryInvalidThreshold", (0, 1)),
        ([_bad("AA", code=b32("a"))], 1, 60, [], "ConsortiumRegistryInvalidCode", (b32("a"),)),
        ([_bad("AA", name="")], 1, 60, [], "ConsortiumRegistryEmptyName", (b32("AA"),)),
        ([_bad("AA", key=b"")], 1, 60, [], "ConsortiumRegistryEmptyEncryptionKey", (b32("AA"),)),
        ([_bad("AA", endpoint="")], 1, 60, [], "ConsortiumRegistryEmptyEndpoint", (b32("AA"),)),
        ([_bad("AA", admins=[])], 1, 60, [], "ConsortiumRegistryNoAdmins", (b32("AA"),)),
        ([_bad("AA", broker=ZERO)], 1, 60, [], "ConsortiumRegistryZeroAccount", ()),
        ([_bad("AA", admins=[ZERO])], 1, 60, [], "ConsortiumRegistryZeroAccount", ()),
        ([_bad("AA"), _bad("AA")], 1, 60, [], "ConsortiumRegistryDepartmentExists", (b32("AA"),)),
        (
            [_bad("AA", admins=[address_for("x"), address_for("x")])],
            1,
            60,
            [],
            "ConsortiumRegistryAccountInUse",
            (address_for("x"), b32("AA")),
        ),
        (
            [_bad("AA", admins=[address_for("bad-AA:broker")])],
            1,
            60,
            [],
            "ConsortiumRegistryAccountInUse",
            (address_for("bad-AA:broker"), b32("AA")),
        ),
        (
            [_bad("AA"), _bad("BB", broker=address_for("bad-AA:broker"))],
            1,
            60,
            [],
            "ConsortiumRegistryAccountInUse",
            (address_for("bad-AA:broker"), b32("AA")),
        ),
        (
            [_bad("AA")],
            1,
            60,
            [address_for("bad-AA:admin0")],
            "ConsortiumRegistryAccountIsSupervisor",
            (address_for("bad-AA:admin0"),),
        ),
        ([_bad("AA")], 1, 60, [ZERO], "ConsortiumRegistryZeroAccount", ()),
        (
            [_bad("AA")],
            1,
            60,
            [address_for("s"), address_for("s")],
            "ConsortiumRegistryAlreadySupervisor",
            (address_for("s"),),
        ),
    ],
)
def test_constructor_reverts(
    world: World, founders, threshold, lifetime, sups, error, args
) -> None:
    rpc = world.chain.rpc
    r = deploy_reverts(
        rpc, "ConsortiumRegistry", rpc.accounts[0], founders, threshold, lifetime, sups
    )
    assert (r.name, r.args) == (error, args)


@pytest.mark.parametrize(
    ("raw", "ok"),
    [
        (b"AB", True),
        (b"TAX", True),
        (b"A_1", True),
        (b"0123456789ABCDEF", True),
        (b"A", False),
        (b"0123456789ABCDEFG", False),
        (b"tax", False),
        (b"T-X", False),
        (b"T X", False),
        (b"", False),
        (b"\0TAX", False),
        (b"TA\0X", False),
        (b"TAX" + b"\0" * 28 + b"Z", False),
        (b"\xc3\x84B", False),
    ],
)
def test_department_code_format(world: World, raw: bytes, ok: bool) -> None:
    assert reg(world).isValidDepartmentCode(raw.ljust(32, b"\0")).call() is ok


# ------------------------------------------------------------------ proposals


def test_add_department_by_threshold(world: World, ops: Ops) -> None:
    c, r = world.chain, reg(world)
    new = dept_init("LAND", admins=2)
    rc = c.send(r.proposeAddDepartment(new), world.admin("TAX"))
    created = one_event(rc, c.registry, "ProposalCreated")
    assert created["proposalId"] == 2  # 1 was HEALTH's suspension
    assert created["kind"] == K_ADD and created["proposerDepartment"] == b32("TAX")
    assert created["proposer"] == world.admin("TAX") and created["targetDepartment"] == b32("LAND")
    assert created["expiresAt"] == c.now() + LIFETIME
    approved = one_event(rc, c.registry, "ProposalApproved")
    assert approved == {
        "proposalId": 2,
        "department": b32("TAX"),
        "approver": world.admin("TAX"),
        "approvals": 1,
    }
    # Not before the threshold.
    assert r.departmentStatus(b32("LAND")).call() == 0
    p = r.getProposal(2).call()
    assert p[1:4] == (K_ADD, P_PENDING, b32("TAX")) and p[11] == 1
    assert r.proposedDepartment(2).call() == new
    rc = c.send(r.approve(2), world.admin("COURT"))
    assert event_names(rc, c.registry) == [
        "ProposalApproved",
        "DepartmentAdded",
        "ProposalExecuted",
    ]
    added = one_event(rc, c.registry, "DepartmentAdded")
    assert added == {
        "code": b32("LAND"),
        "proposalId": 2,
        "name": new[1],
        "broker": new[2],
        "admins": new[3],
        "encryptionKey": new[4],
        "endpoint": new[5],
    }
    assert one_event(rc, c.registry, "ProposalExecuted") == {
        "proposalId": 2,
        "kind": K_ADD,
        "executor": world.admin("COURT"),
    }
    assert r.departmentStatus(b32("LAND")).call() == ACTIVE_S
    assert r.activeDepartmentCount().call() == 4
    assert r.isActiveBroker(b32("LAND"), new[2]).call() is True
    assert r.isActiveAdmin(b32("LAND"), new[3][1]).call() is True
    assert new[2] in r.activeAccounts().call()
    p = r.getProposal(2).call()
    assert p[2] == P_EXECUTED and p[10] == c.now()
    assert r.proposalApprovals(2).call() == [b32("TAX"), b32("COURT")]
    assert r.hasApproved(2, b32("COURT")).call() is True
    assert r.hasApproved(2, b32("MARKET")).call() is False
    r2 = c.reverts(r.approve(2), world.admin("MARKET"))
    assert (r2.name, r2.args) == ("ConsortiumRegistryProposalNotPending", (2, P_EXECUTED))


@pytest.mark.parametrize(
    ("change", "error", "args"),
    [
        ({"code": b32("TAX")}, "ConsortiumRegistryDepartmentExists", (b32("TAX"),)),
        ({"code": b32("HEALTH")}, "ConsortiumRegistryDepartmentExists", (b32("HEALTH"),)),
        ({"code": b32("x")}, "ConsortiumRegistryInvalidCode", (b32("x"),)),
        ({"name": ""}, "ConsortiumRegistryEmptyName", (b32("NEW"),)),
        ({"admins": []}, "ConsortiumRegistryNoAdmins", (b32("NEW"),)),
        (
            {"broker": address_for("MARKET:broker")},
            "ConsortiumRegistryAccountInUse",
            (address_for("MARKET:broker"), b32("MARKET")),
        ),
        (
            {"admins": [address_for("HEALTH:admin0")]},
            "ConsortiumRegistryAccountInUse",
            (address_for("HEALTH:admin0"), b32("HEALTH")),
        ),
        ({"broker": SUPERVISOR}, "ConsortiumRegistryAccountIsSupervisor", (SUPERVISOR,)),
    ],
)
def test_propose_add_department_validates(world: World, change, error, args) -> None:
    r = world.chain.reverts(
        reg(world).proposeAddDepartment(_bad("NEW", **change)), world.admin("TAX")
    )
    assert (r.name, r.args) == (error, args)


def test_add_proposal_revalidated_on_execution(world: World) -> None:
    c, r = world.chain, reg(world)
    c.send(r.proposeAddDepartment(dept_init("LAND")), world.admin("TAX"))
    c.send(r.proposeAddDepartment(dept_init("LAND", prefix="LAND2")), world.admin("MARKET"))
    c.send(r.approve(2), world.admin("COURT"))  # first executes
    rv = c.reverts(r.approve(3), world.admin("COURT"))
    assert (rv.name, rv.args) == ("ConsortiumRegistryDepartmentExists", (b32("LAND"),))
    assert r.getProposal(3).call()[2] == P_PENDING


def test_approve_reverts(world: World, ops: Ops) -> None:
    c, r = world.chain, reg(world)
    for pid in (0, 99):
        rv = c.reverts(r.approve(pid), world.admin("TAX"))
        assert (rv.name, rv.args) == ("ConsortiumRegistryUnknownProposal", (pid,))
    c.send(r.proposeThreshold(3), world.admin("TAX"))
    rv = c.reverts(r.approve(2), world.admin("TAX", 1))  # same department, other admin
    assert (rv.name, rv.args) == ("ConsortiumRegistryAlreadyApproved", (2, b32("TAX")))
    rv = c.reverts(r.approve(2), world.broker("MARKET"))
    assert (rv.name, rv.args) == ("ConsortiumRegistryNotActiveAdmin", (world.broker("MARKET"),))
    rv = c.reverts(r.approve(2), world.admin("HEALTH"))
    assert (rv.name, rv.args) == ("ConsortiumRegistryNotActiveAdmin", (world.admin("HEALTH"),))


def test_proposal_expires(world: World, ops: Ops) -> None:
    c, r = world.chain, reg(world)
    c.send(r.proposeThreshold(3), world.admin("TAX"))
    expires = r.getProposal(2).call()[9]
    c.mine(expires - 1)
    assert r.getProposal(2).call()[2] == P_PENDING
    c.mine(expires)
    assert r.getProposal(2).call()[2] == P_EXPIRED
    rv = c.reverts(r.approve(2), world.admin("MARKET"))
    assert (rv.name, rv.args) == ("ConsortiumRegistryProposalExpired", (2, expires))
    rv = c.reverts(r.execute(2), world.outsider())
    assert (rv.name, rv.args) == ("ConsortiumRegistryProposalExpired", (2, expires))
    assert r.threshold().call() == THRESHOLD


def test_execute_after_threshold_lowered(world: World, ops: Ops) -> None:
    c, r = world.chain, reg(world)
    ops.pass_proposal(r.proposeThreshold(3))  # TAX + MARKET
    assert r.threshold().call() == 3
    c.send(r.proposeAddSupervisor(address_for("sup2")), world.admin("COURT"))  # pid 3
    c.send(r.approve(3), world.admin("TAX"))  # 2 of 3
    rv = c.reverts(r.execute(3), world.outsider())
    assert (rv.name, rv.args) == ("ConsortiumRegistryThresholdNotReached", (3, 2, 3))
    ops.pass_proposal(r.proposeThreshold(2), "TAX", ("MARKET", "COURT"))
    assert r.threshold().call() == 2
    rc = c.send(r.execute(3), world.outsider())  # anyone may trigger it
    assert one_event(rc, c.registry, "SupervisorAdded") == {
        "account": address_for("sup2"),
        "proposalId": 3,
    }
    assert one_event(rc, c.registry, "ProposalExecuted")["executor"] == world.outsider()


def test_approvals_of_departments_suspended_since_do_not_count(world: World, ops: Ops) -> None:
    c, r = world.chain, reg(world)
    c.send(r.proposeAddSupervisor(address_for("sup2")), world.admin("TAX"))  # pid 2, TAX approved
    ops.suspend("TAX", "MARKET", ("COURT",))  # pid 3
    assert r.activeApprovalCount(2).call() == 0
    assert r.getProposal(2).call()[11] == 1
    rc = c.send(r.approve(2), world.admin("MARKET"))
    assert one_event(rc, c.registry, "ProposalApproved")["approvals"] == 1
    assert r.getProposal(2).call()[2] == P_PENDING
    assert r.isSupervisor(address_for("sup2")).call() is False


def test_suspend_reactivate_remove(world: World, ops: Ops) -> None:
    c, r = world.chain, reg(world)
    rc = ops.pass_proposal(r.proposeSuspendDepartment(b32("COURT")))
    assert one_event(rc, c.registry, "DepartmentSuspended") == {
        "code": b32("COURT"),
        "proposalId": 2,
    }
    assert r.isActiveBroker(b32("COURT"), world.broker("COURT")).call() is False
    assert r.isActiveAdmin(b32("COURT"), world.admin("COURT")).call() is False
    assert world.broker("COURT") not in r.activeAccounts().call()
    # Binding is kept: the account still names its department.
    assert r.departmentOf(world.broker("COURT")).call() == [b32("COURT"), 1]
    rc = ops.pass_proposal(r.proposeReactivateDepartment(b32("COURT")))
    assert one_event(rc, c.registry, "DepartmentReactivated") == {
        "code": b32("COURT"),
        "proposalId": 3,
    }
    assert r.departmentStatus(b32("COURT")).call() == ACTIVE_S
    rc = ops.pass_proposal(r.proposeRemoveDepartment(b32("HEALTH")))  # from suspended
    assert one_event(rc, c.registry, "DepartmentRemoved") == {
        "code": b32("HEALTH"),
        "proposalId": 4,
    }
    rc = ops.pass_proposal(r.proposeRemoveDepartment(b32("COURT")))  # from active
    assert one_event(rc, c.registry, "DepartmentRemoved") == {"code": b32("COURT"), "proposalId": 5}
    assert r.getDepartment(b32("COURT")).call()[6] == REMOVED_S
    assert r.activeDepartmentCount().call() == 2


@pytest.mark.parametrize(
    ("fn", "target", "error", "args"),
    [
        (
            "proposeSuspendDepartment",
            "HEALTH",
            "ConsortiumRegistryInvalidDepartmentStatus",
            (SUSPENDED_S,),
        ),
        ("proposeSuspendDepartment", "NOPE", "ConsortiumRegistryUnknownDepartment", ()),
        ("proposeRemoveDepartment", "NOPE", "ConsortiumRegistryUnknownDepartment", ()),
        (
            "proposeReactivateDepartment",
            "TAX",
            "ConsortiumRegistryInvalidDepartmentStatus",
            (ACTIVE_S,),
        ),
        ("proposeReactivateDepartment", "NOPE", "ConsortiumRegistryUnknownDepartment", ()),
    ],
)
def test_status_proposal_reverts(
    world: World, fn: str, target: str, error: str, args: tuple
) -> None:
    rv = world.chain.reverts(getattr(reg(world), fn)(b32(target)), world.admin("TAX"))
    assert (rv.name, rv.args) == (error, (b32(target), *args))


def test_removed_is_final(world: World, ops: Ops) -> None:
    r = reg(world)
    ops.pass_proposal(r.proposeRemoveDepartment(b32("HEALTH")))
    for fn in (
        "proposeReactivateDepartment",
        "proposeRemoveDepartment",
        "proposeSuspendDepartment",
    ):
        rv = world.chain.reverts(getattr(r, fn)(b32("HEALTH")), world.admin("TAX"))
        assert (rv.name, rv.args) == (
            "ConsortiumRegistryInvalidDepartmentStatus",
            (b32("HEALTH"), REMOVED_S),
        )
    # Neither its code nor its accounts can come back.
    rv = world.chain.reverts(
        r.proposeAddDepartment(dept_init("HEALTH", prefix="h2")), world.admin("TAX")
    )
    assert rv.name == "ConsortiumRegistryDepartmentExists"
    rv = world.chain.reverts(r.addAdmin(world.admin("HEALTH")), world.admin("TAX"))
    assert (rv.name, rv.args) == (
        "ConsortiumRegistryAccountInUse",
        (world.admin("HEALTH"), b32("HEALTH")),
    )


def test_shrinking_below_threshold_clamps_it(world: World, ops: Ops) -> None:
    c, r = world.chain, reg(world)
    ops.pass_proposal(r.proposeThreshold(3))
    rc = ops.pass_proposal(r.proposeSuspendDepartment(b32("COURT")), "TAX", ("MARKET", "COURT"))
    assert event_names(rc, c.registry) == [
        "ProposalApproved",
        "DepartmentSuspended",
        "ThresholdChanged",
        "ProposalExecuted",
    ]
    assert one_event(rc, c.registry, "ThresholdChanged") == {
        "previousThreshold": 3,
        "newThreshold": 2,
        "proposalId": 3,
    }
    assert r.threshold().call() == 2


def test_last_active_department_cannot_go(world: World) -> None:
    rpc = world.chain.rpc
    solo = deploy(rpc, "ConsortiumRegistry", rpc.accounts[0], [dept_init("SOLO")], 1, 60, [])
    admin = address_for("SOLO:admin0")
    world.chain.account("SOLO:admin0")
    for fn in ("proposeSuspendDepartment", "proposeRemoveDepartment"):
        rv = world.chain.reverts(getattr(solo.functions, fn)(b32("SOLO")), admin)
        assert (rv.name, rv.args) == ("ConsortiumRegistryLastActiveDepartment", (b32("SOLO"),))


def test_threshold_bounds_and_revalidation(world: World, ops: Ops) -> None:
    c, r = world.chain, reg(world)
    for bad in (0, 4):
        rv = c.reverts(r.proposeThreshold(bad), world.admin("TAX"))
        assert (rv.name, rv.args) == ("ConsortiumRegistryInvalidThreshold", (bad, 3))
    c.send(r.proposeThreshold(3), world.admin("TAX"))  # pid 2, pending
    ops.suspend("COURT", "MARKET", ("TAX",))  # pid 3: 2 active now
    rv = c.reverts(r.approve(2), world.admin("MARKET"))
    assert (rv.name, rv.args) == ("ConsortiumRegistryInvalidThreshold", (3, 2))
    rc = ops.pass_proposal(r.proposeThreshold(1))
    assert one_event(rc, c.registry, "ThresholdChanged") == {
        "previousThreshold": 2,
        "newThreshold": 1,
        "proposalId": 4,
    }
    # Threshold 1: a proposal executes as it is made.
    rc = c.send(r.proposeReactivateDepartment(b32("COURT")), world.admin("TAX"))
    assert event_names(rc, c.registry)[-3:] == [
        "ProposalApproved",
        "DepartmentReactivated",
        "ProposalExecuted",
    ]


def test_supervisors_by_proposal(world: World, ops: Ops) -> None:
    c, r = world.chain, reg(world)
    new = address_for("sup2")
    rc = ops.pass_proposal(r.proposeAddSupervisor(new))
    assert one_event(rc, c.registry, "SupervisorAdded") == {"account": new, "proposalId": 2}
    assert r.supervisors().call() == [SUPERVISOR, new]
    rc = ops.pass_proposal(r.proposeRemoveSupervisor(SUPERVISOR))
    assert one_event(rc, c.registry, "SupervisorRemoved") == {
        "account": SUPERVISOR,
        "proposalId": 3,
    }
    assert r.supervisors().call() == [new]
    cases = [
        (r.proposeAddSupervisor(ZERO), "ConsortiumRegistryZeroAccount", ()),
        (r.proposeAddSupervisor(new), "ConsortiumRegistryAlreadySupervisor", (new,)),
        (
            r.proposeAddSupervisor(world.broker("COURT")),
            "ConsortiumRegistryAccountInUse",
            (world.broker("COURT"), b32("COURT")),
        ),
        (r.proposeRemoveSupervisor(SUPERVISOR), "ConsortiumRegistryNotSupervisor", (SUPERVISOR,)),
        (r.addAdmin(new), "ConsortiumRegistryAccountIsSupervisor", (new,)),
        (r.setBroker(new), "ConsortiumRegistryAccountIsSupervisor", (new,)),
    ]
    for fn, error, args in cases:
        rv = c.reverts(fn, world.admin("TAX"))
        assert (rv.name, rv.args) == (error, args)


def test_remove_supervisor_revalidated(world: World, ops: Ops) -> None:
    c, r = world.chain, reg(world)
    c.send(r.proposeRemoveSupervisor(SUPERVISOR), world.admin("TAX"))  # pid 2
    ops.pass_proposal(r.proposeRemoveSupervisor(SUPERVISOR))  # pid 3 executes first
    rv = c.reverts(r.approve(2), world.admin("COURT"))
    assert (rv.name, rv.args) == ("ConsortiumRegistryNotSupervisor", (SUPERVISOR,))


def test_proposal_views(world: World) -> None:
    c, r = world.chain, reg(world)
    for fn in (r.getProposal, r.proposalApprovals, r.activeApprovalCount, r.proposedDepartment):
        rv = c.call_reverts(fn(7))
        assert (rv.name, rv.args) == ("ConsortiumRegistryUnknownProposal", (7,))
    rv = c.call_reverts(r.proposedDepartment(1))
    assert (rv.name, rv.args) == ("ConsortiumRegistryWrongProposalKind", (1, K_SUSPEND))
    assert r.proposalCount().call() == 1
    p = r.getProposal(1).call()
    assert p == (
        1,
        K_SUSPEND,
        P_EXECUTED,
        b32("TAX"),
        world.admin("TAX"),
        b32("HEALTH"),
        ZERO,
        0,
        p[8],
        p[8] + LIFETIME,
        p[10],
        2,
    )
    rv = c.call_reverts(r.getDepartment(b32("NOPE")))
    assert (rv.name, rv.args) == ("ConsortiumRegistryUnknownDepartment", (b32("NOPE"),))
    assert r.departmentStatus(b32("NOPE")).call() == 0


@pytest.mark.parametrize(
    ("fn", "args"),
    [
        ("proposeAddDepartment", (dept_init("LAND"),)),
        ("proposeSuspendDepartment", (b32("COURT"),)),
        ("proposeRemoveDepartment", (b32("COURT"),)),
        ("proposeReactivateDepartment", (b32("HEALTH"),)),
        ("proposeThreshold", (1,)),
        ("proposeAddSupervisor", (address_for("sup2"),)),
        ("proposeRemoveSupervisor", (SUPERVISOR,)),
    ],
)
def test_every_proposal_kind_is_created_and_counts_as_approval(
    world: World, fn: str, args: tuple
) -> None:
    c, r = world.chain, reg(world)
    rc = c.send(getattr(r, fn)(*args), world.admin("COURT"))
    assert event_names(rc, c.registry) == ["ProposalCreated", "ProposalApproved"]
    created = one_event(rc, c.registry, "ProposalCreated")
    kind = created["kind"]
    assert created["proposerDepartment"] == b32("COURT")
    rc = c.send(r.approve(2), world.admin("MARKET"))
    assert one_event(rc, c.registry, "ProposalExecuted") == {
        "proposalId": 2,
        "kind": kind,
        "executor": world.admin("MARKET"),
    }


# ----------------------------------------------------------- self-management


def test_set_broker(world: World) -> None:
    c, r = world.chain, reg(world)
    old, new = world.broker("TAX"), c.account("TAX:broker2")
    rc = c.send(r.setBroker(new), world.admin("TAX"))
    assert one_event(rc, c.registry, "BrokerRotated") == {
        "code": b32("TAX"),
        "previousBroker": old,
        "newBroker": new,
    }
    assert r.departmentOf(old).call() == [b"\0" * 32, 0]
    assert r.departmentOf(new).call() == [b32("TAX"), 1]
    assert r.isActiveBroker(b32("TAX"), old).call() is False
    assert r.getDepartment(b32("TAX")).call()[2] == new
    # A former broker of the same department may come back; others' accounts never.
    c.send(r.setBroker(old), world.admin("TAX"))
    cases = [
        (ZERO, "ConsortiumRegistryZeroAccount", ()),
        (old, "ConsortiumRegistryAccountInUse", (old, b32("TAX"))),
        (
            world.admin("TAX", 1),
            "ConsortiumRegistryAccountInUse",
            (world.admin("TAX", 1), b32("TAX")),
        ),
        (
            world.broker("MARKET"),
            "ConsortiumRegistryAccountInUse",
            (world.broker("MARKET"), b32("MARKET")),
        ),
    ]
    for account, error, args in cases:
        rv = c.reverts(r.setBroker(account), world.admin("TAX"))
        assert (rv.name, rv.args) == (error, args)
    # The former broker, now unbound, cannot be taken by another department.
    rv = c.reverts(r.setBroker(new), world.admin("MARKET"))
    assert (rv.name, rv.args) == ("ConsortiumRegistryAccountInUse", (new, b32("TAX")))


def test_set_encryption_key_and_endpoint(world: World) -> None:
    c, r = world.chain, reg(world)
    rc = c.send(r.setEncryptionKey(b"\x02" * 1216), world.admin("TAX", 1))
    assert one_event(rc, c.registry, "EncryptionKeyRotated") == {
        "code": b32("TAX"),
        "by": world.admin("TAX", 1),
        "encryptionKey": b"\x02" * 1216,
    }
    rc = c.send(r.setEndpoint("https://tax2.example"), world.admin("TAX"))
    assert one_event(rc, c.registry, "EndpointChanged") == {
        "code": b32("TAX"),
        "by": world.admin("TAX"),
        "endpoint": "https://tax2.example",
    }
    d = r.getDepartment(b32("TAX")).call()
    assert (d[4], d[5]) == (b"\x02" * 1216, "https://tax2.example")
    assert d[8] == c.now()
    rv = c.reverts(r.setEncryptionKey(b""), world.admin("TAX"))
    assert (rv.name, rv.args) == ("ConsortiumRegistryEmptyEncryptionKey", (b32("TAX"),))
    rv = c.reverts(r.setEndpoint(""), world.admin("TAX"))
    assert (rv.name, rv.args) == ("ConsortiumRegistryEmptyEndpoint", (b32("TAX"),))


def test_add_and_remove_admin(world: World) -> None:
    c, r = world.chain, reg(world)
    new = c.account("MARKET:admin9")
    rc = c.send(r.addAdmin(new), world.admin("MARKET"))
    assert one_event(rc, c.registry, "AdminAdded") == {
        "code": b32("MARKET"),
        "account": new,
        "by": world.admin("MARKET"),
    }
    assert r.isActiveAdmin(b32("MARKET"), new).call() is True
    # The new admin removes the old one (and can act at once).
    rc = c.send(r.removeAdmin(world.admin("MARKET")), new)
    assert one_event(rc, c.registry, "AdminRemoved") == {
        "code": b32("MARKET"),
        "account": world.admin("MARKET"),
        "by": new,
    }
    assert r.getDepartment(b32("MARKET")).call()[3] == [new]
    assert r.departmentOf(world.admin("MARKET")).call() == [b"\0" * 32, 0]
    rv = c.reverts(r.removeAdmin(new), new)
    assert (rv.name, rv.args) == ("ConsortiumRegistryLastAdmin", (b32("MARKET"),))
    rv = c.reverts(r.removeAdmin(world.admin("TAX")), new)
    assert (rv.name, rv.args) == ("ConsortiumRegistryNotAdmin", (b32("MARKET"), world.admin("TAX")))
    rv = c.reverts(r.addAdmin(new), new)
    assert (rv.name, rv.args) == ("ConsortiumRegistryAccountInUse", (new, b32("MARKET")))
    # The removed admin lost its rights.
    rv = c.reverts(r.setEndpoint("x"), world.admin("MARKET"))
    assert (rv.name, rv.args) == ("ConsortiumRegistryNotActiveAdmin", (world.admin("MARKET"),))
    # An admin may remove itself while another remains.
    c.send(r.removeAdmin(world.admin("TAX", 1)), world.admin("TAX", 1))
    assert r.getDepartment(b32("TAX")).call()[3] == [world.admin("TAX")]


def test_is_active_views_check_department_and_role(world: World) -> None:
    r = reg(world)
    assert r.isActiveBroker(b32("TAX"), world.broker("TAX")).call() is True
    assert r.isActiveBroker(b32("MARKET"), world.broker("TAX")).call() is False
    assert r.isActiveBroker(b32("TAX"), world.admin("TAX")).call() is False
    assert r.isActiveAdmin(b32("TAX"), world.broker("TAX")).call() is False
    assert r.isActiveAdmin(b32("HEALTH"), world.admin("HEALTH")).call() is False
    assert r.isActiveBroker(b32("HEALTH"), world.broker("HEALTH")).call() is False
