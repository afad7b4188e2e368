"""Sequence metrics that are not one line of torch: CTC best-path decoding and edit distance."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def best_path(frame_labels: torch.Tensor | Sequence[int], blank: int = 0) -> list[int]:
    """CTC best-path decoding of one sequence's most likely label per frame: merge runs of the
    same label, then drop blanks (so a blank between two equal labels keeps both)."""
    labels = torch.as_tensor(frame_labels).reshape(-1)
    if labels.numel() == 0:
        return []
    keep = torch.ones_like(labels, dtype=torch.bool)
    keep[1:] = labels[1:] != labels[:-1]
    merged = labels[keep]
    return merged[merged != blank].tolist()


def edit_distance(hypothesis: Sequence, reference: Sequence) -> int:
    """Levenshtein distance (insertions, deletions, substitutions all cost 1).

    One numpy pass per hypothesis symbol: the left-neighbour dependency within a row is resolved
    with a running minimum, d[j] = min_k<=j (m[k] + j - k), so long lines stay fast.
    """
    ref = np.asarray([hash(x) for x in reference], dtype=np.int64)
    offsets = np.arange(len(ref) + 1)
    row = offsets.copy()
    for i, symbol in enumerate(hypothesis, start=1):
        best = np.empty_like(row)
        best[0] = i
        # Deletion from above or (mis)match from the diagonal; insertions come from the left.
        best[1:] = np.minimum(row[1:] + 1, row[:-1] + (ref != hash(symbol)))
        row = np.minimum.accumulate(best - offsets) + offsets
    return int(row[-1])
