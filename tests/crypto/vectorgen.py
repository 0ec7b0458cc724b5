"""Known-answer vectors for the envelope and capsule formats (``tests/vectors/*_v1.json``).

Regenerate (only when a format version changes; the tests fail if the output drifts)::

    .venv/bin/python -m tests.crypto.vectorgen

Randomness is made deterministic here only: the envelope's salt and nonce prefix by
swapping ``govshare.crypto.envelope._urandom`` for a seeded generator, the capsule's
ephemeral key by sealing with the test-only RFC 9180 reference implementation.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from govshare.crypto import capsule as capsule_mod
from govshare.crypto import envelope
from govshare.crypto.keys import HpkePrivateKey

from . import reference_hpke

VECTORS = Path(__file__).resolve().parent.parent / "vectors"
ENVELOPE_FILE = VECTORS / "envelope_v1.json"
CAPSULE_FILE = VECTORS / "capsule_v1.json"


def drbg(seed: bytes) -> Callable[[int], bytes]:
    """Deterministic bytes: SHA-256(seed ‖ counter) blocks. For vectors only."""
    state = {"counter": 0}

    def take(n: int) -> bytes:
        out = b""
        while len(out) < n:
            out += hashlib.sha256(seed + state["counter"].to_bytes(8, "big")).digest()
            state["counter"] += 1
        return out[:n]

    return take


@contextlib.contextmanager
def deterministic_randomness(seed: bytes) -> Iterator[None]:
    saved = envelope._urandom
    envelope._urandom = drbg(seed)
    try:
        yield
    finally:
        envelope._urandom = saved


def segments(blob: bytes, segment_size: int) -> list[bytes]:
    """Split an envelope's body into its ciphertext segments."""
    body = blob[envelope.HEADER_SIZE :]
    first = segment_size - envelope.TINK_HEADER_SIZE
    out = [body[:first]]
    rest = body[first:]
    while rest:
        out.append(rest[:segment_size])
        rest = rest[segment_size:]
    return out


def join(blob: bytes, segs: list[bytes]) -> bytes:
    return blob[: envelope.HEADER_SIZE] + b"".join(segs)


def flip(blob: bytes, index: int, mask: int = 0x01) -> bytes:
    return blob[:index] + bytes([blob[index] ^ mask]) + blob[index + 1 :]


# (name, segment_size, plaintext length) — S=64 puts 8 bytes in segment 0, 48 in the others.
ENVELOPE_CASES = [
    ("empty", 64, 0),
    ("one-byte", 64, 1),
    ("first-segment-exactly", 64, 8),
    ("first-segment-plus-one", 64, 9),
    ("two-segments-exactly", 64, 56),
    ("two-segments-minus-one", 64, 55),
    ("two-segments-plus-one", 64, 57),
    ("several-segments", 100, 500),
    ("default-segment-size", envelope.DEFAULT_SEGMENT_SIZE, 1000),
]


def _plaintext(name: str, n: int) -> bytes:
    return drbg(b"govshare test plaintext " + name.encode())(n)


def make_envelope_vectors() -> dict[str, Any]:
    positive = []
    for i, (name, seg, n) in enumerate(ENVELOPE_CASES):
        with deterministic_randomness(b"govshare envelope vector %d" % i):
            dek = envelope.new_dek()
            plaintext = _plaintext(name, n)
            blob, result = envelope.encrypt_bytes(plaintext, dek=dek, segment_size=seg)
        header = envelope.parse_header(blob)
        positive.append(
            {
                "name": name,
                "segment_size": seg,
                "dek": dek.hex(),
                "salt": header.salt.hex(),
                "nonce_prefix": header.nonce_prefix.hex(),
                "commitment": result.commitment.hex(),
                "segment_key": envelope._segment_key(
                    dek, header.salt, header.associated_data
                ).hex(),
                "plaintext": plaintext.hex(),
                "plaintext_sha256": result.plaintext_sha256.hex(),
                "envelope": blob.hex(),
            }
        )

    base = next(v for v in positive if v["name"] == "several-segments")
    blob, seg, dek = bytes.fromhex(base["envelope"]), base["segment_size"], base["dek"]
    segs = segments(blob, seg)
    other_dek = hashlib.sha256(b"not the dek").hexdigest()
    version2 = blob[:4] + b"\x02" + blob[5:]
    negative_cases: list[tuple[str, bytes, str, str]] = [
        ("bad-magic", flip(blob, 0), dek, "crypto.envelope_malformed"),
        ("unsupported-version", version2, dek, "crypto.envelope_unsupported"),
        ("segment-size-changed", flip(blob, 9), dek, "crypto.header_tampered"),
        ("commitment-flipped", flip(blob, 20), dek, "crypto.key_commitment_mismatch"),
        ("header-tag-flipped", flip(blob, 50), dek, "crypto.header_tampered"),
        ("salt-flipped", flip(blob, 80), dek, "crypto.header_tampered"),
        ("nonce-prefix-flipped", flip(blob, 110), dek, "crypto.header_tampered"),
        ("wrong-dek", blob, other_dek, "crypto.key_commitment_mismatch"),
        ("segment-0-flipped", flip(blob, envelope.HEADER_SIZE), dek, "crypto.segment_auth_failed"),
        ("last-tag-flipped", flip(blob, len(blob) - 1), dek, "crypto.segment_auth_failed"),
        ("segments-1-2-swapped", join(blob, [segs[0], segs[2], segs[1], *segs[3:]]), dek,
         "crypto.segment_auth_failed"),
        ("segment-1-duplicated", join(blob, [segs[0], segs[1], *segs[1:]]), dek,
         "crypto.segment_auth_failed"),
        ("last-segment-dropped", join(blob, segs[:-1]), dek, "crypto.envelope_truncated"),
        ("cut-inside-header", blob[:60], dek, "crypto.envelope_truncated"),
        ("header-only", blob[: envelope.HEADER_SIZE], dek, "crypto.envelope_truncated"),
        ("trailing-byte", blob + b"\x00", dek, "crypto.segment_auth_failed"),
        ("empty", b"", dek, "crypto.envelope_truncated"),
    ]  # fmt: skip
    negative = [
        {"name": name, "from": base["name"], "dek": d, "envelope": b.hex(), "error": code}
        for name, b, d, code in negative_cases
    ]
    # A payload that fills its last segment exactly: a tail after it is recognised as such.
    full = next(v for v in positive if v["name"] == "two-segments-exactly")
    negative.append(
        {
            "name": "tail-after-full-last-segment",
            "from": full["name"],
            "dek": full["dek"],
            "envelope": full["envelope"] + "00" * 20,
            "error": "crypto.envelope_trailing_data",
        }
    )
    return {
        "description": "govshare envelope format v1 (docs/envelope-format.md); salt and nonce "
        "prefix drawn from a seeded generator; see tests/crypto/vectorgen.py",
        "positive": positive,
        "negative": negative,
    }


def make_capsule_vectors() -> dict[str, Any]:
    seed = drbg(b"govshare capsule vectors")
    recipient = HpkePrivateKey.from_private_bytes(seed(32))
    other = HpkePrivateKey.from_private_bytes(seed(32))
    contexts = [
        ("owner", "rec-0001", None, "TAX"),
        ("grant", "rec-0001", "17", "MARKET"),
        ("bytes-record-int-grant", bytes(range(32)), 42, "market"),
    ]
    positive = []
    for name, record, grant, dept in contexts:
        dek = seed(32)
        ephemeral = X25519PrivateKey.from_private_bytes(seed(32))
        info = capsule_mod.capsule_info(record_id=record, grant_id=grant, recipient_dept=dept)
        header = capsule_mod.MAGIC + bytes([capsule_mod.VERSION, 1])
        sealed = reference_hpke.seal(recipient.public_key_bytes, info, dek, ephemeral)
        positive.append(
            {
                "name": name,
                "recipient_private_key": recipient.private_bytes().hex(),
                "recipient_public_key": recipient.public_key_bytes.hex(),
                "ephemeral_private_key": ephemeral.private_bytes_raw().hex(),
                "record_id": record.hex() if isinstance(record, bytes) else record,
                "record_id_is_bytes": isinstance(record, bytes),
                "grant_id": grant,
                "recipient_dept": dept,
                "info": info.hex(),
                "dek": dek.hex(),
                "capsule": (header + sealed).hex(),
            }
        )
    base = positive[1]
    cap = bytes.fromhex(base["capsule"])
    ctx = {"record_id": "rec-0001", "grant_id": "17", "recipient_dept": "MARKET"}
    negative_cases: list[tuple[str, bytes, str, dict[str, Any], str]] = [
        ("other-record", cap, "recipient", {**ctx, "record_id": "rec-0002"},
         "crypto.capsule_open_failed"),
        ("other-grant", cap, "recipient", {**ctx, "grant_id": "18"}, "crypto.capsule_open_failed"),
        ("owner-instead-of-grant", cap, "recipient", {**ctx, "grant_id": None},
         "crypto.capsule_open_failed"),
        ("other-department", cap, "recipient", {**ctx, "recipient_dept": "TAX"},
         "crypto.capsule_open_failed"),
        ("wrong-private-key", cap, "other", ctx, "crypto.capsule_open_failed"),
        ("enc-flipped", flip(cap, 10), "recipient", ctx, "crypto.capsule_open_failed"),
        ("ciphertext-flipped", flip(cap, 60), "recipient", ctx, "crypto.capsule_open_failed"),
        ("tag-flipped", flip(cap, len(cap) - 1), "recipient", ctx, "crypto.capsule_open_failed"),
        ("version-2", cap[:4] + b"\x02" + cap[5:], "recipient", ctx,
         "crypto.capsule_unsupported"),
        ("suite-3", cap[:5] + b"\x03" + cap[6:], "recipient", ctx, "crypto.capsule_unsupported"),
        # suite 2 (ML-KEM-768 + X25519) is 1,174 bytes: a suite-1-sized one is cut short
        ("suite-2-cut-short", cap[:5] + b"\x02" + cap[6:], "recipient", ctx,
         "crypto.capsule_malformed"),
        ("bad-magic", flip(cap, 1), "recipient", ctx, "crypto.capsule_malformed"),
        ("truncated", cap[:-1], "recipient", ctx, "crypto.capsule_malformed"),
        ("extended", cap + b"\x00", "recipient", ctx, "crypto.capsule_malformed"),
    ]  # fmt: skip
    negative = [
        {
            "name": name,
            "capsule": c.hex(),
            "private_key": (recipient if who == "recipient" else other).private_bytes().hex(),
            **context,
            "error": code,
        }
        for name, c, who, context, code in negative_cases
    ]
    return {
        "description": "govshare key capsule format v1 (docs/envelope-format.md): HPKE base "
        "mode, DHKEM(X25519, HKDF-SHA256)/HKDF-SHA256/AES-256-GCM; sealed with a fixed "
        "ephemeral key by tests/crypto/reference_hpke.py; see tests/crypto/vectorgen.py",
        "positive": positive,
        "negative": negative,
    }


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=1) + "\n"


def main() -> None:
    ENVELOPE_FILE.write_text(render(make_envelope_vectors()))
    CAPSULE_FILE.write_text(render(make_capsule_vectors()))


if __name__ == "__main__":
    main()
