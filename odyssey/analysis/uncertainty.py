"""How far a forest's variance shares can be trusted: a bootstrap interval and a noise floor.

Interval: every tree of the forest is fit to its own bootstrap resample of the trials, so the
spread of the trees' shares is a bootstrap distribution; its 5th to 95th percentiles are the 90%
interval. It describes one tree's estimate, so for the forest's mean it is conservative (wider
than needed), never optimistic, and costs no refit. (Refitting small forests on resampled trials
instead, with the few refits a report can afford, gave overconfident intervals: on 101 trials the
part of their spread due to the data, estimated from 4 refits with 3 degrees of freedom, came out
as zero, and an additive function's spurious 0.09 interaction got an interval of +-0.007.)

Noise floor: the share a term gets from data where it is truly zero, by refitting on permuted
objectives. The noise is each trial's residual against the forest's out-of-bag prediction (from
the trees that did not see it); shuffled across trials it has no relation to any parameter.
- Main effects: refit on the shuffled noise alone; what a parameter gets there, noise gave it.
- Pairs and the higher-order rest: refit on an additive objective (the forest's own main effects,
  no interactions at all) plus the shuffled noise. Trees cut an additive function into boxes and
  so report some interaction where there is none (0.09 for lr x momentum on 101 trials of
  |log10 lr + 3| + 2 momentum); this null reproduces that as well as the noise.
Variances from the refits, divided by the reported forest's variance, are shares. (Shuffling the
objective itself treats the signal as noise too: on 5400 trials whose learning rate explains 97%
it put every pair's floor at 0.05-0.10, far above what such data resolve.) A term is
distinguishable from zero when the low end of its interval clears its floor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .fanova import Fanova

LEVEL = 0.90  # two-sided interval: 5th to 95th percentile
Z_FLOOR = 1.6449  # the floor: a share that noise alone exceeds 5% of the time (normal quantile)
PERMUTATIONS, REFIT_TREES = 4, 4  # few, for speed: said in every output


@dataclass(frozen=True)
class Uncertainty:
    trees: int  # bootstrap resamples behind the interval: the forest's trees
    permutations: int  # refits per null
    refit_trees: int
    low: np.ndarray  # (K,) interval ends per term: main..., pair..., higher order
    high: np.ndarray
    floor: np.ndarray  # (K,) the share noise reaches with 5% chance

    @property
    def distinguishable(self) -> np.ndarray:
        return np.asarray(self.low > self.floor)

    def describe(self) -> str:
        return (
            f"{LEVEL:.0%} intervals over the forest's {self.trees} trees, each fit to a bootstrap resample of the trials "
            f"(conservative for their mean); noise floor: the share a term reaches (95th percentile) where it is truly zero, "
            f"from {self.permutations} refits on shuffled out-of-bag residuals (main effects) and {self.permutations} on the "
            f"forest's additive part plus shuffled residuals (pairs, higher order), {self.refit_trees} trees each; "
            "a share is distinguishable from zero when its interval's low end is above its floor"
        )


def term_shares(fanova: Fanova) -> np.ndarray:
    """(T, K) per tree: main shares, pair shares, higher order."""
    return np.column_stack([fanova.main, fanova.pair, fanova.higher_order])


def term_variances(fanova: Fanova) -> np.ndarray:
    """(T, K) the same as variances (zero for a tree with none, where shares are undefined)."""
    return np.nan_to_num(term_shares(fanova)) * fanova.variance[:, None]


def _null_floor(variances: list[np.ndarray], *, trees: int, target_trees: int) -> np.ndarray:
    """The 95th percentile of a `target_trees`-tree forest's mean under the null, from forests of
    `trees` trees: their spread less what their few trees add, plus what the target's trees add."""
    means = np.array([v.mean(axis=0) for v in variances])
    within = np.array([v.var(axis=0, ddof=1) for v in variances]).mean(axis=0) if trees > 1 else np.zeros(means.shape[1])
    data = np.maximum(means.var(axis=0, ddof=1) - within / trees, 0.0)
    return means.mean(axis=0) + Z_FLOOR * np.sqrt(data + within / target_trees)


def estimate(
    fit: Callable[[np.ndarray, np.ndarray, int, int, bool], Fanova],
    x: np.ndarray,
    main: Fanova,
    *,
    residuals: np.ndarray,
    additive: np.ndarray,
    permutations: int = PERMUTATIONS,
    trees: int = REFIT_TREES,
    seed: int = 0,
) -> Uncertainty:
    """fit(x, y, trees, seed, pairs) -> Fanova refits the model (pairs=False: main effects only); `main` is the forest being reported,
    `residuals` the objective less its out-of-bag prediction, `additive` the forest's main
    effects summed at each trial."""
    if permutations < 2:
        raise ValueError(f"need at least 2 permutations for a spread, got {permutations}")
    rng = np.random.default_rng(seed)
    shares = term_shares(main)
    low, high = np.nanpercentile(shares, [50 - 50 * LEVEL, 50 + 50 * LEVEL], axis=0)
    mains, target_trees, scale = main.main.shape[1], shares.shape[0], float(np.mean(main.variance))
    floor = np.empty(shares.shape[1])
    # The main-effect null needs no pairs, which are most of a decomposition's cost.
    for family, (base, terms, pairs) in enumerate(((0.0, slice(0, mains), False), (additive, slice(mains, None), True))):
        null = [term_variances(fit(x, base + rng.permutation(residuals), trees, seed + 1001 + 100 * family + p, pairs)) for p in range(permutations)]
        floor[terms] = (_null_floor(null, trees=trees, target_trees=target_trees) / scale)[terms]
    return Uncertainty(trees=target_trees, permutations=permutations, refit_trees=trees, low=np.clip(low, 0.0, 1.0), high=np.clip(high, 0.0, 1.0), floor=floor)
