"""The owner's quota and receipt numbers under concurrency, on SQLite and on a
real PostgreSQL cluster (READ COMMITTED, where counting receipts before writing
one let two transactions both see a use left): 50 exchanges at once under a
grant of 10 uses serve exactly 10, numbered 1 to 10 without a gap or a repeat;
a replayed nonce is the only thing refused as a replay. And an existing
database's counters are filled from the receipts it kept (migration 0007)."""

from __future__ import annotations

import io
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from govshare.broker.access import request_access
from govshare.broker.consent import approve
from govshare.broker.db import Database, GrantUse, Receipt, ReceiptSequence
from govshare.broker.errors import GrantQuotaExhausted, NonceReplayed
from govshare.broker.exchange import ExchangeRequest
from govshare.broker.publish import PublishRequest, publish, stage_file
from govshare.broker.serve_exchange import serve_exchange
from govshare.broker.services import BrokerServices
from govshare.chain.devnode import AnvilProcess
from govshare.errors import GovShareError
from integration.world import CATEGORY, World, build_world, make_services

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with AnvilProcess() as node:
        w = build_world(node.url, tmp_path_factory.mktemp("home"))
        yield w
        w.close()


@pytest.fixture(scope="module")
def market(world: World) -> Iterator[BrokerServices]:
    svc = make_services(world, "MARKET")
    yield svc
    svc.close()
    svc.db.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def tax(request: pytest.FixtureRequest, world: World, tmp_path: Path) -> Iterator[BrokerServices]:
    """TAX's broker on a database of its own: a SQLite file, or a fresh database
    of the session's PostgreSQL cluster. Records anchored one by one."""
    if request.param == "sqlite":
        db = Database.open(f"sqlite:///{tmp_path / 'tax.db'}")
    else:
        cluster = request.getfixturevalue("postgres_cluster")
        db = Database.open(cluster.create_database(f"tax_{uuid.uuid4().hex[:12]}"))
    svc = make_services(world, "TAX", db=db, batch_max_records=1)
    yield svc
    svc.close()
    svc.db.close()


def granted(
    world: World, tax: BrokerServices, market: BrokerServices, uses: int
) -> tuple[str, int]:
    staged = stage_file(tax, io.BytesIO(b"a certificate " + uuid.uuid4().bytes))
    out = publish(tax, "user:1", uuid.uuid4().hex, staged, PublishRequest(CATEGORY), wait=True)
    assert out.state.value == "done", out
    rid = str(out.record_id)
    req = request_access(
        market, "user:2", "TAX", rid, "licence", "art. 5", idempotency_key=uuid.uuid4().hex
    )
    assert req.request_id is not None
    approve(tax.ledger, world["TAX"].admin, req.request_id, max_uses=uses, expires_in=86400)
    return rid, int(req.request_id)


def one_exchange(
    tax: BrokerServices, market: BrokerServices, rid: str, gid: int, now: int
) -> int | GovShareError:
    req = ExchangeRequest.new("MARKET", "TAX", gid, bytes.fromhex(rid[2:]), now=now)
    try:
        answer = serve_exchange(tax, req.to_json(), req.sign(market.account, tax.domain))
    except GovShareError as exc:
        return exc
    for _chunk in answer.chunks:
        pass
    return answer.receipt.seq


def test_fifty_exchanges_at_once_under_ten_uses_serve_exactly_ten(
    world: World, tax: BrokerServices, market: BrokerServices
) -> None:
    rid, gid = granted(world, tax, market, uses=10)
    now = tax.ledger.now()
    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(lambda _: one_exchange(tax, market, rid, gid, now), range(50)))
    served = sorted(r for r in results if isinstance(r, int))
    refused = Counter(type(r).__name__ for r in results if not isinstance(r, int))
    assert served == list(range(1, 11)), results
    assert refused == {GrantQuotaExhausted.__name__: 40}, refused
    with tax.db.session(readonly=True) as s:
        seqs = list(
            s.scalars(select(Receipt.seq).where(Receipt.owner == "TAX").order_by(Receipt.seq))
        )
        assert seqs == list(range(1, 11))
        assert s.get(GrantUse, ("TAX", str(gid))).used == 10  # type: ignore[union-attr]
    # a second grant numbers its receipts on from the first's
    rid2, gid2 = granted(world, tax, market, uses=2)
    assert one_exchange(tax, market, rid2, gid2, tax.ledger.now()) == 11


def test_only_a_seen_nonce_is_a_replay(
    world: World, tax: BrokerServices, market: BrokerServices
) -> None:
    rid, gid = granted(world, tax, market, uses=5)
    req = ExchangeRequest.new("MARKET", "TAX", gid, bytes.fromhex(rid[2:]), now=tax.ledger.now())
    sig = req.sign(market.account, tax.domain)
    first = serve_exchange(tax, req.to_json(), sig)
    assert first.receipt.seq >= 1
    with pytest.raises(NonceReplayed):
        serve_exchange(tax, req.to_json(), sig)
    # the refused replay spent nothing: four uses are left
    with tax.db.session(readonly=True) as s:
        assert s.get(GrantUse, ("TAX", str(gid))).used == 1  # type: ignore[union-attr]


def test_an_existing_database_gets_its_counters_from_its_receipts(tmp_path: Path) -> None:
    db = Database.open(f"sqlite:///{tmp_path / 'old.db'}", migrate=False)
    try:
        db.migrate("0006")
        now = datetime.now(UTC)
        rows = [("TAX", 1, "5"), ("TAX", 2, "5"), ("TAX", 3, "6"), ("COURT", 7, "9")]
        with db.session() as s:  # (the columns of revision 0006 only: Core, not the model)
            for owner, seq, grant in rows:
                s.execute(
                    insert(Receipt.__table__).values(
                        owner=owner, seq=seq, grant_id=grant, record_id="0x" + "ab" * 32,
                        requester="MARKET", request_hash=f"0x{seq:064x}", nonce=str(seq),
                        request_expires_at=1, ciphertext_cid="bafy", capsule_hash="0x" + "00" * 32,
                        issued_at=now, requester_signature="0x", owner_signature="0x",
                        created_at=now,
                    )
                )  # fmt: skip
        db.migrate()
        with db.session(readonly=True) as s:
            uses = {(u.owner, u.grant_id): u.used for u in s.scalars(select(GrantUse))}
            last = {q.owner: q.last_seq for q in s.scalars(select(ReceiptSequence))}
        assert uses == {("TAX", "5"): 2, ("TAX", "6"): 1, ("COURT", "9"): 1}
        assert last == {"TAX": 3, "COURT": 7}
    finally:
        db.close()
