"""Trust the chain, not our notes — also after the fact.

A step that sent a transaction and saw it mined records it (``own_txs``, see
:func:`govshare.broker.outbox._watch_tx`). :class:`OwnTxWatch`, a projection of
the broker's ledger mirror, confirms each one when the mirror has read the
transaction's events from the canonical chain. When the chain loses one — a
reorg, or a dev chain restored from a dump older than the transaction — its
operation is reopened at that step and sends again, once (the step is resumed,
so it first looks for its effect on chain): an anchor, a request or a receipt
batch that was acknowledged is back on chain within a tick of the chain's
return. A rewind of the mirror sends the confirmations after the fork back to
"sent", so they are checked again as the mirror re-reads those blocks.

Cost: nothing per tick while all is well but one indexed query; a node call
only for a transaction the mirror should have seen and did not.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.engine import Connection as DbConnection

from govshare.broker.db import OwnTx, OwnTxState
from govshare.chain.connection import RpcError
from govshare.chain.mirror import IndexedEvent, Projection
from govshare.clock import utcnow

if TYPE_CHECKING:
    from govshare.broker.services import BrokerServices

log = logging.getLogger(__name__)

#: Transactions checked against the node per tick, at most.
MAX_CHECKS = 200


class OwnTxWatch(Projection):
    """Confirms this broker's transactions from the mirror; reopens lost ones."""

    def __init__(self, svc: BrokerServices) -> None:
        self.svc = svc

    def apply_rewind(
        self, db: DbConnection, removed: Sequence[IndexedEvent], prepared: Any, fork: int
    ) -> None:
        db.execute(
            update(OwnTx)
            .where(OwnTx.state == OwnTxState.CONFIRMED.value, OwnTx.block_number > fork)
            .values(state=OwnTxState.SENT.value, updated_at=utcnow(self.svc.clock))
        )

    def after_tick(self, checkpoint: int, head: int) -> None:
        with self.svc.db.session(readonly=True) as s:
            suspects = [
                (r.tx_hash, r.operation_id, r.step_index, r.block_number)
                for r in s.scalars(
                    select(OwnTx)
                    .where(
                        OwnTx.state == OwnTxState.SENT.value,
                        or_(OwnTx.block_number <= checkpoint, OwnTx.block_number > head),
                    )
                    .order_by(OwnTx.block_number)
                    .limit(MAX_CHECKS)
                )
            ]
        if not suspects:
            return
        seen = self.svc.mirror.tx_hashes_seen([h for h, *_ in suspects])
        if seen:
            with self.svc.db.session() as s:
                s.execute(
                    update(OwnTx)
                    .where(and_(OwnTx.tx_hash.in_(seen), OwnTx.state == OwnTxState.SENT.value))
                    .values(state=OwnTxState.CONFIRMED.value, updated_at=utcnow(self.svc.clock))
                )
        missing = [x for x in suspects if x[0] not in seen]
        if not missing:
            return
        answers = self.svc.ledger.conn.batch(
            [("eth_getTransactionByHash", [h]) for h, *_ in missing]
        )
        for (tx_hash, op_id, step, block), tx in zip(missing, answers, strict=True):
            if isinstance(tx, RpcError):
                continue  # ask again next tick
            if isinstance(tx, dict) and (
                tx.get("blockNumber") is None or _int(tx.get("blockNumber")) > checkpoint
            ):
                continue  # pending in the pool, or mined where the mirror has not read yet
            # Unknown to the node, or mined without the events it had (it failed
            # when mined again): the chain does not hold what this step did.
            where = "is no longer on chain" if tx is None else "no longer has its effect"
            reopened = self.svc.outbox.reopen(
                op_id,
                step,
                {
                    "code": "chain.dropped",
                    "status": 503,
                    "message": (
                        f"Transaction {tx_hash} (block {block}) {where}: the chain lost "
                        "it (a reorg or a restored chain). It is being sent again."
                    ),
                    "retryable": True,
                },
                dropped_tx=tx_hash,
            )
            if reopened:
                log.warning(
                    "chainwatch: %s's transaction %s (block %d) was lost by the chain; "
                    "operation %s sends again",
                    self.svc.dept,
                    tx_hash,
                    block,
                    op_id,
                )


def _int(value: Any) -> int:
    try:
        return int(str(value), 16)
    except ValueError:
        return -1
