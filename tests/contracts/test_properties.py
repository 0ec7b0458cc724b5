"""Property tests: Hypothesis state machines drive the contracts on anvil and compare
every outcome (success, or the exact error) with a small model.

* grants: only the owner's admin ever approves, denies or revokes; denial and revocation
  are final; anchored uses never exceed the quota; grantStatus agrees with the model;
* receipts: a department's receipt batches always form one contiguous range from 1;
* proposals: a proposal executes exactly when the approvals of distinct active
  departments reach the threshold in force, never below it.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from .helpers import DAY, Revert, address_for, b32, h32
from .world import SUPERVISOR, THRESHOLD, Ops, World

SETTINGS = settings(
    max_examples=12,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
PENDING, APPROVED, DENIED, REVOKED = 1, 2, 3, 4
SCOPE = b"read".ljust(32, b"\0")

CURRENT: dict[str, Any] = {}


def callers(w: World) -> dict[str, str]:
    return {
        "TAX admin": w.admin("TAX"),
        "TAX admin 2": w.admin("TAX", 1),
        "TAX broker": w.broker("TAX"),
        "MARKET admin": w.admin("MARKET"),
        "MARKET broker": w.broker("MARKET"),
        "COURT admin": w.admin("COURT"),
        "HEALTH admin": w.admin("HEALTH"),
        "outsider": w.outsider(),
        "supervisor": SUPERVISOR,
    }


CALLER_NAMES = st.sampled_from(
    [
        "TAX admin",
        "TAX admin 2",
        "TAX broker",
        "MARKET admin",
        "MARKET broker",
        "COURT admin",
        "HEALTH admin",
        "outsider",
        "supervisor",
    ]
)


def attempt(w: World, fn: Any, who: str) -> str | None:
    """Send; None on success, else the error name."""
    try:
        w.chain.send(fn, who)
    except Revert as r:
        return r.name
    return None


class _Base(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.w: World = CURRENT["world"]
        self.c = self.w.chain
        self.ops = Ops(self.w)
        self.c.revert_to(self.w.base)
        self.w.base = self.c.snapshot()


# --------------------------------------------------------------------- grants


class GrantMachine(_Base):
    """Requests to TAX from MARKET/COURT; decisions and receipts by arbitrary callers."""

    def __init__(self) -> None:
        super().__init__()
        self.model: dict[int, dict[str, int]] = {}
        self.seq = 0

    @rule(requester=st.sampled_from(["MARKET", "COURT"]))
    def request(self, requester: str) -> None:
        rid = self.ops.request(requester, "TAX")
        self.model[rid] = {"status": PENDING, "max": 0, "used": 0, "expires": 0}

    @rule(
        data=st.data(),
        who=CALLER_NAMES,
        max_uses=st.integers(1, 3),
        expires_in=st.sampled_from([DAY, 9 * DAY]),
    )
    def approve(self, data: st.DataObject, who: str, max_uses: int, expires_in: int) -> None:
        if not self.model:
            return
        rid = data.draw(st.sampled_from(sorted(self.model)))
        expires = self.c.now() + expires_in
        got = attempt(
            self.w,
            self.c.ledger.functions.approve(rid, SCOPE, expires, max_uses),
            callers(self.w)[who],
        )
        m = self.model[rid]
        if not who.startswith("TAX admin"):
            assert got == "AccessLedgerNotOwnerAdmin", (who, got)
        elif m["status"] != PENDING:
            assert got == "AccessLedgerRequestNotPending"
        else:
            assert got is None
            m.update(status=APPROVED, max=max_uses, expires=expires)

    @rule(data=st.data(), who=CALLER_NAMES)
    def deny(self, data: st.DataObject, who: str) -> None:
        if not self.model:
            return
        rid = data.draw(st.sampled_from(sorted(self.model)))
        got = attempt(self.w, self.c.ledger.functions.deny(rid, "no"), callers(self.w)[who])
        m = self.model[rid]
        if not who.startswith("TAX admin"):
            assert got == "AccessLedgerNotOwnerAdmin", (who, got)
        elif m["status"] != PENDING:
            assert got == "AccessLedgerRequestNotPending"
        else:
            assert got is None
            m["status"] = DENIED

    @rule(data=st.data(), who=CALLER_NAMES)
    def revoke(self, data: st.DataObject, who: str) -> None:
        if not self.model:
            return
        rid = data.draw(st.sampled_from(sorted(self.model)))
        got = attempt(self.w, self.c.ledger.functions.revoke(rid, "done"), callers(self.w)[who])
        m = self.model[rid]
        if not who.startswith("TAX admin"):
            assert got == "AccessLedgerNotOwnerAdmin", (who, got)
        elif m["status"] != APPROVED:
            assert got == "AccessLedgerGrantNotApproved"
        else:
            assert got is None
            m["status"] = REVOKED

    @rule(
        data=st.data(),
        who=st.sampled_from(["TAX broker", "MARKET broker", "TAX admin"]),
        uses=st.integers(1, 3),
    )
    def use(self, data: st.DataObject, who: str, uses: int) -> None:
        if not self.model:
            return
        rid = data.draw(st.sampled_from(sorted(self.model)))
        first = self.seq + 1 if who == "TAX broker" else 1
        fn = self.c.ledger.functions.anchorReceipts(
            h32(f"r{first}"), first, first + uses - 1, "m", [rid], [uses]
        )
        got = attempt(self.w, fn, callers(self.w)[who])
        m = self.model[rid]
        if who == "TAX admin":
            assert got == "AccessLedgerNotActiveBroker"
        elif m["status"] not in (APPROVED, REVOKED):
            assert got == "AccessLedgerGrantNotApproved"
        elif who == "MARKET broker":
            assert got == "AccessLedgerGrantNotOwned"
        elif m["used"] + uses > m["max"]:
            assert got == "AccessLedgerQuotaExceeded"
        else:
            assert got is None
            m["used"] += uses
            self.seq += uses

    @rule(seconds=st.sampled_from([3600, 2 * DAY]))
    def warp(self, seconds: int) -> None:
        self.ops.warp(seconds)

    @invariant()
    def chain_agrees_with_model(self) -> None:
        f = self.c.ledger.functions
        now = self.c.now()
        for rid, m in self.model.items():
            req = f.getRequest(rid).call()
            assert req[8] == m["status"]
            assert req[15] == m["used"] <= max(m["max"], 0)
            usable, reason = f.grantStatus(rid).call()
            expect = m["status"] == APPROVED and now < m["expires"] and m["used"] < m["max"]
            assert usable is expect, (rid, m, reason)
        assert f.lastReceiptSeq(b32("TAX")).call() == self.seq


# ------------------------------------------------------------------- receipts


class ReceiptMachine(_Base):
    """Arbitrary receipt ranges from two departments; only contiguous ones land."""

    @initialize()
    def grants(self) -> None:
        self.grant = {"TAX": self.ops.grant("MARKET", "TAX", max_uses=2**32 - 1)}
        self.grant["MARKET"] = self.ops.grant("TAX", "MARKET", max_uses=2**32 - 1)
        self.last = {"TAX": 0, "MARKET": 0}

    @rule(
        dept=st.sampled_from(["TAX", "MARKET"]),
        offset=st.integers(-2, 2),
        length=st.integers(-1, 4),
    )
    def anchor(self, dept: str, offset: int, length: int) -> None:
        first = max(self.last[dept] + 1 + offset, 0)
        last = max(first + length - 1, 0)
        n = last - first + 1
        fn = self.c.ledger.functions.anchorReceipts(
            h32(f"{dept}{first}"),
            first,
            last,
            "m",
            [self.grant[dept]] if n > 0 else [],
            [n] if n > 0 else [],
        )
        got = attempt(self.w, fn, self.w.broker(dept))
        if last < first:
            assert got == "AccessLedgerInvalidReceiptRange"
        elif first != self.last[dept] + 1:
            assert got == "AccessLedgerReceiptRangeNotContiguous"
        else:
            assert got is None
            self.last[dept] = last

    @invariant()
    def ranges_are_contiguous(self) -> None:
        f = self.c.ledger.functions
        for dept in ("TAX", "MARKET"):
            expected_first = 1
            for i in range(1, f.receiptBatchCount(b32(dept)).call() + 1):
                batch = f.getReceiptBatch(b32(dept), i).call()
                assert batch[1] == expected_first and batch[2] >= batch[1]
                expected_first = batch[2] + 1
            assert f.lastReceiptSeq(b32(dept)).call() == expected_first - 1 == self.last[dept]


# ------------------------------------------------------------------ proposals


class ProposalMachine(_Base):
    """Threshold and supervisor proposals approved by arbitrary admins (3 active, 1 suspended)."""

    ACTIVE = ("TAX", "MARKET", "COURT")

    def __init__(self) -> None:
        super().__init__()
        self.threshold = THRESHOLD
        self.props: dict[int, dict[str, Any]] = {}
        self.next_pid = 2  # 1 suspended HEALTH in the base world
        self.supervisors = [SUPERVISOR]
        self.n = 0

    def _executed(self, pid: int) -> None:
        p = self.props[pid]
        p["executed"] = True
        if p["kind"] == "threshold":
            self.threshold = p["value"]
        else:
            self.supervisors.append(p["value"])

    def _expired(self, pid: int) -> bool:
        return self.c.now() >= self.props[pid]["expires"]

    @rule(
        dept=st.sampled_from(["TAX", "MARKET", "COURT", "HEALTH"]),
        kind=st.sampled_from(["threshold", "sup"]),
        value=st.integers(1, 3),
    )
    def propose(self, dept: str, kind: str, value: int) -> None:
        r = self.c.registry.functions
        if kind == "threshold":
            fn, v = r.proposeThreshold(value), value
        else:
            self.n += 1
            v = address_for(f"prop-sup-{self.n}")
            fn = r.proposeAddSupervisor(v)
        got = attempt(self.w, fn, self.w.admin(dept))
        if dept not in self.ACTIVE:
            assert got == "ConsortiumRegistryNotActiveAdmin"
            return
        assert got is None
        pid = self.next_pid
        self.next_pid += 1
        self.props[pid] = {
            "kind": kind,
            "value": v,
            "approvals": {dept},
            "executed": False,
            "expires": self.c.now() + 7 * DAY,
        }
        if self.threshold <= 1:
            self._executed(pid)

    @rule(data=st.data(), dept=st.sampled_from(["TAX", "MARKET", "COURT", "HEALTH"]))
    def approve(self, data: st.DataObject, dept: str) -> None:
        if not self.props:
            return
        pid = data.draw(st.sampled_from(sorted(self.props)))
        p = self.props[pid]
        got = attempt(self.w, self.c.registry.functions.approve(pid), self.w.admin(dept))
        if dept not in self.ACTIVE:
            assert got == "ConsortiumRegistryNotActiveAdmin"
        elif p["executed"]:
            assert got == "ConsortiumRegistryProposalNotPending"
        elif self._expired(pid):
            assert got == "ConsortiumRegistryProposalExpired"
        elif dept in p["approvals"]:
            assert got == "ConsortiumRegistryAlreadyApproved"
        else:
            assert got is None
            p["approvals"].add(dept)
            if len(p["approvals"]) >= self.threshold:
                self._executed(pid)

    @rule(data=st.data())
    def execute(self, data: st.DataObject) -> None:
        if not self.props:
            return
        pid = data.draw(st.sampled_from(sorted(self.props)))
        p = self.props[pid]
        got = attempt(self.w, self.c.registry.functions.execute(pid), self.w.outsider())
        if p["executed"]:
            assert got == "ConsortiumRegistryProposalNotPending"
        elif self._expired(pid):
            assert got == "ConsortiumRegistryProposalExpired"
        elif len(p["approvals"]) < self.threshold:
            assert got == "ConsortiumRegistryThresholdNotReached"
        else:
            assert got is None
            self._executed(pid)

    @rule()
    def warp(self) -> None:
        # Big steps keep every expiry far from "now" (no off-by-a-second ambiguity).
        self.ops.warp(4 * DAY)

    @invariant()
    def chain_agrees_with_model(self) -> None:
        r = self.c.registry.functions
        assert r.threshold().call() == self.threshold
        assert r.supervisors().call() == self.supervisors
        for pid, p in self.props.items():
            status = r.getProposal(pid).call()[2]
            assert status == (2 if p["executed"] else 3 if self._expired(pid) else 1)
            assert r.activeApprovalCount(pid).call() == len(p["approvals"])


@pytest.mark.slow
@pytest.mark.parametrize(
    "machine", [GrantMachine, ReceiptMachine, ProposalMachine], ids=lambda m: m.__name__
)
def test_state_machine(world: World, machine: type[RuleBasedStateMachine]) -> None:
    CURRENT["world"] = world
    try:
        run_state_machine_as_test(machine, settings=SETTINGS)
    finally:
        CURRENT.clear()
