"""The govshare exception tree.

Every error govshare raises on purpose is a :class:`GovShareError`. Each class
carries a stable ``code`` (tests and API clients match on it, never on the
wording) and the HTTP ``status`` the broker API answers with. Messages are
sentences a clerk can act on; they never contain a key, a password or a token.

    GovShareError
    ├── ConfigError                    bad or missing configuration / profile
    │   ├── ProfileNotFound
    │   └── DeploymentNotFound
    │       └── DeploymentStale        the chain holds no govshare contracts at those addresses
    ├── InputError                     a malformed argument (id, CID, file, option)
    │   ├── OutOfRange                 a well-formed number beyond its bound (HTTP 422)
    │   ├── RequestInvalid             the API request does not validate (HTTP 422)
    │   ├── MalformedJSON              the API request body is not JSON
    │   └── MethodNotAllowed           the API path does not take this method (HTTP 405)
    ├── NotFound                       an unknown department / record / request / CID
    │   └── NoSuchPath                 nothing at this API path
    ├── KeyError_                      keystores and passwords
    │   └── WrongPassword
    ├── IntegrityError                 data does not match its hash / tag / CID
    │   └── DecryptionError
    ├── ChainError                     talking to the chain
    │   ├── ChainUnavailable           node down or unreachable
    │   ├── TransactionTimeout         sent, but no receipt in time
    │   │   └── TransactionDropped     sent, then lost by the chain
    │   ├── ChainRejected              the node refused a request (not a contract revert)
    │   └── ContractReverted           the contract refused; ``reason`` is its custom error
    │       └── Unauthorized           the caller has no right to do this
    ├── StorageError                   talking to the blob store
    │   └── StorageUnavailable
    ├── DatabaseUnavailable            the broker's database cannot be used now (HTTP 503)
    ├── DevNodeError                   starting / stopping the local dev chain
    ├── InternalError                  an unexpected failure in the broker (HTTP 500)
    └── RemoteError                    another service's error with a code we do not know

One catalogue: every class that sets a ``code`` registers it when it is defined
(a second class with the same code fails at import), with its ``status``, its
meaning (the docstring's first paragraph) and a ``remedy``; ``docs/errors.md``
is generated from it (``scripts/gen_errors_doc.py``). :func:`from_problem`
turns a problem+json answer back into the registered class: the CLI's broker
client and the peer exchange use it.

Lower layers translate foreign exceptions (httpx, JSON-RPC, sqlite, OS) into these
with ``raise X(...) from exc`` so nothing foreign leaks past ``chain/`` or
``storage/``.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any, ClassVar

#: The modules that define the errors a broker may answer with: importing them
#: fills the registry (:func:`catalogue`). A test checks that no error class
#: lives anywhere else (the CLI's own, never sent over HTTP, excepted).
CATALOGUE_MODULES = (
    "govshare.errors",
    "govshare.crypto.errors",
    "govshare.storage.errors",
    "govshare.audit.errors",
    "govshare.broker.errors",
)

_REGISTRY: dict[str, type[GovShareError]] = {}


class DuplicateErrorCode(TypeError):
    """Two error classes claim the same code (raised when the second is defined)."""


class GovShareError(Exception):
    """Root of every error govshare raises on purpose."""

    #: The stable code (class-wide; an error rebuilt from another service's
    #: answer keeps the code it arrived with, see :func:`from_problem`).
    code: str = "govshare.error"
    #: The HTTP status the broker API answers with.
    status: int = 500
    #: What to do about it, in a sentence (the docs' error table shows it).
    remedy: ClassVar[str] = "Read the message; report it to the operator if it persists."

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "code" in cls.__dict__:
            _register(cls)

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    @classmethod
    def meaning(cls) -> str:
        """The first sentence of the class docstring: what the error means."""
        doc = (cls.__doc__ or "").strip().split("\n\n", 1)[0]
        return " ".join(doc.split())

    @classmethod
    def rebuild(cls, message: str, details: Mapping[str, Any]) -> GovShareError:
        """This error from a problem+json answer's message and details (see
        :func:`from_problem`); classes whose constructor takes more override it."""
        return cls(message, **{k: v for k, v in details.items() if k != "message"})

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe description (for ``--json`` output and problem+json)."""
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            out["details"] = {k: _jsonable(v) for k, v in self.details.items()}
        return out


def _register(cls: type[GovShareError]) -> None:
    """Enter ``cls`` in the catalogue; a code another class holds raises."""
    code, status = cls.__dict__["code"], cls.status
    if not isinstance(code, str) or not code:
        raise TypeError(f"{cls.__qualname__}.code must be a non-empty string.")
    if not isinstance(status, int) or not 400 <= status <= 599:
        raise TypeError(f"{cls.__qualname__}.status must be an HTTP error status (400-599).")
    seen = _REGISTRY.get(code)
    # (the same class defined again, by a module reloaded, replaces itself)
    if seen is not None and (seen.__module__, seen.__qualname__) != (
        cls.__module__,
        cls.__qualname__,
    ):
        raise DuplicateErrorCode(
            f"Error code {code!r} of {cls.__module__}.{cls.__qualname__} is already "
            f"{seen.__module__}.{seen.__qualname__}'s: every error class needs its own code."
        )
    _REGISTRY[code] = cls


_register(GovShareError)


def catalogue() -> dict[str, type[GovShareError]]:
    """Every registered error class by code, after importing :data:`CATALOGUE_MODULES`."""
    for name in CATALOGUE_MODULES:
        importlib.import_module(name)
    return dict(sorted(_REGISTRY.items()))


def registered(code: str) -> type[GovShareError] | None:
    """The class registered for ``code`` (among the modules imported so far)."""
    return _REGISTRY.get(code)


def from_problem(
    body: object, status: int | None = None, *, message: str | None = None, **details: Any
) -> GovShareError:
    """The error an ``application/problem+json`` answer describes, as its
    registered class.

    ``body`` is the decoded answer (``code``, ``status``, ``detail`` / ``title`` /
    ``message``, ``details``); ``status`` the HTTP status it came with. A code
    with a reason suffix (``chain.reverted.AccessLedgerGrantExpired``) gives its
    class with that reason; a code no class registers gives a
    :class:`RemoteError` that keeps it. The error keeps the code it arrived with.
    ``message`` replaces the answer's sentence, ``details`` are added to its own.
    """
    doc: Mapping[str, Any] = body if isinstance(body, Mapping) else {}
    wire_status = status if status is not None else _int(doc.get("status"))
    code = doc.get("code") if isinstance(doc.get("code"), str) else None
    code = code or (f"http.{wire_status}" if wire_status else RemoteError.code)
    text = message or next(
        (
            str(doc[k])
            for k in ("detail", "message", "title")
            if isinstance(doc.get(k), str) and doc[k]
        ),
        f"HTTP {wire_status}" if wire_status else "An error without a description.",
    )
    extra = doc.get("details")
    merged: dict[str, Any] = {**(extra if isinstance(extra, Mapping) else {}), **details}
    catalogue()
    cls = _REGISTRY.get(code)
    if cls is None:
        base, _, reason = code.rpartition(".")
        parent = _REGISTRY.get(base)
        if parent is not None and issubclass(parent, ContractReverted) and reason:
            cls = parent
            merged.setdefault("reason", reason)
    if cls is None:
        err: GovShareError = RemoteError(text, **merged)
        err.status = wire_status if wire_status and 400 <= wire_status <= 599 else err.status
    else:
        try:
            err = cls.rebuild(text, merged)
        except TypeError:  # details that do not fit the class's own constructor
            err = cls.__new__(cls)
            GovShareError.__init__(err, text, **merged)
    err.code = code
    return err


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


class ConfigError(GovShareError):
    """The configuration is missing or wrong (a setting, a profile, a file)."""

    code = "config.invalid"
    status = 500
    remedy = "Fix the setting or file the message names (see docs/settings.md)."


class ProfileNotFound(ConfigError):
    """No profile for that department in this govshare home."""

    code = "config.profile_not_found"
    status = 404
    remedy = "Check --home / GOVSHARE_HOME and the code, or create it with `govshare init`."


class DeploymentNotFound(ConfigError):
    """No deployment file: the consortium's contracts are unknown to this home."""

    code = "config.deployment_not_found"
    status = 503
    remedy = "Deploy (`govshare consortium deploy` or `dev up`), or set GOVSHARE_DEPLOYMENT_FILE."


class InputError(GovShareError):
    """A malformed argument: an id, a CID, a file, an option."""

    code = "input.invalid"
    status = 400
    remedy = "Correct the value the message names and try again; nothing was changed."


class OutOfRange(InputError):
    """A well-formed value beyond what it may be: a deadline past the contracts'
    horizon, a number that does not fit the 64 bits it is stored in."""

    code = "input.out_of_range"
    status = 422
    remedy = "Use a value within the bound the message gives."


class NotFound(GovShareError):
    """An unknown department, record, request or CID."""

    code = "not_found"
    status = 404
    remedy = "Check the id or name (a list command shows the known ones)."


class KeyError_(GovShareError):  # trailing underscore: the builtin KeyError stays usable
    """A keystore or password problem."""

    code = "key.error"
    status = 500
    remedy = "Check the key files of the department's profile and the password settings."


class WrongPassword(KeyError_):
    """The password does not unlock the key."""

    code = "key.wrong_password"
    status = 401
    remedy = "Give the right password (GOVSHARE_PASSWORD, GOVSHARE_PASSWORD_FILE or the prompt)."


class IntegrityError(GovShareError):
    """Data does not match its hash, tag or CID."""

    code = "integrity.mismatch"
    status = 502
    remedy = "Do not use the data; fetch it again and tell the owner's operator if it repeats."


class DecryptionError(IntegrityError):
    """A ciphertext does not decrypt: a wrong key, or altered bytes."""

    code = "integrity.decryption_failed"
    status = 502
    remedy = "Do not use the data; fetch it again and tell the owner's operator if it repeats."


class ChainError(GovShareError):
    """Talking to the chain failed."""

    code = "chain.error"
    status = 502
    remedy = "Check the chain node (GOVSHARE_RPC) and retry."


class ChainUnavailable(ChainError):
    """The chain node is down or unreachable."""

    code = "chain.unavailable"
    status = 503
    remedy = "Start the node or fix GOVSHARE_RPC / --rpc, then retry."


class TransactionTimeout(ChainError):
    """A transaction was sent but no receipt came in time."""

    code = "chain.tx_timeout"
    status = 504
    remedy = "Retry with the same idempotency key: it will not be applied twice."


class TransactionDropped(TransactionTimeout):
    """A sent transaction the chain lost (its nonce now holds another): as
    retryable as a timeout, but known at once."""

    code = "chain.tx_dropped"
    remedy = "Retry with the same idempotency key: the broker sends it again."


class ContractReverted(ChainError):
    """The contract refused the call. ``reason`` is the custom error's name
    (e.g. ``AccessLedgerGrantExpired``) and ``args`` its decoded arguments.

    Over HTTP the code carries the reason: ``chain.reverted.REASON``."""

    code = "chain.reverted"
    status = 409
    remedy = "Read the reason: the contract's rules (docs/contracts.md) say what it needs."

    def __init__(
        self, message: str, *, reason: str = "", args: dict[str, Any] | None = None, **details: Any
    ) -> None:
        super().__init__(message, reason=reason, args=args or {}, **details)
        self.reason = reason
        self.revert_args = args or {}

    @property
    def code_for_reason(self) -> str:
        """A stable per-reason code, e.g. ``chain.reverted.AccessLedgerGrantExpired``."""
        base = type(self).code
        return f"{base}.{self.reason}" if self.reason else base


class Unauthorized(ContractReverted):
    """The contract refused: the caller has no right to do this.

    Over HTTP the code carries the reason: ``chain.unauthorized.REASON``."""

    code = "chain.unauthorized"
    status = 403
    remedy = "Act with the key that has the role (an active member's administrator or broker)."


class StorageError(GovShareError):
    """Talking to the blob store failed."""

    code = "storage.error"
    status = 502
    remedy = "Check the blob store (GOVSHARE_STORE) and retry."


class StorageUnavailable(StorageError):
    """The blob store is down, timed out or refused the token."""

    code = "storage.unavailable"
    status = 503
    remedy = "Start Kubo or fix GOVSHARE_STORE / GOVSHARE_KUBO_TOKEN, then retry."


class DevNodeError(GovShareError):
    """Starting or stopping the local dev chain failed."""

    code = "devnode.error"
    status = 500
    remedy = "Read the chain log under HOME/chain; `make setup` installs anvil."


class ChainRejected(ChainError):
    """The node refused a request that is not a contract revert (an invalid or
    underfunded transaction, an unsupported method). ``rpc_code`` and
    ``rpc_message`` keep what the node said."""

    code = "chain.rejected"
    status = 502
    remedy = "Read the node's message; check the account's funds and the node's version."


class DeploymentStale(DeploymentNotFound):
    """The deployment file names contracts the chain does not hold (the dev
    chain was reset, or the file belongs to another network)."""

    code = "config.deployment_stale"
    status = 503
    remedy = "Deploy again (`govshare dev up`) or point GOVSHARE_DEPLOYMENT_FILE at this chain's."


class DatabaseUnavailable(GovShareError):
    """The broker's database cannot be used now: locked beyond the busy timeout,
    the disk full, the file read-only, missing or damaged, the server down."""

    code = "db.unavailable"
    status = 503
    remedy = "Fix what the message names (disk space, permissions, the database server); retry."


# -- what the broker API answers besides the errors above ---------------------------


class RequestInvalid(InputError):
    """The request does not validate: ``errors`` lists the fields."""

    code = "input.validation_failed"
    status = 422
    remedy = "Correct the fields listed in errors."


class MalformedJSON(InputError):
    """The request body is not JSON."""

    code = "input.malformed_json"
    status = 400
    remedy = "Send a JSON body."


class BodyTooLarge(InputError):
    """A request body above the route's limit, refused before it is read."""

    code = "input.body_too_large"
    status = 413
    remedy = (
        "Send a smaller body; the operator sets the limit of JSON requests with "
        "GOVSHARE_MAX_JSON_BODY (uploads: GOVSHARE_MAX_UPLOAD)."
    )


class NoSuchPath(NotFound):
    """Nothing at this path of the broker API."""

    code = "http.not_found"
    status = 404
    remedy = "Check the URL against the API reference (/docs)."


class MethodNotAllowed(InputError):
    """The path does not accept this HTTP method."""

    code = "http.method_not_allowed"
    status = 405
    remedy = "Check the method against the API reference (/docs)."


class InternalError(GovShareError):
    """The broker hit an unexpected error; ``error_id`` names its log line."""

    code = "internal"
    status = 500
    remedy = "Quote the error id to the broker's operator: the log line holds the cause."


class RemoteError(GovShareError):
    """Another service answered with an error code this version of govshare does
    not know; the error keeps that code."""

    code = "remote.unknown"
    status = 502
    remedy = "Read the message; the other side may run a newer govshare."
