"""What the exchange reads from the chain that does not change per request:
department entries (endpoint, broker key, encryption key, status), account
bindings, the anchors of records (owner, CID, SHA-256: immutable once
anchored), and each department's catalog of categories.

    cache = ChainCache(ledger, clock)
    cache.department("TAX"); cache.binding(address); cache.anchor(record_id)

Each entry is dropped by the broker's ledger mirror (:class:`CacheProjection`)
at the tick that sees an event that may change it: any ConsortiumRegistry
event empties the department and binding entries (key rotation, endpoint
change, suspension, broker rotation are all such events, and rare); a
RecordRegistry event drops the records it names (a category event, the
catalogs); a rewind or reset empties
everything. So a rotation takes effect at the next tick. As a bound if the
mirror stalls, an entry is also re-read after :data:`MAX_AGE` seconds.

What is *not* cached: the grant (request, status, uses) and the chain's time,
which the owner reads live for every exchange (fail closed). A read that raced
with an invalidation is not stored (a generation counter), so a value the
mirror has dropped never comes back from a read begun before the drop.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy.engine import Connection as DbConnection

from govshare.chain.contracts import AccountBinding, Category, Department, to_bytes32
from govshare.chain.contracts import Record as ChainRecord
from govshare.chain.ledger import Ledger
from govshare.chain.mirror import IndexedEvent, Projection
from govshare.clock import Clock

#: Seconds an entry is trusted without a mirror event (a bound if the mirror stalls).
MAX_AGE = 60.0
#: Entries kept per kind (least recently used dropped first).
MAX_ENTRIES = 10_000

T = TypeVar("T")


class _Lru:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.items: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        #: Bumped by every drop of this table's entries: a value read from the chain
        #: while one happened may be older than the drop, and is not kept. Per
        #: table, so a tick that drops anchors does not waste a catalog read.
        self.gen = 0

    def drop(self, keys: Sequence[str] | None = None) -> None:
        """Forget ``keys`` (every entry when None)."""
        self.gen += 1
        if keys is None:
            self.items.clear()
            return
        for key in keys:
            self.items.pop(key, None)

    def get(self, key: str, now: float) -> Any | None:
        hit = self.items.get(key)
        if hit is None or now - hit[0] > MAX_AGE:
            return None
        self.items.move_to_end(key)
        return hit[1]

    def put(self, key: str, value: Any, now: float) -> None:
        self.items[key] = (now, value)
        self.items.move_to_end(key)
        while len(self.items) > self.limit:
            self.items.popitem(last=False)


class ChainCache:
    """Department entries, account bindings and record anchors of one ledger."""

    def __init__(self, ledger: Ledger, clock: Clock, *, limit: int = MAX_ENTRIES) -> None:
        self.ledger = ledger
        self.clock = clock
        self._lock = threading.Lock()
        self._departments = _Lru(limit)
        self._bindings = _Lru(limit)
        self._anchors = _Lru(limit)
        self._categories = _Lru(limit)
        self.hits = 0
        self.misses = 0

    def _cached(self, table: _Lru, key: str, read: Callable[[], T]) -> T:
        now = self.clock.monotonic()
        with self._lock:
            value = table.get(key, now)
            if value is not None:
                self.hits += 1
                return value  # type: ignore[no-any-return]
            self.misses += 1
            gen = table.gen
        value = read()  # a chain read, outside the lock
        with self._lock:
            if gen == table.gen:
                table.put(key, value, now)
        return value

    def department(self, code: str) -> Department:
        """``ConsortiumRegistry.getDepartment`` (raises as it does when unknown)."""
        return self._cached(
            self._departments, code, lambda: self.ledger.registry.get_department(code)
        )

    def binding(self, account: str) -> AccountBinding:
        """``ConsortiumRegistry.departmentOf``."""
        key = account.lower()
        return self._cached(self._bindings, key, lambda: self.ledger.registry.department_of(key))

    def categories(self, department: str) -> list[Category]:
        """``RecordRegistry.categories`` of ``department`` (its catalog), dropped
        when a category is declared or retired: the publish check reads it for
        every record."""
        return self._cached(
            self._categories,
            department.upper(),
            lambda: list(self.ledger.records.categories(department)),
        )

    def anchor(self, record_id: bytes | str) -> ChainRecord | None:
        """The anchored record, or None when nothing is anchored under the id
        (not cached: it may be anchored next). Only its immutable fields
        (department, CID, SHA-256, category, subject) are to be relied on."""
        key = "0x" + to_bytes32(record_id, "record id").hex()
        now = self.clock.monotonic()
        with self._lock:
            hit = self._anchors.get(key, now)
            if hit is not None:
                self.hits += 1
                return hit  # type: ignore[no-any-return]
            self.misses += 1
            gen = self._anchors.gen
        records = self.ledger.records
        if not records.record_exists(key):
            return None
        rec = records.get_record(key)
        with self._lock:
            if gen == self._anchors.gen:
                self._anchors.put(key, rec, now)
        return rec

    # -- invalidation (the mirror's projection) ---------------------------------------

    def drop_departments(self) -> None:
        with self._lock:
            self._departments.drop()
            self._bindings.drop()

    def drop_records(self, record_ids: Sequence[str]) -> None:
        with self._lock:
            self._anchors.drop([rid.lower() for rid in record_ids])

    def drop_categories(self) -> None:
        with self._lock:
            self._categories.drop()

    def clear(self) -> None:
        with self._lock:
            for table in (self._departments, self._bindings, self._anchors, self._categories):
                table.drop()


class CacheProjection(Projection):
    """Drops the cache's entries that a tick's events may have changed."""

    def __init__(self, cache: ChainCache) -> None:
        self.cache = cache

    def apply(
        self, db: DbConnection, events: Sequence[IndexedEvent], prepared: Any, head: int
    ) -> None:
        # Dropping is always safe, so it need not wait for the range's commit.
        if any(e.contract == "ConsortiumRegistry" for e in events):
            self.cache.drop_departments()
        named = [
            str(v)
            for e in events
            if e.contract == "RecordRegistry"
            for k, v in e.args.items()
            if k.lower().endswith("id") and isinstance(v, str)
        ]
        if named:
            self.cache.drop_records(named)
        if any(e.contract == "RecordRegistry" and e.event.startswith("Category") for e in events):
            self.cache.drop_categories()

    def apply_rewind(
        self, db: DbConnection, removed: Sequence[IndexedEvent], prepared: Any, fork: int
    ) -> None:
        self.cache.clear()

    def reset(self, db: DbConnection) -> None:
        self.cache.clear()
