"""The chain cache keeps a value read while another kind of entry was dropped,
and never one read while its own kind was dropped (the read may predate the
event that dropped it). The ledger here is a stand-in that only counts catalog
reads and lets the test drop entries in the middle of one: the cache's own
logic, with no chain involved (tests/api/test_peer_cache.py runs it on anvil)."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from fakeclock import ManualClock
from govshare.broker.peercache import ChainCache


def _cache(during_read: Callable[[ChainCache], None]) -> tuple[ChainCache, list[str]]:
    reads: list[str] = []
    holder: dict[str, ChainCache] = {}

    def categories(dept: str) -> list[Any]:
        reads.append(dept)
        if len(reads) == 1:
            during_read(holder["cache"])  # a mirror tick, meanwhile, in another thread
        return [SimpleNamespace(category="cert", active=True)]

    ledger: Any = SimpleNamespace(records=SimpleNamespace(categories=categories))
    holder["cache"] = ChainCache(ledger, ManualClock())
    return holder["cache"], reads


def test_a_catalog_read_is_kept_when_a_tick_drops_anchors_meanwhile() -> None:
    cache, reads = _cache(lambda c: c.drop_records(["0x" + "11" * 32]))
    cache.categories("TAX")
    cache.categories("TAX")
    assert reads == ["TAX"]  # kept: dropping anchors says nothing about the catalog


def test_a_catalog_read_is_not_kept_when_the_catalog_is_dropped_meanwhile() -> None:
    for drop in (ChainCache.drop_categories, ChainCache.clear):
        cache, reads = _cache(drop)
        cache.categories("TAX")
        cache.categories("TAX")
        assert reads == ["TAX", "TAX"], drop  # read again: the first may predate the event
