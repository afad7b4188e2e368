"""The tasks a study can run, by name.

Every task module has one factory, `make(*, seed=0, **options) -> SequenceTask`; its keyword
arguments are the options a study file may set. Adding a task = one module + one entry below.
"""

from __future__ import annotations

from typing import Callable

from ..errors import ConfigError
from . import adding, chorales, copying, handwriting, iam_ondb, jsb, speech, timit, vowels
from .base import SPLITS, Batch, Task
from .options import check_options
from .table import print_task_table
from .task import SequenceTask

TASKS: dict[str, Callable[..., SequenceTask]] = {
    # Built in, no download: real music and speech, generated speech and handwriting, probes.
    "chorales": chorales.make,
    "vowels": vowels.make,
    "speech": speech.make,
    "handwriting": handwriting.make,
    "adding": adding.make,
    "copy": copying.make,
    # The paper's own data sets, read from the user's copy (option `path`).
    "timit": timit.make,
    "iam_ondb": iam_ondb.make,
    "jsb": jsb.make,
}


def make_task(name: str, *, seed: int = 0, **options) -> SequenceTask:
    """The task `name` built with `options` (see each factory for its options); generated data is
    deterministic for `seed`, real data keeps its fixed split whatever the seed."""
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ConfigError(f"task {name!r}: seed must be an integer, got {seed!r}")
    check_options(name, TASKS[name], options)
    return TASKS[name](seed=seed, **options)


__all__ = ["SPLITS", "TASKS", "Batch", "SequenceTask", "Task", "make_task", "print_task_table"]
