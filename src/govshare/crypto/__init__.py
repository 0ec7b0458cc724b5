"""govshare's cryptography: envelopes, key capsules and keys at rest.

* :mod:`.envelope` — a payload encrypted under a fresh data key (DEK) as a stream of
  authenticated segments (Tink's AES-GCM-HKDF streaming AEAD, i.e. STREAM over
  AES-256-GCM, with a key commitment and a header MAC). Formats: ``docs/envelope-format.md``.
* :mod:`.capsule` — the DEK wrapped for one department with HPKE (RFC 9180,
  X25519 / HKDF-SHA256 / AES-256-GCM), bound to record, grant and department.
* :mod:`.keystore` — Ethereum v3 keystores (scrypt) and the HPKE key file; passwords.
* :mod:`.keys` — key holders that never print their secret.

The broker's publish path::

    result = encrypt_stream(upload, out)                 # or EncryptingReader(upload)
    capsule = wrap_dek(result.dek, own_public_key, record_id=rid, grant_id=None,
                       recipient_dept="TAX")

and its read path (nothing reaches ``dst`` unless every check passed)::

    dek = unwrap_dek(capsule, hpke_key, record_id=rid, grant_id=gid, recipient_dept="MARKET")
    decrypt_to_file(response.iter_bytes(), dst, dek, expected_sha256=anchored_hash)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from govshare._lazy import lazy_exports

if TYPE_CHECKING:
    from govshare.crypto.capsule import (
        CAPSULE_SIZE,
        capsule_info,
        parse_capsule,
        unwrap_dek,
        wrap_dek,
    )
    from govshare.crypto.envelope import (
        DEFAULT_SEGMENT_SIZE,
        DEK_SIZE,
        HEADER_SIZE,
        DecryptResult,
        EncryptingReader,
        EncryptResult,
        EnvelopeHeader,
        ciphertext_size,
        decrypt_bytes,
        decrypt_to_file,
        encrypt_bytes,
        encrypt_stream,
        iter_decrypt,
        new_dek,
        parse_header,
        verify,
    )
    from govshare.crypto.keys import EthKey, HpkePrivateKey, generate_keypair
    from govshare.crypto.keystore import (
        ENV_PASSWORD,
        ENV_PASSWORD_FILE,
        load_eth_keystore,
        load_hpke_key,
        read_eth_address,
        read_hpke_public_key,
        resolve_password,
        save_eth_keystore,
        save_hpke_key,
    )

# Each name is imported from its module when first used (PEP 562): `govshare.crypto.keystore`
# alone does not pull in HPKE or the envelope code, so light commands stay light.
_WHERE: dict[str, str] = {
    "CAPSULE_SIZE": "govshare.crypto.capsule",
    "DEFAULT_SEGMENT_SIZE": "govshare.crypto.envelope",
    "DEK_SIZE": "govshare.crypto.envelope",
    "DecryptResult": "govshare.crypto.envelope",
    "ENV_PASSWORD": "govshare.crypto.keystore",
    "ENV_PASSWORD_FILE": "govshare.crypto.keystore",
    "EncryptResult": "govshare.crypto.envelope",
    "EncryptingReader": "govshare.crypto.envelope",
    "EnvelopeHeader": "govshare.crypto.envelope",
    "EthKey": "govshare.crypto.keys",
    "HEADER_SIZE": "govshare.crypto.envelope",
    "HpkePrivateKey": "govshare.crypto.keys",
    "capsule_info": "govshare.crypto.capsule",
    "ciphertext_size": "govshare.crypto.envelope",
    "decrypt_bytes": "govshare.crypto.envelope",
    "decrypt_to_file": "govshare.crypto.envelope",
    "encrypt_bytes": "govshare.crypto.envelope",
    "encrypt_stream": "govshare.crypto.envelope",
    "generate_keypair": "govshare.crypto.keys",
    "iter_decrypt": "govshare.crypto.envelope",
    "load_eth_keystore": "govshare.crypto.keystore",
    "load_hpke_key": "govshare.crypto.keystore",
    "new_dek": "govshare.crypto.envelope",
    "parse_capsule": "govshare.crypto.capsule",
    "parse_header": "govshare.crypto.envelope",
    "read_eth_address": "govshare.crypto.keystore",
    "read_hpke_public_key": "govshare.crypto.keystore",
    "resolve_password": "govshare.crypto.keystore",
    "save_eth_keystore": "govshare.crypto.keystore",
    "save_hpke_key": "govshare.crypto.keystore",
    "unwrap_dek": "govshare.crypto.capsule",
    "verify": "govshare.crypto.envelope",
    "wrap_dek": "govshare.crypto.capsule",
}

__all__ = [
    "CAPSULE_SIZE",
    "DEFAULT_SEGMENT_SIZE",
    "DEK_SIZE",
    "ENV_PASSWORD",
    "ENV_PASSWORD_FILE",
    "HEADER_SIZE",
    "DecryptResult",
    "EncryptResult",
    "EncryptingReader",
    "EnvelopeHeader",
    "EthKey",
    "HpkePrivateKey",
    "capsule_info",
    "ciphertext_size",
    "decrypt_bytes",
    "decrypt_to_file",
    "encrypt_bytes",
    "encrypt_stream",
    "generate_keypair",
    "iter_decrypt",
    "load_eth_keystore",
    "load_hpke_key",
    "new_dek",
    "parse_capsule",
    "parse_header",
    "read_eth_address",
    "read_hpke_public_key",
    "resolve_password",
    "save_eth_keystore",
    "save_hpke_key",
    "unwrap_dek",
    "verify",
    "wrap_dek",
]


__getattr__, __dir__ = lazy_exports(__name__, _WHERE, __all__)
