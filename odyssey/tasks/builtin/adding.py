"""The adding problem (Hochreiter & Schmidhuber 1997): a long-range memory probe.

Each step has two inputs, a random number in [0, 1] and a marker; exactly two steps are marked,
one in each half of the sequence, and the target is the sum of the two marked numbers, read at
the last step. Always answering 1 scores an MSE of 1/6 (~0.167), the baseline to beat.
"""

from __future__ import annotations

import numpy as np

from ...errors import ConfigError
from ..core.base import SPLITS
from ..core.objectives import FinalStepRegression
from ..core.sequences import Dataset, Sequences
from ..core.task import SequenceTask


def make(
    *, seed: int = 0, length: int = 100, train: int = 2000, validation: int = 500, test: int = 500
) -> SequenceTask:
    """Adding problem (generated): sum of two marked numbers."""
    counts = {"train": train, "validation": validation, "test": test}
    if length < 2 or min(counts.values()) < 1:
        raise ConfigError(
            f"adding: length must be at least 2 and train, validation and test at least 1, got length={length}, "
            f"{', '.join(f'{k}={v}' for k, v in counts.items())}"
        )
    splits = {}
    for number, split in enumerate(SPLITS):
        rng = np.random.default_rng([seed, number])  # cheap to make: generated afresh, not cached
        n = counts[split]
        values = rng.random((n, length))
        half = length // 2
        marked = np.stack([rng.integers(0, half, n), rng.integers(half, length, n)], axis=1)
        markers = np.zeros((n, length))
        np.put_along_axis(markers, marked, 1.0, axis=1)
        sums = np.take_along_axis(values, marked, axis=1).sum(axis=1, keepdims=True)
        inputs = np.stack([values, markers], axis=2).astype(np.float32)
        splits[split] = Sequences(list(inputs), list(sums.astype(np.float32)))
    return SequenceTask("adding", Dataset(splits), FinalStepRegression(1), bidirectional=False)
