"""A task of your own in Python: how many cycles a noisy sine wave makes (one label per sequence).

A study names it with `source = "examples.sinewaves:make"`; its keyword arguments are the options
[task_options.NAME] may set, checked against this signature.
"""

from __future__ import annotations

import numpy as np

from odyssey.tasks import Dataset, Sequences, SequenceTask
from odyssey.tasks.objectives import SequenceClassification


def make(
    *, seed: int = 0, sequences: int = 300, classes: int = 3, length: int = 30, noise: float = 0.5
) -> SequenceTask:
    """Noisy sine waves (generated): how many cycles, 1..classes."""
    rng = np.random.default_rng(seed)
    steps = np.arange(length)

    def split(n: int) -> Sequences:
        labels = rng.integers(0, classes, n)
        phases = rng.uniform(0, 2 * np.pi, n)
        waves = [
            np.sin(2 * np.pi * (k + 1) * steps / length + p) + noise * rng.normal(size=length)
            for k, p in zip(labels, phases)
        ]
        return Sequences([w[:, None].astype(np.float32) for w in waves], [np.array([k]) for k in labels])

    splits = {"train": split(sequences), "validation": split(sequences // 4), "test": split(sequences // 4)}
    names = [f"{k + 1} cycles" for k in range(classes)]
    return SequenceTask(
        "sinewaves", Dataset(splits, classes=names), SequenceClassification(classes), bidirectional=False
    )
