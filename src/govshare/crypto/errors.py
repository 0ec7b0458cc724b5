"""Errors raised by :mod:`govshare.crypto`, refining the tree in :mod:`govshare.errors`.

    InputError
    ├── InvalidKey                     a key or DEK of the wrong type or length
    ├── PasswordMismatch               the two prompted passwords differ
    └── KeystoreExists                 refusing to overwrite a key file
    NotFound
    └── KeystoreNotFound
    KeyError_
    ├── WrongPassword                  (from govshare.errors, raised as is)
    ├── PasswordUnavailable            no password argument, env var, file or terminal
    └── KeystoreMalformed              a key file that is not one of our formats
    IntegrityError
    ├── EnvelopeMalformed              not an envelope: bad magic, short header, bad field
    │   └── EnvelopeUnsupported        a version or suite this build cannot read
    ├── CapsuleMalformed               not a capsule
    │   └── CapsuleUnsupported
    ├── PlaintextHashMismatch          decrypted fine, but not the payload anchored on chain
    └── DecryptionError
        ├── KeyCommitmentMismatch      the DEK is not the one this envelope was made with
        ├── HeaderTampered             the header's MAC does not verify
        ├── SegmentAuthFailed          a segment's GCM tag does not verify
        ├── EnvelopeTruncated          the stream ends before its final segment
        ├── EnvelopeTrailingData       bytes follow the final segment
        └── CapsuleOpenFailed          wrong private key, or capsule bound to another context

Every class has a stable ``code``. Messages never contain key material; the
``details`` hold only public values (segment index, hashes, sizes).
"""

from __future__ import annotations

from govshare.errors import (
    DecryptionError,
    InputError,
    IntegrityError,
    KeyError_,
    NotFound,
    WrongPassword,
)

__all__ = [
    "CapsuleMalformed",
    "CapsuleOpenFailed",
    "CapsuleUnsupported",
    "EnvelopeMalformed",
    "EnvelopeTrailingData",
    "EnvelopeTruncated",
    "EnvelopeUnsupported",
    "HeaderTampered",
    "InvalidKey",
    "KeyCommitmentMismatch",
    "KeystoreExists",
    "KeystoreMalformed",
    "KeystoreNotFound",
    "PasswordMismatch",
    "PasswordUnavailable",
    "PlaintextHashMismatch",
    "SegmentAuthFailed",
    "WrongPassword",
]


class InvalidKey(InputError):
    code = "crypto.invalid_key"


class PasswordMismatch(InputError):
    code = "key.password_mismatch"


class KeystoreExists(InputError):
    code = "key.keystore_exists"
    status = 409


class KeystoreNotFound(NotFound):
    code = "key.keystore_not_found"


class PasswordUnavailable(KeyError_):
    code = "key.password_unavailable"
    status = 400


class KeystoreMalformed(KeyError_):
    code = "key.keystore_malformed"


class EnvelopeMalformed(IntegrityError):
    code = "crypto.envelope_malformed"


class EnvelopeUnsupported(EnvelopeMalformed):
    code = "crypto.envelope_unsupported"


class CapsuleMalformed(IntegrityError):
    code = "crypto.capsule_malformed"


class CapsuleUnsupported(CapsuleMalformed):
    code = "crypto.capsule_unsupported"


class PlaintextHashMismatch(IntegrityError):
    code = "crypto.plaintext_hash_mismatch"


class KeyCommitmentMismatch(DecryptionError):
    code = "crypto.key_commitment_mismatch"


class HeaderTampered(DecryptionError):
    code = "crypto.header_tampered"


class SegmentAuthFailed(DecryptionError):
    code = "crypto.segment_auth_failed"


class EnvelopeTruncated(DecryptionError):
    code = "crypto.envelope_truncated"


class EnvelopeTrailingData(DecryptionError):
    code = "crypto.envelope_trailing_data"


class CapsuleOpenFailed(DecryptionError):
    code = "crypto.capsule_open_failed"
