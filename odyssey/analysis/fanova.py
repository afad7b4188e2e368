"""Functional ANOVA of a random forest's mean prediction, exact for main effects and pairs (Hutter,
Hoos and Leyton-Brown, ICML 2014).

A regression tree is constant on axis-aligned leaf boxes. Cut every dimension at all the tree's
box edges: each leaf then covers a contiguous block of grid bins in every dimension, so the
marginal of the tree over a set U of dimensions (its mean over the others, uniform on the bounds)
is a sum of leaf values times the volume share of the leaf outside U, spread over the leaf's block
in U. Difference arrays and cumulative sums add all leaves at once: no sampling, no per-bin loop.

Variance shares: V_i / V for one dimension, (V_ij - V_i - V_j) / V for a pair, where V_U is the
variance of the marginal over U and V that of the whole function; "higher order" is what remains.
A forest's mean prediction is a sum of boxes too (every tree's leaves, each tree centred and
weighted 1/trees), so the same cuts give its marginals exactly; `decompose_forest` says how the
rest and the total are found.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from scipy.stats import qmc
from sklearn.ensemble import RandomForestRegressor
from threadpoolctl import threadpool_limits

from .forest import Effect, predict


@dataclass(frozen=True)
class LeafBoxes:
    """A tree's leaves clipped to the bounds: value, and per dimension the box edges."""

    value: np.ndarray  # (L,)
    low: np.ndarray  # (L, D)
    high: np.ndarray  # (L, D)


def leaf_boxes(tree, *, lows: np.ndarray, highs: np.ndarray) -> LeafBoxes:
    """The boxes of a fitted sklearn `tree_` (or anything with its arrays), one tree level at a time.

    Splits outside the bounds give empty boxes, which are dropped: they carry no volume.
    """
    left, right = np.asarray(tree.children_left), np.asarray(tree.children_right)
    feature, threshold = np.asarray(tree.feature), np.asarray(tree.threshold, dtype=float)
    n = len(left)
    low, high = np.tile(np.asarray(lows, float), (n, 1)), np.tile(np.asarray(highs, float), (n, 1))
    frontier = np.array([0])
    while frontier.size:
        parents = frontier[left[frontier] != -1]
        dims, cuts = feature[parents], threshold[parents]
        lefts, rights = left[parents], right[parents]
        for children in (lefts, rights):
            low[children], high[children] = low[parents], high[parents]
        # sklearn sends x <= threshold to the left child.
        high[lefts, dims] = np.minimum(high[parents, dims], cuts)
        low[rights, dims] = np.maximum(low[parents, dims], cuts)
        frontier = np.concatenate([lefts, rights])
    leaves = np.flatnonzero(left == -1)
    value = np.asarray(tree.value, float).reshape(n, -1)[leaves, 0]
    low, high = low[leaves], high[leaves]
    keep = np.all(high > low, axis=1)
    return LeafBoxes(value[keep], low[keep], high[keep])


@dataclass(frozen=True)
class TreeTerms:
    """One tree's decomposition: variances (not shares) and marginals on fixed grids."""

    mean: float
    variance: float
    main: np.ndarray  # (D,) V_i
    pair: np.ndarray  # (P,) V_ij - V_i - V_j
    curves: np.ndarray  # (D, G) marginal at the curve grid
    surfaces: np.ndarray  # (P, S, S) marginal of the pair at the surface grid
    interactions: np.ndarray  # (P, S, S) the same less both main effects: the pure interaction
    probe: np.ndarray | None = None  # (M,) mean + main effects + pure pairs at the probe points


def _bins(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Index of the grid bin holding each value (the bounds belong to the first and last bins)."""
    return np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)


def _pair_marginal(
    grid: np.ndarray,
    ni: int,
    nj: int,
    wi: np.ndarray,
    wj: np.ndarray,
    at_rows: np.ndarray,
    at_cols: np.ndarray,
    probe: tuple[np.ndarray, np.ndarray] | None,
) -> tuple[float, float, np.ndarray, np.ndarray | None]:
    """From a pair's 2-D difference array: the weighted sum of squares of its cumulative sum (the
    pair marginal's variance), the two main effects' variances on the same grid, the marginal at
    the surface bins, and the pure interaction at the probe's bins (None without a probe).

    numpy's cumsum runs one element at a time; adding each row to the next is vectorised. So the
    sums run down the rows, then down the rows of the transpose: 2x faster than two cumsums on
    trees of a few thousand leaves. (The last row and column only close the leaves at the bound.)
    """
    rows = grid[:ni, :nj]
    for k in range(1, ni):
        np.add(rows[k], rows[k - 1], out=rows[k])
    columns = rows.T.copy()
    for k in range(1, nj):
        np.add(columns[k], columns[k - 1], out=columns[k])
    at = columns[np.ix_(at_cols, at_rows)].T
    along_i, along_j = wj @ columns, columns @ wi  # the two main effects, on this grid
    alone = float(wi @ along_i**2 + wj @ along_j**2)
    pure = None if probe is None else columns[probe[1], probe[0]] - along_i[probe[0]] - along_j[probe[1]]
    return float(wj @ np.square(columns, out=columns) @ wi), alone, at, pure


def decompose_tree(
    boxes: LeafBoxes,
    *,
    lows: np.ndarray,
    highs: np.ndarray,
    pairs: list[tuple[int, int]],
    curve_x: list[np.ndarray],
    surface_x: list[np.ndarray],
) -> TreeTerms:
    """Mean, variance, V_i, pure V_ij and marginals of one tree, uniform over the box [lows, highs]."""
    span = np.asarray(highs, float) - np.asarray(lows, float)
    volume = ((boxes.high - boxes.low) / span).prod(axis=1)
    mean = float(volume @ boxes.value)
    # Centred values give centred marginals: variances are then plain weighted sums of squares.
    value = boxes.value - mean
    return _decompose(
        boxes,
        value,
        mean,
        float(volume @ value**2),
        lows=lows,
        highs=highs,
        pairs=pairs,
        curve_x=curve_x,
        surface_x=surface_x,
    )


def _coarse(
    edges: np.ndarray, start: np.ndarray, end: np.ndarray, limit: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """At most `limit` bins: keep every k-th edge (and both bounds) and move each box edge to the nearest kept one."""
    if len(edges) - 1 <= limit:
        return edges, start, end
    kept = np.unique(np.linspace(0, len(edges) - 1, limit + 1).round().astype(int))
    nearer = np.searchsorted(
        (kept[:-1] + kept[1:]) / 2, np.arange(len(edges))
    )  # each edge's nearest kept one (ties: the lower)
    return edges[kept], nearer[start], nearer[end]


# Pair grids of a whole forest are cut at every tree's edges: about 2 n per continuous parameter at
# n trials. Past this many bins per side the edges are thinned (each box edge moves to the nearest
# kept one, at most 1/2 of a bin's share of the edges away): 5400 trials would otherwise need a
# 10^4 x 10^4 grid per pair.
PAIR_BINS = 1024


def _decompose(
    boxes: LeafBoxes,
    value: np.ndarray,
    mean: float,
    variance: float,
    *,
    lows: np.ndarray,
    highs: np.ndarray,
    pairs: list[tuple[int, int]],
    curve_x: list[np.ndarray],
    surface_x: list[np.ndarray],
    probe: np.ndarray | None = None,
    pair_bins: int = PAIR_BINS,
) -> TreeTerms:
    """The marginals of a sum of boxes whose centred values are `value` (one tree's leaves, or every
    tree's leaves of a forest, each tree centred on its own mean and divided by the number of trees).
    With `probe` (M, D) points, also the function's mean, main effects and pure pairs summed there."""
    span = np.asarray(highs, float) - np.asarray(lows, float)
    share = (boxes.high - boxes.low) / span  # (L, D): each box's share of every dimension
    volume = share.prod(axis=1)
    edges, start, end, width = [], [], [], []
    for d in range(len(span)):
        e = np.unique(np.concatenate([boxes.low[:, d], boxes.high[:, d]]))
        edges.append(e)
        start.append(np.searchsorted(e, boxes.low[:, d]))
        end.append(np.searchsorted(e, boxes.high[:, d]))
        width.append(np.diff(e) / span[d])

    main, curves = np.empty(len(span)), np.empty((len(span), len(curve_x[0])))
    on_surface = np.empty((len(span), len(surface_x[0])))
    fitted = None if probe is None else np.full(len(probe), mean)
    for d in range(len(span)):
        # Leaf value times its volume outside d, added over the leaf's bins in d.
        weight = value * volume / share[:, d]
        n = len(width[d])
        marginal = np.cumsum(np.bincount(start[d], weight, n + 1) - np.bincount(end[d], weight, n + 1))[:n]
        main[d] = width[d] @ marginal**2
        curves[d] = marginal[_bins(curve_x[d], edges[d])] + mean
        on_surface[d] = marginal[_bins(surface_x[d], edges[d])]
        if probe is not None:
            fitted = fitted + marginal[_bins(probe[:, d], edges[d])]

    pair = np.empty(len(pairs))
    surfaces = np.empty((len(pairs), len(surface_x[0]), len(surface_x[0])))
    interactions = np.empty_like(surfaces)
    coarse = [_coarse(edges[d], start[d], end[d], pair_bins) for d in range(len(span))]
    for k, (i, j) in enumerate(pairs):
        weight = value * volume / (share[:, i] * share[:, j])
        (ei, si, ti), (ej, sj, tj) = coarse[i], coarse[j]
        wi, wj = np.diff(ei) / span[i], np.diff(ej) / span[j]
        ni, nj = len(wi), len(wj)
        # A 2-D difference array: +w at two corners of each leaf's block, -w at the other two.
        rows = np.concatenate([si, ti, si, ti])
        cols = np.concatenate([sj, tj, tj, sj])
        signed = np.concatenate([weight, weight, -weight, -weight])
        grid = np.bincount(rows * (nj + 1) + cols, signed, (ni + 1) * (nj + 1)).reshape(ni + 1, nj + 1)
        at_rows, at_cols = _bins(surface_x[i], ei), _bins(surface_x[j], ej)
        bins = None if probe is None else (_bins(probe[:, i], ei), _bins(probe[:, j], ej))
        total, alone, marginal_at, pure = _pair_marginal(grid, ni, nj, wi, wj, at_rows, at_cols, bins)
        if pure is not None:
            fitted += pure
        surfaces[k] = marginal_at + mean
        interactions[k] = marginal_at - on_surface[i][:, None] - on_surface[j][None, :]
        # Both main effects from the same grid: thinned edges then cost the pure interaction nothing.
        pair[k] = total - alone
    return TreeTerms(mean, variance, main, pair, curves, surfaces, interactions, fitted)


@dataclass(frozen=True)
class Fanova:
    """The decomposition of a forest's mean prediction: variances of its terms, and its marginals."""

    lows: np.ndarray
    highs: np.ndarray
    pairs: list[tuple[int, int]]
    variance: float  # of the model's prediction (effects fit first, forest's mean): what the shares divide
    main: np.ndarray  # (D,) shares V_i / V
    pair: np.ndarray  # (P,) shares (V_ij - V_i - V_j) / V
    higher_order: float  # the share left to triples and beyond
    curve_x: list[np.ndarray]
    curves: np.ndarray  # (D, G) marginal at the curve grid
    surface_x: list[np.ndarray]
    surfaces: np.ndarray  # (P, S, S) pair marginals
    interactions: np.ndarray  # (P, S, S) pair marginals less both main effects
    trees: int
    leaf: int  # the forest's min_samples_leaf

    @property
    def shares(self) -> np.ndarray:
        """(K,) main shares, pair shares, higher order: the terms of every table, in this order."""
        return np.concatenate([self.main, self.pair, [self.higher_order]])


def _effect_boxes(effect: Effect, lows: np.ndarray, highs: np.ndarray) -> tuple[LeafBoxes, np.ndarray]:
    """An effect fit before the forest as boxes: one per cell (a bin or a choice, or a grid of them),
    the cell in its dimensions by the whole space elsewhere."""
    grids = np.meshgrid(*(np.arange(len(e) - 1) for e in effect.edges), indexing="ij")  # the cells, flattened as values
    k = effect.values.size
    low, high = np.tile(lows, (k, 1)), np.tile(highs, (k, 1))
    for d, edges, at in zip(effect.dims, effect.edges, grids):
        at = at.reshape(-1)
        low[:, d], high[:, d] = np.maximum(edges[:-1][at], lows[d]), np.minimum(edges[1:][at], highs[d])
    value = effect.values.reshape(-1)
    return LeafBoxes(value, low, high), value


PROBES = 2**14  # quasi-random points for the higher-order rest (the only term not computed exactly)


def decompose_forest(
    forest: RandomForestRegressor,
    *,
    lows: np.ndarray,
    highs: np.ndarray,
    pairs: list[tuple[int, int]] | None = None,
    curve_points: int = 100,
    surface_points: int = 25,
    codes: dict[int, np.ndarray] | None = None,
    effects: Sequence[Effect] = (),
    probes: int = PROBES,
    pair_bins: int = PAIR_BINS,
    first: int | None = None,
) -> Fanova:
    """The forest's mean prediction decomposed; pairs default to all pairs.

    Main effects and pairs are exact: every tree's leaves are laid on one grid cut at all their
    edges (pairs thinned to PAIR_BINS a side). The mean function's total variance is that of its
    main effects and pairs plus the higher-order rest, which is the mean square of what they leave
    of the forest's prediction at PROBES scrambled Sobol points (orthogonal to them, so the
    quadrature's error touches the rest alone: a few thousandths of the variance).

    Shares of the mean, not means of per-tree shares: each tree also fits the noise of the trials
    it drew, and a per-tree variance counts it as signal (0.48 for a share of 0.73 at noise half the
    signal's variance); averaging the trees cancels most of it.

    codes: for a categorical dimension fit on recoded choices, the code of each choice; curves and
    surfaces are then given at the choices' own positions. effects: those fit before the forest (which
    then fit what they leave), one-way or of pairs and triples, per (coded) choice, bin or cell (forest.fit_effects):
    the function decomposed is those effects plus the forest's mean prediction. first: only the forest's first
    trees (a smaller forest of the same kind, as the refits grow).
    """
    lows, highs = np.asarray(lows, float), np.asarray(highs, float)
    pairs = list(combinations(range(len(lows)), 2)) if pairs is None else pairs
    curve_x = [np.linspace(lo, hi, curve_points) for lo, hi in zip(lows, highs)]
    surface_x = [np.linspace(lo, hi, surface_points) for lo, hi in zip(lows, highs)]
    inner = dict(codes or {})

    def coded(points: list[np.ndarray]) -> list[np.ndarray]:
        return [
            inner[d][np.clip(np.rint(p), 0, len(inner[d]) - 1).astype(int)].astype(float) if d in inner else p
            for d, p in enumerate(points)
        ]

    offset, unit = getattr(forest, "odyssey_units_", (0.0, 1.0))
    trees = forest.estimators_[:first]
    span = highs - lows
    parts, means = [], []
    for est in trees:
        boxes = leaf_boxes(est.tree_, lows=lows, highs=highs)
        volume = ((boxes.high - boxes.low) / span).prod(axis=1)
        value = offset + unit * boxes.value
        means.append(float(volume @ value))
        parts.append((boxes, value - means[-1]))
    mean = float(np.mean(means))
    parts = [(boxes, value / len(trees)) for boxes, value in parts] + [
        _effect_boxes(effect, lows, highs) for effect in effects
    ]
    every = LeafBoxes(
        np.concatenate([v for _, v in parts]),
        np.concatenate([b.low for b, _ in parts]),
        np.concatenate([b.high for b, _ in parts]),
    )
    probe = lows + span * qmc.Sobol(len(lows), scramble=True, seed=0).random(probes)
    # BLAS threads cost far more than they save on these matrix-vector products (10x slower on 2 cores).
    with threadpool_limits(1, user_api="blas"):
        terms = _decompose(
            every,
            every.value,
            mean,
            math.nan,
            lows=lows,
            highs=highs,
            pairs=pairs,
            curve_x=coded(curve_x),
            surface_x=coded(surface_x),
            probe=probe,
            pair_bins=pair_bins,
        )
    rest = float(np.mean((predict(forest, probe, first=first, effects=effects) - terms.probe) ** 2))
    variance = float(terms.main.sum() + terms.pair.sum() + rest)
    # A constant forest has no variance to share out: its shares are undefined, not zero. The
    # floor only catches rounding.
    scale = variance if variance > 1e-20 * (1.0 + mean**2) else math.nan
    return Fanova(
        lows=lows,
        highs=highs,
        pairs=pairs,
        variance=variance,
        main=terms.main / scale,
        pair=terms.pair / scale,
        higher_order=rest / scale,
        curve_x=curve_x,
        curves=terms.curves,
        surface_x=surface_x,
        surfaces=terms.surfaces,
        interactions=terms.interactions,
        trees=len(trees),
        leaf=int(forest.min_samples_leaf),
    )
