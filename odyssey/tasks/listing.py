"""`odyssey tasks`: a table of every task with its sizes and metric, built here and printed by the CLI.

It stays quick by never building slow data unless asked: tasks generated in a blink (vowels,
adding, copy) are made, cached ones are loaded, the rest say how to build them; the paper's own
data sets are read only when given a path.
"""

from __future__ import annotations

import contextlib
import inspect
import os
from typing import Callable, Sequence

from rich import box
from rich.markup import escape
from rich.table import Table

from ..errors import ConfigError
from .core.base import SPLITS
from .core.cache import NotCached, cache_dir, cache_only
from .registry import TASKS, make_task

COLUMNS = ("task", "net", "train", "val", "test", "length", "inputs", "classes", "metric")


def task_table(
    paths: dict[str, str | os.PathLike] | Sequence[str] | None = None, *, build: bool = False
) -> tuple[Table, list[str]]:
    """The tasks, their default sizes and metrics, as a Rich table and a note per task (Rich markup)
    for the console to print below it. `paths` maps a task needing data (timit, iam_ondb, jsb) to
    the user's copy, as a dict or as "task=path" strings (the CLI's --path); `build` builds default
    data sets that are not cached yet."""
    paths = _parse_paths(paths)
    unknown = sorted(set(paths) - set(TASKS))
    if unknown:
        raise ConfigError(f"no task named {', '.join(unknown)}; known tasks: {', '.join(TASKS)}")
    table = Table(
        title=f"tasks with default options (cache: {cache_dir()})",
        box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True,
    )
    for column in COLUMNS:
        # no_wrap: the numbers stay whole in an 80-column terminal; the prose goes below the table.
        table.add_column(column, justify="left" if column in ("task", "net", "metric") else "right", no_wrap=True)
    notes = []
    for name, factory in TASKS.items():
        cells, note = _row(name, factory, paths.get(name), build)
        table.add_row(name, *cells)
        notes.append(f"[bold]{name}[/bold]: {(factory.__doc__ or '').strip().splitlines()[0]}{note}")
    return table, notes


def _row(name: str, factory: Callable, path, build: bool) -> tuple[list[str], str]:
    """The task's cells after its name, and a note on why they are empty when they are."""
    needs_path = "path" in inspect.signature(factory).parameters
    if needs_path and path is None:
        return [], f" [dim](needs --path {name}=...)[/dim]"
    try:
        with contextlib.nullcontext() if build else cache_only():
            task = make_task(name, **({"path": path} if needs_path else {}))
    except NotCached:
        return [], " [yellow](not built yet: --build)[/yellow]"
    except ValueError as err:
        return [], f" [red]{escape(str(err))}[/red]"
    sizes = task.sizes()
    return [
        "bi" if task.bidirectional else "uni",
        *[str(sizes[s]) for s in SPLITS],
        f"{sizes['mean_length']:g}",
        str(sizes["input_size"]),
        "-" if sizes["classes"] is None else str(sizes["classes"]),
        task.metric_name,
    ], ""


def _parse_paths(paths) -> dict:
    if isinstance(paths, dict) or paths is None:
        return dict(paths or {})
    parsed = {}
    for item in paths:
        task, sep, path = item.partition("=")
        if not sep or not task or not path:
            raise ConfigError(f"--path {item!r}: expected TASK=PATH, e.g. timit=/data/TIMIT")
        parsed[task] = path
    return parsed
