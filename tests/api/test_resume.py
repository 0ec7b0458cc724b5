"""Resumable fetches (issue 14): a transfer cut mid-way continues the same
exchange from the byte it stopped at, without spending another use of the
grant; the owner refuses what is not the requester's, what is too old, a grant
revoked since and a range that is not one. Three brokers over real HTTP on this
module's own anvil; cuts come from the fault-injection module; the owner's
clock is moved, never waited for."""

from __future__ import annotations

import logging
import os
from typing import Any

import httpx
import pytest

from fakeclock import ManualClock
from govshare.broker import faults
from govshare.broker.acks import FIRST_RETRY, AckSender
from govshare.broker.consent import approve, revoke
from govshare.broker.exchange import (
    H_EXCHANGE,
    H_SIGNATURE,
    ExchangeAck,
    ExchangeRequest,
    ExchangeResume,
)
from govshare.broker.receipt_batches import ReceiptBatcher
from govshare.broker.serve_exchange import serve_exchange
from govshare.errors import DatabaseUnavailable
from integration.world import CATEGORY, Broker, World, wait_for

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"
SIZE = 1_000_000  # four store blocks: the owner streams it in parts


def problem(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM), r.headers
    body: dict[str, Any] = r.json()
    assert body["code"] == code, body
    return body


def published(b: Broker, data: bytes, key: str) -> str:
    r = b.client.post(
        "/v1/records",
        headers={**b.auth(), "Idempotency-Key": key},
        files={"file": ("c.pdf", data, "application/pdf")},
        data={"category": CATEGORY},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["record_id"])


def granted(world: World, requester: Broker, rid: str, *, uses: int = 1) -> int:
    r = requester.client.post(
        "/v1/requests",
        headers=requester.auth(),
        json={"owner": "TAX", "record_id": rid, "purpose": "licence"},
    )
    assert r.status_code == 201, r.text
    gid = int(r.json()["request_id"])
    approve(world.ledger, world["TAX"].admin, gid, max_uses=uses, expires_in=3600)
    return gid


def content(b: Broker, rid: str, headers: dict[str, str] | None = None, **params: object) -> Any:
    return b.client.get(
        f"/v1/records/{rid}/content", headers={**b.auth(), **(headers or {})}, params=params
    )


def owner_receipts(tax: Broker, gid: int) -> list[dict[str, Any]]:
    r = tax.client.get("/v1/receipts", headers=tax.auth("auditor"), params={"grant": gid})
    assert r.status_code == 200, r.text
    return list(r.json())


@pytest.fixture
def record(world: World, tax: Broker, market: Broker) -> tuple[str, bytes, int]:
    data = os.urandom(SIZE)
    rid = published(tax, data, f"resume-{os.urandom(4).hex()}")
    return rid, data, granted(world, market, rid, uses=1)


def test_a_cut_exchange_resumes_from_its_byte_and_a_single_use_grant_survives(
    world: World,
    tax: Broker,
    market: Broker,
    record: tuple[str, bytes, int],
    caplog: pytest.LogCaptureFixture,
) -> None:
    rid, data, gid = record
    faults.fail_once("exchange.mid_stream", faults.TransferCut("test"))
    with caplog.at_level(logging.INFO):
        r = content(market, rid)
    assert r.status_code == 200, r.text
    assert r.content == data  # the plaintext verified: CID and anchored hash
    resumed = [x.getMessage() for x in caplog.records if "resumed exchange" in x.getMessage()]
    assert len(resumed) == 1, resumed
    offset = int(resumed[0].split("from byte ")[1].split()[0])
    assert 0 < offset < SIZE  # continued where it stopped: nothing received is sent again
    xid = r.headers[H_EXCHANGE]
    assert xid in resumed[0]

    # one exchange, one receipt, one use: on both sides and, once anchored, on chain
    assert len(owner_receipts(tax, gid)) == 1
    tax.runtime.batcher.run_once(drive=True, force=True)
    assert world.ledger.access.get_request(gid).used_count == 1
    # the single use is spent by that one fetch: another is a new exchange, refused
    problem(content(market, rid), 403, "grant.quota_exhausted")


def test_the_clerk_continues_an_exchange_with_a_range_and_no_new_use(
    tax: Broker, market: Broker, record: tuple[str, bytes, int]
) -> None:
    rid, data, gid = record
    first = content(market, rid)
    assert first.status_code == 200 and first.headers["accept-ranges"] == "bytes"
    xid = first.headers[H_EXCHANGE]
    n = 300_001
    r = content(market, rid, {H_EXCHANGE: xid, "Range": f"bytes={n}-"})
    assert r.status_code == 206, r.text
    assert r.headers["content-range"] == f"bytes {n}-{SIZE - 1}/{SIZE}"
    assert r.content == data[n:]
    assert r.headers["govshare-content-sha256"] == first.headers["govshare-content-sha256"]
    # ?exchange= works too, a closed range and a suffix range as well
    r = content(market, rid, {"Range": "bytes=10-19"}, exchange=xid)
    assert (r.status_code, r.content) == (206, data[10:20])
    r = content(market, rid, {"Range": "bytes=-5"}, exchange=xid)
    assert (r.status_code, r.content) == (206, data[-5:])
    # the whole again, through the exchange (no Range)
    assert content(market, rid, {H_EXCHANGE: xid}).content == data
    assert len(owner_receipts(tax, gid)) == 1  # no use spent by any of these


def test_a_cut_answer_to_the_clerk_is_continued_from_its_byte(
    market: Broker, record: tuple[str, bytes, int]
) -> None:
    rid, data, _gid = record
    faults.fail_once("content.mid_stream", faults.TransferCut("test"))
    got = b""
    with (
        pytest.raises(httpx.RemoteProtocolError),
        market.client.stream("GET", f"/v1/records/{rid}/content", headers=market.auth()) as r,
    ):
        xid = r.headers[H_EXCHANGE]
        for chunk in r.iter_bytes():
            got += chunk
    assert 0 < len(got) < SIZE
    rest = content(market, rid, {H_EXCHANGE: xid, "Range": f"bytes={len(got)}-"})
    assert rest.status_code == 206, rest.text
    assert got + rest.content == data


def test_bad_ranges_are_refused_and_spend_nothing(
    tax: Broker, market: Broker, record: tuple[str, bytes, int]
) -> None:
    rid, _data, gid = record
    # a range of another department's record without its exchange: refused first
    body = problem(content(market, rid, {"Range": "bytes=0-"}), 416, "exchange.range_invalid")
    assert H_EXCHANGE in body["detail"]
    assert owner_receipts(tax, gid) == []
    xid = content(market, rid).headers[H_EXCHANGE]
    for bad in ("bytes=0-1,5-9", "bytes=9-3", "items=0-", "bytes=", f"bytes={SIZE}-", "bytes=-0"):
        body = problem(content(market, rid, {H_EXCHANGE: xid, "Range": bad}), 416,
                       "exchange.range_invalid")  # fmt: skip
        assert "Traceback" not in body["detail"]
    assert len(owner_receipts(tax, gid)) == 1
    assert list(market.svc.spool.iterdir()) == []


def test_another_departments_exchange_is_unknown_and_nothing_leaks(
    world: World, tax: Broker, market: Broker, court: Broker, record: tuple[str, bytes, int]
) -> None:
    rid, _data, gid = record
    xid = content(market, rid).headers[H_EXCHANGE]
    # COURT's clerk names MARKET's exchange at its own broker
    problem(content(court, rid, {H_EXCHANGE: xid, "Range": "bytes=5-"}), 404, "exchange.unknown")
    # COURT's broker asks TAX directly, signed with its own registered key
    req = ExchangeResume.new("COURT", "TAX", bytes.fromhex(xid[2:]), now=int(world.ledger.now()),
                             ttl=60)  # fmt: skip
    sig = req.sign(world["COURT"].broker, court.svc.domain)
    r = httpx.post(
        f"{tax.dept.url}/v1/exchange/resume",
        json=req.to_json(),
        headers={H_SIGNATURE: "0x" + sig.hex(), "Range": "bytes=0-"},
    )
    body = problem(r, 404, "exchange.unknown")
    assert "MARKET" not in r.text and "capsule" not in {k.lower() for k in r.headers}
    assert "govshare-capsule" not in r.headers and H_EXCHANGE.lower() not in r.headers
    assert body["detail"].startswith("TAX answered no exchange")
    # ... or signs it as MARKET with COURT's key: the wrong signer
    forged = ExchangeResume.new("MARKET", "TAX", bytes.fromhex(xid[2:]),
                                now=int(world.ledger.now()), ttl=60)  # fmt: skip
    sig = forged.sign(world["COURT"].broker, court.svc.domain)
    r = httpx.post(
        f"{tax.dept.url}/v1/exchange/resume",
        json=forged.to_json(),
        headers={H_SIGNATURE: "0x" + sig.hex()},
    )
    problem(r, 403, "exchange.wrong_signer")
    # an exchange id that is no exchange at all, and one that is malformed
    problem(content(market, rid, {H_EXCHANGE: "0x" + "ab" * 32}), 404, "exchange.unknown")
    assert content(market, rid, {H_EXCHANGE: "0x1234"}).status_code == 422
    assert len(owner_receipts(tax, gid)) == 1


def test_a_resume_after_the_window_is_refused(
    tax: Broker, market: Broker, record: tuple[str, bytes, int]
) -> None:
    rid, _data, gid = record
    clock = ManualClock()
    saved = tax.svc.clock
    tax.svc.clock = clock
    try:
        xid = content(market, rid).headers[H_EXCHANGE]
        clock.advance(tax.svc.limits.resume_window)
        ok = content(market, rid, {H_EXCHANGE: xid, "Range": "bytes=1-"})
        assert ok.status_code == 206, ok.text  # the window's last second
        clock.advance(1)
        body = problem(
            content(market, rid, {H_EXCHANGE: xid, "Range": "bytes=1-"}),
            410,
            "exchange.resume_expired",
        )
        assert "fetch the record again" in body["detail"]
    finally:
        tax.svc.clock = saved
    assert len(owner_receipts(tax, gid)) == 1


def test_a_revoked_grant_stops_a_resume(
    world: World, tax: Broker, market: Broker, record: tuple[str, bytes, int]
) -> None:
    rid, _data, gid = record
    xid = content(market, rid).headers[H_EXCHANGE]
    revoke(world.ledger, world["TAX"].admin, gid, "no longer needed")
    problem(content(market, rid, {H_EXCHANGE: xid, "Range": "bytes=1-"}), 403, "grant.revoked")


def trail_receipts(tax: Broker, rid: str) -> list[dict[str, Any]]:
    r = tax.client.get(f"/v1/audit/trail/{rid}", headers=tax.auth("auditor"))
    assert r.status_code == 200, r.text
    out: list[dict[str, Any]] = []
    for g in r.json()["requests"]:
        out += g.get("receipts", [])
    return out


def test_the_ack_lands_in_the_receipt_and_the_audit_shows_it(
    world: World, tax: Broker, market: Broker, record: tuple[str, bytes, int]
) -> None:
    rid, _data, gid = record
    assert content(market, rid).status_code == 200
    (theirs,) = owner_receipts(tax, gid)
    assert theirs["acked_at"] is not None and theirs["ack_signature"].startswith("0x")
    ours = market.client.get(
        "/v1/receipts", headers=market.auth("auditor"), params={"grant": gid, "owner": "TAX"}
    ).json()
    assert [x["ack_signature"] for x in ours] == [theirs["ack_signature"]]
    tax.runtime.batcher.run_once(drive=True, force=True)
    (anchored,) = [x for x in trail_receipts(tax, rid) if x["seq"] == theirs["seq"]]
    assert anchored["delivery"] == "acknowledged" and anchored["ok"] is True, anchored
    assert anchored["inclusion"]["verified"] is True


def test_an_unacknowledged_receipt_is_held_then_anchored_after_the_window(
    world: World, tax: Broker, market: Broker, record: tuple[str, bytes, int]
) -> None:
    rid, _data, gid = record
    clock = ManualClock()
    saved = tax.svc.clock
    tax.svc.clock = clock
    try:
        batcher = ReceiptBatcher(tax.svc, max_age=0)
        # the module's earlier receipts anchored first (whichever tests ran before)
        batcher.run_once(drive=True, force=True)
        # MARKET's broker takes the answer and never acknowledges it (it died, say)
        req = ExchangeRequest.new("MARKET", "TAX", gid, bytes.fromhex(rid[2:]),
                                  now=int(world.ledger.now()))  # fmt: skip
        answer = serve_exchange(tax.svc, req.to_json(), req.sign(world["MARKET"].broker,
                                                                 tax.svc.domain))  # fmt: skip
        assert b"".join(answer.chunks)
        seq = answer.receipt.seq
        held = batcher.run_once(drive=True, force=True)
        assert held.action == "held" and held.first_seq == seq, held
        clock.advance(tax.svc.limits.resume_window - 1)
        assert batcher.run_once(drive=True, force=True).action == "held"
        clock.advance(2)
        done = batcher.run_once(drive=True, force=True)
        assert done.action == "submitted" and done.last_seq == seq, done
        # a late acknowledgement is refused: the receipt is anchored without it
        r = answer.receipt
        ack = ExchangeAck(r.request_hash, r.ciphertext_cid, r.issued_at + 1)
        sig = ack.sign(world["MARKET"].broker, tax.svc.domain)
        late = httpx.post(
            f"{tax.dept.url}/v1/exchange/ack",
            json=ack.to_json("MARKET", "TAX"),
            headers={H_SIGNATURE: "0x" + sig.hex()},
        )
        problem(late, 410, "exchange.resume_expired")
    finally:
        tax.svc.clock = saved
    (anchored,) = [x for x in trail_receipts(tax, rid) if x["seq"] == seq]
    assert anchored["delivery"] == "unacknowledged" and anchored["ok"] is True, anchored


def test_acknowledgements_that_do_not_hold_are_refused(
    world: World, tax: Broker, market: Broker, court: Broker, record: tuple[str, bytes, int]
) -> None:
    rid, _data, gid = record
    xid = content(market, rid).headers[H_EXCHANGE]
    (before,) = owner_receipts(tax, gid)

    def post(ack: ExchangeAck, requester: str, key: Any) -> httpx.Response:
        sig = ack.sign(key, tax.svc.domain)
        return httpx.post(
            f"{tax.dept.url}/v1/exchange/ack",
            json=ack.to_json(requester, "TAX"),
            headers={H_SIGNATURE: "0x" + sig.hex()},
        )

    h = bytes.fromhex(xid[2:])
    cid = before["ciphertext_cid"]
    at = int(world.ledger.now())
    # COURT acknowledging MARKET's exchange: unknown to it, as none
    problem(post(ExchangeAck(h, cid, at), "COURT", world["COURT"].broker), 404, "exchange.unknown")
    # signed with another key than MARKET's
    problem(post(ExchangeAck(h, cid, at), "MARKET", world["COURT"].broker), 403,
            "exchange.wrong_signer")  # fmt: skip
    # another acknowledgement of an acknowledged exchange
    problem(post(ExchangeAck(h, cid, at + 5), "MARKET", world["MARKET"].broker), 409,
            "exchange.replayed")  # fmt: skip
    (after,) = owner_receipts(tax, gid)
    assert after == before  # nothing changed


# -- the acknowledgement after the answer (broker/acks.py) ----------------------------------


def ack_of(tax: Broker, market: Broker, gid: int) -> tuple[str | None, str | None]:
    """The ack signature in the owner's receipt, and in the requester's copy."""
    (theirs,) = owner_receipts(tax, gid)
    ours = market.client.get(
        "/v1/receipts", headers=market.auth("auditor"), params={"grant": gid, "owner": "TAX"}
    ).json()
    return theirs["ack_signature"], ours[0]["ack_signature"]


@pytest.fixture
def deferred_acks(market: Broker) -> Any:
    """MARKET's acknowledgements queued as under `govshare serve`, sent only when
    the test runs the queue, on a clock the test moves."""
    clock = ManualClock()
    acks = AckSender(market.svc, monotonic=clock.monotonic)
    acks.deferred = True
    saved = market.svc.acks
    market.svc.acks = acks
    try:
        yield acks, clock
    finally:
        market.svc.acks = saved
        faults.fail_once("exchange.ack", None)


def test_the_clerk_has_the_record_before_the_ack_and_a_failed_ack_is_retried(
    tax: Broker, market: Broker, record: tuple[str, bytes, int], deferred_acks: Any
) -> None:
    acks, clock = deferred_acks
    rid, data, gid = record
    got = content(market, rid)
    assert got.status_code == 200 and got.content == data
    assert ack_of(tax, market, gid) == (None, None) and acks.queued == 1
    # TAX's database fails as the acknowledgement arrives: 503, tried again later
    faults.fail_once("exchange.ack", DatabaseUnavailable("test: the database is away"))
    assert acks.run_once() == 0 and acks.queued == 1
    assert ack_of(tax, market, gid) == (None, None)
    assert acks.run_once() == 0 and acks.queued == 1  # not due before its pause
    clock.advance(FIRST_RETRY)
    assert acks.run_once() == 1 and acks.queued == 0
    theirs, ours = ack_of(tax, market, gid)
    assert theirs is not None and theirs == ours  # the same signed ack, once


def test_an_ack_the_owner_refuses_is_dropped_not_retried(
    tax: Broker, market: Broker, record: tuple[str, bytes, int], deferred_acks: Any
) -> None:
    acks, _clock = deferred_acks
    rid, _data, gid = record
    assert content(market, rid).status_code == 200
    saved = tax.svc.clock
    late = ManualClock()
    late.advance(tax.svc.limits.resume_window + 1)
    tax.svc.clock = late
    try:
        ReceiptBatcher(tax.svc, max_age=0).run_once(drive=True, force=True)  # anchored without
        assert acks.run_once() == 1 and acks.queued == 0  # 410: final
    finally:
        tax.svc.clock = saved
    assert ack_of(tax, market, gid) == (None, None)


def test_the_thread_sends_the_ack_and_a_stop_sends_what_is_queued(
    tax: Broker, market: Broker, record: tuple[str, bytes, int], world: World
) -> None:
    rid, _data, gid = record
    acks = market.svc.acks
    acks.start()
    try:
        assert content(market, rid).status_code == 200
        wait_for(lambda: ack_of(tax, market, gid)[0], "the thread sent the acknowledgement")
    finally:
        acks.stop()
    assert not acks.deferred and acks.queued == 0
    theirs, ours = ack_of(tax, market, gid)
    assert theirs is not None and theirs == ours
