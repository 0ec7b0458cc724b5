"""The exchange protocol between two brokers: what is signed, and how.

A requesting broker asks an owner's broker for a granted record with an
EIP-712-signed :class:`ExchangeRequest`; the owner answers with the ciphertext,
a key capsule and an :class:`ExchangeReceipt` it signed. The request signature
and the receipt signature together are the receipt "signed by both": no extra
round trip. ``docs/exchange.md`` is the protocol's reference; this module is its
only implementation (both sides use it).

EIP-712 domain: ``name "govshare"``, ``version "1"``, the chain id and the
AccessLedger's address as ``verifyingContract``: what the contract publishes
through ERC-5267 ``eip712Domain()``. A signature made for another chain or
another deployment never verifies here.

Types::

    ExchangeRequest(bytes32 requester,bytes32 owner,uint256 grantId,bytes32 recordId,
                    uint256 nonce,uint256 expiresAt)
    ExchangeReceipt(bytes32 requestHash,string ciphertextCid,bytes32 capsuleHash,
                    uint256 seq,uint256 issuedAt)

Departments are their on-chain ``bytes32`` codes (``"TAX"`` left-aligned, zero
padded); times are Unix seconds; ``requestHash`` is the request's EIP-712 digest
(``keccak256(0x1901 ‖ domainSeparator ‖ hashStruct(request))``), which is also
what the brokers store as the receipt's ``request_hash``; ``capsuleHash`` is the
SHA-256 of the capsule (86 bytes, or 1,174 in the post-quantum suite).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from coincurve import PrivateKey
from eth_account import Account
from eth_account.messages import SignableMessage, encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from govshare.broker.errors import BadSignature, ExchangeMalformed, RangeInvalid, ReceiptInvalid
from govshare.chain.contracts import decode_code, encode_code
from govshare.errors import ConfigError, GovShareError
from govshare.util import MAX_DATETIME_SECONDS, printable

DOMAIN_NAME = "govshare"
DOMAIN_VERSION = "1"

#: Longest validity a requester may give an exchange request (the owner keeps
#: its nonce that long, so it bounds the replay table).
MAX_REQUEST_TTL = 300
#: What a requester uses by default.
DEFAULT_REQUEST_TTL = 60

# HTTP headers of the exchange (docs/exchange.md).
H_SIGNATURE = "Govshare-Signature"
H_CAPSULE = "Govshare-Capsule"
H_CIPHERTEXT_CID = "Govshare-Ciphertext-Cid"
H_REQUEST_HASH = "Govshare-Request-Hash"
H_CAPSULE_HASH = "Govshare-Capsule-Hash"
H_RECEIPT_SEQ = "Govshare-Receipt-Seq"
H_RECEIPT_ISSUED_AT = "Govshare-Receipt-Issued-At"
H_RECEIPT_SIGNATURE = "Govshare-Receipt-Signature"
#: Names an exchange to continue: its request hash (``0x`` + 64 hex digits).
H_EXCHANGE = "Govshare-Exchange"

REQUEST_TYPES: dict[str, list[dict[str, str]]] = {
    "ExchangeRequest": [
        {"name": "requester", "type": "bytes32"},
        {"name": "owner", "type": "bytes32"},
        {"name": "grantId", "type": "uint256"},
        {"name": "recordId", "type": "bytes32"},
        {"name": "nonce", "type": "uint256"},
        {"name": "expiresAt", "type": "uint256"},
    ]
}
RECEIPT_TYPES: dict[str, list[dict[str, str]]] = {
    "ExchangeReceipt": [
        {"name": "requestHash", "type": "bytes32"},
        {"name": "ciphertextCid", "type": "string"},
        {"name": "capsuleHash", "type": "bytes32"},
        {"name": "seq", "type": "uint256"},
        {"name": "issuedAt", "type": "uint256"},
    ]
}

RESUME_TYPES: dict[str, list[dict[str, str]]] = {
    "ExchangeResume": [
        {"name": "requester", "type": "bytes32"},
        {"name": "owner", "type": "bytes32"},
        {"name": "requestHash", "type": "bytes32"},
        {"name": "nonce", "type": "uint256"},
        {"name": "expiresAt", "type": "uint256"},
    ]
}

ACK_TYPES: dict[str, list[dict[str, str]]] = {
    "ExchangeAck": [
        {"name": "requestHash", "type": "bytes32"},
        {"name": "ciphertextCid", "type": "string"},
        {"name": "ackedAt", "type": "uint256"},
    ]
}

_HEX32 = re.compile(r"0x[0-9a-fA-F]{64}")
_SIG = re.compile(r"0x[0-9a-fA-F]{130}")
_UINT256_MAX = 2**256 - 1


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


def parse_signature(text: str | None, what: str = "signature") -> bytes:
    """A 65-byte secp256k1 signature from ``0x`` + 130 hex digits."""
    if not isinstance(text, str) or not _SIG.fullmatch(text.strip()):
        raise BadSignature(f"The {what} is not 65 bytes of 0x-hex.")
    return bytes.fromhex(text.strip()[2:])


def _typehash(types: dict[str, list[dict[str, str]]]) -> bytes:
    ((name, fields),) = types.items()
    return keccak(f"{name}({','.join(f['type'] + ' ' + f['name'] for f in fields)})".encode())


_REQUEST_TYPEHASH = _typehash(REQUEST_TYPES)
_RECEIPT_TYPEHASH = _typehash(RECEIPT_TYPES)
_RESUME_TYPEHASH = _typehash(RESUME_TYPES)
_ACK_TYPEHASH = _typehash(ACK_TYPES)


@functools.lru_cache(maxsize=8)
def _separator(domain: ExchangeDomain) -> bytes:
    return domain.separator()


def _uint256(n: int) -> bytes:
    return n.to_bytes(32, "big")


def _signable(domain: ExchangeDomain, struct: bytes) -> SignableMessage:
    """EIP-712 ``0x01 ‖ domainSeparator ‖ hashStruct``, hashed directly: the same
    bytes as ``encode_typed_data`` (a test compares them) at a tenth of its cost,
    for the two fixed types whose every member is a static word or a string."""
    return SignableMessage(b"\x01", _separator(domain), keccak(struct))


def _digest(message: SignableMessage) -> bytes:
    # EIP-191 version 0x01 is EIP-712: keccak256(0x19 ‖ 0x01 ‖ domainSeparator ‖ hashStruct)
    return keccak(b"\x19" + message.version + message.header + message.body)


def _sign(account: LocalAccount, message: SignableMessage) -> bytes:
    """``account.sign_message(message).signature`` at a third of its cost: the
    same deterministic (RFC 6979, low-s) signature from coincurve over the EIP-712
    digest, its recovery id as Ethereum's ``v`` (27 or 28); a test compares them."""
    # A key object per signature, dropped at once: no copy of the key outlives
    # the account (tests/chain/test_tx.py looks for any left in the process).
    raw = PrivateKey(bytes(account.key)).sign_recoverable(_digest(message), hasher=None)
    return raw[:64] + bytes([raw[64] + 27])


def _recover(message: SignableMessage, signature: bytes, what: str) -> str:
    try:
        return str(Account.recover_message(message, signature=signature))
    # eth-account/eth-keys raise several undocumented kinds (and coincurve a plain
    # Exception) for a signature that is no point; each means "does not verify".
    except Exception:  # noqa: BLE001 — re-raised as the typed BadSignature
        raise BadSignature(f"The {what} does not verify: it is not a valid signature.") from None


@dataclass(frozen=True)
class ExchangeDomain:
    """The EIP-712 domain exchange requests and receipts are bound to."""

    chain_id: int
    verifying_contract: str
    name: str = DOMAIN_NAME
    version: str = DOMAIN_VERSION

    def data(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "chainId": self.chain_id,
            "verifyingContract": self.verifying_contract,
        }

    def separator(self) -> bytes:
        """The domain separator (``hashStruct(EIP712Domain)``), for tests and audits."""
        return bytes(encode_typed_data(self.data(), REQUEST_TYPES, _ZERO_REQUEST).header)

    @classmethod
    def from_ledger(cls, ledger: Any) -> ExchangeDomain:
        """Read the domain the AccessLedger publishes (ERC-5267) and check it is
        govshare's, on this chain, at this address."""
        onchain = ledger.access.eip712_domain()
        expected = cls(int(ledger.chain_id), str(ledger.access.address))
        if (
            onchain.name != DOMAIN_NAME
            or onchain.version != DOMAIN_VERSION
            or int(onchain.chain_id) != expected.chain_id
            or str(onchain.verifying_contract).lower() != expected.verifying_contract.lower()
        ):
            raise ConfigError(
                "The AccessLedger's EIP-712 domain is not govshare's (name 'govshare', "
                "version '1', this chain and address): is the deployment file right?"
            )
        return expected


_ZERO_REQUEST = {
    "requester": b"\0" * 32,
    "owner": b"\0" * 32,
    "grantId": 0,
    "recordId": b"\0" * 32,
    "nonce": 0,
    "expiresAt": 0,
}


def _field(body: Mapping[str, Any], name: str) -> Any:
    if name not in body:
        raise ExchangeMalformed(f"The exchange request has no {name!r}.")
    return body[name]


def _uint(value: Any, name: str, *, as_text: bool = False) -> int:
    if isinstance(value, bool):
        raise ExchangeMalformed(f"{name!r} must be a whole number.")
    if isinstance(value, str) and (as_text or value.isdigit()):
        if not value.isdigit() or len(value) > 78:
            raise ExchangeMalformed(f"{name!r} must be a whole number in decimal.")
        value = int(value)
    if not isinstance(value, int) or not 0 <= value <= _UINT256_MAX:
        raise ExchangeMalformed(f"{name!r} must be a whole number between 0 and 2^256-1.")
    return value


def _code(value: Any, name: str) -> str:
    try:
        return decode_code(encode_code(str(value)))
    except GovShareError:
        raise ExchangeMalformed(f"{name!r} is not a department code.") from None


@dataclass(frozen=True)
class ExchangeRequest:
    """What the requesting broker signs: *this* department asks *that* one for
    *this* record under *this* grant, once (``nonce``), until ``expires_at``."""

    requester: str
    owner: str
    grant_id: int
    record_id: bytes
    nonce: int
    expires_at: int

    @classmethod
    def new(
        cls,
        requester: str,
        owner: str,
        grant_id: int,
        record_id: bytes,
        *,
        now: int,
        ttl: int = DEFAULT_REQUEST_TTL,
    ) -> ExchangeRequest:
        """A fresh request: a random 128-bit nonce, valid ``ttl`` seconds from ``now``."""
        return cls(
            requester=_code(requester, "requester"),
            owner=_code(owner, "owner"),
            grant_id=int(grant_id),
            record_id=bytes(record_id),
            nonce=secrets.randbits(128),
            expires_at=int(now) + int(ttl),
        )

    def message(self) -> dict[str, Any]:
        return {
            "requester": encode_code(self.requester),
            "owner": encode_code(self.owner),
            "grantId": self.grant_id,
            "recordId": self.record_id,
            "nonce": self.nonce,
            "expiresAt": self.expires_at,
        }

    def signable(self, domain: ExchangeDomain) -> SignableMessage:
        words = (self.grant_id, self.nonce, self.expires_at)
        if len(self.record_id) != 32 or not all(0 <= w <= _UINT256_MAX for w in words):
            return encode_typed_data(domain.data(), REQUEST_TYPES, self.message())
        return _signable(
            domain,
            _REQUEST_TYPEHASH
            + encode_code(self.requester)
            + encode_code(self.owner)
            + _uint256(self.grant_id)
            + self.record_id
            + _uint256(self.nonce)
            + _uint256(self.expires_at),
        )

    def digest(self, domain: ExchangeDomain) -> bytes:
        """The EIP-712 digest: the request's identity in receipts (``request_hash``)."""
        return _digest(self.signable(domain))

    def sign(self, account: LocalAccount, domain: ExchangeDomain) -> bytes:
        return _sign(account, self.signable(domain))

    def signer(self, domain: ExchangeDomain, signature: bytes) -> str:
        """The account that made ``signature`` over this request (checksummed)."""
        return _recover(self.signable(domain), signature, "exchange request's signature")

    def to_json(self) -> dict[str, Any]:
        """The HTTP body (the nonce as decimal text: JSON numbers lose precision)."""
        return {
            "requester": self.requester,
            "owner": self.owner,
            "grant_id": self.grant_id,
            "record_id": _hex(self.record_id),
            "nonce": str(self.nonce),
            "expires_at": self.expires_at,
        }

    @classmethod
    def from_json(cls, body: Any) -> ExchangeRequest:
        """Parse and check an HTTP body; raises :class:`ExchangeMalformed`."""
        if not isinstance(body, Mapping):
            raise ExchangeMalformed("The exchange request must be a JSON object.")
        extra = set(body) - {"requester", "owner", "grant_id", "record_id", "nonce", "expires_at"}
        if extra:
            raise ExchangeMalformed(f"Unknown fields in the exchange request: {sorted(extra)}.")
        record = _field(body, "record_id")
        if not isinstance(record, str) or not _HEX32.fullmatch(record):
            raise ExchangeMalformed("'record_id' must be 0x and 64 hex digits.")
        grant = _uint(_field(body, "grant_id"), "grant_id")
        if grant == 0:
            raise ExchangeMalformed("'grant_id' must not be zero.")
        return cls(
            requester=_code(_field(body, "requester"), "requester"),
            owner=_code(_field(body, "owner"), "owner"),
            grant_id=grant,
            record_id=bytes.fromhex(record[2:]),
            nonce=_uint(_field(body, "nonce"), "nonce", as_text=True),
            expires_at=_uint(_field(body, "expires_at"), "expires_at"),
        )


def parse_exchange_id(text: Any) -> bytes:
    """An exchange's id (its request hash) from ``0x`` + 64 hex digits; anything
    else is :class:`ExchangeMalformed`."""
    if not isinstance(text, str) or not _HEX32.fullmatch(text.strip()):
        raise ExchangeMalformed("An exchange id is 0x and 64 hex digits (its request hash).")
    return bytes.fromhex(text.strip()[2:])


@dataclass(frozen=True)
class ExchangeResume:
    """What the requesting broker signs to continue an exchange it started: the
    same answer again (or a byte range of it, in the ``Range`` header), no new
    use. Once (``nonce``), until ``expires_at``, like an :class:`ExchangeRequest`."""

    requester: str
    owner: str
    request_hash: bytes
    nonce: int
    expires_at: int

    @classmethod
    def new(
        cls, requester: str, owner: str, request_hash: bytes, *, now: int, ttl: int
    ) -> ExchangeResume:
        return cls(
            requester=_code(requester, "requester"),
            owner=_code(owner, "owner"),
            request_hash=bytes(request_hash),
            nonce=secrets.randbits(128),
            expires_at=int(now) + int(ttl),
        )

    def signable(self, domain: ExchangeDomain) -> SignableMessage:
        if len(self.request_hash) != 32 or not (
            0 <= self.nonce <= _UINT256_MAX and 0 <= self.expires_at <= _UINT256_MAX
        ):
            raise ExchangeMalformed("The resume request's fields are out of range.")
        return _signable(
            domain,
            _RESUME_TYPEHASH
            + encode_code(self.requester)
            + encode_code(self.owner)
            + self.request_hash
            + _uint256(self.nonce)
            + _uint256(self.expires_at),
        )

    def sign(self, account: LocalAccount, domain: ExchangeDomain) -> bytes:
        return _sign(account, self.signable(domain))

    def signer(self, domain: ExchangeDomain, signature: bytes) -> str:
        return _recover(self.signable(domain), signature, "resume request's signature")

    def to_json(self) -> dict[str, Any]:
        return {
            "requester": self.requester,
            "owner": self.owner,
            "exchange": _hex(self.request_hash),
            "nonce": str(self.nonce),
            "expires_at": self.expires_at,
        }

    @classmethod
    def from_json(cls, body: Any) -> ExchangeResume:
        if not isinstance(body, Mapping):
            raise ExchangeMalformed("The resume request must be a JSON object.")
        extra = set(body) - {"requester", "owner", "exchange", "nonce", "expires_at"}
        if extra:
            raise ExchangeMalformed(f"Unknown fields in the resume request: {sorted(extra)}.")
        return cls(
            requester=_code(_field(body, "requester"), "requester"),
            owner=_code(_field(body, "owner"), "owner"),
            request_hash=parse_exchange_id(_field(body, "exchange")),
            nonce=_uint(_field(body, "nonce"), "nonce", as_text=True),
            expires_at=_uint(_field(body, "expires_at"), "expires_at"),
        )


@dataclass(frozen=True)
class ExchangeAck:
    """What the requesting broker signs once it received an exchange's ciphertext
    whole and verified (CID, AEAD, anchored hash): the receipt's third signature.
    Its time is the requester's; the owner bounds it (after the receipt, not in
    the future)."""

    request_hash: bytes
    ciphertext_cid: str
    acked_at: int

    def signable(self, domain: ExchangeDomain) -> SignableMessage:
        if len(self.request_hash) != 32 or not 0 <= self.acked_at <= _UINT256_MAX:
            raise ExchangeMalformed("The acknowledgement's fields are out of range.")
        return _signable(
            domain,
            _ACK_TYPEHASH
            + self.request_hash
            + keccak(self.ciphertext_cid.encode("utf-8"))
            + _uint256(self.acked_at),
        )

    def digest(self, domain: ExchangeDomain) -> bytes:
        return _digest(self.signable(domain))

    def sign(self, account: LocalAccount, domain: ExchangeDomain) -> bytes:
        return _sign(account, self.signable(domain))

    def signer(self, domain: ExchangeDomain, signature: bytes) -> str:
        return _recover(self.signable(domain), signature, "acknowledgement's signature")

    def to_json(self, requester: str, owner: str) -> dict[str, Any]:
        return {
            "requester": requester,
            "owner": owner,
            "exchange": _hex(self.request_hash),
            "ciphertext_cid": self.ciphertext_cid,
            "acked_at": self.acked_at,
        }

    @classmethod
    def from_json(cls, body: Any) -> tuple[str, str, ExchangeAck]:
        """(requester, owner, the acknowledgement) of an HTTP body."""
        if not isinstance(body, Mapping):
            raise ExchangeMalformed("The acknowledgement must be a JSON object.")
        extra = set(body) - {"requester", "owner", "exchange", "ciphertext_cid", "acked_at"}
        if extra:
            raise ExchangeMalformed(f"Unknown fields in the acknowledgement: {sorted(extra)}.")
        cid = _field(body, "ciphertext_cid")
        if not isinstance(cid, str) or not 0 < len(cid) <= 128 or not cid.isascii():
            raise ExchangeMalformed("'ciphertext_cid' must be a CID.")
        ack = cls(
            request_hash=parse_exchange_id(_field(body, "exchange")),
            ciphertext_cid=cid,
            acked_at=_uint(_field(body, "acked_at"), "acked_at"),
        )
        requester = _code(_field(body, "requester"), "requester")
        return requester, _code(_field(body, "owner"), "owner"), ack


_RANGE = re.compile(r"bytes=(\d{1,19})?-(\d{1,19})?")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """One RFC 9110 byte range of a ``size``-byte representation, as (first,
    last) inclusive; None without a header. ``bytes=FIRST-``, ``bytes=FIRST-LAST``
    (LAST past the end is the end) and ``bytes=-SUFFIX`` are accepted; several
    ranges, another unit, a malformed or an unsatisfiable one raise
    :class:`RangeInvalid` (416): a resume asks for exactly one, so a request that
    is not one is a mistake to say, not to ignore."""
    if header is None:
        return None
    text = header.strip()
    if "," in text:
        raise RangeInvalid("Only one byte range may be asked for (no multipart ranges).")
    m = _RANGE.fullmatch(text.replace(" ", ""))
    if m is None or (m.group(1) is None and m.group(2) is None):
        raise RangeInvalid(
            f"The Range header {printable(text[:80])!r} is not a byte range such as "
            "'bytes=1048576-'."
        )
    first_t, last_t = m.group(1), m.group(2)
    if first_t is None:  # a suffix: the last N bytes
        n = int(str(last_t))
        if n == 0 or size == 0:
            raise RangeInvalid("An empty suffix range asks for nothing.", size=size)
        return max(0, size - n), size - 1
    first = int(first_t)
    last = size - 1 if last_t is None else min(int(last_t), size - 1)
    if first >= size:
        raise RangeInvalid(
            f"The range starts at byte {first}, but there are only {size} bytes.", size=size
        )
    if last < first:
        raise RangeInvalid("The range ends before it starts.", size=size)
    return first, last


def capsule_hash(capsule: bytes) -> bytes:
    return hashlib.sha256(capsule).digest()


@dataclass(frozen=True)
class ExchangeReceipt:
    """What the owner's broker signs before it answers: it served the request
    ``request_hash`` with the ciphertext ``ciphertext_cid`` and the capsule
    ``capsule_hash``, as use number ``seq`` of its department, at ``issued_at``."""

    request_hash: bytes
    ciphertext_cid: str
    capsule_hash: bytes
    seq: int
    issued_at: int

    def message(self) -> dict[str, Any]:
        return {
            "requestHash": self.request_hash,
            "ciphertextCid": self.ciphertext_cid,
            "capsuleHash": self.capsule_hash,
            "seq": self.seq,
            "issuedAt": self.issued_at,
        }

    def signable(self, domain: ExchangeDomain) -> SignableMessage:
        words = (self.seq, self.issued_at)
        if (
            len(self.request_hash) != 32
            or len(self.capsule_hash) != 32
            or not all(0 <= w <= _UINT256_MAX for w in words)
        ):
            return encode_typed_data(domain.data(), RECEIPT_TYPES, self.message())
        return _signable(
            domain,
            _RECEIPT_TYPEHASH
            + self.request_hash
            + keccak(self.ciphertext_cid.encode("utf-8"))
            + self.capsule_hash
            + _uint256(self.seq)
            + _uint256(self.issued_at),
        )

    def digest(self, domain: ExchangeDomain) -> bytes:
        return _digest(self.signable(domain))

    def sign(self, account: LocalAccount, domain: ExchangeDomain) -> bytes:
        return _sign(account, self.signable(domain))

    def signer(self, domain: ExchangeDomain, signature: bytes) -> str:
        return _recover(self.signable(domain), signature, "receipt's signature")

    def headers(self, owner_signature: bytes) -> dict[str, str]:
        return {
            H_REQUEST_HASH: _hex(self.request_hash),
            H_CIPHERTEXT_CID: self.ciphertext_cid,
            H_CAPSULE_HASH: _hex(self.capsule_hash),
            H_RECEIPT_SEQ: str(self.seq),
            H_RECEIPT_ISSUED_AT: str(self.issued_at),
            H_RECEIPT_SIGNATURE: _hex(owner_signature),
        }

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> tuple[ExchangeReceipt, bytes]:
        """The receipt and the owner's signature from an exchange answer's headers;
        raises :class:`ReceiptInvalid` when one is missing or malformed."""
        try:
            request_hash = headers[H_REQUEST_HASH]
            capsule = headers[H_CAPSULE_HASH]
            if not (_HEX32.fullmatch(request_hash) and _HEX32.fullmatch(capsule)):
                raise ValueError("hash")
            receipt = cls(
                request_hash=bytes.fromhex(request_hash[2:]),
                ciphertext_cid=headers[H_CIPHERTEXT_CID],
                capsule_hash=bytes.fromhex(capsule[2:]),
                seq=_bounded(headers[H_RECEIPT_SEQ], _MAX_SEQ),
                issued_at=_bounded(headers[H_RECEIPT_ISSUED_AT], MAX_DATETIME_SECONDS),
            )
            signature = parse_signature(headers[H_RECEIPT_SIGNATURE], "receipt signature")
        except (KeyError, ValueError, BadSignature):
            raise ReceiptInvalid(
                "The owner's answer carries no valid receipt (a Govshare-Receipt-* header is "
                "missing or malformed); nothing was released."
            ) from None
        return receipt, signature


#: Largest receipt number a broker keeps (its database stores signed 64-bit integers).
_MAX_SEQ = 2**63 - 1


def _bounded(text: str, maximum: int) -> int:
    """A positive decimal number from another department, at most ``maximum``
    (ValueError otherwise: what a receipt header holds must fit where it is kept)."""
    if not (text.isascii() and text.isdigit()) or len(text) > 20:
        raise ValueError("not a bounded decimal")
    value = int(text)
    if not 1 <= value <= maximum:
        raise ValueError("out of range")
    return value


def encode_capsule(capsule: bytes) -> str:
    return base64.b64encode(capsule).decode("ascii")


def decode_capsule(text: str | None) -> bytes:
    if not text:
        raise ReceiptInvalid("The owner's answer carries no key capsule; nothing was released.")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ReceiptInvalid(
            "The owner's key capsule is not base64; nothing was released."
        ) from None
