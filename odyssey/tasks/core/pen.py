"""Per-point pen features, shared by the synthetic handwriting task and the IAM-OnDB reader."""

from __future__ import annotations

import numpy as np


def pen_features(strokes: list[np.ndarray], with_time: bool = True) -> np.ndarray:
    """(points, 4) rows of (dx, dy, time since the stroke began, pen-up) from strokes given as
    (N_i, 3) arrays of (x, y, time); pen-up is 1 on each stroke's last point, where the pen
    lifts. Without time: (dx, dy, pen-up)."""
    points = np.concatenate(strokes).astype(np.float64)
    moves = np.diff(points[:, :2], axis=0, prepend=points[:1, :2])
    elapsed = np.concatenate([s[:, 2] - s[0, 2] for s in strokes])
    pen_up = np.zeros(len(points))
    pen_up[np.cumsum([len(s) for s in strokes]) - 1] = 1
    columns = [moves, elapsed[:, None], pen_up[:, None]] if with_time else [moves, pen_up[:, None]]
    return np.hstack(columns).astype(np.float32)
