"""Printing for the CLI: rows as Rich tables, titled lists, the task listing, the live view of a run, importance.

Library functions return rows, documents and lines; this module (and odyssey/cli.py) prints them.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from rich import box
from rich.console import Console
from rich.live import Live
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
        table.add_row(
            *(f"{v:,}" if isinstance(v, int) else f"{v:.4g}" if isinstance(v, float) else str(v) for v in row.values())
        )
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
    table = Table(
        title=f"tasks with default options (cache: {listing.cache})",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    for column in listing.columns:
        # no_wrap: the numbers stay whole in an 80-column terminal; the prose goes below the table.
        table.add_column(column, justify="left" if column in ("task", "net", "metric") else "right", no_wrap=True)
    for line in listing.lines:
        table.add_row(line.name, *line.cells)
    out = out or Console()  # the terminal's width, as ever (the module's console is 200 columns when piped)
    out.print(table)
    for line in listing.lines:
        style = NOTE_STYLES.get(line.missing)
        out.print(
            f"[bold]{line.name}[/bold]: {line.about}" + (f" [{style}]{escape(line.reason)}[/{style}]" if style else "")
        )


def _best(value: float) -> str:
    """A cell's best value; '-' before its first complete trial (not 'nan')."""
    return "-" if math.isnan(value) else f"{value:.4g}"


def _done(row: dict[str, object]) -> int:
    """A cell's finished slots: complete, failed, pruned."""
    return row["complete"] + row["failed"] + row.get("pruned", 0)


def _progress_table(rows: list[dict[str, object]], *, started: float, done_at_start: int, jobs: int) -> Table:
    done = sum(_done(r) for r in rows)
    planned = sum(r["planned"] for r in rows)
    elapsed = time.monotonic() - started
    finished_now = done - done_at_start
    eta = f"{elapsed / finished_now * (planned - done):.0f} s" if finished_now else "-"
    table = Table(
        title=f"{done}/{planned} trials done, {elapsed:.0f} s elapsed, ETA {eta} ({jobs} job{'s' * (jobs > 1)})"
    )
    for column in ("cell", "done", "failed", "running now", "best"):
        table.add_column(column, justify="left" if column in ("cell", "running now") else "right")
    for r in rows:
        table.add_row(r["cell"], f"{_done(r)}/{r['planned']}", str(r["failed"]), r["now"], _best(r["best"]))
    return table


def watch(
    cells: Callable[[], list[dict[str, object]]],
    *,
    running: Callable[[], bool],
    jobs: int,
    out: Console | None = None,
    poll: float = 1.0,
) -> None:
    """Show a run's progress until `running()` turns false: a live table on a terminal, a line per finished
    trial otherwise. `cells()` reads the rows of study.status.cell_rows afresh."""
    out = out or Console()
    started = time.monotonic()
    rows = cells()
    done_at_start = sum(_done(r) for r in rows)
    if out.is_terminal:
        with Live(
            _progress_table(rows, started=started, done_at_start=done_at_start, jobs=jobs),
            console=out,
            refresh_per_second=2,
        ) as live:
            while running():
                time.sleep(poll)
                live.update(_progress_table(cells(), started=started, done_at_start=done_at_start, jobs=jobs))
        return
    reported = {r["cell"]: _done(r) for r in rows}
    while True:
        alive = running()
        for r in cells():
            done = _done(r)
            if done != reported[r["cell"]]:
                reported[r["cell"]] = done
                out.print(f"{r['cell']}: {done}/{r['planned']} done ({r['failed']} failed), best {_best(r['best'])}")
        if not alive:
            return
        time.sleep(poll)


def print_importance(
    *,
    storage: str,
    study: str,
    params: Sequence[str] | None = None,
    objective: int | None = None,
    fmt: str = "table",
    seed: int = 0,
    refits: int | None = None,
    budgets: bool = False,
) -> None:
    """`odyssey importance`: the shares of every set of trials as tables, CSV or JSON; refits None:
    the library's default. budgets: the shares at each budget level instead (by_budget.py)."""
    from .analysis.importance_tables import (
        FORMATS,
        importance_csv,
        importance_document,
        importance_footer,
        importance_tables,
        pruned_note,
        study_importance,
    )
    from .errors import OdysseyError

    if fmt not in FORMATS:
        raise OdysseyError(f"unknown format {fmt!r}; use one of: {', '.join(FORMATS)}")
    given = {"refits": refits} if refits is not None else {}
    if budgets:
        _print_budgets(storage=storage, study=study, params=params, objective=objective, fmt=fmt, seed=seed, **given)
        return
    table, spaces, pruned = study_importance(
        storage=storage, study=study, params=params, objective=objective, seed=seed, **given
    )
    if fmt == "csv":
        sys.stdout.write(importance_csv(table))
    elif fmt == "json":
        print(
            json.dumps(
                importance_document(table, spaces, study=study, objective=objective, seed=seed, pruned=pruned),
                indent=2,
                allow_nan=False,
            )
        )
    else:
        for title, rows in importance_tables(table, spaces, study=study):
            print_rows(rows, title=title)
        print(importance_footer(spaces, seed=seed))
    if pruned:  # on stderr under csv and json, whose stdout a program reads
        print(f"note: {pruned_note(pruned)}", file=sys.stdout if fmt == "table" else sys.stderr)


def _print_budgets(*, study: str, fmt: str, seed: int, objective: int | None, **options) -> None:
    from .analysis.by_budget import budget_document, budget_footer, budget_rows, budget_table, study_budgets

    analysis = study_budgets(study=study, objective=objective, seed=seed, **options)
    if fmt == "csv":
        sys.stdout.write(budget_table(analysis).to_csv(index=False))
    elif fmt == "json":
        document = budget_document(analysis, study=study, objective=objective, seed=seed)
        print(json.dumps(document, indent=2, allow_nan=False))
    else:
        rows = budget_rows(analysis).to_dict(orient="records")
        print_rows(rows, title=f"{study}: importance at each {analysis.unit}, and its agreement with the full budget")
        print(budget_footer(analysis, seed=seed))
