"""The chain layer: connection, contract wrappers, transaction sending, deploy,
ledger mirror, local dev node.

Public API (imported lazily, so ``govshare.chain.devnode`` stays cheap to load)::

    Ledger.from_deployment(path_or_dict, rpc_url=None)   the facade: .registry .records .access
    deploy(rpc, deployer, founders, threshold, path=...)  -> Deployment
    load_deployment(path, rpc_url=None, verify=True)      -> Deployment (checks the chain)
    DepartmentInit, Department, Record, AccessRequest, GrantStatus, Proposal, ...
    Sender, TxRequest, TxResult, PendingTx                 sending (nonces, gas, receipts)
    Mirror                                                 the ledger mirror: events → SQL
    DevChain, AnvilProcess                                 the local dev chain
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Connection": "connection",
    "connect": "connection",
    "Ledger": "ledger",
    "Deployment": "deploy",
    "deploy": "deploy",
    "load_deployment": "deploy",
    "verify_deployment": "deploy",
    "Sender": "tx",
    "TxRequest": "tx",
    "TxResult": "tx",
    "PendingTx": "tx",
    "Event": "tx",
    "Mirror": "mirror",
    "AccessLedger": "contracts",
    "AccessRequest": "contracts",
    "AccountBinding": "contracts",
    "AccountRole": "contracts",
    "AnchorInput": "contracts",
    "Category": "contracts",
    "ConsortiumRegistry": "contracts",
    "Department": "contracts",
    "DepartmentInit": "contracts",
    "DepartmentStatus": "contracts",
    "Eip712Domain": "contracts",
    "GrantReason": "contracts",
    "GrantStatus": "contracts",
    "Proposal": "contracts",
    "ProposalKind": "contracts",
    "ProposalStatus": "contracts",
    "ReceiptBatch": "contracts",
    "Record": "contracts",
    "RecordBatch": "contracts",
    "RecordRegistry": "contracts",
    "RequestStatus": "contracts",
    "Sent": "contracts",
    "encode_code": "contracts",
    "decode_code": "contracts",
    "DevChain": "devnode",
    "AnvilProcess": "devnode",
}

__all__ = [
    "AccessLedger",
    "AccessRequest",
    "AccountBinding",
    "AccountRole",
    "AnchorInput",
    "AnvilProcess",
    "Category",
    "Connection",
    "ConsortiumRegistry",
    "Department",
    "DepartmentInit",
    "DepartmentStatus",
    "Deployment",
    "DevChain",
    "Eip712Domain",
    "Event",
    "GrantReason",
    "GrantStatus",
    "Ledger",
    "Mirror",
    "PendingTx",
    "Proposal",
    "ProposalKind",
    "ProposalStatus",
    "ReceiptBatch",
    "Record",
    "RecordBatch",
    "RecordRegistry",
    "RequestStatus",
    "Sender",
    "Sent",
    "TxRequest",
    "TxResult",
    "connect",
    "decode_code",
    "deploy",
    "encode_code",
    "load_deployment",
    "verify_deployment",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'govshare.chain' has no attribute {name!r}")
    return getattr(importlib.import_module(f"govshare.chain.{module}"), name)


if TYPE_CHECKING:  # pragma: no cover
    from govshare.chain.connection import Connection, connect
    from govshare.chain.contracts import (
        AccessLedger,
        AccessRequest,
        AccountBinding,
        AccountRole,
        AnchorInput,
        Category,
        ConsortiumRegistry,
        Department,
        DepartmentInit,
        DepartmentStatus,
        Eip712Domain,
        GrantReason,
        GrantStatus,
        Proposal,
        ProposalKind,
        ProposalStatus,
        ReceiptBatch,
        Record,
        RecordBatch,
        RecordRegistry,
        RequestStatus,
        Sent,
        decode_code,
        encode_code,
    )
    from govshare.chain.deploy import Deployment, deploy, load_deployment, verify_deployment
    from govshare.chain.devnode import AnvilProcess, DevChain
    from govshare.chain.ledger import Ledger
    from govshare.chain.mirror import Mirror
    from govshare.chain.tx import Event, PendingTx, Sender, TxRequest, TxResult
