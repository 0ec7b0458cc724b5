"""Make ``tests/vectors/envelope_v1_tink.json``: govshare envelopes whose stream part was
written by Google Tink itself, as an independent check of the segment layer.

Not a test and not run in CI (Tink is not a govshare dependency). To regenerate, in a
throwaway virtualenv with ``tink`` and ``cryptography`` installed::

    python tests/crypto/gen_tink_vector.py > tests/vectors/envelope_v1_tink.json

The govshare preamble is built here the same way ``govshare.crypto.envelope`` does
(a deliberate second implementation); Tink encrypts the payload with that preamble as
its associated data, and the header MAC is then computed over the preamble and
Tink's header.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib.metadata
import io
import json
import sys

import tink
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from tink import streaming_aead
from tink.proto import aes_gcm_hkdf_streaming_pb2, common_pb2
from tink.secret_key_access import TOKEN

LABEL = b"govshare/envelope/v1/"


def hkdf(ikm: bytes, salt: bytes | None, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)


class _Keep(io.BytesIO):
    def close(self) -> None:  # Tink closes the destination; keep its bytes readable
        pass


def make(segment_size: int, plaintext: bytes) -> dict[str, object]:
    template = (
        streaming_aead.streaming_aead_key_templates.create_aes_gcm_hkdf_streaming_key_template(
            32, common_pb2.SHA256, 32, segment_size
        )
    )
    handle = tink.new_keyset_handle(template)
    keyset = json.loads(tink.json_proto_keyset_format.serialize(handle, TOKEN))
    key = aes_gcm_hkdf_streaming_pb2.AesGcmHkdfStreamingKey.FromString(
        base64.b64decode(keyset["key"][0]["keyData"]["value"])
    )
    dek = key.key_value
    preamble = b"GSEV" + bytes([1, 1]) + segment_size.to_bytes(4, "big")
    preamble += hkdf(dek, None, LABEL + b"commitment")
    out = _Keep()
    with handle.primitive(streaming_aead.StreamingAead).new_encrypting_stream(
        out, preamble
    ) as writer:
        writer.write(plaintext)
    stream = out.getvalue()
    tag = hmac.new(
        hkdf(dek, None, LABEL + b"header-mac"), preamble + stream[:40], hashlib.sha256
    ).digest()
    return {
        "segment_size": segment_size,
        "dek": dek.hex(),
        "plaintext": plaintext.hex(),
        "plaintext_sha256": hashlib.sha256(plaintext).hexdigest(),
        "envelope": (preamble + tag + stream).hex(),
    }


def main() -> None:
    streaming_aead.register()
    cases = [
        make(128, b""),
        make(128, bytes(range(256)) + b"made by tink"),
        make(4096, b"x" * 5000),
    ]
    json.dump(
        {
            "description": "govshare envelope v1 whose stream part was written by Google Tink "
            f"{importlib.metadata.version('tink')} (AES-GCM-HKDF streaming, "
            "HKDF-SHA256, 32-byte derived key); see tests/crypto/gen_tink_vector.py",
            "cases": cases,
        },
        sys.stdout,
        indent=1,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
