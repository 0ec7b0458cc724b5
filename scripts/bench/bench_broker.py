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
    the ratio is the median of the per-round ratios.
(b) Cross-department fetch latency p50/p99: MARKET's clerk reads TAX's 1 KiB
    record (``GET /v1/records/{id}/content``: MARKET's broker signs an exchange
    request, TAX's broker checks the grant on chain, counts the use, answers with
    ciphertext and capsule; MARKET verifies CID and SHA-256) vs one raw HTTP
    ``eth_call`` (``grantStatus``) on a keep-alive connection, interleaved.

Usage: .venv/bin/python scripts/bench/bench_broker.py [--records 200] [--clients 16]
       [--rounds 3] [--fetches 300]
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
from contextlib import contextmanager
from pathlib import Path

import httpx
from eth_account import Account
from eth_account.signers.local import LocalAccount

from govshare.broker.db import Database
from govshare.broker.subjects import ensure_subject_key
from govshare.broker.users import Users
from govshare.chain.connection import Connection
from govshare.chain.contracts import AnchorInput, DepartmentInit
from govshare.chain.deploy import deploy
from govshare.chain.devfund import faucet
from govshare.chain.devnode import AnvilProcess, free_port
from govshare.chain.ledger import Ledger
from govshare.home import deployment_path
from govshare.profile import Profile, create_profile

PASSWORD = "bench-password"
CATEGORY = "bench"
BOOT = "import sys; from govshare.cli.main import main; sys.exit(main())"
RPC_HEADERS = {"Content-Type": "application/json"}


def funded(conn: Connection) -> LocalAccount:
    acct: LocalAccount = Account.create()
    conn.request("anvil_setBalance", [acct.address, hex(10**24)])
    return acct


class Consortium:
    """TAX and MARKET: profiles, deployment, a category each, a clerk each, and
    their brokers as ``govshare serve`` processes."""

    def __init__(self, node: AnvilProcess, home: Path, raw_senders: int) -> None:
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
        for code in self.profiles:
            db = Database.for_department(home, code)
            try:
                self.tokens[code] = Users(db).add(f"{code.lower()}-clerk", "clerk", code)[1].token
            finally:
                db.close()
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start_brokers(self, codes: tuple[str, ...] = ("TAX", "MARKET")) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GOVSHARE_")}
        env.update(GOVSHARE_PASSWORD=PASSWORD, GOVSHARE_HOME=str(self.home))
        for code in codes:
            log = open(self.home / f"{code}.log", "ab")  # noqa: SIM115 - the child keeps it
            self.procs[code] = subprocess.Popen(
                [sys.executable, "-c", BOOT, "serve", "--dept", code, "--log-level", "warning"],
                env=env,
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


def api_publish_rate(c: Consortium, n: int, clients: int) -> float:
    payloads = [os.urandom(4096) for _ in range(n)]
    local = threading.local()

    def one(data: bytes) -> None:
        if not hasattr(local, "http"):
            local.http = c.client("TAX")
        r = local.http.post(
            "/v1/records",
            headers={"Idempotency-Key": uuid.uuid4().hex},
            files={"file": ("r.bin", data, "application/octet-stream")},
            data={"category": CATEGORY},
        )
        if r.status_code != 201:
            raise SystemExit(f"publish failed: {r.status_code} {r.text}")

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, payloads))
    return n / (time.perf_counter() - t0)


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


@contextmanager
def consortium(clients: int, brokers: tuple[str, ...]) -> Iterator[Consortium]:
    """A fresh anvil, deployment and brokers (anvil 1.7.1 mines more slowly the
    longer its chain, and far more slowly after an evm_revert: each run gets a
    chain of its own instead)."""
    with tempfile.TemporaryDirectory(prefix="govshare-bench-") as tmp, AnvilProcess() as node:
        c = Consortium(node, Path(tmp), clients)
        try:
            if brokers:
                c.start_brokers(brokers)
            yield c
        finally:
            c.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=200, help="records per publish run")
    ap.add_argument("--clients", type=int, default=16, help="concurrent clients")
    ap.add_argument("--rounds", type=int, default=3, help="raw/API run pairs")
    ap.add_argument("--fetches", type=int, default=300, help="timed fetches")
    args = ap.parse_args()
    n, k = args.records, args.clients

    api_runs: list[float] = []
    raw_runs: list[float] = []

    def raw() -> None:
        with consortium(k, ()) as c:
            raw_runs.append(raw_anchor_rate(c, n, k))

    def api() -> None:
        with consortium(k, ("TAX",)) as c:
            api_runs.append(api_publish_rate(c, n, k))

    for r in range(args.rounds):
        for run in (raw, api) if r % 2 == 0 else (api, raw):
            run()
    ratio = statistics.median(a / r for a, r in zip(api_runs, raw_runs, strict=True))
    print(
        f"\n(a) publish throughput: {n} records of 4 KiB per run, {k} concurrent clients, "
        f"{args.rounds} rounds, each run on a fresh chain, order alternating"
    )
    print(f"{'path':62} {'records/s':>10} {'ratio':>7}")
    print(
        f"{'raw: one pre-signed anchor tx per record, wait for its receipt':62} "
        f"{statistics.median(raw_runs):10.1f} {1.0:7.2f}"
    )
    print(
        f"{'API: POST /v1/records (encrypt, store, anchor, answer)':62} "
        f"{statistics.median(api_runs):10.1f} {ratio:7.2f}"
    )
    print(f"  per round: raw {[round(x) for x in raw_runs]}, API {[round(x) for x in api_runs]}")

    with consortium(k, ("TAX", "MARKET")) as c:
        lat = fetch_latency(c, args.fetches)
    (ap50, ap99), (rp50, rp99) = lat["api"], lat["raw"]
    print(f"\n(b) cross-department fetch of a 1 KiB record, {args.fetches} fetches (ms)")
    print(f"{'path':62} {'p50':>8} {'p99':>8}")
    print(f"{'raw: one HTTP eth_call (grantStatus), keep-alive':62} {rp50:8.2f} {rp99:8.2f}")
    print(f"{'API: MARKET GET /v1/records/{id}/content via TAX':62} {ap50:8.2f} {ap99:8.2f}")
    print(f"  ratio p50 {ap50 / rp50:.1f}x, p99 {ap99 / rp99:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
