"""DEK capsules: a payload's data key wrapped for one recipient department with HPKE.

HPKE (RFC 9180) base mode, single shot, through
``cryptography.hazmat.primitives.hpke``, in the suite of the recipient's
registered key (``crypto/keys.py``):

    suite 1  DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / AES-256-GCM
             (KEM 0x0020, KDF 0x0001, AEAD 0x0002): capsule 86 bytes
    suite 2  ML-KEM-768 + X25519 (hybrid, post-quantum) / HKDF-SHA256 /
             AES-256-GCM: capsule 1,174 bytes

Capsule format, version 1::

    offset size  field
    0      4     magic "GSKC"
    4      1     version = 1
    5      1     suite (1 or 2, above)
    6      E     enc: the HPKE encapsulated key (suite 1: the ephemeral X25519
                 public key, 32 bytes; suite 2: the ML-KEM-768 ciphertext and
                 the ephemeral X25519 key, 1,120 bytes)
    6+E    48    HPKE ciphertext of the 32-byte DEK (32 + 16-byte tag)

The HPKE ``info`` binds the capsule to its context, so a capsule copied to another
record, grant or department does not open::

    info = "govshare/capsule/v1" ‖ 0x00 ‖ bytes[0:6]
           ‖ lp(record_id)
           ‖ (0x00 for the owner's own capsule | 0x01 ‖ lp(grant_id))
           ‖ lp(recipient_dept)
    lp(x) = uint16_be(len(utf8(x))) ‖ utf8(x)

Identifiers are turned into text the same way on both sides: ``str`` as is, ``int``
in decimal, ``bytes`` as ``0x`` + lowercase hex; department codes upper-cased.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from govshare.crypto.envelope import DEK_SIZE
from govshare.crypto.errors import (
    CapsuleMalformed,
    CapsuleOpenFailed,
    CapsuleUnsupported,
    InvalidKey,
)
from govshare.crypto.keys import (
    KEM_MLKEM768_X25519,
    KEM_X25519,
    HpkePrivateKey,
    check_public_key,
    kem_of,
)

__all__ = [
    "CAPSULE_SIZE",
    "CAPSULE_SIZES",
    "MAX_CAPSULE_SIZE",
    "CapsuleHeader",
    "Ident",
    "capsule_info",
    "parse_capsule",
    "unwrap_dek",
    "wrap_dek",
]

MAGIC = b"GSKC"
VERSION = 1
SUITE_X25519_SHA256_AES256GCM = 1
SUITE_MLKEM768_X25519_SHA256_AES256GCM = 2
ENC_SIZE = 32
CAPSULE_HEADER_SIZE = 6
CAPSULE_SIZE = CAPSULE_HEADER_SIZE + ENC_SIZE + DEK_SIZE + 16  # 86: suite 1
MAX_IDENT_BYTES = 1024

#: Per suite: the HPKE suite, its ``enc`` size and the KEM of the keys it takes.
_SUITES = {
    SUITE_X25519_SHA256_AES256GCM: (
        hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM),
        hpke.KEM.X25519.enc_length(),
        KEM_X25519,
    ),
    SUITE_MLKEM768_X25519_SHA256_AES256GCM: (
        hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM),
        hpke.KEM.MLKEM768_X25519.enc_length(),
        KEM_MLKEM768_X25519,
    ),
}
_SUITE_OF_KEM = {kem: suite for suite, (_s, _e, kem) in _SUITES.items()}
#: A capsule's size in each suite (86 and 1,174 bytes), and the largest.
CAPSULE_SIZES = {
    suite: CAPSULE_HEADER_SIZE + enc + DEK_SIZE + 16 for suite, (_s, enc, _k) in _SUITES.items()
}
MAX_CAPSULE_SIZE = max(CAPSULE_SIZES.values())
_INFO_LABEL = b"govshare/capsule/v1\x00"

Ident = str | int | bytes


@dataclass(frozen=True)
class CapsuleHeader:
    version: int
    suite: int
    enc: bytes


def _ident(value: Ident, what: str) -> bytes:
    if isinstance(value, bool):
        raise InvalidKey(f"The {what} must be a string, an integer or bytes.")
    if isinstance(value, str):
        text = value
    elif isinstance(value, int):
        if value < 0:
            raise InvalidKey(f"The {what} cannot be negative.")
        text = str(value)
    elif isinstance(value, bytes | bytearray):
        text = "0x" + bytes(value).hex()
    else:
        raise InvalidKey(f"The {what} must be a string, an integer or bytes.")
    raw = text.encode("utf-8")
    if not raw or len(raw) > MAX_IDENT_BYTES:
        raise InvalidKey(f"The {what} must be 1 to {MAX_IDENT_BYTES} bytes long.")
    return len(raw).to_bytes(2, "big") + raw


def capsule_info(
    *, record_id: Ident, grant_id: Ident | None, recipient_dept: str, header: bytes | None = None
) -> bytes:
    """The HPKE ``info`` for a capsule (documented above; exposed for tests and audits)."""
    if not isinstance(recipient_dept, str):
        raise InvalidKey("The recipient department must be a department code.")
    head = header if header is not None else MAGIC + bytes([VERSION, SUITE_X25519_SHA256_AES256GCM])
    grant = b"\x00" if grant_id is None else b"\x01" + _ident(grant_id, "grant id")
    return (
        _INFO_LABEL
        + head
        + _ident(record_id, "record id")
        + grant
        + _ident(recipient_dept.strip().upper(), "department code")
    )


def parse_capsule(capsule: bytes) -> CapsuleHeader:
    """Check a capsule's framing. Raises only ``CapsuleMalformed``/``CapsuleUnsupported``."""
    if not isinstance(capsule, bytes | bytearray | memoryview):
        raise CapsuleMalformed("A capsule must be bytes.")
    capsule = bytes(capsule)
    if capsule[:4] != MAGIC:
        raise CapsuleMalformed("This is not a govshare key capsule (bad magic).")
    if len(capsule) < CAPSULE_HEADER_SIZE:
        raise CapsuleMalformed("The key capsule is cut short.", size=len(capsule))
    if capsule[4] != VERSION:
        raise CapsuleUnsupported(
            f"Key capsule version {capsule[4]} is not supported.", version=capsule[4]
        )
    if capsule[5] not in _SUITES:
        raise CapsuleUnsupported(f"Key capsule suite {capsule[5]} is not supported.")
    size = CAPSULE_SIZES[capsule[5]]
    if len(capsule) != size:
        raise CapsuleMalformed(
            f"A key capsule of suite {capsule[5]} is {size} bytes, this one {len(capsule)}.",
            size=len(capsule),
        )
    enc = _SUITES[capsule[5]][1]
    return CapsuleHeader(version=capsule[4], suite=capsule[5], enc=capsule[6 : 6 + enc])


def wrap_dek(
    dek: bytes,
    recipient_public_key: bytes,
    *,
    record_id: Ident,
    grant_id: Ident | None,
    recipient_dept: str,
) -> bytes:
    """Wrap ``dek`` for the department whose registered public key is given, in
    the suite of that key (X25519, or ML-KEM-768 + X25519).

    ``grant_id=None`` makes the owner's own capsule (stored at publish time);
    otherwise the capsule is bound to that grant.
    """
    if not isinstance(dek, bytes | bytearray) or len(dek) != DEK_SIZE:
        raise InvalidKey(f"A data key must be {DEK_SIZE} bytes.")
    public = check_public_key(recipient_public_key)
    suite = _SUITE_OF_KEM[kem_of(recipient_public_key)]
    header = MAGIC + bytes([VERSION, suite])
    info = capsule_info(
        record_id=record_id, grant_id=grant_id, recipient_dept=recipient_dept, header=header
    )
    try:
        sealed = _SUITES[suite][0].encrypt(bytes(dek), public, info=info)
    except ValueError:
        # e.g. a low-order point: the Diffie-Hellman result would be all zero.
        raise InvalidKey("This public key cannot be used for key wrapping.") from None
    return header + sealed


def unwrap_dek(
    capsule: bytes,
    private_key: HpkePrivateKey | X25519PrivateKey,
    *,
    record_id: Ident,
    grant_id: Ident | None,
    recipient_dept: str,
) -> bytes:
    """Open a capsule with the recipient's private key, in the context it was made for.

    A wrong key, or a capsule bound to another record, grant or department,
    raises :class:`~govshare.crypto.errors.CapsuleOpenFailed` (they cannot be told apart).
    """
    header = parse_capsule(capsule)
    capsule = bytes(capsule)
    suite, _enc, kem = _SUITES[header.suite]
    if isinstance(private_key, HpkePrivateKey):
        key = private_key.hpke_key
        if private_key.kem != kem:
            raise CapsuleOpenFailed(
                f"The key capsule was made for a {kem} key; this department's key is "
                f"{private_key.kem} (a capsule from before a key rotation?)."
            )
    elif isinstance(private_key, X25519PrivateKey) and kem == KEM_X25519:
        key = private_key
    else:
        raise InvalidKey("Open capsules with the department's HPKE private key.")
    info = capsule_info(
        record_id=record_id,
        grant_id=grant_id,
        recipient_dept=recipient_dept,
        header=capsule[:CAPSULE_HEADER_SIZE],
    )
    try:
        dek = suite.decrypt(capsule[CAPSULE_HEADER_SIZE:], key, info=info)
    except (InvalidTag, ValueError):
        raise CapsuleOpenFailed(
            "The key capsule does not open: it was made for another key, record, grant or "
            "department, or it was altered."
        ) from None
    if len(dek) != DEK_SIZE:  # pragma: no cover - only a sender ignoring this format
        raise CapsuleMalformed("The key capsule holds no data key.")
    return dek
