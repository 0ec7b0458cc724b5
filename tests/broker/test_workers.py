"""The broker's loops speak only when something changes: a failure when it
starts (or changes cause), the recovery once, never a line per idle round.
Rounds are moved by calling ``tick()`` / ``resume_pending()``, never by sleeping."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import func, select

from fakeclock import ManualClock
from govshare.broker import receipt_batches
from govshare.broker.db import Database, ExchangeNonce, OpState
from govshare.broker.housekeeping import SPOOL_EVERY, Housekeeper
from govshare.broker.notifications import NotifySettings
from govshare.broker.outbox import Outbox, OutboxWorker, RetryPolicy, StepContext
from govshare.broker.receipt_batches import ReceiptBatcher
from govshare.broker.workers import Worker
from govshare.errors import ChainUnavailable, IntegrityError, StorageUnavailable


def lines(caplog: pytest.LogCaptureFixture, at: int = logging.INFO) -> list[tuple[str, str]]:
    return [(r.levelname, r.getMessage()) for r in caplog.records if r.levelno >= at]


class Scripted(Worker):
    """A worker whose rounds fail or work as the test says."""

    name = "scripted"

    def __init__(self) -> None:
        super().__init__(interval=1.0, log=logging.getLogger("govshare.test.scripted"))
        self.next: BaseException | None = None
        self.rounds = 0

    def run_once(self) -> None:
        self.rounds += 1
        if self.next is not None:
            raise self.next


def test_a_loop_logs_transitions_not_rounds(caplog: pytest.LogCaptureFixture) -> None:
    w = Scripted()
    caplog.set_level(logging.INFO, logger="govshare")
    for _ in range(5):
        w.tick()  # idle: nothing to say
    assert lines(caplog) == []
    w.next = ChainUnavailable("The chain node at x is not reachable.")
    for _ in range(4):
        w.tick()
    w.next = StorageUnavailable("Kubo is not answering.")  # another cause: said once more
    for _ in range(3):
        w.tick()
    w.next = None
    for _ in range(3):
        w.tick()
    w.next = RuntimeError("a bug")
    for _ in range(3):
        w.tick()
    assert w.rounds == 18 and w.health.failing == "RuntimeError"
    assert lines(caplog) == [
        ("WARNING", "scripted: postponed (chain.unavailable); will try again"),
        ("WARNING", "scripted: postponed (storage.unavailable); will try again"),
        ("INFO", "scripted: working again (after storage.unavailable)"),
        ("ERROR", "scripted failed; will try again"),
    ]
    # the unexpected error comes with its traceback, once
    assert [r.exc_info is not None for r in caplog.records if r.levelname == "ERROR"] == [True]
    # and no secret-bearing message of a chain error is logged, only its code
    assert "not reachable" not in caplog.text


def test_a_worker_refuses_a_bad_interval() -> None:
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError):
            OutboxWorker(Outbox.__new__(Outbox), interval=bad)


def test_an_operation_retried_for_the_same_cause_is_logged_once(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    outbox = Outbox(db, retry=RetryPolicy(max_attempts=50, base_delay=0.0))
    down = [True]

    def anchor(ctx: StepContext) -> dict[str, Any]:
        if down[0]:
            raise ChainUnavailable("The chain node at x is not reachable.")
        return {"ok": True}

    outbox.register("demo", [("anchor", anchor)])
    op = outbox.submit("demo", "k", "system", "0" * 64, {}, run=False).operation
    worker = OutboxWorker(outbox)
    caplog.set_level(logging.INFO, logger="govshare")
    for _ in range(6):
        worker.tick()  # a retry each round: no backoff with base_delay 0
    assert outbox.get(op.id).state is OpState.PENDING
    warned = lines(caplog, logging.WARNING)
    assert len(warned) == 1 and "chain.unavailable" in warned[0][1], warned
    down[0] = False
    worker.tick()
    assert outbox.get(op.id).state is OpState.DONE
    for _ in range(3):
        worker.tick()  # idle again
    assert len(lines(caplog)) == 1


def _failed_batches(db: Database) -> tuple[Outbox, ManualClock, Any]:
    """An outbox whose anchor_receipts operations fail for good, and the clock
    it and the batcher read; the batcher's services hold only those."""
    clock = ManualClock()
    outbox = Outbox(db, clock=clock)

    def gap(ctx: StepContext) -> dict[str, Any]:
        raise IntegrityError("a gap on chain")

    outbox.register(receipt_batches.KIND, [("anchor", gap)])
    return outbox, clock, SimpleNamespace(outbox=outbox, clock=clock)


def _fail(outbox: Outbox, op_id: str) -> None:
    assert outbox.run(op_id).state is OpState.FAILED


def test_a_failed_batch_is_logged_once_and_retried_with_backoff(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    outbox, clock, svc = _failed_batches(db)
    batcher = ReceiptBatcher(svc, retry_after=60)
    caplog.set_level(logging.INFO, logger="govshare")
    first = batcher._submit(1, 3)
    assert first is not None
    _fail(outbox, first.id)
    assert batcher._submit(1, 3) is None  # retry_after (60 s) has not passed
    clock.advance(90)
    # 90 s after the first failure: past retry_after, a numbered retry
    second = batcher._submit(1, 3)
    assert second is not None and second.id != first.id
    _fail(outbox, second.id)
    # the second failure waits twice as long (120 s): not yet, and said once
    for _ in range(5):
        assert batcher._submit(1, 3) is None
        clock.advance(20)
    warned = lines(caplog, logging.WARNING)
    assert warned == [
        ("WARNING", "receipts: anchoring 1-3 failed (integrity.mismatch); retrying in 60 s"),
        ("WARNING", "receipts: anchoring 1-3 failed (integrity.mismatch); retrying in 120 s"),
    ]
    clock.advance(20)  # 120 s after the second failure
    third = batcher._submit(1, 3)
    assert third is not None and third.id not in (first.id, second.id)


def test_retries_of_a_failed_batch_back_off_doubling_up_to_an_hour(db: Database) -> None:
    """Each retry becomes due exactly when the clock passes its wait: 60, 120,
    …, 1920 s, then an hour (the wait stops doubling), and an hour again."""
    outbox, clock, svc = _failed_batches(db)
    batcher = ReceiptBatcher(svc, retry_after=60)
    op = batcher._submit(1, 3)
    assert op is not None
    _fail(outbox, op.id)
    waits = [60 * 2**k for k in range(6)] + [receipt_batches.MAX_RETRY_AFTER] * 3
    for wait in waits:
        clock.advance(wait - 1)
        assert batcher._submit(1, 3) is None, wait  # a second early
        clock.advance(1)
        op = batcher._submit(1, 3)
        assert op is not None, wait
        _fail(outbox, op.id)


def test_housekeeping_forgets_nonces_and_cleans_the_spool_as_its_clock_moves(
    db: Database, tmp_path: Path
) -> None:
    clock = ManualClock()
    spool = tmp_path / "spool"
    spool.mkdir()
    svc: Any = SimpleNamespace(
        db=db,
        clock=clock,
        outbox=Outbox(db, clock=clock),
        spool=spool,
        sync=SimpleNamespace(run_once=lambda: 0),
        dept="TAX",
        notifications=SimpleNamespace(settings=NotifySettings()),
    )

    def nonces() -> int:
        with db.session(readonly=True) as s:
            return int(s.scalar(select(func.count()).select_from(ExchangeNonce)) or 0)

    with db.session() as s:  # a request that expires now
        s.add(ExchangeNonce(signer="0x" + "11" * 20, nonce="1", expires_at=clock.utc()))
    keeper = Housekeeper(svc)
    keeper.run_once()  # the first round cleans the spool too
    assert nonces() == 1  # within the grace (60 s) after its expiry
    old = spool / "upload-old.part"
    old.write_bytes(b"left by a crash")
    os.utime(old, (clock.now() - 7200, clock.now() - 7200))
    clock.advance(61)
    keeper.run_once()
    assert nonces() == 0
    assert old.exists()  # the spool's turn comes every SPOOL_EVERY seconds only
    clock.advance(SPOOL_EVERY - 62)
    keeper.run_once()
    assert old.exists()
    clock.advance(1)
    keeper.run_once()
    assert not old.exists()
