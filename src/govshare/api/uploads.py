"""Multipart uploads streamed straight to the broker's spool directory.

Starlette's form parser spools file parts without any size limit and only
hands them over once the whole body is in; this reader feeds the request's
body stream to python-multipart itself, so that:

* the file part goes to a 0600 file in the spool directory as it arrives,
  hashed on the way (never the whole file in memory);
* the size limit is enforced while reading: a declared ``Content-Length`` over
  the limit is refused before a byte is read, and a body that grows past it is
  cut off at once (413 ``input.too_large``), its partial file deleted;
* text fields are small (:data:`MAX_FIELD` bytes each, :data:`MAX_FIELDS` of them).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from fastapi import Request
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from govshare.broker.errors import NotMultipart, UploadTooLarge
from govshare.broker.publish import StagedUpload, new_spool_name
from govshare.errors import InputError

FILE_FIELD = "file"
MAX_FIELD = 8 * 1024
MAX_FIELDS = 16
#: A bulk request holds its small files in memory (never in the spool): each of
#: at most MEMORY_PART bytes, MEMORY_BUDGET bytes in all; the rest go to the spool.
MEMORY_PART = 1024 * 1024
MEMORY_BUDGET = 16 * 1024 * 1024
#: Room for the multipart framing and the text fields around the file.
FRAMING_ALLOWANCE = 64 * 1024


@dataclass
class ReceivedUpload:
    staged: StagedUpload
    filename: str | None
    media_type: str | None
    fields: dict[str, str] = field(default_factory=dict)


@dataclass
class _Part:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    name: str = ""
    filename: str | None = None
    is_file: bool = False
    data: bytearray = field(default_factory=bytearray)


class _Receiver:
    def __init__(
        self,
        spool: Path,
        max_size: int,
        *,
        max_files: int = 1,
        max_field: int = MAX_FIELD,
        total: int | None = None,
        memory: int = 0,
    ) -> None:
        self.spool = spool
        self.max_size = max_size
        self.max_files = max_files
        self.max_field = max_field
        self.total = total  # all files together, when several
        self.received = 0
        self.memory = memory  # bytes of small files this request may hold in memory
        self.in_memory = 0
        self.buffer: bytearray | None = None  # the current file, while in memory
        self.open = False  # a file part is being received
        self.done: list[ReceivedUpload] = []  # file parts complete (several files)
        self.fields: dict[str, str] = {}
        self.part = _Part()
        self._hname = b""
        self._hvalue = b""
        self.file: IO[bytes] | None = None
        self.path: Path | None = None
        self.name = ""
        self.sha = hashlib.sha256()
        self.size = 0
        self.filename: str | None = None
        self.media_type: str | None = None
        self.files = 0

    # python-multipart callbacks ----------------------------------------------------------

    def on_part_begin(self) -> None:
        self.part = _Part()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._hname += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._hvalue += data[start:end]

    def on_header_end(self) -> None:
        self.part.headers[self._hname.strip().lower()] = self._hvalue.strip()
        self._hname = self._hvalue = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.part.headers.get(b"content-disposition", b""))
        raw_name = options.get(b"name")
        if raw_name is None:
            raise InputError("A multipart part has no name.")
        self.part.name = raw_name.decode("utf-8", "replace")
        if self.part.name == FILE_FIELD:
            self.files += 1
            if self.files > self.max_files:
                raise InputError(
                    "Upload one file per record."
                    if self.max_files == 1
                    else f"At most {self.max_files} files in one request."
                )
            if self.open:  # the last file part, complete: keep it
                self._keep(durable=self.max_files == 1)
            self.part.is_file = True
            self.open = True
            self.sha, self.size = hashlib.sha256(), 0
            raw_fn = options.get(b"filename")
            self.filename = raw_fn.decode("utf-8", "replace") if raw_fn else None
            ctype = self.part.headers.get(b"content-type")
            self.media_type = ctype.decode("latin-1") if ctype else None
            if self.in_memory < self.memory:
                self.name, self.buffer = new_spool_name("memory"), bytearray()
            else:
                self._to_disk()
        elif len(self.fields) >= MAX_FIELDS:
            raise InputError(f"At most {MAX_FIELDS} form fields.")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self.part.is_file:
            self.size += len(chunk)
            self.received += len(chunk)
            if self.size > self.max_size:
                raise UploadTooLarge.over(self.max_size)
            if self.total is not None and self.received > self.total:
                raise UploadTooLarge.over(self.total, total=True)
            self.sha.update(chunk)
            if self.buffer is not None:
                fits = len(self.buffer) + len(chunk) <= MEMORY_PART
                if fits and self.in_memory + len(chunk) <= self.memory:
                    self.buffer += chunk
                    self.in_memory += len(chunk)
                    return
                self._to_disk()  # too big to hold: on to the spool, as any file
            assert self.file is not None
            self.file.write(chunk)
        else:
            if len(self.part.data) + len(chunk) > self.max_field:
                raise InputError(f"The form field {self.part.name!r} is too long.")
            self.part.data += chunk

    def on_part_end(self) -> None:
        if not self.part.is_file:
            try:
                self.fields[self.part.name] = self.part.data.decode("utf-8")
            except UnicodeDecodeError:
                raise InputError(f"The form field {self.part.name!r} is not UTF-8.") from None

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self.on_part_begin,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
        }

    def _to_disk(self) -> None:
        """The current file goes to a spool file (with what it held in memory)."""
        self.name = new_spool_name()
        self.path = self.spool / self.name
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self.file = os.fdopen(fd, "wb")
        if self.buffer is not None:
            self.file.write(self.buffer)
            self.in_memory -= len(self.buffer)
            self.buffer = None

    def _keep(self, durable: bool = True) -> None:
        """The current file part is complete: kept (``durable``: on disk first)."""
        if self.buffer is not None:
            data, self.buffer = bytes(self.buffer), None
            staged = StagedUpload(self.name, self.sha.hexdigest(), self.size, data=data)
        else:
            assert self.file is not None and self.path is not None
            self.file.flush()
            if durable:
                os.fsync(self.file.fileno())
            self.file.close()
            staged = StagedUpload(self.name, self.sha.hexdigest(), self.size)
        self.done.append(ReceivedUpload(staged, self.filename, self.media_type))
        self.file = self.path = None
        self.open = False

    def discard(self) -> None:
        if self.file is not None:
            self.file.close()
        if self.path is not None:
            self.path.unlink(missing_ok=True)
        for up in self.done:
            (self.spool / up.staged.name).unlink(missing_ok=True)


async def receive_upload(request: Request, spool: Path, *, max_size: int) -> ReceivedUpload:
    """Read a ``multipart/form-data`` body with one ``file`` part into the spool."""
    boundary = _check_multipart(
        request, max_size, "record as multipart/form-data with a 'file' part"
    )
    rx = _Receiver(spool, max_size)
    await _parse(request, rx, boundary)
    try:
        if not rx.open:
            raise InputError("The upload has no 'file' part.")
        rx._keep()
    except BaseException:
        rx.discard()
        raise
    up = rx.done[0]
    return ReceivedUpload(up.staged, up.filename, up.media_type, rx.fields)


async def receive_uploads(
    request: Request,
    spool: Path,
    *,
    max_size: int,
    max_files: int,
    max_field: int,
    memory: int = MEMORY_BUDGET,
) -> tuple[list[ReceivedUpload], dict[str, str]]:
    """Read a ``multipart/form-data`` body with up to ``max_files`` ``file`` parts
    (each into the spool, each at most ``max_size``, all together too) and its
    text fields (each at most ``max_field`` bytes). Files of up to
    :data:`MEMORY_PART` are held in memory while the request's ``memory`` lasts
    (never written to the spool at all); the others are not fsynced:
    the bulk publish encrypts them before it acknowledges anything, and makes
    durable those it hands on as they are (:func:`~govshare.broker.publish.publish_many`)."""
    boundary = _check_multipart(
        request, max_size, "records as multipart/form-data with 'file' parts"
    )
    rx = _Receiver(
        spool, max_size, max_files=max_files, max_field=max_field, total=max_size, memory=memory
    )
    await _parse(request, rx, boundary)
    try:
        if not rx.open and not rx.done:
            raise InputError("The upload has no 'file' part.")
        if rx.open:
            rx._keep(durable=False)
    except BaseException:
        rx.discard()
        raise
    return rx.done, rx.fields


def _check_multipart(request: Request, max_size: int, what: str) -> bytes:
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if ctype != b"multipart/form-data" or not boundary:
        raise NotMultipart(f"Send the {what}.")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_size + FRAMING_ALLOWANCE:
        raise UploadTooLarge.over(max_size)
    return bytes(boundary)


async def _parse(request: Request, rx: _Receiver, boundary: bytes) -> None:
    """Feed the body to the parser; on any failure every staged file is deleted."""
    parser = MultipartParser(boundary, rx.callbacks())  # type: ignore[arg-type]
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError:
        rx.discard()
        raise InputError("The multipart body is malformed.") from None
    except BaseException:
        rx.discard()
        raise
