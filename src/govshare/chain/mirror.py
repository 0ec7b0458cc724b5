"""The ledger mirror: every govshare event of one deployment, followed from a
checkpoint into SQL tables. One component serves the broker (its mirror lives in
the broker's database, beside the views derived from it) and the auditor (a
SQLite file of its own).

    mirror = Mirror(conn, deployment, engine, projections=[...])
    mirror.run_once()                      # one tick: catch up with the chain
    mirror.events_for_request(7)           # the life of request 7, in chain order

How it follows the chain
------------------------
* The **checkpoint** is the last block whose events are all stored: its number
  and its hash (32 bytes). A tick asks the node for the head and for the block
  at the checkpoint in one batch; if that block's hash is not the stored one,
  the chain changed under the mirror (a reorg, or a dev chain restored from an
  older dump), and the mirror **rewinds to the fork point** only: the newest
  block it remembers (``mirror_blocks``: range ends and blocks that carried
  events, the newest ``keep_blocks``) that is still canonical, found by binary
  search. A fork below everything remembered rewinds to the deploy block; a
  chain without the deploy block is another chain (:class:`DeploymentStale`).
* New blocks are read in **bounded ranges** (``eth_getLogs`` over the three
  contract addresses, at most ``range_size`` blocks each). The range's last
  block hash is read *before* its logs, so a reorg that lands in between is
  seen by the next tick's check. Each range is written in **one transaction
  together with the checkpoint** and with whatever the projections derive
  from it, so a kill at any point keeps the whole range or none of it; events
  are unique on ``(tx_hash, log_index)`` and applied exactly once.
* **Never historical state.** The mirror reads logs and block headers only.
  Projections that need contract state read it at the head the tick saw
  (:meth:`Projection.prepare`), outside the database transaction, and only for
  what an event says changed. One tick's cost depends on the new blocks only,
  not on the chain's length.
* **Every decoded value is hostile input**: a log the ABI cannot decode is
  skipped with one log line (the decoder is total); argument values are stored
  as JSON (bytes as 0x-hex, integers as integers of any size).

Projections
-----------
A :class:`Projection` derives tables from the events in the same transaction
(the broker's ``access_requests``; the check that its own transactions stayed on
chain). It sees each new range (``prepare`` then ``apply``), each rewind
(``prepare_rewind`` then ``apply_rewind``), a reset, and the end of each tick
(``after_tick``, outside any transaction).

Record batches are a projection too (:mod:`govshare.chain.batchindex`): each
``RecordBatchAnchored`` batch, its manifest read by CID and checked against the
chain's root, and the records it lists — what a requester materialises from and
an auditor proves a batched record with.

Run the auditor's follower as ``python -m govshare.chain.mirror --deployment FILE
--db FILE [--rpc URL] [--once] [--manifests SOURCE ...]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection as DbConnection
from sqlalchemy.engine import Engine

from govshare.chain.abi import CONTRACT_NAMES, load_artifact
from govshare.chain.connection import DEFAULT_TIMEOUT, Connection, RpcError, node_went_away
from govshare.chain.contracts import decode_code, to_bytes32
from govshare.chain.deploy import Deployment, load_deployment
from govshare.chain.events import LogDecoder
from govshare.chain.tx import Event
from govshare.errors import ChainUnavailable, ConfigError, DeploymentStale, GovShareError
from govshare.util import SQL_NAMING_CONVENTION

log = logging.getLogger(__name__)

#: Version of the mirror's tables; a mirror of another version is rebuilt.
SCHEMA_VERSION = "4"
#: Blocks per ``eth_getLogs`` (Besu answers up to --rpc-max-logs-range, 5000 by default).
DEFAULT_RANGE = 1000
#: Block hashes remembered for finding a fork point (range ends and event blocks).
DEFAULT_KEEP_BLOCKS = 1024

# Arguments that name a department / record / request, for the query keys.
_DEPARTMENT_ARGS = frozenset(
    {
        "department",
        "code",
        "requesterDepartment",
        "ownerDepartment",
        "proposerDepartment",
        "targetDepartment",
    }
)
_RECORD_ARGS = frozenset({"recordId", "previousRecordId", "newRecordId"})
_REQUEST_ARGS = frozenset({"requestId", "grantId"})

# -- tables ------------------------------------------------------------------------------

#: The mirror's tables. The broker's database holds them (its migrations create
#: them); an auditor's standalone file gets them from ``metadata.create_all``.
metadata = sa.MetaData(naming_convention=SQL_NAMING_CONVENTION)

#: Identity of what is mirrored (schema, chain id, deploy block hash, addresses).
mirror_meta = sa.Table(
    "mirror_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

#: One row: the last block whose events are all stored, and its hash.
mirror_checkpoint = sa.Table(
    "mirror_checkpoint",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("block", sa.BigInteger, nullable=False),
    sa.Column("block_hash", sa.LargeBinary(32), nullable=True),
)

#: Canonical hashes of blocks the mirror has read (to find a fork point).
mirror_blocks = sa.Table(
    "mirror_blocks",
    metadata,
    sa.Column("number", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("hash", sa.LargeBinary(32), nullable=False),
)

#: Every govshare event, in chain order; ``seq`` is never reused (SQLite
#: AUTOINCREMENT, a sequence elsewhere), so readers can follow it.
mirror_events = sa.Table(
    "mirror_events",
    metadata,
    sa.Column(
        "seq",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("block_number", sa.BigInteger, nullable=False),
    sa.Column("block_hash", sa.String(66), nullable=False),
    sa.Column("tx_hash", sa.String(66), nullable=False),
    sa.Column("log_index", sa.Integer, nullable=False),
    sa.Column("contract", sa.String(32), nullable=False),
    sa.Column("address", sa.String(42), nullable=False),
    sa.Column("event", sa.String(64), nullable=False),
    sa.Column("indexed_args", sa.Text, nullable=False),
    sa.Column("args", sa.Text, nullable=False),
    sa.UniqueConstraint("tx_hash", "log_index"),
    sa.Index("ix_mirror_events_block", "block_number", "log_index"),
    sa.Index("ix_mirror_events_name", "event", "block_number"),
    sqlite_autoincrement=True,
)

#: Which department / record / request / account / proposal an event names.
mirror_event_keys = sa.Table(
    "mirror_event_keys",
    metadata,
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("value", sa.String(80), primary_key=True),
    sa.Column("event_seq", sa.BigInteger, primary_key=True, autoincrement=False),
    # A rewind deletes keys by event; without this it scans the whole table.
    sa.Index("ix_mirror_event_keys_event", "event_seq"),
)

#: How many of each event are stored (each applied exactly once).
mirror_event_counts = sa.Table(
    "mirror_event_counts",
    metadata,
    sa.Column("event", sa.String(64), primary_key=True),
    sa.Column("n", sa.BigInteger, nullable=False),
)


def _json_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    return value


def _is_address(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("0x") and len(value) == 42


def _keys(event: Event) -> Iterator[tuple[str, str]]:  # noqa: C901 — one table of which args index which key
    for name, value in event.args.items():
        if name in _DEPARTMENT_ARGS and isinstance(value, bytes):
            code = decode_code(value)
            if code:
                yield "department", code[:40]
        elif name in _RECORD_ARGS and isinstance(value, bytes) and any(value):
            yield "record", "0x" + value.hex()
        elif name in _REQUEST_ARGS and event.contract == "AccessLedger":
            yield "request", str(int(value))
        elif name == "proposalId" and int(value):
            yield "proposal", str(int(value))
        if _is_address(value):
            yield "account", value.lower()
        elif isinstance(value, list):
            for item in value:
                if _is_address(item):
                    yield "account", item.lower()


@dataclass(frozen=True)
class IndexedEvent:
    """One stored event (bytes as 0x-hex in ``args``)."""

    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int
    contract: str
    address: str
    event: str
    args: dict[str, Any]
    indexed_args: dict[str, Any]
    seq: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Projection:
    """Tables derived from the mirror's events, kept in its transactions.

    ``prepare*`` run outside any database transaction (read contract state at
    ``head`` there, never at a historical block); ``apply*`` run inside the
    transaction that stores the range or the rewind, and must only write.
    """

    def attach(self, mirror: Mirror) -> None:
        """Called once by the mirror that runs this projection (its engines)."""

    def prepare(self, events: Sequence[IndexedEvent], head: int) -> Any:
        return None

    def apply(
        self, db: DbConnection, events: Sequence[IndexedEvent], prepared: Any, head: int
    ) -> None:
        """Derive from ``events`` (the range's new events, in chain order)."""

    def prepare_rewind(self, removed: Sequence[IndexedEvent], fork: int, head: int) -> Any:
        return None

    def apply_rewind(
        self, db: DbConnection, removed: Sequence[IndexedEvent], prepared: Any, fork: int
    ) -> None:
        """Undo what ``removed`` (events after ``fork``, no longer on chain) did."""

    def reset(self, db: DbConnection) -> None:
        """Forget everything derived (the mirror starts again from the deploy block)."""

    def after_tick(self, checkpoint: int, head: int) -> None:
        """After a tick's transactions (network calls allowed)."""


@dataclass(frozen=True)
class TickStats:
    """What one tick did."""

    events: int = 0
    ranges: int = 0
    rewound_to: int | None = None


class Mirror:
    """Follows the govshare events of one deployment into SQL tables."""

    def __init__(
        self,
        conn: Connection | None,
        deployment: Deployment,
        engine: Engine,
        *,
        confirmations: int = 0,
        range_size: int = DEFAULT_RANGE,
        keep_blocks: int = DEFAULT_KEEP_BLOCKS,
        projections: Sequence[Projection] = (),
        on_stale: str = "raise",
        create: bool = False,
        read_engine: Engine | None = None,
        log_fn: Callable[[str], None] | None = None,
    ) -> None:
        """``engine``: the database holding the mirror's tables (``create``
        makes them, for a standalone file); ``read_engine``, if given, serves the
        queries (a SQLite engine whose transactions do not take the write lock).
        ``on_stale``: what to do when the tables mirror another deployment —
        ``"raise"`` :class:`DeploymentStale`, or ``"reset"`` (empty them and the
        projections, and start again)."""
        if on_stale not in ("raise", "reset"):
            raise ValueError("on_stale is 'raise' or 'reset'")
        self.conn = conn
        self._own_conn: Connection | None = None
        self.deployment = deployment
        self.engine = engine
        self.read_engine = read_engine or engine
        self.confirmations = max(0, int(confirmations))
        self.range_size = max(1, int(range_size))
        self.keep_blocks = max(2, int(keep_blocks))
        self.projections = list(projections)
        for p in self.projections:
            p.attach(self)
        self._say = log_fn or log.info
        artifacts = {name: load_artifact(name) for name in CONTRACT_NAMES}
        self.decoder = LogDecoder({deployment.address(n): a for n, a in artifacts.items()})
        self.addresses = [deployment.address(n) for n in CONTRACT_NAMES]
        self._indexed = {
            (art.name, codec.name): frozenset(codec.indexed_names)
            for art in artifacts.values()
            for codec in art.events.values()
        }
        self._lock = threading.Lock()
        #: How many times this mirror rewound (a reorg or a restored chain).
        self.rewinds = 0
        self.last_tick: TickStats = TickStats()
        if create:
            import govshare.chain.batchindex  # noqa: F401 — its tables are the mirror's too

            metadata.create_all(engine)
        self._check_identity(on_stale)

    @classmethod
    def open_file(
        cls, conn: Connection | None, deployment: Deployment, path: str | Path, **kwargs: Any
    ) -> Mirror:
        """A mirror in a SQLite file of its own (the auditor's index)."""
        file = Path(path)
        file.parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(f"sqlite:///{file.expanduser().resolve()}")
        _sqlite_pragmas(engine)
        return cls(conn, deployment, engine, create=True, **kwargs)

    # -- identity ----------------------------------------------------------------------

    def _identity(self) -> dict[str, str]:
        return {
            "schema": SCHEMA_VERSION,
            "chain_id": str(self.deployment.chain_id),
            "deploy_block_hash": self.deployment.deploy_block_hash.lower(),
            "addresses": json.dumps([a.lower() for a in self.addresses]),
        }

    def _check_identity(self, on_stale: str) -> None:
        identity = self._identity()
        with self.engine.begin() as db:
            stored = dict(db.execute(sa.select(mirror_meta.c.key, mirror_meta.c.value)).all())
            if stored and stored != identity:
                key = next(k for k in identity if stored.get(k) != identity[k])
                if on_stale == "raise":
                    raise DeploymentStale(
                        f"The ledger mirror in {self._where()} was built for another "
                        f"deployment ({key} differs) — was the chain reset or redeployed? "
                        "Delete it to rebuild it from the chain.",
                    )
                self._say(f"the mirror was built for another deployment ({key} differs); rebuilt")
                self._clear(db)
                for p in self.projections:
                    p.reset(db)
                stored = {}
            if not stored:
                db.execute(
                    sa.insert(mirror_meta), [{"key": k, "value": v} for k, v in identity.items()]
                )
                db.execute(
                    sa.insert(mirror_checkpoint).values(
                        id=1, block=self.deployment.deploy_block - 1, block_hash=None
                    )
                )

    def _where(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    @staticmethod
    def _clear(db: DbConnection) -> None:
        for table in (
            mirror_event_keys,
            mirror_events,
            mirror_event_counts,
            mirror_blocks,
            mirror_checkpoint,
            mirror_meta,
        ):
            db.execute(sa.delete(table))

    def close(self) -> None:
        """Release the database connections of a mirror opened with :meth:`open_file`,
        and the chain connection if the mirror opened it."""
        self.engine.dispose()
        if self._own_conn is not None:
            self._own_conn.close()

    # -- the checkpoint ----------------------------------------------------------------

    def _checkpoint_row(self, db: DbConnection | None = None) -> tuple[int, bytes | None]:
        q = sa.select(mirror_checkpoint.c.block, mirror_checkpoint.c.block_hash).where(
            mirror_checkpoint.c.id == 1
        )
        if db is not None:
            row = db.execute(q).one()
        else:
            with self.read_engine.connect() as c:
                row = c.execute(q).one()
        return int(row[0]), (bytes(row[1]) if row[1] is not None else None)

    @property
    def checkpoint(self) -> int:
        """The last block whose events are all stored."""
        return self._checkpoint_row()[0]

    @property
    def checkpoint_hash(self) -> bytes | None:
        return self._checkpoint_row()[1]

    # -- following the chain -----------------------------------------------------------

    def _require_conn(self) -> Connection:
        if self.conn is None:
            self.conn = Connection(self.deployment.rpc_url)
            self._own_conn = self.conn  # opened here: close() closes it
        return self.conn

    def _batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        out = self._require_conn().batch(calls)
        for item in out:
            if isinstance(item, RpcError):
                raise item
        return out

    def _block_hash(self, number: int) -> bytes | None:
        block = self._require_conn().request("eth_getBlockByNumber", [hex(number), False])
        return _hash_of(block)

    def run_once(self, max_ranges: int | None = None) -> int:
        """One tick: check for a fork, then store every new event up to the head
        (minus ``confirmations``). Returns how many new events were stored.
        Concurrent callers wait for the one running (then find little to do).
        Raises :class:`ChainUnavailable` if the node is down."""
        with self._lock:
            stats = self._tick(max_ranges)
            self.last_tick = stats
            return stats.events

    def _tick(self, max_ranges: int | None) -> TickStats:
        cp, cp_hash = self._checkpoint_row()
        calls: list[tuple[str, Sequence[Any]]] = [("eth_blockNumber", [])]
        if cp_hash is not None:
            calls.append(("eth_getBlockByNumber", [hex(cp), False]))
        answers = self._batch(calls)
        head = int(answers[0], 16) - self.confirmations
        rewound: int | None = None
        if cp_hash is not None and _hash_of(answers[1]) != cp_hash:
            rewound = self._rewind(cp, head)
            cp = rewound
        stored = ranges = 0
        while cp < head and (max_ranges is None or ranges < max_ranges):
            end = min(head, cp + self.range_size)
            done = self._range(cp + 1, end, head)
            if done is None:
                break  # the range changed under us: the next tick sees the fork
            stored += done
            cp = end
            ranges += 1
        for p in self.projections:
            p.after_tick(cp, head)
        return TickStats(stored, ranges, rewound)

    def _range(self, start: int, end: int, head: int) -> int | None:
        conn = self._require_conn()
        # The end's hash first: a reorg after this read is caught by the next check.
        end_hash = self._block_hash(end)
        if end_hash is None:
            return None
        logs = conn.get_logs(start, end, self.addresses)
        decoded: list[tuple[Event, IndexedEvent]] = []
        for raw in sorted(logs, key=_log_order):
            if raw.get("removed"):
                continue
            block_hash = str(raw.get("blockHash") or "").lower()
            if _int(raw.get("blockNumber")) == end and _bytes_of(block_hash) != end_hash:
                return None
            try:
                event = self.decoder(raw)
            except Exception as exc:  # noqa: BLE001 — one hostile log must not stall the mirror
                log.warning(
                    "mirror: skipped an undecodable log in tx %s (%s)",
                    str(raw.get("transactionHash"))[:66],
                    type(exc).__name__,
                )
                continue
            if event is not None:
                decoded.append((event, self._indexed_event(event, block_hash)))
        prepared = [p.prepare([r for _, r in decoded], head) for p in self.projections]
        with self.engine.begin() as db:
            new = self._store(db, start, end, decoded)
            blocks = {end: end_hash}
            for r in new:
                h = _bytes_of(r.block_hash)
                if h is not None:
                    blocks.setdefault(r.block_number, h)
            _insert_ignore(db, mirror_blocks, [{"number": n, "hash": h} for n, h in blocks.items()])
            db.execute(
                sa.update(mirror_checkpoint)
                .where(mirror_checkpoint.c.id == 1)
                .values(block=end, block_hash=end_hash)
            )
            self._prune_blocks(db)
            for p, prep in zip(self.projections, prepared, strict=True):
                p.apply(db, new, prep, head)
        return len(new)

    def _indexed_event(self, event: Event, block_hash: str) -> IndexedEvent:
        names = self._indexed.get((event.contract, event.name), frozenset())
        args = {k: _json_value(v) for k, v in event.args.items()}
        return IndexedEvent(
            block_number=event.block_number,
            block_hash=block_hash,
            tx_hash=event.tx_hash.lower(),
            log_index=event.log_index,
            contract=event.contract,
            address=event.address,
            event=event.name,
            args=args,
            indexed_args={k: v for k, v in args.items() if k in names},
        )

    def _store(
        self,
        db: DbConnection,
        start: int,
        end: int,
        decoded: Sequence[tuple[Event, IndexedEvent]],
    ) -> list[IndexedEvent]:
        """Insert a range's events (those not stored before), their keys and
        counts, in a few statements; returns the new ones with their ``seq``."""
        if not decoded:
            return []
        in_range = (mirror_events.c.block_number >= start) & (mirror_events.c.block_number <= end)
        seen = {
            (str(h), int(i))
            for h, i in db.execute(
                sa.select(mirror_events.c.tx_hash, mirror_events.c.log_index).where(in_range)
            )
        }
        fresh = [(ev, row) for ev, row in decoded if (row.tx_hash, row.log_index) not in seen]
        if not fresh:
            return []
        db.execute(
            sa.insert(mirror_events),
            [
                {
                    "block_number": r.block_number,
                    "block_hash": r.block_hash,
                    "tx_hash": r.tx_hash,
                    "log_index": r.log_index,
                    "contract": r.contract,
                    "address": r.address,
                    "event": r.event,
                    "indexed_args": json.dumps(r.indexed_args, sort_keys=True),
                    "args": json.dumps(r.args, sort_keys=True),
                }
                for _, r in fresh
            ],
        )
        seqs = {
            (str(h), int(i)): int(q)
            for h, i, q in db.execute(
                sa.select(
                    mirror_events.c.tx_hash, mirror_events.c.log_index, mirror_events.c.seq
                ).where(in_range)
            )
        }
        new = [replace(r, seq=seqs[(r.tx_hash, r.log_index)]) for _, r in fresh]
        keys = [
            {"kind": kind, "value": value, "event_seq": row.seq}
            for (ev, _), row in zip(fresh, new, strict=True)
            for kind, value in set(_keys(ev))
        ]
        _insert_ignore(db, mirror_event_keys, keys)
        counts: dict[str, int] = {}
        for r in new:
            counts[r.event] = counts.get(r.event, 0) + 1
        for name, n in counts.items():
            _bump_count(db, name, n)
        return new

    def _prune_blocks(self, db: DbConnection) -> None:
        cutoff = db.execute(
            sa.select(mirror_blocks.c.number)
            .order_by(mirror_blocks.c.number.desc())
            .offset(self.keep_blocks)
            .limit(1)
        ).scalar()
        if cutoff is not None:
            db.execute(sa.delete(mirror_blocks).where(mirror_blocks.c.number <= cutoff))

    # -- forks ---------------------------------------------------------------------------

    def _find_fork(self, cp: int, head: int) -> tuple[int, bytes | None]:
        """The newest remembered block still on the canonical chain."""
        with self.read_engine.connect() as db:
            known = [
                (int(n), bytes(h))
                for n, h in db.execute(
                    sa.select(mirror_blocks.c.number, mirror_blocks.c.hash)
                    .where(mirror_blocks.c.number <= min(cp, head))
                    .order_by(mirror_blocks.c.number)
                )
            ]
        # Canonical blocks form a prefix of what we remember: binary search for its end.
        lo, hi, found = 0, len(known) - 1, -1
        while lo <= hi:
            mid = (lo + hi) // 2
            number, stored = known[mid]
            if self._block_hash(number) == stored:
                found, lo = mid, mid + 1
            else:
                hi = mid - 1
        if found >= 0:
            return known[found]
        deploy = self.deployment.deploy_block
        if self._block_hash(deploy) != _bytes_of(self.deployment.deploy_block_hash):
            raise DeploymentStale(
                f"The chain at {self._require_conn().url} no longer has the deployment "
                "block — was the dev chain reset? Re-deploy, and delete the mirror to "
                "rebuild it.",
                url=self._require_conn().url,
            )
        return deploy - 1, None

    def _rewind(self, cp: int, head: int) -> int:
        fork, fork_hash = self._find_fork(cp, head)
        removed = self._rows(
            sa.select(*_COLUMNS)
            .where(mirror_events.c.block_number > fork)
            .order_by(mirror_events.c.block_number, mirror_events.c.log_index)
        )
        prepared = [p.prepare_rewind(removed, fork, head) for p in self.projections]
        with self.engine.begin() as db:
            counts: dict[str, int] = {}
            for e in removed:
                counts[e.event] = counts.get(e.event, 0) + 1
            for name, n in counts.items():
                _bump_count(db, name, -n)
            gone = sa.select(mirror_events.c.seq).where(mirror_events.c.block_number > fork)
            db.execute(sa.delete(mirror_event_keys).where(mirror_event_keys.c.event_seq.in_(gone)))
            db.execute(sa.delete(mirror_events).where(mirror_events.c.block_number > fork))
            db.execute(sa.delete(mirror_blocks).where(mirror_blocks.c.number > fork))
            db.execute(
                sa.update(mirror_checkpoint)
                .where(mirror_checkpoint.c.id == 1)
                .values(block=fork, block_hash=fork_hash)
            )
            for p, prep in zip(self.projections, prepared, strict=True):
                p.apply_rewind(db, removed, prep, fork)
        self.rewinds += 1
        # Nonces counted on the lost blocks are wrong now: every allocator of this
        # node re-reads its account's nonce before its next send.
        node_went_away(self._require_conn().url)
        self._say(
            f"the chain changed after block {fork} (a reorg or a restored chain): "
            f"{len(removed)} event(s) after it rewound; re-reading from block {fork + 1}"
        )
        return fork

    def run_forever(
        self,
        *,
        poll_interval: float = 1.0,
        stop: threading.Event | None = None,
        max_backoff: float = 10.0,
    ) -> None:
        """Follow the chain until ``stop`` is set; waits out a node that is down."""
        stop = stop or threading.Event()
        backoff = poll_interval
        down_since: float | None = None
        while not stop.is_set():
            try:
                n = self.run_once()
                if down_since is not None:
                    self._say(f"node is back after {time.monotonic() - down_since:.1f}s")
                    down_since = None
                if n:
                    self._say(f"stored {n} events; checkpoint block {self.checkpoint}")
                backoff = poll_interval
                stop.wait(poll_interval)
            except ChainUnavailable as exc:
                if down_since is None:
                    down_since = time.monotonic()
                    self._say(f"{exc.message} Retrying with backoff.")
                stop.wait(backoff)
                backoff = min(max(backoff * 2, 0.1), max_backoff)

    # -- queries -------------------------------------------------------------------------

    def _rows(self, query: sa.Select[Any]) -> list[IndexedEvent]:
        with self.read_engine.connect() as db:
            rows = db.execute(query).all()
        return [
            IndexedEvent(
                block_number=int(r[0]),
                block_hash=r[1],
                tx_hash=r[2],
                log_index=int(r[3]),
                contract=r[4],
                address=r[5],
                event=r[6],
                indexed_args=json.loads(r[7]),
                args=json.loads(r[8]),
                seq=int(r[9]),
            )
            for r in rows
        ]

    def events(
        self,
        name: str | Sequence[str] | None = None,
        *,
        contract: str | None = None,
        from_block: int | None = None,
        to_block: int | None = None,
        limit: int | None = None,
    ) -> list[IndexedEvent]:
        """Stored events in chain order, filtered by event name(s), contract, blocks."""
        q = sa.select(*_COLUMNS)
        if name is not None:
            q = q.where(mirror_events.c.event.in_([name] if isinstance(name, str) else list(name)))
        if contract is not None:
            q = q.where(mirror_events.c.contract == contract)
        if from_block is not None:
            q = q.where(mirror_events.c.block_number >= from_block)
        if to_block is not None:
            q = q.where(mirror_events.c.block_number <= to_block)
        q = q.order_by(mirror_events.c.block_number, mirror_events.c.log_index)
        if limit is not None:
            q = q.limit(int(limit))
        return self._rows(q)

    def events_after(self, seq: int, *, limit: int = 500) -> list[IndexedEvent]:
        """Events stored after ``seq`` (a reader's cursor), in the order stored."""
        return self._rows(
            sa.select(*_COLUMNS)
            .where(mirror_events.c.seq > int(seq))
            .order_by(mirror_events.c.seq)
            .limit(int(limit))
        )

    def _by_key(
        self, kind: str, value: str, name: str | Sequence[str] | None
    ) -> list[IndexedEvent]:
        k = mirror_event_keys
        q = (
            sa.select(*_COLUMNS)
            .select_from(k.join(mirror_events, mirror_events.c.seq == k.c.event_seq))
            .where(k.c.kind == kind, k.c.value == value)
        )
        if name is not None:
            q = q.where(mirror_events.c.event.in_([name] if isinstance(name, str) else list(name)))
        return self._rows(q.order_by(mirror_events.c.block_number, mirror_events.c.log_index))

    def events_for_record(
        self, record_id: bytes | str, name: str | Sequence[str] | None = None
    ) -> list[IndexedEvent]:
        """Events naming a record (anchored, superseded, requested...)."""
        return self._by_key("record", "0x" + to_bytes32(record_id, "record id").hex(), name)

    def events_for_department(
        self, code: str, name: str | Sequence[str] | None = None
    ) -> list[IndexedEvent]:
        """Events naming a department in any role (owner, requester, proposer...)."""
        return self._by_key("department", code.upper(), name)

    def events_for_request(
        self, request_id: int, name: str | Sequence[str] | None = None
    ) -> list[IndexedEvent]:
        """The life of a request / grant: requested, decided, reminded, used, revoked."""
        return self._by_key("request", str(int(request_id)), name)

    def events_for_account(
        self, account: str, name: str | Sequence[str] | None = None
    ) -> list[IndexedEvent]:
        return self._by_key("account", account.lower(), name)

    def events_for_proposal(self, proposal_id: int) -> list[IndexedEvent]:
        return self._by_key("proposal", str(int(proposal_id)), None)

    def tx_hashes_seen(self, tx_hashes: Sequence[str]) -> set[str]:
        """Which of ``tx_hashes`` emitted an event the mirror holds."""
        wanted = sorted({h.lower() for h in tx_hashes})
        if not wanted:
            return set()
        with self.read_engine.connect() as db:
            return {
                str(h)
                for (h,) in db.execute(
                    sa.select(mirror_events.c.tx_hash)
                    .where(mirror_events.c.tx_hash.in_(wanted))
                    .distinct()
                )
            }

    def counts(self) -> dict[str, int]:
        """How many of each event were applied (each exactly once)."""
        with self.read_engine.connect() as db:
            return {
                str(e): int(n)
                for e, n in db.execute(
                    sa.select(mirror_event_counts.c.event, mirror_event_counts.c.n).where(
                        mirror_event_counts.c.n > 0
                    )
                )
            }


_COLUMNS = (
    mirror_events.c.block_number,
    mirror_events.c.block_hash,
    mirror_events.c.tx_hash,
    mirror_events.c.log_index,
    mirror_events.c.contract,
    mirror_events.c.address,
    mirror_events.c.event,
    mirror_events.c.indexed_args,
    mirror_events.c.args,
    mirror_events.c.seq,
)


def _int(value: Any) -> int:
    if isinstance(value, int):
        return value
    try:
        return int(str(value), 16)
    except ValueError:
        return -1


def _log_order(raw: dict[str, Any]) -> tuple[int, int]:
    return _int(raw.get("blockNumber")), _int(raw.get("logIndex"))


def _bytes_of(text: str | None) -> bytes | None:
    if not isinstance(text, str) or not text.startswith("0x") or len(text) != 66:
        return None
    try:
        return bytes.fromhex(text[2:])
    except ValueError:
        return None


def _hash_of(block: Any) -> bytes | None:
    """A block's hash as 32 bytes (None for a missing block)."""
    if not isinstance(block, dict):
        return None
    return _bytes_of(str(block.get("hash") or "").lower())


def _insert_ignore_stmt(db: DbConnection, table: sa.Table) -> Any:
    if db.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).on_conflict_do_nothing()


def _insert_ignore(db: DbConnection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    if rows:
        db.execute(_insert_ignore_stmt(db, table), rows)


def _bump_count(db: DbConnection, name: str, n: int) -> None:
    res = db.execute(
        sa.update(mirror_event_counts)
        .where(mirror_event_counts.c.event == name)
        .values(n=mirror_event_counts.c.n + n)
    )
    if res.rowcount == 0:
        db.execute(sa.insert(mirror_event_counts).values(event=name, n=max(0, n)))


def _sqlite_pragmas(engine: Engine) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        try:
            cur.execute("PRAGMA busy_timeout = 30000")
            cur.execute("PRAGMA journal_mode = WAL")
            # A range and its checkpoint commit together; losing the last commit on
            # power loss only means reading that range from the chain again.
            cur.execute("PRAGMA synchronous = NORMAL")
        finally:
            cur.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m govshare.chain.mirror",
        description="Follow the govshare events of a deployment into a SQLite file.",
    )
    parser.add_argument("--deployment", required=True, help="the deployment file")
    parser.add_argument("--db", required=True, help="the SQLite mirror file")
    parser.add_argument("--rpc", help="chain URL (default: the deployment's)")
    parser.add_argument("--once", action="store_true", help="catch up once and exit")
    parser.add_argument("--confirmations", type=int, default=0)
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between polls")
    parser.add_argument("--range", type=int, default=DEFAULT_RANGE, help="blocks per eth_getLogs")
    parser.add_argument(
        "--manifests",
        action="append",
        default=[],
        metavar="SOURCE",
        help="where record batch manifests are read (local:PATH, kubo:URL, a broker's URL); "
        "repeatable. Without one, batches are recorded but their records not indexed.",
    )
    args = parser.parse_args(argv)

    def say(msg: str) -> None:
        print(f"mirror: {msg}", file=sys.stderr, flush=True)

    stop = threading.Event()

    def on_signal(_sig: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        deployment = load_deployment(args.deployment, verify=False)
        conn: Connection | None = None
        while conn is None and not stop.is_set():
            try:
                conn = Connection(args.rpc or deployment.rpc_url, timeout=DEFAULT_TIMEOUT)
            except ChainUnavailable as exc:
                if args.once:
                    raise
                say(f"{exc.message} Waiting for it.")
                stop.wait(1.0)
        if conn is None:
            return 0
        from govshare.audit.sources import ManifestSources, open_source
        from govshare.chain.batchindex import BatchIndex
        from govshare.chain.subjectindex import SubjectIndex

        sources = ManifestSources([open_source(u) for u in args.manifests])
        mirror = Mirror.open_file(
            conn,
            deployment,
            args.db,
            confirmations=args.confirmations,
            range_size=args.range,
            log_fn=say,
            projections=[BatchIndex(sources if args.manifests else None), SubjectIndex()],
        )
        try:
            if args.once:
                n = mirror.run_once()
                say(f"stored {n} events; checkpoint block {mirror.checkpoint}")
            else:
                mirror.run_forever(poll_interval=args.poll, stop=stop)
        finally:
            mirror.close()
            conn.close()
    except (GovShareError, ConfigError) as exc:
        say(exc.message)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
