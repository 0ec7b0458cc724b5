"""What one department's broker works with, in one place: the explicit
dependencies of every use case.

    svc = BrokerServices(
        dept="TAX", db=db, ledger=ledger, store=store,
        account=profile.unlock_broker(), hpke=profile.unlock_hpke(),
        subject_key=load_subject_key(profile.dir), spool=dept_dir / "spool",
    )
    publish(svc, principal, key, staged, PublishRequest("tax-clearance", subject="91110000..."))

Nothing here is global: a test builds two or three of these side by side, one
per department, and may give them a clock it moves (``clock=``; by default the
ledger's, which :meth:`~govshare.chain.ledger.Ledger.now` reads too). Building
one registers the durable operation kinds of the use cases (``publish``,
``anchor_record_batch``, ``request``, ``anchor_receipts``) on its outbox, so
:meth:`Outbox.recover` and the worker can resume them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from govshare.audit.sources import ManifestSources, StoreSource
from govshare.broker.db import Database
from govshare.broker.exchange import DEFAULT_REQUEST_TTL, ExchangeDomain
from govshare.broker.notifications import NotificationProjection, Notifications, NotifySettings
from govshare.broker.outbox import Outbox
from govshare.broker.record_batches import DEFAULT_MAX_RECORDS, DEFAULT_WINDOW
from govshare.broker.users import normalise_dept
from govshare.chain.batch import MAX_BATCH_RECORDS
from govshare.chain.batchindex import BatchIndex, ManifestFetcher
from govshare.chain.ledger import Ledger
from govshare.chain.mirror import Mirror
from govshare.chain.subjectindex import SubjectIndex
from govshare.clock import Clock
from govshare.crypto import HpkePrivateKey
from govshare.home import ensure_dir
from govshare.storage import BlobStore

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

_mirror_log = logging.getLogger("govshare.broker.mirror")

#: Default upload limit of ``POST /v1/records``.
DEFAULT_MAX_UPLOAD = 256 * 1024 * 1024
#: Default deadline of a new access request (the contract needs one).
DEFAULT_REQUEST_DEADLINE = 3 * 24 * 3600


@dataclass(frozen=True)
class Limits:
    """Tunable limits of one broker."""

    #: Largest upload accepted, in bytes.
    max_upload: int = DEFAULT_MAX_UPLOAD
    #: Validity of the exchange requests this broker signs, in seconds.
    exchange_ttl: int = DEFAULT_REQUEST_TTL
    #: Seconds to wait for a peer broker (connect, and between bytes).
    peer_timeout: float = 60.0
    #: Deadline given to a new access request when the clerk names none, in seconds.
    request_deadline: int = DEFAULT_REQUEST_DEADLINE
    #: Records anchored per transaction at most (1: each with its own transaction).
    batch_max_records: int = DEFAULT_MAX_RECORDS
    #: Seconds the oldest waiting record waits for others to join its batch.
    batch_window: float = DEFAULT_WINDOW
    #: Seconds ``POST /v1/records`` waits for the anchor before answering "anchoring"
    #: (a client that says ``Prefer: respond-async`` is answered at once).
    publish_wait: float = 10.0
    #: Seconds after an exchange during which its requester may resume the transfer
    #: (no new use); also how long an unacknowledged receipt waits for its ack.
    resume_window: int = 600

    def __post_init__(self) -> None:
        if self.max_upload < 1 or self.exchange_ttl < 1 or self.peer_timeout <= 0:
            raise ValueError("limits must be positive")
        if not 1 <= self.batch_max_records <= MAX_BATCH_RECORDS:
            raise ValueError(f"batch_max_records is 1 to {MAX_BATCH_RECORDS}")
        if not 0 <= self.resume_window <= 86_400:
            raise ValueError("resume_window is 0 to 86400 seconds")
        if not (0 <= self.batch_window <= 3600 and 0 <= self.publish_wait <= 600):
            raise ValueError("batch_window is 0 to 3600 seconds, publish_wait 0 to 600")


class BrokerServices:
    """The ledger, blob store, keys and database one department's broker uses."""

    def __init__(
        self,
        *,
        dept: str,
        db: Database,
        ledger: Ledger,
        store: BlobStore,
        account: LocalAccount,
        hpke: HpkePrivateKey,
        subject_key: bytes,
        spool: Path,
        retired_hpke: Sequence[HpkePrivateKey] = (),
        outbox: Outbox | None = None,
        limits: Limits | None = None,
        http: httpx.Client | None = None,
        clock: Clock | None = None,
        manifest_sources: ManifestFetcher | None = None,
        notify: NotifySettings | None = None,
    ) -> None:
        self.dept = normalise_dept(dept)
        self.db = db
        self.ledger = ledger
        #: What every use case and worker of this broker reads the time from: the
        #: ledger's clock unless given (a test passes one it moves, to both).
        self.clock = clock if clock is not None else ledger.clock
        self.store = store
        self.account = account
        self.hpke = hpke
        #: The department's earlier HPKE keys, newest first: its own capsules of
        #: records published before a key rotation open with one of them.
        self.retired_hpke = tuple(retired_hpke)
        self.subject_key = subject_key
        self.spool = ensure_dir(Path(spool))
        self.outbox = outbox or Outbox(db, clock=self.clock)
        self.limits = limits or Limits()
        timeout = httpx.Timeout(
            self.limits.peer_timeout, connect=min(10.0, self.limits.peer_timeout)
        )
        self._own_http = http is None
        # Peers are other departments' brokers: plain HTTP(S), no cookies, no redirects.
        self.http = http or httpx.Client(
            timeout=timeout,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        )
        self._domain: ExchangeDomain | None = None
        self._lock = threading.Lock()

        # the use cases register their steps
        from govshare.broker import access, publish, receipt_batches, record_batches, signed
        from govshare.broker.acks import AckSender
        from govshare.broker.chainwatch import OwnTxWatch
        from govshare.broker.peercache import CacheProjection, ChainCache

        publish.register(self)
        record_batches.register(self)
        access.register(self)
        receipt_batches.register(self)
        #: Closes batches of accepted records and anchors each with one transaction
        #: (its thread is started by the runtime; without it, a clerk waiting for
        #: an anchor drives the batch).
        self.record_batcher = record_batches.RecordBatcher(
            self, max_records=self.limits.batch_max_records, window=self.limits.batch_window
        )
        #: The requester's acknowledgements of fetched records (acks.py): queued for
        #: its thread, started by the runtime; without it, sent by the fetch itself.
        self.acks = AckSender(self)
        #: Concurrent single publishes accepted together (publish.py); None with one
        #: record per batch, where each publish runs its own steps.
        self.publish_group: publish.PublishGroup | None = (
            publish.PublishGroup(self) if self.limits.batch_max_records > 1 else None
        )
        signed.register(self.outbox, ledger)  # administrators' journaled decisions
        #: Where record batch manifests are read from: by default this broker's own
        #: store (in a consortium a Kubo node of the private swarm, which serves any
        #: member's pinned manifest by CID); ``manifest_sources`` adds others.
        self.manifest_sources = manifest_sources or ManifestSources(
            [StoreSource(store, f"{self.dept}'s store")]
        )
        #: Every anchored record batch and the records its manifest lists (a
        #: projection of the mirror): where a batched record is found to materialise.
        self.batches = BatchIndex(self.manifest_sources, clock=self.clock)
        #: The broker's one ledger mirror (in its database): the chain's events, the
        #: requests and grants derived from them, the record batches' manifests, and
        #: the check that this broker's own transactions stayed on chain. One tick at
        #: a time (it locks).
        #: Department entries, bindings and anchors the exchange reads, dropped by
        #: the mirror's events (broker/peercache.py); grants are never cached.
        self.chain_cache = ChainCache(ledger, self.clock)
        #: This department's notifications (the event stream's and webhooks' log),
        #: derived from the mirror's events in its transactions.
        self.notifications = Notifications(self, notify)
        self.mirror = Mirror(
            ledger.conn,
            ledger.deployment,
            db.engine,
            read_engine=db.read_engine,
            projections=[
                access.RequestProjection(self),
                self.batches,
                SubjectIndex(),
                OwnTxWatch(self),
                CacheProjection(self.chain_cache),
                NotificationProjection(self),
            ],
            on_stale="reset",
            log_fn=_mirror_log.info,
        )
        #: What the housekeeper and the request routes tick (the mirror itself).
        self.sync = self.mirror

    @property
    def domain(self) -> ExchangeDomain:
        """The EIP-712 domain of exchange requests and receipts (read from the
        AccessLedger once, and checked: see :meth:`ExchangeDomain.from_ledger`)."""
        with self._lock:
            if self._domain is None:
                self._domain = ExchangeDomain.from_ledger(self.ledger)
            return self._domain

    @property
    def hpke_keys(self) -> tuple[HpkePrivateKey, ...]:
        """The department's HPKE keys to try, in order: the current one, then the
        retired ones, newest first (what was sealed before a rotation)."""
        return (self.hpke, *self.retired_hpke)

    def own_dek(self, capsule: bytes, record_id: bytes | str) -> bytes:
        """The data key of one of this department's records, from its own capsule:
        with the current HPKE key, or the retired key it was made for (a record
        published before a rotation, perhaps of the other KEM)."""
        from govshare.crypto import unwrap_dek
        from govshare.crypto.errors import CapsuleOpenFailed

        keys = self.hpke_keys
        for i, key in enumerate(keys):
            try:
                return unwrap_dek(
                    capsule, key, record_id=record_id, grant_id=None, recipient_dept=self.dept
                )
            except CapsuleOpenFailed:
                if i == len(keys) - 1:
                    raise
        raise AssertionError("unreachable: keys is never empty")  # pragma: no cover

    def close(self) -> None:
        if self._own_http:
            self.http.close()

    def __repr__(self) -> str:
        return f"BrokerServices({self.dept!r}, broker={self.account.address})"
