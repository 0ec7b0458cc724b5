"""Benchmark the broker through its API, beside raw chain baselines on the same anvil.

Two ``govshare serve`` processes (TAX, MARKET) run against this script's own
anvil, as in production: each its own process, database and store.

(a) Publish throughput: N records of 4 KiB through ``POST /v1/records`` from C
    concurrent clients (each answer comes after the record is encrypted, stored
    and anchored), vs the baseline: one raw pre-signed ``RecordRegistry.anchor``
    transaction per record (signing not timed), from C concurrent senders each
    sending one and waiting for its receipt before the next. anvil 1.7.1 mines
    more slowly the longer its chain (and far more slowly after evm_revert), so
    every run gets a fresh anvil and deployment; the order alternates per round;
    the ratio is the median of the per-round ratios. Beside them, each round, the
    HTTP floor: 4N (at least 2,000) of the same POSTs to ``floor_app.py``, the publish route's
    shape with no work behind it. Its ratio is the ceiling of the API's on this
    machine (the clients, the server and anvil share its cores).
(b) Cross-department fetch latency p50/p99: MARKET's clerk reads TAX's 1 KiB
    record (``GET /v1/records/{id}/content``: MARKET's broker signs an exchange
    request, TAX's broker checks the grant on chain, counts the use, answers with
    ciphertext and capsule; MARKET verifies CID and SHA-256) vs one raw HTTP
    ``eth_call`` (``grantStatus``) on a keep-alive connection, interleaved.

(c) Gas per record: one ``RecordRegistry.anchor`` through the contract wrapper,
    vs ``anchorBatch`` of a real 256-record batch (RFC 6962 tree and manifest of
    ``chain/batch.py``) through the wrapper, its gas divided by 256.
(d) Bulk import: ``govshare record import``'s use case (``clerk/importer.py``)
    over HTTP, N files of 4 KiB sent as the CLI sends them (256 per ``POST
    /v1/records/batch``, two requests in flight), timed from the first file
    hashed to the last record anchored; compared with (a)'s raw single-anchor
    rate.

(e) With ``--engines``: (a)'s publish rate and (b)'s fetch latency again with the
    brokers on a Kubo daemon each (one private swarm) and on PostgreSQL (a
    database each in one private cluster), beside the embedded store and SQLite
    in the same run; the JSON line gets an ``engines`` object.

Publishes answered "accepted, anchoring" (a batching broker) are timed until
their records read ``anchored``: every rate here is records anchored per second.

Usage: .venv/bin/python scripts/bench/bench_broker.py [--records 200] [--clients 16]
       [--rounds 3] [--fetches 300] [--import-files 10000] [--engines] [--json]
       .venv/bin/python scripts/bench/bench_broker.py --quick --json   # ~2 min:
           1 round of 100 records, 100 fetches, 1,000 files imported
With ``--json`` the last line is one JSON object of the figures (see ``FIGURES``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path

import httpx
from eth_account import Account
from eth_account.signers.local import LocalAccount

from govshare.broker.db import Database
from govshare.broker.subjects import ensure_subject_key
from govshare.broker.users import Users
from govshare.chain.batch import BatchRecord, build_batch
from govshare.chain.connection import Connection
from govshare.chain.contracts import AnchorInput, DepartmentInit
from govshare.chain.deploy import deploy
from govshare.chain.devfund import faucet
from govshare.chain.devnode import AnvilProcess, free_port
from govshare.chain.ledger import Ledger
from govshare.clerk.importer import ImportPlan, Outgoing, PublishAnswer, import_folder
from govshare.cli._import import bulk_answers, bulk_form
from govshare.home import deployment_path
from govshare.profile import Profile, create_profile
from govshare.storage.unixfs import compute_cid

PASSWORD = "bench-password"
CATEGORY = "bench"
BOOT = "import sys; from govshare.cli.main import main; sys.exit(main())"
RPC_HEADERS = {"Content-Type": "application/json"}
BATCH = 256
#: The keys of the ``--json`` line.
FIGURES = (
    "publish_records_per_s", "raw_anchor_records_per_s", "publish_ratio", "publish_anchored_p99_s",
    "http_floor_records_per_s", "http_floor_ratio",
    "fetch_p50_ms", "fetch_p99_ms", "raw_call_p50_ms", "fetch_p50_ratio",
    "gas_per_record_batched", "gas_per_record_single", "gas_ratio",
    "import_records_per_s", "import_ratio", "import_files",
)  # fmt: skip


def funded(conn: Connection) -> LocalAccount:
    acct: LocalAccount = Account.create()
    conn.request("anvil_setBalance", [acct.address, hex(10**24)])
    return acct


class Consortium:
    """TAX and MARKET: profiles, deployment, a category each, a clerk each, and
    their brokers as ``govshare serve`` processes."""

    def __init__(
        self,
        node: AnvilProcess,
        home: Path,
        raw_senders: int,
        databases: dict[str, str] | None = None,
    ) -> None:
        self.node = node
        self.home = home
        self.conn = Connection(node.url)
        self.profiles: dict[str, Profile] = {}
        self.urls: dict[str, str] = {}
        for code in ("TAX", "MARKET"):
            port = free_port()
            prof = create_profile(
                home, code, f"Department {code}", endpoint=f"http://127.0.0.1:{port}",
                broker_password=PASSWORD, admin_password=PASSWORD, scrypt_n=1024,
            )  # fmt: skip
            ensure_subject_key(home, prof.dir)
            for addr in (prof.broker_address, prof.admin_address):
                self.conn.request("anvil_setBalance", [addr, hex(10**24)])
            self.profiles[code] = prof
            self.urls[code] = prof.endpoint
        founders = [
            DepartmentInit(
                p.code, p.name, p.broker_address, (p.admin_address,), p.hpke_public_key, p.endpoint
            )
            for p in self.profiles.values()
        ]
        # The raw baseline's senders: each a member department's broker key (only
        # member brokers may anchor, and a department has one broker key).
        self.raw = [(funded(self.conn), funded(self.conn)) for _ in range(raw_senders)]
        founders += [
            DepartmentInit(f"RAW{i}", f"raw {i}", b.address, (a.address,), b"k" * 32, "http://x")
            for i, (b, a) in enumerate(self.raw)
        ]
        deploy(self.conn, faucet(), founders, 1, path=deployment_path(home))
        self.ledger = Ledger.from_deployment(deployment_path(home))
        self.admins = {c: p.unlock_admin(PASSWORD) for c, p in self.profiles.items()}
        for admin in [*self.admins.values(), *(a for _, a in self.raw)]:
            self.ledger.records.declare_category(admin, CATEGORY, "benchmark records")
        self.tokens: dict[str, str] = {}
        self.databases = databases or {}
        for code in self.profiles:
            db = Database.for_department(home, code, self.databases.get(code))
            try:
                self.tokens[code] = Users(db).add(f"{code.lower()}-clerk", "clerk", code)[1].token
            finally:
                db.close()
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start_brokers(
        self,
        codes: tuple[str, ...] = ("TAX", "MARKET"),
        engines: dict[str, dict[str, str]] | None = None,
    ) -> None:
        """``engines``: per department, the settings that put its store or its
        database elsewhere (``GOVSHARE_STORE``, ``GOVSHARE_DATABASE_URL``)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("GOVSHARE_")}
        env.update(GOVSHARE_PASSWORD=PASSWORD, GOVSHARE_HOME=str(self.home))
        for code in codes:
            log = open(self.home / f"{code}.log", "ab")  # noqa: SIM115 - the child keeps it
            self.procs[code] = subprocess.Popen(
                [sys.executable, "-c", BOOT, "serve", "--dept", code, "--log-level", "warning"],
                env={**env, **(engines or {}).get(code, {})},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        for code in codes:
            while True:
                try:
                    if httpx.get(self.urls[code] + "/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit(f"{code}'s broker did not start; see logs in {self.home}")
                time.sleep(0.2)

    def stop(self, codes: tuple[str, ...] | None = None) -> None:
        procs = [self.procs.pop(c) for c in (codes or tuple(self.procs))]
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()

    def client(self, code: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.urls[code],
            headers={"Authorization": f"Bearer {self.tokens[code]}"},
            timeout=120,
        )


# -- (a) publish throughput ------------------------------------------------------------------


def wait_anchored(c: Consortium, code: str, timeout: float = 600) -> None:
    """Until none of the department's records waits for its anchor (a batching
    broker answers "accepted, anchoring" first): two list calls per poll, so
    that polling does not load the broker it measures. Each run has a fresh
    consortium, so "none waiting" is "all of this run's anchored"."""
    deadline = time.monotonic() + timeout
    with c.client(code) as http:
        while True:
            waiting = [
                http.get("/v1/records", params={"status": st, "limit": 1}).json()
                for st in ("pending", "stored")
            ]
            if not any(waiting):
                return
            if time.monotonic() > deadline:
                raise SystemExit(f"records were not anchored in {timeout} s")
            time.sleep(0.05)


def check_anchored(c: Consortium, code: str, ids: list[str]) -> None:
    """Each of ``ids`` reads ``anchored`` (after the clock stopped)."""
    with c.client(code) as http:
        for rid in ids:
            r = http.get(f"/v1/records/{rid}")
            if r.status_code != 200 or r.json().get("status") != "anchored":
                raise SystemExit(f"record {rid} is not anchored: {r.status_code} {r.text}")


def api_publish_rate(c: Consortium, n: int, clients: int) -> tuple[float, float]:
    """Records anchored per second through the API (the clerk is told "accepted,
    anchoring" at once: ``Prefer: respond-async``), and the p99 of each record's
    time from accepted to anchored, in seconds (its operation's timestamps)."""
    payloads = [os.urandom(4096) for _ in range(n)]
    local = threading.local()
    pending: list[str] = []
    ops: list[str] = []

    def one(data: bytes) -> None:
        if not hasattr(local, "http"):
            local.http = c.client("TAX")
        r = post_record(local.http, data)
        ops.append(str(r.json()["operation_id"]))
        if r.json().get("state") != "done":
            pending.append(str(r.json()["record_id"]))

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, payloads))
    wait_anchored(c, "TAX")
    rate = n / (time.perf_counter() - t0)
    check_anchored(c, "TAX", pending)
    lags = []
    with c.client("TAX") as http:
        for op_id in ops:
            op = http.get(f"/v1/operations/{op_id}").json()
            done, made = op["finished_at"], op["created_at"]
            lags.append(
                datetime.fromisoformat(done).timestamp() - datetime.fromisoformat(made).timestamp()
            )
    return rate, pct(lags)[1] / 1e3  # pct gives ms


def post_record(http: httpx.Client, data: bytes) -> httpx.Response:
    """One publish as a clerk's client sends it (the floor gets the same)."""
    r = http.post(
        "/v1/records",
        headers={"Idempotency-Key": uuid.uuid4().hex, "Prefer": "respond-async"},
        files={"file": ("r.bin", data, "application/octet-stream")},
        data={"category": CATEGORY},
    )
    if r.status_code not in (201, 202):
        raise SystemExit(f"publish failed: {r.status_code} {r.text}")
    return r


def http_floor_rate(n: int, clients: int) -> float:
    """Requests per second of ``floor_app.py`` (the publish route's shape with no
    work behind it) under (a)'s clients and payloads: the most an API of this
    framework publishes on this machine, whatever the broker behind it does."""
    port = free_port()
    app = Path(__file__).with_name("floor_app.py")
    proc = subprocess.Popen([sys.executable, str(app), str(port)])
    payloads = [os.urandom(4096) for _ in range(n)]
    local = threading.local()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as probe:
            deadline = time.monotonic() + 60
            while True:
                try:
                    probe.get("/docs")
                    break
                except httpx.HTTPError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise SystemExit("the HTTP floor app did not start") from None
                    time.sleep(0.1)

        def one(data: bytes) -> None:
            if not hasattr(local, "http"):
                local.http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120)
            post_record(local.http, data)

        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(one, payloads[: 4 * clients]))  # connections opened, code warm
            t0 = time.perf_counter()
            list(pool.map(one, payloads))
            return n / (time.perf_counter() - t0)
    finally:
        proc.terminate()
        proc.wait(15)


def raw_anchor_rate(c: Consortium, n: int, clients: int) -> float:
    """One pre-signed anchor transaction per record, C senders in parallel, each
    waiting for its receipt before sending the next (as a client would)."""
    fees = c.ledger.sender.gas.fees()
    per = [n // clients + (1 if i < n % clients else 0) for i in range(clients)]
    signed: list[list[str]] = []
    for (acct, _admin), count in zip(c.raw, per, strict=True):
        nonce = c.conn.get_transaction_count(acct.address, "pending")
        txs = []
        for j in range(count):
            req = c.ledger.records.anchor_request(
                AnchorInput(os.urandom(32), os.urandom(32), "bafy-bench", CATEGORY)
            )
            tx = {
                "to": req.to, "data": req.data, "value": 0, "gas": 300_000,
                "nonce": nonce + j, "chainId": c.conn.chain_id,
                "maxFeePerGas": fees["maxFeePerGas"] * 4,
                "maxPriorityFeePerGas": fees["maxPriorityFeePerGas"], "type": 2,
            }  # fmt: skip
            txs.append("0x" + bytes(acct.sign_transaction(tx).raw_transaction).hex())
        signed.append(txs)

    def sender(txs: list[str]) -> None:
        with httpx.Client(timeout=30) as http:
            for raw in txs:
                body = {"jsonrpc": "2.0", "id": 1, "method": "eth_sendRawTransaction"}
                ans = http.post(c.node.url, json={**body, "params": [raw]}).json()
                if "error" in ans:
                    raise SystemExit(f"raw send failed: {ans['error']}")
                h = ans["result"]
                while True:
                    rcpt = http.post(
                        c.node.url,
                        json={"jsonrpc": "2.0", "id": 1, "method": "eth_getTransactionReceipt",
                              "params": [h]},
                    ).json()  # fmt: skip
                    if rcpt.get("result"):
                        if rcpt["result"]["status"] != "0x1":
                            raise SystemExit("a raw anchor reverted")
                        break
                    time.sleep(0.002)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(sender, signed))
    return n / (time.perf_counter() - t0)


# -- (b) fetch latency -----------------------------------------------------------------------


def pct(samples: list[float]) -> tuple[float, float]:
    s = sorted(samples)
    return statistics.median(s) * 1e3, s[min(len(s) - 1, int(len(s) * 0.99))] * 1e3


def fetch_latency(c: Consortium, n: int) -> dict[str, tuple[float, float]]:
    tax, market = c.client("TAX"), c.client("MARKET")
    data = os.urandom(1024)
    r = tax.post(
        "/v1/records",
        headers={"Idempotency-Key": "latency-record"},
        files={"file": ("one-kib.bin", data, "application/octet-stream")},
        data={"category": CATEGORY},
    )
    rid = r.json()["record_id"]
    req = market.post("/v1/requests", json={"owner": "TAX", "record_id": rid, "purpose": "bench"})
    gid = int(req.json()["request_id"])
    c.ledger.access.approve(
        c.admins["TAX"], gid, expires_at=c.ledger.now() + 86400, max_uses=2**32 - 1
    )
    call = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "eth_call",
            "params": [
                {
                    "to": c.ledger.access.address,
                    "data": "0x" + c.ledger.access._fn("grantStatus").encode([gid]).hex(),
                },
                "latest",
            ],
        }
    )
    rpc = httpx.Client(timeout=30)
    api_t: list[float] = []
    raw_t: list[float] = []
    for i in range(20 + n):  # the first 20 warm both paths
        t = time.perf_counter()
        got = market.get(f"/v1/records/{rid}/content", params={"grant": gid})
        dt_api = time.perf_counter() - t
        if got.status_code != 200 or got.content != data:
            raise SystemExit(f"fetch failed: {got.status_code} {got.text[:200]}")
        t = time.perf_counter()
        ans = rpc.post(c.node.url, content=call, headers=RPC_HEADERS).json()
        dt_raw = time.perf_counter() - t
        assert "result" in ans
        if i >= 20:
            api_t.append(dt_api)
            raw_t.append(dt_raw)
    for h in (tax, market, rpc):
        h.close()
    return {"api": pct(api_t), "raw": pct(raw_t)}


# -- (c) gas per record ----------------------------------------------------------------------


def gas_per_record(c: Consortium) -> tuple[float, float]:
    """(anchorBatch of 256 records / 256, one anchor), through the contract wrapper."""
    broker, _admin = c.raw[0]
    rr = c.ledger.records
    single = rr.anchor(broker, os.urandom(32), os.urandom(32), "bafy-bench-single", CATEGORY)
    records = [
        BatchRecord(os.urandom(32), "RAW0", os.urandom(32), f"bafy-bench-{i}", CATEGORY)
        for i in range(BATCH)
    ]
    manifest = build_batch("RAW0", records)
    cid = str(compute_cid(manifest.data, cid_version=1))
    sent = rr.anchor_batch(broker, manifest.root, manifest.count, cid)
    return sent.tx.gas_used / BATCH, float(single.gas_used)


# -- (d) bulk import -----------------------------------------------------------------------


class HttpPublisher:
    """The publish route, as the importer's Publisher (what the CLI's adapter does)."""

    def __init__(self, c: Consortium, code: str) -> None:
        self.c, self.code = c, code
        self.local = threading.local()
        self.pending: list[str] = []

    def publish(
        self, path: Path, *, key: str, filename: str, fields: dict[str, str]
    ) -> PublishAnswer:
        if not hasattr(self.local, "http"):
            self.local.http = self.c.client(self.code)
        with path.open("rb") as fh:
            r = self.local.http.post(
                "/v1/records",
                headers={"Idempotency-Key": key, "Prefer": "respond-async"},
                files={"file": (filename, fh, "application/octet-stream")},
                data=fields,
            )
        if r.status_code not in (200, 201, 202):
            raise SystemExit(f"import publish failed: {r.status_code} {r.text}")
        body = r.json()
        if body.get("state") != "done":
            self.pending.append(str(body["record_id"]))
        return PublishAnswer(body.get("record_id"), bool(body.get("replayed")), body["state"])

    def publish_many(self, files: list[Outgoing]) -> list[PublishAnswer | str]:
        """``POST /v1/records/batch`` (what the CLI's adapter sends per chunk)."""
        if not hasattr(self.local, "http"):
            self.local.http = self.c.client(self.code)
        with ExitStack() as stack:
            data, parts = bulk_form(files, stack)
            r = self.local.http.post("/v1/records/batch", data=data, files=parts)
        if r.status_code != 200:
            raise SystemExit(f"bulk import failed: {r.status_code} {r.text}")
        answers = bulk_answers(r.json(), len(files))
        self.pending += [a.record_id for a in answers if isinstance(a, PublishAnswer)
                         and a.state != "done" and a.record_id]  # fmt: skip
        return answers


def import_rate(c: Consortium, n: int, clients: int) -> float:
    folder = c.home / "archive"
    for i in range(n):
        sub = folder / f"{i // 1000:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"cert-{i:07d}.pdf").write_bytes(os.urandom(4096))
    pub = HttpPublisher(c, "TAX")
    plan = ImportPlan(root=folder, dept="TAX", category=CATEGORY, jobs=clients)
    t0 = time.perf_counter()
    summary = import_folder(plan, pub)
    wait_anchored(c, "TAX")
    rate = n / (time.perf_counter() - t0)
    check_anchored(c, "TAX", pub.pending)
    if summary.failed or summary.published != n:
        raise SystemExit(f"import incomplete: {summary.to_dict()}")
    return rate


@contextmanager
def consortium(
    clients: int, brokers: tuple[str, ...], engine: str = "embedded"
) -> Iterator[Consortium]:
    """A fresh anvil, deployment and brokers (anvil 1.7.1 mines more slowly the
    longer its chain, and far more slowly after an evm_revert: each run gets a
    chain of its own instead). ``engine``: ``embedded`` (each broker's local
    store and SQLite file), ``kubo`` (a Kubo daemon each, one private swarm) or
    ``postgresql`` (a database each in one private cluster)."""
    with (
        tempfile.TemporaryDirectory(prefix="govshare-bench-") as tmp,
        AnvilProcess() as node,
        engines_for(engine, brokers, Path(tmp)) as (env, dbs),
    ):
        c = Consortium(node, Path(tmp), clients, databases=dbs)
        try:
            if brokers:
                c.start_brokers(brokers, env)
            yield c
        finally:
            c.stop()


@contextmanager
def engines_for(
    engine: str, codes: tuple[str, ...], root: Path
) -> Iterator[tuple[dict[str, dict[str, str]], dict[str, str]]]:
    """(per department, its broker's settings; its database URL) for ``engine``."""
    if engine == "embedded" or not codes:
        yield {}, {}
        return
    if engine == "kubo":
        from govshare.chain.devnode import free_port
        from govshare.consortium.kubo import format_swarm_key, generate_swarm_key
        from govshare.storage.devkubo import DevKubo, find_kubo

        exe, key = find_kubo(), format_swarm_key(generate_swarm_key())
        nodes = {
            c: DevKubo(root / f"kubo-{c}", exe, api_port=free_port(), swarm_port=free_port())
            for c in codes
        }
        try:
            for n in nodes.values():
                n.init(key)
            ids = {c: n.peer_id for c, n in nodes.items()}
            for c, n in nodes.items():
                n.configure([(ids[o], nodes[o].swarm_port) for o in nodes if o != c])
                n.start()
            yield {c: {"GOVSHARE_STORE": n.store_url} for c, n in nodes.items()}, {}
        finally:
            for n in nodes.values():
                n.stop()
        return
    # postgresql: the tests' private cluster (initdb + pg_ctl on a loopback port)
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
    import engines  # type: ignore[import-not-found]

    cluster = engines.PostgresCluster().start()
    try:
        tag = uuid.uuid4().hex[:8]
        urls = {c: cluster.create_database(f"{c.lower()}_{tag}") for c in codes}
        yield {c: {"GOVSHARE_DATABASE_URL": u} for c, u in urls.items()}, urls
    finally:
        cluster.close()


def publish_section(n: int, k: int, rounds: int) -> dict[str, float]:
    """(a): the raw baseline, the API and the HTTP floor, ``rounds`` times each in
    alternating order; prints the table and returns the JSON line's figures."""
    api_runs: list[float] = []
    raw_runs: list[float] = []
    lag_runs: list[float] = []

    def raw() -> None:
        with consortium(k, ()) as c:
            raw_runs.append(raw_anchor_rate(c, n, k))

    def api() -> None:
        with consortium(k, ("TAX",)) as c:
            rate, lag = api_publish_rate(c, n, k)
            api_runs.append(rate)
            lag_runs.append(lag)

    floor_runs: list[float] = []

    def floor() -> None:
        floor_runs.append(http_floor_rate(max(4 * n, 2000), k))

    for r in range(rounds):
        for run in (raw, api, floor) if r % 2 == 0 else (floor, api, raw):
            run()
    ratio = statistics.median(a / r for a, r in zip(api_runs, raw_runs, strict=True))
    floor_ratio = statistics.median(f / r for f, r in zip(floor_runs, raw_runs, strict=True))
    print(
        f"\n(a) publish throughput: {n} records of 4 KiB per run, {k} concurrent clients, "
        f"{rounds} rounds, each run on a fresh chain, order alternating"
    )
    print(f"{'path':62} {'records/s':>10} {'ratio':>7}")
    print(
        f"{'raw: one pre-signed anchor tx per record, wait for its receipt':62} "
        f"{statistics.median(raw_runs):10.1f} {1.0:7.2f}"
    )
    print(
        f"{'API: POST /v1/records (accepted at once), until anchored':62} "
        f"{statistics.median(api_runs):10.1f} {ratio:7.2f}"
    )
    print(
        f"{'floor: the same POSTs to a route that reads them, nothing else':62} "
        f"{statistics.median(floor_runs):10.1f} {floor_ratio:7.2f}"
    )
    print(
        f"  per round: raw {[round(x) for x in raw_runs]}, API {[round(x) for x in api_runs]}, "
        f"floor {[round(x) for x in floor_runs]}"
    )
    print(f"  accepted-to-anchored p99 per round (s): {[round(x, 3) for x in lag_runs]}")

    return {
        "publish_records_per_s": round(statistics.median(api_runs), 1),
        "raw_anchor_records_per_s": round(statistics.median(raw_runs), 1),
        "publish_ratio": round(ratio, 3),
        "publish_anchored_p99_s": round(max(lag_runs), 3),
        "http_floor_records_per_s": round(statistics.median(floor_runs), 1),
        "http_floor_ratio": round(floor_ratio, 3),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=200, help="records per publish run")
    ap.add_argument("--clients", type=int, default=16, help="concurrent clients")
    ap.add_argument("--rounds", type=int, default=3, help="raw/API run pairs")
    ap.add_argument("--fetches", type=int, default=300, help="timed fetches")
    ap.add_argument("--import-files", type=int, default=10_000, help="files of 4 KiB imported")
    ap.add_argument("--quick", action="store_true", help="1 round, 100 records and fetches, "
                    "1,000 files imported (about two minutes)")  # fmt: skip
    ap.add_argument("--json", action="store_true", help="end with one JSON line of the figures")
    ap.add_argument("--engines", action="store_true", help="also publish and fetch with a Kubo "
                    "store, and on PostgreSQL, beside the embedded store and SQLite")  # fmt: skip
    args = ap.parse_args()
    if args.quick:
        args.records, args.rounds, args.fetches, args.import_files = 100, 1, 100, 1000
    n, k = args.records, args.clients

    pub = publish_section(n, k, args.rounds)
    raw_rate = pub["raw_anchor_records_per_s"]

    with consortium(k, ("TAX", "MARKET")) as c:
        lat = fetch_latency(c, args.fetches)
        batched, single = gas_per_record(c)
    (ap50, ap99), (rp50, rp99) = lat["api"], lat["raw"]
    print(f"\n(b) cross-department fetch of a 1 KiB record, {args.fetches} fetches (ms)")
    print(f"{'path':62} {'p50':>8} {'p99':>8}")
    print(f"{'raw: one HTTP eth_call (grantStatus), keep-alive':62} {rp50:8.2f} {rp99:8.2f}")
    print(f"{'API: MARKET GET /v1/records/{id}/content via TAX':62} {ap50:8.2f} {ap99:8.2f}")
    print(f"  ratio p50 {ap50 / rp50:.1f}x, p99 {ap99 / rp99:.1f}x")
    print("\n(c) gas per record")
    print(f"  anchor (one record)             {single:10,.0f}")
    less = single / batched
    print(f"  anchorBatch ({BATCH} records) / {BATCH}  {batched:10,.0f}  ({less:.1f}x less)")

    with consortium(k, ("TAX",)) as c:
        imp = import_rate(c, args.import_files, k)
    print(f"\n(d) bulk import of {args.import_files} files of 4 KiB, {k} in flight")
    print(f"  {imp:.1f} records/s anchored, {imp / raw_rate:.2f}x the raw single-anchor rate")

    by_engine: dict[str, dict[str, float]] = {}
    if args.engines:
        for engine in ("embedded", "kubo", "postgresql"):
            with consortium(k, ("TAX", "MARKET"), engine) as c:
                rate, _lag = api_publish_rate(c, n, k)
                lat = fetch_latency(c, args.fetches)
            by_engine[engine] = {
                "publish_records_per_s": round(rate, 1),
                "fetch_p50_ms": round(lat["api"][0], 2),
                "raw_call_p50_ms": round(lat["raw"][0], 3),
            }
        base = by_engine["embedded"]
        print(f"\n(e) the same with real engines: {n} publishes, {args.fetches} fetches each")
        print(f"{'brokers on':34} {'publish/s':>10} {'vs':>6} {'fetch p50':>10} {'vs':>6}")
        names = {"embedded": "embedded store, SQLite", "kubo": "a Kubo node each, SQLite",
                 "postgresql": "embedded store, PostgreSQL"}  # fmt: skip
        for engine, f in by_engine.items():
            print(
                f"{names[engine]:34} {f['publish_records_per_s']:10.1f} "
                f"{f['publish_records_per_s'] / base['publish_records_per_s']:6.2f} "
                f"{f['fetch_p50_ms']:10.2f} {f['fetch_p50_ms'] / base['fetch_p50_ms']:6.2f}"
            )

    if args.json:
        figures = {
            **pub,
            "fetch_p50_ms": round(ap50, 2),
            "fetch_p99_ms": round(ap99, 2),
            "raw_call_p50_ms": round(rp50, 3),
            "fetch_p50_ratio": round(ap50 / rp50, 2),
            "gas_per_record_batched": round(batched, 1),
            "gas_per_record_single": single,
            "gas_ratio": round(batched / single, 4),
            "import_records_per_s": round(imp, 1),
            "import_ratio": round(imp / raw_rate, 3),
            "import_files": args.import_files,
        }
        assert tuple(figures) == FIGURES
        print(json.dumps({**figures, **({"engines": by_engine} if by_engine else {})}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
