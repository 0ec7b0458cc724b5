"""The base world the contract tests start from (see conftest.py)."""

from __future__ import annotations

from dataclasses import dataclass

from .helpers import DAY, Chain, address_for, b32, connect, deploy, dept_init, h32

CODES = ("TAX", "MARKET", "COURT", "HEALTH")
ACTIVE = ("TAX", "MARKET", "COURT")
SUSPENDED = "HEALTH"
THRESHOLD = 2
LIFETIME = 7 * DAY
SUPERVISOR = address_for("supervisor")
CATEGORY = {c: b32(f"{c.lower()}.cert") for c in CODES}
RECORD = {c: h32(f"record:{c}") for c in CODES}
CONTENT = {c: h32(f"content:{c}") for c in CODES}


@dataclass
class World:
    chain: Chain
    base: str

    def broker(self, code: str) -> str:
        return address_for(f"{code}:broker")

    def admin(self, code: str, i: int = 0) -> str:
        return address_for(f"{code}:admin{i}")

    def outsider(self) -> str:
        return self.chain.account("outsider")


def build_world(url: str) -> World:
    rpc = connect(url)
    deployer = rpc.accounts[0]
    founders = [dept_init(c, admins=2 if c == "TAX" else 1) for c in CODES]
    registry = deploy(
        rpc, "ConsortiumRegistry", deployer, founders, THRESHOLD, LIFETIME, [SUPERVISOR]
    )
    records = deploy(rpc, "RecordRegistry", deployer, registry.address)
    ledger = deploy(rpc, "AccessLedger", deployer, registry.address, records.address)
    chain = Chain(rpc=rpc, registry=registry, records=records, ledger=ledger)
    for code in CODES:
        chain.account(f"{code}:broker")
        chain.account(f"{code}:admin0")
    chain.account("TAX:admin1")
    chain.account("outsider")
    chain.account("supervisor")
    for code in CODES:
        admin, broker = address_for(f"{code}:admin0"), address_for(f"{code}:broker")
        chain.send(
            records.functions.declareCategory(
                CATEGORY[code], f"{code} certificates", h32("schema")
            ),
            admin,
        )
        chain.send(
            records.functions.anchor(
                RECORD[code],
                CONTENT[code],
                f"bafy-{code}",
                CATEGORY[code],
                h32("subject"),
                b"\0" * 32,
            ),
            broker,
        )
    chain.send(
        registry.functions.proposeSuspendDepartment(b32(SUSPENDED)), address_for("TAX:admin0")
    )
    chain.send(registry.functions.approve(1), address_for("MARKET:admin0"))
    assert registry.functions.departmentStatus(b32(SUSPENDED)).call() == 2
    return World(chain=chain, base=chain.snapshot())


def code(c: str) -> bytes:
    return b32(c)


@dataclass
class Ops:
    """Common multi-step operations on a World, for brevity in tests."""

    w: World

    @property
    def c(self) -> Chain:
        return self.w.chain

    def request(
        self,
        requester: str = "MARKET",
        owner: str = "TAX",
        *,
        record: bytes | None = None,
        deadline_in: int = DAY,
        purpose: str = "business licence check",
        legal_basis: str = "Licensing Act s.5",
    ) -> int:
        rec = RECORD[owner] if record is None else record
        fn = self.c.ledger.functions.requestAccess(
            b32(owner), rec, purpose, legal_basis, self.c.now() + deadline_in
        )
        self.c.send(fn, self.w.broker(requester))
        return int(self.c.ledger.functions.requestCount().call())

    def approve(
        self,
        request_id: int,
        owner: str = "TAX",
        *,
        expires_in: int = 30 * DAY,
        max_uses: int = 5,
        scope: bytes = b"read".ljust(32, b"\0"),
    ) -> object:
        fn = self.c.ledger.functions.approve(request_id, scope, self.c.now() + expires_in, max_uses)
        return self.c.send(fn, self.w.admin(owner))

    def grant(self, requester: str = "MARKET", owner: str = "TAX", **kw: object) -> int:
        rid = self.request(requester, owner)
        self.approve(rid, owner, **kw)  # type: ignore[arg-type]
        return rid

    def receipts(
        self, dept: str, first: int, last: int, grants: list[int], uses: list[int]
    ) -> object:
        fn = self.c.ledger.functions.anchorReceipts(
            h32(f"root:{dept}:{first}"), first, last, f"bafy-manifest-{first}", grants, uses
        )
        return self.c.send(fn, self.w.broker(dept))

    def pass_proposal(
        self, build: object, proposer: str = "TAX", approvers: tuple[str, ...] = ("MARKET",)
    ) -> object:
        """Propose with `proposer`'s admin, approve with each of `approvers`'; last receipt."""
        receipt = self.c.send(build, self.w.admin(proposer))
        pid = int(self.c.registry.functions.proposalCount().call())
        for a in approvers:
            receipt = self.c.send(self.c.registry.functions.approve(pid), self.w.admin(a))
        return receipt

    def suspend(
        self, target: str, proposer: str = "TAX", approvers: tuple[str, ...] = ("MARKET",)
    ) -> None:
        self.pass_proposal(
            self.c.registry.functions.proposeSuspendDepartment(b32(target)), proposer, approvers
        )
        assert self.c.registry.functions.departmentStatus(b32(target)).call() == 2

    def warp(self, seconds: int) -> int:
        """Move chain time forward by `seconds` (mines a block); return the new time."""
        t = self.c.now() + seconds
        self.c.mine(t)
        return t
