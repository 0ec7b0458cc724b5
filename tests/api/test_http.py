"""The broker API over real HTTP: health, readiness, metrics, auth and errors."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import httpx
import pytest
from fastapi import Depends
from sqlalchemy import func, select

from govshare.api.auth import public
from govshare.api.logs import RedactingFilter
from govshare.broker.db import User
from govshare.broker.outbox import fingerprint
from govshare.errors import ChainUnavailable, StorageUnavailable

from .conftest import Broker, make_broker

PROBLEM = "application/problem+json"


def assert_problem(r: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM), r.headers
    body = r.json()
    assert body["status"] == status and body["code"] == code
    assert body["type"] == f"urn:govshare:problem:{code}"
    assert body["title"] and body["detail"]
    assert "Traceback" not in r.text
    return body


def user_count(b: Broker) -> int:
    with b.db.session(readonly=True) as s:
        return int(s.scalar(select(func.count()).select_from(User)) or 0)


# -- health, readiness, metrics ----------------------------------------------------


def test_healthz_is_public(broker: Broker) -> None:
    r = broker.client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_readyz_green_then_red_when_a_probe_fails(broker: Broker) -> None:
    broker.probes.set_ok("chain")
    broker.probes.set_ok("store")
    r = broker.client.get("/readyz")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"database", "chain", "store"}

    broker.probes.fail("chain", ChainUnavailable("The chain node is not answering."))
    r = broker.client.get("/readyz")
    assert r.status_code == 503
    body = r.json()
    assert body["status"] == "unready"
    assert body["checks"]["chain"]["ok"] is False
    assert body["checks"]["chain"]["code"] == "chain.unavailable"
    assert body["checks"]["database"]["ok"] is True and body["checks"]["store"]["ok"] is True

    broker.probes.fail("store", StorageUnavailable("IPFS is down."))
    broker.probes.set_ok("chain")
    r = broker.client.get("/readyz")
    assert r.status_code == 503 and r.json()["checks"]["store"]["code"] == "storage.unavailable"


def test_readyz_a_hung_probe_times_out(tmp_path: Path) -> None:
    """A probe that never returns while the request is served: the answer
    cannot have waited for it (it is released only after the answer)."""
    hung = threading.Event()
    b = make_broker(tmp_path, probe_timeout=0.05)
    try:
        b.probes["chain"] = hung.wait
        r = b.client.get("/readyz")
        assert r.status_code == 503
        assert r.json()["checks"]["chain"]["code"] == "probe.timeout"
    finally:
        hung.set()
        b.client.close()
        b.server.stop()
        b.db.close()


def test_readyz_does_not_leak_a_foreign_error_message(broker: Broker) -> None:
    broker.probes.fail("store", OSError("cannot read /secret/path private_key=abc"))
    r = broker.client.get("/readyz")
    assert r.status_code == 503
    assert "secret" not in r.text and "private_key" not in r.text
    assert r.json()["checks"]["store"]["detail"] == "The probe failed (OSError)."


def test_metrics_count_by_route_template_and_status(broker: Broker) -> None:
    broker.client.get("/healthz")
    broker.client.get("/v1/operations/abc123", headers=broker.auth("clara"))  # 404
    broker.client.get("/v1/operations/def456")  # 401
    broker.client.get("/no/such/path")
    r = broker.client.get("/metrics", headers=broker.auth("adam"))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert 'govshare_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in text
    assert (
        'govshare_http_requests_total{method="GET",route="/v1/operations/{op_id}",status="404"} 1.0'
        in text
    )
    assert (
        'govshare_http_requests_total{method="GET",route="/v1/operations/{op_id}",status="401"} 1.0'
        in text
    )
    assert 'route="<unmatched>",status="404"' in text
    assert "abc123" not in text  # raw paths never become labels
    assert 'govshare_http_request_duration_seconds_bucket{le="0.005",method="GET"' in text
    assert 'govshare_outbox_operations{state="done"} 0.0' in text


def test_metrics_registries_are_per_app(broker: Broker, tmp_path: Path) -> None:
    other = make_broker(tmp_path / "other", dept="MARKET")
    try:
        for _ in range(3):
            broker.client.get("/healthz")
        r = other.client.get("/metrics", headers=other.auth("adam"))
        assert 'route="/healthz"' not in r.text
    finally:
        other.client.close()
        other.server.stop()
        other.db.close()


def test_outbox_gauge(broker: Broker) -> None:
    outbox = broker.deps.outbox
    outbox.register("demo", [("s", lambda ctx: {})])
    outbox.submit("demo", "k", "system", fingerprint({}), {})
    r = broker.client.get("/metrics", headers=broker.auth("adam"))
    assert 'govshare_outbox_operations{state="done"} 1.0' in r.text


# -- authentication and roles ------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "role"), [("clara", "clerk"), ("adam", "admin"), ("audrey", "auditor")]
)
def test_me(broker: Broker, who: str, role: str) -> None:
    r = broker.client.get("/v1/me", headers=broker.auth(who))
    assert r.status_code == 200, r.text
    assert r.json() == {"name": who, "role": role, "department": "TAX"}


def test_missing_token(broker: Broker) -> None:
    r = broker.client.get("/v1/me")
    assert_problem(r, 401, "auth.required")
    assert r.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "header",
    [
        "Bearer gs_" + "x" * 43,  # well-formed, unknown
        "Bearer not-a-token",
        "Bearer gs_short",
    ],
)
def test_bad_token(broker: Broker, header: str) -> None:
    r = broker.client.get("/v1/me", headers={"Authorization": header})
    body = assert_problem(r, 401, "auth.invalid_token")
    assert r.headers["www-authenticate"].startswith("Bearer error=")
    assert header.split()[1] not in r.text
    assert "details" not in body


def test_other_schemes_are_not_bearer_tokens(broker: Broker) -> None:
    r = broker.client.get("/v1/me", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert_problem(r, 401, "auth.required")


def test_revoked_token_is_refused_from_the_next_request(broker: Broker) -> None:
    assert broker.client.get("/v1/me", headers=broker.auth("clara")).status_code == 200
    broker.deps.users.revoke("clara")
    assert_problem(
        broker.client.get("/v1/me", headers=broker.auth("clara")), 401, "auth.invalid_token"
    )


def test_a_user_of_another_department_is_refused(broker: Broker) -> None:
    _, issued = broker.deps.users.add("mark", "admin", "MARKET")  # same db, other dept
    r = broker.client.get("/v1/me", headers={"Authorization": f"Bearer {issued.token}"})
    assert_problem(r, 403, "auth.forbidden")


def test_wrong_role_is_refused_and_changes_nothing(broker: Broker) -> None:
    before = user_count(broker)
    for who in ("clara", "audrey"):
        r = broker.client.post(
            "/v1/users", json={"name": "x", "role": "admin"}, headers=broker.auth(who)
        )
        assert_problem(r, 403, "auth.forbidden")
        assert_problem(
            broker.client.get("/v1/users", headers=broker.auth(who)), 403, "auth.forbidden"
        )
    assert user_count(broker) == before


# -- request errors ------------------------------------------------------------------


def test_malformed_json_changes_nothing(broker: Broker) -> None:
    before = user_count(broker)
    r = broker.client.post(
        "/v1/users",
        content=b'{"name": "bob", "role": ',
        headers={**broker.auth("adam"), "Content-Type": "application/json"},
    )
    assert_problem(r, 400, "input.malformed_json")
    assert user_count(broker) == before


def test_validation_errors_list_fields_not_inputs(broker: Broker) -> None:
    before = user_count(broker)
    r = broker.client.post(
        "/v1/users",
        json={"name": "bob", "role": "emperor", "password": "hunter2"},
        headers=broker.auth("adam"),
    )
    body = assert_problem(r, 422, "input.validation_failed")
    errors = body["errors"]
    assert isinstance(errors, list)
    assert {tuple(e["loc"]) for e in errors} == {("body", "role"), ("body", "password")}
    assert "hunter2" not in r.text and "emperor" not in r.text
    assert user_count(broker) == before


def test_unknown_path_and_wrong_method(broker: Broker) -> None:
    assert_problem(broker.client.get("/v2/nothing"), 404, "http.not_found")
    r = broker.client.delete("/healthz")
    assert_problem(r, 405, "http.method_not_allowed")
    assert r.headers["allow"] == "GET"


def test_unexpected_error_is_a_generic_500_with_a_logged_id(
    broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    token = broker.tokens["adam"]

    @broker.app.get("/boom", dependencies=[Depends(public)])
    def boom() -> None:
        raise RuntimeError(f"database password=hunter2 with Bearer {token}")

    redacted: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            redacted.append(self.format(record))

    handler = Collect()
    handler.addFilter(RedactingFilter())
    api_log = logging.getLogger("govshare.api")
    api_log.addHandler(handler)
    try:
        with caplog.at_level(logging.ERROR, logger="govshare.api"):
            r = broker.client.get("/boom")
    finally:
        api_log.removeHandler(handler)
    body = assert_problem(r, 500, "internal")
    assert "hunter2" not in r.text and token not in r.text and "RuntimeError" not in r.text
    error_id = body["error_id"]
    assert isinstance(error_id, str) and error_id in str(body["detail"])
    [line] = redacted
    assert error_id in line and "Traceback" in line and "RuntimeError" in line
    assert "hunter2" not in line and token not in line


# -- users through the API -----------------------------------------------------------


def test_admin_manages_users(broker: Broker) -> None:
    r = broker.client.post(
        "/v1/users", json={"name": "bob", "role": "clerk"}, headers=broker.auth("adam")
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["user"]["name"] == "bob" and created["user"]["department"] == "TAX"
    bob = {"Authorization": f"Bearer {created['token']}"}
    assert broker.client.get("/v1/me", headers=bob).json()["role"] == "clerk"

    names = [u["name"] for u in broker.client.get("/v1/users", headers=broker.auth("adam")).json()]
    assert names == ["adam", "audrey", "bob", "clara"]

    dup = broker.client.post(
        "/v1/users", json={"name": "bob", "role": "admin"}, headers=broker.auth("adam")
    )
    assert_problem(dup, 409, "conflict.exists")

    r = broker.client.post("/v1/users/bob/revoke", headers=broker.auth("adam"))
    assert r.status_code == 200 and r.json()["active"] is False
    assert_problem(broker.client.get("/v1/me", headers=bob), 401, "auth.invalid_token")
    assert_problem(
        broker.client.post("/v1/users/nobody/revoke", headers=broker.auth("adam")),
        404,
        "not_found",
    )


# -- operations ------------------------------------------------------------------------


def test_operations_are_visible_to_their_owner_and_overseers(broker: Broker) -> None:
    outbox = broker.deps.outbox
    outbox.register("demo", [("s", lambda ctx: {"record_id": "0x01"})])
    clara = broker.deps.users.authenticate(broker.tokens["clara"])
    op = outbox.submit("demo", "k1", clara, fingerprint({"a": 1}), {"a": 1}).operation
    _, other = broker.deps.users.add("carl", "clerk", "TAX")

    r = broker.client.get(f"/v1/operations/{op.id}", headers=broker.auth("clara"))
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "done" and r.json()["result"] == {"record_id": "0x01"}
    assert "payload" not in r.json()
    for who in ("adam", "audrey"):
        assert (
            broker.client.get(f"/v1/operations/{op.id}", headers=broker.auth(who)).status_code
            == 200
        )
    carl = {"Authorization": f"Bearer {other.token}"}
    mine = assert_problem(
        broker.client.get(f"/v1/operations/{op.id}", headers=carl), 404, "not_found"
    )
    unknown = assert_problem(
        broker.client.get("/v1/operations/nope", headers=carl), 404, "not_found"
    )
    # someone else's operation looks exactly like an unknown one
    assert mine["detail"] == f"No operation {op.id!r}."
    assert set(mine) == set(unknown)


def test_a_database_that_went_away_is_a_503_problem_not_a_traceback(
    broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    path = Path(broker.db.engine.url.database or "")
    broker.db.engine.dispose()  # (the pool would keep the old file open)
    for p in path.parent.glob(path.name + "*"):
        p.unlink()
    path.mkdir()  # something that is not a database file takes its place
    r = broker.client.get("/v1/me", headers=broker.auth("clara"))
    assert r.status_code == 503 and r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["code"] == "db.unavailable" and "cannot be opened" in body["detail"]
    assert "Traceback" not in caplog.text
    ready = broker.client.get("/readyz").json()
    assert ready["checks"]["database"]["code"] == "db.unavailable"
