"""The random forest odyssey's fANOVA decomposes: fit to exact integer targets, its leaf size chosen out of
bag, and the categorical parameters' one-way effects fit before it.

fanova.py decomposes what this module fits; importance.py and uncertainty.py refit it on halves and
on null objectives.
"""

from __future__ import annotations

import math
import os
import warnings

import numpy as np
from sklearn.ensemble import RandomForestRegressor

# Targets are fit as integers (multiples of 2^-32 of their largest deviation from the median): the
# trees' sums are then exact (n x 2^32 < 2^53 up to 2 million trials), so identical partitions tie
# exactly and the seed, not the CPU's rounding, decides between them; a target a few ulps off lands
# on another integer once in about a million values, and moves no tree unless two different
# partitions tie to 2^-32. Refits on residuals and additive parts computed with BLAS (whose
# last bits differ between AVX2 and AVX-512 kernels) otherwise grew different trees on different
# CPUs: the replication's pair floors moved by up to 54% between an Intel Xeon and an AMD EPYC.
TARGET_BITS = 32


def exact_target(y: np.ndarray) -> tuple[np.ndarray, float, float]:
    """y as integers t with y ~= offset + unit * t, |t| <= 2^TARGET_BITS; the conversion is exact arithmetic only."""
    y = np.asarray(y, float)
    offset = float(np.median(y))
    spread = float(np.max(np.abs(y - offset))) if len(y) else 0.0
    unit = math.ldexp(1.0, math.frexp(spread)[1] - TARGET_BITS) if spread > 0 else 1.0
    return np.round((y - offset) / unit), offset, unit


THREADS = min(2, os.cpu_count() or 1)  # trees or refits at once; each is seeded, so the count never changes a result


def fit_forest(
    x: np.ndarray,
    y: np.ndarray,
    *,
    trees: int = 32,
    min_samples_leaf: int = 1,
    seed: int = 0,
    oob: bool = False,
    jobs: int = 1,
) -> RandomForestRegressor:
    """Every feature at every split (max_features=1.0): with a handful of parameters, subsampling them only adds noise.

    The forest predicts `target` units (see `exact_target`); `predict` and `oob_prediction` give y's.
    oob: also predict each trial from the trees that did not see it.
    """
    target, offset, unit = exact_target(y)
    forest = RandomForestRegressor(
        n_estimators=trees,
        min_samples_leaf=min_samples_leaf,
        max_features=1.0,
        random_state=seed,
        n_jobs=jobs,
        oob_score=oob,
    )
    with warnings.catch_warnings():  # a trial every tree saw has no out-of-bag prediction: NaN, handled by the caller
        warnings.simplefilter("ignore", UserWarning)
        forest.fit(x, target)
    forest.odyssey_units_ = (offset, unit)
    return forest


def predict(
    forest: RandomForestRegressor,
    x: np.ndarray,
    *,
    first: int | None = None,
    choices: dict[int, np.ndarray] | None = None,
) -> np.ndarray:
    """The forest's mean prediction in y's units, its trees added in their order (sklearn's threads add
    them in any order), plus each categorical dimension's effect per choice where one was fit first."""
    offset, unit = getattr(forest, "odyssey_units_", (0.0, 1.0))
    points, total = np.ascontiguousarray(x, dtype=np.float32), np.zeros(len(x))  # sklearn's trees compare float32
    trees = forest.estimators_[:first]
    for tree in trees:
        total += tree.tree_.predict(points).reshape(-1)
    return offset + unit * (total / len(trees)) + choice_part(x, choices)


def choice_part(x: np.ndarray, choices: dict[int, np.ndarray] | None) -> np.ndarray:
    """The categorical effects fit before the forest (`choice_effects`), summed at each point."""
    return sum(
        (effect[np.clip(np.rint(x[:, d]), 0, len(effect) - 1).astype(int)] for d, effect in (choices or {}).items()),
        np.zeros(len(x)),
    )


def choice_effects(
    x: np.ndarray, y: np.ndarray, categorical: list[int], sizes: dict[int, int]
) -> dict[int, np.ndarray]:
    """Each categorical dimension's effect per (coded) choice: its trials' mean less the mean over
    choices, 0 for a choice no trial took. Under random search every parameter is drawn on its own,
    so these one-way means are the choices' main effect; fit first, they are not left to trees that
    isolate the trials by strong continuous parameters before they split on a choice (a 9-level
    variant: 0.08-0.11 of a true 0.16 with the forest alone, 0.14-0.19 so)."""
    effects = {}
    for d in categorical:
        levels = np.clip(np.rint(x[:, d]), 0, sizes[d] - 1).astype(int)
        count = np.bincount(levels, minlength=sizes[d])
        seen = count > 0
        means = np.bincount(levels, y, sizes[d]) / np.maximum(count, 1)
        effect = np.where(seen, means - means[seen].mean(), 0.0)
        effects[d] = effect - effect.mean()  # the uniform measure over choices: centred there
    return effects


def oob_prediction(forest: RandomForestRegressor) -> np.ndarray:
    """Each trial predicted by the trees that did not see it, in y's units (NaN where every tree saw it)."""
    offset, unit = getattr(forest, "odyssey_units_", (0.0, 1.0))
    return offset + unit * np.asarray(forest.oob_prediction_, float).reshape(-1)


LEAVES = (1, 2, 3, 5, 8, 13, 21, 34)


def choose_leaf(x: np.ndarray, y: np.ndarray, *, trees: int = 32, seed: int = 0) -> tuple[int, RandomForestRegressor]:
    """The min_samples_leaf (of LEAVES, at most a tenth of the trials) whose forest predicts the
    trials it did not see best, and that forest (fit with out-of-bag predictions).

    Fully grown trees fit the noise too: on a study whose noise has half the signal's variance
    they gave the learning rate 0.48 of the variance where its share of the noise-free objective is
    0.73. Larger leaves average the noise away, and too large ones blur real effects; the
    out-of-bag error weighs the two on the trials themselves. The candidates are forests of `trees`
    trees: with half as many, each trial's out-of-bag prediction averaged fewer trees, its noise
    favoured larger leaves (13 for 8 on a study whose noise has half the signal's variance) and
    1 - momentum came out 0.33 for 0.27."""
    best = None
    # joblib's threads cost more than they save on small forests (a sleep-and-poll per batch).
    jobs = THREADS if len(y) * trees >= 50_000 else 1
    for leaf in [k for k in LEAVES if k == 1 or k <= len(y) / 10]:
        forest = fit_forest(x, y, trees=trees, min_samples_leaf=leaf, seed=seed, oob=True, jobs=jobs)
        predicted = oob_prediction(forest)
        seen = np.isfinite(predicted)
        error = float(np.mean((y[seen] - predicted[seen]) ** 2)) if seen.any() else math.inf
        if best is None or error < best[0]:
            best = (error, leaf, forest)
        elif error > best[0]:  # the error is U-shaped in the leaf size: past its bottom, stop
            break
    return best[1], best[2]
