"""Bulk publishing (``publish_many``, what ``record import`` sends) on a real chain
(this module's own anvil): new records are accepted, stored and parked together
in three database transactions for the whole batch, then anchored by their batches
like any publish; each record keeps its own key, so a resumed import replays
instead of publishing twice; one bad record does not stop the others; the
unusual cases (a key seen before, twice in one batch, a new version, an unknown
category) get the single path's exact answers; nothing is left in the spool."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event

from fakeclock import ManualClock
from govshare.broker.errors import IdempotencyConflict, UnknownCategory
from govshare.broker.publish import (
    MAX_BULK,
    BulkItem,
    PublishOutcome,
    PublishRequest,
    StagedUpload,
    publish_many,
    stage_file,
)
from govshare.broker.services import BrokerServices
from govshare.errors import GovShareError, InputError
from integration.world import (
    CATEGORY,
    World,
    anchored_record,
    make_services,
    wait_for,
)

pytestmark = pytest.mark.integration


def _services(world: World, **limits: Any) -> Iterator[BrokerServices]:
    svc = make_services(world, "TAX", **limits)
    clock = ManualClock()
    svc.clock = clock
    svc.outbox.clock = clock
    try:
        yield svc
    finally:
        svc.close()
        svc.store.close()
        svc.db.close()


@pytest.fixture
def tax(world: World) -> Iterator[BrokerServices]:
    """TAX's broker in batch mode (batches of up to 256; no batcher thread: the
    test closes batches)."""
    yield from _services(world)


def staged(svc: BrokerServices, data: bytes) -> StagedUpload:
    return stage_file(svc, io.BytesIO(data))


def item(svc: BrokerServices, data: bytes, key: str, **meta: Any) -> BulkItem:
    meta.setdefault("category", CATEGORY)
    return BulkItem(key, staged(svc, data), PublishRequest(**meta))


def anchor_all(svc: BrokerServices) -> None:
    while svc.record_batcher.run_once(force=True).action == "submitted":
        pass


def outcome(res: PublishOutcome | GovShareError) -> PublishOutcome:
    assert isinstance(res, PublishOutcome), res
    return res


def spool_left(svc: BrokerServices) -> list[str]:
    return sorted(p.name for p in svc.spool.iterdir())


def test_a_batch_is_accepted_together_and_each_record_anchored_and_readable(
    tax: BrokerServices,
) -> None:
    datas = [os.urandom(4096) for _ in range(40)]
    items = [
        item(tax, d, f"bulk-{i}", subject=f"9111000071092841{i:02d}") for i, d in enumerate(datas)
    ]
    outs = [outcome(r) for r in publish_many(tax, "user:1", items)]
    assert all(o.created and o.anchoring for o in outs), outs[0]
    assert len({o.record_id for o in outs}) == 40
    assert spool_left(tax) == []  # uploads and envelopes: gone once stored
    anchor_all(tax)
    for o in outs:
        view = tax.outbox.get(o.operation_id)
        assert view.state.value == "done", view
        anchor = anchored_record(tax, str(o.record_id))
        assert anchor.department == "TAX" and anchor.category == CATEGORY
        assert anchor.subject_ref is not None
    # every record decrypts to its file, from the store
    from govshare.broker.fetch import fetch

    for o, data in zip(outs[:5], datas[:5], strict=True):
        dst = tax.spool.parent / f"check-{o.record_id}"
        res = fetch(tax, str(o.record_id), dst)
        assert dst.read_bytes() == data and res.source == "own"
        dst.unlink()


def test_a_batch_costs_three_database_transactions_whatever_its_size(tax: BrokerServices) -> None:
    publish_many(tax, "user:1", [item(tax, b"warm-up", "tx-warm")])  # the catalog is cached
    begins: list[str] = []

    def on_begin(_conn: Any) -> None:
        begins.append("broker")

    event.listen(tax.db.engine, "begin", on_begin)
    pins = tax.store._pins  # type: ignore[attr-defined]
    real_write = pins._write

    def counted_write() -> Any:
        begins.append("pins")
        return real_write()

    pins._write = counted_write
    try:
        items = [item(tax, os.urandom(4096), f"tx-{i}") for i in range(64)]
        outs = publish_many(tax, "user:1", items)
    finally:
        event.remove(tax.db.engine, "begin", on_begin)
        pins._write = real_write
    assert all(outcome(o).anchoring for o in outs)
    # one read of the keys seen before, one write to accept all, one to record
    # all stored; the pin index once for all
    assert begins == ["broker", "broker", "pins", "broker"], begins
    assert begins.count("pins") == 1, begins


def test_a_resumed_batch_replays_every_record_and_encrypts_nothing(tax: BrokerServices) -> None:
    datas = [os.urandom(1024) for _ in range(6)]
    first = [
        outcome(r)
        for r in publish_many(
            tax, "user:1", [item(tax, d, f"again-{i}") for i, d in enumerate(datas)]
        )
    ]
    again = [
        outcome(r)
        for r in publish_many(
            tax, "user:1", [item(tax, d, f"again-{i}") for i, d in enumerate(datas)]
        )
    ]
    assert [o.operation_id for o in again] == [o.operation_id for o in first]
    assert [o.record_id for o in again] == [o.record_id for o in first]
    assert not any(o.created for o in again)
    assert spool_left(tax) == []
    # the same key with another file: refused for that record only
    mixed = publish_many(
        tax, "user:1", [item(tax, b"another file", "again-0"), item(tax, b"new", "again-new")]
    )
    assert isinstance(mixed[0], IdempotencyConflict)
    assert outcome(mixed[1]).created
    assert spool_left(tax) == []


def test_one_bad_record_does_not_stop_the_others(tax: BrokerServices) -> None:
    items = [
        item(tax, b"fine 1", "mixed-1"),
        item(tax, b"no category", "mixed-2", category="no-such-category"),
        item(tax, b"bad subject", "mixed-3", subject="9" * 5000),
        item(tax, b"bad key", "has space"),
        item(tax, b"fine 2", "mixed-5"),
        item(tax, b"twice", "mixed-1"),  # the key of the first, another file
    ]
    res = publish_many(tax, "user:1", items)
    assert outcome(res[0]).created and outcome(res[4]).created
    assert isinstance(res[1], UnknownCategory)
    assert isinstance(res[2], InputError)
    assert isinstance(res[3], InputError) and "idempotency key" in res[3].message.lower()
    assert isinstance(res[5], IdempotencyConflict)
    assert spool_left(tax) == []


def test_the_same_key_twice_in_one_batch_is_one_record(tax: BrokerServices) -> None:
    data = os.urandom(512)
    a, b = publish_many(tax, "user:1", [item(tax, data, "dup-key"), item(tax, data, "dup-key")])
    assert outcome(a).created and not outcome(b).created
    assert outcome(a).record_id == outcome(b).record_id


def test_a_new_version_in_a_batch_takes_the_single_paths_checks(tax: BrokerServices) -> None:
    (v1,) = publish_many(tax, "user:1", [item(tax, b"version 1", "ver-1")])
    rid = str(outcome(v1).record_id)
    v2, rival = publish_many(
        tax,
        "user:1",
        [
            item(tax, b"version 2", "ver-2", supersedes=rid),
            item(tax, b"rival", "ver-3", supersedes=rid),
        ],
    )
    assert outcome(v2).created
    assert isinstance(rival, InputError) and "newer version" in rival.message
    anchor_all(tax)
    leaf = anchored_record(tax, str(outcome(v2).record_id))
    assert leaf.previous_record_id == bytes.fromhex(rid[2:])


def test_a_request_over_the_bound_or_outside_the_spool_keeps_nothing(tax: BrokerServices) -> None:
    many = [item(tax, b"x", f"over-{i}") for i in range(MAX_BULK + 1)]
    with pytest.raises(InputError, match=str(MAX_BULK)):
        publish_many(tax, "user:1", many)
    assert spool_left(tax) == []
    outside = BulkItem("outside", StagedUpload("../escape", "00" * 32, 1), PublishRequest(CATEGORY))
    (res,) = publish_many(tax, "user:1", [outside])
    assert isinstance(res, InputError) and "spool" in res.message
    assert tax.outbox.find("user:1", "outside") is None


def test_without_batching_each_record_is_anchored_on_its_own(world: World) -> None:
    for svc in _services(world, batch_max_records=1):
        outs = [
            outcome(r)
            for r in publish_many(
                svc, "user:1", [item(svc, os.urandom(256), f"single-{i}") for i in range(3)]
            )
        ]
        assert all(o.state.value == "done" and not o.anchoring for o in outs)
        for o in outs:
            assert svc.ledger.records.record_exists(str(o.record_id))


def test_envelopes_are_synced_before_the_transaction_that_names_them(
    tax: BrokerServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every envelope of the request is fsynced, back to back, before the one
    transaction that accepts them begins; a failed fsync stops the request with
    nothing accepted and nothing left in the spool."""
    import govshare.broker.publish as pub

    publish_many(tax, "user:1", [item(tax, b"warm-up", "sync-warm")])  # the catalog is cached
    events: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        name = os.readlink(f"/proc/self/fd/{fd}")
        events.append("envelope" if name.endswith(".enc") else "other")
        real_fsync(fd)

    def on_begin(_conn: Any) -> None:
        events.append("begin")

    items = [item(tax, os.urandom(4096), f"s-{i}") for i in range(8)]
    monkeypatch.setattr(pub.os, "fsync", fsync)
    event.listen(tax.db.engine, "begin", on_begin)
    try:
        outs = publish_many(tax, "user:1", items)
    finally:
        event.remove(tax.db.engine, "begin", on_begin)
    assert all(outcome(o).anchoring for o in outs)
    accept = events.index("begin", 1)  # after the read of the keys seen before
    assert events[1:accept].count("envelope") == 8, events
    assert "envelope" not in events[accept:], events

    def failing(fd: int) -> None:
        raise OSError(5, "Input/output error")

    items = [item(tax, os.urandom(4096), f"f-{i}") for i in range(4)]
    monkeypatch.setattr(pub.os, "fsync", failing)
    with pytest.raises(OSError):
        publish_many(tax, "user:1", items)
    assert all(tax.outbox.find("user:1", f"f-{i}") is None for i in range(4))
    assert spool_left(tax) == []


# -- concurrent single publishes, accepted together (PublishGroup) ---------------------------


def test_publishes_that_arrive_while_a_group_is_accepted_go_together(
    tax: BrokerServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first publish leads; twelve that arrive while it is held in its
    transaction wait, then go as one group of twelve (one publish_many call):
    each gets its own record and answer, and the same key twice is one record."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import govshare.broker.publish as pub
    from govshare.broker.publish import publish

    group = tax.publish_group
    assert group is not None
    publish(tax, "user:1", "group-warm", staged(tax, b"warm"), PublishRequest(CATEGORY))
    calls: list[int] = []
    hold, entered = threading.Event(), threading.Event()
    real = pub.publish_many

    def counted(svc: BrokerServices, user: Any, items: Any, **kw: Any) -> Any:
        calls.append(len(items))
        if len(calls) == 1:
            entered.set()
            assert hold.wait(30)
        return real(svc, user, items, **kw)

    monkeypatch.setattr(pub, "publish_many", counted)
    datas = {f"g-{i}": os.urandom(4096) for i in range(11)}
    datas["g-dup"] = datas["g-0"]
    ups = {k: staged(tax, d) for k, d in datas.items()}
    keys = ["g-first", *datas, "g-0"]  # g-0 twice: one record
    ups["g-first"] = staged(tax, os.urandom(4096))
    ups2 = staged(tax, datas["g-0"])

    def one(key: str, up: StagedUpload) -> Any:
        return publish(tax, "user:1", key, up, PublishRequest(CATEGORY))

    with ThreadPoolExecutor(16) as pool:
        first = pool.submit(one, "g-first", ups["g-first"])
        assert entered.wait(30)
        rest = [pool.submit(one, k, ups[k]) for k in keys[1:-1]]
        rest.append(pool.submit(one, "g-0", ups2))
        wait_for(lambda: len(group._queue) == 13, "the others did not queue")
        hold.set()
        outs = [first.result(), *(f.result() for f in rest)]
    assert calls == [1, 13], calls  # the leader alone, then everyone who waited
    assert all(o.anchoring for o in outs)
    assert outs[1].record_id == outs[-1].record_id  # g-0 twice: the same record
    assert outs[1].created != outs[-1].created  # one made it, the other is its replay
    assert sum(1 for o in outs if o.created) == 13
    assert len({o.record_id for o in outs}) == 13
    anchor_all(tax)
    assert all(tax.outbox.get(o.operation_id).state.value == "done" for o in outs)
    assert spool_left(tax) == []


def test_a_refusal_in_a_group_is_its_own_and_a_failed_group_lets_the_next_lead(
    tax: BrokerServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    import govshare.broker.publish as pub
    from govshare.broker.publish import publish

    bad = staged(tax, b"x")
    with pytest.raises(UnknownCategory):
        publish(tax, "user:1", "g-bad", bad, PublishRequest("no-such-category"))
    assert tax.outbox.find("user:1", "g-bad") is None

    def broken(*_a: Any, **_k: Any) -> Any:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pub, "publish_many", broken)
    with pytest.raises(OSError, match="No space"):
        publish(tax, "user:1", "g-broken", staged(tax, b"y"), PublishRequest(CATEGORY))
    monkeypatch.undo()
    group = tax.publish_group
    assert group is not None and not group._busy and group._queue == []
    ok = publish(tax, "user:1", "g-after", staged(tax, b"z"), PublishRequest(CATEGORY))
    assert ok.created and ok.anchoring
