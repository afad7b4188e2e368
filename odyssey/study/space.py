"""The search space: ranges and choices, drawing values, and a trial's settings (what each key sets
is TrainingConfig's field metadata, odyssey/training/config.py).

Drawing is separate from Optuna: a random-search trial's values depend only on the study's seed,
its cell and its slot, so they are the same whichever worker runs it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from ..training.config import SPACE_KEYS, TrainingConfig, space_setting


@dataclass(frozen=True)
class ParamRange:
    low: float
    high: float
    log: bool = False
    integer: bool = False
    step: float | None = None  # a grid low, low + step, ..., high (not with log)

    def draw(self, rng: np.random.Generator) -> float | int:
        if self.step is not None:
            value = self.low + self.step * int(rng.integers(0, round((self.high - self.low) / self.step) + 1))
            return int(round(value)) if self.integer else float(value)
        if self.log:
            value = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        else:
            value = rng.uniform(self.low, self.high)
        # Clamped: exp(log(x)) may land a rounding error outside the range, which Optuna refuses (a fixed 0.01 did).
        return (
            min(max(round(value), int(self.low)), int(self.high))
            if self.integer
            else min(max(value, self.low), self.high)
        )

    def distribution(self):
        from optuna.distributions import FloatDistribution, IntDistribution

        if self.integer:
            return IntDistribution(int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
        return FloatDistribution(self.low, self.high, log=self.log, step=self.step)

    def stored(self) -> dict[str, object]:
        data = {"low": self.low, "high": self.high, "log": self.log, "integer": self.integer}
        return data if self.step is None else {**data, "step": self.step}  # specs from before steps keep their digest


@dataclass(frozen=True)
class Choice:
    """A categorical parameter: one of `choices`, each equally likely."""

    choices: tuple

    def draw(self, rng: np.random.Generator):
        return self.choices[int(rng.integers(0, len(self.choices)))]

    def distribution(self):
        from optuna.distributions import CategoricalDistribution

        return CategoricalDistribution(self.choices)

    def stored(self) -> dict[str, object]:
        return {"choices": list(self.choices)}


Param = ParamRange | Choice


# The paper's distributions: searched unless a study file says otherwise.
PAPER_SPACE: dict[str, ParamRange] = {
    "learning_rate": ParamRange(1e-6, 1e-2, log=True),
    "hidden_size": ParamRange(20, 200, log=True, integer=True),
    "one_minus_momentum": ParamRange(0.01, 1.0, log=True),
    "input_noise": ParamRange(0.0, 1.0),
}


def applies(name: str, values: dict) -> bool:
    """Whether `name` is active given the values drawn so far (a condition on an undrawn key holds)."""
    condition = space_setting(name).only_if if name in SPACE_KEYS else None
    return condition is None or condition[0] not in values or values[condition[0]] in condition[1]


def draw(space: dict[str, Param], rng: np.random.Generator) -> dict[str, object]:
    """Every parameter is drawn in order, then the inactive ones are dropped: adding a conditional
    key never changes the values the others get from the same generator."""
    values = {name: param.draw(rng) for name, param in space.items()}
    return {name: value for name, value in values.items() if applies(name, values)}


def distributions(space: dict[str, Param]) -> dict:
    """The Optuna distributions of a space (imported here so the rest stays Optuna-free)."""
    return {name: param.distribution() for name, param in space.items()}


def suggest(trial, space: dict[str, Param]) -> dict[str, object]:
    """The trial's values: queued ones come back as they were queued, new ones from the sampler.
    Unconditional keys first, so a conditional one is asked only when its condition holds."""
    values: dict[str, object] = {}
    order = sorted(space, key=lambda name: name in SPACE_KEYS and space_setting(name).only_if is not None)
    for name in order:
        if not applies(name, values):
            continue
        param = space[name]
        if isinstance(param, Choice):
            values[name] = trial.suggest_categorical(name, param.choices)
        elif param.integer:
            values[name] = trial.suggest_int(
                name, int(param.low), int(param.high), log=param.log, step=int(param.step or 1)
            )
        else:
            values[name] = trial.suggest_float(name, param.low, param.high, log=param.log, step=param.step)
    return {name: values[name] for name in space if name in values}


def inactive(space: dict[str, Param], values: dict) -> list[str]:
    """The space's keys a trial does not use (their condition does not hold)."""
    return [name for name in space if name not in values]


def trial_settings(training: TrainingConfig, values: dict) -> TrainingConfig:
    """What a trial with these values trains with: the study's [training], overridden by the values
    (a field only [space] sets and the trial does not draw, momentum under Adam, stays at its default)."""
    return replace(
        training, **{space_setting(key).field: space_setting(key).to_field(value) for key, value in values.items()}
    )
