"""What every task gives the trainer: batches, a loss, a metric, and the shape of the network.

The trainer knows nothing about a task beyond this file, and nothing about the model beyond
`model(inputs, lengths) -> outputs` of shape (T, B, task.output_size).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class Batch:
    """A padded, time-major batch.

    inputs:  (T, B, input_size) float32, zero in the padding.
    lengths: (B,) int64 on the CPU, each sequence's own length.
    targets: task-specific (framewise class ids with -100 in the padding, multi-hot rolls, the
             concatenated CTC label sequences, regression targets...).
    target_lengths: (B,) int64 for CTC targets, else None.
    """

    inputs: torch.Tensor
    lengths: torch.Tensor
    targets: torch.Tensor
    target_lengths: torch.Tensor | None = None

    @property
    def size(self) -> int:
        return int(self.lengths.numel())


@runtime_checkable
class Task(Protocol):
    name: str
    input_size: int
    output_size: int
    bidirectional: bool
    metric_name: str  # lower is better, e.g. "frame_error", "nll", "cer", "mse"

    def batches(
        self, split: str, batch_size: int, *, shuffle: bool = False, generator: torch.Generator | None = None
    ) -> Iterator[Batch]:
        """Batches of one split, grouped by length to keep padding low; shuffled order when asked."""

    def loss(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        """A scalar to minimise, from the network's raw outputs (T, B, output_size)."""

    def metric(self, outputs: torch.Tensor, batch: Batch) -> tuple[float, float]:
        """(numerator, denominator) of the metric on this batch; a split's metric is sum/sum."""

    def sizes(self) -> dict[str, object]:
        """Sequences per split, mean length, input size, classes: what `odyssey tasks` shows."""
