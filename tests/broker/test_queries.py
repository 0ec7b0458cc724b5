"""The broker's local view of requests and grants reads *now* on the clock it is
given: a grant turns expired when that clock passes its expiry, not before."""

from __future__ import annotations

from datetime import timedelta

from fakeclock import ManualClock
from govshare.broker.db import AccessRequest, Database
from govshare.broker.queries import list_requests


def test_a_grant_shows_expired_once_the_clock_reaches_its_expiry(db: Database) -> None:
    clock = ManualClock()
    with db.session() as s:
        s.add(
            AccessRequest(
                request_id="7",
                requester="MARKET",
                owner="TAX",
                record_id="0x" + "ab" * 32,
                status="approved",
                purpose="business licence",
                grant_id="7",
                expires_at=clock.utc() + timedelta(hours=1),
                max_uses=3,
                updated_block=1,
            )
        )

    def shown() -> tuple[str, list[int]]:
        [view] = list_requests(db, "TAX", clock=clock)
        expired = list_requests(db, "TAX", status="expired", clock=clock)
        return view.status, [v.id for v in expired]

    clock.advance(3599)
    assert shown() == ("approved", [])
    clock.advance(1)
    assert shown() == ("expired", [7])
