"""Bulk import: publish every regular file of a folder through the broker's
publish route, several in flight, resumable.

Each file's idempotency key is derived from (department, category, path
relative to the folder, SHA-256 of the content): running the import again
sends the same keys, so the broker answers the records it already has
("already there") and never publishes one twice; a file whose content changed
gets a new key and becomes a new record. The broker API is reached through a
:class:`Publisher` (the CLI passes its HTTP client), so this module holds the
rules and the loop and knows nothing of HTTP or terminals.

Everything read here is bounded: file size (the broker's upload limit), path
length, number of files, CSV size, rows and fields. Symlinks, devices, FIFOs
and sockets are refused, never followed or opened.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import stat
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

from govshare.errors import GovShareError, InputError
from govshare.util import printable

#: Longest relative path accepted (it is sent as the file name and kept).
MAX_PATH = 1024
#: Most files one import walks (a larger archive is imported folder by folder).
MAX_FILES = 10_000_000
#: Deepest folder nesting walked.
MAX_DEPTH = 64
#: A subject CSV: its size, rows, and the length of each field.
MAX_CSV_BYTES = 256 * 1024**2
MAX_CSV_ROWS = 10_000_000
MAX_CSV_FIELD = 1024
MAX_CSV_ERRORS = 1000
#: A chunk of a bulk import: at most this many files (the broker's bound per
#: request) and bytes (never more than the upload limit either).
CHUNK_FILES = 256
CHUNK_BYTES = 8 * 1024**2
#: Chunks in flight at once (each is one request the broker works through).
CHUNKS_IN_FLIGHT = 2
#: Default upload limit: the broker's default ``max_upload``.
DEFAULT_MAX_SIZE = 256 * 1024**2
_HASH_CHUNK = 1024 * 1024

Outcome = Literal["published", "already", "failed", "skipped"]


@dataclass(frozen=True)
class PublishAnswer:
    """What the broker said to one publish."""

    record_id: str | None
    replayed: bool
    state: str  # "done" (anchored) or "pending"/"running" (accepted, anchoring)


class Publisher(Protocol):
    """The department's publish route, as the clerk calling it."""

    def publish(
        self, path: Path, *, key: str, filename: str, fields: dict[str, str]
    ) -> PublishAnswer: ...


@dataclass(frozen=True)
class Outgoing:
    """One file as sent: its key, its name, its form fields."""

    path: Path
    key: str
    filename: str
    fields: dict[str, str]


@runtime_checkable
class BulkPublisher(Protocol):
    """A publisher that also takes many files in one request (the broker's
    ``POST /v1/records/batch``): the importer then sends its files in chunks."""

    def publish(
        self, path: Path, *, key: str, filename: str, fields: dict[str, str]
    ) -> PublishAnswer: ...

    def publish_many(self, files: list[Outgoing]) -> list[PublishAnswer | str]:
        """Each file's answer, in order, or the reason it was refused."""
        ...


class StopImport(Exception):
    """Raised by a :class:`Publisher` when no further file can succeed (the
    broker is unreachable): the run ends and the rest is reported not sent."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class FileItem:
    """One file found in the folder."""

    path: Path
    relpath: str
    size: int


@dataclass(frozen=True)
class ItemResult:
    relpath: str
    outcome: Outcome
    record_id: str | None = None
    reason: str | None = None
    anchoring: bool = False  # accepted, its batch not anchored yet


@dataclass
class ImportSummary:
    """The whole run: counts, and each failure with its reason."""

    total: int = 0
    published: int = 0
    already: int = 0
    anchoring: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    csv_errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.csv_errors

    def to_dict(self) -> dict[str, object]:
        return {
            "total": self.total,
            "published": self.published,
            "already_there": self.already,
            "anchoring": self.anchoring,
            "failed": [{"path": p, "reason": r} for p, r in self.failed],
            "csv_errors": self.csv_errors,
        }


@dataclass(frozen=True)
class ImportPlan:
    """What to import and how."""

    root: Path
    dept: str
    category: str
    subject_from: Literal["none", "name", "csv"] = "none"
    subject_csv: Path | None = None
    subjects: dict[str, str] | None = None
    jobs: int = 4
    max_size: int = DEFAULT_MAX_SIZE
    #: Files sent in one request to a publisher that takes many (1: each alone).
    per_request: int = CHUNK_FILES


def idempotency_key(dept: str, category: str, relpath: str, sha256_hex: str) -> str:
    """The key of one file's publish: the same file in the same place, the same key."""
    h = hashlib.sha256()
    for part in (dept, category, relpath, sha256_hex):
        b = part.encode("utf-8", "surrogateescape")
        h.update(len(b).to_bytes(4, "big") + b)
    return "import-" + h.hexdigest()


def file_sha256(path: Path, max_size: int) -> str:
    """SHA-256 of a regular file, opened without following a symlink."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise InputError("not a regular file")
        h = hashlib.sha256()
        seen = 0
        while chunk := fh.read(_HASH_CHUNK):
            seen += len(chunk)
            if seen > max_size:
                raise InputError(f"larger than the upload limit ({max_size} bytes)")
            h.update(chunk)
    return h.hexdigest()


# -- the folder -------------------------------------------------------------------------


def scan(root: Path, max_size: int) -> tuple[list[FileItem], list[tuple[str, str]]]:
    """Every regular file under ``root`` (sorted by relative path), and what was
    refused with the reason: symlinks, special files, names too long, too big."""
    try:
        st = os.stat(root, follow_symlinks=False)
    except OSError as exc:
        raise InputError(
            f"Cannot read the folder {printable(str(root))}: {exc.strerror}."
        ) from None
    if not stat.S_ISDIR(st.st_mode):
        raise InputError(f"{printable(str(root))} is not a folder (symlinks are not followed).")
    items: list[FileItem] = []
    refused: list[tuple[str, str]] = []
    for rel, entry_or_err in _walk(root, "", 0):
        if isinstance(entry_or_err, str):
            refused.append((rel, entry_or_err))
            continue
        reason = _refusal(rel, entry_or_err, max_size)
        if reason:
            refused.append((rel, reason))
            continue
        items.append(FileItem(Path(entry_or_err.path), rel, entry_or_err.stat().st_size))
        if len(items) > MAX_FILES:
            raise InputError(f"More than {MAX_FILES} files: import the folder in parts.")
    items.sort(key=lambda i: i.relpath)
    return items, refused


def _walk(root: Path, prefix: str, depth: int) -> Iterator[tuple[str, os.DirEntry[str] | str]]:
    if depth > MAX_DEPTH:
        yield prefix or ".", f"nested deeper than {MAX_DEPTH} folders"
        return
    try:
        with os.scandir(root) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        yield prefix or ".", f"cannot list the folder ({exc.strerror})"
        return
    for e in entries:
        rel = f"{prefix}{e.name}"
        if e.is_dir(follow_symlinks=False):
            yield from _walk(Path(e.path), rel + "/", depth + 1)
        else:
            yield rel, e


def _refusal(rel: str, entry: os.DirEntry[str], max_size: int) -> str | None:
    if len(rel.encode("utf-8", "surrogateescape")) > MAX_PATH:
        return f"path longer than {MAX_PATH} bytes"
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        return "path is not valid UTF-8"
    if entry.is_symlink():
        return "a symbolic link (not followed)"
    try:
        st = entry.stat(follow_symlinks=False)
    except OSError as exc:
        return f"cannot stat ({exc.strerror})"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file (device, FIFO or socket)"
    if st.st_size > max_size:
        return f"larger than the upload limit ({max_size} bytes)"
    return None


# -- subjects ---------------------------------------------------------------------------


def read_subject_csv(path: Path) -> tuple[dict[str, str], list[str]]:
    """``path,subject`` rows (a header line naming both columns) as a map, and
    the bad rows, each as "line N: why". A path listed twice is an error."""
    reader = csv.reader(io.StringIO(_read_csv_text(path)))
    csv.field_size_limit(MAX_CSV_FIELD + 1)
    try:
        header = [h.strip().lower() for h in next(reader, [])]
    except csv.Error as exc:
        raise InputError(f"The subject CSV's header is malformed: {exc}.") from None
    if "path" not in header or "subject" not in header:
        raise InputError("The subject CSV needs a header line with 'path' and 'subject' columns.")
    ip, isub = header.index("path"), header.index("subject")
    out: dict[str, str] = {}
    errors: list[str] = []
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            _note(errors, f"line {reader.line_num}: malformed ({exc})")
            continue
        if reader.line_num > MAX_CSV_ROWS:
            raise InputError(f"The subject CSV has more than {MAX_CSV_ROWS} rows.")
        problem = _row_problem(row, ip, isub, out)
        if problem:
            _note(errors, f"line {reader.line_num}: {problem}")
        elif row:
            out[row[ip].strip()] = row[isub].strip()
    return out, errors


def _read_csv_text(path: Path) -> str:
    try:
        if os.stat(path).st_size > MAX_CSV_BYTES:
            raise InputError(f"The subject CSV is larger than {MAX_CSV_BYTES} bytes.")
        with open(path, encoding="utf-8", newline="") as fh:
            return fh.read(MAX_CSV_BYTES + 1)
    except UnicodeDecodeError:
        raise InputError("The subject CSV is not UTF-8 text.") from None
    except OSError as exc:
        raise InputError(f"Cannot read the subject CSV: {exc.strerror}.") from None


def _row_problem(row: list[str], ip: int, isub: int, seen: dict[str, str]) -> str | None:
    if not row:
        return None  # a blank line
    if len(row) <= max(ip, isub):
        return "too few columns"
    rel, subject = row[ip].strip(), row[isub].strip()
    if not rel or not subject:
        return "empty path or subject"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in rel + subject):
        return "control characters"
    if len(subject) > 256 or len(rel.encode()) > MAX_PATH:
        return "path or subject too long"
    if rel in seen:
        return f"{printable(rel)} listed twice"
    return None


def _note(errors: list[str], text: str) -> None:
    if len(errors) < MAX_CSV_ERRORS:
        errors.append(text)


def subject_of(plan: ImportPlan, item: FileItem) -> str | None:
    """The subject a file is published with; InputError when the plan needs one it lacks."""
    if plan.subject_from == "name":
        stem = Path(item.relpath).name.split(".", 1)[0].strip()
        if not stem:
            raise InputError("the file name gives no subject")
        return stem
    if plan.subject_from == "csv":
        subject = (plan.subjects or {}).get(item.relpath)
        if subject is None:
            raise InputError("no valid row for this file in the subject CSV")
        return subject
    return None


# -- the run ----------------------------------------------------------------------------

Progress = Callable[[ItemResult], None]


def outgoing(plan: ImportPlan, item: FileItem) -> Outgoing:
    """Hash one file and derive what is sent for it (OSError, GovShareError)."""
    subject = subject_of(plan, item)
    digest = file_sha256(item.path, plan.max_size)
    fields = {"category": plan.category}
    if subject is not None:
        fields["subject"] = subject
    key = idempotency_key(plan.dept, plan.category, item.relpath, digest)
    return Outgoing(item.path, key, item.relpath, fields)


def publish_one(plan: ImportPlan, publisher: Publisher, item: FileItem) -> ItemResult:
    """Hash, then publish one file under its derived key."""
    try:
        out = outgoing(plan, item)
        ans = publisher.publish(out.path, key=out.key, filename=out.filename, fields=out.fields)
    except OSError as exc:
        return ItemResult(item.relpath, "failed", reason=f"cannot read ({exc.strerror})")
    except GovShareError as exc:
        return ItemResult(item.relpath, "failed", reason=printable(exc.message))
    return _answered(item, ans)


def publish_chunk(
    plan: ImportPlan, publisher: BulkPublisher, chunk: list[FileItem]
) -> list[ItemResult]:
    """Hash a chunk's files, then publish them in one request; each file's result
    in order (a file that cannot be read fails alone)."""
    results: list[ItemResult | None] = [None] * len(chunk)
    sent: list[tuple[int, Outgoing]] = []
    for i, item in enumerate(chunk):
        try:
            sent.append((i, outgoing(plan, item)))
        except OSError as exc:
            results[i] = ItemResult(item.relpath, "failed", reason=f"cannot read ({exc.strerror})")
        except GovShareError as exc:
            results[i] = ItemResult(item.relpath, "failed", reason=printable(exc.message))
    if sent:
        try:
            answers = publisher.publish_many([o for _i, o in sent])
        except GovShareError as exc:  # the request as a whole was refused
            answers = [printable(exc.message)] * len(sent)
        for (i, _o), ans in zip(sent, answers, strict=True):
            results[i] = (
                ItemResult(chunk[i].relpath, "failed", reason=printable(ans))
                if isinstance(ans, str)
                else _answered(chunk[i], ans)
            )
    return [r for r in results if r is not None]


def _answered(item: FileItem, ans: PublishAnswer) -> ItemResult:
    return ItemResult(
        item.relpath,
        "already" if ans.replayed else "published",
        record_id=ans.record_id,
        anchoring=ans.state != "done",
    )


def chunks(
    items: list[FileItem], max_bytes: int, max_files: int = CHUNK_FILES
) -> Iterator[list[FileItem]]:
    """``items`` in order, in chunks of at most ``max_files`` files and
    ``max_bytes`` (a larger file goes alone)."""
    chunk: list[FileItem] = []
    size = 0
    for item in items:
        if chunk and (len(chunk) >= max_files or size + item.size > max_bytes):
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += item.size
    if chunk:
        yield chunk


def run_import(
    plan: ImportPlan,
    publisher: Publisher,
    items: list[FileItem],
    *,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
) -> ImportSummary:
    """Publish ``items``, ``plan.jobs`` at a time, in path order; each result is
    reported to ``progress`` as it comes. An error that marks itself
    :class:`StopImport` (the broker unreachable) ends the run: the files not yet
    sent are reported as failed with that reason, and a new run resumes."""
    summary = ImportSummary(total=len(items))
    stop = stop or threading.Event()
    fatal: list[str] = []
    todo, workers, work = _units(plan, publisher, items)
    with ThreadPoolExecutor(workers, thread_name_prefix="import") as pool:
        running: dict[Future[list[ItemResult]], list[FileItem]] = {}

        def fill() -> None:
            while len(running) < workers * 2 and not stop.is_set() and not fatal:
                unit = next(todo, None)
                if unit is None:
                    return
                running[pool.submit(work, unit)] = unit

        fill()
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                unit = running.pop(fut)
                for result in _results_of(fut, unit, fatal):
                    _count(summary, result)
                    if progress is not None:
                        progress(result)
            fill()
    reason = fatal[0] if fatal else "interrupted"
    for unit in todo:
        for item in unit:
            _count(summary, ItemResult(item.relpath, "failed", reason=f"not sent: {reason}"))
    return summary


def import_folder(
    plan: ImportPlan,
    publisher: Publisher,
    *,
    on_start: Callable[[int], None] | None = None,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
) -> ImportSummary:
    """The use case: read the subject CSV (if any), walk the folder, publish every
    file that may be published, and sum it all up (refusals and bad CSV rows
    included). ``on_start`` learns how many files will be sent."""
    if plan.subject_from == "csv":
        if plan.subject_csv is None:
            raise InputError("--subject-from csv needs the CSV file.")
        subjects, csv_errors = read_subject_csv(plan.subject_csv)
        plan = replace(plan, subjects=subjects)
    else:
        csv_errors = []
    items, refused = scan(plan.root, plan.max_size)
    if on_start is not None:
        on_start(len(items))
    summary = run_import(plan, publisher, items, progress=progress, stop=stop)
    summary.total += len(refused)
    summary.failed.extend(refused)
    summary.csv_errors = csv_errors
    return summary


def _units(
    plan: ImportPlan, publisher: Publisher, items: list[FileItem]
) -> tuple[Iterator[list[FileItem]], int, Callable[[list[FileItem]], list[ItemResult]]]:
    """What is sent at a time, how many at once, and how: chunks of files to a
    publisher that takes many, else one file each."""
    if isinstance(publisher, BulkPublisher) and plan.per_request > 1:
        bulk = publisher

        def many(unit: list[FileItem]) -> list[ItemResult]:
            return publish_chunk(plan, bulk, unit)

        workers = min(max(1, plan.jobs), CHUNKS_IN_FLIGHT)
        todo = chunks(items, min(CHUNK_BYTES, plan.max_size), min(plan.per_request, CHUNK_FILES))
        return todo, workers, many

    def one(unit: list[FileItem]) -> list[ItemResult]:
        return [publish_one(plan, publisher, unit[0])]

    return ([item] for item in items), max(1, plan.jobs), one


def _results_of(
    fut: Future[list[ItemResult]], unit: list[FileItem], fatal: list[str]
) -> list[ItemResult]:
    try:
        return fut.result()
    except StopImport as exc:
        fatal.append(printable(exc.reason))
        return [ItemResult(item.relpath, "failed", reason=printable(exc.reason)) for item in unit]


def _count(summary: ImportSummary, r: ItemResult) -> None:
    if r.outcome == "published":
        summary.published += 1
    elif r.outcome == "already":
        summary.already += 1
    else:
        summary.failed.append((r.relpath, r.reason or "failed"))
    if r.anchoring and r.outcome != "failed":
        summary.anchoring += 1
