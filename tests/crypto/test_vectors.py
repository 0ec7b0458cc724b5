"""Known-answer vectors: the committed files still open (and still fail) as recorded,
and the encoder still produces them byte for byte."""

from __future__ import annotations

import json
from typing import Any

import pytest

from govshare.crypto import capsule, envelope
from govshare.crypto.keys import HpkePrivateKey
from govshare.errors import GovShareError

from . import reference_hpke, vectorgen


def _load(path: Any) -> dict[str, Any]:
    return json.loads(path.read_text())


ENVELOPES = _load(vectorgen.ENVELOPE_FILE)
CAPSULES = _load(vectorgen.CAPSULE_FILE)
TINK = _load(vectorgen.VECTORS / "envelope_v1_tink.json")


def test_generator_reproduces_the_committed_files() -> None:
    # The writer side: same DEK/salt/nonce in ⇒ same bytes out as when the vectors were made.
    assert (
        vectorgen.render(vectorgen.make_envelope_vectors()) == vectorgen.ENVELOPE_FILE.read_text()
    )
    assert vectorgen.render(vectorgen.make_capsule_vectors()) == vectorgen.CAPSULE_FILE.read_text()


@pytest.mark.parametrize("vec", ENVELOPES["positive"], ids=lambda v: v["name"])
def test_envelope_positive(vec: dict[str, Any]) -> None:
    blob, dek = bytes.fromhex(vec["envelope"]), bytes.fromhex(vec["dek"])
    plaintext = bytes.fromhex(vec["plaintext"])
    header = envelope.parse_header(blob)
    assert header.segment_size == vec["segment_size"]
    assert header.salt.hex() == vec["salt"]
    assert header.nonce_prefix.hex() == vec["nonce_prefix"]
    assert header.commitment.hex() == vec["commitment"]
    assert (
        envelope._segment_key(dek, header.salt, header.associated_data).hex() == vec["segment_key"]
    )
    out = envelope.decrypt_bytes(blob, dek, expected_sha256=vec["plaintext_sha256"])
    assert out == plaintext
    assert len(blob) == envelope.ciphertext_size(len(plaintext), vec["segment_size"])


@pytest.mark.parametrize("vec", ENVELOPES["negative"], ids=lambda v: v["name"])
def test_envelope_negative(vec: dict[str, Any]) -> None:
    with pytest.raises(GovShareError) as info:
        envelope.decrypt_bytes(bytes.fromhex(vec["envelope"]), bytes.fromhex(vec["dek"]))
    assert info.value.code == vec["error"]


@pytest.mark.parametrize("vec", TINK["cases"], ids=lambda v: f"S={v['segment_size']}")
def test_envelope_written_by_tink(vec: dict[str, Any]) -> None:
    # Stream part produced by Google Tink: an independent implementation of the construction.
    out = envelope.decrypt_bytes(
        bytes.fromhex(vec["envelope"]),
        bytes.fromhex(vec["dek"]),
        expected_sha256=vec["plaintext_sha256"],
    )
    assert out == bytes.fromhex(vec["plaintext"])


def _record(vec: dict[str, Any]) -> str | bytes:
    return bytes.fromhex(vec["record_id"]) if vec["record_id_is_bytes"] else vec["record_id"]


@pytest.mark.parametrize("vec", CAPSULES["positive"], ids=lambda v: v["name"])
def test_capsule_positive(vec: dict[str, Any]) -> None:
    key = HpkePrivateKey.from_private_bytes(bytes.fromhex(vec["recipient_private_key"]))
    assert key.public_key_bytes.hex() == vec["recipient_public_key"]
    ctx = {
        "record_id": _record(vec),
        "grant_id": vec["grant_id"],
        "recipient_dept": vec["recipient_dept"],
    }
    assert capsule.capsule_info(**ctx).hex() == vec["info"]
    cap = bytes.fromhex(vec["capsule"])
    # pyca's HPKE opens what the RFC 9180 reference sealed ...
    assert capsule.unwrap_dek(cap, key, **ctx).hex() == vec["dek"]
    # ... and the reference opens what pyca seals.
    fresh = capsule.wrap_dek(bytes.fromhex(vec["dek"]), key.public_key_bytes, **ctx)
    info = capsule.capsule_info(**ctx)
    opened = reference_hpke.open_(key.x25519, info, fresh[capsule.CAPSULE_HEADER_SIZE :])
    assert opened.hex() == vec["dek"]


@pytest.mark.parametrize("vec", CAPSULES["negative"], ids=lambda v: v["name"])
def test_capsule_negative(vec: dict[str, Any]) -> None:
    key = HpkePrivateKey.from_private_bytes(bytes.fromhex(vec["private_key"]))
    with pytest.raises(GovShareError) as info:
        capsule.unwrap_dek(
            bytes.fromhex(vec["capsule"]),
            key,
            record_id=vec["record_id"],
            grant_id=vec["grant_id"],
            recipient_dept=vec["recipient_dept"],
        )
    assert info.value.code == vec["error"]
