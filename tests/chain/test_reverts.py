"""Reverts of the real contracts decode to the exact custom error, with its
arguments, as ContractReverted or Unauthorized with a readable sentence."""

from __future__ import annotations

import os

import pytest
from eth_abi import encode
from eth_utils import keccak

from govshare.chain.abi import load_artifact
from govshare.chain.reverts import SENTENCES, RevertDecoder, is_auth_error
from govshare.errors import ContractReverted, Unauthorized

from .conftest import Consortium

#: Part of the chain layer's conformance suite: on anvil and on geth --dev.
CHAINS = ("anvil", "geth")


@pytest.fixture(scope="module")
def record(consortium: Consortium) -> bytes:
    L, tax = consortium.ledger, consortium["TAX"]
    L.records.declare_category(tax.admin, "deed", "Deeds")
    r = os.urandom(32)
    L.records.anchor(tax.broker, r, os.urandom(32), "bafy-deed", "deed")
    return r


def test_broker_key_cannot_approve(consortium: Consortium, record: bytes) -> None:
    L, tax, market = consortium.ledger, consortium["TAX"], consortium["MARKET"]
    now = L.latest_timestamp()
    req = L.access.request_access(market.broker, "TAX", record, "p", "", now + 600).value
    for who in (tax.broker, market.admin, consortium.outsider):
        with pytest.raises(Unauthorized) as err:
            L.access.approve(who, req, expires_at=now + 900, max_uses=1)
        e = err.value
        assert e.reason == "AccessLedgerNotOwnerAdmin"
        assert e.revert_args == {"requestId": req, "account": who.address}
        assert e.code == "chain.unauthorized" and e.status == 403
        assert e.code_for_reason == "chain.unauthorized.AccessLedgerNotOwnerAdmin"
        assert e.message == (
            "Only an administrator of the department that owns the record can decide on "
            f"request {req}; {who.address} is not one."
        )


def test_contract_errors_with_args(consortium: Consortium, record: bytes) -> None:
    L, tax, market = consortium.ledger, consortium["TAX"], consortium["MARKET"]
    now = L.latest_timestamp()
    cases = [
        (
            lambda: L.records.anchor(tax.broker, record, os.urandom(32), "b", "deed"),
            ContractReverted,
            "RecordRegistryRecordExists",
            {"recordId": "0x" + record.hex()},
        ),
        (
            lambda: L.records.anchor(market.broker, os.urandom(32), os.urandom(32), "b", "deed"),
            ContractReverted,
            "RecordRegistryUnknownCategory",
            {"department": "MARKET", "category": "deed"},
        ),
        (
            lambda: L.records.anchor(tax.admin, os.urandom(32), os.urandom(32), "b", "deed"),
            Unauthorized,
            "RecordRegistryNotActiveBroker",
            {"account": tax.admin.address},
        ),
        (
            lambda: L.access.request_access(tax.broker, "TAX", record, "p", "", now + 60),
            ContractReverted,
            "AccessLedgerSelfRequest",
            {"department": "TAX"},
        ),
        (
            lambda: L.access.request_access(market.broker, "COURT", record, "p", "", now + 60),
            ContractReverted,
            "AccessLedgerRecordNotOwned",
            {"recordId": "0x" + record.hex(), "ownerDepartment": "COURT", "actualOwner": "TAX"},
        ),
        (
            lambda: L.access.request_access(market.broker, "TAX", record, "p", "", now - 10),
            ContractReverted,
            "AccessLedgerInvalidDeadline",
            None,
        ),
        (
            lambda: L.access.deny(tax.admin, 10**6, "x"),
            ContractReverted,
            "AccessLedgerUnknownRequest",
            {"requestId": 10**6},
        ),
        (
            lambda: L.registry.propose_threshold(tax.admin, 9),
            ContractReverted,
            "ConsortiumRegistryInvalidThreshold",
            {"threshold": 9, "activeCount": 3},
        ),
        (
            lambda: L.registry.get_department("NOPE"),
            ContractReverted,
            "ConsortiumRegistryUnknownDepartment",
            {"code": "NOPE"},
        ),
    ]
    for fn, cls, reason, args in cases:
        with pytest.raises(cls) as err:
            fn()
        assert type(err.value) is cls, reason
        assert err.value.reason == reason
        if args is not None:
            assert err.value.revert_args == args, reason
        assert reason not in err.value.message  # a sentence, not the error's name
        assert err.value.message.endswith(".")


def test_enum_and_time_arguments_read_well(consortium: Consortium, record: bytes) -> None:
    L, tax, market = consortium.ledger, consortium["TAX"], consortium["MARKET"]
    now = L.latest_timestamp()
    req = L.access.request_access(market.broker, "TAX", record, "p", "", now + 600).value
    L.access.deny(tax.admin, req, "no")
    with pytest.raises(ContractReverted) as err:
        L.access.deny(tax.admin, req, "again")
    assert err.value.reason == "AccessLedgerRequestNotPending"
    assert err.value.revert_args == {"requestId": req, "status": 3}
    assert err.value.message == f"Request {req} is already denied; it is no longer pending."
    with pytest.raises(ContractReverted) as err:
        L.access.request_access(market.broker, "TAX", record, "p", "", 1000)
    assert "1970-01-01 00:16:40 UTC" in err.value.message


def test_mined_transaction_that_reverts_is_decoded(consortium: Consortium, record: bytes):
    """With a fixed gas limit nothing is estimated, so the revert happens in a
    mined block: the receipt's failure is replayed and decoded the same way."""
    L, tax = consortium.ledger, consortium["TAX"]
    args = (record, os.urandom(32), "b", b"deed".ljust(32, b"\0"), b"\0" * 32, b"\0" * 32)
    req = L.records._request("anchor", *args, gas=300_000)
    with pytest.raises(ContractReverted) as err:
        L.sender.transact(tax.broker, req)
    assert err.value.reason == "RecordRegistryRecordExists"
    assert err.value.details["tx_hash"].startswith("0x")
    # The failed transaction used its nonce; the next one follows without a gap.
    L.records.anchor(tax.broker, os.urandom(32), os.urandom(32), "b", "deed")


def test_error_string_panic_and_unknown() -> None:
    dec = RevertDecoder()
    sel = keccak(text="Error(string)")[:4]
    e = dec(sel + encode(["string"], ["not allowed"]), "X.f", None)
    assert (e.reason, e.message) == ("Error", "The contract refused X.f: not allowed")
    e = dec(keccak(text="Panic(uint256)")[:4] + encode(["uint256"], [0x11]), "X.f", None)
    assert e.reason == "Panic" and "overflow" in e.message
    e = dec(b"\xde\xad\xbe\xef", "X.f", None)
    assert e.reason == "0xdeadbeef" and type(e) is ContractReverted
    e = dec(b"", "X.f", None)
    assert e.reason == "" and "without giving a reason" in e.message


def test_every_custom_error_has_a_sentence() -> None:
    for name in ("ConsortiumRegistry", "RecordRegistry", "AccessLedger"):
        for codec in load_artifact(name).errors.values():
            if codec.name.startswith(name):
                assert codec.name in SENTENCES, codec.name
                fields = {p["name"] for p in codec.inputs}
                # Every placeholder is an argument of the error (or the sender).
                for ph in __import__("re").findall(r"{(\w+)", SENTENCES[codec.name]):
                    assert ph in fields or ph == "account", (codec.name, ph)


def test_auth_errors() -> None:
    assert is_auth_error("AccessLedgerNotOwnerAdmin")
    assert is_auth_error("ConsortiumRegistryNotAdmin")
    assert is_auth_error("SomethingUnauthorized")
    assert not is_auth_error("AccessLedgerRequestNotPending")
    assert not is_auth_error("ConsortiumRegistryNotSupervisor")
