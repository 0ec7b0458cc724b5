"""Errors the broker raises, under the common :class:`~govshare.errors.GovShareError` tree.

    GovShareError
    ├── AuthError                       (401) who is calling cannot be established
    │   └── InvalidToken                (401) unknown, malformed, revoked or expired token
    ├── Forbidden                       (403) the caller is known but may not do this
    ├── Conflict                        (409)
    │   ├── IdempotencyConflict         (409) an Idempotency-Key reused with another body
    │   ├── OperationInProgress         (409) the keyed operation is still running
    │   ├── AlreadyExists               (409) e.g. a user name taken
    │   └── NonceReplayed               (409) a peer's exchange nonce seen before
    └── OperationFailed                 (500) a durable operation ended in failure

They live here (not in ``govshare/errors.py``) while the broker takes shape;
their codes are stable already.
"""

from __future__ import annotations

from typing import Any

from govshare.errors import GovShareError


class AuthError(GovShareError):
    code = "auth.required"
    status = 401


class InvalidToken(AuthError):
    code = "auth.invalid_token"
    status = 401


class Forbidden(GovShareError):
    code = "auth.forbidden"
    status = 403


class Conflict(GovShareError):
    code = "conflict"
    status = 409


class IdempotencyConflict(Conflict):
    code = "idempotency.conflict"
    status = 409


class OperationInProgress(Conflict):
    code = "idempotency.in_progress"
    status = 409


class AlreadyExists(Conflict):
    code = "conflict.exists"
    status = 409


class NonceReplayed(Conflict):
    code = "exchange.replayed"
    status = 409


class OperationFailed(GovShareError):
    """A durable operation failed; ``error`` is the stored failure (code, message)."""

    code = "operation.failed"
    status = 500

    def __init__(self, message: str, *, error: dict[str, Any] | None = None, **details: Any):
        super().__init__(message, error=error or {}, **details)
        self.error = error or {}
