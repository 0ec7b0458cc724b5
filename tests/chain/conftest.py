"""Fixtures for the chain layer: a connection to the session anvil and fresh,
funded accounts (so tests never share a nonce sequence with each other)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from govshare.chain.connection import Connection, connect


@pytest.fixture(scope="session")
def conn(anvil_url: str) -> Connection:
    return connect(anvil_url)


@pytest.fixture
def fresh_account(conn: Connection) -> Callable[[], LocalAccount]:
    """Make a new random account with 1000 ETH on the anvil."""

    def make() -> LocalAccount:
        acct: LocalAccount = Account.create()
        conn.request("anvil_setBalance", [acct.address, hex(10**21)])
        return acct

    return make
