"""The broker's FastAPI application factory.

    app = create_app(ApiSettings(department="TAX"), ApiDeps.from_database(db))

No globals: settings and services are passed in and kept on ``app.state``
(routes reach them through :mod:`govshare.api.deps`), so several apps — one per
department in a test — live side by side, each with its own metrics registry.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse

from govshare.api.auth import iter_routes, public, routes_without_auth_rule
from govshare.api.context import ApiDeps, ApiSettings
from govshare.api.errors import (
    PROBLEM_JSON,
    REQUIRED_HEADERS,
    install_error_handlers,
    problem_responses,
)
from govshare.api.metrics import HttpMetrics, MetricsMiddleware
from govshare.api.middleware import (
    BodyLimitMiddleware,
    BodyLimits,
    MethodNotAllowedMiddleware,
    SecurityHeadersMiddleware,
)
from govshare.api.routes import (
    audit,
    events,
    exchange,
    me,
    operations,
    records,
    requests,
    system,
    users,
    webhooks,
)
from govshare.api.uploads import FRAMING_ALLOWANCE
from govshare.broker.services import DEFAULT_MAX_UPLOAD

DESCRIPTION = """\
One department's govshare broker: its clerks publish and request records here,
and peer brokers exchange granted records with it.

Authenticate with `Authorization: Bearer gs_...` (a token from `govshare user add`).
Peer brokers call `POST /v1/exchange` with an EIP-712 signature instead
(`Govshare-Signature`, see docs/exchange.md).
Every error is `application/problem+json` (RFC 9457) with a stable `code`.
"""


def create_app(settings: ApiSettings, deps: ApiDeps) -> FastAPI:
    """Build the broker API for one department over the given services."""
    app = FastAPI(
        title=f"{settings.title} ({settings.department})",
        version=settings.version,
        description=DESCRIPTION,
        # The built-in docs routes would carry no auth rule: ours are declared below.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.govshare_settings = settings
    app.state.govshare_deps = deps
    metrics = HttpMetrics(deps.db)
    app.state.govshare_metrics = metrics

    app.include_router(system.router)
    app.include_router(me.router)
    app.include_router(users.router)
    app.include_router(operations.router)
    app.include_router(records.router)
    app.include_router(requests.router)
    app.include_router(exchange.router)
    app.include_router(audit.router)
    app.include_router(events.router)
    app.include_router(webhooks.router)
    if settings.docs:
        _add_docs(app)

    install_error_handlers(app)
    app.add_middleware(MethodNotAllowedMiddleware, routes=lambda: iter_routes(app))
    # Before anything reads a body (FastAPI parses JSON before the auth rule runs).
    app.add_middleware(BodyLimitMiddleware, limits=body_limits(settings, deps))
    app.add_middleware(SecurityHeadersMiddleware)
    # Outermost, so it also counts the 500s the error middleware produces.
    app.add_middleware(MetricsMiddleware, metrics=metrics)

    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]

    missing = routes_without_auth_rule(app)
    if missing:
        raise RuntimeError("routes without exactly one auth rule: " + "; ".join(missing))
    return app


def body_limits(settings: ApiSettings, deps: ApiDeps) -> BodyLimits:
    """Every route's body limit: the uploads take the broker's upload limit
    (with room for the multipart framing); every other route, JSON ones and the
    peer exchange alike, ``settings.max_json_body``."""
    upload = deps.services.limits.max_upload if deps.services else DEFAULT_MAX_UPLOAD
    multipart = upload + FRAMING_ALLOWANCE
    return BodyLimits(
        default=settings.max_json_body,
        uploads={("POST", "/v1/records"): multipart, ("POST", "/v1/records/batch"): multipart},
    )


def _add_docs(app: FastAPI) -> None:
    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(public)])
    def openapi_json() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=[Depends(public)])
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=app.title)


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with error responses filed under problem+json."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            _no_null_parameters(operation)
            _required_headers(operation)
            _body_answers(operation)
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                is_error = status == "default" or (status.isdigit() and int(status) >= 400)
                if is_error and "application/json" in content:
                    body = content.pop("application/json")
                    if "Problem" in str(body.get("schema", {}).get("$ref", "")):
                        content[PROBLEM_JSON] = body
                    else:
                        content["application/json"] = body
    app.openapi_schema = schema
    return schema


def _no_null_parameters(operation: dict[str, Any]) -> None:
    """A parameter is absent or has a value: the ``null`` FastAPI's schema of an
    optional one allows is sent as the text "null", which no route takes."""
    for param in operation.get("parameters", []):
        schema = param.get("schema", {})
        alts = schema.get("anyOf")
        if alts and any(a.get("type") == "null" for a in alts):
            rest = [a for a in alts if a.get("type") != "null"]
            del schema["anyOf"]
            if len(rest) == 1:
                schema.update({**rest[0], **schema})
            else:
                schema["anyOf"] = rest


def _required_headers(operation: dict[str, Any]) -> None:
    required = set(operation.pop(REQUIRED_HEADERS, ()))
    for param in operation.get("parameters", []):
        if param.get("in") == "header" and param.get("name") in required:
            param["required"] = True


def _body_answers(operation: dict[str, Any]) -> None:
    """What any route with a body may answer besides its own: 400 (a JSON body
    that is not JSON) and 413 (a body above its limit, refused before reading)."""
    if "requestBody" not in operation:
        return
    responses = operation.setdefault("responses", {})
    for status, answer in problem_responses(400, 413).items():
        responses.setdefault(
            str(status),
            {
                "description": answer["description"],
                "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
            },
        )
