"""The local store's pin set: a small SQLite database in the store's directory.

One row per recursive pin, keyed by the CIDv1 bytes (a v0 and a v1 CID of the
same block are one pin), ordered by when it was first pinned. A pin is one
``INSERT OR IGNORE`` committed with ``synchronous=FULL`` before ``put``/``pin``
returns, so an acknowledged pin survives SIGKILL and power loss, and a put
costs the same at 100k pins as at none (``pins.json`` was rewritten whole on
every put: O(pins)).

A store made before this index kept its pins in ``pins.json``; the first open
copies them in and records that it did so in the same transaction, then
renames the file to ``pins.json.migrated``. A crash between the two leaves a
file the marker says to ignore.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from govshare.storage.cid import CID
from govshare.storage.errors import InvalidCID, StorageError

DB_NAME = "pins.sqlite"
LEGACY_NAME = "pins.json"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS pins (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key BLOB NOT NULL UNIQUE,
    cid TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class PinIndex:
    """Recursive pins of one local store; safe across threads and processes."""

    def __init__(self, root: Path) -> None:
        self.path = root / DB_NAME
        self._legacy = root / LEGACY_NAME
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StorageError(f"the pin index {self.path} is unusable: {exc}") from exc
        self._migrate_legacy()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StorageError(f"cannot update the pin index {self.path}: {exc}") from exc

    def _read(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise StorageError(f"cannot read the pin index {self.path}: {exc}") from exc

    def add(self, cids: Iterable[CID]) -> None:
        rows = [(bytes(c.to_v1()), str(c)) for c in cids]
        with self._write() as db:
            db.executemany("INSERT OR IGNORE INTO pins (key, cid) VALUES (?, ?)", rows)

    def remove(self, cid: CID) -> bool:
        """Unpin; False when ``cid`` was not pinned."""
        with self._write() as db:
            return db.execute("DELETE FROM pins WHERE key = ?", (bytes(cid.to_v1()),)).rowcount > 0

    def contains(self, cid: CID) -> bool:
        return bool(self._read("SELECT 1 FROM pins WHERE key = ?", (bytes(cid.to_v1()),)))

    def all(self) -> list[CID]:
        out = []
        for (text,) in self._read("SELECT cid FROM pins ORDER BY seq"):
            try:
                out.append(CID.parse(str(text)))
            except InvalidCID as exc:
                raise StorageError(f"the pin index {self.path} holds a damaged CID") from exc
        return out

    def _migrate_legacy(self) -> None:
        if not self._legacy.exists():
            return
        with self._write() as db:
            done = db.execute("SELECT 1 FROM meta WHERE name = 'migrated_pins_json'").fetchone()
            if not done:
                cids = _read_legacy(self._legacy)
                db.executemany(
                    "INSERT OR IGNORE INTO pins (key, cid) VALUES (?, ?)",
                    [(bytes(c.to_v1()), str(c)) for c in cids],
                )
                db.execute(
                    "INSERT INTO meta (name, value) VALUES ('migrated_pins_json', ?)",
                    (str(len(cids)),),
                )
        # Committed (pins and marker together): the old file is only a leftover now.
        with contextlib.suppress(FileNotFoundError):
            self._legacy.replace(self._legacy.with_name(LEGACY_NAME + ".migrated"))


def _read_legacy(path: Path) -> list[CID]:
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise StorageError(f"the old pin set {path} is unreadable: {exc}") from exc
    try:
        return [CID.parse(s) for s in raw.get("pins", [])]
    except (InvalidCID, AttributeError, TypeError) as exc:
        raise StorageError(f"the old pin set {path} is damaged") from exc
