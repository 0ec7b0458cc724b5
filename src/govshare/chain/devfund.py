"""Gas money on the local dev chain.

anvil charges gas (EIP-1559) while a Besu consortium runs free-gas. On the dev
chain, govshare tops up department accounts from anvil's first development
account (the *faucet*, a well-known public test key) so that brokers and
administrators can transact. On any other chain this does nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from govshare.chain.connection import Connection
from govshare.chain.devnode import DEFAULT_CHAIN_ID
from govshare.chain.tx import Sender, TxRequest
from govshare.crypto.keys import local_account

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

# anvil's account 0 for the mnemonic "test test ... junk": public knowledge, dev only.
FAUCET_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
TOP_UP_WEI = 100 * 10**18
MIN_BALANCE_WEI = 10 * 10**18


def faucet() -> LocalAccount:
    return local_account(FAUCET_KEY)


def is_dev_chain(conn: Connection) -> bool:
    """The anvil dev chain: its chain id, and the faucet holds funds."""
    if conn.chain_id != DEFAULT_CHAIN_ID:
        return False
    return conn.get_balance(faucet().address) > TOP_UP_WEI


def fund_if_dev(conn: Connection, sender: Sender, addresses: Iterable[str]) -> list[str]:
    """Top up each address below ``MIN_BALANCE_WEI`` on the dev chain; returns
    the addresses funded (none on a real network)."""
    if not is_dev_chain(conn):
        return []
    need = [a for a in dict.fromkeys(addresses) if conn.get_balance(a) < MIN_BALANCE_WEI]
    reqs = [TxRequest(to=a, data=b"", value=TOP_UP_WEI, label=f"funding {a}") for a in need]
    if reqs:
        sender.transact_many(faucet(), reqs)
    return need
