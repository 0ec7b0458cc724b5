"""Authorisation matrix: every state-changing function × every kind of caller.

Each row names the department the call is about (``own``) and another one (``other``);
callers are their broker and admin accounts, an outsider, a supervisor, and the broker
and admin of the suspended department HEALTH. A cell is either allowed or the exact
custom error; when a role refusal names an account, it must be the caller.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from .batches import anchor_batch, leaf, make_batch
from .helpers import DAY, ERRORS, Revert, address_for, b32, dept_init, h32
from .world import CATEGORY, RECORD, SUPERVISOR, Ops, World

KINDS = (
    "outsider",
    "supervisor",
    "other_broker",
    "other_admin",
    "own_broker",
    "own_admin",
    "suspended_broker",
    "suspended_admin",
)
OK = "ok"
SCOPE = b"read".ljust(32, b"\0")


@dataclass(frozen=True)
class Row:
    name: str
    build: Callable[[World, Ops], Any]
    deny: str  # the error for every caller not listed in `cells`
    cells: dict[str, str] = field(default_factory=dict)
    own: str = "TAX"
    other: str = "MARKET"

    def expected(self, kind: str) -> str:
        return self.cells.get(kind, self.deny)


def _reg(w: World) -> Any:
    return w.chain.registry.functions


def _rec(w: World) -> Any:
    return w.chain.records.functions


def _led(w: World) -> Any:
    return w.chain.ledger.functions


def _pending_proposal(w: World, o: Ops) -> Any:
    w.chain.send(_reg(w).proposeAddSupervisor(address_for("sup-x")), w.admin("COURT"))
    return _reg(w).approve(_reg(w).proposalCount().call())


def _execute(w: World, o: Ops) -> Any:
    w.chain.send(_reg(w).proposeAddSupervisor(address_for("sup-x")), w.admin("COURT"))
    return _reg(w).execute(_reg(w).proposalCount().call())


def _materialise(w: World, o: Ops) -> Any:
    batch = make_batch("TAX", [leaf("authz-0"), leaf("authz-1")])
    return anchor_batch(w.chain, w.broker("TAX"), batch).materialise(1)


def _overdue(w: World, o: Ops) -> int:
    rid = o.request(deadline_in=10)
    o.warp(100)
    return rid


GOV = {"own_admin": OK, "other_admin": OK}
SELF = {"own_admin": OK, "other_admin": OK}  # each acts on its own department
REG_DENY = "ConsortiumRegistryNotActiveAdmin"

ROWS = [
    # ConsortiumRegistry: governance
    Row(
        "proposeAddDepartment",
        lambda w, o: _reg(w).proposeAddDepartment(dept_init("LAND")),
        REG_DENY,
        GOV,
    ),
    Row(
        "proposeSuspendDepartment",
        lambda w, o: _reg(w).proposeSuspendDepartment(b32("COURT")),
        REG_DENY,
        GOV,
    ),
    Row(
        "proposeRemoveDepartment",
        lambda w, o: _reg(w).proposeRemoveDepartment(b32("COURT")),
        REG_DENY,
        GOV,
    ),
    Row(
        "proposeReactivateDepartment",
        lambda w, o: _reg(w).proposeReactivateDepartment(b32("HEALTH")),
        REG_DENY,
        GOV,
    ),
    Row("proposeThreshold", lambda w, o: _reg(w).proposeThreshold(1), REG_DENY, GOV),
    Row(
        "proposeAddSupervisor",
        lambda w, o: _reg(w).proposeAddSupervisor(address_for("sup-y")),
        REG_DENY,
        GOV,
    ),
    Row(
        "proposeRemoveSupervisor",
        lambda w, o: _reg(w).proposeRemoveSupervisor(SUPERVISOR),
        REG_DENY,
        GOV,
    ),
    Row("approve(proposal)", _pending_proposal, REG_DENY, GOV),
    # execute needs no role: every caller meets the same threshold check.
    Row("execute", _execute, "ConsortiumRegistryThresholdNotReached"),
    # ConsortiumRegistry: self-management
    Row("setBroker", lambda w, o: _reg(w).setBroker(w.chain.account("fresh")), REG_DENY, SELF),
    Row("setEncryptionKey", lambda w, o: _reg(w).setEncryptionKey(b"\x09" * 32), REG_DENY, SELF),
    Row("setEndpoint", lambda w, o: _reg(w).setEndpoint("https://new.example"), REG_DENY, SELF),
    Row("addAdmin", lambda w, o: _reg(w).addAdmin(w.chain.account("fresh")), REG_DENY, SELF),
    Row(
        "removeAdmin",
        lambda w, o: _reg(w).removeAdmin(w.admin("TAX", 1)),
        REG_DENY,
        {"own_admin": OK, "other_admin": "ConsortiumRegistryNotAdmin"},
    ),
    # RecordRegistry
    Row(
        "anchor",
        lambda w, o: _rec(w).anchor(
            h32("new"), h32("c"), "cid", CATEGORY["TAX"], h32("s"), RECORD["TAX"]
        ),
        "RecordRegistryNotActiveBroker",
        {"own_broker": OK, "other_broker": "RecordRegistryNotRecordOwner"},
    ),
    Row(
        "anchorBatch",
        lambda w, o: _rec(w).anchorBatch(h32("root"), 3, "manifest"),
        "RecordRegistryNotActiveBroker",
        {"own_broker": OK, "other_broker": OK},
    ),
    # Any active department's broker may materialise a batched record (a requester
    # writes the record it asks for on chain).
    Row(
        "materialise",
        _materialise,
        "RecordRegistryNotActiveBroker",
        {"own_broker": OK, "other_broker": OK},
    ),
    Row(
        "declareCategory",
        lambda w, o: _rec(w).declareCategory(b32("new.cat"), "d", h32("s")),
        "RecordRegistryNotActiveAdmin",
        SELF,
    ),
    Row(
        "retireCategory",
        lambda w, o: _rec(w).retireCategory(CATEGORY["TAX"]),
        "RecordRegistryNotActiveAdmin",
        {"own_admin": OK, "other_admin": "RecordRegistryUnknownCategory"},
    ),
    Row(
        "setSharing",
        lambda w, o: _rec(w).setSharing(CATEGORY["TAX"], 1, DAY, 3),
        "RecordRegistryNotActiveAdmin",
        {"own_admin": OK, "other_admin": "RecordRegistryUnknownCategory"},
    ),
    # AccessLedger: own = the owner TAX, other = the requester MARKET
    Row(
        "requestAccess",
        lambda w, o: _led(w).requestAccess(
            b32("TAX"), RECORD["TAX"], "p", "l", w.chain.now() + DAY
        ),
        "AccessLedgerNotActiveBroker",
        {"other_broker": OK, "own_broker": "AccessLedgerSelfRequest"},
    ),
    Row(
        "requestBySubject",
        lambda w, o: _led(w).requestBySubject(
            b32("TAX"), CATEGORY["TAX"], h32("subject"), False, "p", "l", w.chain.now() + DAY
        ),
        "AccessLedgerNotActiveBroker",
        {"other_broker": OK, "own_broker": "AccessLedgerSelfRequest"},
    ),
    Row(
        "approve(request)",
        lambda w, o: _led(w).approve(o.request(), SCOPE, w.chain.now() + DAY, 1),
        "AccessLedgerNotOwnerAdmin",
        {"own_admin": OK},
    ),
    Row(
        "deny",
        lambda w, o: _led(w).deny(o.request(), "no"),
        "AccessLedgerNotOwnerAdmin",
        {"own_admin": OK},
    ),
    Row(
        "revoke",
        lambda w, o: _led(w).revoke(o.grant(), "done"),
        "AccessLedgerNotOwnerAdmin",
        {"own_admin": OK},
    ),
    Row(
        "anchorReceipts",
        lambda w, o: _led(w).anchorReceipts(h32("r"), 1, 1, "m", [o.grant()], [1]),
        "AccessLedgerNotActiveBroker",
        {"own_broker": OK, "other_broker": "AccessLedgerGrantNotOwned"},
    ),
    Row(
        "remind",
        lambda w, o: _led(w).remind(_overdue(w, o)),
        "AccessLedgerNotRequesterAccount",
        {"other_broker": OK, "other_admin": OK},
    ),
    Row(
        "escalate",
        lambda w, o: _led(w).escalate(_overdue(w, o)),
        "AccessLedgerNotRequesterAccount",
        {"other_broker": OK, "other_admin": OK},
    ),
]


def caller(w: World, row: Row, kind: str) -> str:
    return {
        "outsider": w.outsider(),
        "supervisor": SUPERVISOR,
        "other_broker": w.broker(row.other),
        "other_admin": w.admin(row.other),
        "own_broker": w.broker(row.own),
        "own_admin": w.admin(row.own),
        "suspended_broker": w.broker("HEALTH"),
        "suspended_admin": w.admin("HEALTH"),
    }[kind]


def _account_args(r: Revert) -> list[Any]:
    for sel, (name, _types, names) in ERRORS.items():
        del sel
        if name == r.name:
            return [v for n, v in zip(names, r.args, strict=True) if n == "account"]
    return []


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_matrix(world: World, ops: Ops, row: Row, kind: str) -> None:
    fn = row.build(world, ops)
    who = caller(world, row, kind)
    expected = row.expected(kind)
    if expected == OK:
        world.chain.send(fn, who)
        return
    r = world.chain.reverts(fn, who)
    assert r.name == expected, f"{row.name} by {kind}: {r}"
    if expected == row.deny:  # a role refusal names the caller
        assert all(a == who for a in _account_args(r)), f"error names another account: {r}"


def test_matrix_covers_every_state_changing_function(world: World) -> None:
    covered = {r.name.split("(")[0] for r in ROWS}
    for contract in (world.chain.registry, world.chain.records, world.chain.ledger):
        for entry in contract.abi:
            if entry["type"] == "function" and entry["stateMutability"] not in ("view", "pure"):
                assert entry["name"] in covered, entry["name"]


@pytest.mark.parametrize("fn", ["setEndpoint", "setEncryptionKey", "addAdmin", "setBroker"])
def test_admins_only_change_their_own_department(world: World, ops: Ops, fn: str) -> None:
    before = _reg(world).getDepartment(b32("TAX")).call()
    row = next(r for r in ROWS if r.name == fn)
    world.chain.send(row.build(world, ops), world.admin("MARKET"))
    assert _reg(world).getDepartment(b32("TAX")).call() == before
    assert _reg(world).getDepartment(b32("MARKET")).call() != before


def test_no_broker_or_foreign_admin_can_consent(world: World, ops: Ops) -> None:
    """The issue's acceptance line, stated plainly."""
    rid = ops.request()
    for who in (world.broker("TAX"), world.admin("MARKET"), world.admin("COURT")):
        r = world.chain.reverts(_led(world).approve(rid, SCOPE, world.chain.now() + DAY, 1), who)
        assert (r.name, r.args) == ("AccessLedgerNotOwnerAdmin", (rid, who))
    assert _led(world).getRequest(rid).call()[8] == 1
