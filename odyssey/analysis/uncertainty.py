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

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from .fanova import Fanova
from .forest import THREADS

LEVEL = 0.90  # two-sided interval
Z_FLOOR = Z_INTERVAL = 1.6449  # the floor: a share that noise alone exceeds 5% of the time (normal quantile)
# What is left of a bias that falls as 1/sqrt(n), per unit of its move from n/2 to n trials.
EXTRAPOLATE = 1.0 / (2**0.5 - 1.0)
REFITS = 12  # halves of the trials behind every interval, and refits behind each floor

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
            "widened by 1.645 spreads; noise floor: the share a term reaches (95th percentile) where it is truly "
            f"zero, from {self.nulls} refits on sign-flipped out-of-bag residuals (main effects) and {self.nulls} on "
            "the forest's main effects plus such residuals (pairs, higher order); a share is distinguishable from "
            "zero when it is 1.645 spreads above its floor"
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
) -> Uncertainty:
    """`point` is the analysis being reported, `like_refits` the same forest decomposed as `fit`
    decomposes (the move is measured from it; default `point`), `fit` runs it again on other trials or targets,
    `residuals` are the objective less its out-of-bag prediction, `additive` the forest's main
    effects summed at each trial."""
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
    return Uncertainty(
        replicates=replicates,
        nulls=nulls,
        low=np.clip(np.minimum(share, heading) - Z_INTERVAL * spread, 0.0, 1.0),
        high=np.clip(np.maximum(share, heading) + Z_INTERVAL * spread, 0.0, 1.0),
        std=spread,
        floor=floor,
        moved=moved,
        above_noise=share - Z_INTERVAL * spread,
        curve_std=np.std([a.curves for a in again], axis=0, ddof=1),
        surface_std=np.std([a.surfaces for a in again], axis=0, ddof=1),
        interaction_std=np.std([a.interactions for a in again], axis=0, ddof=1),
        halves=halved,
    )
