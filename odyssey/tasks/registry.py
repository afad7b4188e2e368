"""The tasks a study can run, by name, and `make_task`, which builds one.

Every task module has one factory, `make(*, seed=0, **options) -> SequenceTask`; its keyword
arguments are the options a study file may set. Adding a task = one module in builtin/ or paper/
+ one entry in that package's TASKS. A task of your own needs no entry: its option `source` names
files or a factory (yours/sources.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..errors import ConfigError, OdysseyError, first_line
from . import builtin, paper
from .core.base import Task
from .core.options import check_options
from .core.task import SequenceTask
from .yours.sources import factory_for

# Built in first, then the paper's readers: the order `odyssey tasks` lists them and errors name them.
TASKS: dict[str, Callable[..., SequenceTask]] = {**builtin.TASKS, **paper.TASKS}


def make_task(name: str, *, seed: int = 0, **options) -> SequenceTask:
    """The task `name` built with `options` (see each factory for its options); generated data is
    deterministic for `seed`, real data keeps its fixed split whatever the seed. With the option
    `source`, a task of your own: "files" or "module:function"."""
    source = options.pop("source", None)
    if source is None and name not in TASKS:
        raise ConfigError(
            f"unknown task {name!r}; known tasks: {', '.join(TASKS)}; or a task of your own, with option source = "
            '"files" or "module:function"'
        )
    if source is not None and name in TASKS:
        raise ConfigError(f"task {name!r} is built in; give a task of your own (source {source!r}) another name")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ConfigError(f"task {name!r}: seed must be an integer, got {seed!r}")
    factory = TASKS[name] if source is None else factory_for(name, source)
    check_options(name, factory, options)
    task = (
        factory(seed=seed, **options)
        if source in (None, "files")
        else _call_yours(name, source, factory, seed, options)
    )
    if source is not None:
        if not isinstance(task, Task):
            raise ConfigError(
                f"task {name!r}: {source} returned {type(task).__name__}, not a task (build an "
                "odyssey.tasks.SequenceTask)"
            )
        task.name = name  # the study's name for it: cells, seeds and checkpoints use it
    return task


def _call_yours(name: str, source: str, factory, seed: int, options: dict) -> SequenceTask:
    """Your factory's own errors are yours to fix: one line naming the exception and where in
    your code it was raised."""
    try:
        return factory(seed=seed, **options)
    except OdysseyError:
        raise
    except Exception as err:  # noqa: BLE001 - anything your code raises
        raise ConfigError(
            f"task {name!r}: {source} raised {type(err).__name__}: {first_line(err)} ({_your_line(factory, err)})"
        ) from None


def _your_line(factory, err: Exception) -> str:
    """file:line of the deepest frame in the factory's folder (your code, not numpy's or odyssey's it called)."""
    import inspect
    import traceback

    frames = traceback.extract_tb(err.__traceback__)[1:]  # [0] is _call_yours
    try:
        yours = Path(inspect.getfile(factory)).resolve().parent
    except (TypeError, OSError):
        yours = None
    mine = [f for f in frames if yours is not None and yours in Path(f.filename).resolve().parents]
    frame = (mine or frames or [None])[-1]
    return f"at {frame.filename}:{frame.lineno} in {frame.name}" if frame else "where is unknown"
