"""A real broker API over HTTP: uvicorn in a thread on a free port, a real
SQLite database, httpx as the client."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from govshare.api import ApiDeps, ApiSettings, create_app
from govshare.broker.db import Database, sqlite_url
from govshare.broker.outbox import Outbox
from govshare.broker.users import Users
from govshare.chain.devnode import AnvilProcess
from integration.world import Broker as WorldBroker
from integration.world import World, build_world, start_broker


class LiveServer:
    """Serve ``app`` with uvicorn on 127.0.0.1 (a pre-bound socket: no port race)."""

    def __init__(self, app: Any) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, log_config=None, access_log=False, ws="none", http="h11", lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def start(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(10)
        self._sock.close()


class Probes(dict[str, Callable[[], object]]):
    """Readiness probes a test can switch: ``probes.fail("chain", exc)``."""

    def set_ok(self, name: str) -> None:
        self[name] = lambda: None

    def fail(self, name: str, exc: BaseException) -> None:
        def probe() -> None:
            raise exc

        self[name] = probe


@dataclass
class Broker:
    db: Database
    deps: ApiDeps
    app: FastAPI
    server: LiveServer
    client: httpx.Client
    probes: Probes
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.url

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


def make_broker(
    tmp_path: Path,
    *,
    dept: str = "TAX",
    probe_timeout: float = 0.5,
    wrap: Callable[[FastAPI], Any] | None = None,
    **settings: Any,
) -> Broker:
    """A broker without ledger or store (the foundation routes); ``settings``:
    more :class:`ApiSettings`; ``wrap``: an ASGI wrapper around the app (a probe)."""
    db = Database.open(sqlite_url(tmp_path / f"{dept.lower()}.db"))
    probes = Probes()
    # the probes dict is read at each request: tests switch probes while serving
    deps = ApiDeps(db=db, users=Users(db), outbox=Outbox(db), probes=probes)
    tokens = {}
    for name, role in [("clara", "clerk"), ("adam", "admin"), ("audrey", "auditor")]:
        _, issued = deps.users.add(name, role, dept)
        tokens[name] = issued.token
    app = create_app(ApiSettings(department=dept, probe_timeout=probe_timeout, **settings), deps)
    server = LiveServer(wrap(app) if wrap else app).start()
    client = httpx.Client(base_url=server.url, timeout=10)
    return Broker(db, deps, app, server, client, probes, tokens)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = make_broker(tmp_path)
    try:
        yield b
    finally:
        b.client.close()
        b.server.stop()
        b.db.close()


# -- a consortium on anvil: TAX's, MARKET's and COURT's brokers over real HTTP --------
# (module-scoped: each module gets its own chain; a module that needs another
# shape defines its own fixture of the same name)


@pytest.fixture(scope="module")
def node() -> Iterator[AnvilProcess]:
    with AnvilProcess() as n:
        yield n


@pytest.fixture(scope="module")
def world(node: AnvilProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = build_world(node.url, tmp_path_factory.mktemp("home"))
    yield w
    w.close()


@pytest.fixture(scope="module")
def brokers(world: World) -> Iterator[dict[str, WorldBroker]]:
    started = {c: start_broker(world, c) for c in ("TAX", "MARKET", "COURT")}
    yield started
    for b in started.values():
        b.close()


@pytest.fixture
def tax(brokers: dict[str, WorldBroker]) -> WorldBroker:
    return brokers["TAX"]


@pytest.fixture
def market(brokers: dict[str, WorldBroker]) -> WorldBroker:
    return brokers["MARKET"]


@pytest.fixture
def court(brokers: dict[str, WorldBroker]) -> WorldBroker:
    return brokers["COURT"]
