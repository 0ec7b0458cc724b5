"""Making many records and receipts quickly, for the tamper tests and the benchmark.

* :func:`bulk_anchor` (and :func:`bulk_requests`, :func:`bulk_send`) anchors records
  with raw signed transactions, ``per_block`` to a block, mining by hand (anvil's
  automine makes one block per transaction, and anvil 1.7.1 slows with every
  block: 10,000 anchors one by one take minutes).
* :func:`synth_receipts` makes exchange receipts exactly as brokers do — the
  requester's EIP-712 signature of the request, the owner's of the receipt —
  signed with the departments' real (test) broker keys, without any HTTP.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import coincurve
from eth_account.signers.local import LocalAccount

from govshare.audit.receipts import ReceiptLeaf, receipt_digest, request_digest
from govshare.chain.connection import RpcError, node_went_away
from govshare.chain.contracts import AnchorInput, encode_code
from govshare.chain.ledger import Ledger
from govshare.chain.tx import signed_transaction

ANCHOR_GAS = 400_000
REQUEST_GAS = 400_000


def bulk_send(
    ledger: Ledger,
    account: LocalAccount,
    calls: Sequence[tuple[str, bytes, int]],
    per_block: int = 120,
) -> None:
    """Send ``calls`` (to, data, gas) from ``account`` as raw signed transactions,
    ``per_block`` to a block, mining by hand; raises if any is refused or fails."""
    conn = ledger.conn
    nonce = conn.get_transaction_count(account.address, "pending")
    base = int(conn.request("eth_getBlockByNumber", ["latest", False])["baseFeePerGas"], 16)
    fee = max(10 * base, 10**9)
    conn.request("evm_setAutomine", [False])
    hashes: list[str] = []
    try:
        for i in range(0, len(calls), per_block):
            raws = []
            for to, data, gas in calls[i : i + per_block]:
                raw, tx_hash = signed_transaction(
                    account,
                    {
                        "chainId": conn.chain_id,
                        "nonce": nonce,
                        "gas": gas,
                        "to": to,
                        "value": 0,
                        "data": data,
                        "maxFeePerGas": fee,
                        "maxPriorityFeePerGas": 0,
                    },
                )
                raws.append(raw)
                hashes.append(tx_hash)
                nonce += 1
            answers = conn.batch([("eth_sendRawTransaction", ["0x" + r.hex()]) for r in raws])
            bad = [a for a in answers if isinstance(a, RpcError)]
            if bad:
                raise bad[0]
            conn.request("evm_mine", [])
    finally:
        conn.request("evm_setAutomine", [True])
        node_went_away(conn.url)  # the sender's nonce cache is stale now
    for start in range(0, len(hashes), 200):
        chunk = hashes[start : start + 200]
        for h, receipt in zip(
            chunk,
            conn.batch([("eth_getTransactionReceipt", [h]) for h in chunk]),
            strict=True,
        ):
            if not isinstance(receipt, dict) or int(receipt.get("status", "0x0"), 16) != 1:
                raise RuntimeError(f"bulk sending: transaction {h} failed or is missing")


def bulk_anchor(
    ledger: Ledger, account: LocalAccount, items: Sequence[AnchorInput], per_block: int = 120
) -> None:
    """Anchor ``items`` for ``account``'s department, ``per_block`` per block."""
    records = ledger.records
    fn = records._fn("anchor")
    before = records.record_count()
    bulk_send(
        ledger,
        account,
        [(records.address, fn.encode(records._anchor_args(item)), ANCHOR_GAS) for item in items],
        per_block,
    )
    after = records.record_count()
    if after != before + len(items):
        raise RuntimeError(f"bulk anchoring: {after - before} of {len(items)} anchored")


def bulk_requests(
    ledger: Ledger,
    account: LocalAccount,
    owner: str,
    record_ids: Sequence[bytes],
    purpose: str,
    deadline: int,
    per_block: int = 120,
) -> None:
    """``account``'s department asks ``owner`` for each of ``record_ids``."""
    access = ledger.access
    fn = access._fn("requestAccess")
    code = encode_code(owner)
    bulk_send(
        ledger,
        account,
        [
            (access.address, fn.encode([code, rid, purpose, "", deadline]), REQUEST_GAS)
            for rid in record_ids
        ],
        per_block,
    )


def _sign(key: bytes, digest: bytes) -> str:
    sig = coincurve.PrivateKey(key).sign_recoverable(digest, hasher=None)
    return "0x" + (sig[:64] + bytes([sig[64] + 27])).hex()


@dataclass(frozen=True)
class Use:
    """A grant to spend: who, which record (and its anchored CID), from when."""

    grant_id: int
    requester: str
    requester_key: bytes
    record_id: str
    cid: str


def synth_receipts(
    separator: bytes,
    owner: str,
    owner_key: bytes,
    first_seq: int,
    uses: Sequence[Use],
    times: Sequence[int],
) -> list[ReceiptLeaf]:
    """Receipts ``first_seq``, ``first_seq + 1``, … — receipt ``k`` spends
    ``uses[k % len(uses)]`` at ``times[k]`` — signed by both parties."""
    out = []
    for k, at in enumerate(times):
        u = uses[k % len(uses)]
        draft = ReceiptLeaf(
            owner=owner,
            seq=first_seq + k,
            grant_id=u.grant_id,
            record_id=u.record_id,
            requester=u.requester,
            request_hash="0x" + "00" * 32,
            nonce=str(int.from_bytes(os.urandom(16), "big")),
            request_expires_at=at + 60,
            ciphertext_cid=u.cid,
            capsule_hash="0x" + os.urandom(32).hex(),
            issued_at=at,
            requester_signature="",
            owner_signature="",
        )
        req = request_digest(separator, draft)
        signed = ReceiptLeaf(
            **{
                **draft.__dict__,
                "request_hash": "0x" + req.hex(),
                "requester_signature": _sign(u.requester_key, req),
            }
        )
        out.append(
            ReceiptLeaf(
                **{
                    **signed.__dict__,
                    "owner_signature": _sign(owner_key, receipt_digest(separator, signed)),
                }
            )
        )
    return out
