"""A consortium that has run for a while: a chain of 20,000+ blocks holding 2,000
requests. The ledger mirror must cost the same per tick as on a young chain and
never need historical state; a new request and its approval must reach the other
department promptly, and the fetch must work.

anvil 1.7.1 rebuilds its whole state trie for every block, and slows with every
block it mines in one process: 20,000 blocks in one go take many minutes, and
with 2,000 requests' storage each 2,000 blocks take a minute and a half. So the
chain is grown while its state is small (restarting anvil from its state file
every 2,000 blocks: about half a minute in all), and the 2,000 requests come at
its end.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from audit.bulk import bulk_anchor, bulk_requests
from govshare.chain.connection import Connection
from govshare.chain.contracts import AnchorInput
from govshare.chain.devnode import AnvilProcess, free_port
from govshare.chain.mirror import Mirror
from integration.test_crash import cli_json, publish
from integration.world import (
    CATEGORY,
    ServeProcess,
    World,
    add_clerks,
    build_world,
    spawn_serve,
    wait_for,
    wait_serving,
)

pytestmark = pytest.mark.integration

CODES = ("TAX", "MARKET")
LONG = 20_000
REQUESTS = 2_000


class Counting(Connection):
    """A connection that counts the JSON-RPC methods it sends (batches included)."""

    def __init__(self, url: str) -> None:
        self.calls: list[str] = []
        super().__init__(url)

    def request(self, method: str, params: Any) -> Any:  # type: ignore[override]
        self.calls.append(method)
        return super().request(method, params)

    def batch(self, calls: Any) -> list[Any]:  # type: ignore[override]
        self.calls.extend(m for m, _ in calls)
        return super().batch(calls)

    def take(self) -> list[str]:
        out, self.calls = self.calls, []
        return out


def mine_to(node: AnvilProcess, target: int) -> None:
    """Grow the chain to ``target`` blocks, restarting anvil from its state file
    between steps (see the module docstring)."""
    while True:
        # Each round's connection is closed before anvil restarts: a pooled socket
        # left to the garbage collector is an unclosed-socket warning (an error here).
        with Connection(node.url, timeout=600) as conn:
            head = conn.block_number()
            if head >= target:
                return
            conn.request("anvil_mine", [hex(min(2_000, target - head))])
            grown = conn.block_number()
        if grown < target:
            node.stop()  # SIGTERM: the state file is written
            node.start(timeout=120)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnvilProcess]:
    state = tmp_path_factory.mktemp("chain") / "state.json"
    n = AnvilProcess(port=free_port(), state=state).start()
    yield n
    n.stop()


@dataclass
class History:
    world: World
    records: list[bytes]


@pytest.fixture(scope="module")
def history(node: AnvilProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[History]:
    """TAX anchored 100 records; the chain is 1,000 blocks long."""
    w = build_world(node.url, tmp_path_factory.mktemp("home"), codes=CODES)
    items = [AnchorInput(os.urandom(32), os.urandom(32), "bafy-old", CATEGORY) for _ in range(100)]
    bulk_anchor(w.ledger, w["TAX"].broker, items)
    mine_to(node, 1_000)
    yield History(w, [i.record_id for i in items])
    w.close()


def grow(history: History, node: AnvilProcess) -> World:
    """The chain at 20,000+ blocks, then MARKET's 2,000 requests for TAX's records
    (their deadline a day ahead of the chain's clock, which anvil_mine moves a
    second a block)."""
    w = history.world
    mine_to(node, LONG)
    if w.ledger.access.request_count() < REQUESTS:
        wanted = [history.records[i % len(history.records)] for i in range(REQUESTS)]
        deadline = w.ledger.now() + 86_400
        bulk_requests(w.ledger, w["MARKET"].broker, "TAX", wanted, "past case", deadline)
    return w


def _new_events(world: World) -> None:
    """One block with a few govshare events."""
    items = [AnchorInput(os.urandom(32), os.urandom(32), "bafy", CATEGORY) for _ in range(3)]
    world.ledger.records.anchor_many(world["TAX"].broker, items)


def test_a_tick_costs_the_same_at_1000_and_20000_blocks(
    history: History, node: AnvilProcess, tmp_path: Path
) -> None:
    world = history.world
    conn = Counting(node.url)
    mirror = Mirror.open_file(conn, world.ledger.deployment, tmp_path / "index.db")
    try:
        _same_tick_young_and_old(history, node, conn, mirror)
    finally:
        mirror.close()
        conn.close()


def _same_tick_young_and_old(
    history: History, node: AnvilProcess, conn: Counting, mirror: Mirror
) -> None:
    world = history.world
    assert mirror.run_once() >= 100  # catch-up: the anchors

    def one_tick() -> tuple[list[str], int]:
        mirror.run_once()  # caught up with whatever was mined
        _new_events(world)
        conn.take()
        n = mirror.run_once()
        return conn.take(), n

    short_calls, short_events = one_tick()
    grow(history, node)
    assert conn.block_number() >= LONG
    assert mirror.run_once() >= REQUESTS  # 19,000 blocks in ranges of 1,000: no state
    assert "eth_call" not in conn.take()
    long_calls, long_events = one_tick()
    assert short_events == long_events == 3
    # The same requests: the head and the checkpoint's block in one batch, then the
    # range's end block and its logs — and never an eth_call (no state at all).
    expected = ["eth_blockNumber", "eth_getBlockByNumber", "eth_getBlockByNumber", "eth_getLogs"]
    assert sorted(short_calls) == sorted(long_calls) == sorted(expected)


@pytest.fixture(scope="module")
def world(history: History, node: AnvilProcess) -> World:
    return grow(history, node)


@pytest.fixture(scope="module")
def brokers(world: World) -> Iterator[dict[str, ServeProcess]]:
    add_clerks(world, CODES)
    procs = {c: spawn_serve(world, c, options=("--sync-interval", "1")) for c in CODES}
    try:
        wait_serving(list(procs.values()))
        yield procs
    finally:
        for p in procs.values():
            p.stop()


def listed(world: World, dept: str, *flags: str) -> list[dict[str, Any]]:
    code, rows = cli_json(world, "request", "list", *flags, "--dept", dept)
    assert code == 0, rows
    return list(rows)


def test_a_new_request_and_its_approval_reach_the_other_department_promptly(
    world: World, brokers: dict[str, ServeProcess], tmp_path: Path
) -> None:
    assert world.ledger.block_number() >= LONG
    # Both mirrors read the whole history from the deploy block: 2,000 requests each.
    old = listed(world, "MARKET", "--outgoing")
    assert len(old) == REQUESTS and {r["status"] for r in old} == {"pending"}
    assert len(listed(world, "TAX", "--incoming", "--status", "pending")) == REQUESTS

    doc = tmp_path / "certificate.pdf"
    doc.write_bytes(os.urandom(5_000))
    code, pub = publish(world, doc, "long-chain-certificate")
    assert code == 0, pub
    rid = pub["record_id"]
    code, req = cli_json(
        world, "request", "create", "--owner", "TAX", "--record", rid,
        "--purpose", "business licence", "--dept", "MARKET",
    )  # fmt: skip
    assert code == 0, req
    new_id = req["request_id"]
    wait_for(
        lambda: any(r["id"] == new_id for r in listed(world, "TAX", "--incoming")),
        "TAX did not see the new request",
    )
    code, ok = cli_json(
        world, "grant", "approve", str(new_id), "--dept", "TAX",
        "--expires", "1d", "--max-uses", "2", "-y",
    )  # fmt: skip
    assert code == 0, ok
    # MARKET's broker sees the decision at its next tick (or at once: the list ticks).
    approved = wait_for(
        lambda: [
            r
            for r in listed(world, "MARKET", "--outgoing", "--record", rid)
            if r["id"] == new_id and r["status"] == "approved"
        ],
        "MARKET did not see the approval",
    )
    assert approved[0]["max_uses"] == 2
    out = tmp_path / "fetched.pdf"
    code, got = cli_json(world, "record", "fetch", rid, "-o", str(out), "--dept", "MARKET")
    assert code == 0, got
    assert out.read_bytes() == doc.read_bytes()
    # Neither broker logged a re-read of the history or a rewind.
    for p in brokers.values():
        text = p.log.read_text()
        assert "rewound" not in text and "Traceback" not in text, text[-2000:]
