"""What the generated docs share: write a page, or (``--check``) fail when the
committed page is not what its generator renders now."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path


def main(
    target: Path,
    render: Callable[[], str],
    *,
    description: str,
    command: str,
    summary: Callable[[str], str],
    argv: list[str] | None = None,
) -> int:
    parser = argparse.ArgumentParser(description=description)
    name = f"{target.parent.name}/{target.name}"
    parser.add_argument("--check", action="store_true", help=f"fail if {name} is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = target.read_text(encoding="utf-8") if target.is_file() else ""
        if current != text:
            print(f"{name} is stale: run `{command}` and commit it.", file=sys.stderr)
            return 1
        return 0
    target.write_text(text, encoding="utf-8")
    print(f"wrote {name} ({summary(text)})")
    return 0
