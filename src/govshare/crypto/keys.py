"""Holders for private keys that never show their secret in ``repr``, ``str`` or a log line.

Getting the raw secret out takes an explicitly named call (``private_bytes()``),
so it cannot happen by accident in an f-string or a ``logger.debug(obj)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from govshare.crypto.errors import InvalidKey

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

__all__ = ["EthKey", "HpkePrivateKey", "check_public_key", "generate_keypair"]

X25519_KEY_SIZE = 32


class _Secret:
    """Base for key holders: redacted ``repr``/``str``, never pickled or compared by value."""

    __slots__ = ()

    def _label(self) -> str:  # pragma: no cover - overridden
        return ""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._label()} (secret redacted)>"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError(f"{type(self).__name__} cannot be pickled")

    def __format__(self, spec: str) -> str:
        return repr(self)


class HpkePrivateKey(_Secret):
    """A department's X25519 private key for opening capsules (HPKE, RFC 9180)."""

    __slots__ = ("_key", "public_key_bytes")

    def __init__(self, key: X25519PrivateKey) -> None:
        if not isinstance(key, X25519PrivateKey):
            raise InvalidKey("An HPKE private key must be an X25519 key.")
        self._key = key
        self.public_key_bytes: bytes = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    @classmethod
    def generate(cls) -> HpkePrivateKey:
        return cls(X25519PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, raw: bytes) -> HpkePrivateKey:
        if not isinstance(raw, bytes | bytearray) or len(raw) != X25519_KEY_SIZE:
            raise InvalidKey(f"An X25519 private key is {X25519_KEY_SIZE} bytes.")
        return cls(X25519PrivateKey.from_private_bytes(bytes(raw)))

    def private_bytes(self) -> bytes:
        """The raw 32-byte secret. Only the keystore should need this."""
        return self._key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )

    @property
    def x25519(self) -> X25519PrivateKey:
        """The underlying pyca key (for the HPKE suite)."""
        return self._key

    def _label(self) -> str:
        return f"public={self.public_key_bytes.hex()[:16]}…"


def generate_keypair() -> tuple[HpkePrivateKey, bytes]:
    """A new HPKE key pair: the private key holder and the raw 32-byte public key
    (the value registered on chain)."""
    key = HpkePrivateKey.generate()
    return key, key.public_key_bytes


def check_public_key(raw: Any) -> X25519PublicKey:
    """Parse a raw 32-byte X25519 public key, as registered on chain."""
    if not isinstance(raw, bytes | bytearray) or len(raw) != X25519_KEY_SIZE:
        raise InvalidKey(f"An X25519 public key is {X25519_KEY_SIZE} raw bytes.")
    return X25519PublicKey.from_public_bytes(bytes(raw))


class EthKey(_Secret):
    """An Ethereum (secp256k1) private key, as kept in a v3 keystore."""

    __slots__ = ("_raw", "address")

    def __init__(self, raw: bytes) -> None:
        from eth_keys import keys as eth_keys
        from eth_keys.exceptions import ValidationError

        if not isinstance(raw, bytes | bytearray) or len(raw) != 32:
            raise InvalidKey("An Ethereum private key is 32 bytes.")
        try:
            public = eth_keys.PrivateKey(bytes(raw)).public_key
        except (ValidationError, ValueError):
            raise InvalidKey("This is not a valid secp256k1 private key.") from None
        self._raw = bytes(raw)
        self.address: str = public.to_checksum_address()

    @classmethod
    def generate(cls) -> EthKey:
        import os

        while True:
            try:
                return cls(os.urandom(32))
            except InvalidKey:  # pragma: no cover - probability ~2^-128
                continue

    def private_bytes(self) -> bytes:
        """The raw 32-byte secret (to sign with eth-account). Never log it."""
        return self._raw

    def account(self) -> LocalAccount:
        """This key as an eth-account signer (the one object that holds it unlocked)."""
        return local_account(self._raw)

    def _label(self) -> str:
        return self.address


def local_account(key: bytes | str) -> LocalAccount:
    """An eth-account signer for ``key`` (32 raw bytes or their hex).

    eth-account costs most of a second to import, so it is imported here, when a
    key is unlocked, and not by every command that only reads or talks HTTP."""
    from eth_account import Account

    acct: LocalAccount = Account.from_key(key)
    return acct
