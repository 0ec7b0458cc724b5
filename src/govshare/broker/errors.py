"""Errors the broker raises, under the common :class:`~govshare.errors.GovShareError` tree.

    GovShareError
    ├── AuthError                       (401) who is calling cannot be established
    │   └── InvalidToken                (401) unknown, malformed, revoked or expired token
    ├── Forbidden                       (403) the caller is known but may not do this
    │   ├── CategoryNotShared           (403) the owner's catalog says the category is not shared
    │   └── DepartmentInactive          (403) this department is suspended or removed
    ├── Conflict                        (409)
    │   ├── IdempotencyConflict         (409) an Idempotency-Key reused with another body
    │   ├── OperationInProgress         (409) the keyed operation is still running
    │   ├── AlreadyExists               (409) e.g. a user name taken
    │   └── NonceReplayed               (409) a peer's exchange nonce seen before
    ├── OperationFailed                 (500) a durable operation ended in failure
    ├── BrokerNotConfigured             (503) the API runs without a ledger and store
    ├── TooManyStreams                  (503) the broker serves as many event streams as it may
    ├── InputError (govshare.errors)
    │   ├── IdempotencyKeyRequired      (400) a write without an Idempotency-Key header
    │   ├── UploadTooLarge              (413) an upload above the broker's size limit
    │   ├── NotMultipart                (415) a publish that is not multipart/form-data
    │   ├── UnknownCategory             (422) a category the department has not declared
    │   ├── IdentifierInText            (422) text bound for the chain names a subject's identifier
    │   ├── ExchangeMalformed           (400) a peer's exchange request that does not parse
    │   ├── RangeInvalid                (416) a Range header that is not one satisfiable byte range
    │   ├── EventCursorInvalid          (400) a Last-Event-ID / after that is no event id here
    │   └── WebhookInvalid              (400) a webhook URL or secret that is refused
    ├── NotFound (govshare.errors)
    │   ├── RecordUnknown               (404) no such record (on chain, or held here)
    │   ├── GrantUnknown                (404) no such grant on chain
    │   ├── ExchangeUnknown             (404) no such exchange of this department
    │   └── WebhookUnknown              (404) no such webhook
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
    ├── ResumeExpired                   (410) the exchange's resume window has ended
    ├── PeerError                       (502) the owner's broker failed us
    │   ├── PeerUnreachable             (503) it cannot be reached
    │   ├── TransferIncomplete          (502) the ciphertext stream broke off
    │   └── PeerRefused                 (502) it refused with a code we do not know
    └── IntegrityError (govshare.errors)
        ├── CiphertextMismatch          (502) what the owner sent is not the anchored CID
        └── ReceiptInvalid              (502) the owner's receipt does not verify

A peer's refusal in an exchange comes back as problem+json; the requesting
broker rebuilds it with :func:`govshare.errors.from_problem` and re-raises the
refusals in :data:`PEER_REFUSALS` as the same class, with the same code, to its
own clerk.
"""

from __future__ import annotations

from typing import Any

from govshare.errors import GovShareError, InputError, IntegrityError, NotFound


class AuthError(GovShareError):
    """Who is calling cannot be established: no bearer token."""

    code = "auth.required"
    status = 401
    remedy = "Send a bearer token (`govshare login`, --token or GOVSHARE_TOKEN)."


class InvalidToken(AuthError):
    """The bearer token is unknown, malformed, revoked or expired."""

    code = "auth.invalid_token"
    status = 401
    remedy = "Log in again (`govshare login`) or ask an administrator for a new token."


class Forbidden(GovShareError):
    """The caller is known but may not do this (role or department)."""

    code = "auth.forbidden"
    status = 403
    remedy = "Ask an administrator for the role the message names."


class CategoryNotShared(Forbidden):
    """The owner's catalog declares the category as not shared: no request for it."""

    code = "request.not_shared"
    status = 403
    remedy = (
        "Nothing can be requested of it; ask the owner's administrator whether another "
        "category holds what you need (`govshare catalog list`)."
    )


class DepartmentInactive(Forbidden):
    """This department is suspended or removed from the consortium: it cannot
    publish (nothing is stored) until a consortium vote reinstates it."""

    code = "department.inactive"
    status = 403
    remedy = (
        "Ask the consortium's administrators to reinstate the department "
        "(`govshare dept propose reactivate CODE`); nothing was stored meanwhile."
    )


class Conflict(GovShareError):
    """The request conflicts with the current state."""

    code = "conflict"
    status = 409
    remedy = "Read the current state (a list or show command), then retry if it still applies."


class IdempotencyConflict(Conflict):
    """An Idempotency-Key reused with another request body."""

    code = "idempotency.conflict"
    status = 409
    remedy = "Use a new idempotency key for a different request."


class OperationInProgress(Conflict):
    """The operation under this Idempotency-Key is still running."""

    code = "idempotency.in_progress"
    status = 409
    remedy = "Retry the same request later with the same key; it will not run twice."


class AlreadyExists(Conflict):
    """The thing to create exists already (e.g. a user name)."""

    code = "conflict.exists"
    status = 409
    remedy = "Pick another name, or use the existing one."


class LastAdministrator(Conflict):
    """Revoking this user would leave the department's broker without an active
    administrator: no one could manage its users any more."""

    code = "user.last_admin"
    status = 409
    remedy = "Add another administrator first (`govshare user add NAME --role admin`)."


class NonceReplayed(Conflict):
    """A peer's exchange request nonce was seen before: a replay."""

    code = "exchange.replayed"
    status = 409
    remedy = "The requesting broker must sign a fresh request; a replay is refused by design."


class OperationFailed(GovShareError):
    """A durable operation failed; ``error`` is the stored failure (code, message)."""

    code = "operation.failed"
    status = 500
    remedy = "Fix the cause the stored error names, then try again with a new idempotency key."

    def __init__(self, message: str, *, error: dict[str, Any] | None = None, **details: Any):
        super().__init__(message, error=error or {}, **details)
        self.error = error or {}


class BrokerNotConfigured(GovShareError):
    """The broker API runs without a ledger and blob store."""

    code = "broker.not_configured"
    status = 503
    remedy = "Start the broker with `govshare serve` (it connects the chain and the store)."


# -- publishing and uploads -------------------------------------------------------------


class IdempotencyKeyRequired(InputError):
    """A write without an Idempotency-Key header."""

    code = "idempotency.key_required"
    status = 400
    remedy = "Send an Idempotency-Key header (the CLI does it for you)."


class UploadTooLarge(InputError):
    """An upload above the broker's size limit."""

    code = "input.too_large"
    status = 413
    remedy = "Split the record, or ask the operator to raise --max-upload / GOVSHARE_MAX_UPLOAD."

    @classmethod
    def over(cls, limit: int, *, total: bool = False) -> UploadTooLarge:
        """The refusal, naming the limit and the setting that raises it."""
        from govshare.util import format_size

        what = "The files of one request add up to more than" if total else "The file is over"
        return cls(
            f"{what} this broker's upload limit of {format_size(limit)}; its operator raises "
            "it with GOVSHARE_MAX_UPLOAD (`govshare serve --max-upload`, or `govshare dev up "
            "--max-upload` for a dev consortium)."
        )


class NotMultipart(InputError):
    """A publish that is not multipart/form-data with a file part."""

    code = "input.not_multipart"
    status = 415
    remedy = "Send the record as multipart/form-data with a 'file' part (the CLI does)."


class UnknownCategory(InputError):
    """A category the department has not declared in its catalog."""

    code = "record.unknown_category"
    status = 422
    remedy = "Declare it first (`govshare catalog add`) or use a declared one."


class RecordUnknown(NotFound):
    """No such record, on chain or held by this broker."""

    code = "record.unknown"
    status = 404
    remedy = "Check the record id (`govshare record list`)."


# -- grants ---------------------------------------------------------------------------


class GrantUnknown(NotFound):
    """No such grant on chain."""

    code = "grant.unknown"
    status = 404
    remedy = "Check the grant id (`govshare grant list`)."


class GrantRefused(GovShareError):
    """The grant exists but does not allow this use now."""

    code = "grant.refused"
    status = 403
    remedy = "Ask the owner's administrator for a (new) grant."


class NoGrant(GrantRefused):
    """This department holds no usable grant for the record."""

    code = "grant.none"
    remedy = "Request access first (`govshare request create`) and wait for approval."


class GrantPending(GrantRefused):
    """The request is not decided yet by the owner's administrator."""

    code = "grant.pending"
    remedy = "Wait for the decision, or remind them (`govshare request remind`)."


class GrantDenied(GrantRefused):
    """The owner's administrator denied the request."""

    code = "grant.denied"
    remedy = "Read the reason given; file a new request if it can be met."


class GrantRevoked(GrantRefused):
    """The grant was revoked."""

    code = "grant.revoked"
    remedy = "Ask the owner's administrator; a new request is needed."


class GrantExpired(GrantRefused):
    """The grant has expired."""

    code = "grant.expired"
    remedy = "File a new request for the record."


class GrantQuotaExhausted(GrantRefused):
    """The grant's use quota is spent."""

    code = "grant.quota_exhausted"
    remedy = "File a new request for the record."


class GrantDepartmentInactive(GrantRefused):
    """The owner or the requester is suspended or removed from the consortium."""

    code = "grant.department_inactive"
    remedy = "Wait until the department is active again (a consortium vote)."


class GrantMismatch(GrantRefused):
    """The grant is for another department or record."""

    code = "grant.mismatch"
    remedy = "Use the grant issued for this record and department."


# -- the exchange protocol --------------------------------------------------------------


class IdentifierInText(InputError):
    """Free text bound for the chain (a purpose, a legal basis, a reason for a
    denial or a revocation) that holds a subject's identifier."""

    code = "input.identifier_in_text"
    status = 422
    remedy = (
        "Name the subject with --subject (a keyed reference, the only form that goes on "
        "chain) and keep identifiers out of the text."
    )


class ExchangeMalformed(InputError):
    """A peer's exchange request that does not parse."""

    code = "exchange.malformed"
    status = 400
    remedy = "Upgrade the requesting broker to a matching govshare version."


class ExchangeAuthError(GovShareError):
    """A peer's exchange request that is not acceptable."""

    code = "exchange.unauthenticated"
    status = 401
    remedy = "Check the requesting broker's key against the registry."


class SignatureRequired(ExchangeAuthError):
    """An exchange request without a Govshare-Signature header."""

    code = "exchange.signature_required"
    remedy = "Send exchange requests through a govshare broker: it signs them."


class BadSignature(ExchangeAuthError):
    """The exchange request's signature does not verify."""

    code = "exchange.bad_signature"
    remedy = "Check the requesting broker's key and clock; sign the request again."


class WrongSigner(ExchangeAuthError):
    """Signed, but not by the department's registered broker key."""

    code = "exchange.wrong_signer"
    status = 403
    remedy = "Rotate the registry's broker key or use the registered one."


class ExchangeExpired(ExchangeAuthError):
    """The exchange request's expiry has passed."""

    code = "exchange.expired"
    remedy = "Sign a fresh request; check both machines' clocks."


class PeerError(GovShareError):
    """The owner's broker failed us."""

    code = "exchange.peer_error"
    status = 502
    remedy = "Retry later; tell the owner's operator if it repeats."


class PeerUnreachable(PeerError):
    """The owner's broker cannot be reached or cannot serve now."""

    code = "exchange.peer_unreachable"
    status = 503
    remedy = "Retry later; check the endpoint the registry holds for the owner."


class TransferIncomplete(PeerError):
    """The ciphertext stream broke off mid-way, and resuming it did not succeed."""

    code = "exchange.transfer_incomplete"
    status = 502
    remedy = (
        "Fetch again within the resume window (`govshare record fetch` resumes by "
        "itself): the same exchange continues without spending another use. Nothing "
        "partial was kept."
    )


class ExchangeUnknown(NotFound):
    """No exchange with this id (its request hash) between this department and the
    caller: another department's exchange is never named or resumed."""

    code = "exchange.unknown"
    status = 404
    remedy = (
        "Resume only an exchange your own fetch started (the Govshare-Exchange header "
        "of its answer); otherwise fetch the record again."
    )


class ResumeExpired(GovShareError):
    """The exchange was started longer ago than the owner's resume window
    (GOVSHARE_EXCHANGE_RESUME_WINDOW): it can no longer be continued."""

    code = "exchange.resume_expired"
    status = 410
    remedy = (
        "Fetch the record again (`govshare record fetch`): that is a new exchange and "
        "spends another use of the grant, if it has one left."
    )


class RangeInvalid(InputError):
    """A Range header that is not one satisfiable byte range (RFC 9110
    ``bytes=FIRST-[LAST]`` or ``bytes=-SUFFIX``), or a range where none may be
    asked for."""

    code = "exchange.range_invalid"
    status = 416
    remedy = (
        "Ask for one byte range within the content, e.g. `Range: bytes=1048576-`, "
        "and for another department's record send the Govshare-Exchange header too."
    )


class PeerRefused(PeerError):
    """The owner's broker refused with a code this broker does not know."""

    code = "exchange.peer_refused"
    status = 502
    remedy = "Read its code and message; the owner may run another govshare version."


class CiphertextMismatch(IntegrityError):
    """What the owner sent is not the anchored CID."""

    code = "exchange.ciphertext_mismatch"
    status = 502
    remedy = "Do not use it; report it to the owner's operator and the supervisor."


class ReceiptInvalid(IntegrityError):
    """The owner's receipt does not verify."""

    code = "exchange.receipt_invalid"
    status = 502
    remedy = "Report it to the owner's operator: the exchange cannot be proven."


class EventCursorInvalid(InputError):
    """A ``Last-Event-ID`` header or ``after`` query that is no event id of this broker."""

    code = "events.bad_cursor"
    status = 400
    remedy = (
        "Send the id of the last event received from this broker, or 0 to read "
        "every notification again."
    )


class TooManyStreams(GovShareError):
    """The broker serves as many event streams as it may, or is shutting down."""

    code = "events.busy"
    status = 503
    remedy = "Reconnect after a moment, close streams you do not use, or add a webhook instead."


class WebhookInvalid(InputError):
    """A webhook URL (not http/https, credentials in it, too long) or secret that is refused."""

    code = "webhook.invalid"
    status = 400
    remedy = (
        "Give an http:// or https:// URL without user name or password, and a secret "
        "of 16 to 256 printable characters (or none: one is generated)."
    )


class WebhookUnknown(NotFound):
    """No webhook with this id at this broker."""

    code = "webhook.unknown"
    status = 404
    remedy = "List the department's webhooks with `govshare webhook list --dept CODE`."


#: The refusals an owner's broker may answer an exchange with that the requester
#: re-raises as they are (the same class and code reach the requester's clerk);
#: any other answer becomes a :class:`PeerRefused` or :class:`PeerUnreachable`.
PEER_REFUSALS: tuple[type[GovShareError], ...] = (
    RecordUnknown,
    GrantUnknown,
    GrantRefused,
    ExchangeMalformed,
    ExchangeAuthError,
    NonceReplayed,
    ExchangeUnknown,
    ResumeExpired,
    RangeInvalid,
)
