"""Shared fixtures. Tests that need a chain start a real anvil and stop it; tests
that need Kubo, PostgreSQL or geth get one from ``engines.py`` for the session
(skipped, with the reason, where that engine cannot run here)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import engines
from govshare.chain.devnode import AnvilProcess

# anvil's development mnemonic accounts (public test keys, funded on every anvil).
ANVIL_KEYS = [
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
    "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
    "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d4b8d88b0f9aba1a30",
    "0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356",
    "0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97",
    "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6",
]


# What `make test-fast` leaves out: tests that run the console script, broker
# processes, engines or processes killed on purpose. These folders do throughout;
# elsewhere a module says so with ``pytestmark = pytest.mark.integration``.
_INTEGRATION_DIRS = {"integration", "cli", "consortium"}
_TESTS = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        rel = item.path.relative_to(_TESTS)
        if rel.parts[0] in _INTEGRATION_DIRS:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def anvil() -> Iterator[AnvilProcess]:
    """One anvil for the whole session (tests that need isolation use snapshots
    via ``evm_snapshot``/``evm_revert`` or start their own AnvilProcess)."""
    node = AnvilProcess().start()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="session")
def anvil_url(anvil: AnvilProcess) -> str:
    return anvil.url


def pytest_report_header() -> list[str]:
    """Which real engines this run has (or why not), at the top of every run."""
    found = []
    for name, version in (("kubo", engines.kubo_version), ("geth", engines.geth_version)):
        try:
            found.append(f"{name} {version()}")
        except engines.EngineUnavailable as exc:
            found.append(f"no {name} ({exc})")
    try:
        found.append(f"postgresql {engines.find_pg_bin().parent.name}")
    except engines.EngineUnavailable:
        found.append("no postgresql server")
    return ["engines: " + "; ".join(found)]


@pytest.fixture(scope="session")
def kubo_daemon() -> Iterator[engines.KuboDaemon]:
    """A stock-configured Kubo daemon for the session (loopback, no bootstrap, no
    routing). Tests that kill, restart or reconfigure one start their own."""
    try:
        daemon = engines.KuboDaemon()
    except engines.EngineUnavailable as exc:
        pytest.skip(str(exc))
    with engines.running(daemon):
        yield daemon


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[engines.PostgresCluster]:
    """A private PostgreSQL cluster for the session; ``create_database`` gives a
    fresh database (and its SQLAlchemy URL) to each test that needs isolation."""
    try:
        cluster = engines.PostgresCluster()
    except engines.EngineUnavailable as exc:
        pytest.skip(str(exc))
    with engines.running(cluster):
        yield cluster


@pytest.fixture(scope="session")
def geth_dev() -> Iterator[engines.GethDevNode]:
    """``geth --dev --dev.period 1`` for the session (a second Ethereum client beside anvil)."""
    try:
        node = engines.GethDevNode()
    except engines.EngineUnavailable as exc:
        pytest.skip(str(exc))
    with engines.running(node):
        yield node
