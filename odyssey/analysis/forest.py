"""The model odyssey's fANOVA decomposes: a random forest fit to exact integer targets, its leaf size chosen
out of bag, on what the parameters' one-way effects fit before it leave (the categorical ones', and
every parameter's where that predicts left-out trials better: `fit_model`).

fanova.py decomposes what this module fits; importance.py and uncertainty.py refit it on halves and
on null objectives.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass

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
    one_way: dict[int, Steps] | None = None,
) -> np.ndarray:
    """The forest's mean prediction in y's units, its trees added in their order (sklearn's threads add
    them in any order), plus the one-way effects fit before it (`one_way_part`)."""
    offset, unit = getattr(forest, "odyssey_units_", (0.0, 1.0))
    points, total = np.ascontiguousarray(x, dtype=np.float32), np.zeros(len(x))  # sklearn's trees compare float32
    trees = forest.estimators_[:first]
    for tree in trees:
        total += tree.tree_.predict(points).reshape(-1)
    return offset + unit * (total / len(trees)) + one_way_part(x, one_way)


# A one-way effect fit before the forest: its bins' edges on the analysis scale and the effect in each.
Steps = tuple[np.ndarray, np.ndarray]


def one_way_part(x: np.ndarray, one_way: dict[int, Steps] | None) -> np.ndarray:
    """The one-way effects fit before the forest (`one_way_effects`), summed at each point."""
    total = np.zeros(len(x))
    for d, (edges, effect) in (one_way or {}).items():
        total += effect[_levels(x[:, d], edges)]
    return total


# Equal-width bins a continuous parameter's one-way effect may have (1: none); the count is chosen by
# leave-one-out error, with at least 10 trials a bin on average.
BINS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)


def _levels(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The bin of each value (the first or last for one outside the edges)."""
    return np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2)


def _binned(levels: np.ndarray, y: np.ndarray, size: int) -> np.ndarray:
    """Each bin's (choice's) effect: its trials' mean less the mean over bins, 0 for a bin no trial fell in,
    centred under the uniform measure over bins (equal widths, or equally weighted choices)."""
    count = np.bincount(levels, minlength=size)
    seen = count > 0
    means = np.bincount(levels, y, size) / np.maximum(count, 1)
    effect = np.where(seen, means - means[seen].mean(), 0.0)
    return effect - effect.mean()


def _left_out_means(levels: np.ndarray, y: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per trial: the mean of the other trials in its bin (not finite where it is alone there), and its bin's mean."""
    n = np.bincount(levels, minlength=size)[levels]
    sums = np.bincount(levels, y, size)[levels]
    with np.errstate(invalid="ignore", divide="ignore"):
        return (sums - y) / (n - 1), sums / n


def _mean_square(y: np.ndarray, predicted: np.ndarray) -> float:
    """The mean squared error where there is a prediction (inf where there is none)."""
    seen = np.isfinite(predicted)
    return float(np.mean((y[seen] - predicted[seen]) ** 2)) if seen.any() else math.inf


def _loo_error(levels: np.ndarray, y: np.ndarray, size: int) -> float:
    """Mean squared error of predicting each trial by the mean of the other trials in its bin."""
    others, _ = _left_out_means(levels, y, size)
    return float(np.mean((y - others) ** 2)) if np.isfinite(others).all() else math.inf


def _bins(x: np.ndarray, y: np.ndarray, low: float, high: float) -> np.ndarray | None:
    """The edges of the equal-width bins whose means predict the trials they leave out best; None for one bin."""
    best, edges = _loo_error(np.zeros(len(y), int), y, 1), None
    for size in [b for b in BINS[1:] if b * 10 <= len(y)]:
        cut = np.linspace(low, high, size + 1)
        error = _loo_error(_levels(x, cut), y, size)
        if error < best:
            best, edges = error, cut
    return edges


def one_way_effects(
    x: np.ndarray, y: np.ndarray, *, categorical: list[int], lows: np.ndarray, highs: np.ndarray, continuous: bool
) -> dict[int, Steps]:
    """One-way effects fit before the forest: each categorical parameter's per (coded) choice and, with
    `continuous`, each continuous one's per equal-width bin of its analysis scale (as many bins as
    leave-one-out error prefers; none where one bin is best). Under random search every parameter is
    drawn on its own, so one-way means are its main effect; fit first, they are not left to trees that
    isolate the trials by strong parameters before they split on a weak one (a 9-level variant: 0.08-0.11
    of a true 0.16 with the forest alone, 0.14-0.19 so). A categorical scale spans its choices one unit
    each (scales.py), so its choices are that many equal-width bins too."""
    effects = {}  # the categorical ones first: the order in which the effects are summed, to the last bit
    for d in [*categorical, *(d for d in range(x.shape[1]) if d not in categorical)]:
        if d in categorical:
            edges = np.linspace(lows[d], highs[d], round(highs[d] - lows[d]) + 1)
        elif continuous and highs[d] > lows[d]:
            edges = _bins(x[:, d], y, lows[d], highs[d])
        else:
            edges = None
        if edges is not None:
            effects[d] = (edges, _binned(_levels(x[:, d], edges), y, len(edges) - 1))
    return effects


def left_out_prediction(
    forest: RandomForestRegressor, x: np.ndarray, y: np.ndarray, effects: dict[int, Steps], categorical: list[int]
) -> np.ndarray:
    """Each trial as the model would predict it without having seen it: the trees that did not draw it,
    the continuous one-way effects from its bin's other trials. The categorical effects stay in-sample
    means (a choice may have one trial)."""
    total = oob_prediction(forest)
    for d, (edges, effect) in effects.items():
        levels = _levels(x[:, d], edges)
        total = total + effect[levels]
        if d not in categorical:  # less the trial's own part of its bin's mean
            others, mean = _left_out_means(levels, y, len(effect))
            total = total + others - mean
    return total


@dataclass(frozen=True)
class Fit:
    """What the analysis decomposes: the one-way effects fit first and the forest fit to what they leave."""

    effects: dict[int, Steps]
    continuous: bool  # whether continuous parameters' one-way effects were fit first
    forest: RandomForestRegressor  # its min_samples_leaf chosen out of bag
    left_out: np.ndarray  # each trial's left_out_prediction


def fit_model(
    x: np.ndarray,
    y: np.ndarray,
    *,
    categorical: list[int],
    lows: np.ndarray,
    highs: np.ndarray,
    trees: int = 32,
    seed: int = 0,
) -> Fit:
    """The forest on what the categorical effects leave, or, where it predicts left-out trials better,
    on what every parameter's one-way effect leaves.

    Why both: trees grow greedily, and a strong main effect draws every split, so an interaction of
    parameters with no main effect of their own is never found. On a study (held out, not tuned on)
    where input noise explains 0.4 by itself and a three-way interaction of the others 0.6, the forest
    alone gave input noise 0.80; a pair of 0.074 between two such parameters came out 0.001. Fitting the
    one-way effects first fixes those but blurs what the trees would have cut sharply: a smooth pair of
    two strong parameters went from 0.048 to 0.091 of error, a moving threshold from 0.095 to 0.157. The
    left-out error tells which fits these trials better (both at 1000 trials, 3 replicates, 2026-12-07)."""
    best = None
    for continuous in (False, True):
        effects = one_way_effects(x, y, categorical=categorical, lows=lows, highs=highs, continuous=continuous)
        if continuous and len(effects) == len(categorical):
            break  # no continuous parameter has a one-way effect: the same fit as without
        start = best[1].forest.min_samples_leaf if best else None  # the second search starts at the first's leaf
        _, forest = choose_leaf(x, y - one_way_part(x, effects), trees=trees, seed=seed, start=start)
        left_out = left_out_prediction(forest, x, y, effects, categorical)
        error = _mean_square(y, left_out)
        if best is None or error < best[0]:
            best = (error, Fit(effects, continuous, forest, left_out))
    return best[1]


def oob_prediction(forest: RandomForestRegressor) -> np.ndarray:
    """Each trial predicted by the trees that did not see it, in y's units (NaN where every tree saw it)."""
    offset, unit = getattr(forest, "odyssey_units_", (0.0, 1.0))
    return offset + unit * np.asarray(forest.oob_prediction_, float).reshape(-1)


LEAVES = (1, 2, 3, 5, 8, 13, 21, 34)


def choose_leaf(
    x: np.ndarray, y: np.ndarray, *, trees: int = 32, seed: int = 0, start: int | None = None
) -> tuple[int, RandomForestRegressor]:
    """The min_samples_leaf (of LEAVES, at most a tenth of the trials) whose forest predicts the
    trials it did not see best, and that forest (fit with out-of-bag predictions). The error is
    U-shaped in the leaf size: the search walks up from the smallest, or from `start` (a leaf size
    found for a like target) up, or down where the first step up does not help, and stops past the bottom.

    Fully grown trees fit the noise too: on a study whose noise has half the signal's variance
    they gave the learning rate 0.48 of the variance where its share of the noise-free objective is
    0.73. Larger leaves average the noise away, and too large ones blur real effects; the
    out-of-bag error weighs the two on the trials themselves. The candidates are forests of `trees`
    trees: with half as many, each trial's out-of-bag prediction averaged fewer trees, its noise
    favoured larger leaves (13 for 8 on a study whose noise has half the signal's variance) and
    1 - momentum came out 0.33 for 0.27."""
    # joblib's threads cost more than they save on small forests (a sleep-and-poll per batch).
    jobs = THREADS if len(y) * trees >= 50_000 else 1

    def tried(leaf: int) -> tuple[float, int, RandomForestRegressor]:
        forest = fit_forest(x, y, trees=trees, min_samples_leaf=leaf, seed=seed, oob=True, jobs=jobs)
        return _mean_square(y, oob_prediction(forest)), leaf, forest

    sizes = [k for k in LEAVES if k == 1 or k <= len(y) / 10]
    at = sizes.index(start) if start in sizes else 0
    best = tried(sizes[at])
    for way in (sizes[at + 1 :], sizes[:at][::-1]):
        moved = False
        for leaf in way:
            found = tried(leaf)
            if found[0] < best[0]:
                best, moved = found, True
            elif found[0] > best[0]:  # past the bottom
                break
        if moved:
            break
    return best[1], best[2]
