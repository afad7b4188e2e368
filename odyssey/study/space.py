"""The search space: what each key sets, ranges and choices, drawing values, and a trial's settings.

Drawing is separate from Optuna: a random-search trial's values depend only on the study's seed,
its cell and its slot, so they are the same whichever worker runs it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Callable, Union

import numpy as np

from ..training.config import Hyperparameters, TrainingConfig


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
        return min(max(round(value), int(self.low)), int(self.high)) if self.integer else min(max(value, self.low), self.high)

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


Param = Union[ParamRange, Choice]


@dataclass(frozen=True)
class Setting:
    """What a space key sets: a field of TrainingConfig or Hyperparameters, through `to_field`.

    only_if=(key, values): the setting applies only while that other key has one of these values
    (momentum only for SGD); elsewhere it is not drawn, and the trial records it as inactive.
    """

    field: str
    kind: type  # int, float or str: the type of a value in the study file
    to_field: Callable = lambda value: value
    only_if: tuple[str, tuple] | None = None


# The one mapping from space keys to what a trial trains with; its order is the order of drawing.
SETTINGS: dict[str, Setting] = {
    "learning_rate": Setting("learning_rate", float),
    "hidden_size": Setting("hidden_size", int),
    # Searched as 1 - momentum, log-uniform in [0.01, 1], so that Optuna stores it on the log scale the analysis uses.
    "one_minus_momentum": Setting("momentum", float, to_field=lambda value: 1.0 - value, only_if=("optimizer", ("sgd",))),
    "input_noise": Setting("input_noise", float),
    "batch_size": Setting("batch_size", int),
    "num_layers": Setting("num_layers", int),
    "dropout": Setting("dropout", float),
    "forget_bias": Setting("forget_bias", float),
    "optimizer": Setting("optimizer", str),
    "weight_decay": Setting("weight_decay", float),
    "gradient_clip": Setting("gradient_clip", float),
}

# The paper's distributions: searched unless a study file says otherwise.
PAPER_SPACE: dict[str, ParamRange] = {
    "learning_rate": ParamRange(1e-6, 1e-2, log=True),
    "hidden_size": ParamRange(20, 200, log=True, integer=True),
    "one_minus_momentum": ParamRange(0.01, 1.0, log=True),
    "input_noise": ParamRange(0.0, 1.0),
}

_HYPERPARAMETERS = {f.name for f in fields(Hyperparameters)}


def applies(name: str, values: dict) -> bool:
    """Whether `name` is active given the values drawn so far (a condition on an undrawn key holds)."""
    condition = SETTINGS[name].only_if if name in SETTINGS else None
    return condition is None or condition[0] not in values or values[condition[0]] in condition[1]


def draw(space: dict[str, Param], rng: np.random.Generator) -> dict[str, object]:
    """Every parameter is drawn in order, then the inactive ones are dropped: adding a conditional
    key never changes the values the others get from the same generator."""
    values = {name: spec.draw(rng) for name, spec in space.items()}
    return {name: value for name, value in values.items() if applies(name, values)}


def distributions(space: dict[str, Param]) -> dict:
    """The Optuna distributions of a space (imported here so the rest stays Optuna-free)."""
    return {name: spec.distribution() for name, spec in space.items()}


def suggest(trial, space: dict[str, Param]) -> dict[str, object]:
    """The trial's values: queued ones come back as they were queued, new ones from the sampler.
    Unconditional keys first, so a conditional one is asked only when its condition holds."""
    values: dict[str, object] = {}
    order = sorted(space, key=lambda name: name in SETTINGS and SETTINGS[name].only_if is not None)
    for name in order:
        if not applies(name, values):
            continue
        spec = space[name]
        if isinstance(spec, Choice):
            values[name] = trial.suggest_categorical(name, spec.choices)
        elif spec.integer:
            values[name] = trial.suggest_int(name, int(spec.low), int(spec.high), log=spec.log, step=int(spec.step or 1))
        else:
            values[name] = trial.suggest_float(name, spec.low, spec.high, log=spec.log, step=spec.step)
    return {name: values[name] for name in space if name in values}


def inactive(space: dict[str, Param], values: dict) -> list[str]:
    """The space's keys a trial does not use (their condition does not hold)."""
    return [name for name in space if name not in values]


def trial_settings(training: TrainingConfig, values: dict) -> tuple[Hyperparameters, TrainingConfig]:
    """What a trial with these values trains with: the study's [training], overridden by the values."""
    settings = {SETTINGS[name].field: SETTINGS[name].to_field(value) for name, value in values.items()}
    hparams = Hyperparameters(**{"momentum": 0.0, **{k: v for k, v in settings.items() if k in _HYPERPARAMETERS}})
    return hparams, replace(training, **{k: v for k, v in settings.items() if k not in _HYPERPARAMETERS})
