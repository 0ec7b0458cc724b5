"""Trust the chain, not our notes — also after the fact. A dev chain killed with
SIGKILL comes back from its last dump (written every second) and may have lost
its last second: transactions the brokers sent and saw mined, and answered for.
Against real ``govshare serve`` processes and this module's own anvil:

* a publish acknowledged as anchored, then lost by the chain, is anchored again
  by the broker itself, exactly once, and shown as anchored only once it is —
  in its batch (batch mode, the default) or alone (single mode);
* a receipt batch anchored, then lost, is anchored again, exactly once;
* the publish after the chain's return is not held up by a stale nonce.

Each loss is provoked by killing the node right after the acknowledgement, and
tried again until the rollback really dropped it (the dump may have caught it).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from govshare.broker.db import Database, Operation, OperationStep, Receipt, Record, RecordBatch
from govshare.chain.devnode import AnvilProcess, free_port
from govshare.chain.ledger import Ledger
from integration.test_crash import cli_json, publish
from integration.world import (
    CATEGORY,
    ServeProcess,
    World,
    add_clerks,
    batches_holding,
    build_world,
    spawn_serve,
    wait_for,
    wait_serving,
)

pytestmark = pytest.mark.integration

CODES = ("TAX", "MARKET")
# Quick loops: the mirror ticks, the outbox retries and receipts are batched at once.
FAST = ("--sync-interval", "0.2", "--worker-interval", "0.2")
TRIES = 12


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnvilProcess]:
    state = tmp_path_factory.mktemp("chain") / "state.json"
    n = AnvilProcess(port=free_port(), state=state).start()
    yield n
    n.stop()


@pytest.fixture(scope="module")
def world(node: AnvilProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = build_world(node.url, tmp_path_factory.mktemp("home"), codes=CODES)
    yield w
    w.close()


@pytest.fixture(scope="module")
def tokens(world: World) -> dict[str, str]:
    return add_clerks(world, CODES)


@pytest.fixture(scope="module")
def brokers(world: World) -> Iterator[dict[str, ServeProcess]]:
    procs = {
        "TAX": spawn_serve(
            world,
            "TAX",
            options=(*FAST, "--receipt-batch-size", "1", "--receipt-batch-age", "0"),
        ),
        "MARKET": spawn_serve(world, "MARKET", options=FAST),
    }
    try:
        wait_serving(list(procs.values()))
        yield procs
    finally:
        for p in procs.values():
            p.stop()


def dumped(node: AnvilProcess) -> Callable[[], bool]:
    """True once anvil has written its state file after now."""
    assert node.state is not None
    since = time.time()
    return lambda: node.state is not None and node.state.stat().st_mtime > since + 0.05


def crash_and_restart(node: AnvilProcess) -> None:
    node.stop(hard=True)  # SIGKILL: what was mined since the last dump is lost
    node.start()


def anchored_events(ledger: Ledger, record_id: str) -> int:
    logs = ledger.conn.get_logs(
        ledger.deployment.deploy_block, ledger.block_number(), [ledger.records.address]
    )
    return sum(
        1
        for raw in logs
        if (ev := ledger.log_decoder(raw)) is not None
        and ev.name == "RecordAnchored"
        and "0x" + ev.args["recordId"].hex() == record_id
    )


def tax_db(world: World) -> Database:
    return Database.for_department(world.home, "TAX")


def anchor_attempts(world: World, record_id: str) -> int:
    """How many times the anchor step of this record's publish was started."""
    db = tax_db(world)
    try:
        with db.session(readonly=True) as s:
            op_ids = [
                o.id
                for o in s.scalars(select(Operation).where(Operation.kind == "publish"))
                if (o.result or {}).get("record_id") == record_id
            ]
            assert len(op_ids) == 1, op_ids
            step = s.get(OperationStep, (op_ids[0], 3))
            assert step is not None and step.name == "anchor"
            return int(step.attempts)
    finally:
        db.close()


def api_publish(
    broker: ServeProcess, token: str, data: bytes, key: str, *, status: int = 201
) -> dict[str, Any]:
    """A clerk's publish straight to the broker's API, waiting for the anchor:
    the answer is the acknowledgement (the command line would add its own
    start-up and exit)."""
    r = httpx.post(
        broker.url + "/v1/records",
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key},
        data={"category": CATEGORY},
        files={"file": ("doc.pdf", data, "application/pdf")},
        timeout=60,
    )
    assert r.status_code == status, r.text
    return dict(r.json())


def lose_an_acknowledged_publish(
    node: AnvilProcess,
    broker: ServeProcess,
    token: str,
    prefix: str,
    *,
    acknowledged: Callable[[dict[str, Any]], Any],
    on_chain: Callable[[str], bool],
) -> tuple[dict[str, Any], bytes, str]:
    """Publish, and kill the node within milliseconds of the acknowledgement, until
    the rollback really dropped the record: its answer, bytes and key."""
    for attempt in range(TRIES):
        data, key = os.urandom(4_000), f"{prefix}-{attempt}"
        pub = api_publish(broker, token, data, key)
        assert acknowledged(pub), pub
        crash_and_restart(node)
        if not on_chain(pub["record_id"]):
            return pub, data, key
    raise AssertionError(f"the chain never lost an acknowledged publish in {TRIES} tries")


@pytest.fixture
def single_tax(world: World, brokers: dict[str, ServeProcess]) -> Iterator[ServeProcess]:
    """TAX's broker restarted to anchor each record with its own transaction,
    and back in batch mode afterwards."""
    tax_options = (*FAST, "--receipt-batch-size", "1", "--receipt-batch-age", "0")
    brokers["TAX"].stop()
    single = spawn_serve(world, "TAX", env={"GOVSHARE_BATCH_MAX_RECORDS": "1"}, options=tax_options)
    try:
        wait_serving([single])
        brokers["TAX"] = single
        yield single
    finally:
        single.stop()
        brokers["TAX"] = spawn_serve(world, "TAX", options=tax_options)
        wait_serving([brokers["TAX"]])


def batch_event_block(ledger: Ledger, seq: int) -> int:
    """The block of TAX's ``RecordBatchAnchored`` for batch ``seq`` (one, on chain)."""
    logs = ledger.conn.get_logs(
        ledger.deployment.deploy_block, ledger.block_number(), [ledger.records.address]
    )
    blocks = [
        int(raw["blockNumber"], 16)
        for raw in logs
        if (ev := ledger.log_decoder(raw)) is not None
        and ev.name == "RecordBatchAnchored"
        and int(ev.args["sequence"]) == seq
        and bytes(ev.args["department"]).rstrip(b"\0") == b"TAX"
    ]
    assert len(blocks) == 1, blocks
    return blocks[0]


def test_a_lost_batch_is_anchored_again_once_and_the_next_is_not_held_up(
    world: World,
    node: AnvilProcess,
    brokers: dict[str, ServeProcess],
    tokens: dict[str, str],
    tmp_path: Path,
) -> None:
    """Batch mode: a publish answered as anchored (its batch mined), then lost
    with the chain's last second, is anchored again by the broker itself, in one
    batch, and shown with that batch; the next publish is not held up."""
    ledger = world.ledger
    lost, data, key = lose_an_acknowledged_publish(
        node,
        brokers["TAX"],
        tokens["TAX"],
        "b-rollback",
        acknowledged=lambda pub: pub["state"] == "done" and pub["batch"],
        on_chain=lambda rid: bool(batches_holding(world, "TAX", rid)),
    )
    rid = lost["record_id"]

    held = wait_for(
        lambda: batches_holding(world, "TAX", rid), "the lost batch was not anchored again"
    )
    assert len(held) == 1  # once
    block = batch_event_block(ledger, held[0])
    shown = wait_for(
        lambda: (
            (s := cli_json(world, "record", "show", rid, "--dept", "TAX")[1])["status"]
            == "anchored"
            and s
        ),
        "the record was not shown anchored again",
    )
    assert shown["batch_sequence"] == held[0] and shown["anchor_block"] == block, shown
    # A retry with the same key answers with the record as it is now on chain.
    again = api_publish(brokers["TAX"], tokens["TAX"], data, key, status=200)
    assert again["replayed"] is True and again["record_id"] == rid, again
    assert again["block_number"] == block and again["batch"]["sequence"] == held[0]

    # The next publish takes no detour through a stale nonce: its batch is sent once.
    nxt = tmp_path / "next-batched.pdf"
    nxt.write_bytes(os.urandom(4_000))
    code, pub = publish(world, nxt, "after-the-batch-rollback")
    assert code == 0 and len(batches_holding(world, "TAX", pub["record_id"])) == 1, pub
    assert batch_anchor_attempts(world, pub["record_id"]) == 1


def batch_anchor_attempts(world: World, record_id: str) -> int:
    """How many times the anchor step of the batch holding this record was started."""
    db = tax_db(world)
    try:
        with db.session(readonly=True) as s:
            row = s.get(Record, record_id)
            assert row is not None and row.batch_id is not None
            batch = s.get(RecordBatch, row.batch_id)
            assert batch is not None and batch.operation_id is not None
            step = s.get(OperationStep, (batch.operation_id, 1))
            assert step is not None and step.name == "anchor"
            return int(step.attempts)
    finally:
        db.close()


def test_a_lost_publish_is_anchored_again_once_and_the_next_is_not_held_up(
    world: World,
    node: AnvilProcess,
    brokers: dict[str, ServeProcess],
    single_tax: ServeProcess,
    tokens: dict[str, str],
    tmp_path: Path,
) -> None:
    """Single mode (``GOVSHARE_BATCH_MAX_RECORDS=1``): the record's own anchor."""
    ledger = world.ledger
    lost, data, key = lose_an_acknowledged_publish(
        node,
        brokers["TAX"],
        tokens["TAX"],
        "rollback",
        acknowledged=lambda pub: pub["state"] == "done" and pub["block_number"],
        on_chain=ledger.records.record_exists,
    )
    rid = lost["record_id"]

    # The broker notices, on its own, and anchors it again: once.
    wait_for(lambda: ledger.records.record_exists(rid), "the lost publish was not re-anchored")
    assert anchored_events(ledger, rid) == 1
    code, shown = cli_json(world, "record", "show", rid, "--dept", "TAX")
    assert code == 0 and shown["status"] == "anchored", shown
    anchored = ledger.records.anchored_event(rid, from_block=ledger.deployment.deploy_block)
    assert anchored is not None
    assert shown["anchor_block"] == anchored.block_number, (shown, anchored)
    # A retry with the same key answers with the record as it is now on chain.
    r = httpx.post(
        brokers["TAX"].url + "/v1/records",
        headers={
            "Authorization": f"Bearer {tokens['TAX']}",
            "Idempotency-Key": key,
        },
        data={"category": CATEGORY},
        files={"file": ("doc.pdf", data, "application/pdf")},
        timeout=60,
    )
    again = r.json()
    assert r.status_code == 200 and again["replayed"] is True and again["record_id"] == rid, again
    assert again["block_number"] == anchored.block_number

    # The next publish takes no detour through a stale nonce: one anchor attempt.
    nxt = tmp_path / "next.pdf"
    nxt.write_bytes(os.urandom(4_000))
    code, pub = publish(world, nxt, "after-the-rollback")
    assert code == 0 and ledger.records.record_exists(pub["record_id"]), pub
    assert anchor_attempts(world, pub["record_id"]) == 1
    assert anchored_events(ledger, pub["record_id"]) == 1


def test_a_lost_receipt_batch_is_anchored_again_once(
    world: World,
    node: AnvilProcess,
    brokers: dict[str, ServeProcess],
    tokens: dict[str, str],
    tmp_path: Path,
) -> None:
    ledger = world.ledger
    doc = tmp_path / "granted.pdf"
    doc.write_bytes(os.urandom(3_000))
    code, pub = publish(world, doc, "receipts-doc")
    assert code == 0, pub
    rid = pub["record_id"]
    code, req = cli_json(
        world, "request", "create", "--owner", "TAX", "--record", rid,
        "--purpose", "licence check", "--dept", "MARKET",
    )  # fmt: skip
    assert code == 0, req
    code, ok = cli_json(
        world, "grant", "approve", str(req["request_id"]), "--dept", "TAX",
        "--expires", "1d", "--max-uses", str(TRIES + 1), "-y",
    )  # fmt: skip
    assert code == 0, ok
    wait_for(dumped(node), "anvil did not dump its state")  # the grant is safe now

    lost_seq = None
    for attempt in range(TRIES):
        before = ledger.access.last_receipt_seq("TAX")
        out = tmp_path / f"fetched-{attempt}.pdf"
        code, got = cli_json(world, "record", "fetch", rid, "-o", str(out), "--dept", "MARKET")
        assert code == 0, got
        wait_for(
            lambda before=before: ledger.access.last_receipt_seq("TAX") > before,
            "the receipt was not anchored",
        )
        seq = ledger.access.last_receipt_seq("TAX")
        crash_and_restart(node)
        if ledger.access.last_receipt_seq("TAX") < seq:
            lost_seq = seq
            break
    assert lost_seq is not None, f"the chain never lost a receipt batch in {TRIES} tries"

    wait_for(
        lambda: ledger.access.last_receipt_seq("TAX") >= lost_seq,
        "the lost receipt batch was not anchored again",
    )
    logs = ledger.conn.get_logs(
        ledger.deployment.deploy_block, ledger.block_number(), [ledger.access.address]
    )
    covering = [
        ev
        for raw in logs
        if (ev := ledger.log_decoder(raw)) is not None
        and ev.name == "ReceiptsAnchored"
        and ev.args["firstSeq"] <= lost_seq <= ev.args["lastSeq"]
    ]
    assert len(covering) == 1, covering
    db = tax_db(world)
    try:

        def marked() -> bool:
            with db.session(readonly=True) as s:
                row = s.scalars(
                    select(Receipt).where(Receipt.owner == "TAX", Receipt.seq == lost_seq)
                ).one()
                return row.batch_id == str(covering[0].args["batchIndex"])

        wait_for(marked, "the receipt does not name the batch it is in now")
    finally:
        db.close()
    code, audit = cli_json(world, "audit", "receipts")
    assert code == 0 and audit["ok"], audit


def test_a_lost_decision_is_sent_again_once_from_its_journal(
    world: World,
    node: AnvilProcess,
    brokers: dict[str, ServeProcess],
    tokens: dict[str, str],
    tmp_path: Path,
) -> None:
    from govshare.broker import consent
    from govshare.broker.signed import department_journal

    ledger = world.ledger
    lost_id = None
    for attempt in range(TRIES):
        pub = api_publish(brokers["TAX"], tokens["TAX"], os.urandom(3_000), f"decide-{attempt}")
        code, req = cli_json(
            world, "request", "create", "--owner", "TAX", "--record", pub["record_id"],
            "--purpose", "licence check", "--dept", "MARKET",
        )  # fmt: skip
        assert code == 0, req
        request_id = int(req["request_id"])
        wait_for(dumped(node), "anvil did not dump its state")  # the request is safe
        # What `govshare grant approve` runs, in this process: the acknowledgement is
        # its return, and the node is killed at once.
        with department_journal(world.home, "TAX", ledger) as journal:
            done = consent.approve(
                ledger, world["TAX"].admin, request_id, max_uses=1, expires_in=3600,
                dept="TAX", journal=journal,
            )  # fmt: skip
        assert done.request.status.value == "approved"
        crash_and_restart(node)
        if ledger.access.get_request(request_id).status.value == "pending":
            lost_id = request_id
            break
    assert lost_id is not None, f"the chain never lost a decision in {TRIES} tries"

    # TAX's broker sends the administrator's signed bytes again: the same transaction.
    wait_for(
        lambda: ledger.access.get_request(lost_id).status.value == "approved",
        "the lost decision was not sent again",
    )
    logs = ledger.conn.get_logs(
        ledger.deployment.deploy_block, ledger.block_number(), [ledger.access.address]
    )
    approvals = [
        ev
        for raw in logs
        if (ev := ledger.log_decoder(raw)) is not None
        and ev.name == "AccessApproved"
        and ev.args["requestId"] == lost_id
    ]
    assert len(approvals) == 1 and approvals[0].tx_hash == done.tx_hash, approvals
    assert approvals[0].args["approvedBy"] == world["TAX"].admin.address
    out = tmp_path / "granted.pdf"
    code, got = cli_json(
        world, "record", "fetch", pub["record_id"], "-o", str(out), "--dept", "MARKET"
    )
    assert code == 0, got
