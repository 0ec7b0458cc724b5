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
    ├── OperationFailed                 (500) a durable operation ended in failure
    ├── BrokerNotConfigured             (503) the API runs without a ledger and store
    ├── InputError (govshare.errors)
    │   ├── IdempotencyKeyRequired      (400) a write without an Idempotency-Key header
    │   ├── UploadTooLarge              (413) an upload above the broker's size limit
    │   ├── UnknownCategory             (422) a category the department has not declared
    │   └── ExchangeMalformed           (400) a peer's exchange request that does not parse
    ├── NotFound (govshare.errors)
    │   ├── RecordUnknown               (404) no such record (on chain, or held here)
    │   └── GrantUnknown                (404) no such grant on chain
    ├── GrantRefused                    (403) the grant does not allow this use now
    │   ├── NoGrant                     (403) this department holds no usable grant
    │   ├── GrantPending, GrantDenied, GrantRevoked, GrantExpired,
    │   │   GrantQuotaExhausted, GrantDepartmentInactive
    │   └── GrantMismatch               (403) the grant is for another department or record
    ├── ExchangeAuthError               (401) a peer's exchange request is not acceptable
    │   ├── BadSignature                (401) the signature does not verify
    │   ├── WrongSigner                 (403) signed, but not by the department's broker key
    │   ├── SignatureRequired           (401) no Govshare-Signature header
    │   └── ExchangeExpired             (401) the request's expiry has passed
    ├── PeerError                       (502) the owner's broker failed us
    │   ├── PeerUnreachable             (503) it cannot be reached
    │   ├── TransferIncomplete          (502) the ciphertext stream broke off
    │   └── PeerRefused                 (502) it refused with a code we do not know
    └── IntegrityError (govshare.errors)
        ├── CiphertextMismatch          (502) what the owner sent is not the anchored CID
        └── ReceiptInvalid              (502) the owner's receipt does not verify

Every error a peer's broker may answer in an exchange (the ``grant.*``,
``exchange.*`` and ``record.unknown`` codes) is listed in :data:`PEER_ERRORS`,
so the requesting broker re-raises the same class, with the same code, to its
own clerk.

They live here (not in ``govshare/errors.py``) while the broker takes shape;
their codes are stable already.
"""

from __future__ import annotations

from typing import Any

from govshare.errors import GovShareError, InputError, IntegrityError, NotFound


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


class BrokerNotConfigured(GovShareError):
    code = "broker.not_configured"
    status = 503


# -- publishing and uploads -------------------------------------------------------------


class IdempotencyKeyRequired(InputError):
    code = "idempotency.key_required"
    status = 400


class UploadTooLarge(InputError):
    code = "input.too_large"
    status = 413


class UnknownCategory(InputError):
    code = "record.unknown_category"
    status = 422


class RecordUnknown(NotFound):
    code = "record.unknown"
    status = 404


# -- grants ---------------------------------------------------------------------------


class GrantUnknown(NotFound):
    code = "grant.unknown"
    status = 404


class GrantRefused(GovShareError):
    """The grant exists but does not allow this use now."""

    code = "grant.refused"
    status = 403


class NoGrant(GrantRefused):
    code = "grant.none"


class GrantPending(GrantRefused):
    code = "grant.pending"


class GrantDenied(GrantRefused):
    code = "grant.denied"


class GrantRevoked(GrantRefused):
    code = "grant.revoked"


class GrantExpired(GrantRefused):
    code = "grant.expired"


class GrantQuotaExhausted(GrantRefused):
    code = "grant.quota_exhausted"


class GrantDepartmentInactive(GrantRefused):
    code = "grant.department_inactive"


class GrantMismatch(GrantRefused):
    code = "grant.mismatch"


# -- the exchange protocol --------------------------------------------------------------


class ExchangeMalformed(InputError):
    code = "exchange.malformed"
    status = 400


class ExchangeAuthError(GovShareError):
    code = "exchange.unauthenticated"
    status = 401


class SignatureRequired(ExchangeAuthError):
    code = "exchange.signature_required"


class BadSignature(ExchangeAuthError):
    code = "exchange.bad_signature"


class WrongSigner(ExchangeAuthError):
    code = "exchange.wrong_signer"
    status = 403


class ExchangeExpired(ExchangeAuthError):
    code = "exchange.expired"


class PeerError(GovShareError):
    code = "exchange.peer_error"
    status = 502


class PeerUnreachable(PeerError):
    code = "exchange.peer_unreachable"
    status = 503


class TransferIncomplete(PeerError):
    code = "exchange.transfer_incomplete"
    status = 502


class PeerRefused(PeerError):
    code = "exchange.peer_refused"
    status = 502


class CiphertextMismatch(IntegrityError):
    code = "exchange.ciphertext_mismatch"
    status = 502


class ReceiptInvalid(IntegrityError):
    code = "exchange.receipt_invalid"
    status = 502


#: Codes an owner's broker may answer an exchange with, and the class the
#: requester re-raises for each (the same code reaches the requester's clerk).
PEER_ERRORS: dict[str, type[GovShareError]] = {
    cls.code: cls
    for cls in (
        RecordUnknown,
        GrantUnknown,
        GrantPending,
        GrantDenied,
        GrantRevoked,
        GrantExpired,
        GrantQuotaExhausted,
        GrantDepartmentInactive,
        GrantMismatch,
        ExchangeMalformed,
        SignatureRequired,
        BadSignature,
        WrongSigner,
        ExchangeExpired,
        NonceReplayed,
    )
}
