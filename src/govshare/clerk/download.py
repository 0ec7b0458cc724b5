"""Fetching a record's content through the department's broker, resuming a
transfer that breaks off.

The broker answers a record's content with the exchange it belongs to
(``Govshare-Exchange``); when the connection drops mid-body, the download is
continued from the byte it reached — ``Range: bytes=N-`` with that exchange
(an own record: the range alone) — up to :data:`MAX_RESUMES` times. The owner
spends no use of the grant on a resume, within its resume window. Each
continuation must be the same content (its ``Content-Range`` starts at N, of
the same size and vouched SHA-256); the bytes are hashed as they are written,
and the whole is checked against the SHA-256 the broker vouched for.

The broker is reached through a :class:`ContentSource` (the CLI passes its
HTTP client), and the bytes go to a sink the caller owns (the CLI's
``atomic_output``, which renames it into place only when this returns): this
module holds the loop and the checks, and knows nothing of HTTP or terminals.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

from govshare.broker.errors import TransferIncomplete
from govshare.errors import IntegrityError

#: A broken transfer is continued at most this many times.
MAX_RESUMES = 3


class TransferBroken(Exception):
    """Raised by a :class:`ContentSource`'s chunks when the connection dropped
    mid-body (not a :class:`~govshare.errors.GovShareError`: it is resumed)."""


@dataclass
class Opened:
    """An answer of the broker's content route: its status, headers and body."""

    status: int
    headers: Mapping[str, str]
    chunks: Iterator[bytes]


class ContentSource(Protocol):
    def open(
        self, record_id: str | None, offset: int, exchange: str | None
    ) -> AbstractContextManager[Opened]:
        """The content: a first fetch (``offset`` 0, no ``exchange``), or its
        continuation from ``offset`` through ``exchange`` (None: an own record)."""
        ...


@dataclass(frozen=True)
class Downloaded:
    record_id: str | None
    size: int
    sha256: str
    owner: str | None
    grant_id: int | None
    receipt_seq: int | None
    exchange: str | None
    #: How many times the transfer was continued, and the bytes asked for again
    #: (0: each continuation started at the byte the last one reached).
    resumes: int = 0
    resent: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "record_id": self.record_id,
            "size": self.size,
            "sha256": self.sha256,
            "owner": self.owner,
            "grant_id": self.grant_id,
            "receipt_seq": self.receipt_seq,
            "exchange": self.exchange,
            "resumes": self.resumes,
        }


def _int(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    return int(value) if value and value.isdigit() else None


def download(
    source: ContentSource,
    record_id: str | None,
    sink: BinaryIO,
    *,
    exchange: str | None = None,
    on_start: Callable[[int | None], None] = lambda _total: None,
    on_bytes: Callable[[int], None] = lambda _n: None,
    on_resume: Callable[[int, int | None, int], None] = lambda _done, _total, _try: None,
) -> Downloaded:
    """Write the content of ``record_id`` to ``sink`` (see the module's
    documentation); ``exchange``: continue that exchange from the start instead
    of beginning one (no new use). ``on_resume(done, total, attempt)`` is called
    before each continuation. Raises :class:`TransferIncomplete` when the
    transfer broke off more than :data:`MAX_RESUMES` times, :class:`IntegrityError`
    when what arrived is not what the broker vouched for."""
    sha = hashlib.sha256()
    done = 0
    resumes = 0
    first: Mapping[str, str] | None = None
    total: int | None = None
    while True:
        try:
            with source.open(record_id, done, exchange) as opened:
                if first is None:
                    first = opened.headers
                    record_id = first.get("govshare-record-id") or record_id
                    exchange = first.get("govshare-exchange") or exchange
                    total = _int(first, "content-length")
                    on_start(total)
                else:
                    _check_continues(opened, first, done, total)
                for chunk in opened.chunks:
                    sink.write(chunk)
                    sha.update(chunk)
                    done += len(chunk)
                    on_bytes(len(chunk))
                if total is not None and done < total:
                    raise TransferBroken("short body")
            break
        except TransferBroken:
            if first is None or resumes >= MAX_RESUMES:
                raise TransferIncomplete(
                    f"The transfer broke off {resumes + 1} time(s), after {done} of "
                    f"{total if total is not None else '?'} bytes; nothing was written."
                    + (
                        f" Within the owner's resume window, `--exchange {exchange}` fetches "
                        "it again without spending another use."
                        if exchange
                        else ""
                    ),
                    exchange=exchange,
                ) from None
            resumes += 1
            on_resume(done, total, resumes)
    digest = sha.hexdigest()
    expected = (first.get("govshare-content-sha256") or "").lower()
    if total is not None and done != total:
        raise IntegrityError(f"{done} bytes arrived, {total} were announced; nothing was written.")
    if not expected or digest != expected:
        raise IntegrityError(
            f"What arrived does not have the SHA-256 the broker vouched for "
            f"({digest} vs {expected or 'none'}); nothing was written.",
        )
    return Downloaded(
        record_id=record_id,
        size=done,
        sha256=digest,
        owner=first.get("govshare-record-owner"),
        grant_id=_int(first, "govshare-grant-id"),
        receipt_seq=_int(first, "govshare-receipt-seq"),
        exchange=exchange,
        resumes=resumes,
    )


def _check_continues(
    opened: Opened, first: Mapping[str, str], done: int, total: int | None
) -> None:
    """A continuation is the same content from byte ``done``."""
    want = f"bytes {done}-{(total or 0) - 1}/{total}" if done else None
    got = opened.headers.get("content-range")
    same = opened.headers.get("govshare-content-sha256") == first.get("govshare-content-sha256")
    if not same or (done and (opened.status != 206 or got != want)):
        raise IntegrityError(
            f"The broker's continuation is not the same content from byte {done} "
            f"(Content-Range {got!r}, expected {want!r}); nothing was written."
        )
