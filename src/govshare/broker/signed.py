"""Transactions an administrator signs, journaled in the department's broker
database so that the broker can send them again if the chain loses them.

An administrator's consent (approve, deny, revoke) and a requester's reminder or
escalation are signed with the person's own key, in the CLI; the broker never
holds that key. So that such a decision, once acknowledged, survives a chain that
loses its last blocks (a dev chain restored from an older dump, a reorg), the
signed bytes are kept as a one-step operation of the department's outbox before
they go out:

    with department_journal(home, "TAX", ledger) as journal:   # None: no broker here
        tx = send_journaled(journal, ledger, admin, ledger.access.approve_request(...))

The step broadcasts the bytes and waits for the receipt; its result names the
transaction, so the broker's ledger mirror confirms it (``chainwatch.py``) and,
if the chain lost it, reopens the step: the broker sends the *same* signed bytes
again — the same transaction, so it can land once at most. If the signer's nonce
was used by another transaction meanwhile, the decision cannot land as signed,
and the operation fails with a sentence saying to decide again.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from govshare.broker.db import Database, broker_db_path
from govshare.broker.outbox import JSON, Outbox, StepContext, fingerprint
from govshare.chain.ledger import Ledger
from govshare.chain.tx import PendingTx, SignedTx, TxRequest, TxResult
from govshare.errors import ChainRejected, IntegrityError

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

KIND = "signed_tx"
#: Signatures of one decision before giving up on nonces others keep taking.
SIGN_TRIES = 3


def register(outbox: Outbox, ledger: Ledger) -> None:
    """Register the ``signed_tx`` operation kind on ``outbox``."""
    outbox.register(KIND, [("send", lambda ctx: _send(ledger, ctx))])


@contextmanager
def department_journal(home: Path, dept: str, ledger: Ledger) -> Iterator[Outbox | None]:
    """The outbox of ``dept``'s broker database in this govshare home, or None
    when there is none here (an administrator working from another machine: the
    decision is sent without a journal)."""
    if not broker_db_path(home, dept).is_file():
        yield None
        return
    db = Database.for_department(home, dept)
    try:
        outbox = Outbox(db, clock=ledger.clock)
        register(outbox, ledger)
        yield outbox
    finally:
        db.close()


def _payload(signed: SignedTx) -> dict[str, Any]:
    req = signed.request
    return {
        "raw": "0x" + signed.raw.hex(),
        "tx_hash": signed.tx_hash,
        "sender": signed.sender,
        "nonce": signed.nonce,
        "to": req.to,
        "data": "0x" + req.data.hex(),
        "value": req.value,
        "gas": signed.gas,
        "label": req.label,
    }


def _signed(payload: dict[str, Any]) -> SignedTx:
    req = TxRequest(
        to=payload["to"],
        data=bytes.fromhex(str(payload["data"])[2:]),
        value=int(payload["value"]),
        gas=int(payload["gas"]),
        label=str(payload["label"]),
    )
    return SignedTx(
        raw=bytes.fromhex(str(payload["raw"])[2:]),
        tx_hash=str(payload["tx_hash"]),
        sender=str(payload["sender"]),
        nonce=int(payload["nonce"]),
        request=req,
        gas=int(payload["gas"]),
    )


def _send(ledger: Ledger, ctx: StepContext) -> JSON:
    signed = _signed(dict(ctx.payload))
    receipt = ledger.conn.get_receipt(signed.tx_hash)
    if receipt is None:
        try:
            pending = ledger.sender.send_signed(signed)
        except ChainRejected as exc:
            raise IntegrityError(
                f"The signed transaction {signed.tx_hash} ({signed.request.label}) is no "
                "longer on chain and cannot be sent again: its signer has used its nonce "
                "since. Make the decision again.",
                tx_hash=signed.tx_hash,
            ) from exc
    else:
        pending = PendingTx(
            signed.tx_hash, signed.sender, signed.nonce, signed.request, signed.gas, ledger.sender
        )
    tx = pending.wait()
    return {"tx_hash": tx.tx_hash, "block_number": tx.block_number}


def send_journaled(
    journal: Outbox | None, ledger: Ledger, account: LocalAccount, req: TxRequest
) -> TxResult:
    """Sign ``req`` with ``account``, keep it in ``journal`` (if any), send it and
    wait for its receipt; errors are the sender's (a revert, the node away).

    The journaled operation is left pending for the department's broker, whose
    outbox worker completes it (finding the receipt, or sending the same bytes
    again) and so starts watching the transaction. Signed bytes whose nonce
    another transaction took before they went out are withdrawn from the journal
    and the decision is signed again on the node's current nonce (at most
    :data:`SIGN_TRIES` signatures). Without a journal the transaction is simply
    sent."""
    if journal is None:
        return ledger.sender.transact(account, req)
    tries = 0
    while True:
        tries += 1
        signed = ledger.sender.sign(account, req)
        payload = _payload(signed)
        sub = journal.submit(
            KIND,
            signed.tx_hash,
            f"signer:{signed.sender.lower()}",
            fingerprint(payload),
            payload,
            run=False,
        )
        try:
            pending = ledger.sender.send_signed(signed)
        except ChainRejected as exc:
            if not exc.details.get("nonce_used"):
                raise
            # Another sender took the nonce between signing and sending: these
            # bytes can never land. Withdraw them (so the broker does not try) and
            # sign again on the nonce the node counts now — one decision, one entry.
            journal.withdraw(
                sub.operation.id,
                {
                    "code": "nonce_used",
                    "message": f"Not sent: its nonce {signed.nonce} was taken by another "
                    "transaction before it went out.",
                },
            )
            if tries >= SIGN_TRIES:
                raise
            continue
        return pending.wait()
