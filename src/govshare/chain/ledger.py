"""``Ledger``: one object for everything on chain — the connection, the sender,
the three contract wrappers and the deployment they belong to.

    ledger = Ledger.from_deployment(home / "deployment.json")
    ledger.registry.active_departments()                 # ["TAX", "MARKET", "COURT"]
    ledger.records.anchor(broker, rid, sha, cid, "tax-clearance")
    sent = ledger.access.request_access(broker, "TAX", rid, "licence", "art. 5", deadline)
    sent.value                                           # the new request id
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from govshare.chain.abi import CONTRACT_NAMES, load_artifact
from govshare.chain.connection import DEFAULT_TIMEOUT, Connection
from govshare.chain.contracts import AccessLedger, ConsortiumRegistry, RecordRegistry
from govshare.chain.deploy import Deployment, load_deployment
from govshare.chain.events import LogDecoder
from govshare.chain.reverts import RevertDecoder
from govshare.chain.tx import DEFAULT_RECEIPT_TIMEOUT, GasMode, Sender
from govshare.clock import SYSTEM_CLOCK, Clock


class Ledger:
    """The govshare contracts of one deployment, on one node."""

    def __init__(
        self,
        conn: Connection,
        deployment: Deployment,
        *,
        gas: GasMode | None = None,
        receipt_timeout: float = DEFAULT_RECEIPT_TIMEOUT,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.conn = conn
        self.deployment = deployment
        # from_deployment opened the connection, so close() closes it; a connection
        # passed in belongs to the caller.
        self._owns_conn = False
        #: What :meth:`now` reads besides the latest block (tests pass one they move).
        self.clock = clock
        # (clock reading, latest block time) of the last read, for recent_now()
        self._block_seen: tuple[float, int] | None = None
        artifacts = {name: load_artifact(name) for name in CONTRACT_NAMES}
        self.revert_decoder = RevertDecoder(artifacts.values())
        conn.set_revert_decoder(self.revert_decoder)
        self.log_decoder = LogDecoder(
            {deployment.address(name): art for name, art in artifacts.items()}
        )
        mode: Any = gas or deployment.gas or "auto"
        self.sender = Sender(
            conn,
            gas=mode,
            revert_decoder=self.revert_decoder,
            log_decoder=self.log_decoder,
            receipt_timeout=receipt_timeout,
        )
        self.registry = ConsortiumRegistry(
            artifacts["ConsortiumRegistry"],
            deployment.address("ConsortiumRegistry"),
            conn,
            self.sender,
        )
        self.records = RecordRegistry(
            artifacts["RecordRegistry"], deployment.address("RecordRegistry"), conn, self.sender
        )
        self.access = AccessLedger(
            artifacts["AccessLedger"], deployment.address("AccessLedger"), conn, self.sender
        )

    @classmethod
    def from_deployment(
        cls,
        source: str | os.PathLike[str] | Mapping[str, Any] | Deployment,
        rpc_url: str | None = None,
        *,
        verify: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
        gas: GasMode | None = None,
        receipt_timeout: float = DEFAULT_RECEIPT_TIMEOUT,
        clock: Clock = SYSTEM_CLOCK,
    ) -> Ledger:
        """Connect to ``rpc_url`` (default: the URL in the deployment file) and
        check the contracts are there (``verify``)."""
        if isinstance(source, Deployment):
            deployment = source
        else:
            deployment = load_deployment(source, verify=False)
        url = rpc_url or deployment.rpc_url
        conn = Connection(url, timeout=timeout)
        try:
            if verify:
                load_deployment(deployment.to_dict(), conn=conn)
            ledger = cls(conn, deployment, gas=gas, receipt_timeout=receipt_timeout, clock=clock)
        except BaseException:
            conn.close()
            raise
        ledger._owns_conn = True
        return ledger

    def close(self) -> None:
        """Close the connection if :meth:`from_deployment` opened it."""
        if self._owns_conn:
            self.conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def chain_id(self) -> int:
        return self.conn.chain_id

    @property
    def url(self) -> str:
        return self.conn.url

    def block_number(self) -> int:
        return self.conn.block_number()

    def latest_timestamp(self) -> int:
        """The latest block's timestamp (Unix seconds)."""
        block = self.conn.request("eth_getBlockByNumber", ["latest", False]) or {}
        return int(block.get("timestamp", "0x0"), 16)

    def now(self) -> int:
        """The later of the clock (the wall clock unless one was given) and the
        latest block's time: what expiry checks compare against (a quiet dev
        chain's last block can be old)."""
        block_time = self.latest_timestamp()
        self._block_seen = (self.clock.now(), block_time)
        return self.now_at(block_time)

    def recent_now(self, max_age: float = 1.0) -> int:
        """:meth:`now` without a round trip when the latest block's time was read
        less than ``max_age`` seconds ago (by the clock). For a time the reader
        signs and the chain's side checks again (an exchange request's expiry):
        a stale answer there is refused and the caller asks :meth:`now` afresh."""
        seen = self._block_seen
        if seen is not None and 0 <= self.clock.now() - seen[0] < max_age:
            return self.now_at(seen[1])
        return self.now()

    def now_at(self, latest_block_time: int) -> int:
        """:meth:`now`, given the latest block's time read with other calls."""
        return max(int(self.clock.now()), int(latest_block_time))

    def __repr__(self) -> str:
        return f"Ledger({self.conn.url!r}, chain_id={self.chain_id})"
