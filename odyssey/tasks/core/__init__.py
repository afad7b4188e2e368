"""The machinery every task shares: what the trainer sees of a task (base), the one Task
implementation (task), sequences in memory and their batches, objectives and their metrics, the
data-set cache, the check of a study file's task options, and the feature code that a built-in
task and a paper reader both use (speech features, pen features, piano rolls).

It imports nothing from builtin/, paper/ or yours/: they build on it.
"""

from .base import SPLITS, Batch, Task
from .objectives import (
    IGNORE,
    CTCTranscription,
    FinalStepRegression,
    FramewiseClassification,
    FramewiseRegression,
    NextStepBinary,
    SequenceClassification,
)
from .sequences import Dataset, Sequences
from .task import SequenceTask

__all__ = [
    "IGNORE",
    "SPLITS",
    "Batch",
    "CTCTranscription",
    "Dataset",
    "FinalStepRegression",
    "FramewiseClassification",
    "FramewiseRegression",
    "NextStepBinary",
    "SequenceClassification",
    "SequenceTask",
    "Sequences",
    "Task",
]
