"""Pure ASGI middleware that guards every route: body size limits, security
headers, and 405 answers that name every allowed method.

Body limits come *before* anything reads the body, and so before the token or
the peer's signature is checked (FastAPI parses a JSON body before it runs a
route's dependencies): a declared ``Content-Length`` above the route's limit
is answered 413 at once, without a byte of the body read; a body without one
(chunked) is counted as it arrives and cut off as soon as it crosses the
limit — the 413 goes out then, and the app, which asked for more, is told the
body is too large and its own answer dropped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from govshare.api.errors import problem_response
from govshare.api.uploads import FRAMING_ALLOWANCE
from govshare.broker.errors import UploadTooLarge
from govshare.errors import BodyTooLarge, InputError, MethodNotAllowed

NOSNIFF = (b"x-content-type-options", b"nosniff")


@dataclass(frozen=True)
class BodyLimits:
    """The largest body, in bytes, of each request: ``uploads`` by
    ``(method, path)``, every other request ``default``."""

    default: int
    uploads: Mapping[tuple[str, str], int] = field(default_factory=dict)

    def of(self, method: str, path: str) -> tuple[int, InputError]:
        """The limit of a request, and the error that refuses a body above it."""
        upload = self.uploads.get((method, path))
        if upload is not None:
            # one refusal for an upload, here or in the route: it names the
            # limit (without the framing's allowance) and the setting raising it
            batch = path.endswith("/batch")
            return upload, UploadTooLarge.over(upload - FRAMING_ALLOWANCE, total=batch)
        return self.default, BodyTooLarge(
            f"The request body is larger than this broker's limit of {self.default} bytes "
            "for this route."
        )


class BodyLimitMiddleware:
    """Refuses (413) a request body above its route's :class:`BodyLimits`,
    before the app reads it."""

    def __init__(self, app: ASGIApp, limits: BodyLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, error = self.limits.of(str(scope.get("method", "")), str(scope.get("path", "")))
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refuse(scope, send, error)
            return

        await _LimitedRequest(scope, receive, send, limit, error).run(self.app)


class _LimitedRequest:
    """One request whose body is counted as the app receives it."""

    def __init__(
        self, scope: Scope, receive: Receive, send: Send, limit: int, error: InputError
    ) -> None:
        self.scope, self._receive, self._send = scope, receive, send
        self.limit, self.error = limit, error
        self.received = 0
        self.refused = False  # the body crossed the limit: the app gets no more of it
        self.answered = False  # ... and the 413 went out: the app's own answer is dropped
        self.started = False

    async def run(self, app: ASGIApp) -> None:
        try:
            await app(self.scope, self.receive, self.send)
        except type(self.error):
            if not self.answered:
                raise

    async def receive(self) -> Message:
        if self.refused:
            raise self.error
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit:
                self.refused = True
                if not self.started:
                    await _refuse(self.scope, self._send, self.error)
                    self.answered = True
                raise self.error
        return message

    async def send(self, message: Message) -> None:
        if self.answered:
            return
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            # the server has already refused a malformed one; be total anyway
            return int(text) if text.isdigit() and len(text) < 20 else None
    return None


async def _refuse(scope: Scope, send: Send, error: InputError) -> None:
    # Connection: close, as the unread rest of the body cannot be skipped cheaply
    response = problem_response(
        error.status,
        error.code,
        error.message,
        instance=str(scope.get("path", "")),
        headers={"Connection": "close"},
    )
    await send(
        {
            "type": "http.response.start",
            "status": response.status_code,
            "headers": response.raw_headers,
        }
    )
    await send({"type": "http.response.body", "body": response.body})


class SecurityHeadersMiddleware:
    """Adds ``X-Content-Type-Options: nosniff`` to every answer (content, JSON,
    errors), so no browser guesses a record's type and runs it as a page."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != NOSNIFF[0]]
                message = {**message, "headers": [*headers, NOSNIFF]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class MethodNotAllowedMiddleware:
    """405 with an ``Allow`` header that names every method the path takes.

    Starlette answers 405 from the first route whose path matches, so ``Allow``
    named only that route's methods (``GET`` for ``/v1/users``, which takes
    ``POST`` too); and a literal path of one method (``POST /v1/records/batch``)
    was claimed by a parameterised route of another (``GET
    /v1/records/{record_id}``: a 422 for a GET of ``/v1/records/batch``). Here
    a literal path is matched first, as the OpenAPI document reads it, and a
    method none of the path's routes takes is refused before routing.
    """

    def __init__(self, app: ASGIApp, routes: Callable[[], Iterable[Any]]) -> None:
        self.app = app
        self._routes = routes
        self._table: list[tuple[bool, re.Pattern[str], frozenset[str]]] | None = None

    def _methods(self, path: str) -> frozenset[str] | None:
        if self._table is None:
            self._table = [
                ("{" not in r.path, r.path_regex, frozenset(r.methods))
                for r in self._routes()
                if getattr(r, "methods", None) and hasattr(r, "path_regex")
            ]
        matching = [(literal, m) for literal, rx, m in self._table if rx.match(path)]
        if not matching:
            return None  # no such path: the router's 404
        literal = [m for is_literal, m in matching if is_literal]
        return frozenset().union(*(literal or [m for _, m in matching]))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            allowed = self._methods(str(scope.get("path", "")))
            if allowed is not None and scope.get("method") not in allowed:
                response = problem_response(
                    MethodNotAllowed.status,
                    MethodNotAllowed.code,
                    "This path does not accept this method.",
                    instance=str(scope.get("path", "")),
                    headers={"Allow": ", ".join(sorted(allowed))},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
