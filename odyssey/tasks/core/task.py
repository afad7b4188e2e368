"""The one Task implementation: a data set held in memory plus an objective from objectives.py."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence

from ...errors import DataError
from .base import SPLITS, Batch
from .sequences import Dataset, batch_indices, standardise


class SequenceTask:
    """Serves standardised, length-bucketed batches of `dataset` and scores them with `objective`.

    The inputs are standardised here with training statistics (kept as input_mean / input_std),
    so caches hold raw features and every task is scaled the same way.
    """

    def __init__(self, name: str, dataset: Dataset, objective, *, bidirectional: bool):
        train = dataset.splits["train"]
        if len(train) == 0:
            raise DataError(f"task {name!r} has no training sequences")
        self.name = name
        self.objective = objective
        self.bidirectional = bidirectional
        self.output_size = objective.output_size
        self.readout = getattr(objective, "readout", "frames")  # where the network's output is read
        self.metric_name = objective.metric_name
        self.input_size = int(train.inputs[0].shape[1])
        self.class_names = list(dataset.classes)
        self.input_mean, self.input_std = standardise(dataset)
        self._inputs = {s: [torch.from_numpy(x) for x in dataset.splits[s].inputs] for s in SPLITS}
        self._targets = {s: dataset.splits[s].targets for s in SPLITS}
        self._lengths = {s: np.array([len(x) for x in self._inputs[s]], dtype=np.int64) for s in SPLITS}

    def batches(
        self, split: str, batch_size: int, *, shuffle: bool = False, generator: torch.Generator | None = None
    ) -> Iterator[Batch]:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        lengths = self._lengths[split]
        for indices in batch_indices(lengths, batch_size, shuffle=shuffle, generator=generator):
            targets, target_lengths = self.objective.collate([self._targets[split][i] for i in indices])
            yield Batch(
                inputs=pad_sequence([self._inputs[split][i] for i in indices]),
                lengths=torch.from_numpy(lengths[indices]),
                targets=targets,
                target_lengths=target_lengths,
            )

    def loss(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        return self.objective.loss(outputs, batch)

    def metric(self, outputs: torch.Tensor, batch: Batch) -> tuple[float, float]:
        return self.objective.metric(outputs, batch)

    def sizes(self) -> dict[str, object]:
        all_lengths = np.concatenate([self._lengths[s] for s in SPLITS])
        return {
            **{s: len(self._lengths[s]) for s in SPLITS},
            "mean_length": round(float(all_lengths.mean()), 1),
            "input_size": self.input_size,
            "classes": self.objective.classes,
            "metric": self.metric_name,
        }

    def __repr__(self) -> str:
        sizes = self.sizes()
        counts = "/".join(str(sizes[s]) for s in SPLITS)
        return f"<task {self.name}: {counts} sequences, {self.input_size} inputs, {self.metric_name}>"
