"""Shared terminal rendering: rich tables and JSON output."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console

from floorline.jsonsafe import finite

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def progress(*columns: Any, disable: bool = False) -> Any:
    """A transient rich progress display on stderr, off when stderr is not a terminal (a log or a pipe
    gets no bar, and stdout stays the command's output alone)."""
    from rich.progress import Progress

    return Progress(*columns, console=err_console, transient=True, disable=disable or not err_console.is_terminal)


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(finite(obj), indent=2, default=str) + "\n")


def table(title: str | None, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    from rich.table import Table

    t = Table(title=title, show_lines=False)
    for h in headers:
        t.add_column(str(h))
    for r in rows:
        t.add_row(*("" if c is None else str(c) for c in r))
    console.print(t)
