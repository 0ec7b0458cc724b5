"""A small RFC 9180 reference (base mode, single shot), used only by tests.

DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / AES-256-GCM, written from the RFC's
pseudocode (sections 4.1, 5.1, 7.1) with a caller-chosen ephemeral key, so that
capsule vectors are reproducible and pyca's HPKE is checked against a second
implementation. :func:`open_xwing` opens the hybrid ML-KEM-768 + X25519 suite the
same way.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEM_ID, KDF_ID, AEAD_ID = 0x0020, 0x0001, 0x0002
KEM_SUITE_ID = b"KEM" + KEM_ID.to_bytes(2, "big")
HPKE_SUITE_ID = b"HPKE" + b"".join(i.to_bytes(2, "big") for i in (KEM_ID, KDF_ID, AEAD_ID))
NK, NN, NH = 32, 12, 32


def _extract(salt: bytes, ikm: bytes) -> bytes:
    return hmac.new(salt or bytes(NH), ikm, hashlib.sha256).digest()


def _expand(prk: bytes, info: bytes, length: int) -> bytes:
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def labeled_extract(suite_id: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
    return _extract(salt, b"HPKE-v1" + suite_id + label + ikm)


def labeled_expand(suite_id: bytes, prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
    labeled_info = length.to_bytes(2, "big") + b"HPKE-v1" + suite_id + label + info
    return _expand(prk, labeled_info, length)


def _raw(public: X25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _shared_secret(dh: bytes, enc: bytes, pk_r: bytes) -> bytes:
    eae_prk = labeled_extract(KEM_SUITE_ID, b"", b"eae_prk", dh)
    return labeled_expand(KEM_SUITE_ID, eae_prk, b"shared_secret", enc + pk_r, NH)


def _key_schedule(shared_secret: bytes, info: bytes) -> tuple[bytes, bytes]:
    psk_id_hash = labeled_extract(HPKE_SUITE_ID, b"", b"psk_id_hash", b"")
    info_hash = labeled_extract(HPKE_SUITE_ID, b"", b"info_hash", info)
    context = b"\x00" + psk_id_hash + info_hash  # mode_base
    secret = labeled_extract(HPKE_SUITE_ID, shared_secret, b"secret", b"")
    key = labeled_expand(HPKE_SUITE_ID, secret, b"key", context, NK)
    base_nonce = labeled_expand(HPKE_SUITE_ID, secret, b"base_nonce", context, NN)
    return key, base_nonce


def seal(
    pk_r: bytes, info: bytes, plaintext: bytes, ephemeral: X25519PrivateKey, aad: bytes = b""
) -> bytes:
    """Single-shot base-mode seal; returns ``enc ‖ ciphertext``."""
    enc = _raw(ephemeral.public_key())
    dh = ephemeral.exchange(X25519PublicKey.from_public_bytes(pk_r))
    key, nonce = _key_schedule(_shared_secret(dh, enc, pk_r), info)
    return enc + AESGCM(key).encrypt(nonce, plaintext, aad)  # sequence number 0


def open_(sk_r: X25519PrivateKey, info: bytes, sealed: bytes, aad: bytes = b"") -> bytes:
    enc, ct = sealed[:32], sealed[32:]
    dh = sk_r.exchange(X25519PublicKey.from_public_bytes(enc))
    key, nonce = _key_schedule(_shared_secret(dh, enc, _raw(sk_r.public_key())), info)
    return AESGCM(key).decrypt(nonce, ct, aad)


# -- ML-KEM-768 + X25519 (suite 2 of govshare's capsules) -------------------------------

#: The hybrid KEM of draft-ietf-hpke-pq ("MLKEM768-X25519", the X-Wing combiner).
XWING_KEM_ID = 0x647A
_XWING_LABEL = b"\\.//^\\"
XWING_SUITE_ID = b"HPKE" + b"".join(i.to_bytes(2, "big") for i in (XWING_KEM_ID, KDF_ID, AEAD_ID))
_MLKEM768_CT = 1088


def open_xwing(
    mlkem_decapsulate: Callable[[bytes], bytes],
    sk_x: X25519PrivateKey,
    info: bytes,
    sealed: bytes,
    aad: bytes = b"",
) -> bytes:
    """Single-shot base-mode open of an ML-KEM-768 + X25519 ``enc ‖ ciphertext``,
    written from the drafts: the shared secret is SHA3-256(ss_M ‖ ss_X ‖ ct_X ‖
    pk_X ‖ label), then RFC 9180's key schedule. ML-KEM and X25519 themselves
    come from pyca (``mlkem_decapsulate``); the combiner and the schedule here."""
    ct_m, ct_x = sealed[:_MLKEM768_CT], sealed[_MLKEM768_CT : _MLKEM768_CT + 32]
    ct = sealed[_MLKEM768_CT + 32 :]
    ss_m = mlkem_decapsulate(ct_m)
    ss_x = sk_x.exchange(X25519PublicKey.from_public_bytes(ct_x))
    shared = hashlib.sha3_256(ss_m + ss_x + ct_x + _raw(sk_x.public_key()) + _XWING_LABEL).digest()
    psk_id_hash = labeled_extract(XWING_SUITE_ID, b"", b"psk_id_hash", b"")
    info_hash = labeled_extract(XWING_SUITE_ID, b"", b"info_hash", info)
    context = b"\x00" + psk_id_hash + info_hash
    secret = labeled_extract(XWING_SUITE_ID, shared, b"secret", b"")
    key = labeled_expand(XWING_SUITE_ID, secret, b"key", context, NK)
    nonce = labeled_expand(XWING_SUITE_ID, secret, b"base_nonce", context, NN)
    return AESGCM(key).decrypt(nonce, ct, aad)
