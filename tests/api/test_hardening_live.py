"""The full broker (chain, store) over real HTTP, on this module's own anvil:
integer parameters bounded on every route, an accepted publish that survives
a failure after the operation took its upload over, a client that hangs up
mid-upload, and ``nosniff`` on record content."""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from govshare.api.auth import auth_rules_of, iter_routes
from govshare.broker import faults
from govshare.chain.devnode import AnvilProcess
from govshare.errors import DatabaseUnavailable
from integration.world import CATEGORY, Broker, World, build_world, start_broker, wait_for

pytestmark = pytest.mark.integration

MAX_INT64 = 2**63 - 1


@pytest.fixture(scope="module")
def world(node: AnvilProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = build_world(node.url, tmp_path_factory.mktemp("home"), codes=("TAX", "MARKET"))
    yield w
    w.close()


@pytest.fixture(scope="module")
def tax(world: World) -> Iterator[Broker]:
    # one record per transaction: a publish runs its steps through the outbox,
    # from the staged upload (the batched path encrypts before it accepts)
    b = start_broker(world, "TAX", batch_max_records=1)
    yield b
    b.close()


def publish(b: Broker, data: bytes, key: str) -> httpx.Response:
    return b.client.post(
        "/v1/records",
        headers={**b.auth(), "Idempotency-Key": key},
        files={"file": ("certificate.pdf", data, "application/pdf")},
        data={"category": CATEGORY},
    )


def spool(b: Broker) -> set[str]:
    return {p.name for p in b.svc.spool.iterdir()}


# -- integers the database cannot hold --------------------------------------------------


def _integer_params(spec: dict[str, Any]) -> list[tuple[str, str, str, str, dict[str, Any]]]:
    out = []
    for path, item in spec["paths"].items():
        for method, op in item.items():
            for prm in op.get("parameters", []):
                schema = prm["schema"]
                for alt in schema.get("anyOf", [schema]):
                    if alt.get("type") == "integer":
                        out.append((method.upper(), path, prm["name"], prm["in"], alt))
    return out


def test_every_integer_parameter_is_bounded_to_what_the_database_holds(tax: Broker) -> None:
    params = _integer_params(tax.app.openapi())
    assert ("GET", "/v1/records", "offset", "query") in [p[:4] for p in params]
    for method, path, name, _, schema in params:
        where = f"{method} {path} {name}"
        assert "minimum" in schema and "maximum" in schema, where
        assert -(2**63) <= schema["minimum"] <= schema["maximum"] <= MAX_INT64, where


def _token_for(b: Broker, method: str, path: str) -> dict[str, str]:
    """A token of a role the route admits (its auth rule)."""
    for route in iter_routes(b.app):
        if getattr(route, "path", None) == path and method in (route.methods or ()):
            [rule] = auth_rules_of(route)
            roles = {r.value for r in rule.roles or ()}
            who = next(w for w in ("clerk", "admin", "auditor") if not roles or w in roles)
            return b.auth(who)
    raise AssertionError(f"no route {method} {path}")


def test_an_out_of_range_integer_is_a_422_on_every_route(tax: Broker) -> None:
    """The sweep of the issue's ``offset=9223372036854775808`` (a 500 once)."""
    rid = "0x" + "ab" * 32
    swept = 0
    for method, path, name, where, schema in _integer_params(tax.app.openapi()):
        for bad in (schema["maximum"] + 1, 2**63, 2**64, -(2**63) - 1, schema["minimum"] - 1):
            url = path.replace("{record_id}", rid)
            values = {"webhook_id": 1, name: bad} if where == "path" else {"webhook_id": 1}
            for key, value in values.items():
                url = url.replace("{" + key + "}", str(value))
            query = {name: str(bad)} if where == "query" else {}
            r = tax.client.request(method, url, params=query, headers=_token_for(tax, method, path))
            assert r.status_code == 422, (method, url, query, r.text)
            assert r.json()["code"] == "input.validation_failed", r.text
            if where == "query" and abs(bad) > 2**31:  # (a path is the instance)
                assert str(bad) not in r.text  # the offending value is not echoed
            swept += 1
    assert swept >= 5 * 11


# -- a publish the operation took over --------------------------------------------------


def test_a_failure_after_the_publish_was_accepted_keeps_its_upload(tax: Broker) -> None:
    data = os.urandom(30_000)
    faults.fail_once("publish.accepted", DatabaseUnavailable("Injected: the database went away."))
    try:
        r = publish(tax, data, "owned-1")
    finally:
        faults.fail_once("publish.accepted", None)
    assert r.status_code == 503, r.text
    assert r.json()["code"] == "db.unavailable"
    [op] = [o for o in tax.svc.outbox.pending() if o.payload.get("idempotency_key") == "owned-1"]
    assert op.payload["upload"] in spool(tax)  # the operation's, not the API's to delete

    tax.runtime.run_once()  # the outbox worker resumes it
    again = publish(tax, data, "owned-1")
    assert again.status_code == 200, again.text
    body = again.json()
    assert body["state"] == "done" and body["replayed"] and body["tx_hash"]
    assert op.payload["upload"] not in spool(tax)
    content = tax.client.get(f"/v1/records/{body['record_id']}/content", headers=tax.auth())
    assert content.status_code == 200 and content.content == data


# -- a client that hangs up mid-upload ---------------------------------------------------


def test_a_client_that_disconnects_mid_upload_is_one_calm_line(
    tax: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    before = spool(tax)
    boundary = "gsboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="category"\r\n\r\n{CATEGORY}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    caplog.set_level(logging.DEBUG)
    with socket.create_connection(("127.0.0.1", tax.dept.port), timeout=20) as sock:
        sock.sendall(
            (
                "POST /v1/records HTTP/1.1\r\nHost: broker\r\n"
                f"Authorization: Bearer {tax.tokens['clerk']}\r\nIdempotency-Key: gone-1\r\n"
                f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                f"Content-Length: {10 * 1024 * 1024}\r\n\r\n"
            ).encode()
            + head
            + os.urandom(1024 * 1024)
        )
        # the broker has begun to spool the file: then hang up
        wait_for(lambda: len(spool(tax) - before) > 0, "the upload reached the spool")
    line = wait_for(
        lambda: [r for r in caplog.records if "disconnected" in r.getMessage()],
        "the broker logged the disconnect",
    )
    assert len(line) == 1 and line[0].levelno == logging.INFO and line[0].exc_info is None
    assert line[0].getMessage() == (
        "POST /v1/records: the client disconnected before its request was read in full"
    )
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    assert "Traceback" not in caplog.text
    wait_for(lambda: spool(tax) == before, "the partial upload was deleted")
    assert tax.svc.outbox.find(tax.svc.dept, "gone-1") is None  # nothing was published
    metrics = tax.client.get("/metrics", headers=tax.auth("admin")).text
    assert 'route="/v1/records",status="499"} 1.0' in metrics


# -- nosniff on content --------------------------------------------------------------------


def test_record_content_says_nosniff(tax: Broker) -> None:
    html = b"<html><script>alert(1)</script></html>"
    r = tax.client.post(
        "/v1/records",
        headers={**tax.auth(), "Idempotency-Key": "sniff-1"},
        files={"file": ("page.txt", html, "text/plain")},
        data={"category": CATEGORY},
    )
    assert r.status_code == 201, r.text
    got = tax.client.get(f"/v1/records/{r.json()['record_id']}/content", headers=tax.auth())
    assert got.status_code == 200 and got.content == html
    assert got.headers["x-content-type-options"] == "nosniff"
    assert json.loads(r.text)["record_id"] and r.headers["x-content-type-options"] == "nosniff"
