"""Synthetic odyssey studies with known effects, written the way `odyssey run` writes real ones.

For tests, the fANOVA benchmark and trying a report without training anything: the metric is a
known function of the hyperparameters and the variant, plus noise.
"""

from __future__ import annotations

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from ..record import (
    EPOCHS,
    FAILURE,
    METRIC,
    SECONDS,
    SLOT,
    STUDY,
    STUDY_HASH,
    STUDY_SPEC,
    TASK,
    TEST_METRIC,
    VARIANT,
    cell_name,
    start_attrs,
)

PAPER_DISTRIBUTIONS = {
    "learning_rate": FloatDistribution(1e-6, 1e-2, log=True),
    "hidden_size": IntDistribution(20, 200, log=True),
    "one_minus_momentum": FloatDistribution(0.01, 1.0, log=True),
    "input_noise": FloatDistribution(0.0, 1.0),
}
OPTIMIZER, MOMENTUM = CategoricalDistribution(("sgd", "adam")), FloatDistribution(0.0, 0.99)
# Offsets of the test metric against vanilla, shaped like the paper's findings.
PAPER_OFFSETS = {
    "V": 0.0,
    "NIG": 0.02,
    "NFG": 0.12,
    "NOG": 0.02,
    "NIAF": 0.02,
    "NOAF": 0.10,
    "NP": 0.0,
    "CIFG": 0.0,
    "FGR": 0.01,
}


def paper_like_metric(params: dict[str, float], variant: str, offsets: dict[str, float] = PAPER_OFFSETS) -> float:
    """Learning rate dominates (a valley at 1e-3), bigger is better with diminishing returns, noise hurts a little."""
    lr = np.log10(params["learning_rate"]) + 3.0
    hidden = np.log10(params["hidden_size"] / 20.0)
    return float(
        0.3
        + 0.08 * lr**2
        - 0.08 * hidden
        + 0.03 * params["input_noise"]
        + 0.01 * lr * hidden
        + offsets.get(variant, 0.0)
    )


def write_synthetic_study(
    storage,
    *,
    name: str = "synthetic",
    tasks: tuple[str, ...] = ("toy",),
    variants: tuple[str, ...] = tuple(PAPER_OFFSETS),
    trials: int = 40,
    noise: float = 0.01,
    failed: int = 1,
    running: int = 1,
    metric: str = "error",
    seed: int = 0,
    conditional: bool = False,
    offsets: dict[str, float] | None = None,
    paired: bool = False,
) -> None:
    """One Optuna study per (task, variant) named "{name}/{task}/{variant}", with the attributes odyssey sets.

    conditional: also an `optimizer` choice (sgd costs 0.05 more) and a `momentum` that only sgd
    trials have (0.1 per unit): a parent and a conditional parameter.
    offsets: each variant's offset of the metric (default PAPER_OFFSETS; all 0 for a null study).
    paired: `sampler = "paired"`: slot k of every variant of a task draws the same parameters.
    """
    offsets = PAPER_OFFSETS if offsets is None else offsets
    rng = np.random.default_rng(seed)
    for task in tasks:
        for variant in variants:
            cell = optuna.create_study(storage=storage, study_name=cell_name(name, task, variant), direction="minimize")
            spec = {
                "name": name,
                "tasks": list(tasks),
                "variants": list(variants),
                "trials": trials,
                "sampler": "paired" if paired else "random",
                "seed": seed,
                "description": "synthetic: a known function of the hyperparameters plus noise",
                "training": {"batch_size": 16, "max_epochs": 10, "patience": 3},
                "space": {
                    k: {"low": d.low, "high": d.high, "log": d.log, "integer": isinstance(d, IntDistribution)}
                    for k, d in PAPER_DISTRIBUTIONS.items()
                }
                | (
                    {
                        "optimizer": {"choices": list(OPTIMIZER.choices)},
                        "momentum": {"low": 0.0, "high": 0.99, "when": "optimizer = sgd"},
                    }
                    if conditional
                    else {}
                ),
                "task_options": {},
            }
            for key, value in {
                STUDY: name,
                TASK: task,
                VARIANT: variant,
                METRIC: metric,
                STUDY_HASH: "synthetic",
                STUDY_SPEC: spec,
            }.items():
                cell.set_user_attr(key, value)
            for slot in range(trials + failed + running):
                source = np.random.default_rng([seed, tasks.index(task), slot]) if paired else rng
                params = {k: d.to_external_repr(_draw(d, source)) for k, d in PAPER_DISTRIBUTIONS.items()}
                value = paper_like_metric(params, variant, offsets) + rng.normal(0, noise)
                distributions = dict(PAPER_DISTRIBUTIONS)
                if conditional:
                    params["optimizer"], distributions["optimizer"] = OPTIMIZER.choices[rng.integers(2)], OPTIMIZER
                    if params["optimizer"] == "sgd":
                        params["momentum"], distributions["momentum"] = float(rng.uniform(0.0, 0.99)), MOMENTUM
                        value += 0.05 + 0.1 * params["momentum"]
                versions = {"odyssey": "synthetic", "optuna": optuna.__version__}
                attrs = start_attrs(
                    task=task,
                    variant=variant,
                    metric=metric,
                    parameter_count=4000 + 100 * len(variant),
                    versions=versions,
                    inactive=[],
                )
                if slot < trials:
                    state, done = (
                        TrialState.COMPLETE,
                        {TEST_METRIC: value + rng.normal(0, noise), EPOCHS: 10, SECONDS: params["hidden_size"] * 0.5},
                    )
                else:
                    state, done = (
                        (TrialState.FAIL, {FAILURE: "diverged"}) if slot < trials + failed else (TrialState.RUNNING, {})
                    )
                cell.add_trial(
                    optuna.trial.create_trial(
                        state=state,
                        value=value if state == TrialState.COMPLETE else None,
                        params=params,
                        distributions=distributions,
                        user_attrs=attrs | done,
                        system_attrs={SLOT: slot},
                    )
                )


def _draw(distribution, rng: np.random.Generator) -> float:
    low, high = distribution.low, distribution.high
    value = float(np.exp(rng.uniform(np.log(low), np.log(high)))) if distribution.log else float(rng.uniform(low, high))
    return round(value) if isinstance(distribution, IntDistribution) else value
