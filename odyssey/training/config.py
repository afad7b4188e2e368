"""How one trial trains: torch-free, so study files load without importing torch."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Callable, NamedTuple

from ..errors import ConfigError

OPTIMIZERS = ("sgd", "adam")  # built by training/optim.py; "sgd" is the paper's Nesterov momentum


class Rule(NamedTuple):
    """What a valid value of one field is, and how an error says so."""

    valid: Callable[[object], bool]
    expected: str


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _whole(value) -> bool:
    return _number(value) and value == int(value)


# One rule per field, shared by TrainingConfig, Hyperparameters and the study file's [training] and [space].
RULES: dict[str, Rule] = {
    "batch_size": Rule(lambda v: _whole(v) and v >= 1, "at least 1 (a whole number)"),
    "max_epochs": Rule(lambda v: _whole(v) and v >= 1, "at least 1 (a whole number)"),
    "patience": Rule(lambda v: _whole(v) and v >= 1, "at least 1 (a whole number)"),
    "eval_batch_size": Rule(lambda v: _whole(v) and v >= 1, "at least 1 (a whole number)"),
    "max_seconds": Rule(lambda v: v is None or (_number(v) and v > 0), "positive"),
    "forget_bias": Rule(_number, "a finite number"),
    "divergence_factor": Rule(lambda v: _number(v) and v > 0, "a number > 0"),
    "optimizer": Rule(lambda v: v in OPTIMIZERS, f"one of {', '.join(repr(o) for o in OPTIMIZERS)}"),
    "weight_decay": Rule(lambda v: _number(v) and v >= 0, "a number >= 0"),
    "gradient_clip": Rule(lambda v: v is None or (_number(v) and v > 0), "a number > 0 (the largest gradient norm)"),
    "num_layers": Rule(lambda v: _whole(v) and v >= 1, "at least 1 (a whole number)"),
    "dropout": Rule(lambda v: _number(v) and 0 <= v < 1, "in [0, 1)"),
    "learning_rate": Rule(lambda v: _number(v) and v >= 0, "a number >= 0"),
    "hidden_size": Rule(lambda v: _whole(v) and v >= 1, "at least 1 (a whole number)"),
    "momentum": Rule(lambda v: _number(v) and 0 <= v < 1, "in [0, 1)"),
    "input_noise": Rule(lambda v: _number(v) and v >= 0, "a number >= 0"),
}


def _check(instance) -> None:
    for f in fields(instance):
        value = getattr(instance, f.name)
        if not RULES[f.name].valid(value):
            raise ConfigError(f"'{f.name}' must be {RULES[f.name].expected}, got {value!r}")


@dataclass(frozen=True)
class TrainingConfig:
    """The paper's protocol by default: one update per sequence, patience 15, at most 150 epochs,
    one layer, Nesterov SGD, no dropout, no weight decay, no clipping."""

    batch_size: int = 1
    max_epochs: int = 150
    patience: int = 15
    eval_batch_size: int = 64
    max_seconds: float | None = None  # per trial; stops after the epoch that passes it
    forget_bias: float = 0.0
    divergence_factor: float = 1e3  # a training loss this many times the first epoch's counts as diverged
    optimizer: str = "sgd"
    weight_decay: float = 0.0  # an L2 term on every weight, for either optimizer
    gradient_clip: float | None = None  # the largest global gradient norm of an update
    num_layers: int = 1  # stacked LSTM layers of the cell's variant
    dropout: float = 0.0  # between stacked layers and before the output layer

    def __post_init__(self) -> None:
        _check(self)


# Fields that study files written before they existed lack: left out of a stored spec at their defaults.
LATER_FIELDS = ("optimizer", "weight_decay", "gradient_clip", "num_layers", "dropout")


@dataclass(frozen=True)
class Hyperparameters:
    """What one trial trains with: the paper's four searched values (momentum 0 where the optimizer has none)."""

    learning_rate: float
    hidden_size: int
    momentum: float
    input_noise: float

    def __post_init__(self) -> None:
        _check(self)
