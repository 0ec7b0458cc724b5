"""Fixtures for the chain layer: a connection to the session anvil, fresh funded
accounts (so tests never share a nonce sequence), and freshly deployed consortia."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from govshare.chain.connection import Connection, connect
from govshare.chain.contracts import DepartmentInit
from govshare.chain.deploy import Deployment, deploy
from govshare.chain.ledger import Ledger

CODES = ("TAX", "MARKET", "COURT")


@pytest.fixture(scope="session")
def conn(anvil_url: str) -> Iterator[Connection]:
    with connect(anvil_url) as c:
        yield c


def _funded(conn: Connection) -> LocalAccount:
    acct: LocalAccount = Account.create()
    conn.request("anvil_setBalance", [acct.address, hex(10**21)])
    return acct


@pytest.fixture
def fresh_account(conn: Connection) -> Callable[[], LocalAccount]:
    """Make a new random account with 1000 ETH on the anvil."""
    return lambda: _funded(conn)


@dataclass
class Dept:
    code: str
    broker: LocalAccount
    admin: LocalAccount
    admin2: LocalAccount


@dataclass
class Consortium:
    ledger: Ledger
    deployment: Deployment
    path: Path
    depts: dict[str, Dept]
    supervisor: LocalAccount
    outsider: LocalAccount
    deployer: LocalAccount

    def __getitem__(self, code: str) -> Dept:
        return self.depts[code]


def hpke_key(code: str) -> bytes:
    return (code.encode() * 32)[:32]


def deploy_consortium(
    conn: Connection, directory: Path, codes: tuple[str, ...] = CODES, threshold: int = 2
) -> Consortium:
    depts = {c: Dept(c, _funded(conn), _funded(conn), _funded(conn)) for c in codes}
    founders = [
        DepartmentInit(
            code=c,
            name=f"Department {c}",
            broker=d.broker.address,
            admins=(d.admin.address, d.admin2.address),
            encryption_key=hpke_key(c),
            endpoint=f"http://{c.lower()}.example:8700",
        )
        for c, d in depts.items()
    ]
    supervisor = _funded(conn)
    deployer = _funded(conn)
    path = directory / "deployment.json"
    dep = deploy(conn, deployer, founders, threshold, supervisors=[supervisor.address], path=path)
    ledger = Ledger.from_deployment(path)
    return Consortium(ledger, dep, path, depts, supervisor, _funded(conn), deployer)


@pytest.fixture
def make_consortium(conn: Connection, tmp_path_factory) -> Callable[..., Consortium]:
    """Deploy a fresh consortium (fresh accounts, new contracts) on the session anvil."""

    def make(codes: tuple[str, ...] = CODES, threshold: int = 2) -> Consortium:
        return deploy_consortium(conn, tmp_path_factory.mktemp("deploy"), codes, threshold)

    return make


@pytest.fixture(scope="module")
def consortium(conn: Connection, tmp_path_factory) -> Consortium:
    """One consortium shared by a module's tests (each test uses its own ids)."""
    return deploy_consortium(conn, tmp_path_factory.mktemp("deploy"))
