"""The hyperparameter search space: ranges, drawing values, and what a trial's values mean.

Drawing is separate from Optuna: a random-search trial's values depend only on the study's seed,
its cell and its slot, so they are the same whichever worker runs it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ParamRange:
    low: float
    high: float
    log: bool = False
    integer: bool = False

    def draw(self, rng: np.random.Generator) -> float | int:
        if self.log:
            value = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        else:
            value = rng.uniform(self.low, self.high)
        return min(max(round(value), int(self.low)), int(self.high)) if self.integer else value


# The paper's distributions. Momentum is searched as 1 - momentum, log-uniform in [0.01, 1], so that
# Optuna stores it on the log scale the analysis uses.
PAPER_SPACE: dict[str, ParamRange] = {
    "learning_rate": ParamRange(1e-6, 1e-2, log=True),
    "hidden_size": ParamRange(20, 200, log=True, integer=True),
    "one_minus_momentum": ParamRange(0.01, 1.0, log=True),
    "input_noise": ParamRange(0.0, 1.0),
}


def draw(space: dict[str, ParamRange], rng: np.random.Generator) -> dict[str, float | int]:
    return {name: spec.draw(rng) for name, spec in space.items()}


def distributions(space: dict[str, ParamRange]) -> dict:
    """The Optuna distributions of a space (imported here so the rest stays Optuna-free)."""
    from optuna.distributions import FloatDistribution, IntDistribution

    return {
        name: IntDistribution(int(s.low), int(s.high), log=s.log) if s.integer else FloatDistribution(s.low, s.high, log=s.log)
        for name, s in space.items()
    }
