"""DEK capsules (HPKE): round trip, binding to record/grant/department, wrong keys, parsers."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from govshare.crypto import capsule, envelope
from govshare.crypto.capsule import CAPSULE_SIZE, parse_capsule, unwrap_dek, wrap_dek
from govshare.crypto.errors import CapsuleMalformed, CapsuleOpenFailed, InvalidKey
from govshare.crypto.keys import HpkePrivateKey, generate_keypair
from govshare.errors import GovShareError

from .vectorgen import flip

CTX = {"record_id": "rec-42", "grant_id": 7, "recipient_dept": "MARKET"}


@pytest.fixture(scope="module")
def keys() -> tuple[HpkePrivateKey, bytes]:
    return generate_keypair()


def test_round_trip_owner_and_grant(keys: tuple[HpkePrivateKey, bytes]) -> None:
    sk, pk = keys
    assert len(pk) == 32 and pk == sk.public_key_bytes
    dek = envelope.new_dek()
    for grant in (None, 7, "g-7", b"\x07" * 32):
        cap = wrap_dek(dek, pk, record_id="rec-42", grant_id=grant, recipient_dept="MARKET")
        assert len(cap) == CAPSULE_SIZE
        assert (
            unwrap_dek(cap, sk, record_id="rec-42", grant_id=grant, recipient_dept="MARKET") == dek
        )
        # The pyca key object works too.
        assert unwrap_dek(
            cap, sk.x25519, record_id="rec-42", grant_id=grant, recipient_dept="market"
        )


def test_same_dek_wraps_differently_each_time(keys: tuple[HpkePrivateKey, bytes]) -> None:
    _sk, pk = keys
    dek = envelope.new_dek()
    assert wrap_dek(dek, pk, **CTX) != wrap_dek(dek, pk, **CTX)  # fresh ephemeral key


@pytest.mark.parametrize(
    "moved",
    [
        {"record_id": "rec-43"},
        {"grant_id": 8},
        {"grant_id": None},
        {"grant_id": "owner"},
        {"recipient_dept": "TAX"},
        {"record_id": b"rec-42"},
    ],
    ids=["other-record", "other-grant", "as-owner", "grant-named-owner", "other-dept", "bytes-id"],
)
def test_capsule_moved_to_another_context_fails(
    keys: tuple[HpkePrivateKey, bytes], moved: dict[str, object]
) -> None:
    sk, pk = keys
    cap = wrap_dek(envelope.new_dek(), pk, **CTX)
    with pytest.raises(CapsuleOpenFailed):
        unwrap_dek(cap, sk, **{**CTX, **moved})  # type: ignore[arg-type]


def test_owner_capsule_is_not_a_grant_capsule(keys: tuple[HpkePrivateKey, bytes]) -> None:
    sk, pk = keys
    cap = wrap_dek(envelope.new_dek(), pk, record_id="r", grant_id=None, recipient_dept="TAX")
    with pytest.raises(CapsuleOpenFailed):
        unwrap_dek(cap, sk, record_id="r", grant_id="owner", recipient_dept="TAX")


def test_wrong_recipient_key(keys: tuple[HpkePrivateKey, bytes]) -> None:
    _, pk = keys
    cap = wrap_dek(envelope.new_dek(), pk, **CTX)
    other, _ = generate_keypair()
    with pytest.raises(CapsuleOpenFailed) as info:
        unwrap_dek(cap, other, **CTX)
    assert info.value.code == "crypto.capsule_open_failed"


def test_every_flipped_byte_fails(keys: tuple[HpkePrivateKey, bytes]) -> None:
    sk, pk = keys
    cap = wrap_dek(envelope.new_dek(), pk, **CTX)
    for i in range(len(cap)):
        with pytest.raises(GovShareError):
            unwrap_dek(flip(cap, i), sk, **CTX)


def test_bad_keys_and_ids(keys: tuple[HpkePrivateKey, bytes]) -> None:
    _sk, pk = keys
    dek = envelope.new_dek()
    with pytest.raises(InvalidKey):
        wrap_dek(dek, pk[:31], **CTX)
    with pytest.raises(InvalidKey):
        wrap_dek(dek, bytes(32), **CTX)  # a low-order point
    with pytest.raises(InvalidKey):
        wrap_dek(dek[:16], pk, **CTX)
    with pytest.raises(InvalidKey):
        wrap_dek(dek, pk, record_id="", grant_id=None, recipient_dept="TAX")
    with pytest.raises(InvalidKey):
        wrap_dek(dek, pk, record_id="r", grant_id=-1, recipient_dept="TAX")
    with pytest.raises(InvalidKey):
        wrap_dek(dek, pk, record_id="x" * 2000, grant_id=None, recipient_dept="TAX")
    cap = wrap_dek(dek, pk, **CTX)
    with pytest.raises(InvalidKey):
        unwrap_dek(cap, pk, **CTX)  # type: ignore[arg-type]
    with pytest.raises(InvalidKey):
        HpkePrivateKey.from_private_bytes(b"short")


def test_info_fields_cannot_be_shifted_into_each_other() -> None:
    # Length prefixes keep ("ab", "c") and ("a", "bc") apart.
    a = capsule.capsule_info(record_id="ab", grant_id="c", recipient_dept="D")
    b = capsule.capsule_info(record_id="a", grant_id="bc", recipient_dept="D")
    assert a != b


def test_private_key_never_printed(keys: tuple[HpkePrivateKey, bytes]) -> None:
    sk, _ = keys
    secret = sk.private_bytes().hex()
    for text in (repr(sk), str(sk), f"{sk}", f"{sk!r}", f"{sk}"):
        assert secret not in text and "redacted" in text
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(sk)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_property_capsule_parser_only_raises_govshare_errors(raw: bytes) -> None:
    sk = HpkePrivateKey.from_private_bytes(b"\x01" * 32)
    for candidate in (raw, capsule.MAGIC + raw, capsule.MAGIC + b"\x01\x01" + raw):
        with contextlib.suppress(CapsuleMalformed):
            parse_capsule(candidate)
        with pytest.raises(GovShareError):
            unwrap_dek(candidate, sk, **CTX)
