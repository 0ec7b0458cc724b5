"""Prometheus metrics of one broker app, in a registry of its own.

``govshare_http_requests_total{method,route,status}`` and
``govshare_http_request_duration_seconds{method,route}`` label requests by the
route *template* (``/v1/operations/{op_id}``), never the raw path, so ids do not
explode the label set; unmatched paths are ``<unmatched>``. The outbox gauge
reads operation counts by state from the database at scrape time.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from govshare.api.errors import CLIENT_GONE
from govshare.broker.db import Database, Operation, OpState

UNMATCHED = "<unmatched>"


class _OutboxCollector(Collector):
    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily(
            "govshare_outbox_operations",
            "Durable operations in the broker's outbox, by state.",
            labels=["state"],
        )
        with self.db.session(readonly=True) as s:
            rows = s.execute(select(Operation.state, func.count()).group_by(Operation.state))
            counts = {str(state): int(n) for state, n in rows}
        for state in OpState:
            gauge.add_metric([state.value], float(counts.get(state.value, 0)))
        yield gauge


class HttpMetrics:
    def __init__(self, db: Database | None = None) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "govshare_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "govshare_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template.",
            ["method", "route"],
            registry=self.registry,
        )
        if db is not None:
            self.registry.register(_OutboxCollector(db))


class MetricsMiddleware:
    """Counts and times every HTTP request into ``metrics`` (pure ASGI)."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        start = time.perf_counter()

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            if scope.get(CLIENT_GONE):
                status = 499  # nginx's "client closed request": no answer was sent
            route = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED
            method = str(scope.get("method", ""))
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - start)
