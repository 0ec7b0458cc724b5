"""Guard the public API of govshare.crypto that the broker and CLI build on."""

from __future__ import annotations

import govshare.crypto as crypto
from govshare.crypto import errors as crypto_errors
from govshare.errors import GovShareError

EXPECTED = {
    "CAPSULE_SIZE", "DEFAULT_SEGMENT_SIZE", "DEK_SIZE", "ENV_PASSWORD", "ENV_PASSWORD_FILE",
    "HEADER_SIZE", "DecryptResult", "EncryptResult", "EncryptingReader", "EnvelopeHeader",
    "EthKey", "HpkePrivateKey", "capsule_info", "ciphertext_size", "decrypt_bytes",
    "decrypt_to_file", "encrypt_bytes", "encrypt_stream", "generate_keypair", "iter_decrypt",
    "load_eth_keystore", "load_hpke_key", "new_dek", "parse_capsule", "parse_header",
    "read_eth_address", "read_hpke_public_key", "resolve_password", "save_eth_keystore",
    "save_hpke_key", "unwrap_dek", "verify", "wrap_dek",
}  # fmt: skip


def test_exported_members() -> None:
    assert set(crypto.__all__) == EXPECTED
    for name in crypto.__all__:
        assert getattr(crypto, name) is not None


def test_error_codes_are_unique_and_in_the_tree() -> None:
    codes: dict[str, str] = {}
    for name in crypto_errors.__all__:
        cls = getattr(crypto_errors, name)
        assert issubclass(cls, GovShareError)
        assert cls.code not in codes or codes[cls.code] == name, (name, codes.get(cls.code))
        codes[cls.code] = name
