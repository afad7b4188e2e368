"""Synthetic odyssey studies with known effects, written the way `odyssey run` writes real ones.

For tests, the fANOVA benchmark and trying a report without training anything: the metric is a
known function of the hyperparameters and the variant, plus noise; with `epochs`, each trial also
reports a learning curve that falls to it, and with a `pruner` Optuna's pruner stops some of them.
"""

from __future__ import annotations

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from ..record import (
    BEST_VALIDATION,
    EPOCHS,
    FAILURE,
    METRIC,
    PRUNED,
    SECONDS,
    SLOT,
    STUDY,
    STUDY_HASH,
    STUDY_SPEC,
    TASK,
    TEST_METRIC,
    VARIANT,
    cell_name,
    result_attrs,
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


def learning_curve(final: float, params: dict[str, float], *, epochs: int) -> list[float]:
    """Each epoch's validation metric, falling in a straight line to `final` at the last epoch; a
    smaller learning rate starts further above it (by 0.05 at 1e-2, 0.25 at 1e-6), so the learning
    rate matters more early than late."""
    gap = 0.05 * (1.0 - np.log10(params["learning_rate"]) - 2.0)
    return [final + gap * (epochs - e) / max(epochs - 1, 1) for e in range(1, epochs + 1)]


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
    epochs: int = 0,
    pruner: optuna.pruners.BasePruner | None = None,
) -> None:
    """One Optuna study per (task, variant) named "{name}/{task}/{variant}", with the attributes odyssey sets.

    conditional: also an `optimizer` choice (sgd costs 0.05 more) and a `momentum` that only sgd
    trials have (0.1 per unit): a parent and a conditional parameter.
    offsets: each variant's offset of the metric (default PAPER_OFFSETS; all 0 for a null study).
    paired: `sampler = "paired"`: slot k of every variant of a task draws the same parameters.
    epochs: each finished trial reports a learning curve of this many epochs (`learning_curve`),
    as odyssey's workers do (step = epoch); 0: none, as studies written before curves existed.
    pruner: Optuna's pruner, asked after every epoch but the last, as the workers ask it (needs
    `epochs`); a trial it stops is stored PRUNED with the attributes a pruned odyssey trial has.
    """
    if pruner is not None and not epochs:
        raise ValueError("a pruner needs learning curves: give epochs")
    offsets = PAPER_OFFSETS if offsets is None else offsets
    rng = np.random.default_rng(seed)
    for task in tasks:
        for variant in variants:
            cell = optuna.create_study(
                storage=storage,
                study_name=cell_name(name, task, variant),
                direction="minimize",
                pruner=pruner or optuna.pruners.NopPruner(),  # Optuna's default would prune: a MedianPruner
            )
            spec = {
                "name": name,
                "tasks": list(tasks),
                "variants": list(variants),
                "trials": trials,
                "sampler": "paired" if paired else "random",
                "seed": seed,
                "description": "synthetic: a known function of the hyperparameters plus noise",
                "training": {"batch_size": 16, "max_epochs": epochs or 10, "patience": 3},
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
            } | ({"pruning": {"pruner": type(pruner).__name__}} if pruner is not None else {})
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
                if slot < trials and epochs:
                    test = value + rng.normal(0, noise)
                    _train(
                        cell,
                        params,
                        distributions,
                        attrs | {SECONDS: params["hidden_size"] * 0.5},
                        slot,
                        value,
                        test,
                        epochs,
                    )
                    continue
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


def _train(
    cell: optuna.Study,
    params: dict,
    distributions: dict,
    attrs: dict,
    slot: int,
    value: float,
    test: float,
    epochs: int,
) -> None:
    """One trial through Optuna's own loop, as a worker runs it: queued with its parameters, taken,
    its curve reported epoch by epoch with the cell's pruner asked after each but the last, then told."""
    cell.add_trial(
        optuna.trial.create_trial(
            state=TrialState.WAITING,
            params=params,
            distributions=distributions,
            user_attrs=attrs,
            system_attrs={SLOT: slot},
        )
    )
    trial = cell.ask()  # takes the waiting trial just queued: the only one
    for epoch, metric in enumerate(learning_curve(value, params, epochs=epochs), start=1):
        trial.report(metric, epoch)
        if epoch < epochs and trial.should_prune():
            break
    pruned = epoch < epochs
    # The curve falls: the best epoch is the last one trained, its test metric the final one's plus what it had left.
    done = result_attrs(
        test_metric=test + metric - value,
        epochs=epoch,
        best_epoch=epoch,
        seconds=attrs[SECONDS] * epoch / epochs,
        stopped=PRUNED if pruned else "max_epochs",
        resumed_from=0,
    )
    for key, item in (done | ({BEST_VALIDATION: metric} if pruned else {})).items():
        trial.set_user_attr(key, item)
    if pruned:
        cell.tell(trial, state=TrialState.PRUNED)
    else:
        cell.tell(trial, value)


def _draw(distribution, rng: np.random.Generator) -> float:
    low, high = distribution.low, distribution.high
    value = float(np.exp(rng.uniform(np.log(low), np.log(high)))) if distribution.log else float(rng.uniform(low, high))
    return round(value) if isinstance(distribution, IntDistribution) else value
