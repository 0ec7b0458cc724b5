"""Every ``GOVSHARE_*`` setting, in one object read once at the entry points.

    settings = load_settings()                  # the environment, validated
    settings = settings.with_overrides(port=9000)   # command-line flags win

The ``govshare`` command reads it when a command first needs it (the root
group's :class:`~govshare.cli.main.Ctx`); ``govshare serve`` takes its flags
into it. Everything below the CLI receives values from it — no other module
reads ``os.environ`` for a ``GOVSHARE_*`` name. The table in ``docs/settings.md``
is generated from this class (``scripts/gen_settings_doc.py``) and a test fails
when they disagree.

Each setting has one name: ``GOVSHARE_`` + the field name in capitals. The old
second names (``GOVSHARE_CHAIN_URL``, ``GOVSHARE_STORAGE``) are no longer read;
:func:`retired_names` says so when they are set.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from govshare.errors import ConfigError

# (sizes are parsed in util, which the commands import without pydantic)
from govshare.util import parse_size

PREFIX = "GOVSHARE_"

#: Names an earlier release read, and the one to use instead.
RETIRED: dict[str, str] = {
    "GOVSHARE_CHAIN_URL": "GOVSHARE_RPC",
    "GOVSHARE_STORAGE": "GOVSHARE_STORE",
}

#: ``GOVSHARE_*`` names the scripts in ``scripts/`` and ``docker/`` read (not
#: govshare itself): documented in their own table, never warned about.
SCRIPT_VARIABLES: dict[str, str] = {
    "GOVSHARE_GENERATED_DIR": "where `scripts/consortium_up.sh` and "
    "`docker/add-department.sh` write the generated network (default docker/generated)",
    "GOVSHARE_SCRYPT_N": "keystore cost for `scripts/consortium_up.sh` (tests only)",
    "GOVSHARE_THRESHOLD": "the governance threshold `docker/compose.yml` deploys with",
    "GOVSHARE_CHAIN_ID": "printed by `scripts/consortium_up.sh` for the operator",
    "GOVSHARE_OPS": "`docker/add-department.sh`: the command that runs a command in ops (tests)",
    "GOVSHARE_OPS_GENERATED": "`docker/add-department.sh`: the generated folder as ops sees it",
    "GOVSHARE_OPS_RPC": "`docker/add-department.sh`: one RPC URL for every validator (tests)",
    "GOVSHARE_SOLC": "`scripts/compile_contracts.py`: a native solc instead of solcjs",
    "GOVSHARE_DEMO_HOME": "`scripts/demo.py`: where the demo keeps its home (default .demo)",
}


class Settings(BaseModel):
    """govshare's settings: each field is the environment variable ``GOVSHARE_`` +
    its name in capitals. The first line of each description is the docs' table.

    ``Settings()`` reads them from the environment (names in any case; an empty
    value means unset). A plain model, not pydantic-settings' ``BaseSettings``:
    that package costs a tenth of a second to import, on every ``govshare`` command,
    for what :func:`from_environ` does in a few lines."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    def __init__(self, **values: Any) -> None:
        """The environment's ``GOVSHARE_*`` values, ``values`` (field names) in their
        place, validated: what ``BaseSettings`` did, so ``Settings()`` reads the
        environment as it always has. (:meth:`defaults` and :meth:`with_overrides`
        validate a mapping and read nothing.)"""
        super().__init__(**{**from_environ(os.environ), **values})

    # -- where things are ---------------------------------------------------------------
    home: Path | None = Field(
        default=None,
        description="The govshare home: profiles, keys, deployment file, local chain and "
        "blobs (default ~/.govshare; `--home`).",
    )
    dept: str | None = Field(
        default=None,
        description="Your department's code, for every command's `--dept` / `--as` "
        "(and the department `govshare serve` runs).",
    )
    deployment_file: Path | None = Field(
        default=None,
        description="The deployment file naming the consortium's contracts "
        "(default HOME/deployment.json; `--deployment`).",
    )
    rpc: str | None = Field(
        default=None,
        description="The chain node's JSON-RPC URL (default: the deployment file's; `--rpc`). "
        "Replaces GOVSHARE_CHAIN_URL.",
    )
    store: str | None = Field(
        default=None,
        description="The blob store URL: `local:PATH` or `kubo:http://HOST:5001` (default "
        "local: under the department's folder; `--store`). Replaces GOVSHARE_STORAGE.",
    )
    secrets_dir: Path | None = Field(
        default=None,
        description="`govshare serve`: read the profile, keys and `broker.password` from "
        "this folder instead of HOME/depts/CODE (a container's secrets; `--profile-dir`).",
    )
    broker_url: str | None = Field(
        default=None,
        description="The broker the clerk commands call (default: the endpoint of the "
        "department's profile; `--broker`).",
    )
    anvil: Path | None = Field(
        default=None,
        description="The anvil binary for the local dev chain (default: the npm package, "
        "then PATH).",
    )
    kubo: Path | None = Field(
        default=None,
        description="The Kubo (ipfs) binary for `dev up --store kubo` (default: the "
        "source tree's .tools/bin/ipfs that `make setup` builds, then PATH).",
    )

    # -- secrets --------------------------------------------------------------------------
    password: SecretStr | None = Field(
        default=None,
        description="The broker key password (else GOVSHARE_PASSWORD_FILE or a prompt).",
    )
    password_file: Path | None = Field(
        default=None,
        description="A file whose first line is the broker key password (`--password-file` wins).",
    )
    admin_password: SecretStr | None = Field(
        default=None,
        description="The administrator key's own password (else GOVSHARE_ADMIN_PASSWORD_FILE, "
        "else the broker key's sources).",
    )
    admin_password_file: Path | None = Field(
        default=None, description="A file whose first line is the administrator key's password."
    )
    subject_key: SecretStr | None = Field(
        default=None,
        description="The consortium's subject key, 64 hex digits (else "
        "GOVSHARE_SUBJECT_KEY_FILE, else the profile's subject.key).",
    )
    subject_key_file: Path | None = Field(
        default=None, description="A file holding the consortium's subject key."
    )
    token: SecretStr | None = Field(
        default=None,
        description="Your broker API token for the clerk commands (else the one "
        "`govshare login` saved; `--token`).",
    )
    audit_token: SecretStr | None = Field(
        default=None,
        description="The API token `govshare audit` sends to a broker URL given as a "
        "manifest source.",
    )
    kubo_token: SecretStr | None = Field(
        default=None, description="The bearer token of the Kubo RPC API of a `kubo:` store."
    )
    database_url: SecretStr | None = Field(
        default=None,
        description="`govshare serve`: the broker's database, `sqlite:///PATH` or "
        "`postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB` (default: the SQLite file "
        "HOME/depts/CODE/broker.db; `--database`). Migrated on start.",
    )
    manifest_sources: str | None = Field(
        default=None,
        description="`govshare serve`: where the broker reads other departments' record "
        "batch manifests, besides its own store: comma-separated `local:PATH`, "
        "`kubo:http://HOST:5001` or broker URLs (default: with a `kubo:` store, none — "
        "the private swarm serves every member's manifests; with a local store, the "
        "other departments' stores of the same home, as in dev).",
    )

    # -- govshare serve ---------------------------------------------------------------------
    host: str = Field(
        default="127.0.0.1", description="`govshare serve`: the address to listen on."
    )
    port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="`govshare serve`: the port (default: the profile endpoint's, else 8443).",
    )
    max_upload: int = Field(
        default=256 * 1024**2,
        description="`govshare serve`: the largest record accepted for publishing, "
        "e.g. 256MiB, 1GiB, 4096 (bytes).",
    )
    max_json_body: int = Field(
        default=1024**2,
        description="`govshare serve`: the largest body of a JSON API request (every route "
        "but the uploads, which take GOVSHARE_MAX_UPLOAD), e.g. 1MiB; a larger one is "
        "refused (413) before it is read or its token checked.",
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description="`govshare serve`: a bearer token a Prometheus scraper may read "
        "`/metrics` with (besides an administrator's token); at least 32 characters.",
    )
    wait_chain: float = Field(
        default=30.0,
        ge=0,
        description="`govshare serve`: seconds to wait for the chain node at start.",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="`govshare serve`: the log level."
    )
    batch_max_records: int = Field(
        default=256,
        ge=1,
        le=4096,
        description="`govshare serve`: published records anchored with one transaction at "
        "most (a Merkle batch); 1 anchors each record with its own transaction.",
    )
    batch_window: float = Field(
        default=0.5,
        ge=0,
        le=3600,
        description="`govshare serve`: seconds the oldest accepted record waits for others "
        "to join its batch (a batch closes at once when it is full, or when a clerk waits "
        "for the answer and no batch is under way).",
    )
    publish_wait: float = Field(
        default=10.0,
        ge=0,
        le=600,
        description="`govshare serve`: seconds `POST /v1/records` waits for the record's "
        'anchor before answering 202 "anchoring" (`Prefer: respond-async`: at once).',
    )
    receipt_batch_size: int = Field(
        default=256,
        ge=1,
        le=10_000,
        description="`govshare serve`: anchor exchange receipts as soon as this many wait "
        "(and at most this many per batch).",
    )
    receipt_batch_age: float = Field(
        default=30.0,
        ge=0,
        description="`govshare serve`: anchor waiting receipts once the oldest has waited "
        "this many seconds.",
    )
    exchange_resume_window: int = Field(
        default=600,
        ge=0,
        le=86_400,
        description="`govshare serve`: seconds after an exchange during which its requester "
        "may resume a broken transfer (`POST /v1/exchange/resume`, HTTP ranges) without "
        "spending another use of the grant; also how long an unacknowledged receipt is "
        "held back from its anchor batch. 0: no resume.",
    )
    tls_cert: Path | None = Field(
        default=None,
        description="`govshare serve`: serve HTTPS with this PEM certificate chain "
        "(needs GOVSHARE_TLS_KEY).",
    )
    tls_key: Path | None = Field(
        default=None, description="`govshare serve`: the PEM private key of GOVSHARE_TLS_CERT."
    )
    worker_interval: float = Field(
        default=2.0,
        gt=0,
        description="`govshare serve`: seconds between rounds of the outbox worker and the "
        "receipt batcher.",
    )
    sync_interval: float = Field(
        default=5.0,
        gt=0,
        description="`govshare serve`: seconds between housekeeping rounds (request sync, nonces).",
    )

    events_poll_interval: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="`govshare serve`: seconds between two reads of the notification log by "
        "an open `GET /v1/events` stream.",
    )
    events_heartbeat: float = Field(
        default=15.0,
        gt=0,
        le=3600,
        description="`govshare serve`: seconds of silence after which `GET /v1/events` sends "
        "a comment line, so proxies keep the stream open.",
    )
    deadline_warning: int = Field(
        default=86400,
        ge=0,
        le=365 * 86400,
        description="`govshare serve`: seconds before a pending incoming request's deadline "
        "at which the department is notified (`request.deadline_approaching`).",
    )
    notify_subject_categories: str = Field(
        default="",
        max_length=4096,
        description="`govshare serve`: the department's categories whose deliveries its "
        "subjects must be told of (PIPL Art. 35), comma-separated: each delivery of such a "
        "record is a `subject.delivered` notification (stream and webhooks) for the "
        "department that serves citizens to pass on.",
    )
    webhook_max_attempts: int = Field(
        default=12,
        ge=1,
        le=100,
        description="`govshare serve`: attempts of a webhook delivery (with exponential "
        "backoff from 10 s, at most an hour apart) before it is given up.",
    )

    # -- tests ----------------------------------------------------------------------------
    testing: bool = Field(
        default=False, description="Tests only: allows GOVSHARE_TEST_CRASH_AT to arm a crash point."
    )
    test_crash_at: str | None = Field(
        default=None,
        description="Tests only: the named point at which `govshare serve` kills itself "
        "(`broker/faults.py`).",
    )
    test_cut_at: str | None = Field(
        default=None,
        description="Tests only: comma-separated points at which `govshare serve` breaks "
        "off a transfer once, as a network blip would (`broker/faults.py`).",
    )

    @field_validator("max_upload", "max_json_body", mode="before")
    @classmethod
    def _size(cls, value: Any) -> int:
        return parse_size(value)

    @field_validator("metrics_token")
    @classmethod
    def _long_token(cls, value: SecretStr | None) -> SecretStr | None:
        # a bearer token anyone may present: too short a one could be guessed
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("the metrics token must be at least 32 characters")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    # -- derived values -----------------------------------------------------------------

    @classmethod
    def defaults(cls) -> Settings:
        """Every setting at its default, without reading the environment."""
        return cls.model_validate({})

    def with_overrides(self, **values: Any) -> Settings:
        """A copy with ``values`` (the flags given on a command line) in place of
        these, validated the same way (None unsets a setting)."""
        try:
            return type(self).model_validate({**self.model_dump(), **values})
        except ValidationError as exc:
            raise _config_error(exc, source="option") from None

    def passwords(self) -> Passwords:
        """The password sources, for :meth:`govshare.profile.Profile.unlock_broker` & co."""
        return Passwords(
            broker=_secret(self.password),
            broker_file=self.password_file,
            admin=_secret(self.admin_password),
            admin_file=self.admin_password_file,
        )

    def secret(self, name: str) -> str | None:
        """The plain value of a secret setting (``token``, ``kubo_token``, ...), or None."""
        value = getattr(self, name)
        return _secret(value) if isinstance(value, SecretStr) else value


@dataclass(frozen=True)
class Passwords:
    """Where key passwords come from when none is typed: the password settings.
    Never printed (the values are left out of ``repr``)."""

    broker: str | None = field(default=None, repr=False)
    broker_file: Path | None = None
    admin: str | None = field(default=None, repr=False)
    admin_file: Path | None = None


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


#: The settings whose values are never shown (in errors, repr or the docs).
SECRET_FIELDS = frozenset(
    name for name, f in Settings.model_fields.items() if "SecretStr" in str(f.annotation)
)


def env_name(field_name: str) -> str:
    """``"rpc"`` → ``"GOVSHARE_RPC"``."""
    return PREFIX + field_name.upper()


def load_settings() -> Settings:
    """The settings from this process's environment (``GOVSHARE_*``), validated.

    A value that does not validate raises :class:`~govshare.errors.ConfigError`
    with one sentence naming the variable (never echoing a secret)."""
    try:
        return Settings()
    except ValidationError as exc:
        raise _config_error(exc, source="env") from None


def from_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """The ``GOVSHARE_*`` values of ``environ`` that name a setting, by field name:
    names compared without case, an empty value left out (unset, as shells use it)."""
    fields = Settings.model_fields
    out: dict[str, str] = {}
    for key, value in environ.items():
        if not key.upper().startswith(PREFIX) or value == "":
            continue
        name = key[len(PREFIX) :].lower()
        if name in fields:
            out[name] = value
    return out


def retired_names(environ: Mapping[str, str] | None = None) -> list[str]:
    """A sentence for each ``GOVSHARE_*`` name set that govshare does not read:
    a retired name, or a name it does not know (a typo?)."""
    env = os.environ if environ is None else environ
    known = {env_name(n) for n in Settings.model_fields} | set(SCRIPT_VARIABLES)
    out = []
    for name in sorted(k for k in env if k.upper().startswith(PREFIX)):
        if name.upper() in RETIRED:
            out.append(
                f"{name} is no longer read: set {RETIRED[name.upper()]} instead "
                "(see docs/settings.md)."
            )
        elif name.upper() not in known:
            out.append(f"{name} is not a govshare setting and is ignored (see docs/settings.md).")
    return out


def _config_error(exc: ValidationError, *, source: str) -> ConfigError:
    first = exc.errors()[0]
    name = str(first["loc"][0]) if first.get("loc") else "?"
    where = env_name(name) if source == "env" else f"--{name.replace('_', '-')}"
    shown = "" if name in SECRET_FIELDS else f"={str(first.get('input'))[:80]!r}"
    why = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return ConfigError(
        f"The setting {where}{shown} is not valid: {why}{more}.".replace("..", "."),
        setting=env_name(name),
    )
