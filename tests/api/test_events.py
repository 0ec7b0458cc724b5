"""Notifications over real HTTP: three departments' brokers (uvicorn threads, each
its own database), this module's own anvil. ``GET /v1/events`` tells each
department its own business, resumes with Last-Event-ID losing and repeating
nothing, and refuses bad input; webhooks are delivered to a real local HTTP
server, signed, retried with backoff on the broker's clock, and resumed by a
restarted broker."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from fakeclock import ManualClock
from govshare.broker import webhooks
from govshare.broker.db import DeliveryState, Notification, WebhookDelivery
from govshare.broker.services import BrokerServices
from govshare.chain.devnode import AnvilProcess, free_port
from integration.world import (
    CATEGORY,
    Broker,
    World,
    build_world,
    open_runtime,
    start_broker,
    wait_for,
)

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with AnvilProcess() as node:
        w = build_world(node.url, tmp_path_factory.mktemp("home"))
        yield w
        w.close()


@pytest.fixture(scope="module")
def brokers(world: World) -> Iterator[dict[str, Broker]]:
    started = {c: start_broker(world, c) for c in ("TAX", "MARKET", "COURT")}
    for b in started.values():
        feed = b.svc.notifications
        feed.settings = replace(feed.settings, poll_interval=0.02)
    yield started
    for b in started.values():
        b.close()


# -- helpers --------------------------------------------------------------------------------


@dataclass
class Sse:
    """An open ``GET /v1/events``: its events as ``(id, event, data)``."""

    resp: httpx.Response
    lines: Iterator[str]
    comments: list[str] = field(default_factory=list)

    def next(self, timeout: float = 30.0) -> tuple[int, str, dict[str, Any]]:
        deadline = time.monotonic() + timeout
        event_id, kind, data = -1, "message", ""
        for line in self.lines:
            assert time.monotonic() < deadline, "no event came"
            if line.startswith(":"):
                self.comments.append(line)
            elif line.startswith("id: "):
                event_id = int(line[4:])
            elif line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
            elif line == "" and data:
                return event_id, kind, json.loads(data)
        raise AssertionError("the stream ended")

    def until(self, kind: str, request_id: int) -> list[tuple[int, str, dict[str, Any]]]:
        """Events up to the first of ``kind`` about ``request_id`` (included)."""
        seen = []
        while True:
            ev = self.next()
            seen.append(ev)
            if ev[1] == kind and ev[2]["data"].get("request_id") == request_id:
                return seen


class open_sse:
    def __init__(self, b: Broker, headers: dict[str, str] | None = None, **params: str) -> None:
        self.cm = b.client.stream(
            "GET", "/v1/events", headers={**b.auth(), **(headers or {})}, params=params
        )

    def __enter__(self) -> Sse:
        resp = self.cm.__enter__()
        assert resp.status_code == 200, resp.read()
        assert resp.headers["content-type"].startswith("text/event-stream")
        return Sse(resp, resp.iter_lines())

    def __exit__(self, *exc: object) -> None:
        self.cm.__exit__(*exc)


def record_of(world: World, owner: str) -> str:
    rid = "0x" + os.urandom(32).hex()
    world.ledger.records.anchor(
        world[owner].broker, rid, hashlib.sha256(rid.encode()).digest(), "bafkreiexample", CATEGORY
    )
    return rid


def request(b: Broker, owner: str, record_id: str, purpose: str = "licence") -> int:
    r = b.client.post(
        "/v1/requests",
        headers=b.auth(),
        json={"owner": owner, "record_id": record_id, "purpose": purpose},
    )
    assert r.status_code == 201, r.text
    return int(r.json()["request_id"])


def problem(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    assert r.json()["code"] == code, r.json()


def count(svc: BrokerServices) -> int:
    with svc.db.reading() as db:
        return int(db.execute(select(func.count()).select_from(Notification)).scalar() or 0)


# -- the stream -----------------------------------------------------------------------------


def test_a_request_reaches_its_owner_stream_only(world: World, brokers: dict[str, Broker]) -> None:
    tax, market, court = brokers["TAX"], brokers["MARKET"], brokers["COURT"]
    with open_sse(tax) as t, open_sse(market) as m, open_sse(court) as c:
        ready = t.next()
        assert ready[1] == "ready" and ready[2]["department"] == "TAX"
        for s in (m, c):
            assert s.next()[1] == "ready"
        rid = request(market, "TAX", record_of(world, "TAX"), purpose="licence \u202egnp.exe")
        tax.svc.mirror.run_once()  # one tick of TAX's mirror
        event_id, kind, body = t.next()
        assert kind == "request.incoming" and event_id == body["id"] > ready[0]
        assert body["department"] == "TAX" and body["data"]["request_id"] == rid
        assert body["data"]["requester"] == "MARKET"
        assert body["data"]["purpose"] == "licence \u202egnp.exe"  # kept; terminals escape it

        # MARKET is told the decision on its request, and nothing before it about rid
        for b in (market, court):
            b.svc.mirror.run_once()
        tax.client.get("/v1/requests", headers=tax.auth())  # (syncs, like a clerk's list)
        from govshare.broker import consent

        consent.deny(world.ledger, world["TAX"].admin, rid, reason="incomplete", dept="TAX")
        market.svc.mirror.run_once()
        seen = m.until("request.denied", rid)
        assert [k for _, k, d in seen if d["data"].get("request_id") == rid] == ["request.denied"]
        assert seen[-1][2]["data"]["reason"] == "incomplete"

        # COURT: a request of its own arrives; nothing about rid came first
        mine = request(market, "COURT", record_of(world, "COURT"))
        court.svc.mirror.run_once()
        seen = c.until("request.incoming", mine)
        assert all(d["data"].get("request_id") != rid for _, _, d in seen)


def test_resume_with_last_event_id_loses_and_repeats_nothing(
    world: World, brokers: dict[str, Broker]
) -> None:
    tax, market = brokers["TAX"], brokers["MARKET"]
    first = [request(market, "TAX", record_of(world, "TAX")) for _ in range(2)]
    tax.svc.mirror.run_once()
    r = tax.client.get("/v1/notifications", headers=tax.auth(), params={"after": 0})
    assert r.status_code == 200, r.text
    by_rid = {n["data"]["request_id"]: n["id"] for n in r.json()}
    start = by_rid[first[0]] - 1
    with open_sse(tax, {"Last-Event-ID": str(start)}) as s:
        assert s.next()[:2] == (start, "ready")
        got = [s.next() for _ in range(2)]
    assert [e[2]["data"]["request_id"] for e in got] == first
    last = got[-1][0]
    # while disconnected: two more
    later = [request(market, "TAX", record_of(world, "TAX")) for _ in range(2)]
    tax.svc.mirror.run_once()
    with open_sse(tax, {"Last-Event-ID": str(last)}) as s:
        assert s.next()[0] == last
        again = [s.next() for _ in range(2)]
    assert [e[2]["data"]["request_id"] for e in again] == later
    assert [e[0] for e in again] == sorted(e[0] for e in again) and again[0][0] > last
    # ?after= for clients that cannot set headers; the header wins over it
    with open_sse(tax, after=str(last)) as s:
        s.next()
        assert s.next()[2]["data"]["request_id"] == later[0]
    with open_sse(tax, {"Last-Event-ID": str(again[0][0])}, after="0") as s:
        s.next()
        assert s.next()[2]["data"]["request_id"] == later[1]


def test_bad_cursors_and_missing_tokens_are_refused_and_change_nothing(
    brokers: dict[str, Broker],
) -> None:
    tax = brokers["TAX"]
    before = count(tax.svc)
    newest = tax.svc.notifications.latest_id()
    for headers, params in [
        ({"Last-Event-ID": "abc"}, {}),
        ({"Last-Event-ID": "-1"}, {}),
        ({}, {"after": "1e3"}),
        ({"Last-Event-ID": str(newest + 1000)}, {}),
        ({"Last-Event-ID": "9" * 30}, {}),
    ]:
        r = tax.client.get("/v1/events", headers={**tax.auth(), **headers}, params=params)
        problem(r, 400, "events.bad_cursor")
    problem(tax.client.get("/v1/events"), 401, "auth.required")
    bad = {"Authorization": "Bearer gs_" + "x" * 43}
    problem(tax.client.get("/v1/events", headers=bad), 401, "auth.invalid_token")
    # another department's token is unknown here
    other = brokers["MARKET"].auth()
    problem(tax.client.get("/v1/events", headers=other), 401, "auth.invalid_token")
    problem(tax.client.get("/v1/notifications", headers=bad), 401, "auth.invalid_token")
    assert count(tax.svc) == before and tax.svc.notifications.open_streams == 0


def test_heartbeats_a_stream_limit_and_an_end_on_shutdown(
    brokers: dict[str, Broker], monkeypatch: pytest.MonkeyPatch
) -> None:
    court = brokers["COURT"]
    feed = court.svc.notifications
    monkeypatch.setattr(feed, "settings", replace(feed.settings, heartbeat=0.05, max_streams=1))
    with open_sse(court) as s:
        s.next()
        wait_for(lambda: feed.open_streams == 1, "the stream is open")
        # one stream is the limit: another is refused, with a code
        problem(court.client.get("/v1/events", headers=court.auth()), 503, "events.busy")
        for line in s.lines:  # quiet: a comment comes
            if line.startswith(":"):
                assert line == ": keep-alive"
                break
        feed.close()  # what `govshare serve` does when asked to stop
        try:
            for _ in s.lines:  # the stream ends (within a poll)
                pass
        finally:
            feed.closing.clear()
    wait_for(lambda: feed.open_streams == 0, "the stream is closed")


# -- webhooks -------------------------------------------------------------------------------


@dataclass
class Receiver:
    """A real HTTP server on a free port: answers each POST with the next status."""

    statuses: list[int]
    got: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def start(self, port: int = 0) -> Receiver:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.got.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = outer.statuses.pop(0) if outer.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port or free_port()), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def check_signature(secret: str, headers: dict[str, str], body: bytes) -> None:
    """What a receiving department does (docs/events.md), written out again."""
    stamp = headers["govshare-timestamp"]
    expected = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["govshare-webhook-signature"], "v1=" + expected)
    assert json.loads(body)["id"] == int(headers["govshare-event-id"])


def test_webhooks_are_signed_and_retried_with_backoff(
    world: World, brokers: dict[str, Broker], monkeypatch: pytest.MonkeyPatch
) -> None:
    tax, market = brokers["TAX"], brokers["MARKET"]
    clock = ManualClock()
    monkeypatch.setattr(tax.svc, "clock", clock)
    receiver = Receiver([500, 503, 200]).start()
    try:
        r = tax.client.post("/v1/webhooks", headers=tax.auth("admin"), json={"url": receiver.url})
        assert r.status_code == 201, r.text
        out = r.json()
        secret, hook_id = out["secret"], out["webhook"]["id"]
        assert out["generated"] and secret.startswith("whsec_")
        listed = tax.client.get("/v1/webhooks", headers=tax.auth("admin")).json()
        assert secret not in json.dumps(listed) and listed[-1]["secret_hint"] == secret[:8] + "…"
        # a clerk may not manage webhooks
        clerk = tax.client.get("/v1/webhooks", headers=tax.auth())
        problem(clerk, 403, "auth.forbidden")

        rid = request(market, "TAX", record_of(world, "TAX"))
        tax.svc.mirror.run_once()
        worker = tax.runtime.webhooks
        assert worker.run_once() == 1 and len(receiver.got) == 1  # 500
        assert worker.run_once() == 0  # not due yet
        clock.advance(9)
        assert worker.run_once() == 0
        clock.advance(1)  # webhook_backoff: 10 s
        assert worker.run_once() == 1 and len(receiver.got) == 2  # 503
        clock.advance(19)
        assert worker.run_once() == 0  # doubled: 20 s
        clock.advance(1)
        assert worker.run_once() == 1 and len(receiver.got) == 3  # 200
        clock.advance(3600)
        assert worker.run_once() == 0  # done: never again

        for headers, body in receiver.got:
            check_signature(secret, headers, body)
            assert json.loads(body)["data"]["request_id"] == rid
            assert headers["govshare-event"] == "request.incoming"
        assert len({h["govshare-delivery-id"] for h, _ in receiver.got}) == 1
        stamps = [int(h["govshare-timestamp"]) for h, _ in receiver.got]
        assert stamps == [int(clock.now()) - 3600 - 30, stamps[0] + 10, stamps[0] + 30]
        assert webhooks.verify(secret, receiver.got[-1][0], receiver.got[-1][1], stamps[-1])
        assert not webhooks.verify("whsec_wrong-secret-0123", *receiver.got[-1], stamps[-1])

        log = tax.client.get(f"/v1/webhooks/{hook_id}/deliveries", headers=tax.auth("admin"))
        (d,) = log.json()
        assert (d["state"], d["attempts"], d["last_status"]) == ("done", 3, 200)
        gone = tax.client.delete(f"/v1/webhooks/{hook_id}", headers=tax.auth("admin"))
        assert gone.status_code == 200 and gone.json()["id"] == hook_id
        again = tax.client.delete(f"/v1/webhooks/{hook_id}", headers=tax.auth("admin"))
        problem(again, 404, "webhook.unknown")
    finally:
        receiver.stop()


def test_bad_webhooks_are_refused_and_change_nothing(brokers: dict[str, Broker]) -> None:
    tax = brokers["TAX"]
    before = tax.client.get("/v1/webhooks", headers=tax.auth("admin")).json()
    for url in [
        "ftp://example.org/hook",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "http://user:pw@example.org/hook",
        "http:///no-host",
        "http://example.org:99999/",
        "http://example.org/a b",
        "https://example.org/" + "x" * 3000,
    ]:
        r = tax.client.post("/v1/webhooks", headers=tax.auth("admin"), json={"url": url})
        assert r.status_code in (400, 422), (url, r.text)
        if r.status_code == 400:
            problem(r, 400, "webhook.invalid")
    short = {"url": "https://example.org/hook", "secret": "x" * 15}
    r = tax.client.post("/v1/webhooks", headers=tax.auth("admin"), json=short)
    assert r.status_code == 422 and "x" * 15 not in r.text  # never echoed
    spaced = {"url": "https://example.org/hook", "secret": "a secret with spaces"}
    problem(
        tax.client.post("/v1/webhooks", headers=tax.auth("admin"), json=spaced),
        400,
        "webhook.invalid",
    )
    assert tax.client.get("/v1/webhooks", headers=tax.auth("admin")).json() == before


def test_pending_deliveries_survive_a_broker_restart(
    world: World, brokers: dict[str, Broker], monkeypatch: pytest.MonkeyPatch
) -> None:
    """COURT's broker stops with a delivery pending (its receiver was down); a new
    broker process-state over the same database delivers it, signed with the
    secret it unseals with the department's key."""
    court, market = brokers["COURT"], brokers["MARKET"]
    port = free_port()
    down = f"http://127.0.0.1:{port}/hook"
    first = open_runtime(world, "COURT")
    clock = ManualClock()
    monkeypatch.setattr(first.svc, "clock", clock)
    added = webhooks.add_webhook(first.svc, "court-admin", down)
    rid = request(market, "COURT", record_of(world, "COURT"))
    first.svc.mirror.run_once()
    assert first.webhooks.run_once() == 1  # connection refused: pending, retried later
    first.stop()
    first.svc.ledger.close()

    receiver = Receiver([]).start(port)
    second = open_runtime(world, "COURT")
    try:
        second.start(threads=False)
        monkeypatch.setattr(second.svc, "clock", clock)
        clock.advance(10)
        assert second.webhooks.run_once() == 1
        (headers, body) = receiver.got[-1]
        check_signature(added.secret, headers, body)
        assert json.loads(body)["data"]["request_id"] == rid
        with second.svc.db.reading() as db:
            states = db.execute(
                select(WebhookDelivery.state, WebhookDelivery.attempts).where(
                    WebhookDelivery.webhook_id == added.webhook.id
                )
            ).all()
        assert [tuple(s) for s in states] == [(DeliveryState.DONE.value, 2)]
        webhooks.remove_webhook(second.svc, added.webhook.id)
    finally:
        second.stop()
        second.svc.ledger.close()
        receiver.stop()
    assert court.svc.notifications.latest_id() >= 1
