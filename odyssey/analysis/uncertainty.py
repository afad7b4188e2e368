"""How far a share can be trusted: a bootstrap interval over trials, and a noise floor.

Interval: the whole analysis (leaf size as chosen, forest, decomposition) is run again on
REFITS resamples of the trials, drawn with replacement. A forest's shares are biased (trees
blur sharp effects, and what noise they still fit lands in interactions), and the bias is most of
the error: intervals from the spread over one forest's trees held the true share for 44% of terms
on analytic studies. So the interval is the basic bootstrap one, [2s - q95, 2s - q05] around the
share s: the resamples' offset from s estimates the bias, and the interval moves against it.
`benchmarks/importance_accuracy.py` measures how often it holds the truth.

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
from zero when the low end of its interval clears its floor.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from .fanova import THREADS, Fanova

LEVEL = 0.90  # two-sided interval
Z_FLOOR = Z_INTERVAL = 1.6449  # the floor: a share that noise alone exceeds 5% of the time (normal quantile)
REFITS = 12  # resamples of the trials behind every interval, and refits behind each floor

Fit = Callable[[np.ndarray, np.ndarray, int, bool], Fanova]  # (x, y, seed, with pairs) -> decomposition


@dataclass(frozen=True)
class Uncertainty:
    replicates: int  # bootstrap resamples of the trials behind the interval
    nulls: int  # refits per null behind the floor
    low: np.ndarray  # (K,) interval ends per term: main..., pair..., higher order
    high: np.ndarray
    std: np.ndarray  # (K,) the shares' spread over the resamples
    floor: np.ndarray  # (K,) the share noise reaches with 5% chance
    bias: np.ndarray  # (K,) how far the resamples' shares lie from the reported ones, on average
    above_noise: np.ndarray  # (K,) the share less 1.645 of its spread: the low end without the bias allowance
    curve_std: np.ndarray  # (D, G) the marginal curves' spread over the resamples
    surface_std: np.ndarray  # (P, S, S) the pair marginals' spread
    interaction_std: np.ndarray  # (P, S, S) the pure interactions' spread

    @property
    def distinguishable(self) -> np.ndarray:
        return np.asarray(self.above_noise > self.floor)

    def describe(self) -> str:
        return (
            f"{LEVEL:.0%} intervals from {self.replicates} analyses of resampled trials, corrected for the bias the resamples show "
            f"(basic bootstrap); noise floor: the share a term reaches (95th percentile) where it is truly zero, from {self.nulls} refits "
            f"on sign-flipped out-of-bag residuals (main effects) and {self.nulls} on the forest's main effects plus such residuals "
            "(pairs, higher order); a share is distinguishable from zero when its interval's low end is above its floor"
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
    fitted: np.ndarray | None = None,
    replicates: int = REFITS,
    nulls: int = REFITS,
    seed: int = 0,
) -> Uncertainty:
    """`point` is the analysis being reported, `like_refits` the same forest decomposed as `fit`
    decomposes (the bias is measured against it; default `point`), `fit` runs it again on other targets,
    `residuals` are the objective less its out-of-bag prediction, `additive` the forest's main
    effects summed at each trial."""
    if replicates < 2 or nulls < 2:
        raise ValueError(f"need at least 2 resamples and 2 null refits for a spread, got {replicates} and {nulls}")
    rng = np.random.default_rng(seed)
    n, share = len(y), np.nan_to_num(point.shares)
    resampled = []
    fitted = np.asarray(fitted if fitted is not None else y - residuals, float)
    signs = rng.choice([-1.0, 1.0], size=(replicates + 2 * nulls, n))  # drawn up front: the same whatever runs them
    jobs = [(x, fitted + signs[r] * residuals, seed + 1 + r, True) for r in range(replicates)]
    mains = len(point.main)
    nulls_at = []
    for family, (base, pairs) in enumerate(((0.0, False), (additive, True))):
        nulls_at.append(len(jobs))
        jobs += [(x, base + signs[replicates + family * nulls + k] * residuals, seed + 1001 + 100 * family + k, pairs) for k in range(nulls)]
    with ThreadPoolExecutor(max_workers=THREADS) as pool:  # sklearn's trees and numpy's sums release the GIL
        done = list(pool.map(lambda job: fit(*job), jobs))
    again = done[:replicates]
    resampled = np.array([np.nan_to_num(a.shares) for a in again])
    reference = share if like_refits is None else np.nan_to_num(like_refits.shares)
    bias, spread = resampled.mean(axis=0) - reference, resampled.std(axis=0, ddof=1)
    centre = share - bias
    low, high = centre - Z_INTERVAL * spread - np.abs(bias), centre + Z_INTERVAL * spread + np.abs(bias)
    above_noise = share - Z_INTERVAL * spread

    floor = np.empty(len(share))
    for start, terms in zip(nulls_at, (slice(0, mains), slice(mains, None))):
        null = np.array([variances(f) for f in done[start : start + nulls]])
        floor[terms] = ((null.mean(axis=0) + Z_FLOOR * null.std(axis=0, ddof=1)) / point.variance)[terms]
    return Uncertainty(
        replicates=replicates,
        nulls=nulls,
        low=np.clip(low, 0.0, 1.0),
        high=np.clip(high, 0.0, 1.0),
        std=spread,
        floor=floor,
        bias=bias,
        above_noise=above_noise,
        curve_std=np.std([a.curves for a in again], axis=0, ddof=1),
        surface_std=np.std([a.surfaces for a in again], axis=0, ddof=1),
        interaction_std=np.std([a.interactions for a in again], axis=0, ddof=1),
    )
