"""How one trial trains: one settings schema, torch-free, so study files load without importing torch.

Each field of TrainingConfig carries in its metadata (a Setting) all a study file needs to know of it:
what a valid value is, its type in the file, whether [training] may fix it, its [space] key and how
a drawn value becomes the field's, and whether a stored spec leaves it out at its default.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import NamedTuple

from ..errors import ConfigError

OPTIMIZERS = ("sgd", "adam")  # built by training/optim.py; "sgd" is the paper's Nesterov momentum


class Setting(NamedTuple):
    """What one field of TrainingConfig is to a study file, and what a valid value of it is."""

    valid: Callable[[object], bool]
    expected: str  # how an error says what `valid` accepts
    kind: type  # int, float or str: the type of a value in the study file
    training: bool  # [training] may fix it
    searched: bool  # [space] may search it
    key: str | None  # its [space] key, the name a trial records: the field's name unless given (None: never searched)
    to_field: Callable  # from a value of the [space] key to the field's
    # (key, values): searched only while that other key has one of these values (momentum only for
    # SGD); elsewhere it is not drawn, and the trial records it as inactive.
    only_if: tuple[str, tuple] | None
    # Added after the first study files: a stored spec leaves it out at its default, so theirs keep their digest.
    later: bool
    field: str = ""  # the field's name (the index below fills it in)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _whole(value) -> bool:
    return _number(value) and value == int(value)


def _same(value):
    return value


def _field(
    default,
    kind: type,
    valid: Callable[[object], bool],
    expected: str,
    *,
    training: bool = True,
    searched: bool = True,
    key: str | None = None,
    to_field: Callable = _same,
    only_if: tuple[str, tuple] | None = None,
    later: bool = False,
):
    """A dataclass field whose metadata is its Setting."""
    return field(
        default=default,
        metadata={"setting": Setting(valid, expected, kind, training, searched, key, to_field, only_if, later)},
    )


_AT_LEAST_ONE = "at least 1 (a whole number)"


@dataclass(frozen=True)
class TrainingConfig:
    """Every setting one trial trains with. The paper's protocol by default: one update per sequence,
    patience 15, at most 150 epochs, one layer, Nesterov SGD, no dropout, no weight decay, no clipping.

    The fields with a [space] key come first, in the order of drawing: random-search values depend
    on that order, so these fields keep their places (tests/study/test_space.py pins it).
    """

    # The paper's four searched values: only [space] sets them (PAPER_SPACE searches them unless a
    # study file fixes them there); their defaults serve a config built by hand.
    learning_rate: float = _field(1e-3, float, lambda v: _number(v) and v >= 0, "a number >= 0", training=False)
    hidden_size: int = _field(100, int, lambda v: _whole(v) and v >= 1, _AT_LEAST_ONE, training=False)
    # Searched as 1 - momentum, log-uniform in [0.01, 1], so that Optuna stores it on the log scale the analysis uses.
    # 0 where the optimizer has none (a trial of Adam never draws it).
    momentum: float = _field(
        0.0,
        float,
        lambda v: _number(v) and 0 <= v < 1,
        "in [0, 1)",
        training=False,
        key="one_minus_momentum",
        to_field=lambda value: 1.0 - value,
        only_if=("optimizer", ("sgd",)),
    )
    input_noise: float = _field(0.0, float, lambda v: _number(v) and v >= 0, "a number >= 0", training=False)
    batch_size: int = _field(1, int, lambda v: _whole(v) and v >= 1, _AT_LEAST_ONE)
    num_layers: int = _field(
        1, int, lambda v: _whole(v) and v >= 1, _AT_LEAST_ONE, later=True
    )  # stacked LSTM layers of the cell's variant
    dropout: float = _field(
        0.0, float, lambda v: _number(v) and 0 <= v < 1, "in [0, 1)", later=True
    )  # between stacked layers and before the output layer
    forget_bias: float = _field(0.0, float, _number, "a finite number")
    optimizer: str = _field(
        "sgd", str, lambda v: v in OPTIMIZERS, f"one of {', '.join(repr(o) for o in OPTIMIZERS)}", later=True
    )
    weight_decay: float = _field(
        0.0, float, lambda v: _number(v) and v >= 0, "a number >= 0", later=True
    )  # an L2 term on every weight, for either optimizer
    # The largest global gradient norm of an update.
    gradient_clip: float | None = _field(
        None,
        float,
        lambda v: v is None or (_number(v) and v > 0),
        "a number > 0 (the largest gradient norm)",
        later=True,
    )
    # The protocol: fixed by [training], never searched.
    max_epochs: int = _field(150, int, lambda v: _whole(v) and v >= 1, _AT_LEAST_ONE, searched=False)
    patience: int = _field(15, int, lambda v: _whole(v) and v >= 1, _AT_LEAST_ONE, searched=False)
    eval_batch_size: int = _field(64, int, lambda v: _whole(v) and v >= 1, _AT_LEAST_ONE, searched=False)
    # Per trial; stops after the epoch that passes it.
    max_seconds: float | None = _field(
        None, float, lambda v: v is None or (_number(v) and v > 0), "positive", searched=False
    )
    # A training loss this many times the first epoch's counts as diverged.
    divergence_factor: float = _field(1e3, float, lambda v: _number(v) and v > 0, "a number > 0", searched=False)

    def __post_init__(self) -> None:
        for f in fields(self):
            value, meta = getattr(self, f.name), f.metadata["setting"]
            if not meta.valid(value):
                raise ConfigError(f"'{f.name}' must be {meta.expected}, got {value!r}")


def _named(f) -> Setting:
    """A field's Setting with its name, and its [space] key where it has one."""
    s = f.metadata["setting"]
    return s._replace(field=f.name, key=(s.key or f.name) if s.searched else None)


_SETTINGS: dict[str, Setting] = {f.name: _named(f) for f in fields(TrainingConfig)}
_BY_KEY: dict[str, Setting] = {s.key: s for s in _SETTINGS.values() if s.searched}

# The [space] keys in the order of drawing, and the fields [training] may fix.
SPACE_KEYS: tuple[str, ...] = tuple(_BY_KEY)
TRAINING_KEYS: tuple[str, ...] = tuple(name for name, s in _SETTINGS.items() if s.training)


def setting(name: str) -> Setting:
    """The Setting of the field `name`."""
    return _SETTINGS[name]


def space_setting(key: str) -> Setting:
    """The Setting of the field that the [space] key `key` sets."""
    return _BY_KEY[key]


def stored_training(config: TrainingConfig) -> dict[str, object]:
    """The [training] of a stored spec: the fields [training] may fix, a later one only where it is not
    at its default (the searched ones are the space's, stored there)."""
    values = {name: getattr(config, name) for name in TRAINING_KEYS}
    return {
        name: value
        for name, value in values.items()
        if not (_SETTINGS[name].later and value == getattr(TrainingConfig, name))
    }
