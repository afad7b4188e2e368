"""The copy (delayed recall) task: a long-range memory probe.

The network reads `copy_length` random symbols, then `delay` blank steps ending in a delimiter,
then must output the symbols in order during `copy_length` more blank steps. Only those recall
steps are scored (per-step cross-entropy, error rate over recalled symbols), so guessing scores
1 - 1/symbols rather than being flattered by the many trivial blank steps.
"""

from __future__ import annotations

import numpy as np

from ...errors import DataError
from ..core.base import SPLITS
from ..core.objectives import IGNORE, FramewiseClassification
from ..core.sequences import Dataset, Sequences
from ..core.task import SequenceTask


def make(
    *,
    seed: int = 0,
    symbols: int = 8,
    copy_length: int = 10,
    delay: int = 100,
    train: int = 2000,
    validation: int = 500,
    test: int = 500,
) -> SequenceTask:
    """Copy task (generated): recall symbols after a delay."""
    counts = {"train": train, "validation": validation, "test": test}
    if symbols < 2 or copy_length < 1 or delay < 1 or min(counts.values()) < 1:
        raise DataError("copy: needs symbols >= 2, copy_length >= 1, delay >= 1 and a sequence per split")
    blank, delimiter = symbols, symbols + 1  # input codes after the symbols 0..symbols-1
    length = copy_length + delay + copy_length
    splits = {}
    for number, split in enumerate(SPLITS):
        rng = np.random.default_rng([seed, number])  # cheap to make: generated afresh, not cached
        n = counts[split]
        shown = rng.integers(0, symbols, (n, copy_length))
        codes = np.full((n, length), blank)
        codes[:, :copy_length] = shown
        codes[:, copy_length + delay - 1] = delimiter
        inputs = np.eye(symbols + 2, dtype=np.float32)[codes]
        targets = np.full((n, length), IGNORE, dtype=np.int64)
        targets[:, -copy_length:] = shown
        splits[split] = Sequences(list(inputs), list(targets))
    return SequenceTask("copy", Dataset(splits), FramewiseClassification(symbols), bidirectional=False)
