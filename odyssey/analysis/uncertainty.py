"""How far a share can be trusted: an interval that allows for the forest's bias, and a noise floor.

Interval. A forest's shares are biased, and the bias, not the noise, is most of their error on
analytic studies with known shares: trees blur a boundary that moves with another parameter into
main effects, and isolate trials by strong parameters before they split on weak ones. Intervals
from the spread over one forest's trees held the truth for 44% of terms, and a bootstrap from the
forest's own (already blurred) prediction saw a tenth of the bias. What does show it is how the
shares move with the number of trials: the whole analysis (leaf size as chosen) runs again on
REFITS random halves of the trials. Their spread is the share's own (a half drawn without
replacement varies as much as the whole: sigma^2 / (n/2) x (1 - 1/2) = sigma^2 / n), and the share
less their mean, d, is how far it moved from n/2 to n trials. If the bias falls as n^-a, what is
left of it at n is d / (2^a - 1): d at a = 1, 2.41 d at a = 1/2. The interval reaches from the
share (no bias left) to the share plus 2.41 d (a bias that falls as slowly as 1/sqrt n), widened
by 1.645 spreads at both ends. On the benchmark's studies (`benchmarks/importance_accuracy.py`)
it held the truth for 89% of the terms at 200 trials and 92% at 1000 (62% at 60, where some
effects are not found at all); the forest's share is reported as it is, since extrapolating it
by the move overshot at small studies (a spurious 0.5 main effect, down to 0.2 on halves, became
1.0).

The move cannot show a bias where the forest finds a term in neither the halves nor all the trials:
a pair of two parameters that do nothing alone (0.074) came out 0.002 at 200 trials, with an
interval up to 0.007, and a pure three-way interaction (1.0) 0.002-0.02 at 60 trials, up to
0.16. So the interval's top is also at least what a table of the trials allows (`table_bounds`):
the term's binned effect in the trials' means by cell (a main effect on the objective less the
other parameters' main effects, a pair or, for the higher-order rest, any triple of parameters on
what all of them leave), bounded at 95% from its noise (a noncentral chi-square), and the largest
such bound over the tables of 2, 4 or 8 bins a side (a triple's 2 or 4) with 5 trials a cell;
binning only lowers an effect's variance, so the term is at least its binned effect.
docs/importance.md has what it gained in coverage and cost in width.

Noise floor: the share a term reaches where it is truly zero, from refits on objectives with no
such term. The noise is each trial's residual against the forest's out-of-bag prediction, with
its sign flipped at random (a wild bootstrap): each trial keeps the size of its own noise, so
noise whose size depends on a parameter stays where it was (shuffling residuals across trials
moved it, and a truly-zero pair was called distinguishable in 3 of 3 such studies).
- Main effects: refit on the sign-flipped residuals alone.
- Pairs and the higher-order rest: refit on the forest's own main effects plus the sign-flipped
  residuals: trees cut an additive function into boxes and so report some interaction where there
  is none, and this null reproduces that as well as the noise.
Variances from the refits, divided by the reported forest's variance, are shares; the floor is
their mean plus 1.645 of their spread, the 95th percentile of a normal. A term is distinguishable
from zero when its share less 1.645 spreads clears its floor.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from itertools import combinations, product

import numpy as np
from scipy.special import chndtr  # the noncentral chi-square's cdf: scipy.stats.ncx2's, without its 130 us a call

from .fanova import Fanova
from .forest import THREADS, _choices, _levels

LEVEL = 0.90  # two-sided interval
CONFIDENCE = 0.95  # of a table's bound (one-sided)
Z_FLOOR = Z_INTERVAL = 1.6449  # the floor: a share that noise alone exceeds 5% of the time (normal quantile)
# What is left of a bias that falls as 1/sqrt(n), per unit of its move from n/2 to n trials.
EXTRAPOLATE = 1.0 / (2**0.5 - 1.0)
REFITS = 12  # halves of the trials behind every interval, and refits behind each floor
# The tables behind `table_bounds`: a continuous side in any of TABLE_SIDES equal-width bins (a
# triple's in TRIPLE_SIDES, as the interactions model bins them), every table with TABLE_PER_CELL trials a
# cell on average. 5, not 10 (with 5 only where no table had 10): each table's bound is valid, and
# at 60 and 200 trials the finer tables it admits took pairs' intervals from holding the truth for
# 43% and 68% of nonzero pairs to 55% and 77%, at the cost of width (a truly-zero term's top,
# median: 0.024 -> 0.045 at 60 trials, 0.027 -> 0.044 at 200, with the triples' bounds;
# benchmarks/importance_accuracy.py, 2026-12-08, before the noncentral chi-square).
TABLE_SIDES, TRIPLE_SIDES, TABLE_PER_CELL = (8, 4, 2), (4, 2), 5

Fit = Callable[[np.ndarray, np.ndarray, int, bool], Fanova]  # (x, y, seed, with pairs) -> decomposition


@dataclass(frozen=True)
class Uncertainty:
    replicates: int  # halves of the trials behind the interval
    nulls: int  # refits per null behind the floor
    low: np.ndarray  # (K,) interval ends per term: main..., pair..., higher order
    high: np.ndarray
    std: np.ndarray  # (K,) the shares' spread over the halves
    floor: np.ndarray  # (K,) the share noise reaches with 5% chance
    moved: np.ndarray  # (K,) the forest's share less the halves' mean: how far it moved from n/2 to n trials
    above_noise: np.ndarray  # (K,) the forest's share less 1.645 spreads: what the floor is compared with
    curve_std: np.ndarray  # (D, G) the marginal curves' spread over the halves
    surface_std: np.ndarray  # (P, S, S) the pair marginals' spread
    interaction_std: np.ndarray  # (P, S, S) the pure interactions' spread
    halves: np.ndarray  # (replicates, K) each half's shares: joint draws, for statistics of several shares at once

    @property
    def distinguishable(self) -> np.ndarray:
        return np.asarray(self.above_noise > self.floor)

    def describe(self) -> str:
        return (
            f"{LEVEL:.0%} intervals from {self.replicates} analyses of random halves of the trials: from the share "
            "to where it heads if its bias falls as 1/sqrt(trials) (from its move between half and all of them), "
            "widened by 1.645 spreads, and up to at least the 95% bound of the term's effect in tables of the "
            "trials' means by bins of its parameters (the higher-order rest: of any three); noise floor: the "
            "share a term reaches (95th percentile) "
            f"where it is truly zero, from {self.nulls} refits on sign-flipped out-of-bag residuals (main effects) "
            f"and {self.nulls} on the forest's main effects plus such residuals (pairs, higher order); a share is "
            "distinguishable from zero when it is 1.645 spreads above its floor"
        )


def variances(fanova: Fanova) -> np.ndarray:
    """(K,) the terms as variances (zero where the shares are undefined)."""
    return np.nan_to_num(fanova.shares) * fanova.variance


def estimate(
    fit: Fit,
    x: np.ndarray,
    y: np.ndarray,
    point: Fanova,
    *,
    like_refits: Fanova | None = None,
    residuals: np.ndarray,
    additive: np.ndarray,
    replicates: int = REFITS,
    nulls: int = REFITS,
    seed: int = 0,
    table_high: np.ndarray | None = None,
) -> Uncertainty:
    """`point` is the analysis being reported, `like_refits` the same forest decomposed as `fit`
    decomposes (the move is measured from it; default `point`), `fit` runs it again on other trials or targets,
    `residuals` are the objective less its out-of-bag prediction, `additive` the forest's main
    effects summed at each trial, `table_high` (D + P + 1,) an upper bound of each main effect's,
    pair's and the rest's variance that does not rest on the forest (`table_bounds`; NaN where there is none)."""
    if replicates < 2 or nulls < 2:
        raise ValueError(f"need at least 2 halves and 2 null refits for a spread, got {replicates} and {nulls}")
    rng = np.random.default_rng(seed)
    n, share = len(y), np.nan_to_num(point.shares)
    signs = rng.choice([-1.0, 1.0], size=(2 * nulls, n))  # drawn up front: the same whatever runs them
    halves = [rng.permutation(n)[: n // 2] for _ in range(replicates)]
    jobs = [(x[h], y[h], seed + 1 + r, True) for r, h in enumerate(halves)]
    mains = len(point.main)
    nulls_at = []
    for family, (base, pairs) in enumerate(((0.0, False), (additive, True))):
        nulls_at.append(len(jobs))
        jobs += [
            (x, base + signs[family * nulls + k] * residuals, seed + 1001 + 100 * family + k, pairs)
            for k in range(nulls)
        ]
    with ThreadPoolExecutor(max_workers=THREADS) as pool:  # sklearn's trees and numpy's sums release the GIL
        done = list(pool.map(lambda job: fit(*job), jobs))
    again = done[:replicates]
    halved = np.array([np.nan_to_num(a.shares) for a in again])
    reference = share if like_refits is None else np.nan_to_num(like_refits.shares)
    moved, spread = reference - halved.mean(axis=0), halved.std(axis=0, ddof=1)
    heading = share + EXTRAPOLATE * moved

    floor = np.empty(len(share))
    for start, terms in zip(nulls_at, (slice(0, mains), slice(mains, None))):
        null = np.array([variances(f) for f in done[start : start + nulls]])
        floor[terms] = ((null.mean(axis=0) + Z_FLOOR * null.std(axis=0, ddof=1)) / point.variance)[terms]
    high = np.maximum(share, heading) + Z_INTERVAL * spread
    if table_high is not None:
        high[: len(table_high)] = np.fmax(high[: len(table_high)], table_high / point.variance)
    return Uncertainty(
        replicates=replicates,
        nulls=nulls,
        low=np.clip(np.minimum(share, heading) - Z_INTERVAL * spread, 0.0, 1.0),
        high=np.clip(high, 0.0, 1.0),
        std=spread,
        floor=floor,
        moved=moved,
        above_noise=share - Z_INTERVAL * spread,
        curve_std=np.std([a.curves for a in again], axis=0, ddof=1),
        surface_std=np.std([a.surfaces for a in again], axis=0, ddof=1),
        interaction_std=np.std([a.interactions for a in again], axis=0, ddof=1),
        halves=halved,
    )


def table_bound(levels: Sequence[np.ndarray], shape: tuple[int, ...], r: np.ndarray) -> float:
    """An upper bound (95%) of the variance of the pure effect in the table of r by `levels` (one
    array of cell indices per parameter, `shape` cells): of a one-way table its main effect, of a
    two- or three-way one the interaction, uniform over the cells; NaN where a cell is empty."""
    found = _table_statistic(levels, shape, r)
    return math.nan if found is None else float(_bounds([found])[0])


def _table_statistic(levels: Sequence[np.ndarray], shape: tuple[int, ...], r: np.ndarray) -> tuple | None:
    """(sum of squares, noise, degrees of freedom, cells) of the pure effect in the table, None where a
    cell is empty or the trials do not outnumber the cells.

    The effect in the cell means m (for two sides each less its row's and column's mean plus the
    overall mean; likewise for one and three) is a projection P m, and its sum of squares |P m|^2
    is a scaled noncentral chi-square: s chi2'(f, |P mu|^2 / s), whose scale s = tr(PSPS) / tr(PS)
    and degrees of freedom f = tr(PS)^2 / tr(PSPS) give the noise part its mean and variance (S the
    means' noise: the variance within cells, pooled, over each cell's trials). Where every cell has
    as many trials, s is each mean's noise and f the effect's rank, exactly; where the counts differ,
    it is Satterthwaite's approximation. Parameters outside the table add to the noise: random
    search draws them apart from these."""
    cells = math.prod(shape)
    cell = np.ravel_multi_index(tuple(levels), shape)
    count = np.bincount(cell, minlength=cells)
    if count.min() < 1 or len(r) <= cells:
        return None
    mean = np.bincount(cell, r, cells) / count
    within = float(np.sum(np.bincount(cell, r * r, cells) - count * mean**2)) / (len(r) - cells)
    project = _projection(shape)
    effect = project @ mean
    weighted = project * (within / count)  # P S
    trace, square = float(np.trace(weighted)), float(np.sum(weighted * weighted.T))  # tr(PS), tr(PSPS)
    if trace <= 0.0:
        return None
    return float(effect @ effect), square / trace, trace**2 / square, cells


@cache
def _projection(shape: tuple[int, ...]) -> np.ndarray:
    """P: the cell means' pure effect of a table of this shape, built once per shape (a study's
    tables share a few). With each parameter's bins also found once (`table_bounds`' `side`),
    `table_bounds` on 12 parameters and 1000 trials took 0.21 s instead of 0.74 (5 parameters:
    0.016 instead of 0.052; AMD EPYC, AVX2, 2026-12-08)."""
    project = np.ones((1, 1))
    for size in shape:
        project = np.kron(project, np.eye(size) - 1.0 / size)  # cells flattened as ravel_multi_index does
    project.flags.writeable = False
    return project


def _bounds(statistics: Sequence[tuple]) -> np.ndarray:
    """Each statistic's 95% upper bound of its effect's variance: the noncentrality at which its sum of
    squares or less has 5% chance, times the noise, over the cells. Exact where the cells' noise is
    alike; the moments' normal approximation it replaces held 84-89% for effects of one degree of
    freedom (2 x 2 tables, 2 x 2 x 2, two bins; simulated at 60 trials)."""
    squares, noise, freedom, cells = (np.array(column, dtype=float) for column in zip(*statistics))
    observed = squares / noise  # noise > 0: _table_statistic gives none without it
    low, high = np.zeros_like(observed), observed + 10.0 * np.sqrt(observed + freedom) + 20.0
    for _ in range(60):  # bisection, all tables at once: the cdf falls as the noncentrality grows
        middle = (low + high) / 2
        above = chndtr(observed, freedom, middle) > 1.0 - CONFIDENCE
        low, high = np.where(above, middle, low), np.where(above, high, middle)
    return high * noise / cells


def _edges(d: int, side: int, categorical: Sequence[int], lows: np.ndarray, highs: np.ndarray) -> np.ndarray:
    return _choices(lows[d], highs[d]) if d in categorical else np.linspace(lows[d], highs[d], side + 1)


def table_bounds(
    x: np.ndarray,
    y: np.ndarray,
    mains: np.ndarray,
    pairs: list[tuple[int, int]],
    *,
    categorical: Sequence[int],
    lows: np.ndarray,
    highs: np.ndarray,
) -> np.ndarray:
    """(D + P + 1,) `table_bound` of each main effect (on y less the other parameters' main effects,
    `mains` (N, D) at each trial), each pair (on y less all of them) and the higher-order rest (the
    largest over every triple of parameters of its three-way effect, on y less all main effects);
    of each, the largest over the tables that TABLE_PER_CELL admits (a categorical side in its
    choices, a continuous one in TABLE_SIDES equal-width bins): the term is at least its binned
    effect, since binning only lowers an effect's variance; NaN where no table has a trial in every
    cell (or, for the rest, with fewer than three parameters)."""
    count, rest = x.shape[1], y - mains.sum(axis=1)
    higher = count + len(pairs)  # the rest's index: every triple bounds it
    terms = [(d, (d,), rest + mains[:, d]) for d in range(count)]
    terms += [(count + k, pair, rest) for k, pair in enumerate(pairs)]
    terms += [(higher, triple, rest) for triple in combinations(range(count), 3)]

    @cache
    def side(d: int, bins: int) -> tuple[np.ndarray, int]:
        """Each trial's bin of parameter d in `bins` equal-width bins (a categorical one's: its choices)."""
        edges = _edges(d, bins, categorical, lows, highs)
        return _levels(x[:, d], edges), len(edges) - 1

    term, statistics = [], []  # every admitted table's statistic, and the term it bounds
    for k, dims, r in terms:
        for levels, shape in _tables(dims, side, len(y)):
            if (found := _table_statistic(levels, shape, r)) is not None:
                term.append(k)
                statistics.append(found)
    largest = np.full(higher + 1, -np.inf)
    if statistics:
        np.maximum.at(largest, term, _bounds(statistics))
    return np.where(np.isfinite(largest), largest, math.nan)


def _tables(
    dims: tuple[int, ...], side: Callable[[int, int], tuple[np.ndarray, int]], trials: int
) -> list[tuple[list[np.ndarray], tuple[int, ...]]]:
    """(each trial's cell index per side, shape) of every table of dims that TABLE_PER_CELL admits;
    `side(d, bins)` bins one parameter."""
    tables = {}  # by shape: a categorical side is the same table whatever the side
    for sides in product(TRIPLE_SIDES if len(dims) == 3 else TABLE_SIDES, repeat=len(dims)):
        binned = [side(d, bins) for d, bins in zip(dims, sides)]
        tables.setdefault(tuple(n for _, n in binned), [levels for levels, _ in binned])
    return [(levels, shape) for shape, levels in tables.items() if math.prod(shape) * TABLE_PER_CELL <= trials]
