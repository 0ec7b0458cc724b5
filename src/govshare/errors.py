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
    │   └── OutOfRange                 a well-formed number beyond its bound (HTTP 422)
    ├── NotFound                       an unknown department / record / request / CID
    ├── KeyError_                      keystores and passwords
    │   └── WrongPassword
    ├── IntegrityError                 data does not match its hash / tag / CID
    │   └── DecryptionError
    ├── ChainError                     talking to the chain
    │   ├── ChainUnavailable           node down or unreachable
    │   ├── TransactionTimeout         sent, but no receipt in time
    │   ├── ChainRejected              the node refused a request (not a contract revert)
    │   └── ContractReverted           the contract refused; ``reason`` is its custom error
    │       └── Unauthorized           the caller has no right to do this
    ├── StorageError                   talking to the blob store
    │   └── StorageUnavailable
    └── DevNodeError                   starting / stopping the local dev chain

Lower layers translate foreign exceptions (httpx, JSON-RPC, sqlite, OS) into these
with ``raise X(...) from exc`` so nothing foreign leaks past ``chain/`` or
``storage/``.
"""

from __future__ import annotations

from typing import Any, ClassVar


class GovShareError(Exception):
    """Root of every error govshare raises on purpose."""

    code: ClassVar[str] = "govshare.error"
    status: ClassVar[int] = 500

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe description (for ``--json`` output and problem+json)."""
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            out["details"] = {k: _jsonable(v) for k, v in self.details.items()}
        return out


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
    code = "config.invalid"
    status = 500


class ProfileNotFound(ConfigError):
    code = "config.profile_not_found"
    status = 404


class DeploymentNotFound(ConfigError):
    code = "config.deployment_not_found"
    status = 503


class InputError(GovShareError):
    code = "input.invalid"
    status = 400


class OutOfRange(InputError):
    """A well-formed value beyond what it may be: a deadline past the contracts'
    horizon, a number that does not fit the 64 bits it is stored in."""

    code = "input.out_of_range"
    status = 422


class NotFound(GovShareError):
    code = "not_found"
    status = 404


class KeyError_(GovShareError):  # trailing underscore: the builtin KeyError stays usable
    code = "key.error"
    status = 500


class WrongPassword(KeyError_):
    code = "key.wrong_password"
    status = 401


class IntegrityError(GovShareError):
    code = "integrity.mismatch"
    status = 502


class DecryptionError(IntegrityError):
    code = "integrity.decryption_failed"
    status = 502


class ChainError(GovShareError):
    code = "chain.error"
    status = 502


class ChainUnavailable(ChainError):
    code = "chain.unavailable"
    status = 503


class TransactionTimeout(ChainError):
    code = "chain.tx_timeout"
    status = 504


class TransactionDropped(TransactionTimeout):
    """A sent transaction the chain lost (its nonce now holds another): as
    retryable as a timeout, but known at once."""

    code = "chain.tx_dropped"


class ContractReverted(ChainError):
    """The contract refused the call. ``reason`` is the custom error's name
    (e.g. ``AccessLedgerGrantExpired``) and ``args`` its decoded arguments."""

    code = "chain.reverted"
    status = 409

    def __init__(
        self, message: str, *, reason: str = "", args: dict[str, Any] | None = None, **details: Any
    ) -> None:
        super().__init__(message, reason=reason, args=args or {}, **details)
        self.reason = reason
        self.revert_args = args or {}

    @property
    def code_for_reason(self) -> str:
        """A stable per-reason code, e.g. ``chain.reverted.AccessLedgerGrantExpired``."""
        return f"{self.code}.{self.reason}" if self.reason else self.code


class Unauthorized(ContractReverted):
    code = "chain.unauthorized"
    status = 403


class StorageError(GovShareError):
    code = "storage.error"
    status = 502


class StorageUnavailable(StorageError):
    code = "storage.unavailable"
    status = 503


class DevNodeError(GovShareError):
    code = "devnode.error"
    status = 500


# -- additions by the chain layer ------------------------------------------------


class ChainRejected(ChainError):
    """The node refused a request that is not a contract revert (an invalid or
    underfunded transaction, an unsupported method). ``rpc_code`` and
    ``rpc_message`` keep what the node said."""

    code = "chain.rejected"
    status = 502


class DeploymentStale(DeploymentNotFound):
    """The deployment file names contracts the chain does not hold (the dev
    chain was reset, or the file belongs to another network)."""

    code = "config.deployment_stale"
    status = 503
