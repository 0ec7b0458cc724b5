"""Fixtures for the contract tests.

The contract tests get their *own* anvil: they revert to snapshots after every test,
which on the shared session anvil would also wipe other suites' deployments.

The base world (built once, restored by snapshot before each test):

    departments  TAX (2 admins), MARKET, COURT: active; HEALTH: suspended
    threshold    2, proposal lifetime 7 days; supervisor SUPERVISOR
    catalog      every department declared one category (CATEGORY[code])
    records      every department anchored one record (RECORD[code])
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from govshare.chain.devnode import AnvilProcess

from .helpers import Chain
from .world import Ops, World, build_world


@pytest.fixture(scope="session")
def contracts_anvil() -> Iterator[AnvilProcess]:
    node = AnvilProcess().start()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="session")
def _world(contracts_anvil: AnvilProcess) -> Iterator[World]:
    world = build_world(contracts_anvil.url)
    yield world
    world.chain.rpc.close()


@pytest.fixture
def world(_world: World) -> Iterator[World]:
    """The base world, restored after the test."""
    yield _world
    _world.chain.revert_to(_world.base)
    _world.base = _world.chain.snapshot()


@pytest.fixture
def chain(world: World) -> Chain:
    return world.chain


@pytest.fixture
def ops(world: World) -> Ops:
    return Ops(world)
