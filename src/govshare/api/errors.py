"""Every error the API answers is ``application/problem+json`` (RFC 9457).

    {"type": "urn:govshare:problem:auth.forbidden", "title": "Forbidden",
     "status": 403, "detail": "This needs the admin role.", "code": "auth.forbidden"}

* a :class:`~govshare.errors.GovShareError` → its ``status`` and stable ``code``;
  ``detail`` is its message (written for a clerk, never holding a key or token);
* request validation → 422 ``input.validation_failed`` with the field errors
  (without the offending input: it could be a secret), or 400
  ``input.malformed_json`` when the body is not JSON at all;
* unknown path / wrong method → 404 ``http.not_found`` / 405
  ``http.method_not_allowed``;
* a database failure (locked, disk full, server down) → 503 ``db.unavailable``
  with a sentence;
* anything unexpected → a generic 500 ``internal`` with an ``error_id`` that is
  also in the log line (with the traceback, redacted), never in the response.

``type`` is a URN built from the code: stable and unique per kind of problem.
"""

from __future__ import annotations

import logging
import uuid
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from govshare.broker.db import DATABASE_FAILURES, database_unavailable
from govshare.broker.errors import AuthError, InvalidToken
from govshare.errors import (
    ContractReverted,
    GovShareError,
    InternalError,
    MalformedJSON,
    MethodNotAllowed,
    NoSuchPath,
    RequestInvalid,
)

log = logging.getLogger("govshare.api")

PROBLEM_JSON = "application/problem+json"
#: An operation's ``openapi_extra`` key: headers the route requires itself (with
#: its own error) although its parameter is optional; the OpenAPI hook marks
#: them required.
REQUIRED_HEADERS = "x-govshare-required-headers"
#: Set in the ASGI scope when the client went away before its request was read
#: (the metrics count it as 499, nginx's "client closed request").
CLIENT_GONE = "govshare.client_gone"
_TYPE_PREFIX = "urn:govshare:problem:"

# Detail keys never echoed back, whatever an error carries.
_SECRET_DETAIL = ("key", "token", "secret", "password", "passphrase", "mnemonic", "dek")


class FieldError(BaseModel):
    loc: list[str | int] = Field(description="Where: ('body', 'name'), ('query', 'limit'), ...")
    msg: str
    type: str


class Problem(BaseModel):
    """An RFC 9457 problem document, with govshare's stable ``code``."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "type": "urn:govshare:problem:auth.invalid_token",
                "title": "Unauthorized",
                "status": 401,
                "detail": "The bearer token is unknown, revoked or expired.",
                "code": "auth.invalid_token",
            }
        }
    )

    type: str = Field(description="A URN naming the kind of problem: urn:govshare:problem:CODE")
    title: str = Field(description="The HTTP status phrase")
    status: int
    detail: str = Field(description="What happened, in a sentence a clerk can act on")
    code: str = Field(description="The stable govshare error code; match on this")
    instance: str | None = Field(default=None, description="The request path")
    error_id: str | None = Field(
        default=None, description="For unexpected errors: the id of the matching log line"
    )
    details: dict[str, Any] | None = Field(default=None, description="Structured context")
    errors: list[FieldError] | None = Field(default=None, description="Validation errors")


def problem_response(
    status: int,
    code: str,
    detail: str,
    *,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = Problem(
        type=_TYPE_PREFIX + code,
        title=HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error",
        status=status,
        detail=detail,
        code=code,
        instance=instance,
        **extra,
    )
    return JSONResponse(
        body.model_dump(mode="json", exclude_none=True),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def _safe_details(details: dict[str, Any] | None) -> dict[str, Any] | None:
    if not details:
        return None
    safe = {
        k: v
        for k, v in details.items()
        if not any(word in k.lower() for word in _SECRET_DETAIL) or k.endswith("_id")
    }
    return safe or None


def _auth_headers(exc: GovShareError) -> dict[str, str] | None:
    if isinstance(exc, InvalidToken):
        return {"WWW-Authenticate": 'Bearer error="invalid_token"'}
    if isinstance(exc, AuthError):
        return {"WWW-Authenticate": "Bearer"}
    return None


async def _govshare_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, GovShareError)
    resp = error_response(exc, request.url.path)
    if exc.status >= 500:
        log.warning("%s %s -> %d %s", request.method, request.url.path, exc.status, exc.code)
    return resp


def error_response(exc: GovShareError, instance: str) -> JSONResponse:
    """The problem answer for ``exc`` (what a route raising it answers)."""
    code = exc.code_for_reason if isinstance(exc, ContractReverted) else exc.code
    return problem_response(
        exc.status,
        code,
        exc.message,
        instance=instance,
        headers=_auth_headers(exc),
        details=_safe_details(exc.to_dict().get("details")),
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return problem_response(
            MalformedJSON.status,
            MalformedJSON.code,
            "The request body is not valid JSON.",
            instance=request.url.path,
        )
    fields = [
        FieldError(loc=list(e.get("loc", ())), msg=str(e.get("msg", "")), type=str(e.get("type")))
        for e in errors
    ]
    return problem_response(
        RequestInvalid.status,
        RequestInvalid.code,
        "The request is not valid: see errors.",
        instance=request.url.path,
        errors=fields,
    )


_HTTP_CODES = {
    404: (NoSuchPath.code, "There is nothing at this path."),
    405: (MethodNotAllowed.code, "This path does not accept this method."),
}


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code, detail = _HTTP_CODES.get(exc.status_code, (f"http.{exc.status_code}", ""))
    if not detail:
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    return problem_response(
        exc.status_code,
        code,
        detail,
        instance=request.url.path,
        headers=dict(exc.headers) if exc.headers else None,
    )


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    """A database failure a use case did not translate: the same 503 problem."""
    translated = database_unavailable(exc)
    if translated is None:  # a bug (a constraint, bad SQL): the generic 500
        raise exc
    return await _govshare_error(request, translated)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(GovShareError, _govshare_error)
    for db_error in DATABASE_FAILURES:
        app.add_exception_handler(db_error, _database_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_middleware(UnexpectedErrorMiddleware)


class UnexpectedErrorMiddleware:
    """Turns any exception no handler took into a generic 500 problem, logging
    the traceback (redacted by the log filter) under a fresh error id.

    A pure ASGI middleware inside Starlette's ServerErrorMiddleware: that one
    would re-raise after answering, and print the traceback a second time.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except ClientDisconnect:
            # Not the broker's fault, and no one to answer: one calm line (an
            # interrupted upload's partial file is already deleted).
            scope[CLIENT_GONE] = True
            log.info(
                "%s %s: the client disconnected before its request was read in full",
                scope.get("method"),
                scope.get("path"),
            )
        except Exception as exc:
            error_id = uuid.uuid4().hex[:12]
            log.error(
                "unexpected error %s on %s %s",
                error_id,
                scope.get("method"),
                scope.get("path"),
                exc_info=exc,
            )
            if started:  # too late for a clean answer: let the server drop it
                raise
            response = problem_response(
                InternalError.status,
                InternalError.code,
                f"The broker hit an unexpected error. Quote error id {error_id} to its operator.",
                instance=scope.get("path"),
                error_id=error_id,
            )
            await response(scope, receive, send)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries documenting problem answers (the app's
    OpenAPI hook files them under ``application/problem+json``)."""
    descriptions = {
        400: "Malformed request (e.g. the body is not JSON)",
        401: "Missing, unknown, revoked or expired bearer token",
        403: "The token's user may not do this (role or department)",
        404: "Not found",
        409: "Conflict (e.g. an Idempotency-Key reused with another body)",
        413: "The body is larger than this route's limit (refused before it is read)",
        422: "The request does not validate",
        500: "Unexpected error (an error id is logged)",
        502: "A backend (chain, store) gave a bad answer",
        503: "A backend (chain, store) is unavailable",
    }
    return {
        s: {"model": Problem, "description": descriptions.get(s, HTTPStatus(s).phrase)}
        for s in statuses
    }
