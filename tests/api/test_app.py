"""The app's structure: an auth rule on every route, a complete OpenAPI document."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter, Depends, FastAPI

from govshare.api import ApiDeps, ApiSettings, create_app
from govshare.api.auth import auth_rules_of, iter_routes, public, requires, routes_without_auth_rule
from govshare.api.errors import PROBLEM_JSON
from govshare.broker.db import Database, sqlite_url

PUBLIC = {"/healthz", "/readyz", "/openapi.json", "/docs", "/audit"}


@pytest.fixture
def app(tmp_path: Path) -> Iterator[FastAPI]:
    db = Database.open(sqlite_url(tmp_path / "b.db"))
    try:
        yield create_app(ApiSettings(department="TAX"), ApiDeps.from_database(db))
    finally:
        db.close()


def test_every_route_declares_exactly_one_auth_rule(app: FastAPI) -> None:
    seen = set()
    for route in iter_routes(app):
        rules = auth_rules_of(route)
        assert len(rules) == 1, f"{route.path} {route.methods}: {rules}"
        if rules[0].public:
            seen.add(route.path)
    assert seen == PUBLIC


def test_the_route_walk_catches_a_route_without_a_rule() -> None:
    app = FastAPI()
    router = APIRouter()

    @router.get("/open")
    def forgot() -> dict[str, str]:
        return {}

    @router.get("/twice", dependencies=[Depends(public), Depends(requires())])
    def twice() -> dict[str, str]:
        return {}

    @app.get("/fine", dependencies=[Depends(public)])
    def fine() -> dict[str, str]:
        return {}

    app.include_router(router, prefix="/x")
    bad = {b.split()[1].rstrip(":") for b in routes_without_auth_rule(app)}
    # FastAPI's built-in docs routes are plain Starlette routes with no rule:
    # the walk flags them too (create_app declares its own instead).
    assert bad == {
        "/x/open",
        "/x/twice",
        "/openapi.json",
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
    }


def test_a_rule_given_at_include_time_counts() -> None:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    router = APIRouter()

    @router.get("/thing")
    def thing() -> dict[str, str]:
        return {}

    app.include_router(router, dependencies=[Depends(requires("admin"))])
    assert routes_without_auth_rule(app) == []


def _operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, op in item.items():
            yield path, method, op


def test_openapi_is_complete(app: FastAPI) -> None:
    spec = app.openapi()
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    peer_scheme = spec["components"]["securitySchemes"]["peerSignature"]
    assert peer_scheme == {
        **peer_scheme,
        "type": "apiKey",
        "in": "header",
        "name": "Govshare-Signature",
    }
    assert "Problem" in spec["components"]["schemas"]
    paths = {p for p, _, _ in _operations(spec)}
    assert {"/healthz", "/readyz", "/metrics", "/v1/me", "/v1/users"} <= paths
    assert "/openapi.json" not in paths and "/docs" not in paths
    for path, method, op in _operations(spec):
        where = f"{method.upper()} {path}"
        assert op.get("description"), where
        responses = op["responses"]
        ok = [s for s in responses if s.startswith("2")]
        assert ok and all(responses[s].get("content") for s in ok), where
        assert "500" in responses, where
        for status, resp in responses.items():
            if int(status) >= 400 and not (path == "/readyz" and status == "503"):
                assert list(resp["content"]) == [PROBLEM_JSON], (where, status)
                assert resp["content"][PROBLEM_JSON]["schema"]["$ref"].endswith("/Problem")
        bearer = op.get("security") == [{"bearer": []}]
        peer = op.get("security") == [{"peerSignature": []}]
        # /v1/exchange and its resume are for peer brokers: an EIP-712 signature
        assert peer == path.startswith("/v1/exchange"), where
        # /metrics: an administrator's token or the scraper's metrics token, both bearer
        assert bearer == ((path.startswith("/v1/") or path == "/metrics") and not peer), where
        if bearer or peer:
            assert {"401", "403"} <= set(responses), where
        if op.get("parameters") or op.get("requestBody"):
            assert "422" in responses, where
    # no FastAPI default validation schema left behind
    assert "HTTPValidationError" not in spec["components"]["schemas"]


def test_docs_can_be_switched_off(tmp_path: Path) -> None:
    db = Database.open(sqlite_url(tmp_path / "b.db"))
    try:
        app = create_app(ApiSettings(department="TAX", docs=False), ApiDeps.from_database(db))
        assert {r.path for r in iter_routes(app)}.isdisjoint({"/openapi.json", "/docs"})
    finally:
        db.close()


def test_settings_validate_the_department() -> None:
    assert ApiSettings(department="tax").department == "TAX"
    with pytest.raises(Exception, match="department code"):
        ApiSettings(department="../etc")


def test_public_api() -> None:
    import govshare.api

    assert sorted(govshare.api.__all__) == ["ApiDeps", "ApiSettings", "Probe", "create_app"]
    for name in govshare.api.__all__:
        assert getattr(govshare.api, name) is not None
