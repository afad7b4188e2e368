"""The model odyssey's fANOVA decomposes: a random forest fit to exact integer targets, its leaf size chosen
out of bag, on what the effects fit before it leave: the categorical parameters' one-way effects, or
every parameter's, or those and binned effects of pairs and triples, whichever predicts left-out
trials best (`fit_model`).

fanova.py decomposes what this module fits; importance.py and uncertainty.py refit it on halves and
on null objectives.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations, product

import numpy as np
from scipy.stats import f as f_distribution
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
    effects: Sequence[Effect] = (),
) -> np.ndarray:
    """The forest's mean prediction in y's units, its trees added in their order (sklearn's threads add
    them in any order), plus the effects fit before it (`effects_part`)."""
    offset, unit = getattr(forest, "odyssey_units_", (0.0, 1.0))
    points, total = np.ascontiguousarray(x, dtype=np.float32), np.zeros(len(x))  # sklearn's trees compare float32
    trees = forest.estimators_[:first]
    for tree in trees:
        total += tree.tree_.predict(points).reshape(-1)
    return offset + unit * (total / len(trees)) + effects_part(x, effects)


@dataclass(frozen=True)
class Effect:
    """A function of one, two or three parameters, fit before the forest: constant on each cell of
    their equal-width bins on the analysis scale (a categorical parameter's choices), `values` with
    one axis per parameter."""

    dims: tuple[int, ...]
    edges: tuple[np.ndarray, ...]
    values: np.ndarray

    def cells(self, x: np.ndarray) -> np.ndarray:
        """Each point's cell, as an index into the flattened values."""
        return np.ravel_multi_index([_levels(x[:, d], e) for d, e in zip(self.dims, self.edges)], self.values.shape)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.values.reshape(-1)[self.cells(x)]


def effects_part(x: np.ndarray, effects: Sequence[Effect]) -> np.ndarray:
    """The effects fit before the forest, summed at each point in their order."""
    total = np.zeros(len(x))
    for effect in effects:
        total += effect(x)
    return total


# Equal-width bins a continuous parameter's one-way effect may have (1: none); the count is chosen by
# leave-one-out error, with at least 10 trials a bin on average.
BINS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)
# The same for each continuous parameter of a pair's or a triple's effect (at least 10 trials a cell on average).
SIDES = {2: (2, 4, 8), 3: (2, 4)}
# Triples are tried up to this many parameters (56 triples); beyond, pairs only (20 parameters have
# 1140 triples, 9,120 grids a round).
TRIPLES_UP_TO = 8
# An interaction's grid is added only where its cells' means differ beyond noise at this level, over
# every grid the round tries (Bonferroni): the best of many grids predicts left-out trials better by
# chance: with the left-out error alone, of 12 parameters of which one pair mattered (1000 trials) the
# pair came as a triple with a third parameter, beside a spurious pair and a spurious triple; of 20
# (2000 trials), ten spurious interactions beside the pair. With the test, the pair alone in both.
ALPHA = 0.05


def _levels(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The bin of each value (the first or last for one outside the edges)."""
    return np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2)


def _binned(levels: np.ndarray, y: np.ndarray, size: int) -> np.ndarray:
    """Each bin's (choice's, cell's) effect: its trials' mean less the mean over bins, 0 for a bin no
    trial fell in, centred under the uniform measure over bins (equal widths, or equally weighted choices)."""
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


def _sums(levels: np.ndarray, y: np.ndarray, size: int) -> np.ndarray:
    """(3, size): each bin's trials, their sum and their sum of squares of y less its mean (the sums
    of squares then lose no digits to the mean)."""
    y = y - y.mean()
    return np.stack(
        [np.bincount(levels, minlength=size), np.bincount(levels, y, size), np.bincount(levels, y * y, size)]
    )


def _loo_from(sums: np.ndarray) -> float:
    """Mean squared error of predicting each trial by the mean of the other trials in its bin (inf
    where one is alone in its bin), from the bins' `_sums`: a trial's error left out is its error in
    its bin's mean times n / (n - 1), n the bin's trials."""
    count, total, squares = sums[:, sums[0] > 0]
    if (count == 1).any():
        return math.inf
    return float(np.sum((count / (count - 1)) ** 2 * np.maximum(squares - total * total / count, 0.0)) / count.sum())


def _loo_error(levels: np.ndarray, y: np.ndarray, size: int) -> float:
    return _loo_from(_sums(levels, y, size))


def _f_test(sums: np.ndarray) -> float:
    """The p-value of the one-way analysis of variance between the bins whose `_sums` these are (F
    test): how often noise alone would make their means differ this much."""
    count, total, squares = sums[:, sums[0] > 0]
    k, n = len(count), int(count.sum())
    if k < 2 or n <= k:
        return 1.0
    between = float(np.sum(total * total / count))  # y's mean is 0 over all bins
    within = float(np.sum(squares)) - between
    if within <= 0:
        return 0.0 if between > 0 else 1.0
    return float(f_distribution.sf((between / (k - 1)) / (within / (n - k)), k - 1, n - k))


def _bins(x: np.ndarray, y: np.ndarray, low: float, high: float) -> np.ndarray | None:
    """The edges of the equal-width bins whose means predict the trials they leave out best; None for one bin."""
    best, edges = _loo_error(np.zeros(len(y), int), y, 1), None
    for size in [b for b in BINS[1:] if b * 10 <= len(y)]:
        cut = np.linspace(low, high, size + 1)
        error = _loo_error(_levels(x, cut), y, size)
        if error < best:
            best, edges = error, cut
    return edges


def _choices(low: float, high: float) -> np.ndarray:
    """A categorical scale's choices as bins: it spans them one unit each (scales.py)."""
    return np.linspace(low, high, round(high - low) + 1)


def one_way_effects(
    x: np.ndarray, y: np.ndarray, *, categorical: list[int], lows: np.ndarray, highs: np.ndarray, continuous: bool
) -> list[Effect]:
    """One-way effects fit before the forest: each categorical parameter's per (coded) choice and, with
    `continuous`, each continuous one's per equal-width bin of its analysis scale (as many bins as
    leave-one-out error prefers; none where one bin is best). Under random search every parameter is
    drawn on its own, so one-way means are its main effect; fit first, they are not left to trees that
    isolate the trials by strong parameters before they split on a weak one (a 9-level variant: 0.08-0.11
    of a true 0.16 with the forest alone, 0.14-0.19 so)."""
    effects = []  # the categorical ones first: the order in which the effects are summed, to the last bit
    for d in [*categorical, *(d for d in range(x.shape[1]) if d not in categorical)]:
        if d in categorical:
            edges = _choices(lows[d], highs[d])
        elif continuous and highs[d] > lows[d]:
            edges = _bins(x[:, d], y, lows[d], highs[d])
        else:
            edges = None
        if edges is not None:
            effects.append(Effect((d,), (edges,), _binned(_levels(x[:, d], edges), y, len(edges) - 1)))
    return effects


def interaction_effects(
    x: np.ndarray, y: np.ndarray, *, categorical: list[int], lows: np.ndarray, highs: np.ndarray
) -> tuple[list[Effect], np.ndarray]:
    """Effects of pairs and triples of parameters on y (what the one-way effects leave), added one at
    a time: of every such set and grid of equal-width bins (SIDES a continuous side, a categorical
    one's choices), the one whose cell means predict the trials they leave out best, as long as that
    beats their overall mean and the means differ beyond noise (ALPHA); each on what the ones before
    it leave. Returns them and, per trial, what leaving it out of its cells' means changes
    (`left_out_prediction`).

    Why: after the one-way effects, an interaction leaves no single split that helps where its
    parameters do little alone (a pair of a 9-level choice with a continuous parameter; a product of
    three centred parameters), so the trees never find it and their mean smooths it away: at 1000
    trials such a pair of 0.061 came out 0.000-0.004, and a three-way interaction of 0.63 came out
    0.17-0.24 with the main effect beside it 0.61-0.67 for 0.36 (benchmarks/importance_accuracy.py,
    set C). Binned here first, they came out within 0.03 and 0.015 of the truth. Cells' means are
    cheap: 0.013 s at 5400 trials and 4 parameters, each side's bins being unions of its finest ones
    (2, 3, 4, 6, 8 a pair's side and 2, 3, 4 a triple's, one grid at a time, cost 0.04 s and came
    out no nearer on the benchmark's sets A-C).
    """
    n, dims = len(y), [d for d in range(x.shape[1]) if highs[d] > lows[d]]
    orders = [o for o in SIDES if o == 2 or len(dims) <= TRIPLES_UP_TO]
    # Each side's finest bins; a coarser grid's bins are unions of them, so its sums are theirs added.
    finest = {
        (order, d): _choices(lows[d], highs[d])
        if d in categorical
        else np.linspace(lows[d], highs[d], max(SIDES[order]) + 1)
        for order in orders
        for d in dims
    }
    subsets = {}  # per set of parameters: each trial's finest cell, the finest shape, the grids to try (as
    # how many finest bins each side's bins take)
    for order in orders:
        for subset in combinations(dims, order):
            fine = tuple(len(finest[order, d]) - 1 for d in subset)
            merges = [[1] if d in categorical else [max(SIDES[order]) // k for k in SIDES[order]] for d in subset]
            grids = [m for m in product(*merges) if math.prod(f // k for f, k in zip(fine, m)) * 10 <= n]
            if grids:
                levels = [_levels(x[:, d], finest[order, d]) for d in subset]
                subsets[subset] = (np.ravel_multi_index(levels, fine), fine, grids)
    chosen, correction = [], np.zeros(n)
    while subsets:
        tries = sum(len(grids) for *_, grids in subsets.values())
        best = (_loo_error(np.zeros(n, int), y, 1), None)
        for subset, (cells, fine, grids) in subsets.items():
            sums = _sums(cells, y, math.prod(fine)).reshape(3, *fine)
            for merge in grids:
                shape = tuple(f // k for f, k in zip(fine, merge))
                merged = sums.reshape(3, *(v for pair in zip(shape, merge) for v in pair))
                merged = merged.sum(axis=tuple(2 + 2 * i for i in range(len(shape)))).reshape(3, -1)
                error = _loo_from(merged)
                if error < best[0] and _f_test(merged) < ALPHA / tries:
                    best = (error, (subset, merge, shape))
        if best[1] is None:
            break
        subset, merge, shape = best[1]
        order = len(subset)
        edges = tuple(finest[order, d][::k] for d, k in zip(subset, merge))
        cells = np.ravel_multi_index([_levels(x[:, d], e) for d, e in zip(subset, edges)], shape)
        size = math.prod(shape)
        effect = Effect(subset, edges, _binned(cells, y, size).reshape(shape))
        others, mean = _left_out_means(cells, y, size)
        correction, y = correction + others - mean, y - effect(x)
        chosen.append(effect)
        del subsets[subset]
    return chosen, correction


# What is fit before the forest, one candidate model each (`fit_model`): the categorical parameters'
# one-way effects; every parameter's; every parameter's and the interactions' (`interaction_effects`).
FIRST = ("categorical", "one-way", "interactions")


def fit_effects(
    x: np.ndarray, y: np.ndarray, *, categorical: list[int], lows: np.ndarray, highs: np.ndarray, first: str
) -> tuple[list[Effect], np.ndarray]:
    """The effects `first` (of FIRST) names, fit to y, and per trial what leaving it out of the
    continuous effects' means changes (the categorical ones stay in-sample means: a choice may have one trial)."""
    effects = one_way_effects(x, y, categorical=categorical, lows=lows, highs=highs, continuous=first != "categorical")
    correction = np.zeros(len(y))
    for effect in effects:
        if effect.dims[0] not in categorical:  # less the trial's own part of its bin's mean
            others, mean = _left_out_means(effect.cells(x), y, effect.values.size)
            correction = correction + others - mean
    if first == "interactions":
        interactions, more = interaction_effects(
            x, y - effects_part(x, effects), categorical=categorical, lows=lows, highs=highs
        )
        effects, correction = effects + interactions, correction + more
    return effects, correction


def left_out_prediction(
    forest: RandomForestRegressor, x: np.ndarray, effects: Sequence[Effect], correction: np.ndarray
) -> np.ndarray:
    """Each trial as the model would predict it without having seen it: the trees that did not draw it,
    the effects' cells without it (`fit_effects`' correction)."""
    return oob_prediction(forest) + effects_part(x, effects) + correction


@dataclass(frozen=True)
class Fit:
    """What the analysis decomposes: the effects fit first and the forest fit to what they leave."""

    effects: list[Effect]
    first: str  # which effects (of FIRST)
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
    on what every parameter's one-way effect leaves, or on what those and the interactions' binned
    effects leave (`FIRST`).

    Why a choice: trees grow greedily, and a strong main effect draws every split, so an interaction of
    parameters with no main effect of their own is never found. On a study (held out, not tuned on)
    where input noise explains 0.4 by itself and a three-way interaction of the others 0.6, the forest
    alone gave input noise 0.80; a pair of 0.074 between two such parameters came out 0.001. Fitting the
    effects first fixes those but blurs what the trees would have cut sharply: a smooth pair of
    two strong parameters went from 0.048 to 0.091 of error, a moving threshold from 0.095 to 0.157. The
    left-out error tells which fits these trials better (both at 1000 trials, 3 replicates, 2026-12-07)."""
    best, before, start = None, None, None
    for first in FIRST:
        effects, correction = fit_effects(x, y, categorical=categorical, lows=lows, highs=highs, first=first)
        if before is not None and len(effects) == before:
            continue  # the same effects as the model before (none added): the same fit
        before = len(effects)
        start, forest = choose_leaf(x, y - effects_part(x, effects), trees=trees, seed=seed, start=start)
        # each later search starts at the leaf of the one before: 9 forests at 5400 trials, 15 if each started afresh
        left_out = left_out_prediction(forest, x, effects, correction)
        error = _mean_square(y, left_out)
        if best is None or error < best[0]:
            best = (error, Fit(effects, first, forest, left_out))
    return best[1]


def oob_prediction(forest: RandomForestRegressor) -> np.ndarray:
    """Each trial predicted by the trees that did not see it, in y's units (NaN where every tree saw it)."""
    offset, unit = getattr(forest, "odyssey_units_", (0.0, 1.0))
    return offset + unit * np.asarray(forest.oob_prediction_, float).reshape(-1)


LEAVES = (1, 2, 3, 5, 8, 13, 21, 34)
# With many trials the search starts at a middle leaf size: fully grown forests are the dearest (at 5400
# trials, 32 trees: 0.17 s at leaf 1, 0.12 s at 8), and the out-of-bag error is smooth enough there that
# walking from 5 finds the bottom walking from 1 finds (leaf 8 at 5400 trials, 3 forests for 6). At 200
# and 1000 trials it is not: starting at 5 moved shares by up to 0.08 on the benchmark's studies.
LARGE, LARGE_START = 2000, 5


def choose_leaf(
    x: np.ndarray, y: np.ndarray, *, trees: int = 32, seed: int = 0, start: int | None = None
) -> tuple[int, RandomForestRegressor]:
    """The min_samples_leaf (of LEAVES, at most a tenth of the trials) whose forest predicts the
    trials it did not see best, and that forest (fit with out-of-bag predictions). The error is
    U-shaped in the leaf size: the search walks up from the smallest (from LARGE_START with LARGE
    trials or more), or from `start` (a leaf size found for a like target) up, or down where the
    first step up does not help, and stops past the bottom.

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
    start = start or (LARGE_START if len(y) >= LARGE else None)
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
