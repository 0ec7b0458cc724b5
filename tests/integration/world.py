"""A small real consortium for broker tests: department profiles (fast
keystores) in a govshare home, contracts deployed on a test's own anvil,
categories declared, and brokers run either in threads of the test process
(uvicorn on pre-bound sockets) or as ``govshare serve`` processes.

Used by tests/broker, tests/api and tests/integration (import it as
``integration.world``: pytest puts ``tests/`` on ``sys.path``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from eth_account.signers.local import LocalAccount
from fastapi import FastAPI

from govshare.api import ApiDeps, ApiSettings, create_app
from govshare.audit.sources import broker_sources
from govshare.broker.db import Database
from govshare.broker.runtime import BrokerRuntime, RuntimeSettings
from govshare.broker.services import BrokerServices, Limits
from govshare.broker.subjects import ensure_subject_key, load_subject_key
from govshare.broker.users import Users
from govshare.chain.connection import Connection, connect
from govshare.chain.contracts import DepartmentInit
from govshare.chain.deploy import deploy
from govshare.chain.devfund import faucet
from govshare.chain.ledger import Ledger
from govshare.chain.tx import Sender, TxRequest
from govshare.crypto import HpkePrivateKey
from govshare.home import deployment_path, dept_dir
from govshare.profile import Profile, create_profile
from govshare.storage import open_store

PASSWORD = "test-broker-password"
SCRYPT_N = 1024
GOVSHARE = Path(sys.executable).parent / "govshare"
CATEGORY = "tax-clearance"


def bind_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@dataclass
class Dept:
    code: str
    profile: Profile
    broker: LocalAccount
    admin: LocalAccount
    hpke: HpkePrivateKey
    sock: socket.socket  # pre-bound: its port is the registered endpoint's

    def __post_init__(self) -> None:
        self._port = int(self.sock.getsockname()[1])

    @property
    def port(self) -> int:
        return self._port  # still known once the socket was handed over and closed

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class World:
    home: Path
    ledger: Ledger
    depts: dict[str, Dept]
    #: A department's broker database URL when it is not its SQLite file (PostgreSQL).
    databases: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, code: str) -> Dept:
        return self.depts[code]

    def database(self, code: str) -> Database:
        """CODE's broker database, as its broker opens it (the caller closes it)."""
        return Database.for_department(self.home, code, self.databases.get(code))

    @property
    def deployment(self) -> Path:
        return deployment_path(self.home)

    def close(self) -> None:
        for d in self.depts.values():
            d.sock.close()
        self.ledger.close()


#: The broker databases a suite runs on (a module's ``world`` fixture takes them
#: as params and calls :func:`put_databases`).
DATABASES = ("sqlite", "postgresql")


def put_databases(world: World, request: Any) -> None:
    """For the ``postgresql`` param of a module's fixture: every department's
    broker database in a fresh database of the session's PostgreSQL cluster
    (``sqlite``: their SQLite files, as always)."""
    if getattr(request, "param", "sqlite") != "postgresql":
        return
    cluster = request.getfixturevalue("postgres_cluster")
    tag = uuid.uuid4().hex[:8]
    world.databases = {c: cluster.create_database(f"{c.lower()}_{tag}") for c in world.depts}


def build_world(
    rpc_url: str,
    home: Path,
    codes: tuple[str, ...] = ("TAX", "MARKET", "COURT"),
    categories: dict[str, list[str]] | None = None,
    funder: LocalAccount | None = None,
    kems: dict[str, str] | None = None,
) -> World:
    """Profiles, a deployment with these founders, funded accounts, categories.
    ``kems``: a department's HPKE KEM other than X25519 (``mlkem768-x25519``).
    On anvil, balances are set (``anvil_setBalance``); on another node (geth
    --dev), ``funder`` pays for everything: transfers and the deployment."""
    home.mkdir(parents=True, exist_ok=True)
    with connect(rpc_url) as conn:
        return _build_world(conn, home, codes, categories, funder, kems or {})


def _build_world(
    conn: Connection,
    home: Path,
    codes: tuple[str, ...],
    categories: dict[str, list[str]] | None,
    funder: LocalAccount | None,
    kems: dict[str, str],
) -> World:
    payments: list[str] = []
    depts: dict[str, Dept] = {}
    for code in codes:
        sock = bind_socket()
        port = sock.getsockname()[1]
        prof = create_profile(
            home,
            code,
            f"Department {code}",
            endpoint=f"http://127.0.0.1:{port}",
            broker_password=PASSWORD,
            admin_password=PASSWORD,
            scrypt_n=SCRYPT_N,
            kem=kems.get(code, "x25519"),
        )
        ensure_subject_key(home, prof.dir)
        broker, admin = prof.unlock_broker(PASSWORD), prof.unlock_admin(PASSWORD)
        for acct in (broker, admin):
            if funder is None:
                conn.request("anvil_setBalance", [acct.address, hex(10**21)])
            else:
                payments.append(acct.address)
        depts[code] = Dept(code, prof, broker, admin, prof.unlock_hpke(PASSWORD), sock)
    founders = [
        DepartmentInit(
            code=d.code,
            name=d.profile.name,
            broker=d.broker.address,
            admins=(d.admin.address,),
            encryption_key=d.hpke.public_key_bytes,
            endpoint=d.url,
        )
        for d in depts.values()
    ]
    if funder is not None:
        Sender(conn).transact_many(
            funder, [TxRequest(to=a, data=b"", value=10**20, label="funding") for a in payments]
        )
    deploy(conn, funder or faucet(), founders, 2, path=deployment_path(home))
    ledger = Ledger.from_deployment(deployment_path(home))
    wanted = categories if categories is not None else {c: [CATEGORY] for c in codes}
    for code, cats in wanted.items():
        for cat in cats:
            ledger.records.declare_category(depts[code].admin, cat, f"{cat} of {code}")
    return World(home, ledger, depts)


# -- brokers in threads --------------------------------------------------------------------


class ThreadServer:
    """uvicorn serving ``app`` on a pre-bound socket, in a thread."""

    def __init__(self, app: FastAPI, sock: socket.socket) -> None:
        self.sock = sock
        config = uvicorn.Config(
            app, log_config=None, access_log=False, ws="none", http="h11", lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [sock]}, daemon=True
        )

    def start(self) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@dataclass
class Broker:
    """One department's broker, in this process, over real HTTP (its runtime
    started without threads: tests move the workers with ``runtime.run_once()``)."""

    dept: Dept
    runtime: BrokerRuntime
    app: FastAPI
    server: ThreadServer
    client: httpx.Client
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def svc(self) -> BrokerServices:
        return self.runtime.svc

    @property
    def code(self) -> str:
        return self.dept.code

    def auth(self, who: str = "clerk") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def close(self) -> None:
        self.client.close()
        self.server.stop()
        self.runtime.stop()


def make_services(
    world: World,
    code: str,
    *,
    db: Database | None = None,
    store_url: str | None = None,
    **limits: int,
) -> BrokerServices:
    """CODE's broker services (``db``: another database than its SQLite file;
    ``store_url``: another store than its local folder, e.g. a ``kubo:`` node)."""
    d = world[code]
    folder = dept_dir(world.home, code)
    db = db if db is not None else world.database(code)
    store = open_store(store_url or f"local:{folder / 'blobs'}")
    return BrokerServices(
        dept=code,
        db=db,
        ledger=Ledger.from_deployment(world.deployment),
        store=store,
        # as `govshare serve` wires them: its store, then the home's other stores
        manifest_sources=broker_sources(
            store, code, urls=None, home=world.home, store_url=store_url
        ),
        account=d.broker,
        hpke=d.hpke,
        retired_hpke=d.profile.unlock_retired_hpke(PASSWORD),
        subject_key=load_subject_key(d.profile.dir),
        spool=folder / "spool",
        limits=Limits(**limits) if limits else None,
    )


def open_runtime(
    world: World, code: str, settings: RuntimeSettings | None = None, **limits: int
) -> BrokerRuntime:
    """CODE's broker runtime (not started): its services, owned and closed by it."""
    return BrokerRuntime(make_services(world, code, **limits), settings)


def start_broker(world: World, code: str, **limits: int) -> Broker:
    runtime = open_runtime(world, code, **limits)
    runtime.start(threads=False)
    svc = runtime.svc
    users = Users(svc.db)
    tokens = {}
    for name, role in [("clerk", "clerk"), ("admin", "admin"), ("auditor", "auditor")]:
        _, issued = users.add(f"{code.lower()}-{name}", role, code)
        tokens[name] = issued.token
    app = create_app(ApiSettings(department=code), ApiDeps.from_services(svc))
    server = ThreadServer(app, world[code].sock).start()
    client = httpx.Client(base_url=world[code].url, timeout=30)
    return Broker(world[code], runtime, app, server, client, tokens)


# -- brokers as processes ------------------------------------------------------------------


@dataclass
class ServeProcess:
    code: str
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def cli_env(world: World, **extra: str) -> dict[str, str]:
    env = {**os.environ, "GOVSHARE_HOME": str(world.home), "GOVSHARE_PASSWORD": PASSWORD}
    for name in (
        "GOVSHARE_DEPT",
        "GOVSHARE_STORE",
        "GOVSHARE_STORAGE",
        "GOVSHARE_CHAIN_URL",
        "GOVSHARE_RPC",
        "GOVSHARE_DEPLOYMENT_FILE",
        "GOVSHARE_SECRETS_DIR",
        "GOVSHARE_ADMIN_PASSWORD",
        "GOVSHARE_PASSWORD_FILE",
    ):
        env.pop(name, None)
    return {**env, **extra}


def spawn_serve(
    world: World,
    code: str,
    *,
    via_env: bool = False,
    env: dict[str, str] | None = None,
    options: tuple[str, ...] = (),
) -> ServeProcess:
    """Start ``govshare serve`` for CODE on the department's registered port:
    with ``--dept``, or (``via_env``) configured as docker/compose.yml does,
    through GOVSHARE_DEPT and GOVSHARE_DEPLOYMENT_FILE. ``env``: more variables
    (e.g. the test-only crash hook); ``options``: more command-line options. Can
    be called again after the process ended."""
    d = world[code]
    port = d.port
    d.sock.close()  # hand the port over to the child (it binds it at once)
    log = world.home / f"serve-{code.lower()}.log"
    extra = dict(env or {})
    if code in world.databases:
        extra.setdefault("GOVSHARE_DATABASE_URL", world.databases[code])
    if via_env:
        env = cli_env(
            world, GOVSHARE_DEPT=code, GOVSHARE_DEPLOYMENT_FILE=str(world.deployment), **extra
        )
        args = ["serve", "--port", str(port)]
    else:
        env = cli_env(world, **extra)
        args = ["serve", "--dept", code, "--port", str(port)]
    args += options
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [str(GOVSHARE), *args], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    return ServeProcess(code, f"http://127.0.0.1:{port}", proc, log)


def wait_serving(procs: list[ServeProcess], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    pending = list(procs)
    while pending:
        for p in list(pending):
            if p.proc.poll() is not None:
                raise RuntimeError(f"govshare serve {p.code} exited:\n{p.log.read_text()}")
            try:
                if httpx.get(p.url + "/healthz", timeout=1).status_code == 200:
                    pending.remove(p)
            except httpx.HTTPError:
                pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"brokers did not start: {[p.code for p in pending]}")
        time.sleep(0.1)


@contextmanager
def serving(
    world: World, codes: tuple[str, ...], *, via_env: tuple[str, ...] = ()
) -> Iterator[dict[str, ServeProcess]]:
    procs = {c: spawn_serve(world, c, via_env=c in via_env) for c in codes}
    try:
        wait_serving(list(procs.values()))
        yield procs
    finally:
        for p in procs.values():
            p.stop()


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    """Poll ``condition`` until it is truthy (its value is returned): for what
    another thread or process does meanwhile. Fails with ``what`` after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def run_cli(
    world: World, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """The real ``govshare`` command line, as a user of this world's home."""
    return subprocess.run(
        [str(GOVSHARE), *args],
        env=cli_env(world, **(env or {})),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def add_clerks(world: World, codes: tuple[str, ...]) -> dict[str, str]:
    """A clerk per department, its token saved where the CLI finds it (``govshare
    login`` does the same); returns the tokens."""
    from govshare.cli._client import save_token

    tokens: dict[str, str] = {}
    for code in codes:
        db = world.database(code)
        try:
            _, issued = Users(db).add(f"{code.lower()}-cli-clerk", "clerk", code)
        finally:
            db.close()
        save_token(world.home, code, issued.token)
        tokens[code] = issued.token
    return tokens


def anchored_record(svc: BrokerServices, record_id: str) -> Any:
    """What the chain holds of one of ``svc``'s records: its own anchor, or (batch
    mode) its leaf in a batch — proven against the batch's root by the contract.
    Either has ``department``, ``content_hash``, ``cid``, ``category`` and
    ``subject_ref``."""
    from govshare.broker.record_batches import proof_of

    records = svc.ledger.records
    if records.record_exists(record_id):
        return records.get_record(record_id)
    proof = proof_of(svc, record_id)
    assert proof is not None, f"{record_id} is neither on chain nor in an anchored batch"
    assert records.verify_batched_record(proof), "the contract refuses the batch proof"
    return proof.record


def dept_manifests(world: World, code: str) -> dict[int, Any]:
    """CODE's record batches on chain, ``{sequence: BatchManifest}``, each read from
    CODE's store and checked against the chain's root and count."""
    from govshare.chain.batch import parse_manifest
    from govshare.storage.local import LocalBlobStore

    records = world.ledger.records
    store = LocalBlobStore(dept_dir(world.home, code) / "blobs")
    try:
        out = {}
        for seq in range(1, records.batch_count(code) + 1):
            b = records.get_batch(code, seq)
            data = b"".join(store.get(b.manifest_cid))
            out[seq] = parse_manifest(data, department=code, count=b.count, root=b.merkle_root)
        return out
    finally:
        store.close()


def batches_holding(world: World, code: str, record_id: str) -> list[int]:
    """The sequences of CODE's batches on chain that hold ``record_id`` as a leaf
    (each leaf proven against its batch's root by the contract)."""
    rid = bytes.fromhex(record_id[2:])
    out = []
    for seq, m in dept_manifests(world, code).items():
        for r in m.records:
            if r.record_id == rid:
                assert world.ledger.records.verify_batched_record(m.locate(rid, seq))
                out.append(seq)
    return out
