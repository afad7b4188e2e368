"""Where a trial's entries sit in a pack's padded tensors (odyssey.model.pack).

Each packed parameter has the trials along its first dimension, then axes of two kinds: (False, n)
is n plain entries (inputs, outputs, peephole gates), (True, n) is n blocks of hidden units padded
to the pack's largest hidden size H, of which trial k uses the first H_k: unit j of block b sits at
b * H + j. `places` says it as an index (to copy entries in and out), `own` as a view (for the
kernel, which runs each trial on its own entries).
"""

from __future__ import annotations

import torch
from torch import Tensor

Axes = tuple[tuple[bool, int], ...]


def places(axes: Axes, size: int, hidden: int) -> tuple[Tensor, ...]:
    """An index into one trial's slice of a padded tensor (as torch.meshgrid gives), in the order of the
    trial's own tensor: `padded[k][places(...)]` is trial k's entries."""
    index = []
    for units, n in axes:
        if units:
            index.append((torch.arange(n).unsqueeze(1) * size + torch.arange(hidden)).reshape(-1))
        else:
            index.append(torch.arange(n))
    return torch.meshgrid(*index, indexing="ij")


def own(padded: Tensor, axes: Axes, size: int, hidden: int) -> Tensor:
    """A view of one trial's entries of a padded tensor whose last dimensions have these axes (leading
    ones pass through), each axis of units split into its blocks: reshape it to `own_shape` for the
    trial's own tensor."""
    shape, index = [], []
    for units, n in axes:
        shape += [n, size] if units else [n]
        index += [slice(None), slice(0, hidden)] if units else [slice(None)]
    return padded.view(padded.shape[: padded.dim() - len(axes)] + tuple(shape))[(..., *index)]


def own_shape(axes: Axes, hidden: int) -> tuple[int, ...]:
    """The trial's own tensor's shape (its last dimensions) for these axes."""
    return tuple(n * hidden if units else n for units, n in axes)
