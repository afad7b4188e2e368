"""The tasks a study can run, by name: `make_task(name, seed=..., **options)` and the registry `TASKS`.

Four kinds, one sub-package each; imports point one way, from the first three to core:
- builtin/: the tasks built in, no download (chorales, vowels, speech, handwriting, adding, copy);
- paper/: readers of the paper's own data sets from the user's copy (timit, iam_ondb, jsb);
- yours/: a task of your own, `source = "files"` or `source = "module:function"`;
- core/: what every task shares (Task, SequenceTask, sequences, objectives, the cache, ...).
registry.py joins them into TASKS and make_task; listing.py is `odyssey tasks`' table.
"""

from __future__ import annotations

from . import core
from .core import *  # noqa: F403 - the shared types a task is made of: Task, SequenceTask, Dataset, objectives
from .listing import task_table
from .registry import TASKS, make_task

__all__ = [*core.__all__, "TASKS", "make_task", "task_table"]
