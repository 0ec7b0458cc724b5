"""Department keys at rest, and where their passwords come from.

Two files per key, both JSON, both written 0600 and atomically (temp file, fsync,
rename), never overwritten unless asked:

* **Ethereum keys** (broker and administrator accounts): Web3 Secret Storage
  v3 keystores made by ``eth-keyfile`` with ``kdf="scrypt"`` — the format geth,
  Foundry's ``cast wallet`` and MetaMask import.
* **The HPKE private key** (opens key capsules): ``govshare-hpke-key`` version 1,
  described in ``docs/keystore-format.md``::

      {"format": "govshare-hpke-key", "version": 1,
       "suite": "DHKEM(X25519,HKDF-SHA256)/HKDF-SHA256/AES-256-GCM",
       "dept": "TAX",                          # informational, bound as AAD
       "public_key": "<64 hex>",               # readable without the password
       "kdf": "scrypt", "kdfparams": {"n": 131072, "r": 8, "p": 1, "dklen": 32, "salt": "<64 hex>"},
       "cipher": "aes-256-gcm", "cipherparams": {"nonce": "<24 hex>"},
       "ciphertext": "<96 hex>"}              # AES-256-GCM(scrypt(password), nonce, sk, aad)

      aad = "govshare-hpke-key/v1" ‖ 0x00 ‖ public_key ‖ utf8(dept)

  A post-quantum key (``govshare init --kem mlkem768-x25519``) has ``"suite":
  "MLKEM768-X25519/HKDF-SHA256/AES-256-GCM"``, a 1,216-byte public key (2,432
  hex) and a 96-byte secret (ciphertext 224 hex); the rest is the same.

Passwords (:func:`resolve_password`): an explicit argument, else the password
settings the caller passes (``GOVSHARE_PASSWORD``, else the first line of the file
named by ``GOVSHARE_PASSWORD_FILE``), else a hidden prompt on the terminal (asked
twice when creating a key). A wrong password raises
:class:`govshare.errors.WrongPassword`. No message, ``repr`` or log line carries a
password or key.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from govshare.crypto._io import atomic_write
from govshare.crypto.errors import (
    InvalidKey,
    KeystoreExists,
    KeystoreMalformed,
    KeystoreNotFound,
    PasswordMismatch,
    PasswordUnavailable,
)
from govshare.crypto.keys import (
    HYBRID_PRIVATE_SIZE,
    HYBRID_PUBLIC_SIZE,
    KEM_MLKEM768_X25519,
    KEM_X25519,
    X25519_KEY_SIZE,
    EthKey,
    HpkePrivateKey,
)
from govshare.errors import InputError, WrongPassword

__all__ = [
    "DEFAULT_SCRYPT_N",
    "ENV_PASSWORD",
    "ENV_PASSWORD_FILE",
    "load_eth_keystore",
    "load_hpke_key",
    "read_eth_address",
    "read_hpke_public_key",
    "resolve_password",
    "save_eth_keystore",
    "save_hpke_key",
]

ENV_PASSWORD = "GOVSHARE_PASSWORD"  # noqa: S105 - the variable's name, not a password
ENV_PASSWORD_FILE = "GOVSHARE_PASSWORD_FILE"  # noqa: S105
#: The administrator key's own password (its file: ``…_FILE``).
ENV_ADMIN_PASSWORD = "GOVSHARE_ADMIN_PASSWORD"  # noqa: S105

# scrypt N=2^17, r=8, p=1: 128 MiB and ~0.4 s per unlock on a small server; keys are
# unlocked once per process. Tests pass a small ``scrypt_n``.
DEFAULT_SCRYPT_N = 1 << 17
SCRYPT_R = 8
SCRYPT_P = 1
# What a file may ask of us when it is read (a hostile file must not exhaust memory/CPU).
_MAX_SCRYPT_N = 1 << 20
_MAX_SCRYPT_R = 16
_MAX_SCRYPT_P = 16
_MAX_SCRYPT_MEMORY = 256 << 20  # scrypt needs 128·r·N bytes

HPKE_FORMAT = "govshare-hpke-key"
HPKE_VERSION = 1
HPKE_SUITE = "DHKEM(X25519,HKDF-SHA256)/HKDF-SHA256/AES-256-GCM"
HPKE_SUITE_PQ = "MLKEM768-X25519/HKDF-SHA256/AES-256-GCM"
#: Per key file suite: its KEM, and the public key's and the secret's sizes.
_HPKE_SUITES = {
    HPKE_SUITE: (KEM_X25519, X25519_KEY_SIZE, X25519_KEY_SIZE),
    HPKE_SUITE_PQ: (KEM_MLKEM768_X25519, HYBRID_PUBLIC_SIZE, HYBRID_PRIVATE_SIZE),
}
_AAD_LABEL = b"govshare-hpke-key/v1\x00"
_MAX_FILE = 64 * 1024


# ------------------------------------------------------------------ passwords


def resolve_password(
    explicit: str | None = None,
    *,
    confirm: bool = False,
    prompt: str = "Password: ",
    password_file: str | os.PathLike[str] | None = None,
    configured: str | None = None,
    configured_file: str | os.PathLike[str] | None = None,
    interactive: bool | None = None,
    ask: Callable[[str], str] = getpass.getpass,
    env: str = ENV_PASSWORD,
    option: str | None = None,
) -> str:
    """Find the password for a keystore.

    In order: ``explicit``; ``password_file``; ``configured`` (the password
    setting, ``GOVSHARE_PASSWORD``); ``configured_file`` (``GOVSHARE_PASSWORD_FILE``);
    a hidden prompt when ``interactive``
    (default: when stdin is a terminal), asked twice if ``confirm``. Raises
    :class:`PasswordUnavailable` when there is no source, ``PasswordMismatch``
    when the two answers differ, ``InputError`` for an empty password.

    ``env`` is the variable the caller reads ``configured`` from (named, with its
    ``_FILE`` twin, in the prompt and the error), ``option`` the command's option
    that gives a password file, if it has one: messages name only what exists.
    """
    if explicit is not None:
        return _nonempty(explicit, "The password")
    if password_file is not None:
        return _read_password_file(Path(password_file))
    if configured:
        return configured
    if configured_file:
        return _read_password_file(Path(configured_file))
    if interactive is None:
        interactive = sys.stdin is not None and sys.stdin.isatty()
    if not interactive:
        given = f"pass {option} FILE, " if option else ""
        what = prompt.strip().rstrip(":").strip()
        what = what[:1].lower() + what[1:]
        fallback = f" ({ENV_PASSWORD} serves when neither is set)" if env != ENV_PASSWORD else ""
        raise PasswordUnavailable(
            f"No {what}: {given}set {env} or {env}_FILE{fallback}, "
            "or run in a terminal to be asked.",
            variable=env,
        )
    if f"({env}" not in prompt:  # say which variable would have answered
        prompt = prompt.rstrip().rstrip(":") + f" (or set {env}): "
    first = _nonempty(ask(prompt), "The password")
    if confirm and ask("Repeat " + prompt[:1].lower() + prompt[1:]) != first:
        raise PasswordMismatch("The two passwords differ; nothing was written.")
    return first


def _nonempty(password: str, what: str) -> str:
    if not isinstance(password, str) or not password:
        raise InputError(f"{what} is empty.")
    return password


def _read_password_file(path: Path) -> str:
    try:
        with path.open("r", encoding="utf-8") as fh:
            line = fh.readline(4096)
    except FileNotFoundError:
        raise PasswordUnavailable(f"The password file {path.name} does not exist.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PasswordUnavailable(
            f"The password file {path.name} cannot be read ({type(exc).__name__})."
        ) from None
    return _nonempty(line.rstrip("\r\n"), f"The password file {path.name}")


# ------------------------------------------------------------------ helpers


def _check_scrypt_n(n: int) -> None:
    if not isinstance(n, int) or n < 2 or n & (n - 1) or n > _MAX_SCRYPT_N:
        raise InputError(f"scrypt N must be a power of two between 2 and {_MAX_SCRYPT_N}.")


def _write_json(path: Path, doc: dict[str, Any], overwrite: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()
    try:
        atomic_write(path, data, overwrite=overwrite)
    except FileExistsError:
        raise KeystoreExists(
            f"{path.name} already exists; refusing to overwrite a key file."
        ) from None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            raw = fh.read(_MAX_FILE + 1)
    except FileNotFoundError:
        raise KeystoreNotFound(f"No key file at {path.name}.") from None
    except OSError as exc:
        raise KeystoreMalformed(
            f"The key file {path.name} cannot be read ({type(exc).__name__})."
        ) from None
    if len(raw) > _MAX_FILE:
        raise KeystoreMalformed(f"{path.name} is too large to be a key file.")
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        raise KeystoreMalformed(f"{path.name} is not a JSON key file.") from None
    if not isinstance(doc, dict):
        raise KeystoreMalformed(f"{path.name} is not a JSON key file.")
    return doc


def _hex_field(doc: Mapping[str, Any], key: str, size: int | None, where: str) -> bytes:
    value = doc.get(key)
    if not isinstance(value, str):
        raise KeystoreMalformed(f"{where}: field {key!r} is missing.")
    try:
        raw = bytes.fromhex(value.removeprefix("0x"))
    except ValueError:
        raise KeystoreMalformed(f"{where}: field {key!r} is not hex.") from None
    if size is not None and len(raw) != size:
        raise KeystoreMalformed(f"{where}: field {key!r} has the wrong length.")
    return raw


def _int_field(doc: Mapping[str, Any], key: str, where: str) -> int:
    value = doc.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise KeystoreMalformed(f"{where}: field {key!r} must be an integer.")
    return value


def _scrypt_params(params: Any, where: str) -> tuple[int, int, int, bytes]:
    if not isinstance(params, dict):
        raise KeystoreMalformed(f"{where}: kdfparams are missing.")
    n, r, p = (_int_field(params, k, where) for k in ("n", "r", "p"))
    if _int_field(params, "dklen", where) != 32:
        raise KeystoreMalformed(f"{where}: unsupported key length.")
    if n < 2 or n & (n - 1) or n > _MAX_SCRYPT_N or not 1 <= r <= _MAX_SCRYPT_R:
        raise KeystoreMalformed(f"{where}: scrypt parameters out of the accepted range.")
    if not 1 <= p <= _MAX_SCRYPT_P or 128 * r * n > _MAX_SCRYPT_MEMORY:
        raise KeystoreMalformed(f"{where}: scrypt parameters out of the accepted range.")
    salt = _hex_field(params, "salt", None, where)
    if not 16 <= len(salt) <= 64:
        raise KeystoreMalformed(f"{where}: the scrypt salt has an unusual length.")
    return n, r, p, salt


# ------------------------------------------------------------------ Ethereum v3


def save_eth_keystore(
    path: str | os.PathLike[str],
    key: EthKey,
    password: str,
    *,
    scrypt_n: int = DEFAULT_SCRYPT_N,
    overwrite: bool = False,
) -> str:
    """Write ``key`` as a v3 keystore (scrypt); returns its checksum address."""
    from eth_keyfile import create_keyfile_json

    if not isinstance(key, EthKey):
        raise InvalidKey("Pass an EthKey to save.")
    _check_scrypt_n(scrypt_n)
    doc = create_keyfile_json(
        key.private_bytes(),
        _nonempty(password, "The password").encode("utf-8"),
        version=3,
        kdf="scrypt",
        iterations=scrypt_n,
    )
    _write_json(Path(path), doc, overwrite)
    return key.address


def read_eth_address(path: str | os.PathLike[str]) -> str:
    """The keystore's address, without the password (as stored; not verified)."""
    from eth_utils import to_checksum_address

    p = Path(path)
    doc = _read_json(p)
    raw = _hex_field(doc, "address", 20, p.name)
    return str(to_checksum_address(raw))


def load_eth_keystore(path: str | os.PathLike[str], password: str) -> EthKey:
    """Unlock a v3 keystore. Wrong password → :class:`~govshare.errors.WrongPassword`."""
    from eth_keyfile import decode_keyfile_json

    if not isinstance(password, str):
        raise InputError("The password must be text.")
    p = Path(path)
    doc = _read_json(p)
    crypto = doc.get("crypto", doc.get("Crypto"))
    if doc.get("version") != 3 or not isinstance(crypto, dict):
        raise KeystoreMalformed(f"{p.name} is not a version 3 Ethereum keystore.")
    kdf = crypto.get("kdf")
    if kdf == "scrypt":
        _scrypt_params(crypto.get("kdfparams"), p.name)
    elif kdf == "pbkdf2":
        params = crypto.get("kdfparams")
        if not isinstance(params, dict) or not 1 <= _int_field(params, "c", p.name) <= 10_000_000:
            raise KeystoreMalformed(f"{p.name}: pbkdf2 parameters out of the accepted range.")
    else:
        raise KeystoreMalformed(f"{p.name} uses an unsupported key derivation.")
    try:
        raw = decode_keyfile_json(doc, password.encode("utf-8"))
    except ValueError as exc:
        # eth-keyfile says "MAC mismatch" (EthKeyfileValueError, a ValueError) for a wrong
        # password; anything else is a damaged file.
        if "MAC mismatch" in str(exc):
            raise WrongPassword(f"Wrong password for the keystore {p.name}.") from None
        raise KeystoreMalformed(f"{p.name} is damaged ({type(exc).__name__}).") from None
    except (KeyError, TypeError, IndexError, AttributeError) as exc:
        raise KeystoreMalformed(f"{p.name} is damaged ({type(exc).__name__}).") from None
    key = EthKey(bytes(raw))
    stored = doc.get("address")
    if isinstance(stored, str) and stored.lower().removeprefix("0x") != key.address[2:].lower():
        raise KeystoreMalformed(f"{p.name}: the stored address does not match its key.")
    return key


# ------------------------------------------------------------------ HPKE key


def _hpke_aad(public_key: bytes, dept: str) -> bytes:
    return _AAD_LABEL + public_key + dept.encode("utf-8")


def save_hpke_key(
    path: str | os.PathLike[str],
    key: HpkePrivateKey,
    password: str,
    *,
    dept: str = "",
    scrypt_n: int = DEFAULT_SCRYPT_N,
    overwrite: bool = False,
) -> bytes:
    """Write the HPKE private key encrypted under ``password``; returns the public key."""
    if not isinstance(key, HpkePrivateKey):
        raise InvalidKey("Pass an HpkePrivateKey to save.")
    if not isinstance(dept, str):
        raise InputError("The department code must be text.")
    _check_scrypt_n(scrypt_n)
    salt, nonce = os.urandom(32), os.urandom(12)
    kek = Scrypt(salt=salt, length=32, n=scrypt_n, r=SCRYPT_R, p=SCRYPT_P).derive(
        _nonempty(password, "The password").encode("utf-8")
    )
    public = key.public_key_bytes
    sealed = AESGCM(kek).encrypt(nonce, key.private_bytes(), _hpke_aad(public, dept))
    suite = next(name for name, (kem, _p, _s) in _HPKE_SUITES.items() if kem == key.kem)
    doc = {
        "format": HPKE_FORMAT,
        "version": HPKE_VERSION,
        "suite": suite,
        "dept": dept,
        "public_key": public.hex(),
        "kdf": "scrypt",
        "kdfparams": {"n": scrypt_n, "r": SCRYPT_R, "p": SCRYPT_P, "dklen": 32, "salt": salt.hex()},
        "cipher": "aes-256-gcm",
        "cipherparams": {"nonce": nonce.hex()},
        "ciphertext": sealed.hex(),
    }
    _write_json(Path(path), doc, overwrite)
    return public


def _hpke_doc(p: Path) -> dict[str, Any]:
    doc = _read_json(p)
    if doc.get("format") != HPKE_FORMAT:
        raise KeystoreMalformed(f"{p.name} is not a govshare HPKE key file.")
    if doc.get("version") != HPKE_VERSION or doc.get("suite") not in _HPKE_SUITES:
        raise KeystoreMalformed(f"{p.name} has a version or suite this govshare cannot read.")
    if doc.get("kdf") != "scrypt" or doc.get("cipher") != "aes-256-gcm":
        raise KeystoreMalformed(f"{p.name} uses an unsupported key derivation or cipher.")
    if not isinstance(doc.get("dept", ""), str):
        raise KeystoreMalformed(f"{p.name}: field 'dept' must be text.")
    return doc


def _hpke_sizes(doc: dict[str, Any]) -> tuple[int, int]:
    """(public key, secret) sizes of a checked key file's suite."""
    _kem, public, secret = _HPKE_SUITES[str(doc["suite"])]
    return public, secret


def read_hpke_public_key(path: str | os.PathLike[str]) -> bytes:
    """The raw public key (32 or 1,216 bytes) from an HPKE key file, without the password."""
    p = Path(path)
    doc = _hpke_doc(p)
    return _hex_field(doc, "public_key", _hpke_sizes(doc)[0], p.name)


def load_hpke_key(path: str | os.PathLike[str], password: str) -> HpkePrivateKey:
    """Unlock an HPKE key file. Wrong password → :class:`~govshare.errors.WrongPassword`.

    (AES-GCM cannot tell a wrong password from an altered file; both say wrong password.)
    """
    p = Path(path)
    doc = _hpke_doc(p)
    public_size, secret_size = _hpke_sizes(doc)
    public = _hex_field(doc, "public_key", public_size, p.name)
    n, r, pp, salt = _scrypt_params(doc.get("kdfparams"), p.name)
    params = doc.get("cipherparams")
    if not isinstance(params, dict):
        raise KeystoreMalformed(f"{p.name}: cipherparams are missing.")
    nonce = _hex_field(params, "nonce", 12, p.name)
    sealed = _hex_field(doc, "ciphertext", secret_size + 16, p.name)
    if not isinstance(password, str):
        raise InputError("The password must be text.")
    kek = Scrypt(salt=salt, length=32, n=n, r=r, p=pp).derive(password.encode("utf-8"))
    try:
        raw = AESGCM(kek).decrypt(nonce, sealed, _hpke_aad(public, doc.get("dept", "")))
    except InvalidTag:
        raise WrongPassword(f"Wrong password for the key file {p.name}.") from None
    key = HpkePrivateKey.from_private_bytes(raw)
    if key.public_key_bytes != public:
        raise KeystoreMalformed(f"{p.name}: the stored public key does not match its key.")
    return key
