"""Signed webhooks: each notification of this department POSTed to the URLs its
administrators registered, at least once, signed with each webhook's secret.

    added = add_webhook(svc, admin, "https://intake.market.example/govshare")
    added.secret                          # shown once; kept sealed, never shown again
    WebhookWorker(svc).run_once()         # queue new notifications, deliver what is due

The delivery (one POST per notification and webhook)::

    POST <url>
    Content-Type: application/json
    Govshare-Event-Id: 42                       (the notification's id: dedupe on it)
    Govshare-Event: request.incoming            (its kind)
    Govshare-Department: TAX
    Govshare-Webhook-Id: 3
    Govshare-Delivery-Id: 17                    (the same on every retry)
    Govshare-Timestamp: 1733390000              (Unix seconds of this attempt)
    Govshare-Webhook-Signature: v1=<hex HMAC-SHA256(secret, timestamp + "." + body)>

    {"chain":{...},"created_at":"...","data":{...},"department":"TAX","id":42,"kind":"request.incoming"}

The body is the object the event stream sends as ``data:``. A receiver checks
the signature over the raw body (:func:`verify`) and refuses a timestamp far
from its clock (a replay).

* **Queued**, not lost: each round, every webhook's new notifications (ids above
  its ``cursor``) become ``webhook_deliveries`` rows, and the cursor moves, in
  one transaction. A new webhook starts at the newest notification (it gets
  what happens from then on).
* **At least once**: a delivery is ``done`` only after a 2xx answer; anything
  else (another status, a refused connection, a timeout) is retried after
  ``webhook_backoff`` seconds, doubled after each failure up to
  ``webhook_backoff_cap``, until ``webhook_max_attempts`` (then ``failed``).
  The schedule is on the broker's clock; rows survive a restart, so pending
  deliveries resume. A crash between the POST and its record sends it again:
  receivers dedupe on ``Govshare-Event-Id``. Deliveries are independent: one
  that fails does not hold back the next (no ordering promise).
* **Secrets** are 16-256 printable ASCII characters (generated: ``whsec_`` + 43
  random URL-safe characters). At rest each is sealed with HPKE to the
  department's own X25519 key (the key its records' data keys are wrapped for),
  bound to the department and the webhook id; only a hint (``whsec_Ab…``) is
  ever listed. A department that rotates its HPKE key re-adds its webhooks.
* **URLs**: ``http`` or ``https`` only, no user name or password in them, no
  redirects followed, nothing of the answer read but its status.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import string
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from sqlalchemy import func, insert, select, update

from govshare.broker.db import DeliveryState, Notification, Webhook, WebhookDelivery
from govshare.broker.errors import WebhookInvalid, WebhookUnknown
from govshare.broker.notifications import NotificationView
from govshare.broker.users import Principal
from govshare.broker.workers import Worker
from govshare.clock import utcnow
from govshare.util import printable

if TYPE_CHECKING:
    from govshare.broker.services import BrokerServices

log = logging.getLogger(__name__)

H_EVENT_ID = "Govshare-Event-Id"
H_EVENT = "Govshare-Event"
H_DEPARTMENT = "Govshare-Department"
H_WEBHOOK_ID = "Govshare-Webhook-Id"
H_DELIVERY_ID = "Govshare-Delivery-Id"
H_TIMESTAMP = "Govshare-Timestamp"
H_SIGNATURE = "Govshare-Webhook-Signature"

SECRET_PREFIX = "whsec_"  # noqa: S105 — a prefix, not a secret
MIN_SECRET, MAX_SECRET = 16, 256
MAX_URL = 2048
#: Webhooks per department at most.
MAX_WEBHOOKS = 20
#: Deliveries attempted per round at most, and notifications queued per webhook.
ROUND = 100
#: Seconds of clock difference a receiver should accept (what :func:`verify` uses).
TOLERANCE = 300

_SEALED_MAGIC = b"GSWS\x01"
_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
_PRINTABLE = frozenset(string.ascii_letters + string.digits + string.punctuation)


# -- signing -------------------------------------------------------------------------------


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Govshare-Webhook-Signature`` value: ``v1=`` + hex HMAC-SHA256 of
    ``timestamp`` (decimal), ``"."`` and the raw body, keyed with the secret."""
    mac = hmac.new(secret.encode(), str(int(timestamp)).encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify(
    secret: str, headers: Mapping[str, str], body: bytes, now: float, tolerance: int = TOLERANCE
) -> bool:
    """What a receiver checks: the signature over the raw body, and a timestamp
    within ``tolerance`` seconds of ``now``."""
    lower = {k.lower(): v for k, v in headers.items()}
    stamp = lower.get(H_TIMESTAMP.lower(), "")
    given = lower.get(H_SIGNATURE.lower(), "")
    if not stamp.isdigit() or abs(now - int(stamp)) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, int(stamp), body), given)


# -- secrets at rest -----------------------------------------------------------------------


def _info(dept: str, webhook_id: int) -> bytes:
    return b"govshare/webhook-secret/v1\x00" + dept.encode() + b"\x00" + str(webhook_id).encode()


def _seal(svc: BrokerServices, webhook_id: int, secret: str) -> bytes:
    public = svc.hpke.x25519.public_key()
    return _SEALED_MAGIC + _SUITE.encrypt(secret.encode(), public, _info(svc.dept, webhook_id))


def _open(svc: BrokerServices, webhook_id: int, sealed: bytes) -> str | None:
    """The secret, unsealed with the department's key, or with a retired one (a
    webhook added before an encryption key rotation); None when none opens it."""
    if not bytes(sealed).startswith(_SEALED_MAGIC):
        return None
    for key in svc.hpke_keys:
        try:
            raw = _SUITE.decrypt(
                bytes(sealed)[len(_SEALED_MAGIC) :], key.x25519, _info(svc.dept, webhook_id)
            )
            break
        except (InvalidTag, ValueError):
            continue
    else:
        return None
    return raw.decode("ascii", errors="replace")


def _hint(secret: str) -> str:
    return secret[: len(SECRET_PREFIX) + 2] + "…" if secret.startswith(SECRET_PREFIX) else "…"


# -- administration ------------------------------------------------------------------------


def check_url(url: str) -> str:
    """``url`` if it may be a webhook: http(s), a host, no credentials."""
    text = (url or "").strip()
    if len(text) > MAX_URL:
        raise WebhookInvalid(f"A webhook URL is at most {MAX_URL} characters.")
    try:
        parts = urlsplit(text)
        port = parts.port  # raises for a port that is no number
    except ValueError:
        raise WebhookInvalid("The webhook URL does not parse as a URL.") from None
    if parts.scheme.lower() not in ("http", "https"):
        shown = printable(parts.scheme[:20]) or "none"
        raise WebhookInvalid(
            f"A webhook URL must start with http:// or https:// (this one's scheme: {shown})."
        )
    if not parts.hostname:
        raise WebhookInvalid("The webhook URL names no host.")
    if parts.username is not None or parts.password is not None:
        raise WebhookInvalid(
            "A webhook URL must not carry a user name or password: the receiver checks "
            "the signature instead."
        )
    if any(ch.isspace() or not ch.isprintable() for ch in text) or port == 0:
        raise WebhookInvalid("The webhook URL contains spaces or control characters.")
    return text


def check_secret(secret: str) -> str:
    """A webhook secret given by an administrator: 16-256 printable ASCII characters."""
    if not (MIN_SECRET <= len(secret) <= MAX_SECRET) or not set(secret) <= _PRINTABLE:
        raise WebhookInvalid(
            f"A webhook secret is {MIN_SECRET} to {MAX_SECRET} printable ASCII characters "
            "(no spaces)."
        )
    return secret


@dataclass(frozen=True)
class WebhookView:
    """A webhook as listed (never its secret)."""

    id: int
    url: str
    secret_hint: str
    created_at: datetime
    created_by: str | None
    cursor: int
    pending: int = 0
    done: int = 0
    failed: int = 0
    last_status: int | None = None
    last_error: str | None = None


@dataclass(frozen=True)
class AddedWebhook:
    """A new webhook and its secret (shown to the administrator once)."""

    webhook: WebhookView
    secret: str = field(repr=False)
    generated: bool = False


def add_webhook(
    svc: BrokerServices, user: Principal | str, url: str, secret: str | None = None
) -> AddedWebhook:
    """Register ``url`` for this department's notifications from now on."""
    url = check_url(url)
    generated = secret is None
    secret = SECRET_PREFIX + secrets.token_urlsafe(32) if secret is None else check_secret(secret)
    who = (user.name if isinstance(user, Principal) else str(user))[:64]
    now = utcnow(svc.clock)
    with svc.db.session() as s:
        count = s.scalar(select(func.count()).select_from(Webhook)) or 0
        if count >= MAX_WEBHOOKS:
            raise WebhookInvalid(
                f"{svc.dept} already has {count} webhooks, the most a department may have; "
                "remove one first."
            )
        latest = s.scalar(select(func.max(Notification.id))) or 0
        hook = Webhook(
            url=url,
            secret_sealed=b"",
            secret_hint=_hint(secret),
            cursor=int(latest),
            created_by=who,
            created_at=now,
        )
        s.add(hook)
        s.flush()  # its id, which the sealed secret is bound to
        hook.secret_sealed = _seal(svc, hook.id, secret)
        view = WebhookView(hook.id, url, hook.secret_hint, now, who, int(latest))
    log.info("webhooks: %s added webhook %d (%s)", who, view.id, printable(url[:200]))
    return AddedWebhook(view, secret, generated)


def list_webhooks(svc: BrokerServices) -> list[WebhookView]:
    """This department's webhooks, with their deliveries counted by state."""
    d = WebhookDelivery
    with svc.db.session(readonly=True) as s:
        hooks = s.scalars(select(Webhook).order_by(Webhook.id)).all()
        counts: dict[tuple[int, str], int] = {
            (int(w), str(st)): int(n)
            for w, st, n in s.execute(
                select(d.webhook_id, d.state, func.count()).group_by(d.webhook_id, d.state)
            )
        }
        last: dict[int, tuple[int | None, str | None]] = {}
        for wid, status, error in s.execute(
            select(d.webhook_id, d.last_status, d.last_error)
            .where(d.attempts > 0)
            .order_by(d.webhook_id, d.id.desc())
        ):
            last.setdefault(int(wid), (status, error))
        return [
            WebhookView(
                h.id,
                h.url,
                h.secret_hint,
                h.created_at,
                h.created_by,
                int(h.cursor),
                pending=counts.get((h.id, DeliveryState.PENDING.value), 0),
                done=counts.get((h.id, DeliveryState.DONE.value), 0),
                failed=counts.get((h.id, DeliveryState.FAILED.value), 0),
                last_status=last.get(h.id, (None, None))[0],
                last_error=last.get(h.id, (None, None))[1],
            )
            for h in hooks
        ]


def remove_webhook(svc: BrokerServices, webhook_id: int) -> None:
    """Forget a webhook, its secret and its deliveries (pending ones are not sent)."""
    with svc.db.session() as s:
        hook = s.get(Webhook, int(webhook_id))
        if hook is None:
            raise WebhookUnknown(
                f"{svc.dept} has no webhook {webhook_id}.", webhook_id=int(webhook_id)
            )
        s.delete(hook)
    log.info("webhooks: webhook %d removed", webhook_id)


@dataclass(frozen=True)
class DeliveryView:
    """One row of a webhook's delivery log."""

    id: int
    notification_id: int
    state: str
    attempts: int
    last_status: int | None
    last_error: str | None
    next_attempt_at: datetime
    delivered_at: datetime | None


def list_deliveries(svc: BrokerServices, webhook_id: int, limit: int = 100) -> list[DeliveryView]:
    """A webhook's deliveries, newest first."""
    d = WebhookDelivery
    with svc.db.session(readonly=True) as s:
        if s.get(Webhook, int(webhook_id)) is None:
            raise WebhookUnknown(
                f"{svc.dept} has no webhook {webhook_id}.", webhook_id=int(webhook_id)
            )
        rows = s.scalars(
            select(d).where(d.webhook_id == int(webhook_id)).order_by(d.id.desc()).limit(limit)
        ).all()
        return [
            DeliveryView(
                r.id,
                int(r.notification_id),
                r.state,
                r.attempts,
                r.last_status,
                r.last_error,
                r.next_attempt_at,
                r.delivered_at,
            )
            for r in rows
        ]


# -- delivering ----------------------------------------------------------------------------


def enqueue(svc: BrokerServices) -> int:
    """Queue every webhook's new notifications (ids above its cursor, retracted
    ones passed over); returns how many deliveries were queued. Reads first: an
    idle broker writes nothing."""
    n = Notification
    with svc.db.session(readonly=True) as s:
        latest = int(s.scalar(select(func.max(n.id))) or 0)
        behind = s.scalar(select(func.count()).select_from(Webhook).where(Webhook.cursor < latest))
    if not behind:
        return 0
    queued = 0
    now = utcnow(svc.clock)
    with svc.db.session() as s:
        for hook in s.scalars(select(Webhook).where(Webhook.cursor < latest)).all():
            ids = [
                int(i)
                for i in s.scalars(
                    select(n.id)
                    .where(n.id > hook.cursor, n.retracted_at.is_(None))
                    .order_by(n.id)
                    .limit(ROUND)
                )
            ]
            if ids:
                s.execute(
                    insert(WebhookDelivery),
                    [
                        {
                            "webhook_id": hook.id,
                            "notification_id": i,
                            "state": DeliveryState.PENDING.value,
                            "attempts": 0,
                            "next_attempt_at": now,
                            "created_at": now,
                        }
                        for i in ids
                    ],
                )
                queued += len(ids)
            # past the retracted ones too; at most a round's worth at a time
            hook.cursor = ids[-1] if len(ids) >= ROUND else latest
    return queued


def backoff(svc: BrokerServices, attempts: int) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones."""
    s = svc.notifications.settings
    return float(min(s.webhook_backoff_cap, s.webhook_backoff * 2 ** max(0, attempts - 1)))


@dataclass(frozen=True)
class _Due:
    id: int
    webhook_id: int
    url: str
    sealed: bytes
    attempts: int
    notification: NotificationView | None  # None: retracted since it was queued


def _due(svc: BrokerServices, now: datetime) -> list[_Due]:
    d, w, n = WebhookDelivery, Webhook, Notification
    with svc.db.session(readonly=True) as s:
        rows = s.execute(
            select(
                d.id,
                d.webhook_id,
                w.url,
                w.secret_sealed,
                d.attempts,
                n.id,
                n.kind,
                n.created_at,
                n.data,
                n.block_number,
                n.tx_hash,
                n.retracted_at,
            )
            .join(w, w.id == d.webhook_id)
            .join(n, n.id == d.notification_id)
            .where(d.state == DeliveryState.PENDING.value, d.next_attempt_at <= now)
            .order_by(d.next_attempt_at, d.id)
            .limit(ROUND)
        ).all()
    return [
        _Due(
            int(r[0]),
            int(r[1]),
            str(r[2]),
            bytes(r[3]),
            int(r[4]),
            None
            if r[11] is not None
            else NotificationView(
                int(r[5]), str(r[6]), svc.dept, r[7], dict(r[8] or {}), r[9], r[10]
            ),
        )
        for r in rows
    ]


def _post(
    http: httpx.Client, url: str, body: bytes, headers: dict[str, str]
) -> tuple[int | None, str | None]:
    """One attempt: the answer's status (its body is not read), or the failure."""
    try:
        with http.stream("POST", url, content=body, headers=headers) as resp:
            status = resp.status_code
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: the receiver could not be reached or did not answer"
    if 200 <= status < 300:
        return status, None
    return status, f"the receiver answered HTTP {status}"


def deliver_due(svc: BrokerServices, http: httpx.Client) -> int:
    """Attempt every delivery that is due (by ``svc.clock``); returns how many
    were attempted."""
    now = utcnow(svc.clock)
    due = _due(svc, now)
    settings = svc.notifications.settings
    opened: dict[int, str | None] = {}
    for item in due:
        if item.notification is None:
            _finish(
                svc, item.id, state=DeliveryState.SKIPPED, error="the notification was retracted"
            )
            continue
        if item.webhook_id not in opened:
            opened[item.webhook_id] = _open(svc, item.webhook_id, item.sealed)
        secret = opened[item.webhook_id]
        attempts = item.attempts + 1
        status: int | None
        error: str | None
        if secret is None:
            status, error = (
                None,
                (
                    "the webhook's secret does not open with this department's key (was the key "
                    "rotated?): remove the webhook and add it again"
                ),
            )
        else:
            body = item.notification.body()
            stamp = int(svc.clock.now())
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "govshare-webhook",
                H_EVENT_ID: str(item.notification.id),
                H_EVENT: item.notification.kind,
                H_DEPARTMENT: svc.dept,
                H_WEBHOOK_ID: str(item.webhook_id),
                H_DELIVERY_ID: str(item.id),
                H_TIMESTAMP: str(stamp),
                H_SIGNATURE: sign(secret, stamp, body),
            }
            status, error = _post(http, item.url, body, headers)
        after = utcnow(svc.clock)
        if error is None:
            _finish(
                svc, item.id, state=DeliveryState.DONE, status=status, attempts=attempts, at=after
            )
        elif attempts >= settings.webhook_max_attempts:
            log.warning(
                "webhooks: delivery %d (notification %d) to webhook %d given up after %d "
                "attempts: %s",
                item.id,
                item.notification.id,
                item.webhook_id,
                attempts,
                error,
            )
            _finish(
                svc,
                item.id,
                state=DeliveryState.FAILED,
                status=status,
                error=error,
                attempts=attempts,
            )
        else:
            retry = after + timedelta(seconds=backoff(svc, attempts))
            _finish(
                svc,
                item.id,
                state=DeliveryState.PENDING,
                status=status,
                error=error,
                attempts=attempts,
                retry_at=retry,
            )
    return len(due)


def _finish(
    svc: BrokerServices,
    delivery_id: int,
    *,
    state: DeliveryState,
    status: int | None = None,
    error: str | None = None,
    attempts: int | None = None,
    at: datetime | None = None,
    retry_at: datetime | None = None,
) -> None:
    values: dict[str, Any] = {"state": state.value, "last_status": status, "last_error": error}
    if attempts is not None:
        values["attempts"] = attempts
    if at is not None:
        values["delivered_at"] = at
    if retry_at is not None:
        values["next_attempt_at"] = retry_at
    with svc.db.session() as s:
        s.execute(update(WebhookDelivery).where(WebhookDelivery.id == delivery_id).values(**values))


class WebhookWorker(Worker):
    """A daemon thread: every ``interval`` seconds, queue new notifications for
    each webhook and attempt the deliveries that are due."""

    name = "webhooks"

    def __init__(self, svc: BrokerServices, *, interval: float = 2.0) -> None:
        super().__init__(interval=interval, log=log)
        self.svc = svc
        self._round = threading.Lock()

    def run_once(self) -> int:
        """One round; returns the deliveries attempted."""
        with self._round:
            enqueue(self.svc)
            timeout = self.svc.notifications.settings.webhook_timeout
            with self.svc.db.session(readonly=True) as s:
                waiting = s.scalar(
                    select(WebhookDelivery.id)
                    .where(
                        WebhookDelivery.state == DeliveryState.PENDING.value,
                        WebhookDelivery.next_attempt_at <= utcnow(self.svc.clock),
                    )
                    .limit(1)
                )
            if waiting is None:
                return 0
            # Receivers are other systems: no cookies, no redirects, a short timeout.
            with httpx.Client(
                timeout=httpx.Timeout(timeout, connect=min(5.0, timeout)), follow_redirects=False
            ) as http:
                return deliver_due(self.svc, http)
