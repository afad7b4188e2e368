"""`odyssey tasks`: every task with its sizes and metric, as values the CLI prints as a table.

It stays quick by never building slow data unless asked: tasks generated in a blink (vowels,
adding, copy) are made, cached ones are loaded, the rest say how to build them; the paper's own
data sets are read only when given a path.
"""

from __future__ import annotations

import contextlib
import inspect
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..errors import ConfigError
from .core.base import SPLITS
from .core.cache import NotCached, cache_dir, cache_only
from .registry import TASKS, make_task

COLUMNS = ("task", "net", "train", "val", "test", "length", "inputs", "classes", "metric")


@dataclass(frozen=True)
class TaskLine:
    """One task: its cells after the name (none when its data is not at hand), the first line of its
    factory's docstring, and why the cells are missing: it needs a path, is not built, or failed."""

    name: str
    cells: list[str]
    about: str
    missing: Literal["path", "build", "error"] | None = None
    reason: str = ""


@dataclass(frozen=True)
class TaskListing:
    """What `odyssey tasks` shows: where the cache is, and a line per task in the registry's order."""

    cache: Path
    lines: list[TaskLine]
    columns: tuple[str, ...] = COLUMNS


def task_table(
    paths: dict[str, str | os.PathLike] | Sequence[str] | None = None, *, build: bool = False
) -> TaskListing:
    """The tasks, their default sizes and metrics. `paths` maps a task needing data (timit, iam_ondb,
    jsb) to the user's copy, as a dict or as "task=path" strings (the CLI's --path); `build` builds
    default data sets that are not cached yet."""
    paths = _parse_paths(paths)
    unknown = sorted(set(paths) - set(TASKS))
    if unknown:
        raise ConfigError(f"no task named {', '.join(unknown)}; known tasks: {', '.join(TASKS)}")
    return TaskListing(cache_dir(), [_line(name, factory, paths.get(name), build) for name, factory in TASKS.items()])


def _line(name: str, factory: Callable, path, build: bool) -> TaskLine:
    about = (factory.__doc__ or "").strip().splitlines()[0]
    needs_path = "path" in inspect.signature(factory).parameters
    if needs_path and path is None:
        return TaskLine(name, [], about, "path", f"(needs --path {name}=...)")
    try:
        with contextlib.nullcontext() if build else cache_only():
            task = make_task(name, **({"path": path} if needs_path else {}))
    except NotCached:
        return TaskLine(name, [], about, "build", "(not built yet: --build)")
    except ValueError as err:
        return TaskLine(name, [], about, "error", str(err))
    sizes = task.sizes()
    cells = [
        "bi" if task.bidirectional else "uni",
        *[str(sizes[s]) for s in SPLITS],
        f"{sizes['mean_length']:g}",
        str(sizes["input_size"]),
        "-" if sizes["classes"] is None else str(sizes["classes"]),
        task.metric_name,
    ]
    return TaskLine(name, cells, about)


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
