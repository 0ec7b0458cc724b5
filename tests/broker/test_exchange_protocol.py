"""The exchange protocol's signed messages: EIP-712 digests checked against an
independent encoding of the spec, signatures, parsing, receipt headers."""

from __future__ import annotations

import time

import pytest
from eth_account import Account
from eth_utils import keccak

from govshare.broker.errors import BadSignature, ExchangeMalformed, ReceiptInvalid
from govshare.broker.exchange import (
    H_RECEIPT_SEQ,
    H_RECEIPT_SIGNATURE,
    ExchangeDomain,
    ExchangeReceipt,
    ExchangeRequest,
    capsule_hash,
    decode_capsule,
    encode_capsule,
    parse_signature,
)

DOMAIN = ExchangeDomain(31337, "0x5FbDB2315678afecb367f032d93F642f64180aa3")
RID = bytes.fromhex("ab" * 32)


def u256(n: int) -> bytes:
    return n.to_bytes(32, "big")


def code32(code: str) -> bytes:
    return code.encode().ljust(32, b"\0")


def spec_domain_separator(d: ExchangeDomain) -> bytes:
    typehash = keccak(
        b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
    )
    return keccak(
        typehash
        + keccak(b"govshare")
        + keccak(b"1")
        + u256(d.chain_id)
        + bytes(12)
        + bytes.fromhex(d.verifying_contract[2:])
    )


def spec_request_digest(d: ExchangeDomain, r: ExchangeRequest) -> bytes:
    typehash = keccak(
        b"ExchangeRequest(bytes32 requester,bytes32 owner,uint256 grantId,bytes32 recordId,"
        b"uint256 nonce,uint256 expiresAt)"
    )
    struct = keccak(
        typehash
        + code32(r.requester)
        + code32(r.owner)
        + u256(r.grant_id)
        + r.record_id
        + u256(r.nonce)
        + u256(r.expires_at)
    )
    return keccak(b"\x19\x01" + spec_domain_separator(d) + struct)


def spec_receipt_digest(d: ExchangeDomain, r: ExchangeReceipt) -> bytes:
    typehash = keccak(
        b"ExchangeReceipt(bytes32 requestHash,string ciphertextCid,bytes32 capsuleHash,"
        b"uint256 seq,uint256 issuedAt)"
    )
    struct = keccak(
        typehash
        + r.request_hash
        + keccak(r.ciphertext_cid.encode())
        + r.capsule_hash
        + u256(r.seq)
        + u256(r.issued_at)
    )
    return keccak(b"\x19\x01" + spec_domain_separator(d) + struct)


def make_request(**kw: object) -> ExchangeRequest:
    base = {
        "requester": "MARKET",
        "owner": "TAX",
        "grant_id": 7,
        "record_id": RID,
        "nonce": 2**127 + 5,
        "expires_at": 1_900_000_000,
    }
    return ExchangeRequest(**{**base, **kw})  # type: ignore[arg-type]


def test_digests_match_an_independent_encoding_of_eip712() -> None:
    req = make_request()
    assert DOMAIN.separator() == spec_domain_separator(DOMAIN)
    assert req.digest(DOMAIN) == spec_request_digest(DOMAIN, req)
    rc = ExchangeReceipt(keccak(b"x"), "bafkreiabc", capsule_hash(b"c" * 86), 12, 1_800_000_000)
    assert rc.digest(DOMAIN) == spec_receipt_digest(DOMAIN, rc)


def test_every_field_and_the_domain_change_the_digest() -> None:
    req = make_request()
    base = req.digest(DOMAIN)
    variants = [
        make_request(requester="COURT"),
        make_request(owner="COURT"),
        make_request(grant_id=8),
        make_request(record_id=bytes(32)),
        make_request(nonce=1),
        make_request(expires_at=1),
    ]
    assert len({v.digest(DOMAIN) for v in variants} | {base}) == len(variants) + 1
    other_chain = ExchangeDomain(1, DOMAIN.verifying_contract)
    other_contract = ExchangeDomain(31337, "0x" + "11" * 20)
    assert req.digest(other_chain) != base and req.digest(other_contract) != base


def test_sign_and_recover() -> None:
    acct = Account.create()
    req = ExchangeRequest.new("market", "tax", 3, RID, now=int(time.time()))
    assert (req.requester, req.owner) == ("MARKET", "TAX")
    sig = req.sign(acct, DOMAIN)
    assert len(sig) == 65
    assert req.signer(DOMAIN, sig) == acct.address
    # the same signature over another request, or another domain, names someone else
    assert make_request().signer(DOMAIN, sig) != acct.address
    assert req.signer(ExchangeDomain(1, DOMAIN.verifying_contract), sig) != acct.address
    with pytest.raises(BadSignature):
        req.signer(DOMAIN, b"\0" * 65)


def test_nonces_are_fresh() -> None:
    now = int(time.time())
    nonces = {ExchangeRequest.new("MARKET", "TAX", 1, RID, now=now).nonce for _ in range(100)}
    assert len(nonces) == 100


def test_json_round_trip_and_refusals() -> None:
    req = make_request()
    body = req.to_json()
    assert body["nonce"] == str(req.nonce)  # decimal text: JSON numbers lose precision
    assert ExchangeRequest.from_json(body) == req
    bad = [
        [],
        {**body, "extra": 1},
        {k: v for k, v in body.items() if k != "nonce"},
        {**body, "record_id": "0x12"},
        {**body, "grant_id": 0},
        {**body, "grant_id": True},
        {**body, "nonce": "-1"},
        {**body, "nonce": "1" * 80},
        {**body, "expires_at": -5},
        {**body, "requester": "not a code!"},
    ]
    for b in bad:
        with pytest.raises(ExchangeMalformed):
            ExchangeRequest.from_json(b)


def test_signature_parsing() -> None:
    assert parse_signature("0x" + "ab" * 65) == b"\xab" * 65
    for bad in (None, "", "ab" * 65, "0x" + "ab" * 64, "0x" + "zz" * 65):
        with pytest.raises(BadSignature):
            parse_signature(bad)


def test_receipt_headers_round_trip_and_refusals() -> None:
    owner = Account.create()
    rc = ExchangeReceipt(keccak(b"req"), "bafkreiabc", capsule_hash(b"c"), 3, 1_800_000_000)
    sig = rc.sign(owner, DOMAIN)
    headers = rc.headers(sig)
    back, back_sig = ExchangeReceipt.from_headers(headers)
    assert (back, back_sig) == (rc, sig)
    assert back.signer(DOMAIN, back_sig) == owner.address
    for broken in (
        {k: v for k, v in headers.items() if k != H_RECEIPT_SEQ},
        {**headers, H_RECEIPT_SEQ: "three"},
        {**headers, H_RECEIPT_SIGNATURE: "0x00"},
    ):
        with pytest.raises(ReceiptInvalid):
            ExchangeReceipt.from_headers(broken)


def test_capsule_transport_encoding() -> None:
    cap = bytes(range(86))
    assert decode_capsule(encode_capsule(cap)) == cap
    for bad in (None, "", "not base64!"):
        with pytest.raises(ReceiptInvalid):
            decode_capsule(bad)
