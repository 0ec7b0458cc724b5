"""The exchange's EIP-712 hashing, done directly for speed, is byte for byte
what eth-account's ``encode_typed_data`` makes, on random and edge values."""

from __future__ import annotations

import gc
import os
import random

import coincurve
import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data

from govshare.broker.exchange import (
    RECEIPT_TYPES,
    REQUEST_TYPES,
    ExchangeDomain,
    ExchangeReceipt,
    ExchangeRequest,
)

DOMAIN = ExchangeDomain(31337, "0x5FbDB2315678afecb367f032d93F642f64180aa3")
EDGES = [0, 1, 2**64, 2**128 - 1, 2**256 - 1]


def _requests() -> list[ExchangeRequest]:
    rnd = random.Random(7)
    out = [
        ExchangeRequest("TAX", "MARKET", g, os.urandom(32), n, e)
        for g in EDGES
        for n, e in [(EDGES[0], EDGES[-1]), (EDGES[-1], EDGES[2])]
    ]
    for _ in range(50):
        out.append(
            ExchangeRequest(
                rnd.choice(["TAX", "MARKET", "A1", "COURT_OF_APPEAL"]),
                rnd.choice(["TAX", "B_2"]),
                rnd.getrandbits(rnd.choice([8, 64, 256])),
                rnd.randbytes(32),
                rnd.getrandbits(128),
                rnd.getrandbits(40),
            )
        )
    return out


@pytest.mark.parametrize("req", _requests())
def test_request_hash_is_eth_accounts(req: ExchangeRequest) -> None:
    assert req.signable(DOMAIN) == encode_typed_data(DOMAIN.data(), REQUEST_TYPES, req.message())


@pytest.mark.parametrize(
    "cid", ["bafkreigh2akiscaildc", "", "Qm" + "x" * 44, "bafy\u00e9\u4e2d", "a" * 5000]
)
@pytest.mark.parametrize("seq,issued", [(1, 0), (2**63 - 1, 2**40), (2**256 - 1, 2**256 - 1)])
def test_receipt_hash_is_eth_accounts(cid: str, seq: int, issued: int) -> None:
    r = ExchangeReceipt(os.urandom(32), cid, os.urandom(32), seq, issued)
    assert r.signable(DOMAIN) == encode_typed_data(DOMAIN.data(), RECEIPT_TYPES, r.message())


def test_out_of_range_values_are_refused_as_before() -> None:
    bad = ExchangeRequest("TAX", "MARKET", 2**256, os.urandom(32), 1, 1)
    with pytest.raises(Exception, match="256"):  # eth-account's own refusal
        bad.signable(DOMAIN)


def test_a_signature_recovers_to_its_signer() -> None:
    acct = Account.create()
    req = _requests()[-1]
    assert req.signer(DOMAIN, req.sign(acct, DOMAIN)) == acct.address
    rcpt = ExchangeReceipt(req.digest(DOMAIN), "bafy", os.urandom(32), 3, 1_700_000_000)
    assert rcpt.signer(DOMAIN, rcpt.sign(acct, DOMAIN)) == acct.address


@pytest.mark.parametrize("req", _requests()[-20:])
def test_signatures_are_eth_accounts_byte_for_byte(req: ExchangeRequest) -> None:
    """The direct coincurve signing gives exactly eth-account's signature (RFC 6979
    is deterministic; low-s; ``v`` 27 or 28), for requests and receipts."""
    acct = Account.create()
    assert req.sign(acct, DOMAIN) == bytes(acct.sign_message(req.signable(DOMAIN)).signature)
    rcpt = ExchangeReceipt(req.digest(DOMAIN), "bafy", os.urandom(32), 9, 1_700_000_000)
    assert rcpt.sign(acct, DOMAIN) == bytes(acct.sign_message(rcpt.signable(DOMAIN)).signature)
    del acct  # and no copy of the key is left behind
    gc.collect()
    assert not [o for o in gc.get_objects() if isinstance(o, coincurve.PrivateKey)]
