"""Publishing a record: encrypt → store → wrap key → anchor, as one durable operation.

    staged = stage_file(svc, open("certificate.pdf", "rb"))       # or the API's streamed upload
    out = publish(svc, principal, "key-123", staged,
                  PublishRequest("tax-clearance", subject="91110000710928411X"))
    out.record_id, out.operation.state                            # "done" once anchored

The flow, one outbox step each (each records its intent first, and checks for
its own effect before acting when it runs again after a crash):

1. ``encrypt`` — a fresh DEK encrypts the staged plaintext into a staged
   envelope; the DEK is wrapped for this department's own HPKE key at once (the
   owner capsule, ``grant_id=None``), so it never exists unwrapped outside
   memory. The record id is derived from the operation (see :func:`record_id_for`),
   so a resumed step computes the same one.
2. ``store`` — the envelope goes into the blob store (CIDv1, pinned); content
   addressing makes this idempotent. The plaintext is deleted.
3. ``wrap_key`` — the owner capsule is opened and checked against the stored
   envelope's key commitment, then filed as the record's own capsule; the staged
   envelope is deleted.
4. ``anchor`` — looks the record id up on chain *first*: anchored by this
   department with this hash and CID means a previous attempt's transaction
   landed, and it is adopted; otherwise the anchor transaction is sent (again).

So an anchored record always has its payload stored (the anchor is the last
step), and a stored payload that is not anchored belongs to an operation that
shows as pending (to be resumed) or failed.

A retry with the same ``Idempotency-Key`` and the same content returns the
original operation and record, never a second one.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from eth_utils import keccak
from sqlalchemy import insert, update
from sqlalchemy.orm import Session

from govshare.broker import membership
from govshare.broker.db import OpState, Record, RecordStatus
from govshare.broker.errors import DepartmentInactive, RecordUnknown, UnknownCategory
from govshare.broker.faults import crash_point
from govshare.broker.outbox import (
    JSON,
    OperationView,
    RetryPolicy,
    Started,
    StepContext,
    StepDeferred,
    Submission,
    check_idempotency_key,
    fingerprint,
    principal_of,
)
from govshare.broker.queries import batched_leaf, successor_in
from govshare.broker.subjects import subject_ref
from govshare.broker.users import Principal
from govshare.chain.contracts import AnchorInput, encode_category, to_bytes32
from govshare.clock import utcnow
from govshare.crypto import HEADER_SIZE, EncryptingReader, verify, wrap_dek
from govshare.crypto._io import fsync_dir
from govshare.crypto.errors import EnvelopeTruncated
from govshare.errors import ContractReverted, GovShareError, InputError, IntegrityError
from govshare.storage import put_many

if TYPE_CHECKING:
    from govshare.broker.services import BrokerServices

log = logging.getLogger(__name__)

KIND = "publish"
STEPS = ("encrypt", "store", "wrap_key", "anchor")
_COPY = 1024 * 1024
_FILENAME_MAX = 255
_MEDIA_TYPE_MAX = 127

#: A publish the API accepted is anchored when the chain answers again (the clerk
#: was told so): a node that is down is waited out for about four hours (backoff up
#: to 30 s), not the engine's default few seconds. A crash counts as a start too,
#: so a step that kills the process every time is still given up, after as many
#: restarts.
RETRY = RetryPolicy(max_attempts=500, base_delay=0.5, max_delay=30.0)
#: ``records.anchor_mode`` (and the payload's) of a record anchored in a batch.
BATCH_MODE = "batch"
#: A parked publish looks at its record again after this many seconds, if its
#: batch has not completed it by then (see ``record_batches.py``).
PARK = 60.0


@dataclass(frozen=True)
class PublishRequest:
    """What the clerk says about the file."""

    category: str
    subject: str | None = None
    supersedes: bytes | str | None = None
    filename: str | None = None
    media_type: str | None = None


@dataclass(frozen=True)
class StagedUpload:
    """An uploaded file staged in the broker's spool directory, or — a small file
    of a bulk request — held in memory (``data``) until it is encrypted."""

    name: str  # file name inside the spool directory
    sha256: str  # hex, of the plaintext
    size: int
    data: bytes | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class PublishOutcome:
    operation_id: str
    state: OpState
    created: bool  # False: this key was seen before; this is the original operation
    record_id: str | None
    result: JSON | None
    error: JSON | None
    #: Accepted and held (encrypted, stored), waiting for its batch's anchor.
    anchoring: bool = False
    sha256: str | None = None
    size: int | None = None

    @classmethod
    def of(cls, sub: Submission) -> PublishOutcome:
        op = sub.operation
        rid = (op.result or {}).get("record_id")
        if rid is None and op.payload.get("dept") and op.payload.get("idempotency_key"):
            # not anchored yet: the id it will have (derived from the operation)
            raw = record_id_for(
                str(op.payload["dept"]), op.id, op.principal, str(op.payload["idempotency_key"])
            )
            rid = "0x" + raw.hex()
        anchoring = (
            not op.finished
            and op.step_name == "anchor"
            and op.payload.get("anchor_mode") == BATCH_MODE
        )
        sha = op.payload.get("sha256")
        size = op.payload.get("size")
        return cls(
            op.id,
            op.state,
            sub.created,
            rid,
            op.result,
            op.error,
            anchoring,
            str(sha) if sha is not None else None,
            int(size) if isinstance(size, int) else None,
        )


def record_id_for(dept: str, operation_id: str, principal: str, idempotency_key: str) -> bytes:
    """A record's id, derived from the operation that publishes it: stable when a
    step runs again, unique per operation (and so per idempotency key)."""
    parts = [b"govshare/record-id/v1", dept.encode(), operation_id.encode()]
    parts += [principal.encode(), idempotency_key.encode()]
    return keccak(b"\x00".join(parts))


# -- staging ---------------------------------------------------------------------------


def new_spool_name(prefix: str = "upload") -> str:
    return f"{prefix}-{uuid.uuid4().hex}.part"


def stage_file(
    svc: BrokerServices,
    src: BinaryIO | Iterable[bytes],
    *,
    max_size: int | None = None,
    name: str | None = None,
) -> StagedUpload:
    """Copy a file (or chunks) into the spool directory, hashing as it goes."""
    limit = svc.limits.max_upload if max_size is None else max_size
    name = name or new_spool_name()
    path = svc.spool / name
    sha = hashlib.sha256()
    size = 0
    chunks: Iterable[bytes]
    if hasattr(src, "read"):
        reader: Any = src
        chunks = iter(lambda: reader.read(_COPY), b"")
    else:
        chunks = src
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    from govshare.broker.errors import UploadTooLarge

                    raise UploadTooLarge.over(limit)
                sha.update(chunk)
                fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return StagedUpload(name, sha.hexdigest(), size)


def _spool_path(svc: BrokerServices, name: str) -> Path:
    # A bare file name, so the path cannot leave the spool (checked by its text:
    # resolving the path on every use cost more than the rest of the lookup).
    if not name or name in (".", "..") or "/" in name or "\x00" in name or os.sep in name:
        raise InputError("A staged upload must be inside the spool directory.")
    return svc.spool / name


# -- the use case ----------------------------------------------------------------------


def publish(
    svc: BrokerServices,
    user: Principal | str,
    idempotency_key: str,
    upload: StagedUpload,
    meta: PublishRequest,
    *,
    wait: bool = False,
    anchor_wait: float = 0.0,
) -> PublishOutcome:
    """Publish a staged upload as a record of ``svc.dept``.

    In batch mode (``svc.limits.batch_max_records`` > 1) the record is encrypted,
    stored and accepted in this call — three database transactions — and then
    anchored with its batch: the outcome is ``anchoring`` unless the batch lands
    within ``anchor_wait`` seconds. With one record per batch, every step runs
    through the outbox as below.

    Checks first (on chain; a chain that does not answer refuses with 503 and
    nothing is kept): the category is declared and active in the department's
    catalog; a superseded record is this department's, anchored and not
    superseded yet. Then submits the durable operation and drives it as far as
    it goes now. ``wait`` sleeps through transient-error retries; without it a
    chain that stops answering mid-way leaves the operation pending (the outbox
    worker completes it). The staged file belongs to the operation from then on
    (a duplicate submission's copy is deleted).

    In batch mode a new record (not a new version) joins the publishes under way
    at the same moment (:class:`PublishGroup`): they are accepted together, each
    with its own answer, as :func:`publish_many` accepts a bulk request.
    """
    item = BulkItem(idempotency_key, upload, meta)
    group = svc.publish_group  # (batch mode only)
    if group is None or meta.supersedes:
        return _publish_alone(svc, user, item, wait=wait, anchor_wait=anchor_wait)
    out = group.publish(user, item)
    if out.created and out.anchoring and anchor_wait > 0:
        view = svc.record_batcher.wait_anchored(out.operation_id, anchor_wait)
        out = PublishOutcome.of(Submission(view, created=True))
    return out


def _publish_alone(
    svc: BrokerServices,
    user: Principal | str,
    item: BulkItem,
    *,
    wait: bool = False,
    anchor_wait: float = 0.0,
) -> PublishOutcome:
    """:func:`publish` on its own, never joined with concurrent publishes."""
    staged = _spool_path(svc, item.upload.name)
    try:
        return _publish(
            svc,
            user,
            item.idempotency_key,
            item.upload,
            item.meta,
            staged,
            wait=wait,
            anchor_wait=anchor_wait,
        )
    except BaseException:
        # Refused before the operation took the file over: nothing is kept.
        if svc.outbox.find(principal_of(user), item.idempotency_key) is None:
            staged.unlink(missing_ok=True)
        raise


def _publish(
    svc: BrokerServices,
    user: Principal | str,
    idempotency_key: str,
    upload: StagedUpload,
    meta: PublishRequest,
    staged: Path,
    *,
    wait: bool,
    anchor_wait: float,
) -> PublishOutcome:
    body = _request_body(svc, upload, meta)
    category, supersedes = str(body["category"]), body["supersedes"]
    principal = principal_of(user)
    fp = fingerprint(body)

    batched = svc.limits.batch_max_records > 1
    existing = None if batched else svc.outbox.find(principal, idempotency_key)
    if existing is not None:
        # A retry: answer from the original operation, before any chain call.
        return _replay(svc, principal, idempotency_key, fp, staged)

    try:
        _check_on_chain(svc, category, supersedes, batched=batched)
    except GovShareError:
        if not batched or svc.outbox.find(principal, idempotency_key) is None:
            raise
        # a retry of a publish accepted before (whatever changed since): its answer
        return _replay(svc, principal, idempotency_key, fp, staged)
    payload = _payload(svc, user, idempotency_key, upload, body)
    if batched:
        payload["anchor_mode"] = BATCH_MODE
        return _publish_batched(svc, user, principal, idempotency_key, fp, payload, anchor_wait)
    sub = svc.outbox.submit(KIND, idempotency_key, principal, fp, payload, run=False)
    if not sub.created:
        staged.unlink(missing_ok=True)  # another request with this key won the race
        return PublishOutcome.of(Submission(svc.outbox.settle(sub.operation), created=False))
    crash_point("publish.accepted")  # the staged upload is the operation's now
    # The outbox worker may claim the new operation first: then wait for it.
    view = svc.outbox.settle(svc.outbox.run(sub.operation.id, wait=wait))
    return PublishOutcome.of(Submission(view, created=True))


def _request_body(svc: BrokerServices, upload: StagedUpload, meta: PublishRequest) -> JSON:
    """What a publish asks for, checked and normalised: its fingerprint is the
    idempotency key's (the same key with another body is refused)."""
    category = _check_category_label(meta.category)
    ref = subject_ref(svc.subject_key, meta.subject) if meta.subject else None
    supersedes = (
        "0x" + to_bytes32(meta.supersedes, "record id to supersede", allow_zero=False).hex()
        if meta.supersedes
        else None
    )
    return {
        "kind": KIND,
        "category": category,
        "subject_ref": "0x" + ref.hex() if ref else None,
        "supersedes": supersedes,
        "filename": _clean_text(meta.filename, _FILENAME_MAX),
        "media_type": _clean_text(meta.media_type, _MEDIA_TYPE_MAX),
        "sha256": upload.sha256,
        "size": upload.size,
    }


def _payload(
    svc: BrokerServices,
    user: Principal | str,
    idempotency_key: str,
    upload: StagedUpload,
    body: JSON,
) -> JSON:
    """The operation's payload: the request's body and who asked, with what."""
    return {
        **body,
        "dept": svc.dept,
        "idempotency_key": idempotency_key,
        "upload": upload.name,
        "published_by": user.name if isinstance(user, Principal) else None,
    }


def _replay(
    svc: BrokerServices, principal: str, idempotency_key: str, fp: str, staged: Path
) -> PublishOutcome:
    """The answer to a key seen before: its original operation (the same request,
    or :class:`IdempotencyConflict`); this request's upload is not kept."""
    staged.unlink(missing_ok=True)
    sub = svc.outbox.submit(KIND, idempotency_key, principal, fp, {}, run=False)
    return PublishOutcome.of(Submission(svc.outbox.settle(sub.operation), created=False))


def _check_category_label(category: str) -> str:
    encode_category(category)  # raises InputError with the rule
    return category


def _clean_text(value: str | None, limit: int) -> str | None:
    if value is None:
        return None
    text = "".join(ch for ch in value if ch.isprintable()).strip()
    return text[:limit] or None


def _check_on_chain(
    svc: BrokerServices, category: str, supersedes: str | None, *, batched: bool = False
) -> None:
    membership.require_active(svc, "publish")  # before anything is encrypted or stored
    entries = {c.category: c for c in svc.chain_cache.categories(svc.dept)}
    entry = entries.get(category)
    if entry is None or not entry.active:  # a refusal is never from the cache
        entries = {c.category: c for c in svc.ledger.records.categories(svc.dept)}
        entry = entries.get(category)
    if entry is None or not entry.active:
        declared = ", ".join(sorted(c for c, e in entries.items() if e.active)) or "none"
        raise UnknownCategory(
            f"{svc.dept} has no active catalog category {category!r} (declared: {declared}). "
            "An administrator declares categories with `govshare catalog declare`.",
            category=category,
        )
    if supersedes is None:
        return
    with svc.db.session(readonly=True) as s:
        own = s.get(Record, supersedes)
        if own is not None and (batched or own.batch_id is not None):
            _check_supersedes_own(s, own)  # the broker's own table: anchored or anchoring
            return
    if batched:
        # another department's record in a batch (not on chain yet): whose it is
        leaf = batched_leaf(svc, supersedes)
        if leaf is not None and leaf.record.department != svc.dept:
            raise InputError(
                f"Record {supersedes} belongs to {leaf.record.department}; only its own "
                "department can publish a new version of it."
            )
    if not svc.ledger.records.record_exists(supersedes):
        raise RecordUnknown(f"There is no anchored record {supersedes} to supersede.")
    prev = svc.ledger.records.get_record(supersedes)
    if prev.department != svc.dept:
        raise InputError(
            f"Record {supersedes} belongs to {prev.department}; only its own department "
            "can publish a new version of it."
        )
    if prev.superseded_by is not None:
        raise InputError(
            f"Record {supersedes} already has a newer version (0x{prev.superseded_by.hex()}); "
            "supersede that one instead."
        )


def _check_supersedes_own(s: Session, prev: Record) -> None:
    """``prev`` (this department's, from its own table) may get a new version:
    it was not given up, and no other publish — anchored, or accepted and still
    anchoring — names it as its previous version."""
    if prev.status == RecordStatus.FAILED.value:
        raise RecordUnknown(
            f"Record {prev.record_id} was never anchored (its publish failed); "
            "there is nothing to supersede."
        )
    newer = successor_in(s, prev.record_id)
    if newer is not None:
        raise InputError(
            f"Record {prev.record_id} already has a newer version ({newer}); "
            "supersede that one instead."
        )


# -- batch mode: the lean path -----------------------------------------------------------


def _publish_batched(
    svc: BrokerServices,
    user: Principal | str,
    principal: str,
    idempotency_key: str,
    fp: str,
    payload: JSON,
    anchor_wait: float,
) -> PublishOutcome:
    """Encrypt, then one transaction accepts the operation and its record; store,
    then one transaction records it stored and parks the operation for its
    batch. A crash in between leaves the operation for the outbox worker to
    resume at ``store`` (its envelope is in the spool)."""
    op_id = uuid.uuid4().hex
    rid = record_id_for(svc.dept, op_id, principal, idempotency_key)
    rid_hex = "0x" + rid.hex()
    enc, header = _encrypt_to_spool(svc, op_id, rid, payload)
    enc_path = _spool_path(svc, str(enc["ciphertext"]))
    supersedes = payload["supersedes"]

    def accept(s: Session) -> None:
        if supersedes is not None:
            prev = s.get(Record, supersedes)
            if prev is not None:  # checked again here: this transaction holds the write lock
                _check_supersedes_own(s, prev)
        now = utcnow(svc.clock)
        fields = _record_fields(payload, header, op_id, mode=BATCH_MODE)
        s.add(Record(record_id=rid_hex, **fields, created_at=now, updated_at=now))

    try:
        sub = svc.outbox.submit_started(
            KIND, idempotency_key, principal, fp, payload, op_id=op_id, done=[enc], also=accept
        )
    except BaseException:
        # refused (a key used for another request, a rival version): nothing is kept
        enc_path.unlink(missing_ok=True)
        _spool_path(svc, str(payload["upload"])).unlink(missing_ok=True)
        raise
    if not sub.created:  # a retry raced this one, or the key was seen: its answer
        enc_path.unlink(missing_ok=True)
        _spool_path(svc, str(payload["upload"])).unlink(missing_ok=True)
        return PublishOutcome.of(Submission(svc.outbox.settle(sub.operation), created=False))
    try:
        crash_point("publish.before_store")
        _spool_path(svc, str(payload["upload"])).unlink(missing_ok=True)
        with enc_path.open("rb") as fh:
            cid = str(svc.store.put(fh, cid_version=1, pin=True))
        crash_point("publish.after_store")
    except Exception:  # noqa: BLE001 — any failure: the engine takes over (and records it)
        svc.outbox.advance(op_id, [])
        view = svc.outbox.run(op_id, wait=False)
        return PublishOutcome.of(Submission(view, created=True))
    capsule = bytes.fromhex(str(enc["capsule"]))

    def stored(s: Session) -> None:
        s.execute(
            update(Record)
            .where(Record.record_id == rid_hex)
            .values(
                cid=cid,
                own_capsule=capsule,
                status=RecordStatus.STORED.value,
                updated_at=utcnow(svc.clock),
            )
            .execution_options(synchronize_session=False)  # no ORM object to keep in step
        )

    done = [{"cid": cid}, {"capsule_sha256": hashlib.sha256(capsule).hexdigest()}]
    parked = svc.outbox.advance(op_id, done, park=PARK, also=stored)
    enc_path.unlink(missing_ok=True)
    batcher = svc.record_batcher
    batcher.notify()
    if parked is None or anchor_wait > 0:
        parked = batcher.wait_anchored(op_id, anchor_wait)
    return PublishOutcome.of(Submission(parked, created=True))


# -- many at once: a bulk import's batch ----------------------------------------------------

#: The most records one :func:`publish_many` call (one bulk request) takes.
MAX_BULK = 256


@dataclass(frozen=True)
class BulkItem:
    """One record of a bulk publish: its key, its staged upload and what it is."""

    idempotency_key: str
    upload: StagedUpload
    meta: PublishRequest


def publish_many(
    svc: BrokerServices,
    user: Principal | str,
    items: Sequence[BulkItem],
    *,
    known_first: bool = True,
) -> list[PublishOutcome | GovShareError]:
    """Publish several staged uploads (a bulk import's batch), each under its own
    idempotency key, with the answer :func:`publish` gives it ("accepted,
    anchoring": nothing waits for an anchor), or its refusal; in order. One
    record's refusal does not stop the others.

    The staged uploads may not be on disk yet (the bulk route does not fsync
    them): each is encrypted before anything is acknowledged, or made durable
    before the single path takes it. In batch mode the new records go the lean
    path together: encrypted one by one, then **one** transaction accepts them
    all, the store makes them durable together, and **one** more records them
    stored and parks them for their anchor batch. Anything else — a key seen
    before, a key twice in the batch, a new version of a record, a category the
    cache does not confirm — takes :func:`publish`'s own path, one by one.
    Crash safety is the single path's: the same operations in the same states.

    ``known_first=False`` skips the read of the keys seen before (concurrent
    single publishes, where a retry is rare): a key found taken when they are
    accepted sends the whole group to the single path, which answers it."""
    if len(items) > MAX_BULK:
        for it in items:
            _discard_upload(svc, it.upload.name)
        raise InputError(f"At most {MAX_BULK} records in one bulk publish.")
    try:
        return _publish_many(svc, user, items, known_first)
    except BaseException:
        # Stopped as a whole (the database went away): the uploads no operation
        # took over are deleted; the others belong to their operations.
        for it in items:
            with contextlib.suppress(Exception):
                if svc.outbox.find(user, it.idempotency_key) is None:
                    _discard_upload(svc, it.upload.name)
        raise


def _publish_many(
    svc: BrokerServices, user: Principal | str, items: Sequence[BulkItem], known_first: bool
) -> list[PublishOutcome | GovShareError]:
    out: list[PublishOutcome | GovShareError | None] = [None] * len(items)
    singly = list(range(len(items)))
    if svc.limits.batch_max_records > 1:
        principal = principal_of(user)
        fresh, singly = _sort_bulk(svc, user, principal, items, out, known_first)
        held = [it.upload.data for it in items]
        singly += _accept_together(
            svc, principal, _encrypt_each(svc, principal, fresh, held, out), out
        )
    for i in sorted(singly):
        it = items[i]
        try:
            _on_disk(svc, it.upload)  # the single path keeps it as it is
            out[i] = _publish_alone(svc, user, it)
        except GovShareError as exc:
            out[i] = exc
    return [o if o is not None else InputError("not published") for o in out]


def _sort_bulk(
    svc: BrokerServices,
    user: Principal | str,
    principal: str,
    items: Sequence[BulkItem],
    out: list[PublishOutcome | GovShareError | None],
    known_first: bool = True,
) -> tuple[list[tuple[int, str, JSON]], list[int]]:
    """Which items take the lean path together — (index, fingerprint, payload) —
    and which :func:`publish`'s own; refusals of the request itself go to ``out``."""
    known = (
        svc.outbox.known_keys(principal, [it.idempotency_key for it in items])
        if known_first
        else set()
    )
    checked: dict[str, bool] = {}
    inactive: DepartmentInactive | None = None
    member_checked = False
    taken: set[str] = set()
    fresh: list[tuple[int, str, JSON]] = []
    singly: list[int] = []
    for i, it in enumerate(items):
        try:
            staged = _spool_path(svc, it.upload.name)
            check_idempotency_key(it.idempotency_key)
            body = _request_body(svc, it.upload, it.meta)
        except GovShareError as exc:
            _discard_upload(svc, it.upload.name)
            out[i] = exc
            continue
        key, category = it.idempotency_key, str(body["category"])
        if key in known:  # a retry (a resumed import): the original, nothing encrypted
            try:
                out[i] = _replay(svc, principal, key, fingerprint(body), staged)
            except GovShareError as exc:
                out[i] = exc
            continue
        if not member_checked:  # once per request, before anything is encrypted or stored
            member_checked = True
            try:
                membership.require_active(svc, "publish")
            except DepartmentInactive as exc:
                inactive = exc
        if inactive is not None:
            _discard_upload(svc, it.upload.name)
            out[i] = inactive
            continue
        if category not in checked:
            checked[category] = _category_confirmed(svc, category)
        if key in taken or body["supersedes"] is not None or not checked[category]:
            singly.append(i)  # (a key twice here: the single path replays the second)
            continue
        taken.add(key)
        payload = {**_payload(svc, user, key, it.upload, body), "anchor_mode": BATCH_MODE}
        fresh.append((i, fingerprint(body), payload))
    return fresh, singly


class _Joined:
    """One publish waiting in a :class:`PublishGroup`."""

    __slots__ = ("error", "item", "leads", "outcome", "user", "woken")

    def __init__(self, user: Principal | str, item: BulkItem) -> None:
        self.user, self.item = user, item
        self.woken = threading.Event()
        self.leads = False
        self.outcome: PublishOutcome | None = None
        self.error: BaseException | None = None


class PublishGroup:
    """Group commit for concurrent single publishes (batch mode): the publishes
    that arrive while a group is being accepted wait, and the next group takes
    them all through :func:`publish_many`'s lean path (one transaction to accept
    them, one store flush, one transaction to park them) instead of a transaction
    pair and a flush each. No thread of its own and no timer: the first publish
    of a group leads it (in its own request), then hands the lead to the first
    one waiting; a publish alone goes at once. Each keeps its own idempotency key,
    answer and refusal; crash safety is :func:`publish_many`'s."""

    def __init__(self, svc: BrokerServices) -> None:
        self.svc = svc
        self._lock = threading.Lock()
        self._queue: list[_Joined] = []
        self._busy = False

    def publish(self, user: Principal | str, item: BulkItem) -> PublishOutcome:
        me = _Joined(user, item)
        with self._lock:
            self._queue.append(me)
            if not self._busy:
                self._busy = me.leads = True
        while not me.leads:
            me.woken.wait()
            me.woken.clear()
            if me.outcome is not None or me.error is not None:
                return self._answer(me)
        with self._lock:
            group = self._queue[:MAX_BULK]
            del self._queue[:MAX_BULK]
        try:
            self._accept(group)
        finally:
            with self._lock:
                if self._queue:
                    nxt = self._queue[0]
                    nxt.leads = True
                    nxt.woken.set()
                else:
                    self._busy = False
        return self._answer(me)

    @staticmethod
    def _answer(me: _Joined) -> PublishOutcome:
        if me.error is not None:
            raise me.error
        assert me.outcome is not None
        return me.outcome

    def _accept(self, group: list[_Joined]) -> None:
        by_user: dict[str, list[_Joined]] = {}
        for j in group:
            by_user.setdefault(principal_of(j.user), []).append(j)
        for joined in by_user.values():
            try:
                results = publish_many(
                    self.svc, joined[0].user, [j.item for j in joined], known_first=False
                )
            except BaseException as exc:  # noqa: BLE001 — each publish raises it in its request
                for j in joined:
                    j.error = exc
            else:
                for j, res in zip(joined, results, strict=True):
                    if isinstance(res, PublishOutcome):
                        j.outcome = res
                    else:
                        j.error = res
            for j in joined:
                if not j.leads:
                    j.woken.set()


def _on_disk(svc: BrokerServices, upload: StagedUpload) -> None:
    """A staged upload of a bulk request, made durable in the spool (it was held
    in memory, or written without fsync): how the single path takes it."""
    path = _spool_path(svc, upload.name)
    if upload.data is not None:
        stage_file(svc, [upload.data], name=upload.name)
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return  # publish() says what is missing
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _discard_upload(svc: BrokerServices, name: str) -> None:
    """Delete a staged upload this call refused (if its name is a spool name)."""
    with contextlib.suppress(GovShareError, OSError):
        _spool_path(svc, name).unlink(missing_ok=True)


def _category_confirmed(svc: BrokerServices, category: str) -> bool:
    """The category is active in this department's catalog, by the cache (which
    the mirror's events refresh). Not confirmed — nor when the chain cannot be
    read — :func:`publish` checks it live, alone, and answers as it always does
    (a refusal, a 503, or the original of a key seen before)."""
    try:
        entries = svc.chain_cache.categories(svc.dept)
    except GovShareError:
        return False
    return any(c.category == category and c.active for c in entries)


@dataclass(frozen=True)
class _Accepting:
    """One new record of a bulk publish, encrypted into the spool."""

    index: int
    started: Started
    record_id: str
    fields: JSON
    envelope: Path
    capsule: bytes


def _encrypt_each(
    svc: BrokerServices,
    principal: str,
    fresh: list[tuple[int, str, JSON]],
    held: Sequence[bytes | None],
    out: list[PublishOutcome | GovShareError | None],
) -> list[_Accepting]:
    done = []
    for i, fp, payload in fresh:
        op_id = uuid.uuid4().hex
        key = str(payload["idempotency_key"])
        rid = record_id_for(svc.dept, op_id, principal, key)
        try:
            enc, header = _encrypt_to_spool(svc, op_id, rid, payload, data=held[i], sync=False)
        except GovShareError as exc:
            _discard_upload(svc, str(payload["upload"]))
            out[i] = exc
            continue
        done.append(
            _Accepting(
                i,
                Started(KIND, key, fp, payload, op_id, [enc]),
                "0x" + rid.hex(),
                _record_fields(payload, header, op_id, mode=BATCH_MODE),
                _spool_path(svc, str(enc["ciphertext"])),
                bytes.fromhex(str(enc["capsule"])),
            )
        )
    _sync_envelopes(svc, [a.envelope for a in done])
    return done


def _sync_envelopes(svc: BrokerServices, paths: Sequence[Path]) -> None:
    """Make a bulk request's envelopes durable before the transaction that names
    them: their fsyncs back to back (one journal commit covers most of them: a
    quarter to a half of the cost of an fsync after each write), then the spool
    directory's. An error stops the request before anything is accepted."""
    try:
        for path in paths:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    except OSError:
        for path in paths:  # no operation names them yet
            path.unlink(missing_ok=True)
        raise
    if paths:
        fsync_dir(svc.spool)


def _accept_together(
    svc: BrokerServices,
    principal: str,
    batch: list[_Accepting],
    out: list[PublishOutcome | GovShareError | None],
) -> list[int]:
    """Accept all (one transaction), store all, record all stored and park them
    (one transaction). Returns the indices left to the single path: all of them
    when a key was taken meanwhile (a retry racing this batch; nothing was kept)."""
    if not batch:
        return []
    now = utcnow(svc.clock)

    def accept(s: Session) -> None:  # rows, not objects (as the operations')
        s.execute(
            insert(Record),
            [
                {"record_id": a.record_id, **a.fields, "created_at": now, "updated_at": now}
                for a in batch
            ],
        )

    try:
        held = svc.outbox.submit_started_many(principal, [a.started for a in batch], also=accept)
    except BaseException:
        held = None
        raise
    finally:
        if held is None:  # nothing of this batch was kept: nor are its envelopes
            for a in batch:
                a.envelope.unlink(missing_ok=True)
    if held is None:
        return [a.index for a in batch]
    for a in batch:
        _discard_upload(svc, str(a.started.payload["upload"]))
    _store_together(svc, batch, out)
    return []


def _store_together(
    svc: BrokerServices, batch: list[_Accepting], out: list[PublishOutcome | GovShareError | None]
) -> None:
    """Store the accepted records' envelopes together, then record them stored
    and park them for their anchor batch (one transaction)."""
    crash_point("publish.before_store")
    handles = [a.envelope.open("rb") for a in batch]
    try:
        cids = [str(c) for c in put_many(svc.store, handles, cid_version=1, pin=True)]
    except Exception:  # noqa: BLE001 — any failure: the engine takes over (and records it)
        _answer(svc, batch, svc.outbox.advance_many({a.started.op_id: [] for a in batch}), out)
        return
    finally:
        for fh in handles:
            fh.close()
    crash_point("publish.after_store")
    stamp = utcnow(svc.clock)
    rows = [
        {
            "record_id": a.record_id,
            "cid": cid,
            "own_capsule": a.capsule,
            "status": RecordStatus.STORED.value,
            "updated_at": stamp,
        }
        for a, cid in zip(batch, cids, strict=True)
    ]

    def stored(s: Session) -> None:
        s.execute(update(Record), rows)  # by primary key: one statement for all

    steps: dict[str, Sequence[JSON]] = {
        a.started.op_id: [{"cid": cid}, {"capsule_sha256": hashlib.sha256(a.capsule).hexdigest()}]
        for a, cid in zip(batch, cids, strict=True)
    }
    views = svc.outbox.advance_many(steps, park=PARK, also=stored)
    for a in batch:
        a.envelope.unlink(missing_ok=True)
    svc.record_batcher.notify()
    _answer(svc, batch, views, out)


def _answer(
    svc: BrokerServices,
    batch: list[_Accepting],
    views: Mapping[str, OperationView | None],
    out: list[PublishOutcome | GovShareError | None],
) -> None:
    for a in batch:
        view = views.get(a.started.op_id) or svc.outbox.get(a.started.op_id)
        out[a.index] = PublishOutcome.of(Submission(view, created=True))


# -- the steps -------------------------------------------------------------------------


def register(svc: BrokerServices) -> None:
    """Register the ``publish`` operation kind on ``svc.outbox``."""

    def result(results: dict[str, JSON] | Any) -> JSON:
        return {
            "record_id": results["encrypt"]["record_id"],
            "sha256": results["encrypt"]["sha256"],
            "size": results["encrypt"]["size"],
            "cid": results["store"]["cid"],
            "tx_hash": results["anchor"].get("tx_hash") or results["anchor"].get("batch_tx"),
            "block_number": results["anchor"].get("block_number"),
            **({"batch": results["anchor"]["batch"]} if "batch" in results["anchor"] else {}),
        }

    svc.outbox.register(
        KIND,
        [
            ("encrypt", lambda ctx: _encrypt(svc, ctx)),
            ("store", lambda ctx: _store(svc, ctx)),
            ("wrap_key", lambda ctx: _wrap_key(svc, ctx)),
            ("anchor", lambda ctx: _anchor(svc, ctx)),
        ],
        retry=RETRY,
        result=result,
        on_reopen=lambda s, op_id, payload: _unanchor(svc, s, op_id, payload),
    )


def _unanchor(svc: BrokerServices, s: Session, op_id: str, payload: Mapping[str, Any]) -> None:
    """The chain lost this publish's anchor: the record is stored, not anchored,
    until the anchor step lands again."""
    s.execute(
        update(Record)
        .where(Record.operation_id == op_id, Record.status == RecordStatus.ANCHORED.value)
        .values(
            status=RecordStatus.STORED.value,
            anchor_tx=None,
            anchor_block=None,
            updated_at=utcnow(svc.clock),
        )
    )


def _upsert_record(svc: BrokerServices, record_id: str, **values: Any) -> None:
    with svc.db.session() as s:
        row = s.get(Record, record_id)
        if row is None:
            row = Record(record_id=record_id, **values, created_at=utcnow(svc.clock))
            s.add(row)
        else:
            for k, v in values.items():
                setattr(row, k, v)
        row.updated_at = utcnow(svc.clock)


def _record_fields(
    p: Mapping[str, Any], header: bytes, op_id: str, *, mode: str | None
) -> dict[str, Any]:
    """A ``records`` row's columns for the publish ``p`` (pending: not stored yet)."""
    return {
        "category": p["category"],
        "subject_ref": p["subject_ref"] or "",
        "sha256": p["sha256"],
        "size": int(p["size"]),
        "supersedes": p["supersedes"],
        "filename": p.get("filename"),
        "media_type": p.get("media_type"),
        "published_by": p.get("published_by"),
        "envelope": header,
        "status": RecordStatus.PENDING.value,
        "operation_id": op_id,
        "anchor_mode": mode,
    }


def _encrypt(svc: BrokerServices, ctx: StepContext) -> JSON:
    p = ctx.payload
    rid = record_id_for(svc.dept, ctx.operation_id, ctx.principal, str(p["idempotency_key"]))
    out, header = _encrypt_to_spool(svc, ctx.operation_id, rid, p)
    fields = _record_fields(p, header, ctx.operation_id, mode=p.get("anchor_mode"))
    _upsert_record(svc, "0x" + rid.hex(), **fields)
    return out


def _encrypt_to_spool(
    svc: BrokerServices,
    op_id: str,
    rid: bytes,
    p: Mapping[str, Any],
    data: bytes | None = None,
    *,
    sync: bool = True,
) -> tuple[JSON, bytes]:
    """Encrypt the staged upload (or ``data``, its bytes held in memory) into
    ``<op_id>.enc`` in the spool under a fresh DEK, wrapped at once for this
    department's own key. Returns the ``encrypt`` step's result and the
    envelope's header. ``sync=False``: the caller makes the envelope durable
    (:func:`_sync_envelopes`) before any operation names it."""
    enc_name = f"{op_id}.enc"
    enc = _spool_path(svc, enc_name)
    # Written in place: nothing reads it before the step that wrote it is
    # recorded done, and a step run again writes it afresh.
    with (
        io.BytesIO(data) if data is not None else _spool_path(svc, str(p["upload"])).open("rb")
    ) as src:
        reader = EncryptingReader(src)
        fd = os.open(enc, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            header = b""
            while chunk := reader.read(_COPY):
                if len(header) < HEADER_SIZE:
                    header += chunk[: HEADER_SIZE - len(header)]
                out.write(chunk)
            out.flush()
            if sync:
                os.fsync(out.fileno())
        res = reader.result
    if res.plaintext_sha256.hex() != p["sha256"] or res.plaintext_size != p["size"]:
        enc.unlink(missing_ok=True)
        raise IntegrityError(
            "The staged upload changed on disk before it was encrypted; publish it again.",
        )
    own = svc.hpke.public_key_bytes
    capsule = wrap_dek(res.dek, own, record_id=rid, grant_id=None, recipient_dept=svc.dept)
    result = {
        "record_id": "0x" + rid.hex(),
        "sha256": p["sha256"],
        "size": int(p["size"]),
        "ciphertext": enc_name,
        "ciphertext_size": res.ciphertext_size,
        "capsule": capsule.hex(),
    }
    return result, header


def _store(svc: BrokerServices, ctx: StepContext) -> JSON:
    crash_point("publish.before_store")
    enc_result = ctx.results["encrypt"]
    _spool_path(svc, str(ctx.payload["upload"])).unlink(missing_ok=True)  # plaintext: done with
    with _spool_path(svc, str(enc_result["ciphertext"])).open("rb") as fh:
        cid = svc.store.put(fh, cid_version=1, pin=True)
    _upsert_record(
        svc, str(enc_result["record_id"]), cid=str(cid), status=RecordStatus.STORED.value
    )
    crash_point("publish.after_store")
    return {"cid": str(cid)}


def _wrap_key(svc: BrokerServices, ctx: StepContext) -> JSON:
    enc_result = ctx.results["encrypt"]
    rid = bytes.fromhex(str(enc_result["record_id"])[2:])
    capsule = bytes.fromhex(str(enc_result["capsule"]))
    dek = svc.own_dek(capsule, rid)
    # The stored envelope must be the one this DEK made: its header carries a key
    # commitment and a MAC under the DEK, checked before any segment is read.
    first = b""
    for chunk in svc.store.get(ctx.results["store"]["cid"]):
        first += chunk
        if len(first) >= HEADER_SIZE:
            break
    with contextlib.suppress(EnvelopeTruncated):  # the header verified; no segments given
        verify([first[:HEADER_SIZE]], dek)
    _upsert_record(svc, str(enc_result["record_id"]), own_capsule=capsule)
    _spool_path(svc, str(enc_result["ciphertext"])).unlink(missing_ok=True)
    return {"capsule_sha256": hashlib.sha256(capsule).hexdigest()}


def _anchor(svc: BrokerServices, ctx: StepContext) -> JSON:
    p = ctx.payload
    rid = str(ctx.results["encrypt"]["record_id"])
    if p.get("anchor_mode") == BATCH_MODE:
        return _anchored_in_batch(svc, rid)
    sha = "0x" + str(p["sha256"])
    cid = str(ctx.results["store"]["cid"])
    records = svc.ledger.records

    def adopt() -> tuple[str, int] | None:
        if not records.record_exists(rid):
            return None
        rec = records.get_record(rid)
        if rec.department != svc.dept or "0x" + rec.content_hash.hex() != sha or rec.cid != cid:
            raise IntegrityError(
                f"Record id {rid} is anchored on chain with other content; this publish "
                "cannot complete. Publish the file again with a new Idempotency-Key.",
                record_id=rid,
            )
        # The contract keeps no block number: the anchoring event has it (and the tx).
        anchored = records.anchored_event(rid, from_block=svc.ledger.deployment.deploy_block)
        if anchored is None:  # a node that pruned its logs: at the latest by now
            return "", svc.ledger.block_number()
        return anchored.tx_hash, anchored.block_number

    found = adopt()  # a previous attempt's transaction may have landed
    if found is None:
        _previous_on_chain(svc, p["supersedes"])
        item = AnchorInput(rid, sha, cid, str(p["category"]), p["subject_ref"], p["supersedes"])
        try:
            pending = records.submit_anchor(svc.account, item)
            crash_point("publish.anchor_sent")
            tx = pending.wait()
            crash_point("publish.anchor_receipt")
            found = (tx.tx_hash, tx.block_number)
        except ContractReverted as exc:
            if exc.reason != "RecordRegistryRecordExists":
                raise
            found = adopt()  # two sends raced (a resumed step): the first one won
            if found is None:
                raise
    tx_hash, block_number = found
    _upsert_record(
        svc,
        rid,
        status=RecordStatus.ANCHORED.value,
        anchor_tx=tx_hash or None,
        anchor_block=block_number,
    )
    return {"record_id": rid, "tx_hash": tx_hash, "block_number": block_number}


def _previous_on_chain(svc: BrokerServices, previous: str | None) -> None:
    """A record anchored alone names its previous version on chain: one anchored
    in a batch (the broker ran in batch mode then) is materialised first, with
    its own missing earlier versions, oldest first."""
    records = svc.ledger.records
    if previous is None or records.record_exists(previous):
        return
    from govshare.broker.record_batches import proof_of

    records.materialise_chain(
        svc.account, previous, lambda r: proof_of(svc, r) or svc.batches.locate(r)
    )


def _anchored_in_batch(svc: BrokerServices, rid: str) -> JSON:
    """A batched record's anchor is its batch's: done once the batch landed, else
    the operation waits for it (its batch completes it, normally before this
    runs again)."""
    with svc.db.session(readonly=True) as s:
        row = s.get(Record, rid)
        if row is None:
            raise IntegrityError(f"Record {rid} is not in the database.", record_id=rid)
        if row.status == RecordStatus.ANCHORED.value and row.batch_seq is not None:
            place = {"sequence": int(row.batch_seq), "leaf_index": row.leaf_index}
            return {"record_id": rid, "batch": place, "batch_tx": row.anchor_tx}
    svc.record_batcher.notify()
    raise StepDeferred(PARK, "waiting for its record batch to be anchored")


def cleanup_spool(svc: BrokerServices, *, older_than: float | None = 3600.0) -> int:
    """Delete spooled files no unfinished operation needs: staged uploads and
    envelopes of finished (or never submitted) publishes, and fetched plaintext
    left behind, once older than ``older_than`` seconds (``None``: whatever their
    age — at start-up, when nothing can be in flight). Returns how many.

    An unfinished publish owns its staged upload (its payload's ``upload``) and
    its envelope (``<operation id>.enc``): it resumes from them, so they stay.
    A half-written ``.enc.tmp`` goes: the ``encrypt`` step writes it afresh."""
    keep: set[str] = set()
    for op in svc.outbox.pending():
        if op.kind == KIND:
            keep.add(str(op.payload.get("upload", "")))
            keep.add(f"{op.id}.enc")
    cutoff = None if older_than is None else svc.clock.now() - older_than
    removed = 0
    for path in svc.spool.iterdir():
        if path.name in keep or not path.is_file():
            continue
        try:
            if cutoff is None or path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed
