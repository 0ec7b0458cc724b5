"""Durable multi-step operations (the outbox).

A use case that touches the outside world in several steps (publish = encrypt →
store → wrap key → anchor) runs as an *operation*: a kind with ordered steps.
The engine guarantees:

* **Intent before effect.** Before a step's handler runs, the engine commits
  "step N started" (and the operation's position) to the database; after it
  returns, it commits the step's result. A crash at any point leaves a row
  saying exactly which step may have had its effect.
* **Resumption.** :meth:`Outbox.recover` (at start-up) and
  :meth:`Outbox.resume_pending` re-run unfinished operations from their last
  recorded step, with the results of the steps before it.
* **Idempotency under a client's key.** :meth:`Outbox.submit` creates at most one
  operation per (user, idempotency key) — the database's UNIQUE constraint
  decides, so concurrent threads or processes cannot create two. The same key
  with the same request fingerprint returns the original operation (and its
  result, once done); with a different fingerprint it is refused with
  :class:`~govshare.broker.errors.IdempotencyConflict`.
* **Bounded retries.** A *transient* error (chain or store unavailable, a
  transaction timeout) schedules a retry with exponential backoff; after
  ``max_attempts`` starts of the same step the operation fails. Any other error
  fails the operation at once. A crash counts as an attempt too, so a step that
  kills the process every time cannot loop forever.

The handler contract: idempotent
--------------------------------
A step may run more than once: when the process died after the handler's
effect but before its result was committed, the step runs again on resume. The
engine cannot know whether the effect happened; the handler must find out.
``ctx.resumed`` is true whenever this step was started before. So every handler
first checks whether its effect already exists, then acts:

* ``store``: content addressing makes it naturally idempotent (same bytes →
  same CID); storing twice is harmless.
* ``anchor``: *before sending*, look the record id up on chain; if it is
  anchored (by this department, with this hash), return that instead of
  sending a second transaction. If a transaction was sent but is not on chain
  (the dev chain may lose its last second on a hard kill), send again.
* database writes inside a handler use upserts keyed by the operation's ids.

Handlers must not hold a database transaction across slow external calls (the
engine commits between steps precisely so they need not); they receive their
dependencies (ledger, store, keys) through the closures registered here.

Large inputs (an uploaded file) are not payload: stage them (e.g. a file under
the broker's spool directory) and put the reference in the payload.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError as SAIntegrityError
from sqlalchemy.orm import Session

from govshare.broker.db import (
    Database,
    Operation,
    OperationStep,
    OpState,
    OwnTx,
    OwnTxState,
    StepState,
)
from govshare.broker.errors import IdempotencyConflict
from govshare.broker.users import Principal
from govshare.broker.workers import Worker
from govshare.clock import SYSTEM_CLOCK, Clock, utcnow
from govshare.errors import (
    ChainUnavailable,
    GovShareError,
    InputError,
    NotFound,
    StorageUnavailable,
    TransactionTimeout,
)

log = logging.getLogger(__name__)

JSON = dict[str, Any]

#: An idempotency key: printable ASCII, no spaces (the API's schema states it).
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"
_KEY_RE = re.compile(IDEMPOTENCY_KEY_PATTERN.strip("^$"))


def check_idempotency_key(key: object) -> str:
    """``key`` if it may be an idempotency key, else :class:`InputError`."""
    if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
        raise InputError(
            "An idempotency key is 1 to 255 printable ASCII characters without spaces."
        )
    return key


_FINGERPRINT_RE = re.compile(r"[0-9a-f]{64}")


def fingerprint(body: Any) -> str:
    """SHA-256 of ``body``'s canonical JSON: two requests with the same content
    get the same fingerprint whatever their key order. For an upload, include
    the file's own SHA-256 in ``body``."""
    canon = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()


def principal_of(user: Principal | str) -> str:
    """The idempotency scope of a caller: ``user:ID`` for a user, or a given string
    (``peer:TAX``, ``system``) for callers that are not users."""
    if isinstance(user, Principal):
        return f"user:{user.user_id}"
    if not user or len(user) > 80:
        raise ValueError("a principal is a non-empty string of at most 80 characters")
    return user


@dataclass(frozen=True)
class StepContext:
    """What a step handler sees."""

    operation_id: str
    kind: str
    principal: str
    payload: Mapping[str, Any]
    results: Mapping[str, JSON]  # results of the steps before this one, by step name
    step: str
    attempt: int  # 1 the first time this step is started
    resumed: bool  # started before (crash or transient error): check before acting


StepHandler = Callable[[StepContext], JSON | None]


class StepDeferred(Exception):
    """Raised by a step whose effect someone else brings about (a record's anchor
    is its batch's): the operation waits, pending, and the step runs again after
    ``delay`` seconds — to look for that effect. Not an attempt: a step may be
    deferred any number of times."""

    def __init__(self, delay: float, reason: str) -> None:
        super().__init__(reason)
        self.delay = delay
        self.reason = reason


@dataclass(frozen=True)
class Step:
    name: str
    run: StepHandler


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff for transient errors, and the bound on attempts."""

    max_attempts: int = 5
    base_delay: float = 0.5
    factor: float = 2.0
    max_delay: float = 30.0
    transient: tuple[type[BaseException], ...] = (
        ChainUnavailable,
        StorageUnavailable,
        TransactionTimeout,
    )

    def delay(self, attempt: int) -> float:
        """Seconds to wait after the ``attempt``-th failure (1-based)."""
        return min(self.max_delay, self.base_delay * self.factor ** max(0, attempt - 1))


#: Called in the reopening transaction: undo what the operation's completion
#: claimed (a record shown anchored, a batch marked) — the chain lost it.
ReopenHook = Callable[[Session, str, Mapping[str, Any]], None]


@dataclass(frozen=True)
class OperationKind:
    name: str
    steps: tuple[Step, ...]
    retry: RetryPolicy
    result: Callable[[Mapping[str, JSON]], JSON] | None = None
    on_reopen: ReopenHook | None = None


@dataclass(frozen=True)
class OperationView:
    """A snapshot of an operation (safe to keep outside a session)."""

    id: str
    kind: str
    principal: str
    idempotency_key: str
    state: OpState
    step: int
    step_name: str | None
    payload: JSON
    result: JSON | None
    error: JSON | None
    attempts: int
    next_attempt_at: datetime
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    steps: tuple[StepView, ...] = field(default=())

    @property
    def finished(self) -> bool:
        return self.state in (OpState.DONE, OpState.FAILED)

    def to_dict(self) -> JSON:
        """The JSON form an API or CLI shows (the payload stays internal)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "state": self.state.value,
            "step": self.step_name,
            "result": self.result,
            "error": self.error,
            "attempts": self.attempts,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }


@dataclass(frozen=True)
class StepView:
    index: int
    name: str
    state: StepState
    attempts: int
    result: JSON | None
    error: JSON | None


@dataclass(frozen=True)
class Started:
    """A new operation whose first steps its caller did (:meth:`Outbox.submit_started_many`)."""

    kind: str
    idempotency_key: str
    fingerprint: str
    payload: Mapping[str, Any]
    op_id: str
    done: Sequence[JSON]


@dataclass(frozen=True)
class Submission:
    operation: OperationView
    created: bool  # False: the key was seen before and this is the original operation


_OPS = cast(Table, Operation.__table__)
_STEPS = cast(Table, OperationStep.__table__)

#: The columns of an operation its view shows.
_VIEWED = (
    "id", "kind", "principal", "idempotency_key", "state", "step", "step_name", "payload",
    "result", "error", "attempts", "next_attempt_at", "created_at", "updated_at", "finished_at",
)  # fmt: skip


def _view(op: Operation | Mapping[str, Any], steps: Sequence[OperationStep] = ()) -> OperationView:
    """A snapshot of an operation: its mapped object, or its row's values by
    column name (the bulk paths write rows without making objects)."""
    v = op if isinstance(op, Mapping) else {name: getattr(op, name) for name in _VIEWED}
    return OperationView(
        id=v["id"],
        kind=v["kind"],
        principal=v["principal"],
        idempotency_key=v["idempotency_key"],
        state=OpState(v["state"]),
        step=v["step"],
        step_name=v["step_name"],
        payload=dict(v["payload"]),
        result=v["result"],
        error=v["error"],
        attempts=v["attempts"],
        next_attempt_at=v["next_attempt_at"],
        created_at=v["created_at"],
        updated_at=v["updated_at"],
        finished_at=v["finished_at"],
        steps=tuple(
            StepView(
                index=s.step_index,
                name=s.name,
                state=StepState(s.state),
                attempts=s.attempts,
                result=s.result,
                error=s.error,
            )
            for s in steps
        ),
    )


def _error_dict(exc: BaseException, *, retryable: bool, step: str, error_id: str | None) -> JSON:
    if isinstance(exc, GovShareError):
        return {
            "code": exc.code,
            "status": exc.status,
            "message": exc.message,
            "retryable": retryable,
            "step": step,
        }
    # Unexpected: keep the class name and an id for the log, not the message
    # (it may quote internals).
    return {
        "code": "internal",
        "status": 500,
        "message": f"The broker hit an unexpected error (error id {error_id}).",
        "retryable": retryable,
        "step": step,
        "error_id": error_id,
    }


def _as_json(value: Any, what: str) -> JSON:
    """Round-trip through JSON: what a handler sees after a restart is exactly
    what it saw before (tuples become lists, and so on)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"{what} must be a JSON object (a dict), not {type(value).__name__}")
    try:
        out: JSON = json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} is not JSON-serialisable: {exc}") from exc
    return out


class Outbox:
    """The durable operation engine of one broker database."""

    def __init__(
        self,
        db: Database,
        *,
        retry: RetryPolicy | None = None,
        lease: timedelta = timedelta(minutes=10),
        clock: Clock = SYSTEM_CLOCK,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.db = db
        self.default_retry = retry or RetryPolicy()
        self.lease = lease
        self.instance = uuid.uuid4().hex  # this engine's lease-owner id
        #: What the schedule (retries, leases) is read against.
        self.clock = clock
        self._sleep = sleep
        self._kinds: dict[str, OperationKind] = {}

    # -- registration --------------------------------------------------------------

    def register(
        self,
        kind: str,
        steps: Sequence[Step | tuple[str, StepHandler]],
        *,
        retry: RetryPolicy | None = None,
        result: Callable[[Mapping[str, JSON]], JSON] | None = None,
        on_reopen: ReopenHook | None = None,
    ) -> OperationKind:
        """Declare an operation kind and its ordered, idempotent steps.

        ``result`` builds the operation's result from all step results (by
        name); by default it is the last step's result. Step names are stable
        identifiers: renaming or reordering the steps of a kind that may have
        operations in flight breaks their resumption. ``on_reopen`` runs when
        :meth:`reopen` sends a finished operation back (its transaction was
        lost by the chain), with the operation's id and payload.
        """
        if kind in self._kinds:
            raise ValueError(f"operation kind {kind!r} is already registered")
        norm = tuple(s if isinstance(s, Step) else Step(s[0], s[1]) for s in steps)
        if not norm:
            raise ValueError("an operation kind needs at least one step")
        names = [s.name for s in norm]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate step names in {kind!r}: {names}")
        k = OperationKind(kind, norm, retry or self.default_retry, result, on_reopen)
        self._kinds[kind] = k
        return k

    def kinds(self) -> Mapping[str, OperationKind]:
        return dict(self._kinds)

    # -- submitting ----------------------------------------------------------------

    def submit(
        self,
        kind: str,
        idempotency_key: str,
        user: Principal | str,
        fingerprint: str,
        payload: Mapping[str, Any],
        *,
        run: bool = True,
        wait: bool = True,
        op_id: str | None = None,
        also: Callable[[Session], None] | None = None,
    ) -> Submission:
        """Create the operation for ``(user, idempotency_key)``, or find the one
        that exists, and (with ``run``) drive it as far as it goes now.

        A key seen before with the same fingerprint returns that operation,
        whatever its state (``created=False``); with another fingerprint (or for
        another kind) it raises :class:`IdempotencyConflict` and changes nothing.
        ``wait`` lets this call sleep through transient-error backoffs; without
        it a transient error leaves the operation pending for
        :meth:`resume_pending`. ``also`` adds the caller's rows to the
        transaction that creates the operation (``op_id``: its id, chosen by the
        caller so that those rows can name it).
        """
        principal = principal_of(user)
        now = utcnow(self.clock)
        op_id = op_id or uuid.uuid4().hex
        row = self._new_operation(
            kind, idempotency_key, principal, fingerprint, payload, op_id, now
        )
        try:
            with self.db.session() as s:
                s.add(row)
                if also is not None:
                    s.flush()
                    also(s)
                s.flush()
                view = _view(s.get(Operation, op_id))  # type: ignore[arg-type]
            created = True
        except SAIntegrityError:
            # The UNIQUE (principal, idempotency_key) constraint: someone — maybe a
            # thread a microsecond earlier — created it. The insert was rolled back.
            created = False

        if not created:
            with self.db.session(readonly=True) as s:
                stored = s.scalars(
                    select(Operation).where(
                        Operation.principal == principal,
                        Operation.idempotency_key == idempotency_key,
                    )
                ).first()
                if stored is None:  # an integrity error that was not about the key
                    raise RuntimeError("creating the operation failed a database constraint")
                same = stored.kind == kind and hmac.compare_digest(stored.fingerprint, fingerprint)
                existing = _view(stored)
            if not same:
                raise IdempotencyConflict(
                    "This Idempotency-Key was already used for a different request; "
                    "use a new key for a new request.",
                    operation_id=existing.id,
                )
            return Submission(existing, created=False)

        if run:
            view = self.run(op_id, wait=wait)
        return Submission(view, created=True)

    def submit_started(
        self,
        kind: str,
        idempotency_key: str,
        user: Principal | str,
        fingerprint: str,
        payload: Mapping[str, Any],
        *,
        op_id: str,
        done: Sequence[JSON],
        also: Callable[[Session], None] | None = None,
    ) -> Submission:
        """Create the operation with its first ``len(done)`` steps already done
        (their results, in order) and the next one held by this caller: one
        transaction, with ``also`` (the use case's own rows) in it. The caller
        runs the steps it holds and calls :meth:`advance` — or crashes, and then
        :meth:`recover` hands the operation to the worker, which resumes it at
        the first step not recorded done. For a use case that did its first,
        local steps before knowing whether the key is new (a retry then throws
        that work away: see :meth:`submit` for the answer to a key seen before).
        """
        k = self._kinds.get(kind)
        if k is None:
            raise ValueError(f"unknown operation kind {kind!r}")
        if not 0 < len(done) < len(k.steps):
            raise ValueError("submit_started records some, not all, of the steps done")

        def held(s: Session) -> None:
            op = s.get(Operation, op_id)
            assert op is not None
            self._hold(s, op, k, done)
            if also is not None:
                also(s)

        return self.submit(
            kind, idempotency_key, user, fingerprint, payload, run=False, op_id=op_id, also=held
        )

    def advance(
        self,
        op_id: str,
        done: Sequence[JSON],
        *,
        park: float | None = None,
        also: Callable[[Session], None] | None = None,
    ) -> OperationView | None:
        """Record the next ``len(done)`` steps of an operation this caller holds
        (:meth:`submit_started`) as done, with ``also`` in the same transaction,
        and let it go: due now, or (``park``) after that many seconds — for a
        step whose effect comes from elsewhere (:class:`StepDeferred`). Returns
        the operation then, or None (and changes nothing) if this caller no
        longer holds it."""
        now = utcnow(self.clock)
        with self.db.session() as s:
            view = self._advance_in(s, op_id, done, park, now)
            if view is not None and also is not None:
                also(s)
            return view

    def submit_started_many(
        self,
        user: Principal | str,
        started: Sequence[Started],
        *,
        also: Callable[[Session], None] | None = None,
    ) -> list[OperationView] | None:
        """:meth:`submit_started` for many new operations in **one** transaction
        (a bulk import's batch), with ``also``. Every key must be new: if any was
        taken meanwhile, nothing is created and the answer is None (the caller
        then submits them one by one, and learns which were taken)."""
        principal = principal_of(user)
        now = utcnow(self.clock)
        lease_until = now + self.lease
        ops: list[dict[str, Any]] = []
        steps: list[dict[str, Any]] = []
        for st in started:
            k = self._kinds.get(st.kind)
            if k is None:
                raise ValueError(f"unknown operation kind {st.kind!r}")
            if not 0 < len(st.done) < len(k.steps):
                raise ValueError("submit_started records some, not all, of the steps done")
            op = self._operation_row(
                st.kind, st.idempotency_key, principal, st.fingerprint, st.payload, st.op_id, now
            )
            # held as it is inserted (no UPDATE after): see _hold
            n = len(st.done)
            op.update(state=OpState.RUNNING.value, step=n, step_name=k.steps[n].name)
            op.update(lease_owner=self.instance, lease_until=lease_until)
            ops.append(op)
            steps += [
                _done_step_row(st.op_id, i, k, out, now, now) for i, out in enumerate(st.done)
            ]
        # Rows, not mapped objects: a bulk import inserts hundreds at a time, and
        # the unit of work cost more than the statements.
        try:
            with self.db.session() as s:
                s.execute(insert(_OPS), ops)
                s.execute(insert(_STEPS), steps)
                if also is not None:
                    also(s)
                s.flush()
        except SAIntegrityError:
            return None  # a key was taken (or a row of ``also`` refused): nothing kept
        return [_view(op) for op in ops]

    def advance_many(
        self,
        done: Mapping[str, Sequence[JSON]],
        *,
        park: float | None = None,
        also: Callable[[Session], None] | None = None,
    ) -> dict[str, OperationView | None]:
        """:meth:`advance` for many operations this caller holds, in **one**
        transaction (with ``also``): by operation id, its view then, or None for
        one this caller no longer holds (unchanged)."""
        now = utcnow(self.clock)
        due = now + timedelta(seconds=park or 0.0)
        with self.db.session() as s:
            # One query for the operations and one statement each for their steps
            # and their moves (a bulk import advances 256 at a time).
            held: dict[str, Mapping[Any, Any]] = {}
            for chunk in _in_chunks(list(done)):
                held.update(
                    (row["id"], row)
                    for row in s.execute(select(_OPS).where(_OPS.c.id.in_(chunk))).mappings()
                )
            views: dict[str, OperationView | None] = {}
            steps: list[dict[str, Any]] = []
            moves: list[dict[str, Any]] = []
            for op_id, out in done.items():
                row = held.get(op_id)
                if (
                    row is None
                    or row["state"] != OpState.RUNNING.value
                    or row["lease_owner"] != self.instance
                ):
                    views[op_id] = None
                    continue
                k = self._kinds[row["kind"]]
                step = row["step"] + len(out)
                if step >= len(k.steps):
                    raise ValueError("advance leaves the last step to the engine")
                created = row["created_at"]
                steps += [
                    _done_step_row(op_id, i, k, o, created, now)
                    for i, o in enumerate(out, start=row["step"])
                ]
                moved = {
                    **row,
                    "step": step,
                    "step_name": k.steps[step].name,
                    "state": OpState.PENDING.value,
                    "next_attempt_at": due,
                    "lease_owner": None,
                    "lease_until": None,
                    "updated_at": now,
                }
                moves.append({"b_id": op_id, "b_step": step, "b_step_name": moved["step_name"]})
                views[op_id] = _view(moved)
            if steps:
                s.execute(insert(_STEPS), steps)
            if moves:
                s.execute(
                    update(_OPS)
                    .where(
                        _OPS.c.id == bindparam("b_id"),
                        _OPS.c.state == OpState.RUNNING.value,
                        _OPS.c.lease_owner == self.instance,
                    )
                    .values(
                        step=bindparam("b_step"),
                        step_name=bindparam("b_step_name"),
                        state=OpState.PENDING.value,
                        next_attempt_at=due,
                        lease_owner=None,
                        lease_until=None,
                        updated_at=now,
                    ),
                    moves,
                )
            if also is not None:
                also(s)
            return views

    def _new_operation(
        self,
        kind: str,
        idempotency_key: str,
        principal: str,
        fingerprint: str,
        payload: Mapping[str, Any],
        op_id: str,
        now: datetime,
    ) -> Operation:
        return Operation(
            **self._operation_row(
                kind, idempotency_key, principal, fingerprint, payload, op_id, now
            )
        )

    def _operation_row(
        self,
        kind: str,
        idempotency_key: str,
        principal: str,
        fingerprint: str,
        payload: Mapping[str, Any],
        op_id: str,
        now: datetime,
    ) -> dict[str, Any]:
        """A new operation's values, by column (due now, held by no one)."""
        if kind not in self._kinds:
            raise ValueError(f"unknown operation kind {kind!r}")
        check_idempotency_key(idempotency_key)
        if not _FINGERPRINT_RE.fullmatch(fingerprint):
            raise ValueError("a fingerprint is a hex SHA-256 (see outbox.fingerprint)")
        return {
            "id": op_id,
            "kind": kind,
            "principal": principal,
            "idempotency_key": idempotency_key,
            "fingerprint": fingerprint,
            "state": OpState.PENDING.value,
            "step": 0,
            "step_name": None,
            "payload": _as_json(payload, "the operation payload"),
            "result": None,
            "error": None,
            "attempts": 0,
            "next_attempt_at": now,
            "lease_owner": None,
            "lease_until": None,
            "created_at": now,
            "updated_at": now,
            "finished_at": None,
        }

    def _hold(self, s: Session, op: Operation, k: OperationKind, done: Sequence[JSON]) -> None:
        """A new operation's first steps done by its caller, the next held by it."""
        now = op.created_at
        op.state, op.step, op.step_name = OpState.RUNNING.value, len(done), k.steps[len(done)].name
        op.lease_owner, op.lease_until = self.instance, now + self.lease
        s.add_all([_done_step(op.id, i, k, out, now, now) for i, out in enumerate(done)])

    def _advance_in(
        self, s: Session, op_id: str, done: Sequence[JSON], park: float | None, now: datetime
    ) -> OperationView | None:
        return self._advance_op(s, s.get(Operation, op_id), done, park, now)

    def _advance_op(
        self,
        s: Session,
        op: Operation | None,
        done: Sequence[JSON],
        park: float | None,
        now: datetime,
        *,
        flush: bool = True,
    ) -> OperationView | None:
        if op is None or op.state != OpState.RUNNING.value or op.lease_owner != self.instance:
            return None
        op_id = op.id
        k = self._kinds[op.kind]
        if op.step + len(done) >= len(k.steps):
            raise ValueError("advance leaves the last step to the engine")
        s.add_all(
            [
                _done_step(op_id, i, k, out, op.created_at, now)
                for i, out in enumerate(done, start=op.step)
            ]
        )
        op.step += len(done)
        op.step_name = k.steps[op.step].name
        op.state = OpState.PENDING.value
        op.next_attempt_at = now + timedelta(seconds=park or 0.0)
        op.lease_owner = None
        op.lease_until = None
        op.updated_at = now
        if flush:
            s.flush()
        return _view(op)

    # -- reading -------------------------------------------------------------------

    def get(self, op_id: str, *, with_steps: bool = False) -> OperationView:
        with self.db.session(readonly=True) as s:
            op = s.get(Operation, op_id)
            if op is None:
                raise NotFound(f"No operation {op_id!r}.", operation_id=op_id)
            return _view(op, list(op.steps) if with_steps else ())

    def find(self, user: Principal | str, idempotency_key: str) -> OperationView | None:
        principal = principal_of(user)
        with self.db.session(readonly=True) as s:
            op = s.scalars(
                select(Operation).where(
                    Operation.principal == principal,
                    Operation.idempotency_key == idempotency_key,
                )
            ).first()
            return _view(op) if op is not None else None

    def known_keys(self, user: Principal | str, keys: Sequence[str]) -> set[str]:
        """Which of ``keys`` already name an operation of ``user`` (one query)."""
        principal = principal_of(user)
        found: set[str] = set()
        with self.db.reading() as conn:
            for chunk in _in_chunks(keys):
                found.update(
                    conn.scalars(
                        select(Operation.idempotency_key).where(
                            Operation.principal == principal,
                            Operation.idempotency_key.in_(chunk),
                        )
                    )
                )
        return found

    def pending(self) -> list[OperationView]:
        """Unfinished operations (pending or running), oldest first."""
        with self.db.session(readonly=True) as s:
            ops = s.scalars(
                select(Operation)
                .where(Operation.state.in_([OpState.PENDING.value, OpState.RUNNING.value]))
                .order_by(Operation.created_at)
            ).all()
            return [_view(o) for o in ops]

    # -- running -------------------------------------------------------------------

    def recover(self) -> int:
        """At start-up, before serving: every operation a previous process left
        *running* becomes pending again, due now. Assumes this broker is the only
        process driving operations in this database (one broker per department);
        with several, rely on lease expiry instead (:meth:`resume_pending` takes
        over running operations whose lease ran out)."""
        now = utcnow(self.clock)
        with self.db.session() as s:
            res = s.execute(
                update(Operation)
                .where(Operation.state == OpState.RUNNING.value)
                .values(
                    state=OpState.PENDING.value,
                    lease_owner=None,
                    lease_until=None,
                    next_attempt_at=now,
                    updated_at=now,
                )
            )
            count = int(getattr(res, "rowcount", 0) or 0)
        if count:
            log.info("outbox: %d interrupted operation(s) will be resumed", count)
        return count

    def resume_pending(self, *, limit: int | None = None) -> list[OperationView]:
        """Drive every due unfinished operation once (no sleeping through
        backoffs; operations waiting for a retry are left for a later call).
        Returns the operations it ran, in their state afterwards."""
        now = utcnow(self.clock)
        with self.db.session(readonly=True) as s:
            q = (
                select(Operation.id, Operation.kind)
                .where(
                    or_(
                        and_(
                            Operation.state == OpState.PENDING.value,
                            Operation.next_attempt_at <= now,
                        ),
                        and_(
                            Operation.state == OpState.RUNNING.value,
                            Operation.lease_until < now,
                        ),
                    )
                )
                .order_by(Operation.created_at)
            )
            if limit is not None:
                q = q.limit(limit)
            rows = [(r.id, r.kind) for r in s.execute(q)]
        out = []
        for op_id, kind in rows:
            if kind not in self._kinds:
                log.warning("outbox: operation %s has unregistered kind %r; skipped", op_id, kind)
                continue
            out.append(self.run(op_id, wait=False))
        return out

    def run(self, op_id: str, *, wait: bool = True) -> OperationView:
        """Drive one operation: claim it, run its remaining steps, record each.

        Returns its state afterwards: done, failed, pending (a transient error's
        retry is scheduled and ``wait`` is false), or running (another worker
        holds it).
        """
        kind = self.get(op_id).kind
        if kind not in self._kinds:
            raise ValueError(f"operation {op_id} has unregistered kind {kind!r}")
        waited = False
        while True:
            # After sleeping through the backoff it scheduled itself, this caller
            # claims the retry without re-checking the clock against the schedule.
            if not self._claim(op_id, due_check=not waited):
                return self.get(op_id)
            retry_in = self._drive(op_id)
            if retry_in is None or not wait:
                return self.get(op_id)
            self._sleep(retry_in)
            waited = True

    def settle(
        self, view: OperationView, *, timeout: float = 30.0, poll: float = 0.05
    ) -> OperationView:
        """Wait while another worker drives ``view``'s operation (it is *running*
        under someone else's lease: e.g. the :class:`OutboxWorker` claimed a
        freshly submitted operation before the submitting request could), for up
        to ``timeout`` seconds. Returns its state afterwards."""
        deadline = time.monotonic() + timeout
        while view.state is OpState.RUNNING and time.monotonic() < deadline:
            self._sleep(poll)
            view = self.get(view.id)
        return view

    def reopen(
        self, op_id: str, step_index: int, error: JSON, *, dropped_tx: str | None = None
    ) -> bool:
        """Send an operation back to step ``step_index``: the transaction that step
        sent is no longer on chain (a reorg, a dev chain restored from an older
        dump). The step runs again — as a resumed step, so it first looks for
        its effect on chain — and so do the steps after it. ``error`` says why
        (shown on the operation until it finishes again); ``dropped_tx`` is marked
        dropped in the same transaction. Returns False if the operation is
        unknown or is being driven right now (try again later)."""
        now = utcnow(self.clock)
        with self.db.session() as s:
            op = s.get(Operation, op_id)
            kind = self._kinds.get(op.kind) if op is not None else None
            if op is None or kind is None or op.state == OpState.RUNNING.value:
                return False
            for st in op.steps:
                if st.step_index >= step_index:
                    st.attempts = 0  # a fresh start: the lost send was not a failure
            op.state = OpState.PENDING.value
            op.step = step_index
            op.step_name = kind.steps[step_index].name if step_index < len(kind.steps) else None
            op.attempts = 0
            op.error = _as_json(error, "the reopening reason")
            op.result = None
            op.finished_at = None
            op.next_attempt_at = now
            op.updated_at = now
            if dropped_tx is not None:
                tx = s.get(OwnTx, dropped_tx.lower())
                if tx is not None:
                    tx.state, tx.updated_at = OwnTxState.DROPPED.value, now
            if kind.on_reopen is not None:
                kind.on_reopen(s, op_id, dict(op.payload))
        log.warning(
            "outbox: operation %s (%s) reopened at step %d: %s",
            op_id,
            kind.name,
            step_index,
            error.get("code"),
        )
        return True

    def withdraw(self, op_id: str, error: JSON) -> bool:
        """Fail a pending operation that no worker has claimed, without running
        it: what it would do can no longer happen, or was replaced (``error``
        says why). Returns False if it is unknown, running or finished."""
        now = utcnow(self.clock)
        with self.db.session() as s:
            op = s.get(Operation, op_id)
            if op is None or op.state != OpState.PENDING.value:
                return False
            self._fail(op, _as_json(error, "the withdrawal reason"), now)
        return True

    # -- internals -----------------------------------------------------------------

    def _claim(self, op_id: str, *, due_check: bool = True) -> bool:
        now = utcnow(self.clock)
        pending = Operation.state == OpState.PENDING.value
        with self.db.session() as s:
            res = s.execute(
                update(Operation)
                .where(
                    Operation.id == op_id,
                    or_(
                        and_(pending, Operation.next_attempt_at <= now) if due_check else pending,
                        and_(
                            Operation.state == OpState.RUNNING.value,
                            Operation.lease_until < now,
                        ),
                    ),
                )
                .values(
                    state=OpState.RUNNING.value,
                    lease_owner=self.instance,
                    lease_until=now + self.lease,
                    updated_at=now,
                )
            )
            return int(getattr(res, "rowcount", 0) or 0) == 1

    def _drive(self, op_id: str) -> float | None:
        """Run the claimed operation's remaining steps. Returns the seconds until a
        scheduled retry, or None when it finished (done or failed) or was lost."""
        with self.db.session(readonly=True) as s:
            op = s.get(Operation, op_id)
            assert op is not None
            kind = self._kinds.get(op.kind)
            index = op.step
            payload = dict(op.payload)
            principal = op.principal
            results: dict[str, JSON] = {
                st.name: dict(st.result or {})
                for st in op.steps
                if st.state == StepState.DONE.value and st.step_index < index
            }
        assert kind is not None  # run() checked
        while index < len(kind.steps):
            step = kind.steps[index]
            started = self._record_intent(op_id, index, step.name, kind.retry)
            if started is None:
                return None  # lease lost, or gave up (recorded)
            attempt, resumed = started
            ctx = StepContext(
                operation_id=op_id,
                kind=kind.name,
                principal=principal,
                payload=payload,
                results=dict(results),
                step=step.name,
                attempt=attempt,
                resumed=resumed,
            )
            try:
                out = _as_json(step.run(ctx), f"the result of step {step.name!r}")
            except StepDeferred as deferred:
                return self._record_deferred(op_id, index, deferred)
            except kind.retry.transient as exc:
                return self._record_transient(op_id, index, step.name, exc, attempt, kind.retry)
            except Exception as exc:  # noqa: BLE001 — any other step error fails the op, recorded
                self._record_permanent(op_id, index, step.name, exc)
                return None
            results[step.name] = out
            last = index == len(kind.steps) - 1
            final = (kind.result(results) if kind.result else out) if last else None
            if not self._record_result(op_id, index, out, final):
                return None
            index += 1
        return None

    def _record_intent(
        self, op_id: str, index: int, name: str, retry: RetryPolicy
    ) -> tuple[int, bool] | None:
        """Commit "step ``index`` starts" before its handler runs. Returns (attempt,
        resumed), or None if the lease was lost or the attempts are used up."""
        now = utcnow(self.clock)
        with self.db.session() as s:
            op = s.get(Operation, op_id)
            if op is None or op.state != OpState.RUNNING.value or op.lease_owner != self.instance:
                log.warning("outbox: lost the lease on operation %s; stopping", op_id)
                return None
            st = s.get(OperationStep, (op_id, index))
            resumed = st is not None
            if st is None:
                st = OperationStep(
                    operation_id=op_id, step_index=index, name=name, attempts=0, started_at=now
                )
                s.add(st)
            if st.attempts >= retry.max_attempts:
                error = {
                    "code": "operation.gave_up",
                    "status": 500,
                    "message": (
                        f"Step {name!r} was started {st.attempts} times without finishing; "
                        "the operation was given up."
                    ),
                    "retryable": False,
                    "step": name,
                }
                st.state = StepState.FAILED.value
                st.error = error
                st.finished_at = now
                self._fail(op, error, now)
                return None
            st.attempts += 1
            st.state = StepState.STARTED.value
            st.started_at = now
            st.finished_at = None
            op.step = index
            op.step_name = name
            op.attempts = st.attempts
            op.lease_until = now + self.lease
            op.updated_at = now
            return st.attempts, resumed

    def _record_result(self, op_id: str, index: int, out: JSON, final: JSON | None) -> bool:
        now = utcnow(self.clock)
        with self.db.session() as s:
            op = s.get(Operation, op_id)
            if op is None or op.state != OpState.RUNNING.value or op.lease_owner != self.instance:
                log.warning("outbox: lost the lease on operation %s after a step", op_id)
                return False
            st = s.get(OperationStep, (op_id, index))
            assert st is not None
            st.state = StepState.DONE.value
            st.result = out
            st.error = None
            st.finished_at = now
            _watch_tx(s, op_id, index, out, now)
            op.step = index + 1
            op.attempts = 0
            op.error = None
            op.updated_at = now
            if final is not None:
                op.state = OpState.DONE.value
                op.result = _as_json(final, "the operation result")
                op.finished_at = now
                op.lease_owner = None
                op.lease_until = None
            else:
                op.lease_until = now + self.lease
        return True

    def _record_transient(
        self,
        op_id: str,
        index: int,
        name: str,
        exc: BaseException,
        attempt: int,
        retry: RetryPolicy,
    ) -> float | None:
        now = utcnow(self.clock)
        give_up = attempt >= retry.max_attempts
        error = _error_dict(exc, retryable=not give_up, step=name, error_id=None)
        delay = retry.delay(attempt)
        with self.db.session() as s:
            op = s.get(Operation, op_id)
            st = s.get(OperationStep, (op_id, index))
            if op is None or st is None or op.lease_owner != self.instance:
                return None
            # Said once per cause: a chain that stays away is not news every retry.
            same = (op.error or {}).get("code") == error["code"] and not give_up
            log.log(
                logging.DEBUG if same else logging.WARNING,
                "outbox: operation %s step %s failed transiently (attempt %d/%d): %s",
                op_id,
                name,
                attempt,
                retry.max_attempts,
                error["code"],
            )
            st.state = StepState.FAILED.value
            st.error = error
            st.finished_at = now
            if give_up:
                self._fail(op, error, now)
                return None
            op.state = OpState.PENDING.value
            op.error = error
            op.next_attempt_at = now + timedelta(seconds=delay)
            op.lease_owner = None
            op.lease_until = None
            op.updated_at = now
        return delay

    def _record_deferred(self, op_id: str, index: int, deferred: StepDeferred) -> float | None:
        now = utcnow(self.clock)
        with self.db.session() as s:
            op = s.get(Operation, op_id)
            st = s.get(OperationStep, (op_id, index))
            if op is None or st is None or op.lease_owner != self.instance:
                return None
            st.attempts = max(0, st.attempts - 1)  # waiting is not an attempt
            op.state = OpState.PENDING.value
            op.attempts = st.attempts
            op.next_attempt_at = now + timedelta(seconds=deferred.delay)
            op.lease_owner = None
            op.lease_until = None
            op.updated_at = now
        # Not slept through (even with ``wait``): the effect comes from elsewhere.
        return None

    def _record_permanent(self, op_id: str, index: int, name: str, exc: Exception) -> None:
        error_id = None
        if not isinstance(exc, GovShareError):
            error_id = uuid.uuid4().hex[:12]
            log.error(
                "outbox: operation %s step %s raised an unexpected error (error id %s)",
                op_id,
                name,
                error_id,
                exc_info=exc,
            )
        error = _error_dict(exc, retryable=False, step=name, error_id=error_id)
        now = utcnow(self.clock)
        with self.db.session() as s:
            op = s.get(Operation, op_id)
            st = s.get(OperationStep, (op_id, index))
            if op is None or st is None or op.lease_owner != self.instance:
                return
            st.state = StepState.FAILED.value
            st.error = error
            st.finished_at = now
            self._fail(op, error, now)

    @staticmethod
    def _fail(op: Operation, error: JSON, now: datetime) -> None:
        op.state = OpState.FAILED.value
        op.error = error
        op.finished_at = now
        op.updated_at = now
        op.lease_owner = None
        op.lease_until = None


#: Values per ``IN (...)`` list: within SQLite's bound-parameter limit.
_IN_CHUNK = 500


def _in_chunks(values: Sequence[str]) -> Iterator[Sequence[str]]:
    for i in range(0, len(values), _IN_CHUNK):
        yield values[i : i + _IN_CHUNK]


def _done_step(
    op_id: str, index: int, kind: OperationKind, out: JSON, started: datetime, now: datetime
) -> OperationStep:
    """Step ``index`` of an operation, done by its caller (not by the engine)."""
    return OperationStep(**_done_step_row(op_id, index, kind, out, started, now))


def _done_step_row(
    op_id: str, index: int, kind: OperationKind, out: JSON, started: datetime, now: datetime
) -> dict[str, Any]:
    """:func:`_done_step`'s values, by column."""
    name = kind.steps[index].name
    return {
        "operation_id": op_id,
        "step_index": index,
        "name": name,
        "state": StepState.DONE.value,
        "attempts": 1,
        "result": _as_json(out, f"the result of step {name!r}"),
        "error": None,
        "started_at": started,
        "finished_at": now,
    }


def finish_parked_many(
    s: Session,
    kind: OperationKind,
    done: Sequence[tuple[str, JSON, JSON]],
    now: datetime,
) -> int:
    """In the caller's transaction: operations of ``kind`` waiting at its last step
    (they raised :class:`StepDeferred`, or were parked by :meth:`Outbox.advance`)
    had that step's effect brought about elsewhere — a record's anchor by its
    batch. Each ``(operation id, step result, operation result)`` is done, in a
    few statements for all (a batch completes hundreds). A step result must not
    name a transaction (``tx_hash``): the effect's owner watches that. Only
    operations still unfinished and at the last step are touched; returns how many."""
    if not done:
        return 0
    last = len(kind.steps) - 1
    ids = [d[0] for d in done]
    waiting = set(
        s.scalars(
            select(Operation.id).where(
                Operation.id.in_(ids),
                Operation.kind == kind.name,
                Operation.step == last,
                Operation.state.in_([OpState.PENDING.value, OpState.RUNNING.value]),
            )
        )
    )
    rows = [d for d in done if d[0] in waiting]
    if not rows:
        return 0
    s.execute(delete(_STEPS).where(_STEPS.c.operation_id.in_(waiting), _STEPS.c.step_index == last))
    s.execute(
        insert(_STEPS),
        [
            {
                "operation_id": op_id,
                "step_index": last,
                "name": kind.steps[last].name,
                "state": StepState.DONE.value,
                "attempts": 1,
                "result": _as_json(out, "the step result"),
                "error": None,
                "started_at": now,
                "finished_at": now,
            }
            for op_id, out, _ in rows
        ],
    )
    s.execute(
        update(_OPS)
        .where(_OPS.c.id == bindparam("b_id"))
        .values(
            step=last + 1,
            state=OpState.DONE.value,
            result=bindparam("b_result", type_=_OPS.c.result.type),
            error=None,
            attempts=0,
            finished_at=now,
            updated_at=now,
            lease_owner=None,
            lease_until=None,
        ),
        [
            {"b_id": op_id, "b_result": _as_json(final, "the operation result")}
            for op_id, _, final in rows
        ],
    )
    return len(rows)


def park_again(
    s: Session, op: Operation, kinds: Mapping[str, OperationKind], park: float, now: datetime
) -> None:
    """In the caller's transaction: a finished operation whose last step's effect
    was lost (its batch's transaction left the chain) waits at that step again."""
    kind = kinds[op.kind]
    last = len(kind.steps) - 1
    st = s.get(OperationStep, (op.id, last))
    if st is not None:
        st.state, st.result, st.attempts, st.finished_at = StepState.STARTED.value, None, 0, None
    op.step = last
    op.step_name = kind.steps[last].name
    op.state = OpState.PENDING.value
    op.result = None
    op.finished_at = None
    op.attempts = 0
    op.next_attempt_at = now + timedelta(seconds=park)
    op.updated_at = now


def _watch_tx(s: Session, op_id: str, index: int, out: JSON, now: datetime) -> None:
    """A step whose result names the transaction it saw mined (``tx_hash`` and
    ``block_number``) is watched until the ledger mirror confirms it."""
    tx_hash, block = out.get("tx_hash"), out.get("block_number")
    if not (isinstance(tx_hash, str) and re.fullmatch(r"0x[0-9a-fA-F]{64}", tx_hash)):
        return
    if not isinstance(block, int) or isinstance(block, bool) or block < 0:
        return
    row = s.get(OwnTx, tx_hash.lower())
    if row is None:
        s.add(
            OwnTx(
                tx_hash=tx_hash.lower(),
                operation_id=op_id,
                step_index=index,
                block_number=block,
                state=OwnTxState.SENT.value,
                created_at=now,
                updated_at=now,
            )
        )
    else:
        row.block_number, row.state, row.updated_at = block, OwnTxState.SENT.value, now


class OutboxWorker(Worker):
    """A background thread that calls :meth:`Outbox.resume_pending` every
    ``interval`` seconds: retries after transient errors complete without a
    client asking again (the broker's runtime starts one)."""

    name = "outbox-worker"

    def __init__(self, outbox: Outbox, *, interval: float = 2.0) -> None:
        super().__init__(interval=interval, log=log)
        self.outbox = outbox

    def run_once(self) -> list[OperationView]:
        """Drive every due operation once; returns them in their state afterwards."""
        return self.outbox.resume_pending()
