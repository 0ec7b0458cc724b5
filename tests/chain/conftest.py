"""Fixtures for the chain layer: a connection to the session anvil, fresh funded
accounts (so tests never share a nonce sequence), and freshly deployed consortia."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from engines import GETH_DEV_CHAIN_ID, GETH_DEV_KEY
from govshare.chain.connection import Connection, connect
from govshare.chain.contracts import DepartmentInit
from govshare.chain.deploy import Deployment, deploy
from govshare.chain.ledger import Ledger
from govshare.chain.tx import Sender, TxRequest

CODES = ("TAX", "MARKET", "COURT")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A module that sets ``CHAINS = ("anvil", "geth")`` runs each of its tests
    that reach the chain on both clients (the chain layer's conformance suite);
    the others run on anvil only."""
    if "conn" in metafunc.fixturenames:
        chains = getattr(metafunc.module, "CHAINS", ("anvil",))
        metafunc.parametrize("chain", chains, indirect=True, scope="session")


@pytest.fixture(scope="session")
def chain(request: pytest.FixtureRequest) -> str:
    """The client the test runs on: ``anvil``, or ``geth`` (``geth --dev``: a
    block a second, its own txpool, no ``anvil_*`` calls)."""
    return str(getattr(request, "param", "anvil"))


def node_url(request: pytest.FixtureRequest, chain: str) -> str:
    """The session's node of that client."""
    if chain == "geth":
        return str(request.getfixturevalue("geth_dev").url)
    return str(request.getfixturevalue("anvil_url"))


@pytest.fixture(scope="session")
def conn(request: pytest.FixtureRequest, chain: str) -> Iterator[Connection]:
    with connect(node_url(request, chain)) as c:
        yield c


def is_anvil(conn: Connection) -> bool:
    return conn.chain_id != GETH_DEV_CHAIN_ID


def anvil_only(conn: Connection, why: str) -> None:
    """Skip on geth what only a dev tool can do (move the chain's clock)."""
    if not is_anvil(conn):
        pytest.skip(f"anvil only: {why}")


_FUNDING = threading.Lock()
_SENDERS: dict[str, Sender] = {}


def fund(conn: Connection, *addresses: str) -> None:
    """1000 ETH each: ``anvil_setBalance`` on anvil; on geth, transfers from its
    funded developer key (one sender for the session, so its nonces stay in step)."""
    if is_anvil(conn):
        for a in addresses:
            conn.request("anvil_setBalance", [a, hex(10**21)])
        return
    with _FUNDING:
        sender = _SENDERS.setdefault(conn.url, Sender(conn))
        sender.transact_many(
            Account.from_key(GETH_DEV_KEY),
            [TxRequest(to=a, data=b"", value=10**21, label="funding") for a in addresses],
        )


def _funded(conn: Connection) -> LocalAccount:
    acct: LocalAccount = Account.create()
    fund(conn, acct.address)
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
    made = [Account.create() for _ in range(3 * len(codes) + 3)]
    fund(conn, *(a.address for a in made))  # one round of transfers on geth
    depts = {c: Dept(c, made[3 * i], made[3 * i + 1], made[3 * i + 2]) for i, c in enumerate(codes)}
    supervisor, deployer, outsider = made[-3:]
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
    path = directory / "deployment.json"
    dep = deploy(conn, deployer, founders, threshold, supervisors=[supervisor.address], path=path)
    ledger = Ledger.from_deployment(path)
    return Consortium(ledger, dep, path, depts, supervisor, outsider, deployer)


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
