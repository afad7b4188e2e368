"""Printing tables for the CLI: one place that turns rows into a Rich table."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from .tasks.listing import TaskListing

# Piped output (CI logs, files) has no terminal width: do not squeeze names into 80 columns.
console = Console() if sys.stdout.isatty() else Console(width=200)


def print_rows(rows: Sequence[dict[str, object]], *, title: str | None = None) -> None:
    """Rows of equal keys as a table; numbers right-aligned."""
    if not rows:
        console.print(f"{title}: nothing to show" if title else "nothing to show")
        return
    table = Table(title=title)
    for key, value in rows[0].items():
        table.add_column(str(key), justify="right" if isinstance(value, (int, float)) else "left")
    for row in rows:
        table.add_row(*(f"{v:,}" if isinstance(v, int) else f"{v:.4g}" if isinstance(v, float) else str(v) for v in row.values()))
    console.print(table)


def print_lines(lines: Sequence[str], *, title: str, limit: int) -> None:
    """A titled list of at most `limit` lines, saying how many more there are; nothing if empty."""
    if not lines:
        return
    console.print(f"{title}:")
    for line in lines[:limit]:
        console.print(f"  {line}", highlight=False, markup=False)
    if len(lines) > limit:
        console.print(f"  ... and {len(lines) - limit} more", highlight=False)


NOTE_STYLES = {"path": "dim", "build": "yellow", "error": "red"}


def print_task_table(listing: TaskListing, *, out: Console | None = None) -> None:
    """`odyssey tasks`: odyssey.tasks.task_table's listing as a table, then a note per task."""
    table = Table(title=f"tasks with default options (cache: {listing.cache})", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for column in listing.columns:
        # no_wrap: the numbers stay whole in an 80-column terminal; the prose goes below the table.
        table.add_column(column, justify="left" if column in ("task", "net", "metric") else "right", no_wrap=True)
    for line in listing.lines:
        table.add_row(line.name, *line.cells)
    out = out or Console()  # the terminal's width, as ever (the module's console is 200 columns when piped)
    out.print(table)
    for line in listing.lines:
        style = NOTE_STYLES.get(line.missing)
        out.print(f"[bold]{line.name}[/bold]: {line.about}" + (f" [{style}]{escape(line.reason)}[/{style}]" if style else ""))
