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

Free text that goes on chain — a request's purpose and legal basis, the reason
for a denial or a revocation — must not name a subject: every member reads the
chain and nothing can be erased from it (docs/privacy.md). :func:`identifiers_in`
finds the identifiers this module knows in such a text, however they are spaced
or written (full-width digits, lower case, groups split by spaces or hyphens):

- a PRC resident identity number (18 characters: a 6-digit area code, a real
  birth date ``YYYYMMDD`` from 1900 on, a 3-digit sequence, a check digit or
  ``X``; GB 11643-1999);
- a unified social credit code of an enterprise or organisation (18 characters
  of ``0-9 A-H J-N P-R T U W X Y``, a 6-digit area code at positions 3–8; GB
  32100-2015).

A check character is not required to hold (a mistyped identifier is still
someone's), except for a credit code of digits only: any 18-digit number fits
its pattern, so one counts when its check character holds (or it is a resident
identity number with a real birth date). Names cannot be recognised this way;
the docs say to keep them out.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import unicodedata
from datetime import date
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


# -- identifiers in free text ------------------------------------------------------------

_ID_LEN = 18
#: GB 32100-2015's characters: digits and capitals without I, O, S, V, Z.
_USCC = re.compile(r"[0-9A-HJ-NP-RTUWXY]{2}[0-9]{6}[0-9A-HJ-NP-RTUWXY]{10}")
_RESIDENT = re.compile(r"[1-9][0-9]{5}((?:19|20)[0-9]{2})([0-9]{2})([0-9]{2})[0-9]{3}[0-9X]")
#: A run of letters and digits; runs joined by spaces or hyphens form one group
#: when both hold a digit (an identifier written in groups: "9111 0000 7109 …").
_RUN = re.compile(r"[0-9A-Z]+")
_JOINERS = frozenset(" \t-\u2010\u2011\u2012\u2013")
#: Texts longer than this are refused before they are searched (the chain's own
#: bound on a purpose is 1,024 bytes).
_MAX_SEARCHED = 8192


_USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def _credit_code(window: str) -> bool:
    if _USCC.fullmatch(window) is None:
        return False
    if not window.isdigit():
        return True
    total = sum(_USCC_CHARS.index(c) * w for c, w in zip(window, _USCC_WEIGHTS, strict=False))
    return _USCC_CHARS[-total % 31] == window[-1]


def _resident(window: str) -> bool:
    m = _RESIDENT.fullmatch(window)
    if m is None:
        return False
    try:
        date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        return False
    return True


def _groups(text: str) -> list[str]:
    groups: list[str] = []
    end, joinable = -1, False
    for m in _RUN.finditer(text):
        run = m.group()
        if run.startswith("0X"):  # a hex literal (a record id, a hash): never an identifier
            end, joinable = m.end(), False
            continue
        has_digit = any(ch.isdigit() for ch in run)
        gap = text[end : m.start()] if end >= 0 else None
        if groups and joinable and has_digit and gap and len(gap) <= 2 and set(gap) <= _JOINERS:
            groups[-1] += run
        else:
            groups.append(run)
        end, joinable = m.end(), has_digit
    return groups


def identifiers_in(text: str) -> list[str]:
    """The subject identifiers in ``text`` (see the module docstring), normalised,
    each once, in the order they appear."""
    if len(text or "") > _MAX_SEARCHED:
        raise InputError(f"A text bound for the chain is at most {_MAX_SEARCHED} characters.")
    normal = unicodedata.normalize("NFKC", text or "").upper()
    found: list[str] = []
    for group in _groups(normal):
        for i in range(len(group) - _ID_LEN + 1):
            window = group[i : i + _ID_LEN]
            if (_resident(window) or _credit_code(window)) and window not in found:
                found.append(window)
    return found


def masked(identifier: str) -> str:
    """An identifier as a message may show it: its first 4 and last 2 characters."""
    return identifier[:4] + "…" + identifier[-2:] if len(identifier) > 8 else "…"


def refuse_identifiers(text: str, what: str) -> str:
    """``text`` unchanged, or :class:`IdentifierInText` when it names a subject's
    identifier (``what``: "purpose", "legal basis", "reason", ...)."""
    found = identifiers_in(text)
    if found:
        from govshare.broker.errors import IdentifierInText

        raise IdentifierInText(
            f"The {what} goes on chain, where every member reads it and nothing can be "
            f"erased, and it holds what looks like a subject's identifier "
            f"({masked(found[0])}). Name the subject with --subject (the chain gets only "
            "its keyed reference) and say the purpose without it.",
            field=what,
        )
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
