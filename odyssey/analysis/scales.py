"""Analysis scales of hyperparameters: log10 for log-sampled ones, with bounds from the distribution.

The bounds must come from the search space, not from the data: fANOVA averages over the whole
space a trial could have been drawn from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from ..errors import OdysseyError

# The paper's parameters in the paper's order (most important first); others follow alphabetically.
PAPER_PARAMS = ("learning_rate", "hidden_size", "input_noise", "one_minus_momentum")


def param_order(params) -> list[str]:
    present = set(params)
    return [p for p in PAPER_PARAMS if p in present] + sorted(present - set(PAPER_PARAMS))


@dataclass(frozen=True)
class Scale:
    """One hyperparameter on the scale it is analysed on."""

    param: str
    low: float
    high: float
    log: bool = False
    choices: tuple | None = None  # categorical: analysed as the index of the choice
    single: bool = False  # the distribution allows one value only: nothing to analyse

    @property
    def label(self) -> str:
        return f"log10({self.param})" if self.log else self.param

    @property
    def kind(self) -> str:
        """How the parameter is analysed, in words: for every table that lists it."""
        if self.choices is not None:
            return f"categorical ({len(self.choices)} choices)"
        return "log10 scale" if self.log else "linear scale"

    def transform(self, values) -> np.ndarray:
        """Raw trial values to the analysis scale."""
        if self.choices is not None:
            index = {choice: i for i, choice in enumerate(self.choices)}
            return np.array([index[v] for v in values], dtype=float)
        raw = np.asarray(values, dtype=float)
        return np.log10(raw) if self.log else raw

    def inverse(self, values) -> np.ndarray:
        """Analysis scale back to raw values (for axis labels people recognise)."""
        values = np.asarray(values, dtype=float)
        return 10.0**values if self.log else values


def scale_of(param: str, distribution: BaseDistribution) -> Scale:
    single = distribution.single()
    if isinstance(distribution, CategoricalDistribution):
        # Every choice gets a cell of width 1, so a uniform measure weighs the choices equally.
        return Scale(param, -0.5, len(distribution.choices) - 0.5, choices=tuple(distribution.choices), single=single)
    if isinstance(distribution, (FloatDistribution, IntDistribution)):
        if distribution.log:
            return Scale(param, math.log10(distribution.low), math.log10(distribution.high), log=True, single=single)
        if distribution.step is not None:
            # Integers 1..3 own [0.5, 3.5], and a float with step 0.25 on [0, 1] owns [-0.125, 1.125]:
            # equal widths, so each value weighs the same (the end values are drawn as often as the rest).
            half = distribution.step / 2
            return Scale(param, distribution.low - half, distribution.high + half, single=single)
        return Scale(param, distribution.low, distribution.high, single=single)
    raise OdysseyError(f"parameter {param!r}: cannot analyse a {type(distribution).__name__}")
