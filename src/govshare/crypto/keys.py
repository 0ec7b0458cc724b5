"""Holders for private keys that never show their secret in ``repr``, ``str`` or a log line.

Getting the raw secret out takes an explicitly named call (``private_bytes()``),
so it cannot happen by accident in an f-string or a ``logger.debug(obj)``.

A department's HPKE key is of one of two KEMs (:data:`KEMS`):

- ``x25519``: DHKEM(X25519, HKDF-SHA256); public key 32 raw bytes, private 32;
- ``mlkem768-x25519``: the hybrid ML-KEM-768 + X25519 KEM of HPKE (post-quantum:
  a capsule stays closed unless both ML-KEM-768 and X25519 are broken); public
  key the ML-KEM-768 encapsulation key (1,184 bytes) then the X25519 key (32),
  1,216 bytes as registered on chain; private key the ML-KEM-768 seed (64 bytes)
  then the X25519 secret (32), 96 bytes.

The registered public key's length tells which (:func:`kem_of`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey, MLKEM768PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from govshare.crypto.errors import InvalidKey

if TYPE_CHECKING:
    from cryptography.hazmat.primitives import hpke
    from eth_account.signers.local import LocalAccount

# (the HPKE module is imported where a key is used: `govshare --help` and the
# commands that only read a key file do not load it)

__all__ = [
    "KEMS",
    "KEM_MLKEM768_X25519",
    "KEM_X25519",
    "EthKey",
    "HpkePrivateKey",
    "check_public_key",
    "generate_keypair",
    "kem_of",
]

X25519_KEY_SIZE = 32
KEM_X25519 = "x25519"
KEM_MLKEM768_X25519 = "mlkem768-x25519"
#: The HPKE KEMs a department's key may use (``govshare init --kem``).
KEMS = (KEM_X25519, KEM_MLKEM768_X25519)
MLKEM768_PUBLIC_SIZE = 1184
MLKEM768_SEED_SIZE = 64
HYBRID_PUBLIC_SIZE = MLKEM768_PUBLIC_SIZE + X25519_KEY_SIZE  # 1216
HYBRID_PRIVATE_SIZE = MLKEM768_SEED_SIZE + X25519_KEY_SIZE  # 96
_PUBLIC_SIZES = {X25519_KEY_SIZE: KEM_X25519, HYBRID_PUBLIC_SIZE: KEM_MLKEM768_X25519}

if TYPE_CHECKING:
    from typing import TypeAlias

    HpkePublic: TypeAlias = X25519PublicKey | hpke.MLKEM768X25519PublicKey
    HpkeSecret: TypeAlias = X25519PrivateKey | hpke.MLKEM768X25519PrivateKey


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
    """A department's private key for opening capsules (HPKE, RFC 9180): X25519,
    or ML-KEM-768 + X25519 (see the module docstring)."""

    __slots__ = ("_key", "_mlkem", "public_key_bytes")

    def __init__(self, key: X25519PrivateKey, mlkem: MLKEM768PrivateKey | None = None) -> None:
        if not isinstance(key, X25519PrivateKey):
            raise InvalidKey("An HPKE private key holds an X25519 key.")
        if mlkem is not None and not isinstance(mlkem, MLKEM768PrivateKey):
            raise InvalidKey("The post-quantum half of an HPKE key is an ML-KEM-768 key.")
        self._key = key
        self._mlkem = mlkem
        x_public = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.public_key_bytes: bytes = (
            x_public if mlkem is None else mlkem.public_key().public_bytes_raw() + x_public
        )

    @classmethod
    def generate(cls, kem: str = KEM_X25519) -> HpkePrivateKey:
        if kem == KEM_X25519:
            return cls(X25519PrivateKey.generate())
        if kem == KEM_MLKEM768_X25519:
            return cls(X25519PrivateKey.generate(), MLKEM768PrivateKey.generate())
        raise InvalidKey(f"Unknown KEM {kem!r}: choose one of {', '.join(KEMS)}.")

    @classmethod
    def from_private_bytes(cls, raw: bytes) -> HpkePrivateKey:
        if not isinstance(raw, bytes | bytearray):
            raise InvalidKey("An HPKE private key is bytes.")
        raw = bytes(raw)
        if len(raw) == X25519_KEY_SIZE:
            return cls(X25519PrivateKey.from_private_bytes(raw))
        if len(raw) == HYBRID_PRIVATE_SIZE:
            seed, x = raw[:MLKEM768_SEED_SIZE], raw[MLKEM768_SEED_SIZE:]
            return cls(
                X25519PrivateKey.from_private_bytes(x), MLKEM768PrivateKey.from_seed_bytes(seed)
            )
        raise InvalidKey(
            f"An HPKE private key is {X25519_KEY_SIZE} bytes (X25519) or "
            f"{HYBRID_PRIVATE_SIZE} (ML-KEM-768 + X25519)."
        )

    @property
    def kem(self) -> str:
        """Which KEM (:data:`KEMS`)."""
        return KEM_X25519 if self._mlkem is None else KEM_MLKEM768_X25519

    def private_bytes(self) -> bytes:
        """The raw secret (32 or 96 bytes). Only the keystore should need this."""
        x = self._key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        return x if self._mlkem is None else self._mlkem.private_bytes_raw() + x

    @property
    def x25519(self) -> X25519PrivateKey:
        """The X25519 key (all of an X25519 key; the classic half of a hybrid one)."""
        return self._key

    @property
    def hpke_key(self) -> HpkeSecret:
        """The pyca key for the HPKE suite of :attr:`kem`."""
        if self._mlkem is None:
            return self._key
        from cryptography.hazmat.primitives import hpke

        return hpke.MLKEM768X25519PrivateKey(self._mlkem, self._key)

    def _label(self) -> str:
        return f"{self.kem} public={self.public_key_bytes.hex()[:16]}…"


def generate_keypair(kem: str = KEM_X25519) -> tuple[HpkePrivateKey, bytes]:
    """A new HPKE key pair of ``kem``: the private key holder and the raw public
    key (the value registered on chain)."""
    key = HpkePrivateKey.generate(kem)
    return key, key.public_key_bytes


def kem_of(raw: Any) -> str:
    """The KEM of a registered public key, by its length (:class:`InvalidKey`
    for any other: another member registered it)."""
    size = len(raw) if isinstance(raw, bytes | bytearray) else -1
    kem = _PUBLIC_SIZES.get(size)
    if kem is None:
        raise InvalidKey(
            f"An HPKE public key is {X25519_KEY_SIZE} raw bytes (X25519) or "
            f"{HYBRID_PUBLIC_SIZE} (ML-KEM-768 + X25519)."
        )
    return kem


def check_public_key(raw: Any) -> HpkePublic:
    """Parse a registered HPKE public key of either KEM (see the module docstring)."""
    kem = kem_of(raw)
    raw = bytes(raw)
    if kem == KEM_X25519:
        return X25519PublicKey.from_public_bytes(raw)
    try:
        pq = MLKEM768PublicKey.from_public_bytes(raw[:MLKEM768_PUBLIC_SIZE])
    except ValueError:
        raise InvalidKey("The ML-KEM-768 half of this public key is not valid.") from None
    x = X25519PublicKey.from_public_bytes(raw[MLKEM768_PUBLIC_SIZE:])
    from cryptography.hazmat.primitives import hpke

    return hpke.MLKEM768X25519PublicKey(pq, x)


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
