"""The durable operation engine (outbox)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from fakeclock import ManualClock
from govshare.broker.db import Database, Operation, OperationStep, OpState, StepState
from govshare.broker.errors import IdempotencyConflict
from govshare.broker.outbox import (
    Outbox,
    OutboxWorker,
    RetryPolicy,
    StepContext,
    fingerprint,
)
from govshare.errors import ChainUnavailable, ContractReverted, InputError

from . import outbox_child

pytestmark = pytest.mark.integration  # starts processes (see tests/conftest.py)


CHILD = Path(outbox_child.__file__)
FAST = RetryPolicy(max_attempts=3, base_delay=0.01, factor=2.0)


def a_clock() -> ManualClock:
    return ManualClock(datetime(2026, 3, 1, 9, 0, tzinfo=UTC).timestamp())


def count_ops(db: Database) -> int:
    with db.session(readonly=True) as s:
        return int(s.scalar(select(func.count()).select_from(Operation)) or 0)


def recorder(calls: list[str], name: str, out: dict[str, Any] | None = None) -> Any:
    def run(ctx: StepContext) -> dict[str, Any]:
        calls.append(name)
        return out if out is not None else {name: len(calls)}

    return run


def three_steps(outbox: Outbox, calls: list[str]) -> None:
    outbox.register("demo", [(n, recorder(calls, n)) for n in ("encrypt", "store", "anchor")])


# -- the happy path and what is recorded -----------------------------------------


def test_steps_run_in_order_and_see_earlier_results(db: Database) -> None:
    seen: list[dict[str, Any]] = []

    def step(name: str) -> Any:
        def run(ctx: StepContext) -> dict[str, Any]:
            seen.append(dict(ctx.results))
            assert ctx.payload == {"file": "x", "tags": ["a", "b"]}
            assert (ctx.attempt, ctx.resumed) == (1, False)
            return {"by": name}

        return run

    outbox = Outbox(db)
    outbox.register("demo", [("one", step("one")), ("two", step("two"))])
    # a tuple in the payload is stored as JSON: the handler sees what a resume would see
    sub = outbox.submit("demo", "k", "system", "0" * 64, {"file": "x", "tags": ("a", "b")})
    assert sub.created
    op = sub.operation
    assert op.state is OpState.DONE and op.result == {"by": "two"} and op.finished_at
    assert seen == [{}, {"one": {"by": "one"}}]
    full = outbox.get(op.id, with_steps=True)
    assert [(s.name, s.state, s.attempts) for s in full.steps] == [
        ("one", StepState.DONE, 1),
        ("two", StepState.DONE, 1),
    ]


def test_intent_is_committed_before_the_handler_runs(db: Database) -> None:
    """While a handler runs, another connection already sees the step as started."""
    observed: list[tuple[str, str | None, str]] = []

    def spy(ctx: StepContext) -> dict[str, Any]:
        other = Database.open(db.engine.url, migrate=False)
        try:
            with other.session(readonly=True) as s:
                op = s.get(Operation, ctx.operation_id)
                st = s.get(OperationStep, (ctx.operation_id, 1))
                assert op is not None and st is not None
                observed.append((op.state, op.step_name, st.state))
        finally:
            other.close()
        return {}

    outbox = Outbox(db)
    outbox.register("demo", [("first", lambda ctx: {}), ("second", spy)])
    outbox.submit("demo", "k", "system", "0" * 64, {})
    assert observed == [("running", "second", "started")]


def test_result_builder(db: Database) -> None:
    outbox = Outbox(db)
    outbox.register(
        "demo",
        [("a", lambda c: {"cid": "bafy"}), ("b", lambda c: {"tx": "0x1"})],
        result=lambda r: {"cid": r["a"]["cid"], "tx": r["b"]["tx"]},
    )
    op = outbox.submit("demo", "k", "system", "0" * 64, {}).operation
    assert op.result == {"cid": "bafy", "tx": "0x1"}


# -- idempotency -------------------------------------------------------------------


def test_same_key_same_body_returns_the_original(db: Database) -> None:
    calls: list[str] = []
    outbox = Outbox(db)
    three_steps(outbox, calls)
    body = {"category": "tax", "sha256": "ab" * 32}
    first = outbox.submit("demo", "key-1", "user:1", fingerprint(body), body)
    again = outbox.submit(
        "demo", "key-1", "user:1", fingerprint(dict(reversed(body.items()))), body
    )
    assert first.created and not again.created
    assert again.operation.id == first.operation.id
    assert again.operation.result == first.operation.result
    assert calls == ["encrypt", "store", "anchor"]
    assert count_ops(db) == 1


def test_same_key_different_body_is_a_conflict_and_changes_nothing(db: Database) -> None:
    calls: list[str] = []
    outbox = Outbox(db)
    three_steps(outbox, calls)
    first = outbox.submit("demo", "key-1", "user:1", fingerprint({"n": 1}), {"n": 1})
    with pytest.raises(IdempotencyConflict) as exc:
        outbox.submit("demo", "key-1", "user:1", fingerprint({"n": 2}), {"n": 2})
    assert exc.value.code == "idempotency.conflict" and exc.value.status == 409
    assert count_ops(db) == 1
    assert outbox.get(first.operation.id).payload == {"n": 1}
    assert len(calls) == 3


def test_same_key_for_another_kind_is_a_conflict(db: Database) -> None:
    outbox = Outbox(db)
    outbox.register("a", [("s", lambda c: {})])
    outbox.register("b", [("s", lambda c: {})])
    outbox.submit("a", "key", "user:1", "0" * 64, {})
    with pytest.raises(IdempotencyConflict):
        outbox.submit("b", "key", "user:1", "0" * 64, {})


def test_keys_are_per_user(db: Database) -> None:
    outbox = Outbox(db)
    outbox.register("demo", [("s", lambda c: {"who": c.principal})])
    a = outbox.submit("demo", "key", "user:1", fingerprint({}), {})
    b = outbox.submit("demo", "key", "user:2", fingerprint({}), {})
    assert a.created and b.created and a.operation.id != b.operation.id
    assert b.operation.result == {"who": "user:2"}


def test_fifty_concurrent_submits_of_one_key_make_one_operation(db: Database) -> None:
    calls: list[str] = []
    lock = threading.Lock()

    def step(name: str) -> Any:
        def run(ctx: StepContext) -> dict[str, Any]:
            with lock:
                calls.append(name)
            return {}

        return run

    outbox = Outbox(db)
    outbox.register("demo", [(n, step(n)) for n in ("encrypt", "store", "anchor")])
    body = {"file": "report.pdf"}
    barrier = threading.Barrier(50)
    subs: list[Any] = []
    errors: list[BaseException] = []

    def submit() -> None:
        try:
            barrier.wait()
            sub = outbox.submit("demo", "same-key", "user:7", fingerprint(body), body)
            with lock:
                subs.append(sub)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=submit) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(subs) == 50
    assert sum(s.created for s in subs) == 1
    assert len({s.operation.id for s in subs}) == 1
    assert count_ops(db) == 1
    assert Counter(calls) == {"encrypt": 1, "store": 1, "anchor": 1}


def test_bad_keys_and_payloads(db: Database) -> None:
    outbox = Outbox(db)
    outbox.register("demo", [("s", lambda c: {})])
    for key in ["", "has space", "x" * 256, "é"]:
        with pytest.raises(InputError):
            outbox.submit("demo", key, "system", "0" * 64, {})
    with pytest.raises(TypeError):
        outbox.submit("demo", "k", "system", "0" * 64, {"b": b"bytes"})
    with pytest.raises(ValueError, match="unknown operation kind"):
        outbox.submit("nope", "k", "system", "0" * 64, {})
    with pytest.raises(ValueError, match="fingerprint"):
        outbox.submit("demo", "k", "system", "not-a-hash", {})
    assert count_ops(db) == 0


# -- failures and retries ----------------------------------------------------------


def test_transient_errors_are_retried_with_backoff(db: Database) -> None:
    sleeps: list[float] = []
    failures = [ChainUnavailable("node down"), ChainUnavailable("node down")]
    seen: list[tuple[int, bool]] = []

    def anchor(ctx: StepContext) -> dict[str, Any]:
        seen.append((ctx.attempt, ctx.resumed))
        if failures:
            raise failures.pop(0)
        return {"tx": "0xabc"}

    outbox = Outbox(db, retry=RetryPolicy(max_attempts=5, base_delay=0.5), sleep=sleeps.append)
    outbox.register("demo", [("anchor", anchor)])
    op = outbox.submit("demo", "k", "system", "0" * 64, {}).operation
    assert op.state is OpState.DONE and op.result == {"tx": "0xabc"}
    assert sleeps == [0.5, 1.0]
    assert seen == [(1, False), (2, True), (3, True)]


def test_transient_errors_are_bounded(db: Database) -> None:
    sleeps: list[float] = []

    def anchor(ctx: StepContext) -> dict[str, Any]:
        raise ChainUnavailable("The chain node at http://127.0.0.1:8545 is not answering.")

    outbox = Outbox(db, retry=FAST, sleep=sleeps.append)
    outbox.register("demo", [("anchor", anchor)])
    op = outbox.submit("demo", "k", "system", "0" * 64, {}).operation
    assert op.state is OpState.FAILED
    assert op.error is not None
    assert op.error["code"] == "chain.unavailable" and op.error["retryable"] is False
    assert op.error["step"] == "anchor"
    assert len(sleeps) == FAST.max_attempts - 1


def test_permanent_errors_fail_at_once(db: Database) -> None:
    calls: list[str] = []

    def anchor(ctx: StepContext) -> dict[str, Any]:
        calls.append("anchor")
        raise ContractReverted("Already anchored by another department.", reason="Taken")

    outbox = Outbox(db, retry=FAST)
    outbox.register("demo", [("store", lambda c: {}), ("anchor", anchor)])
    op = outbox.submit("demo", "k", "system", "0" * 64, {}).operation
    assert op.state is OpState.FAILED and calls == ["anchor"]
    assert op.error is not None and op.error["code"] == "chain.reverted"
    # a retry with the same key returns the failure, it does not run again
    again = outbox.submit("demo", "k", "system", "0" * 64, {})
    assert not again.created and again.operation.state is OpState.FAILED and calls == ["anchor"]


def test_unexpected_errors_are_logged_with_an_id_not_returned(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    def boom(ctx: StepContext) -> dict[str, Any]:
        raise RuntimeError("secret internals /var/lib/key")

    outbox = Outbox(db)
    outbox.register("demo", [("s", boom)])
    with caplog.at_level(logging.ERROR, logger="govshare.broker.outbox"):
        op = outbox.submit("demo", "k", "system", "0" * 64, {}).operation
    assert op.state is OpState.FAILED and op.error is not None
    assert op.error["code"] == "internal"
    assert "secret" not in json.dumps(op.error)
    assert op.error["error_id"] in caplog.text


def test_without_wait_a_transient_error_leaves_it_pending_for_later(db: Database) -> None:
    clock = a_clock()
    down = [True]

    def anchor(ctx: StepContext) -> dict[str, Any]:
        if down[0]:
            raise ChainUnavailable("down")
        return {"ok": True}

    outbox = Outbox(db, retry=RetryPolicy(max_attempts=5, base_delay=10), clock=clock)
    outbox.register("demo", [("anchor", anchor)])
    op = outbox.submit("demo", "k", "system", "0" * 64, {}, wait=False).operation
    assert op.state is OpState.PENDING
    assert op.next_attempt_at == clock.utc() + timedelta(seconds=10)
    assert op.error is not None and op.error["retryable"] is True
    down[0] = False
    assert outbox.resume_pending() == []  # not due yet
    clock.advance(9)
    assert outbox.resume_pending() == []  # a second early: still not due
    clock.advance(2)
    [done] = outbox.resume_pending()
    assert done.state is OpState.DONE and done.error is None


def test_worker_completes_pending_operations(db: Database) -> None:
    outbox = Outbox(db)
    outbox.register("demo", [("s", lambda c: {"ok": 1})])
    op = outbox.submit("demo", "k", "system", "0" * 64, {}, run=False).operation
    assert op.state is OpState.PENDING
    worker = OutboxWorker(outbox, interval=0.05).start()
    try:
        for _ in range(100):
            if outbox.get(op.id).state is OpState.DONE:
                break
            threading.Event().wait(0.05)
    finally:
        worker.stop()
    assert outbox.get(op.id).result == {"ok": 1}


# -- crashes -------------------------------------------------------------------------


def run_child(db_path: Path, work: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CHILD), str(db_path), str(work), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("point", ["between", "before", "after"])
@pytest.mark.parametrize("step", outbox_child.STEPS)
def test_crash_at_each_step_then_resume_has_each_effect_once(
    tmp_path: Path, step: str, point: str
) -> None:
    db_path, work = tmp_path / "broker.db", tmp_path
    crashed = run_child(db_path, work, "submit", step, point)
    assert crashed.returncode == outbox_child.CRASH_EXIT, crashed.stderr

    db = Database.open(f"sqlite:///{db_path}")
    try:
        [op] = Outbox(db).pending()
        assert op.state is OpState.RUNNING  # the dead process still "holds" it
    finally:
        db.close()

    resumed = run_child(db_path, work, "resume")
    assert resumed.returncode == 0, resumed.stderr
    [line] = resumed.stdout.splitlines()
    assert json.loads(line)["state"] == "done"

    effects = (work / "effects").read_text().splitlines()
    assert [e.split(":")[0] for e in effects] == list(outbox_child.STEPS)  # each exactly once
    calls = [json.loads(c) for c in (work / "calls").read_text().splitlines()]
    crashed_step_calls = [c for c in calls if c["step"] == step]
    if point == "between":  # intent never recorded: the step runs once, fresh
        assert crashed_step_calls == [{"step": step, "resumed": False, "at": 1}]
    else:  # started before the crash: re-run once, told it is a resumption
        assert crashed_step_calls == [
            {"step": step, "resumed": False, "at": 1},
            {"step": step, "resumed": True, "at": 2},
        ]

    # a client retrying with the same key gets the original operation back
    db = Database.open(f"sqlite:///{db_path}")
    try:
        outbox = outbox_child.build(db, work)
        body = outbox_child.PAYLOAD
        again = outbox.submit("demo", outbox_child.KEY, "user:1", fingerprint(body), body)
        assert not again.created and again.operation.state is OpState.DONE
        assert count_ops(db) == 1
    finally:
        db.close()
    assert len((work / "effects").read_text().splitlines()) == 3


def test_a_step_that_keeps_crashing_is_given_up(tmp_path: Path) -> None:
    db_path, work = tmp_path / "broker.db", tmp_path
    assert run_child(db_path, work, "submit", "b", "before").returncode == outbox_child.CRASH_EXIT
    db = Database.open(f"sqlite:///{db_path}")
    try:
        # two more crashes of step b (max_attempts=3 in the child), simulated in-process
        outbox = outbox_child.build(db, work)
        op_id = outbox.pending()[0].id
        for _ in range(2):
            outbox.recover()
            with db.session() as s:  # what a crash mid-step leaves behind
                s.execute(
                    update(OperationStep)
                    .where(OperationStep.operation_id == op_id, OperationStep.step_index == 1)
                    .values(attempts=OperationStep.attempts + 1)
                )
        outbox.recover()
        [op] = outbox.resume_pending()
        assert op.state is OpState.FAILED and op.error is not None
        assert op.error["code"] == "operation.gave_up" and op.error["step"] == "b"
    finally:
        db.close()


def test_an_expired_lease_is_taken_over(db: Database) -> None:
    clock = a_clock()
    calls: list[str] = []
    outbox = Outbox(db, clock=clock, lease=timedelta(minutes=1))
    three_steps(outbox, calls)
    op = outbox.submit("demo", "k", "system", "0" * 64, {}, run=False).operation
    with db.session() as s:  # another worker claimed it, then vanished
        s.execute(
            update(Operation)
            .where(Operation.id == op.id)
            .values(state="running", lease_owner="other", lease_until=clock.utc())
        )
    assert outbox.resume_pending() == []  # lease still valid at this instant
    clock.advance(1)
    [done] = outbox.resume_pending()
    assert done.state is OpState.DONE and calls == ["encrypt", "store", "anchor"]


def test_a_running_operation_is_not_run_twice(db: Database) -> None:
    """A second run() while one holds the lease returns without running a step."""
    calls: list[str] = []
    outbox = Outbox(db)

    def first(ctx: StepContext) -> dict[str, Any]:
        calls.append("first")
        inner = outbox.run(ctx.operation_id)
        assert inner.state is OpState.RUNNING
        return {}

    outbox.register("demo", [("first", first)])
    op = outbox.submit("demo", "k", "system", "0" * 64, {}).operation
    assert op.state is OpState.DONE and calls == ["first"]


def test_advance_many_moves_every_held_operation_in_one_transaction(db: Database) -> None:
    """A bulk import's 600 operations (more than one query's worth of ids): each
    held one moves on by the steps given and is parked; one that another worker
    took over is answered None and left as it was."""
    from govshare.broker.outbox import Started

    clock = a_clock()
    calls: list[str] = []
    outbox = Outbox(db, clock=clock)
    three_steps(outbox, calls)
    started = [
        Started("demo", f"k{i}", "0" * 64, {"n": i}, f"op{i:04d}", [{"encrypt": i}])
        for i in range(600)
    ]
    held = outbox.submit_started_many("system", started)
    assert held is not None and {v.state for v in held} == {OpState.RUNNING}
    with db.session() as s:  # another worker took op0007 over
        s.execute(update(Operation).where(Operation.id == "op0007").values(lease_owner="other"))
    with pytest.raises(ValueError, match="last step"):  # nothing changes
        outbox.advance_many({"op0001": [{"store": 1}, {"anchor": 1}]})
    views = outbox.advance_many({st.op_id: [{"store": st.payload["n"]}] for st in started}, park=30)
    assert views["op0007"] is None
    moved = [v for k, v in views.items() if k != "op0007"]
    assert len(moved) == 599 and all(v is not None for v in moved)
    with db.session(readonly=True) as s:
        ops = {op.id: op for op in s.scalars(select(Operation))}
        steps = Counter(s.scalars(select(OperationStep.operation_id)))
    assert ops["op0007"].state == OpState.RUNNING.value and ops["op0007"].step == 1
    assert steps["op0007"] == 1
    for op_id in ("op0000", "op0001", "op0599"):
        op = ops[op_id]
        assert (op.state, op.step, op.step_name) == (OpState.PENDING.value, 2, "anchor")
        assert op.lease_owner is None and steps[op_id] == 2
        assert op.next_attempt_at is not None
        assert op.next_attempt_at.replace(tzinfo=UTC) == clock.utc() + timedelta(seconds=30)
    assert calls == []  # advancing records steps done elsewhere; it runs none
