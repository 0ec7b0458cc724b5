"""A department's notifications: what its broker tells it, in one log that the
event stream (``GET /v1/events``) and the webhooks (:mod:`govshare.broker.webhooks`)
read.

    svc.notifications.read_after(41)        # notifications 42, 43, ... (not retracted)
    scan_deadlines(svc)                     # housekeeping: incoming requests about to expire
    async for n in svc.notifications.follow(after=41): ...   # the stream (None: heartbeat)

Where they come from
--------------------
:class:`NotificationProjection` is a projection of the broker's ledger mirror
(``chain/mirror.py``): it turns the AccessLedger events that concern *this*
department into notifications, in the transaction that stores the events and
the checkpoint (a crash keeps both or neither):

===============================  =================================================
kind                             told to (from)
===============================  =================================================
``request.incoming``             the owner (``AccessRequested``; by subject, with
                                 its ``SubjectRequested``)
``request.approved``             the requester (``AccessApproved``; ``unconditional``
                                 when the AccessLedger itself approved)
``request.denied``               the requester (``AccessDenied``)
``grant.revoked``                the requester, and the owner as confirmation (``AccessRevoked``)
``request.reminded``             the owner (``RequestReminded``)
``request.escalated``            the owner (``RequestEscalated``)
``request.deadline_approaching`` the owner: a pending incoming request whose deadline is
                                 within ``NotifySettings.deadline_window`` (housekeeping)
===============================  =================================================

Nothing is told about other departments' business: an event is read only when
this department is its owner or requester (as the table says).

Each notification has an ``id`` (the stream's event id: increasing, never
reused) and a ``source``, the fact it tells (``request.incoming:7``,
``request.reminded:7:2``...), unique: a fact is told once, whatever the number
of times the mirror reads its event.

Rewinds
-------
When the mirror rewinds (a reorg, a dev chain restored from an older dump), the
notifications derived from the rewound events are **retracted**, not deleted:
the stream and the webhooks skip them from then on, and their ids are never
reused. When the mirror reads the same fact again from the new chain (the
common case: the same request, re-sent by its broker), the notification comes
back under its old id, so a client that saw it sees it once; if the fact now
says something else (another request took that id), it is told anew with a new
id. A mirror reset (another deployment) deletes them all.

Every value is read from the chain, i.e. from any member: each is decoded
totally and bounded (:data:`MAX_TEXT` characters a string, :data:`MAX_DATA`
bytes a payload); a value that does not decode is left out, and an event
without the request id or departments is skipped with a log line. Terminals
show them through :func:`govshare.util.printable`.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import anyio
from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import Connection as DbConnection

from govshare.broker.db import AccessRequest, Notification, RequestStatus, insert_if_absent
from govshare.broker.errors import EventCursorInvalid, TooManyStreams
from govshare.chain.contracts import decode_code
from govshare.chain.mirror import IndexedEvent, Projection
from govshare.clock import utcnow
from govshare.util import chain_time

if TYPE_CHECKING:
    from govshare.broker.services import BrokerServices
    from govshare.settings import Settings

log = logging.getLogger(__name__)

#: Every kind of notification.
KINDS = (
    "request.incoming",
    "request.approved",
    "request.denied",
    "grant.revoked",
    "request.reminded",
    "request.escalated",
    "request.deadline_approaching",
    "subject.delivered",
)
#: Characters kept of a string read from the chain (purpose, reason...).
MAX_TEXT = 2000
#: Bytes of a notification's JSON data at most (strings are cut to fit).
MAX_DATA = 8192
#: Supervisors listed in an escalation, at most.
MAX_SUPERVISORS = 32
#: The largest event id (a signed 64-bit integer).
MAX_ID = 2**63 - 1

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_HEX32 = re.compile(r"^0x[0-9a-fA-F]{64}$")
_CURSOR = re.compile(r"^[0-9]{1,19}$")


@dataclass(frozen=True)
class NotifySettings:
    """The notifications' knobs: the stream's, the deadline warning's and the
    webhooks'. ``govshare serve`` takes them from :class:`govshare.settings.Settings`
    (:meth:`from_settings`); tests build their own."""

    #: Seconds between two reads of the notification log by an open stream.
    poll_interval: float = 1.0
    #: Seconds of silence after which a stream sends a comment (keeps proxies from closing it).
    heartbeat: float = 15.0
    #: Notifications read (and sent) per poll at most.
    batch: int = 100
    #: Open streams per broker at most (one more is refused with 503 ``events.busy``).
    max_streams: int = 64
    #: Seconds a stream stays open at most; the client reconnects with Last-Event-ID.
    stream_max_age: float = 3600.0
    #: Warn about a pending incoming request this many seconds before its deadline.
    deadline_window: int = 24 * 3600
    #: Seconds a webhook receiver has to answer one delivery.
    webhook_timeout: float = 10.0
    #: Seconds before the first retry of a failed delivery; doubled after each failure.
    webhook_backoff: float = 10.0
    #: Seconds between two retries at most.
    webhook_backoff_cap: float = 3600.0
    #: Attempts of a delivery before it is given up (``failed``).
    webhook_max_attempts: int = 12
    #: This department's categories whose every delivery is a ``subject.delivered``
    #: notification (the subject must be told: PIPL Art. 35).
    subject_categories: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not (self.poll_interval > 0 and self.heartbeat > 0 and self.stream_max_age > 0):
            raise ValueError("poll_interval, heartbeat and stream_max_age must be positive")
        if self.batch < 1 or self.max_streams < 1 or self.deadline_window < 0:
            raise ValueError("batch and max_streams are at least 1, deadline_window at least 0")
        if not (self.webhook_timeout > 0 and 0 < self.webhook_backoff <= self.webhook_backoff_cap):
            raise ValueError("webhook timeout and backoff must be positive, backoff <= its cap")
        if self.webhook_max_attempts < 1:
            raise ValueError("webhook_max_attempts is at least 1")

    @classmethod
    def from_settings(cls, settings: Settings) -> NotifySettings:
        """The notifications' part of govshare's settings (``GOVSHARE_EVENTS_*`` ...)."""
        return cls(
            poll_interval=settings.events_poll_interval,
            heartbeat=settings.events_heartbeat,
            deadline_window=settings.deadline_warning,
            webhook_max_attempts=settings.webhook_max_attempts,
            subject_categories=frozenset(
                c.strip() for c in settings.notify_subject_categories.split(",") if c.strip()
            ),
        )


@dataclass(frozen=True)
class NotificationView:
    """One notification as the stream and the webhooks send it."""

    id: int
    kind: str
    department: str
    created_at: datetime
    data: dict[str, Any]
    block_number: int | None = None
    tx_hash: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON object sent (``data:`` of an SSE event, a webhook's body)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "department": self.department,
            "created_at": self.created_at.isoformat().replace("+00:00", "Z"),
            "chain": (
                {"block": self.block_number, "tx_hash": self.tx_hash}
                if self.block_number is not None
                else None
            ),
            "data": self.data,
        }

    def body(self) -> bytes:
        """:meth:`to_json` as compact UTF-8 JSON, one line (what is signed)."""
        return json.dumps(self.to_json(), separators=(",", ":"), sort_keys=True).encode()


# -- decoding what the chain says (hostile input) -------------------------------------------


def _uint(value: Any, bits: int = 256) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 0 <= value < 2**bits else None


def _code(value: Any) -> str | None:
    if not (isinstance(value, str) and _HEX32.match(value)):
        return None
    code = decode_code(bytes.fromhex(value[2:]))
    return code[:40] or None


def _text(value: Any) -> str:
    return value[:MAX_TEXT] if isinstance(value, str) else ""


def _address(value: Any) -> str | None:
    return value.lower() if isinstance(value, str) and _ADDRESS.match(value) else None


def _hex32(value: Any) -> str | None:
    return value.lower() if isinstance(value, str) and _HEX32.match(value) else None


def _time(value: Any) -> str | None:
    when = chain_time(_uint(value, 64))
    return when.isoformat().replace("+00:00", "Z") if when is not None else None


def _bounded(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` cut to :data:`MAX_DATA` bytes of JSON: its longest strings shortened."""
    out = dict(data)
    while len(json.dumps(out, separators=(",", ":"))) > MAX_DATA:
        longest = max(
            (k for k, v in out.items() if isinstance(v, str) and v),
            key=lambda k: len(out[k]),
            default=None,
        )
        if longest is None:
            return {k: v for k, v in out.items() if not isinstance(v, list)}
        out[longest] = out[longest][: len(out[longest]) // 2] + "…"
    return out


@dataclass(frozen=True)
class Derived:
    """A notification one event makes for this department."""

    kind: str
    source: str
    data: dict[str, Any]


def derive(  # noqa: C901 — one table of events
    ev: IndexedEvent, dept: str, subjects: Mapping[int, IndexedEvent] | None = None
) -> Derived | None:
    """The notification ``ev`` makes for department ``dept``, or None (not its
    business, not an event that notifies, or arguments that do not decode).
    ``subjects``: the range's ``SubjectRequested`` events by request id — a request
    by subject is its ``AccessRequested`` (a zero record id) and that event, which
    the contract emits in the same transaction."""
    if ev.contract != "AccessLedger":
        return None
    a = ev.args
    rid = _uint(a.get("requestId", a.get("grantId")))
    owner, requester = _code(a.get("ownerDepartment")), _code(a.get("requesterDepartment"))
    if ev.event not in _NOTIFYING or dept not in (owner, requester):
        return None
    if not rid or owner is None or requester is None:
        log.warning(
            "notifications: skipped a %s event in tx %s whose request or departments do not decode",
            ev.event,
            ev.tx_hash[:66],
        )
        return None
    base: dict[str, Any] = {"request_id": rid, "owner": owner, "requester": requester}
    if ev.event == "AccessRequested" and dept == owner:
        data = {
            **base,
            "direction": "incoming",
            "purpose": _text(a.get("purpose")),
            "legal_basis": _text(a.get("legalBasis")),
            "deadline": _time(a.get("deadline")),
            "requested_by": _address(a.get("requestedBy")),
        }
        scoped = (subjects or {}).get(rid)
        if scoped is not None:
            b = scoped.args
            data |= {
                "by_subject": True,
                "category": _code(b.get("category")),
                "subject_ref": _hex32(b.get("subjectRef")),
                "latest_only": b.get("latestOnly") is True,
                "record_id": None,
            }
        else:
            data |= {"by_subject": False, "record_id": _hex32(a.get("recordId"))}
        return Derived("request.incoming", f"request.incoming:{rid}", _bounded(data))
    if ev.event == "AccessApproved" and dept == requester:
        by = _address(a.get("approvedBy"))
        data = {
            **base,
            "grant_id": rid,
            "record_id": _hex32(a.get("recordId")),
            "scope": _hex32(a.get("scope")),
            "expires_at": _time(a.get("expiresAt")),
            "max_uses": _uint(a.get("maxUses"), 32),
            "approved_by": by,
            # the contract approves itself a request in an "unconditional" category
            "unconditional": by is not None and by == ev.address.lower(),
        }
        return Derived("request.approved", f"request.approved:{rid}", _bounded(data))
    if ev.event == "AccessDenied" and dept == requester:
        data = {**base, "reason": _text(a.get("reason")), "denied_by": _address(a.get("deniedBy"))}
        return Derived("request.denied", f"request.denied:{rid}", _bounded(data))
    if ev.event == "AccessRevoked":
        data = {
            **base,
            "grant_id": rid,
            "direction": "outgoing" if dept == requester else "incoming",
            "reason": _text(a.get("reason")),
            "revoked_by": _address(a.get("revokedBy")),
        }
        return Derived("grant.revoked", f"grant.revoked:{rid}", _bounded(data))
    if ev.event == "RequestReminded" and dept == owner:
        n = _uint(a.get("reminderCount"), 32)
        data = {**base, "reminder_count": n, "by": _address(a.get("by"))}
        return Derived("request.reminded", f"request.reminded:{rid}:{n}", _bounded(data))
    if ev.event == "RequestEscalated" and dept == owner:
        n = _uint(a.get("escalationCount"), 32)
        raw = a.get("supervisors")
        sups = (
            [s for s in (_address(x) for x in raw[:MAX_SUPERVISORS]) if s]
            if isinstance(raw, list)
            else []
        )
        data = {**base, "escalation_count": n, "supervisors": sups, "by": _address(a.get("by"))}
        return Derived("request.escalated", f"request.escalated:{rid}:{n}", _bounded(data))
    return None


_NOTIFYING = frozenset(
    {
        "AccessRequested",
        "AccessApproved",
        "AccessDenied",
        "AccessRevoked",
        "RequestReminded",
        "RequestEscalated",
    }
)


def _record(db: DbConnection, d: Derived, ev: IndexedEvent | None, now: datetime) -> None:
    """Write ``d`` once: a new fact is inserted; a retracted one that comes back
    unchanged is restored under its id; a retracted one that now says something
    else is told anew (the old row keeps its id, its source renamed)."""
    values: dict[str, Any] = {
        "kind": d.kind,
        "source": d.source,
        "data": d.data,
        "event_seq": ev.seq if ev is not None and ev.seq else None,
        "block_number": ev.block_number if ev is not None else None,
        "tx_hash": ev.tx_hash if ev is not None else None,
        "created_at": now,
    }
    row = db.execute(
        select(Notification.id, Notification.data, Notification.retracted_at).where(
            Notification.source == d.source
        )
    ).first()
    if row is not None and row.retracted_at is not None:
        if row.data == d.data:
            restore = {k: values[k] for k in ("event_seq", "block_number", "tx_hash")}
            db.execute(
                update(Notification)
                .where(Notification.id == row.id)
                .values(retracted_at=None, **restore)
            )
            return
        db.execute(
            update(Notification)
            .where(Notification.id == row.id)
            .values(source=f"{d.source}~{row.id}"[:160])
        )
        row = None
    if row is None:
        insert_if_absent(db, Notification, **values)


class NotificationProjection(Projection):
    """Turns the mirror's AccessLedger events into this department's notifications."""

    def __init__(self, svc: BrokerServices) -> None:
        self.svc = svc

    def apply(
        self, db: DbConnection, events: Sequence[IndexedEvent], prepared: Any, head: int
    ) -> None:
        now = utcnow(self.svc.clock)
        subjects = {
            rid: ev
            for ev in events
            if ev.contract == "AccessLedger" and ev.event == "SubjectRequested"
            for rid in [_uint(ev.args.get("requestId"))]
            if rid is not None
        }
        for ev in events:
            d = derive(ev, self.svc.dept, subjects)
            if d is not None:
                _record(db, d, ev, now)

    def apply_rewind(
        self, db: DbConnection, removed: Sequence[IndexedEvent], prepared: Any, fork: int
    ) -> None:
        db.execute(
            update(Notification)
            .where(
                Notification.block_number > fork,
                Notification.event_seq.is_not(None),
                Notification.retracted_at.is_(None),
            )
            .values(retracted_at=utcnow(self.svc.clock))
        )

    def reset(self, db: DbConnection) -> None:
        db.execute(delete(Notification))


# -- deadlines ---------------------------------------------------------------------------


def scan_deadlines(svc: BrokerServices) -> int:
    """Tell this department, once per request, of a pending incoming request
    whose deadline is within the window (by ``svc.clock``). Returns how many
    were told. Reads first: an idle broker writes nothing."""
    window = svc.notifications.settings.deadline_window
    now = utcnow(svc.clock)
    ar = AccessRequest
    with svc.db.session(readonly=True) as s:
        due = s.execute(
            select(ar.request_id, ar.requester, ar.record_id, ar.purpose, ar.deadline)
            .where(
                ar.owner == svc.dept,
                ar.status == RequestStatus.PENDING.value,
                ar.deadline > now,
                ar.deadline <= now + timedelta(seconds=window),
            )
            .order_by(ar.deadline)
            .limit(500)
        ).all()
        if not due:
            return 0
        told = set(
            s.scalars(
                select(Notification.source).where(
                    Notification.source.in_([f"request.deadline_approaching:{r[0]}" for r in due])
                )
            )
        )
    fresh = [r for r in due if f"request.deadline_approaching:{r[0]}" not in told]
    if not fresh:
        return 0
    with svc.db.writing() as db:
        for rid, requester, record_id, purpose, deadline in fresh:
            data = {
                "request_id": int(rid),
                "owner": svc.dept,
                "requester": requester,
                "record_id": record_id if _HEX32.match(record_id or "") else None,
                "purpose": (purpose or "")[:MAX_TEXT],
                "deadline": deadline.isoformat().replace("+00:00", "Z") if deadline else None,
            }
            kind = "request.deadline_approaching"
            _record(db, Derived(kind, f"{kind}:{rid}", _bounded(data)), None, now)
    return len(fresh)


def record_subject_delivery(
    svc: BrokerServices,
    db: DbConnection,
    *,
    record_id: str,
    category: str,
    subject_ref: str,
    requester: str,
    grant_id: int,
    receipt_seq: int,
    purpose: str,
    legal_basis: str,
) -> bool:
    """In the exchange's own transaction (with its receipt: both or neither), tell
    this department that a record of a category whose subjects must be told was
    delivered: ``subject.delivered``, once per receipt. The subject appears as its
    keyed reference only; the department that serves citizens resolves it.
    Returns whether the category asks for it."""
    if category not in svc.notifications.settings.subject_categories:
        return False
    data = {
        "request_id": int(grant_id),
        "record_id": record_id,
        "owner": svc.dept,
        "category": category,
        "subject_ref": subject_ref if _HEX32.match(subject_ref or "") else None,
        "requester": requester,
        "grant_id": int(grant_id),
        "receipt_seq": int(receipt_seq),
        "purpose": (purpose or "")[:MAX_TEXT],
        "legal_basis": (legal_basis or "")[:MAX_TEXT],
    }
    kind = "subject.delivered"
    _record(db, Derived(kind, f"{kind}:{receipt_seq}", _bounded(data)), None, utcnow(svc.clock))
    return True


# -- reading and following ---------------------------------------------------------------


def parse_cursor(text: str | None, what: str) -> int | None:
    """A ``Last-Event-ID`` / ``after`` value: a decimal event id, or None when absent."""
    if text is None or text.strip() == "":
        return None
    text = text.strip()
    if not _CURSOR.match(text) or int(text) > MAX_ID:
        raise EventCursorInvalid(
            f"The {what} must be a notification id (a whole number from 0), not "
            f"{text[:40]!r}. Send the id of the last event received, or 0 for all.",
        )
    return int(text)


class Notifications:
    """One broker's notification log, and its open streams."""

    def __init__(self, svc: BrokerServices, settings: NotifySettings | None = None) -> None:
        self.svc = svc
        self.settings = settings or NotifySettings()
        #: Set when the broker shuts down: every open stream ends within a poll.
        self.closing = threading.Event()
        self._lock = threading.Lock()
        self._streams = 0

    @property
    def open_streams(self) -> int:
        return self._streams

    def latest_id(self) -> int:
        """The newest notification's id (0: none yet), retracted ones included."""
        with self.svc.db.reading() as db:
            return int(db.execute(select(func.max(Notification.id))).scalar() or 0)

    def read_after(self, after: int, limit: int = 100) -> list[NotificationView]:
        """Notifications with ids above ``after``, oldest first (retracted ones left out)."""
        n = Notification
        with self.svc.db.reading() as db:
            rows = db.execute(
                select(n.id, n.kind, n.created_at, n.data, n.block_number, n.tx_hash)
                .where(n.id > after, n.retracted_at.is_(None))
                .order_by(n.id)
                .limit(max(1, min(int(limit), 1000)))
            ).all()
        return [
            NotificationView(
                id=int(r.id),
                kind=str(r.kind),
                department=self.svc.dept,
                created_at=r.created_at,
                data=dict(r.data or {}),
                block_number=r.block_number,
                tx_hash=r.tx_hash,
            )
            for r in rows
        ]

    def start_at(self, after: int | None) -> int:
        """Where a stream starts: after ``after`` (refused beyond the newest id: a
        cursor of another broker or database), else after the newest notification."""
        latest = self.latest_id()
        if after is None:
            return latest
        if after > latest:
            raise EventCursorInvalid(
                f"Event id {after} is beyond this broker's newest notification ({latest}): it "
                "is not from this broker's stream. Resume from 0, or without a Last-Event-ID.",
            )
        return after

    def check_capacity(self) -> None:
        if self._streams >= self.settings.max_streams or self.closing.is_set():
            raise TooManyStreams(
                f"This broker already serves {self._streams} event stream(s), its limit; "
                "try again shortly (or use a webhook)."
                if not self.closing.is_set()
                else "This broker is shutting down; reconnect in a moment."
            )

    async def follow(self, after: int) -> AsyncIterator[NotificationView | None]:
        """The notifications after ``after`` as they come, oldest first; None when
        the stream has been quiet for ``heartbeat`` seconds. Ends when the broker
        shuts down or after ``stream_max_age`` seconds (clients resume from the
        last id). Polls the log every ``poll_interval`` seconds."""
        s = self.settings
        with self._lock:
            self._streams += 1
        try:
            started = last = anyio.current_time()
            cursor = after
            while not self.closing.is_set():
                batch = await anyio.to_thread.run_sync(self.read_after, cursor, s.batch)
                for item in batch:
                    yield item
                    cursor = item.id
                now = anyio.current_time()
                if batch:
                    last = now
                    if len(batch) >= s.batch:
                        continue
                if now - started >= s.stream_max_age:
                    return
                if now - last >= s.heartbeat:
                    yield None
                    last = now
                await anyio.sleep(min(s.poll_interval, max(0.0, s.heartbeat - (now - last))))
        finally:
            with self._lock:
                self._streams -= 1

    def close(self) -> None:
        """End every open stream (within one poll interval) and refuse new ones."""
        self.closing.set()
