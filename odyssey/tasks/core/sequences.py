"""Variable-length sequences in memory: labelling, splitting, standardising, and grouping them
into batches of similar length."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from .base import SPLITS

# Shuffled epochs sort by length only within pools of this many batches: batches stay close to
# one length (little padding) while their membership still changes from epoch to epoch.
POOL_BATCHES = 50


@dataclass
class Sequences:
    """One split: inputs[i] is (T_i, input_size); targets[i] is whatever the objective reads."""

    inputs: list[np.ndarray] = field(default_factory=list)
    targets: list[np.ndarray] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.inputs)


@dataclass
class Dataset:
    """The three splits of a task and the names of its classes (keys, phones, characters)."""

    splits: dict[str, Sequences]
    classes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        missing = [s for s in SPLITS if s not in self.splits]
        if missing:
            raise ValueError(f"a dataset needs the splits {SPLITS}; missing {missing}")


def labelled_dataset(pairs: dict[str, list[tuple[np.ndarray, Sequence]]], first_label: int = 0) -> Dataset:
    """A data set from (inputs, label sequence) pairs per split, the labels being names (phones,
    characters): the classes are every name that occurs, sorted, numbered from first_label."""
    classes = sorted({str(name) for split in pairs.values() for _, names in split for name in names})
    number = {name: i + first_label for i, name in enumerate(classes)}
    splits = {
        split: Sequences(
            inputs=[x for x, _ in items],
            targets=[np.array([number[str(name)] for name in names], dtype=np.int64) for _, names in items],
        )
        for split, items in pairs.items()
    }
    return Dataset(splits=splits, classes=classes)


def split_by_fractions(n: int, fractions: tuple[float, ...], seed: int) -> list[np.ndarray]:
    """A seeded random partition of range(n) into parts of the given relative sizes, each sorted."""
    weights = np.asarray(fractions, dtype=float) / sum(fractions)
    bounds = np.round(np.cumsum(weights) * n).astype(int)
    order = np.random.default_rng(seed).permutation(n)
    return [np.sort(part) for part in np.split(order, bounds[:-1])]


def standardise(dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Scale every split's inputs in place to zero mean, unit variance per feature over the
    training frames; returns (mean, std). Constant features keep std 1 rather than dividing by 0."""
    frames = np.concatenate(dataset.splits["train"].inputs).astype(np.float64)
    mean = frames.mean(axis=0)
    std = frames.std(axis=0)
    std[std < 1e-8] = 1.0
    for seqs in dataset.splits.values():
        seqs.inputs = [((x - mean) / std).astype(np.float32) for x in seqs.inputs]
    return mean.astype(np.float32), std.astype(np.float32)


def batch_indices(
    lengths: np.ndarray, batch_size: int, *, shuffle: bool, generator: torch.Generator | None
) -> list[np.ndarray]:
    """Groups of sequence indices of similar length, each ordered longest first.

    Without shuffling: all sequences sorted by length, cut into batches, shortest batch first.
    With shuffling: a random permutation, sorted by length within pools, batches in random order;
    every draw comes from `generator`, so a seeded generator gives the same epoch every time.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    n = len(lengths)
    if not shuffle:
        pools = [np.arange(n)]
    else:
        order = torch.randperm(n, generator=generator).numpy()
        pool = batch_size * POOL_BATCHES
        pools = [order[i : i + pool] for i in range(0, n, pool)]
    batches = []
    for pool in pools:
        pool = pool[np.argsort(lengths[pool], kind="stable")]
        batches += [pool[i : i + batch_size][::-1] for i in range(0, len(pool), batch_size)]
    if shuffle:
        batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
    return batches
