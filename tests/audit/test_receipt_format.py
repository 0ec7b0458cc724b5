"""The receipt leaf and manifest format, and the audit's own EIP-712 digests
against the broker's (eth-account's) encoding."""

from __future__ import annotations

from dataclasses import replace

import pytest
from eth_account import Account

from govshare.audit.merkle import MerkleTree, leaf_hash
from govshare.audit.receipts import (
    ManifestError,
    ReceiptLeaf,
    ack_digest,
    build_manifest,
    domain_separator,
    parse_manifest,
    receipt_digest,
    recover_signer,
    request_digest,
    uses_per_grant,
)
from govshare.broker.exchange import ExchangeAck, ExchangeDomain, ExchangeReceipt, ExchangeRequest

LEDGER = "0x5FbDB2315678afecb367f032d315F2c9DCD4Ab5A"
DOMAIN = ExchangeDomain(31337, LEDGER)
REQUESTER = Account.from_key("0x" + "11" * 32)
OWNER = Account.from_key("0x" + "22" * 32)


def signed_leaf(seq: int, grant: int = 7, version: int = 1) -> ReceiptLeaf:
    req = ExchangeRequest(
        "MARKET", "TAX", grant, bytes([seq % 256]) * 32, 2**100 + seq, 1_800_000_000
    )
    rcpt = ExchangeReceipt(req.digest(DOMAIN), "bafkreiexample", b"\x09" * 32, seq, 1_799_999_990)
    return ReceiptLeaf(
        owner="TAX",
        seq=seq,
        grant_id=grant,
        record_id="0x" + req.record_id.hex(),
        requester="MARKET",
        request_hash="0x" + req.digest(DOMAIN).hex(),
        nonce=str(req.nonce),
        request_expires_at=req.expires_at,
        ciphertext_cid=rcpt.ciphertext_cid,
        capsule_hash="0x" + rcpt.capsule_hash.hex(),
        issued_at=rcpt.issued_at,
        requester_signature="0x" + req.sign(REQUESTER, DOMAIN).hex(),
        owner_signature="0x" + rcpt.sign(OWNER, DOMAIN).hex(),
        version=version,
    )


def acked(leaf: ReceiptLeaf, at: int = 1_799_999_995) -> ReceiptLeaf:
    ack = ExchangeAck(bytes.fromhex(leaf.request_hash[2:]), leaf.ciphertext_cid, at)
    return replace(leaf, acked_at=at, ack_signature="0x" + ack.sign(REQUESTER, DOMAIN).hex())


def test_digests_and_signers_agree_with_the_broker_encoding() -> None:
    sep = domain_separator(31337, LEDGER)
    assert sep == DOMAIN.separator()
    leaf = signed_leaf(3)
    assert "0x" + request_digest(sep, leaf).hex() == leaf.request_hash
    rcpt = ExchangeReceipt(
        bytes.fromhex(leaf.request_hash[2:]), leaf.ciphertext_cid, b"\x09" * 32, 3, leaf.issued_at
    )
    assert receipt_digest(sep, leaf) == rcpt.digest(DOMAIN)
    assert recover_signer(request_digest(sep, leaf), leaf.requester_signature) == (
        REQUESTER.address.lower()
    )
    assert recover_signer(receipt_digest(sep, leaf), leaf.owner_signature) == OWNER.address.lower()
    other = domain_separator(1, LEDGER)  # another chain: the signatures name nobody we know
    assert recover_signer(receipt_digest(other, leaf), leaf.owner_signature) != (
        OWNER.address.lower()
    )
    assert recover_signer(b"\0" * 32, "0x" + "00" * 65) is None
    assert recover_signer(b"\0" * 32, "not a signature") is None
    # the requester's acknowledgement (leaf version 2)
    two = acked(signed_leaf(3, version=2))
    ack = ExchangeAck(bytes.fromhex(two.request_hash[2:]), two.ciphertext_cid, 1_799_999_995)
    assert ack_digest(sep, two) == ack.digest(DOMAIN)
    assert recover_signer(ack_digest(sep, two), str(two.ack_signature)) == (
        REQUESTER.address.lower()
    )


def test_a_leaf_is_canonical_json_and_round_trips() -> None:
    leaf = signed_leaf(1)
    raw = leaf.leaf()
    assert raw.startswith(b'{"capsule_hash":"0x') and b" " not in raw
    assert b'"v":1}' in raw
    assert ReceiptLeaf.parse(raw) == leaf
    with pytest.raises(ManifestError):
        ReceiptLeaf.parse(raw.replace(b'","', b'", "', 1))  # same JSON, other bytes
    with pytest.raises(ManifestError):
        ReceiptLeaf.parse(raw.replace(b'"v":1', b'"v":2'))  # a v1 line lacks v2's fields
    assert leaf.delivery == "not recorded"


def test_version_2_leaves_carry_the_acknowledgement_and_version_1_still_parse() -> None:
    v1 = signed_leaf(4)
    unacked = signed_leaf(4, version=2)
    done = acked(unacked)
    assert b'"ack_signature":null' in unacked.leaf() and b'"v":2}' in unacked.leaf()
    assert unacked.delivery == "unacknowledged" and done.delivery == "acknowledged"
    for leaf in (v1, unacked, done):
        assert ReceiptLeaf.parse(leaf.leaf()) == leaf
    assert b"acked_at" not in v1.leaf()  # a version 1 leaf is the bytes anchored then
    # a time without signature (or the reverse), an unknown version, extra fields
    half = done.leaf().replace(done.ack_signature.encode(), b"null")  # type: ignore[union-attr]
    for bad in (
        half.replace(b'"ack_signature":"null"', b'"ack_signature":null'),
        done.leaf().replace(b'"v":2', b'"v":3'),
        v1.leaf().replace(b'"v":1', b'"acked_at":null,"v":1'),
    ):
        with pytest.raises(ManifestError):
            ReceiptLeaf.parse(bad)
    # one manifest may hold both versions (an upgrade between two receipts)
    body, root = build_manifest("TAX", 31337, LEDGER, [v1, replace(done, seq=5)])
    assert parse_manifest(body, strict=True).root() == root


def test_manifest_builds_parses_and_hashes_to_its_root() -> None:
    leaves = [signed_leaf(s, grant=7 if s % 3 else 9) for s in range(10, 16)]
    body, root = build_manifest("TAX", 31337, LEDGER, leaves)
    m = parse_manifest(body, strict=True)
    assert m.header["first_seq"] == 10 and m.header["last_seq"] == 15 and m.header["count"] == 6
    assert m.receipts == leaves
    assert m.root() == root == MerkleTree(leaf_hash(x.leaf()) for x in leaves).root
    assert uses_per_grant(leaves) == [(7, 4), (9, 2)]
    with pytest.raises(ValueError):
        build_manifest("TAX", 31337, LEDGER, [leaves[0], leaves[2]])  # a gap
    with pytest.raises(ManifestError):
        parse_manifest(b'{"format":"something else"}\n')
    # a damaged line is kept as a leaf (so the root still tells) but not parsed
    lines = body.split(b"\n")
    lines[2] = lines[2][:-3]
    damaged = parse_manifest(b"\n".join(lines))
    assert len(damaged.leaves) == 6 and len(damaged.receipts) == 5
    assert damaged.root() != root
