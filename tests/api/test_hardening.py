"""Hostile input at the API's door, over real HTTP: bodies above their route's
limit are refused before they are read and before any token or signature is
checked; every answer says ``nosniff``; ``/metrics`` is not public; the last
administrator stays."""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.types import Message, Receive, Scope, Send

from api.conftest import Broker, make_broker
from govshare.api.auth import iter_routes
from govshare.api.context import DEFAULT_MAX_JSON_BODY, ApiSettings
from govshare.api.uploads import FRAMING_ALLOWANCE
from govshare.broker.outbox import IDEMPOTENCY_KEY_PATTERN
from govshare.broker.services import DEFAULT_MAX_UPLOAD
from govshare.broker.users import NAME_PATTERN
from govshare.errors import ConfigError
from govshare.settings import Settings

PROBLEM = "application/problem+json"
METRICS_TOKEN = "scraper-" + "s" * 40
#: The most one read of the server's socket hands the app (asyncio's read size).
ONE_READ = 256 * 1024


class Counting:
    """An ASGI wrapper that counts the body bytes the server handed the app."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.received = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def counted() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                self.received += len(message.get("body", b""))
            return message

        await self.app(scope, counted, send)


@pytest.fixture
def counted(tmp_path: Path) -> Iterator[tuple[Broker, Counting]]:
    probe: list[Counting] = []

    def wrap(app: FastAPI) -> Counting:
        probe.append(Counting(app))
        return probe[0]

    b = make_broker(tmp_path, wrap=wrap, metrics_token=METRICS_TOKEN)
    try:
        yield b, probe[0]
    finally:
        b.client.close()
        b.server.stop()
        b.db.close()


def _connect(b: Broker) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", b.server.port), timeout=20)
    sock.settimeout(20)  # a server that waits for the body fails the test, not hangs it
    return sock


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with a Content-Length (what the broker answers)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the connection closed before an answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
    while len(body) < int(headers.get("content-length", "0")):
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body


def _problem(status: int, headers: dict[str, str], body: bytes, want: int, code: str) -> None:
    assert status == want, body
    assert headers["content-type"].startswith(PROBLEM)
    assert json.loads(body)["code"] == code, body
    assert headers["x-content-type-options"] == "nosniff"


def _body_routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path) that takes a body, its path parameters filled in."""
    out = []
    for route in iter_routes(app):
        path = re.sub(r"\{[^}]+\}", "1", getattr(route, "path", ""))
        for method in sorted(getattr(route, "methods", None) or ()):
            if method in ("POST", "PUT", "PATCH", "DELETE"):
                out.append((method, path))
    assert ("POST", "/v1/exchange") in out and ("POST", "/v1/users") in out
    return out


# -- body limits ------------------------------------------------------------------------


def test_a_declared_oversized_body_is_refused_at_once_on_every_route(
    counted: tuple[Broker, Counting],
) -> None:
    b, probe = counted
    for method, path in _body_routes(b.app):
        upload = path in ("/v1/records", "/v1/records/batch")
        size = (DEFAULT_MAX_UPLOAD + FRAMING_ALLOWANCE if upload else DEFAULT_MAX_JSON_BODY) + 1
        with _connect(b) as sock:
            # headers only, no token, no signature: the body never comes
            sock.sendall(
                f"{method} {path} HTTP/1.1\r\nHost: broker\r\n"
                f"Content-Type: application/json\r\nContent-Length: {size}\r\n\r\n".encode()
            )
            status, headers, body = _read_response(sock)
        code = "input.too_large" if upload else "input.body_too_large"
        _problem(status, headers, body, 413, code)
        assert headers["connection"] == "close"
    assert probe.received == 0


def test_an_endless_chunked_body_is_cut_off_at_the_limit(
    counted: tuple[Broker, Counting],
) -> None:
    b, probe = counted
    sock = _connect(b)
    sock.sendall(
        b"POST /v1/users HTTP/1.1\r\nHost: broker\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b'{"name": "' + b"x" * 65536
    frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    sent = 0

    def feed() -> None:  # "endless": 64 MiB unless the broker hangs up first
        nonlocal sent
        try:
            while sent < 64 * 1024 * 1024:
                sock.sendall(frame)
                sent += len(chunk)
        except OSError:
            pass  # the broker closed the connection: what it should do

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        status, headers, body = _read_response(sock)
    finally:
        feeder.join(30)
        sock.close()
    _problem(status, headers, body, 413, "input.body_too_large")
    assert probe.received <= DEFAULT_MAX_JSON_BODY + ONE_READ, probe.received
    assert sent < 64 * 1024 * 1024


def test_a_body_within_the_limit_is_served(counted: tuple[Broker, Counting]) -> None:
    b, _ = counted
    r = b.client.post(
        "/v1/users",
        json={"name": "nina", "role": "clerk", "pad": "x" * 1000},
        headers=b.auth("adam"),
    )
    assert r.status_code in (201, 422), r.text  # within the limit: validated, not refused
    assert r.json()["code"] != "input.body_too_large"


def test_the_json_limit_is_a_setting(tmp_path: Path) -> None:
    b = make_broker(tmp_path, max_json_body=100)
    try:
        r = b.client.post("/v1/users", json={"name": "nina", "role": "clerk", "pad": "x" * 100})
        assert r.status_code == 413, r.text
        assert r.json()["code"] == "input.body_too_large"
        assert "100 bytes" in r.json()["detail"]
        assert len(b.deps.users.list_users()) == 3  # nothing changed
    finally:
        b.client.close()
        b.server.stop()
        b.db.close()


# -- X-Content-Type-Options ------------------------------------------------------------


def test_every_answer_says_nosniff(counted: tuple[Broker, Counting]) -> None:
    b, _ = counted
    answers = [
        b.client.get("/healthz"),  # JSON
        b.client.get("/v1/me", headers=b.auth("clara")),  # JSON, authenticated
        b.client.get("/audit"),  # HTML
        b.client.get("/metrics", headers=b.auth("adam")),  # text
        b.client.get("/v1/me"),  # 401
        b.client.get("/no/such/path"),  # 404
        b.client.delete("/healthz"),  # 405
        b.client.get("/v1/records?offset=-1", headers=b.auth("clara")),  # 422 / 503
    ]
    for r in answers:
        assert r.headers.get("x-content-type-options") == "nosniff", (r.request.url, r.headers)


# -- /metrics ------------------------------------------------------------------------------


def test_metrics_need_an_administrator_or_the_metrics_token(
    counted: tuple[Broker, Counting],
) -> None:
    b, _ = counted
    b.client.get("/healthz")
    r = b.client.get("/metrics")
    assert r.status_code == 401 and r.json()["code"] == "auth.required"
    assert "govshare_" not in r.text
    r = b.client.get("/metrics", headers={"Authorization": "Bearer " + METRICS_TOKEN[:-1]})
    assert r.status_code == 401 and r.json()["code"] == "auth.invalid_token"
    for who in ("clara", "audrey"):
        r = b.client.get("/metrics", headers=b.auth(who))
        assert r.status_code == 403 and r.json()["code"] == "auth.forbidden", r.text
        assert "metrics token" in r.json()["detail"]
    for headers in (b.auth("adam"), {"Authorization": "Bearer " + METRICS_TOKEN}):
        r = b.client.get("/metrics", headers=headers)
        assert r.status_code == 200, r.text
        assert 'govshare_http_requests_total{method="GET",route="/healthz",status="200"}' in r.text


def test_without_a_metrics_token_only_administrators_read_metrics(broker: Broker) -> None:
    assert broker.client.get("/metrics").status_code == 401
    r = broker.client.get("/metrics", headers={"Authorization": "Bearer " + METRICS_TOKEN})
    assert r.status_code == 401
    assert broker.client.get("/metrics", headers=broker.auth("adam")).status_code == 200


# -- the last administrator ----------------------------------------------------------------


def test_the_last_administrator_cannot_be_revoked_through_the_api(broker: Broker) -> None:
    users = broker.deps.users
    users.add("mark", "admin", "MARKET")  # another department's admin does not count
    r = broker.client.post("/v1/users/adam/revoke", headers=broker.auth("adam"))
    assert r.status_code == 409, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    assert r.json()["code"] == "user.last_admin"
    assert "last active administrator" in r.json()["detail"]
    assert users.get("adam").active
    assert broker.client.get("/v1/me", headers=broker.auth("adam")).status_code == 200

    r = broker.client.post(
        "/v1/users", json={"name": "ada", "role": "admin"}, headers=broker.auth("adam")
    )
    assert r.status_code == 201, r.text
    ada = {"Authorization": "Bearer " + r.json()["token"]}
    r = broker.client.post("/v1/users/adam/revoke", headers=ada)
    assert r.status_code == 200 and r.json()["active"] is False, r.text
    r = broker.client.post("/v1/users/ada/revoke", headers=ada)  # now ada is the last
    assert r.status_code == 409 and r.json()["code"] == "user.last_admin"
    assert users.get("ada").active


# -- the OpenAPI document says what the routes do ---------------------------------------


def test_the_openapi_document_states_the_routes_rules(broker: Broker) -> None:
    spec = broker.app.openapi()
    [key] = spec["paths"]["/v1/records"]["post"]["parameters"]
    assert key["name"] == "Idempotency-Key" and key["required"] is True
    assert key["schema"]["pattern"] == IDEMPOTENCY_KEY_PATTERN
    name = spec["components"]["schemas"]["UserCreate"]["properties"]["name"]
    assert name["pattern"] == NAME_PATTERN and name["maxLength"] == 64
    [revoke_name] = spec["paths"]["/v1/users/{name}/revoke"]["post"]["parameters"]
    assert revoke_name["in"] == "path"
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if "requestBody" in op:  # any body may be too large, or not JSON
                assert {"400", "413"} <= set(op["responses"]), (method, path)
            for prm in op.get("parameters", []):  # absent, or a value: never "null"
                assert "null" not in json.dumps(prm["schema"]), (method, path, prm)


def test_a_user_name_the_schema_refuses_is_a_422_and_adds_no_one(broker: Broker) -> None:
    before = len(broker.deps.users.list_users())
    for bad in ("-x", "a b", "é", "x" * 65, ""):
        r = broker.client.post(
            "/v1/users", json={"name": bad, "role": "clerk"}, headers=broker.auth("adam")
        )
        assert r.status_code == 422 and r.json()["code"] == "input.validation_failed", r.text
    assert len(broker.deps.users.list_users()) == before


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("OPTIONS", "/v1/users", "GET, POST"),  # two routes, one path: both methods
        ("DELETE", "/v1/users", "GET, POST"),
        ("PUT", "/v1/webhooks/3", "DELETE"),
        # a literal path is not taken for a parameterised route's id
        ("GET", "/v1/records/batch", "POST"),
        ("GET", "/v1/records/find", "POST"),
        ("POST", "/healthz", "GET"),
    ],
)
def test_405_names_every_method_of_the_path(
    broker: Broker, method: str, path: str, allow: str
) -> None:
    r = broker.client.request(method, path, headers=broker.auth("adam"))
    assert r.status_code == 405, r.text
    assert r.headers["allow"] == allow
    assert r.json()["code"] == "http.method_not_allowed"
    assert r.headers["x-content-type-options"] == "nosniff"


def test_serve_takes_the_api_limits_from_the_settings() -> None:
    token = "t" * 32
    settings = Settings.defaults().with_overrides(max_json_body="64KiB", metrics_token=token)
    api = ApiSettings.from_settings("tax", settings)
    assert (api.department, api.max_json_body, api.metrics_token) == ("TAX", 65536, token)
    assert token not in repr(api)
    assert ApiSettings.from_settings("TAX", Settings.defaults()).max_json_body == 1024 * 1024
    with pytest.raises(ConfigError, match="at least 32 characters"):
        Settings.defaults().with_overrides(metrics_token="short")
    with pytest.raises(ConfigError):
        Settings.defaults().with_overrides(max_json_body="0")
