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
    """A key or data key of the wrong type or length."""

    code = "crypto.invalid_key"
    remedy = "Use the key file govshare wrote; it may be damaged or of another kind."


class PasswordMismatch(InputError):
    """The two typed passwords differ."""

    code = "key.password_mismatch"
    remedy = "Type the same password twice; nothing was written."


class KeystoreExists(InputError):
    """Refusing to overwrite an existing key file."""

    code = "key.keystore_exists"
    status = 409
    remedy = "Choose another department code or home, or move the old profile away first."


class KeystoreNotFound(NotFound):
    """No key file where the profile says."""

    code = "key.keystore_not_found"
    remedy = "Check --home / GOVSHARE_HOME; restore the profile from its backup."


class PasswordUnavailable(KeyError_):
    """No password: no argument, setting, file or terminal."""

    code = "key.password_unavailable"
    status = 400
    remedy = "Set GOVSHARE_PASSWORD or GOVSHARE_PASSWORD_FILE, or run in a terminal to be asked."


class KeystoreMalformed(KeyError_):
    """A key file that is not one of govshare's formats."""

    code = "key.keystore_malformed"
    remedy = "Restore the key file from its backup; it may be damaged."


class EnvelopeMalformed(IntegrityError):
    """Not an envelope: a bad magic, a short header or a bad field."""

    code = "crypto.envelope_malformed"
    remedy = "Do not use the data; fetch it again from its owner."


class EnvelopeUnsupported(EnvelopeMalformed):
    """An envelope version or suite this build cannot read."""

    code = "crypto.envelope_unsupported"
    remedy = "Upgrade govshare to the version that wrote it."


class CapsuleMalformed(IntegrityError):
    """Not a capsule (a wrapped data key)."""

    code = "crypto.capsule_malformed"
    remedy = "Fetch the record again; tell the owner's operator if it repeats."


class CapsuleUnsupported(CapsuleMalformed):
    """A capsule version or suite this build cannot read."""

    code = "crypto.capsule_unsupported"
    remedy = "Upgrade govshare to the version that wrote it."


class PlaintextHashMismatch(IntegrityError):
    """Decrypted fine, but not the payload anchored on chain."""

    code = "crypto.plaintext_hash_mismatch"
    remedy = "Do not use the data; report it to the owner and to the supervisor."


class KeyCommitmentMismatch(DecryptionError):
    """The data key is not the one this envelope was made with."""

    code = "crypto.key_commitment_mismatch"
    remedy = "Do not use the data; fetch it again from its owner."


class HeaderTampered(DecryptionError):
    """The envelope header's MAC does not verify."""

    code = "crypto.header_tampered"
    remedy = "Do not use the data; fetch it again from its owner."


class SegmentAuthFailed(DecryptionError):
    """A segment's authentication tag does not verify: altered ciphertext."""

    code = "crypto.segment_auth_failed"
    remedy = "Do not use the data; fetch it again from its owner."


class EnvelopeTruncated(DecryptionError):
    """The ciphertext ends before its final segment."""

    code = "crypto.envelope_truncated"
    remedy = "Fetch it again: the transfer or the stored copy was cut short."


class EnvelopeTrailingData(DecryptionError):
    """Bytes follow the final segment of the envelope."""

    code = "crypto.envelope_trailing_data"
    remedy = "Do not use the data; fetch it again from its owner."


class CapsuleOpenFailed(DecryptionError):
    """The capsule does not open: a wrong private key, or bound to another grant."""

    code = "crypto.capsule_open_failed"
    remedy = "Check that the department's HPKE key is the registry's; fetch again."
