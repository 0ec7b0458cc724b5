"""Progress bars for large transfers (Rich, on stderr, only on a terminal)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, BinaryIO

# Rich is imported when a transfer starts: the commands' --help loads this module.
if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

#: Below this, a transfer is over before a bar would help.
PROGRESS_MIN = 1024 * 1024


class Bar:
    """A task of a Rich progress display, or nothing (``progress`` is None)."""

    def __init__(self, progress: Progress | None, task: TaskID | None) -> None:
        self.progress = progress
        self.task = task

    def advance(self, n: int) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.advance(self.task, n)

    def set_total(self, total: int | None) -> None:
        """The size, once the answer said it."""
        if self.progress is not None and self.task is not None:
            self.progress.update(self.task, total=total)

    def reset(self) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.reset(self.task)

    def describe(self, text: str) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.update(self.task, description=text)


@contextmanager
def transfer_bar(label: str, total: int | None, *, enabled: bool) -> Iterator[Bar]:
    """A progress bar for ``total`` bytes when ``enabled``, stderr is a terminal and
    the transfer is large enough to be worth one."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    console = Console(stderr=True)
    if not enabled or not console.is_terminal or (total is not None and total < PROGRESS_MIN):
        yield Bar(None, None)
        return
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    with progress:
        yield Bar(progress, progress.add_task(label, total=total))


class CountingReader:
    """A binary file that reports what is read from it (httpx streams multipart
    file parts by ``read()``; its length comes from ``fileno()``)."""

    def __init__(self, fh: BinaryIO, bar: Bar, *, then: str | None = None) -> None:
        self._fh = fh
        self._bar = bar
        self._then = then  # what the bar says once everything was read

    def read(self, n: int = -1) -> bytes:
        data = self._fh.read(n)
        self._bar.advance(len(data))
        if not data and n != 0 and self._then:
            self._bar.describe(self._then)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        pos = self._fh.seek(offset, whence)
        if pos == 0:
            self._bar.reset()
        return pos

    def tell(self) -> int:
        return self._fh.tell()

    def fileno(self) -> int:
        return self._fh.fileno()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fh, name)
