"""Who may call what: bearer-token authentication and role checks.

Every route declares exactly one *auth rule*, as a dependency:

* ``Depends(public)`` — anyone (liveness, readiness, the API docs);
* ``Depends(requires())`` — any authenticated user of this department;
* ``Depends(requires(Role.ADMIN, ...))`` — one of these roles;
* ``Depends(metrics_reader)`` — an administrator, or a scraper presenting the
  broker's metrics token (``GOVSHARE_METRICS_TOKEN``);
* ``Depends(peer_signed)`` — another department's broker, authenticated by an
  EIP-712 signature over the request body (``Govshare-Signature`` header), not
  by a user token. The dependency checks the header is there and well formed;
  the handler verifies the signature against the registry before anything
  else (see :mod:`govshare.broker.serve_exchange`).

:func:`routes_without_auth_rule` finds routes that forgot; ``create_app``
refuses to build such an app, and a test walks the route table too.

A token is checked against this broker's user table; a user of another
department (possible only with a shared database) is refused as well, so a
department's token never reaches another department's objects.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, Security
from fastapi.dependencies.models import Dependant
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from govshare.api.context import ApiDeps, ApiSettings, get_deps, get_settings
from govshare.broker.db import Role
from govshare.broker.errors import AuthError, Forbidden, SignatureRequired
from govshare.broker.exchange import parse_signature
from govshare.broker.users import Principal

bearer_scheme = HTTPBearer(
    scheme_name="bearer",
    bearerFormat="gs_ token",
    description="A broker user's token (created by `govshare user add`), "
    "sent as `Authorization: Bearer gs_...`.",
    auto_error=False,
)

_RULE_ATTR = "__govshare_auth_rule__"


@dataclass(frozen=True)
class AuthRule:
    """``roles`` None: public (or, with ``peer``, a signed peer broker); empty:
    any authenticated user; else one of them."""

    roles: frozenset[Role] | None
    peer: bool = False
    #: ``roles`` or the broker's metrics token.
    metrics: bool = False

    @property
    def public(self) -> bool:
        return self.roles is None and not self.peer

    def describe(self) -> str:
        if self.peer:
            return "a peer broker's EIP-712 signature"
        if self.metrics:
            return "an administrator's token or the broker's metrics token"
        if self.roles is None:
            return "public"
        if not self.roles:
            return "any authenticated user"
        return "role " + " or ".join(sorted(r.value for r in self.roles))


async def public() -> None:
    """The auth rule of a route anyone may call."""


setattr(public, _RULE_ATTR, AuthRule(None))


peer_signature_scheme = APIKeyHeader(
    name="Govshare-Signature",
    scheme_name="peerSignature",
    description="Another department's broker: an EIP-712 signature (0x + 130 hex digits) "
    "by its registered broker key over the JSON body (see docs/exchange.md).",
    auto_error=False,
)


async def peer_signed(
    signature: Annotated[str | None, Security(peer_signature_scheme)],
) -> bytes:
    """The auth rule of a peer-facing route: the 65-byte signature of the
    ``Govshare-Signature`` header (the handler verifies it against the registry)."""
    if not signature:
        raise SignatureRequired(
            "A peer exchange needs a Govshare-Signature header: an EIP-712 signature by "
            "the requesting department's broker key."
        )
    return parse_signature(signature, "Govshare-Signature header")


setattr(peer_signed, _RULE_ATTR, AuthRule(None, peer=True))


def requires(*roles: Role | str) -> Callable[..., Principal]:
    """The auth rule (and dependency) of a route for authenticated users, of
    one of ``roles`` if given. Its value is the caller's :class:`Principal`."""
    wanted = frozenset(Role(r) for r in roles)
    rule = AuthRule(wanted)

    def authenticated(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
        deps: Annotated[ApiDeps, Depends(get_deps)],
        settings: Annotated[ApiSettings, Depends(get_settings)],
    ) -> Principal:
        if credentials is None:
            raise AuthError("This needs a bearer token: send 'Authorization: Bearer gs_...'.")
        principal = deps.users.authenticate(credentials.credentials)
        if principal.department != settings.department:
            raise Forbidden("This token belongs to a user of another department.")
        if wanted and principal.role not in wanted:
            raise Forbidden(f"This needs the {rule.describe()}; you are a {principal.role.value}.")
        request.state.principal = principal
        return principal

    setattr(authenticated, _RULE_ATTR, rule)
    return authenticated


def _calls(dependant: Dependant) -> Iterator[Any]:
    for dep in dependant.dependencies:
        yield dep.call
        yield from _calls(dep)


def iter_routes(app: FastAPI) -> Iterator[Any]:
    """Every route of ``app``, with included routers expanded.

    FastAPI ≥ 0.16x keeps an included router as one lazy entry of ``app.routes``;
    ``iter_route_contexts`` yields its effective routes (with the include-level
    dependencies merged). Older FastAPI flattens routes on inclusion.
    """
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI: app.routes is already flat
        yield from app.routes
        return
    yield from iter_route_contexts(app.routes)


def auth_rules_of(route: Any) -> list[AuthRule]:
    """The auth rules a route declares (a well-formed route has exactly one)."""
    dependant = getattr(route, "dependant", None)
    if not isinstance(dependant, Dependant):
        return []  # not a FastAPI route (a raw Starlette route or mount): no rule
    return [
        rule for call in _calls(dependant) if (rule := getattr(call, _RULE_ATTR, None)) is not None
    ]


def routes_without_auth_rule(app: FastAPI) -> list[str]:
    """Routes with no auth rule, or more than one: each should be fixed."""
    bad = []
    for route in iter_routes(app):
        rules = auth_rules_of(route)
        if len(rules) != 1:
            methods = ",".join(sorted(getattr(route, "methods", None) or []))
            bad.append(f"{methods} {getattr(route, 'path', route)}: {len(rules)} auth rules")
    return bad


def metrics_reader(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    deps: Annotated[ApiDeps, Depends(get_deps)],
    settings: Annotated[ApiSettings, Depends(get_settings)],
) -> None:
    """The auth rule of ``/metrics``: the broker's metrics token (a Prometheus
    scraper's, compared in constant time), or an administrator's token."""
    if credentials is None:
        raise AuthError("This needs a bearer token: send 'Authorization: Bearer gs_...'.")
    token = settings.metrics_token
    if token is not None and hmac.compare_digest(
        credentials.credentials.encode("utf-8"), token.encode("utf-8")
    ):
        return
    principal = deps.users.authenticate(credentials.credentials)
    if principal.department != settings.department:
        raise Forbidden("This token belongs to a user of another department.")
    if principal.role is not Role.ADMIN:
        raise Forbidden(f"This needs {_METRICS_RULE.describe()}; you are a {principal.role.value}.")
    request.state.principal = principal


_METRICS_RULE = AuthRule(frozenset({Role.ADMIN}), metrics=True)
setattr(metrics_reader, _RULE_ATTR, _METRICS_RULE)
