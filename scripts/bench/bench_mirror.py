"""Benchmark the ledger mirror beside raw ``eth_getLogs`` on the same node, same run.

(a) Catch-up: a fresh mirror (its own SQLite file, as an auditor's) reads a chain
    holding ``--records`` anchored records and ``--requests`` access requests
    (made in bulk, 120 transactions a block) from the deploy block to the head:
    decoding every log, storing it with its keys and counts, one transaction per
    range with the checkpoint. Baseline: the same ranges read with raw
    ``eth_getLogs`` on a keep-alive HTTP session (no decoding, no storage).
(b) One tick when the chain has grown: the time of a tick that finds one new
    block with a few events, after ``anvil_mine`` brought the chain to 1,000
    blocks, and again at ``--blocks`` (20,000 by default). The mirror never reads
    historical state, so the two should match; the ratio is printed.

The last line is a JSON object with the figures.

Usage: .venv/bin/python scripts/bench/bench_mirror.py [--records N] [--requests N]
       [--blocks N] [--ticks N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))  # the bulk helpers of the test suite

from audit.bulk import bulk_anchor, bulk_requests  # noqa: E402
from govshare.chain.abi import CONTRACT_NAMES  # noqa: E402
from govshare.chain.connection import Connection  # noqa: E402
from govshare.chain.contracts import AnchorInput  # noqa: E402
from govshare.chain.devnode import AnvilProcess  # noqa: E402
from govshare.chain.mirror import DEFAULT_RANGE, Mirror  # noqa: E402
from integration.world import CATEGORY, build_world  # noqa: E402


def raw_logs_rate(url: str, addresses: list[str], first: int, head: int) -> tuple[int, float]:
    """Events and seconds for reading ``[first, head]`` with bare eth_getLogs."""
    session = httpx.Client()  # keep-alive
    t = time.perf_counter()
    n = 0
    for start in range(first, head + 1, DEFAULT_RANGE):
        end = min(head, start + DEFAULT_RANGE - 1)
        body = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "eth_getLogs",
            "params": [{"fromBlock": hex(start), "toBlock": hex(end), "address": addresses}],
        }
        answer = session.post(url, json=body, timeout=60).json()
        n += len(answer["result"])
    return n, time.perf_counter() - t


def ms(xs: list[float]) -> str:
    return f"median {statistics.median(xs) * 1000:.1f} ms, max {max(xs) * 1000:.1f} ms"


def mine_to(node: AnvilProcess, target: int) -> None:
    """Grow the chain to ``target`` blocks. anvil 1.7.1 slows with every block one
    process mines, so it is restarted from its state file every 2,000 blocks."""
    while True:
        conn = Connection(node.url, timeout=600)
        head = conn.block_number()
        if head >= target:
            return
        conn.request("anvil_mine", [hex(min(2_000, target - head))])
        if conn.block_number() < target:
            node.stop()
            node.start(timeout=120)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=2_000)
    ap.add_argument("--requests", type=int, default=2_000)
    ap.add_argument("--blocks", type=int, default=20_000)
    ap.add_argument("--ticks", type=int, default=10)
    args = ap.parse_args()
    out: dict[str, float | int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        node = AnvilProcess(state=home / "chain.json").start()
        try:
            world = build_world(node.url, home, codes=("TAX", "MARKET"))
            ledger = world.ledger
            tax, market = world["TAX"], world["MARKET"]
            items = [
                AnchorInput(os.urandom(32), os.urandom(32), "bafy-bench", CATEGORY)
                for _ in range(args.records)
            ]
            bulk_anchor(ledger, tax.broker, items)
            mirror = Mirror.open_file(Connection(node.url), ledger.deployment, home / "tick.db")

            # (b) a tick at 1,000 and at --blocks blocks (the chain grows while its
            # state is small: anvil rebuilds its whole state trie for every block)
            def ticks() -> list[float]:
                mirror.run_once()
                times = []
                for _ in range(args.ticks):
                    ledger.records.anchor_many(
                        tax.broker,
                        [
                            AnchorInput(os.urandom(32), os.urandom(32), "bafy", CATEGORY)
                            for _ in range(3)
                        ],
                    )
                    t = time.perf_counter()
                    mirror.run_once()
                    times.append(time.perf_counter() - t)
                return times

            mine_to(node, 1_000)
            short = ticks()
            t = time.perf_counter()
            mine_to(node, args.blocks)
            mined_s = time.perf_counter() - t
            long = ticks()
            mirror.close()
            out["tick_ms_at_1000"] = round(statistics.median(short) * 1000, 2)
            out[f"tick_ms_at_{args.blocks}"] = round(statistics.median(long) * 1000, 2)
            out["tick_ratio"] = round(statistics.median(long) / statistics.median(short), 3)

            # (a) catch-up of the whole chain, with the requests at its end
            wanted = [items[i % len(items)].record_id for i in range(args.requests)]
            bulk_requests(ledger, market.broker, "TAX", wanted, "bench", ledger.now() + 86_400)
            head = ledger.block_number()
            addresses = [ledger.deployment.address(n) for n in CONTRACT_NAMES]
            first = ledger.deployment.deploy_block
            raw_events, raw_s = raw_logs_rate(node.url, addresses, first, head)
            fresh = Mirror.open_file(Connection(node.url), ledger.deployment, home / "mirror.db")
            t = time.perf_counter()
            stored = fresh.run_once()
            mirror_s = time.perf_counter() - t
            fresh.close()
            assert stored == raw_events, (stored, raw_events)
            out["catchup_events"] = stored
            out["catchup_blocks"] = head - first + 1
            out["mirror_events_per_s"] = round(stored / mirror_s)
            out["raw_getlogs_events_per_s"] = round(raw_events / raw_s)
            out["catchup_ratio"] = round(
                out["mirror_events_per_s"] / out["raw_getlogs_events_per_s"], 3
            )
            print(
                f"(a) catch-up of {stored} events over {head - first + 1} blocks: mirror "
                f"{out['mirror_events_per_s']} events/s; raw eth_getLogs "
                f"{out['raw_getlogs_events_per_s']} events/s ({out['catchup_ratio']}x)"
            )
            print(f"(b) a tick at block ~1,000: {ms(short)}")
            print(
                f"    a tick at block ~{args.blocks:,}: {ms(long)} ({out['tick_ratio']}x); "
                f"anvil mined the blocks between in {mined_s:.0f} s"
            )
            world.close()
        finally:
            node.stop()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
