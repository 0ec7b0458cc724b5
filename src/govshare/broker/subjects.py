"""Subject references: who a record is about, without saying it on chain.

A record's subject (a citizen's id number, a company's registration code) goes
on chain only as a keyed hash::

    subject_ref = HMAC-SHA256(subject_key, "govshare/subject/v1" ‖ 0x00 ‖ utf8(normalise(id)))

A plain hash would not do: personal and enterprise ids are so structured that
every possible id can be hashed and the chain read back by dictionary. The
*consortium subject key* is a 32-byte secret shared by the member departments
(so that the same person gets the same reference at every department, and a
clerk can ask for "TAX's record about company X") and never put on chain.

Where the key comes from, in order:

1. the ``subject_key`` setting (``GOVSHARE_SUBJECT_KEY``, 64 hex digits);
2. the file named by the ``subject_key_file`` setting (``GOVSHARE_SUBJECT_KEY_FILE``);
3. ``subject.key`` in the department's profile directory (64 hex digits, 0600).

``govshare init`` writes ``subject.key``: from (1) or (2) when set, else a copy
of another department's key in the same home (a one-machine consortium shares
one), else a fresh random key. In a real consortium one member generates the key
and hands it to the others over a secure channel, like the IPFS swarm key.

Normalising: Unicode NFKC (full-width digits become ASCII), spaces and hyphens
removed, upper case: ``" 9111 0000-7109 2841xa "`` → ``"9111000071092841XA"``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import unicodedata
from pathlib import Path

from govshare.errors import ConfigError, InputError

ENV_SUBJECT_KEY = "GOVSHARE_SUBJECT_KEY"
ENV_SUBJECT_KEY_FILE = "GOVSHARE_SUBJECT_KEY_FILE"
SUBJECT_KEY_FILE = "subject.key"
KEY_SIZE = 32
_LABEL = b"govshare/subject/v1\x00"
_MAX_SUBJECT = 256


def normalise_subject(subject: str) -> str:
    """The canonical text of a subject id (see the module docstring)."""
    text = unicodedata.normalize("NFKC", subject or "")
    text = "".join(ch for ch in text if not ch.isspace() and ch not in "-\u2010\u2011\u2012")
    text = text.upper()
    if not text:
        raise InputError("The subject id is empty.")
    if len(text) > _MAX_SUBJECT:
        raise InputError(f"A subject id is at most {_MAX_SUBJECT} characters.")
    return text


def subject_ref(key: bytes, subject: str) -> bytes:
    """The 32-byte keyed reference of ``subject`` (what is anchored on chain)."""
    _check_key(key)
    data = _LABEL + normalise_subject(subject).encode("utf-8")
    return hmac.new(key, data, hashlib.sha256).digest()


def _check_key(key: object) -> bytes:
    if not isinstance(key, bytes | bytearray) or len(key) != KEY_SIZE:
        raise ConfigError(f"The consortium subject key must be {KEY_SIZE} bytes.")
    return bytes(key)


def _parse(text: str, where: str) -> bytes:
    raw = text.strip().removeprefix("0x")
    try:
        key = bytes.fromhex(raw)
    except ValueError:
        raise ConfigError(f"The subject key in {where} is not hexadecimal.") from None
    if len(key) != KEY_SIZE:
        raise ConfigError(f"The subject key in {where} must be {KEY_SIZE} bytes (64 hex digits).")
    return key


def _read(path: Path, where: str) -> bytes:
    try:
        return _parse(path.read_text(encoding="ascii"), where)
    except FileNotFoundError:
        raise ConfigError(f"The subject key file {where} does not exist.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"The subject key file {where} cannot be read ({type(exc).__name__})."
        ) from None


def configured_key(
    key: str | None = None, key_file: str | os.PathLike[str] | None = None
) -> bytes | None:
    """The key the settings give (``subject_key``, else ``subject_key_file``), if any."""
    if key:
        return _parse(key, ENV_SUBJECT_KEY)
    if key_file:
        return _read(Path(key_file), ENV_SUBJECT_KEY_FILE)
    return None


def load_subject_key(
    profile_dir: Path,
    *,
    key: str | None = None,
    key_file: str | os.PathLike[str] | None = None,
) -> bytes:
    """The consortium subject key for a department's broker: ``key`` / ``key_file``
    (the settings), else the profile's ``subject.key`` (see the module docstring)."""
    given = configured_key(key, key_file)
    if given is not None:
        return given
    path = Path(profile_dir) / SUBJECT_KEY_FILE
    if not path.is_file():
        raise ConfigError(
            f"No consortium subject key: {SUBJECT_KEY_FILE} is missing from the profile and "
            f"neither {ENV_SUBJECT_KEY} nor {ENV_SUBJECT_KEY_FILE} is set. Every member "
            "department needs the same key; copy it from another member over a secure channel."
        )
    return _read(path, SUBJECT_KEY_FILE)


def write_subject_key(profile_dir: Path, key: bytes) -> Path:
    """Write ``subject.key`` (0600) into a profile directory; refuses to replace a different key."""
    key = _check_key(key)
    path = Path(profile_dir) / SUBJECT_KEY_FILE
    if path.exists():
        if hmac.compare_digest(_read(path, SUBJECT_KEY_FILE), key):
            return path
        raise InputError(
            f"{path.parent.name} already has a different subject key; nothing was changed."
        )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(key.hex() + "\n")
    return path


def ensure_subject_key(
    home: Path,
    profile_dir: Path,
    *,
    key: str | None = None,
    key_file: str | os.PathLike[str] | None = None,
) -> tuple[bytes, str]:
    """Give a new profile its subject key; returns the key and where it came from
    (``"env"``: ``key`` / ``key_file``, the settings; ``"copied from CODE"``,
    ``"existing"`` or ``"generated"``)."""
    existing = Path(profile_dir) / SUBJECT_KEY_FILE
    given = configured_key(key, key_file)
    if given is not None:
        write_subject_key(profile_dir, given)
        return given, "env"
    if existing.is_file():
        return _read(existing, SUBJECT_KEY_FILE), "existing"
    depts = Path(home) / "depts"
    if depts.is_dir():
        for other in sorted(depts.iterdir()):
            candidate = other / SUBJECT_KEY_FILE
            if other != Path(profile_dir) and candidate.is_file():
                copied = _read(candidate, f"{other.name}/{SUBJECT_KEY_FILE}")
                write_subject_key(profile_dir, copied)
                return copied, f"copied from {other.name}"
    fresh = secrets.token_bytes(KEY_SIZE)
    write_subject_key(profile_dir, fresh)
    return fresh, "generated"
