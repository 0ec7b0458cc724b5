"""A department profile: who a department is and the keys it signs with.

``govshare init CODE`` writes one under ``HOME/depts/CODE/``::

    config.json             public facts: code, name, endpoint, addresses, HPKE public key
    broker.keystore.json    the broker's Ethereum key (v3 keystore, scrypt)
    admin.keystore.json     the administrator's Ethereum key (v3 keystore, scrypt)
    hpke.key.json           the department's HPKE private key, password-encrypted
    subject.key             the consortium's subject key (shared by members; see
                            ``govshare.broker.subjects``), written by ``govshare init``

The broker key is what the department's broker service uses, unattended, for
anchoring and requesting; the admin key is what an administrator consents and
votes with, from the CLI. They are unlocked with different passwords when
``GOVSHARE_ADMIN_PASSWORD`` is set (recommended), else with the one password.
The password settings reach the profile as :class:`~govshare.settings.Passwords`.
No secret is ever written to ``config.json``.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from govshare.errors import InputError, ProfileNotFound, WrongPassword
from govshare.home import dept_dir, ensure_dir

# The keys' code (cryptography, eth-account) and the settings (pydantic) are
# imported when a key is made or unlocked: reading a profile stays light.
if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from govshare.crypto import EthKey, HpkePrivateKey
    from govshare.settings import Passwords

CODE_RE = re.compile(r"^[A-Z0-9_]{2,16}$")
CONFIG = "config.json"
BROKER_KEYSTORE = "broker.keystore.json"
ADMIN_KEYSTORE = "admin.keystore.json"
HPKE_KEY = "hpke.key.json"


def normalise_code(code: str) -> str:
    """Department codes are 2–16 of ``A-Z 0-9 _`` (the contracts check the same)."""
    c = (code or "").strip().upper()
    if not CODE_RE.match(c):
        raise InputError(
            f"'{code}' is not a department code: use 2 to 16 letters, digits or '_' (e.g. TAX)."
        )
    return c


def check_endpoint(url: str) -> str:
    if not re.match(r"^https?://[^\s/]+(/\S*)?$", url or ""):
        raise InputError(f"'{url}' is not a broker endpoint URL (http:// or https://).")
    return url.rstrip("/")


@dataclass
class Profile:
    """A department profile on disk. Unlocking a key asks for its password."""

    code: str
    name: str
    endpoint: str
    broker_address: str
    admin_address: str
    hpke_public_key: bytes
    dir: Path
    created: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def broker_keystore(self) -> Path:
        return self.dir / BROKER_KEYSTORE

    @property
    def admin_keystore(self) -> Path:
        return self.dir / ADMIN_KEYSTORE

    @property
    def hpke_key_file(self) -> Path:
        return self.dir / HPKE_KEY

    def public_info(self) -> dict[str, Any]:
        """What other departments may know: the registry entry, nothing secret."""
        return {
            "code": self.code,
            "name": self.name,
            "endpoint": self.endpoint,
            "broker": self.broker_address,
            "admins": [self.admin_address],
            "hpke_public_key": "0x" + self.hpke_public_key.hex(),
        }

    def unlock_broker(
        self, password: str | None = None, passwords: Passwords | None = None
    ) -> LocalAccount:
        """The broker's account: ``password``, else the password settings, else a prompt."""
        from govshare.crypto import load_eth_keystore
        from govshare.crypto.keystore import ENV_PASSWORD

        pw = self._broker_pw(password, passwords)
        with _naming_source(f"{self.code}'s broker key", ENV_PASSWORD, None):
            return _account(load_eth_keystore(self.broker_keystore, pw))

    def unlock_admin(
        self, password: str | None = None, passwords: Passwords | None = None
    ) -> LocalAccount:
        """The administrator's account. Its own password comes first from
        ``GOVSHARE_ADMIN_PASSWORD`` / ``GOVSHARE_ADMIN_PASSWORD_FILE`` (``passwords``),
        then from the broker key's sources (``GOVSHARE_PASSWORD``…, a prompt)."""
        from govshare.crypto import load_eth_keystore, resolve_password
        from govshare.crypto.keystore import ENV_ADMIN_PASSWORD, ENV_PASSWORD

        passwords = passwords or _no_passwords()
        pw = password if password is not None else passwords.admin or None
        file = passwords.admin_file if pw is None else None
        pw = resolve_password(
            pw,
            password_file=file,
            configured=passwords.broker,
            configured_file=passwords.broker_file,
            prompt=f"Password for {self.code}'s administrator key: ",
            env=ENV_ADMIN_PASSWORD,
        )
        with _naming_source(f"{self.code}'s administrator key", ENV_ADMIN_PASSWORD, ENV_PASSWORD):
            return _account(load_eth_keystore(self.admin_keystore, pw))

    def unlock_hpke(
        self, password: str | None = None, passwords: Passwords | None = None
    ) -> HpkePrivateKey:
        """The department's HPKE key (the broker key's password)."""
        from govshare.crypto import load_hpke_key

        return load_hpke_key(self.hpke_key_file, self._broker_pw(password, passwords))

    def unlock_retired_hpke(self, password: str) -> list[HpkePrivateKey]:
        """The department's earlier HPKE keys (``retired/``, newest first), for the
        capsules made for them before a rotation. One that does not open with
        ``password`` (another password then) is left out, with a warning."""
        import logging

        from govshare.crypto import load_hpke_key
        from govshare.errors import GovShareError

        keys = []
        for path in sorted((self.dir / "retired").glob(f"*-{HPKE_KEY}"), reverse=True):
            try:
                keys.append(load_hpke_key(path, password))
            except GovShareError as exc:
                logging.getLogger(__name__).warning(
                    "%s: the retired key %s does not open (%s); capsules made for it cannot "
                    "be opened",
                    self.code,
                    path.name,
                    exc.code,
                )
        return keys

    def _broker_pw(self, password: str | None, passwords: Passwords | None) -> str:
        from govshare.crypto import resolve_password

        passwords = passwords or _no_passwords()
        return resolve_password(
            password,
            configured=passwords.broker,
            configured_file=passwords.broker_file,
            prompt=f"Password for {self.code}'s broker key: ",
        )

    def save(self) -> None:
        doc = {
            "format": "govshare-profile",
            "version": 1,
            "code": self.code,
            "name": self.name,
            "endpoint": self.endpoint,
            "broker_address": self.broker_address,
            "admin_address": self.admin_address,
            "hpke_public_key": self.hpke_public_key.hex(),
            "created": self.created,
            **self.extra,
        }
        tmp = self.dir / (CONFIG + ".tmp")
        tmp.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, self.dir / CONFIG)


@contextmanager
def _naming_source(key: str, env: str, fallback: str | None) -> Iterator[None]:
    """A wrong password's message names the variables it may have come from."""
    try:
        yield
    except WrongPassword as exc:
        then = f", else {fallback}" if fallback else ""
        raise WrongPassword(
            f"Wrong password for {key}: it is read from {env} (or {env}_FILE){then}, "
            "else asked on the terminal.",
            **exc.details,
        ) from None


def _no_passwords() -> Passwords:
    from govshare.settings import Passwords

    return Passwords()


def _account(key: EthKey) -> LocalAccount:
    return key.account()


def create_profile(
    home: Path,
    code: str,
    name: str,
    *,
    endpoint: str,
    broker_password: str,
    admin_password: str,
    scrypt_n: int | None = None,
    kem: str = "x25519",
) -> Profile:
    """Create keys and the profile of a new department. Refuses to overwrite one.
    ``scrypt_n``: the keystores' cost (default the keystore's ``DEFAULT_SCRYPT_N``);
    ``kem``: its HPKE key's KEM (``x25519``, or ``mlkem768-x25519``: post-quantum)."""
    from govshare.crypto import EthKey, generate_keypair, save_eth_keystore, save_hpke_key
    from govshare.crypto.keystore import DEFAULT_SCRYPT_N

    scrypt_n = DEFAULT_SCRYPT_N if scrypt_n is None else scrypt_n
    code = normalise_code(code)
    name = (name or "").strip()
    if not name:
        raise InputError("A department needs a name (--name).")
    endpoint = check_endpoint(endpoint)
    d = dept_dir(home, code)
    if (d / CONFIG).exists():
        raise InputError(f"A profile for {code} already exists in this home; nothing was changed.")
    ensure_dir(home)
    ensure_dir(d)
    broker, admin = EthKey.generate(), EthKey.generate()
    hpke, hpke_public = generate_keypair(kem)
    save_eth_keystore(d / BROKER_KEYSTORE, broker, broker_password, scrypt_n=scrypt_n)
    save_eth_keystore(d / ADMIN_KEYSTORE, admin, admin_password, scrypt_n=scrypt_n)
    save_hpke_key(d / HPKE_KEY, hpke, broker_password, dept=code, scrypt_n=scrypt_n)
    prof = Profile(
        code=code,
        name=name,
        endpoint=endpoint,
        broker_address=broker.address,
        admin_address=admin.address,
        hpke_public_key=hpke_public,
        dir=d,
        created=time.time(),
    )
    prof.save()
    return prof


def _from_doc(doc: Mapping[str, Any], d: Path) -> Profile:
    known = {
        "format", "version", "code", "name", "endpoint", "broker_address",
        "admin_address", "hpke_public_key", "created",
    }  # fmt: skip
    return Profile(
        code=str(doc["code"]),
        name=str(doc["name"]),
        endpoint=str(doc["endpoint"]),
        broker_address=str(doc["broker_address"]),
        admin_address=str(doc["admin_address"]),
        hpke_public_key=bytes.fromhex(str(doc["hpke_public_key"])),
        dir=d,
        created=float(doc.get("created", 0.0)),
        extra={k: v for k, v in doc.items() if k not in known},
    )


def near_codes(code: str, known: list[str]) -> list[str]:
    """The known department codes close to a mistyped ``code`` (TAXX → TAX), best
    first; none when nothing is near."""
    import difflib

    return difflib.get_close_matches(code, known, n=3, cutoff=0.6)


def load_profile(home: Path, code: str) -> Profile:
    """The profile of department ``code`` in this home."""
    code = normalise_code(code)
    d = dept_dir(home, code)
    p = d / CONFIG
    if not p.is_file():
        codes = list_codes(home)
        near = near_codes(code, codes)
        have = ", ".join(codes) or "none"
        advice = (
            f"Did you mean {' or '.join(near)}?"
            if near
            else f"Create it with `govshare init {code} --name NAME`."
        )
        raise ProfileNotFound(
            f"No profile for department {code} in {home} (profiles here: {have}). {advice}",
            suggestions=near,
        )
    try:
        doc = json.loads(p.read_text())
        return _from_doc(doc, d)
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(
            f"The profile {p.name} of {code} is damaged ({type(exc).__name__})."
        ) from None


def load_profile_dir(directory: Path) -> Profile:
    """The profile kept in ``directory`` (its ``config.json`` and key files), e.g.
    a container's secrets mount instead of ``HOME/depts/CODE``."""
    d = Path(directory)
    p = d / CONFIG
    if not p.is_file():
        raise ProfileNotFound(f"No department profile ({CONFIG}) in {d}.")
    try:
        return _from_doc(json.loads(p.read_text()), d)
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"The profile {p} is damaged ({type(exc).__name__}).") from None


def list_codes(home: Path) -> list[str]:
    root = home / "depts"
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / CONFIG).is_file())
