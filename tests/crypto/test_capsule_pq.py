"""Post-quantum capsules: suite 2, ML-KEM-768 + X25519 (``crypto/keys.py``,
``crypto/capsule.py``), beside the classic suite 1, and its key file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from govshare.crypto import capsule
from govshare.crypto.errors import CapsuleOpenFailed, InvalidKey
from govshare.crypto.keys import (
    HYBRID_PUBLIC_SIZE,
    KEM_MLKEM768_X25519,
    KEM_X25519,
    KEMS,
    HpkePrivateKey,
    check_public_key,
    kem_of,
)
from govshare.crypto.keystore import load_hpke_key, read_hpke_public_key, save_hpke_key
from govshare.errors import WrongPassword

from . import reference_hpke

CTX = {"record_id": "rec-0001", "grant_id": "17", "recipient_dept": "MARKET"}


@pytest.fixture(scope="module")
def pq() -> HpkePrivateKey:
    return HpkePrivateKey.generate(KEM_MLKEM768_X25519)


def test_a_pq_key_wraps_and_opens_in_suite_2(pq: HpkePrivateKey) -> None:
    assert pq.kem == KEM_MLKEM768_X25519 and len(pq.public_key_bytes) == HYBRID_PUBLIC_SIZE
    assert kem_of(pq.public_key_bytes) == KEM_MLKEM768_X25519
    dek = os.urandom(32)
    cap = capsule.wrap_dek(dek, pq.public_key_bytes, **CTX)
    assert len(cap) == capsule.CAPSULE_SIZES[2] == 1174 and cap[5] == 2
    assert capsule.parse_capsule(cap).suite == 2
    assert capsule.unwrap_dek(cap, pq, **CTX) == dek
    assert capsule.MAX_CAPSULE_SIZE == 1174
    # and round trips through its 96 private bytes
    again = HpkePrivateKey.from_private_bytes(pq.private_bytes())
    assert again.public_key_bytes == pq.public_key_bytes
    assert capsule.unwrap_dek(cap, again, **CTX) == dek
    assert "secret redacted" in repr(pq) and pq.private_bytes().hex() not in repr(pq)


def test_a_second_implementation_opens_a_pq_capsule(pq: HpkePrivateKey) -> None:
    """The hybrid combiner and RFC 9180's schedule written again in the test's
    reference (ML-KEM-768 and X25519 from pyca): the capsule opens there too."""
    dek = os.urandom(32)
    cap = capsule.wrap_dek(dek, pq.public_key_bytes, **CTX)
    info = capsule.capsule_info(**CTX, header=cap[: capsule.CAPSULE_HEADER_SIZE])
    mlkem = HpkePrivateKey.from_private_bytes(pq.private_bytes())._mlkem
    assert mlkem is not None
    opened = reference_hpke.open_xwing(
        mlkem.decapsulate, pq.x25519, info, cap[capsule.CAPSULE_HEADER_SIZE :]
    )
    assert opened == dek


def test_suites_do_not_mix_and_contexts_still_bind(pq: HpkePrivateKey) -> None:
    classic = HpkePrivateKey.generate()
    assert classic.kem == KEM_X25519 and capsule.CAPSULE_SIZES[1] == 86
    dek = os.urandom(32)
    to_pq = capsule.wrap_dek(dek, pq.public_key_bytes, **CTX)
    to_classic = capsule.wrap_dek(dek, classic.public_key_bytes, **CTX)
    assert len(to_classic) == 86 and to_classic[5] == 1
    with pytest.raises(CapsuleOpenFailed):
        capsule.unwrap_dek(to_pq, classic, **CTX)
    with pytest.raises(CapsuleOpenFailed):
        capsule.unwrap_dek(to_classic, pq, **CTX)
    with pytest.raises(CapsuleOpenFailed):
        capsule.unwrap_dek(to_pq, pq, **{**CTX, "record_id": "rec-0002"})
    with pytest.raises(CapsuleOpenFailed):
        capsule.unwrap_dek(to_pq, HpkePrivateKey.generate(KEM_MLKEM768_X25519), **CTX)
    flipped = to_pq[:100] + bytes([to_pq[100] ^ 1]) + to_pq[101:]
    with pytest.raises(CapsuleOpenFailed):
        capsule.unwrap_dek(flipped, pq, **CTX)


@pytest.mark.parametrize("size", [0, 31, 33, 1184, 1215, 1217, 2048])
def test_public_keys_of_other_sizes_are_refused(size: int) -> None:
    with pytest.raises(InvalidKey):
        kem_of(b"\x01" * size)
    with pytest.raises(InvalidKey):
        capsule.wrap_dek(os.urandom(32), b"\x01" * size, **CTX)


def test_a_hybrid_key_whose_ml_kem_half_is_not_a_key_is_refused() -> None:
    with pytest.raises(InvalidKey):
        check_public_key(b"\xff" * HYBRID_PUBLIC_SIZE)


def test_the_pq_key_file(tmp_path: Path, pq: HpkePrivateKey) -> None:
    path = tmp_path / "hpke.key.json"
    assert save_hpke_key(path, pq, "pw", dept="MARKET", scrypt_n=1024) == pq.public_key_bytes
    assert read_hpke_public_key(path) == pq.public_key_bytes
    loaded = load_hpke_key(path, "pw")
    assert loaded.kem == KEM_MLKEM768_X25519 and loaded.public_key_bytes == pq.public_key_bytes
    text = path.read_text()
    assert '"MLKEM768-X25519/HKDF-SHA256/AES-256-GCM"' in text
    assert pq.private_bytes().hex() not in text
    with pytest.raises(WrongPassword):
        load_hpke_key(path, "not the password")


def test_the_cli_offers_the_kems_the_keys_know() -> None:
    from govshare.cli.init_cmd import KEMS as CLI_KEMS

    assert CLI_KEMS == KEMS
