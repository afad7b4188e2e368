"""The optimizer of a trial, by name (TrainingConfig.optimizer): a plain dict of builders."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from .config import TrainingConfig


def _sgd(params: Iterable, config: TrainingConfig) -> torch.optim.Optimizer:
    # The paper's: Nesterov momentum (plain SGD at momentum 0, where torch refuses Nesterov).
    momentum = config.momentum
    return torch.optim.SGD(
        params, lr=config.learning_rate, momentum=momentum, nesterov=momentum > 0, weight_decay=config.weight_decay
    )


def _adam(params: Iterable, config: TrainingConfig) -> torch.optim.Optimizer:
    # weight_decay is the same L2 term as SGD's (torch's Adam), so one setting means one thing.
    return torch.optim.Adam(params, lr=config.learning_rate, weight_decay=config.weight_decay)


# Its keys are config.OPTIMIZERS, which study files are checked against without importing torch.
BUILDERS: dict[str, Callable[..., torch.optim.Optimizer]] = {"sgd": _sgd, "adam": _adam}


def build_optimizer(model: torch.nn.Module, config: TrainingConfig) -> torch.optim.Optimizer:
    return BUILDERS[config.optimizer](model.parameters(), config)
