"""Event indexer: every govshare event, from the deploy block on, into SQLite.

* Block ranges are fetched with ``eth_getLogs`` (the three contract addresses)
  and written in **one SQLite transaction per range together with the
  checkpoint** (the last fully processed block), so a kill at any point either
  keeps the whole range or none of it.
* Rows are unique on ``(tx_hash, log_index)`` and inserted with ``INSERT OR
  IGNORE``; per-event work (the ``event_counts`` tally, and an optional
  ``on_event`` hook for derived tables) runs only for rows actually inserted,
  inside the same transaction: an event is applied exactly once.
* ``confirmations`` keeps the indexer that many blocks behind the head (0 on
  anvil; QBFT blocks are final, so 0 on Besu too). If the block at the
  checkpoint changed (a reorg), the last ``reorg_window`` blocks are re-read.
* A node that goes away is waited for with backoff; the indexer does not exit.

Run it as ``python -m govshare.chain.indexer --deployment FILE --db FILE
[--rpc URL] [--once]``.
"""

from __future__ import annotations

import argparse
import json
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from govshare.chain.abi import CONTRACT_NAMES, load_artifact
from govshare.chain.connection import DEFAULT_TIMEOUT, Connection
from govshare.chain.contracts import decode_code, to_bytes32
from govshare.chain.deploy import Deployment, load_deployment
from govshare.chain.events import LogDecoder
from govshare.chain.tx import Event
from govshare.errors import ChainUnavailable, ConfigError, DeploymentStale, GovShareError

SCHEMA_VERSION = 1
DEFAULT_RANGE = 1000  # Besu answers eth_getLogs for up to --rpc-max-logs-range (5000) blocks

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

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    block_number INTEGER NOT NULL,
    block_hash TEXT NOT NULL,
    tx_hash TEXT NOT NULL,
    log_index INTEGER NOT NULL,
    contract TEXT NOT NULL,
    address TEXT NOT NULL,
    event TEXT NOT NULL,
    indexed_args TEXT NOT NULL,
    args TEXT NOT NULL,
    UNIQUE (tx_hash, log_index)
);
CREATE INDEX IF NOT EXISTS events_block ON events (block_number, log_index);
CREATE INDEX IF NOT EXISTS events_name ON events (event, block_number);
CREATE TABLE IF NOT EXISTS event_keys (
    event_id INTEGER NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (kind, value, event_id)
) WITHOUT ROWID;
-- The cascade from events (a reorg rewind) finds an event's keys through this;
-- without it every deleted event scanned the whole table (quadratic rewinds).
CREATE INDEX IF NOT EXISTS event_keys_event ON event_keys (event_id);
CREATE TABLE IF NOT EXISTS event_counts (event TEXT PRIMARY KEY, n INTEGER NOT NULL);
"""


def _json_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    return value


def _keys(event: Event) -> Iterator[tuple[str, str]]:
    for name, value in event.args.items():
        if name in _DEPARTMENT_ARGS and isinstance(value, bytes):
            code = decode_code(value)
            if code:
                yield "department", code
        elif name in _RECORD_ARGS and isinstance(value, bytes) and any(value):
            yield "record", "0x" + value.hex()
        elif name in _REQUEST_ARGS and event.contract == "AccessLedger":
            yield "request", str(int(value))
        elif name == "proposalId" and int(value):
            yield "proposal", str(int(value))
        if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
            yield "account", value.lower()
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, str) and item.startswith("0x") and len(item) == 42:
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

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


OnEvent = Callable[[sqlite3.Connection, IndexedEvent], None]


class Indexer:
    """Follows the govshare events of one deployment into a SQLite file."""

    def __init__(
        self,
        conn: Connection | None,
        deployment: Deployment,
        db_path: str | Path,
        *,
        confirmations: int = 0,
        range_size: int = DEFAULT_RANGE,
        reorg_window: int = 64,
        on_event: OnEvent | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.conn = conn
        self.deployment = deployment
        self.db_path = Path(db_path)
        self.confirmations = max(0, int(confirmations))
        self.range_size = max(1, int(range_size))
        self.reorg_window = reorg_window
        self.on_event = on_event
        self.log = log or (lambda _msg: None)
        artifacts = {name: load_artifact(name) for name in CONTRACT_NAMES}
        self.decoder = LogDecoder({deployment.address(n): a for n, a in artifacts.items()})
        self.addresses = [deployment.address(n) for n in CONTRACT_NAMES]
        self._indexed = {
            (art.name, codec.name): frozenset(codec.indexed_names)
            for art in artifacts.values()
            for codec in art.events.values()
        }
        self.db = self._open()

    # -- storage ---------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(
            self.db_path, timeout=30, isolation_level=None, check_same_thread=False
        )
        db.execute("PRAGMA journal_mode=WAL")
        # A range and its checkpoint commit together; losing the last commit on
        # power loss only means re-reading that range from the chain.
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        db.executescript(_SCHEMA)
        identity = {
            "schema": str(SCHEMA_VERSION),
            "chain_id": str(self.deployment.chain_id),
            "deploy_block_hash": self.deployment.deploy_block_hash,
            "addresses": json.dumps(self.addresses),
        }
        stored = dict(db.execute("SELECT key, value FROM meta").fetchall())
        if "chain_id" in stored:
            for key, value in identity.items():
                if stored.get(key) != value:
                    db.close()
                    raise DeploymentStale(
                        f"The index {self.db_path} was built for another deployment ({key} "
                        "differs) — was the chain reset or redeployed? Delete the index file "
                        "to rebuild it from the chain.",
                        path=str(self.db_path),
                    )
        else:
            with _tx(db):
                db.executemany(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", identity.items()
                )
                db.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('checkpoint', ?)",
                    (str(self.deployment.deploy_block - 1),),
                )
                db.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('checkpoint_hash', '')"
                )
        return db

    def close(self) -> None:
        self.db.close()

    @property
    def checkpoint(self) -> int:
        """The last block whose events are all stored."""
        row = self.db.execute("SELECT value FROM meta WHERE key = 'checkpoint'").fetchone()
        return int(row[0])

    def _checkpoint_hash(self) -> str:
        row = self.db.execute("SELECT value FROM meta WHERE key = 'checkpoint_hash'").fetchone()
        return str(row[0]) if row else ""

    # -- following the chain ---------------------------------------------------

    def _require_conn(self) -> Connection:
        if self.conn is None:
            self.conn = Connection(self.deployment.rpc_url)
        return self.conn

    def _block_hash(self, number: int) -> str:
        block = self._require_conn().request("eth_getBlockByNumber", [hex(number), False])
        return str(block["hash"]) if block else ""

    def _check_reorg(self) -> None:
        cp, cp_hash = self.checkpoint, self._checkpoint_hash()
        if not cp_hash or cp < self.deployment.deploy_block:
            return
        if self._block_hash(cp) == cp_hash:
            return
        if self._block_hash(self.deployment.deploy_block) != self.deployment.deploy_block_hash:
            raise DeploymentStale(
                f"The chain at {self._require_conn().url} no longer has the deployment block — "
                "was the dev chain reset? Re-deploy, and delete the index to rebuild it.",
                url=self._require_conn().url,
            )
        back = max(self.deployment.deploy_block - 1, cp - self.reorg_window)
        self.log(f"block {cp} changed (reorg): re-reading from block {back + 1}")
        with _tx(self.db):
            self._delete_after(back)
            self._set_checkpoint(back, "")

    def _delete_after(self, block: int) -> None:
        for name, n in self.db.execute(
            "SELECT event, COUNT(*) FROM events WHERE block_number > ? GROUP BY event", (block,)
        ).fetchall():
            self.db.execute("UPDATE event_counts SET n = n - ? WHERE event = ?", (n, name))
        self.db.execute("DELETE FROM events WHERE block_number > ?", (block,))

    def _set_checkpoint(self, block: int, block_hash: str) -> None:
        self.db.execute("UPDATE meta SET value = ? WHERE key = 'checkpoint'", (str(block),))
        self.db.execute("UPDATE meta SET value = ? WHERE key = 'checkpoint_hash'", (block_hash,))

    def _store(self, event: Event, block_hash: str) -> bool:
        indexed_names = self._indexed.get((event.contract, event.name), frozenset())
        args = {k: _json_value(v) for k, v in event.args.items()}
        indexed = {k: v for k, v in args.items() if k in indexed_names}
        cur = self.db.execute(
            "INSERT OR IGNORE INTO events (block_number, block_hash, tx_hash, log_index, "
            "contract, address, event, indexed_args, args) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                event.block_number,
                block_hash,
                event.tx_hash,
                event.log_index,
                event.contract,
                event.address,
                event.name,
                json.dumps(indexed, sort_keys=True),
                json.dumps(args, sort_keys=True),
            ),
        )
        if cur.rowcount != 1:
            return False  # seen before: applied already
        event_id = cur.lastrowid
        self.db.executemany(
            "INSERT OR IGNORE INTO event_keys (event_id, kind, value) VALUES (?, ?, ?)",
            [(event_id, kind, value) for kind, value in set(_keys(event))],
        )
        self.db.execute(
            "INSERT INTO event_counts (event, n) VALUES (?, 1) "
            "ON CONFLICT (event) DO UPDATE SET n = n + 1",
            (event.name,),
        )
        if self.on_event is not None:
            self.on_event(
                self.db,
                IndexedEvent(
                    event.block_number,
                    block_hash,
                    event.tx_hash,
                    event.log_index,
                    event.contract,
                    event.address,
                    event.name,
                    args,
                    indexed,
                ),
            )
        return True

    def run_once(self, max_ranges: int | None = None) -> int:
        """Catch up to the head (minus ``confirmations``); returns how many new
        events were stored. Raises :class:`ChainUnavailable` if the node is down."""
        conn = self._require_conn()
        self._check_reorg()
        head = conn.block_number() - self.confirmations
        stored = 0
        ranges = 0
        while self.checkpoint < head and (max_ranges is None or ranges < max_ranges):
            start = self.checkpoint + 1
            end = min(head, start + self.range_size - 1)
            logs = conn.get_logs(start, end, self.addresses)
            end_hash = self._block_hash(end)
            with _tx(self.db):
                for log in sorted(
                    logs, key=lambda x: (int(x["blockNumber"], 16), int(x["logIndex"], 16))
                ):
                    if log.get("removed"):
                        continue
                    event = self.decoder(log)
                    if event is not None and self._store(event, str(log.get("blockHash", ""))):
                        stored += 1
                self._set_checkpoint(end, end_hash)
            ranges += 1
        return stored

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
                    self.log(f"node is back after {time.monotonic() - down_since:.1f}s")
                    down_since = None
                if n:
                    self.log(f"stored {n} events; checkpoint block {self.checkpoint}")
                backoff = poll_interval
                stop.wait(poll_interval)
            except ChainUnavailable as exc:
                if down_since is None:
                    down_since = time.monotonic()
                    self.log(f"{exc.message} Retrying with backoff.")
                stop.wait(backoff)
                backoff = min(max(backoff * 2, 0.1), max_backoff)

    # -- queries -----------------------------------------------------------------

    def _rows(self, sql: str, params: Sequence[Any]) -> list[IndexedEvent]:
        rows = self.db.execute(sql, params).fetchall()
        return [
            IndexedEvent(
                block_number=r[0],
                block_hash=r[1],
                tx_hash=r[2],
                log_index=r[3],
                contract=r[4],
                address=r[5],
                event=r[6],
                indexed_args=json.loads(r[7]),
                args=json.loads(r[8]),
            )
            for r in rows
        ]

    _COLUMNS = (
        "e.block_number, e.block_hash, e.tx_hash, e.log_index, e.contract, e.address, e.event, "
        "e.indexed_args, e.args"
    )

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
        where: list[str] = ["1 = 1"]
        params: list[Any] = []
        if name is not None:
            names = [name] if isinstance(name, str) else list(name)
            where.append(f"e.event IN ({','.join('?' * len(names))})")
            params += names
        if contract is not None:
            where.append("e.contract = ?")
            params.append(contract)
        if from_block is not None:
            where.append("e.block_number >= ?")
            params.append(from_block)
        if to_block is not None:
            where.append("e.block_number <= ?")
            params.append(to_block)
        # Only fixed fragments and placeholders are joined here; values are bound.
        sql = (
            f"SELECT {self._COLUMNS} FROM events e WHERE {' AND '.join(where)} "  # noqa: S608
            "ORDER BY e.block_number, e.log_index"
        )
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return self._rows(sql, params)

    def _by_key(
        self, kind: str, value: str, name: str | Sequence[str] | None
    ) -> list[IndexedEvent]:
        sql = (
            f"SELECT {self._COLUMNS} FROM event_keys k JOIN events e ON e.id = k.event_id "  # noqa: S608
            "WHERE k.kind = ? AND k.value = ?"
        )
        params: list[Any] = [kind, value]
        if name is not None:
            names = [name] if isinstance(name, str) else list(name)
            sql += f" AND e.event IN ({','.join('?' * len(names))})"
            params += names
        return self._rows(sql + " ORDER BY e.block_number, e.log_index", params)

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

    def counts(self) -> dict[str, int]:
        """How many of each event were applied (each exactly once)."""
        return dict(self.db.execute("SELECT event, n FROM event_counts WHERE n > 0").fetchall())


@contextmanager
def _tx(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m govshare.chain.indexer",
        description="Follow the govshare events of a deployment into a SQLite file.",
    )
    parser.add_argument("--deployment", required=True, help="the deployment file")
    parser.add_argument("--db", required=True, help="the SQLite index file")
    parser.add_argument("--rpc", help="chain URL (default: the deployment's)")
    parser.add_argument("--once", action="store_true", help="catch up once and exit")
    parser.add_argument("--confirmations", type=int, default=0)
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between polls")
    parser.add_argument("--range", type=int, default=DEFAULT_RANGE, help="blocks per eth_getLogs")
    args = parser.parse_args(argv)

    def say(msg: str) -> None:
        print(f"indexer: {msg}", file=sys.stderr, flush=True)

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
        indexer = Indexer(
            conn,
            deployment,
            args.db,
            confirmations=args.confirmations,
            range_size=args.range,
            log=say,
        )
        if args.once:
            n = indexer.run_once()
            say(f"stored {n} events; checkpoint block {indexer.checkpoint}")
        else:
            indexer.run_forever(poll_interval=args.poll, stop=stop)
        indexer.close()
    except (GovShareError, ConfigError) as exc:
        say(exc.message)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
