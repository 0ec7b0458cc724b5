"""Rendering what other departments wrote: their purposes, reasons, names and
CIDs come from the chain, so a terminal must show them, never obey them."""

from __future__ import annotations

from typing import Any

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from govshare.util import printable


def cell(value: Any) -> Text:
    """A table cell as plain text: no rich markup (``[red]``, ``[/]``) is
    interpreted and no control character reaches the terminal."""
    return Text(printable(value))


class SafeTable(Table):
    """A rich table whose string cells are plain text (see :func:`cell`)."""

    def add_row(
        self,
        *renderables: RenderableType | None,
        style: Any = None,
        end_section: bool = False,
    ) -> None:
        safe = [cell(r) if isinstance(r, str) else r for r in renderables]
        super().add_row(*safe, style=style, end_section=end_section)
