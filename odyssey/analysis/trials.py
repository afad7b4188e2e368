"""Optuna storages into one pandas table of trials, with the search space on its analysis scales
and every trial's learning curve (its intermediate values by step)."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import optuna
import pandas as pd
from optuna.storages import BaseStorage
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from ..errors import OdysseyError
from ..optuna_private import rdb_backend, study_id_of
from ..record import METRIC, NUMBERS, STUDY, TASK, VARIANT, read_record, slot_trials
from ..storage import mask_url, open_storage
from .rdb import read_curves, read_trials
from .scales import Scale, scale_of

PARAM_PREFIX = "params_"  # as Optuna's own trials_dataframe names parameter columns
ATTRS = dict.fromkeys(NUMBERS, float)  # the stored results read as numbers (record.TrialRecord's)


class TooFewTrials(OdysseyError):
    """A statistic refused for lack of trials; the message says how many it needs and how many there are."""


def no_curves() -> pd.DataFrame:
    """The curves of trials that reported none: Trials.curves' columns, no rows."""
    return pd.DataFrame(
        {"study": pd.Series(dtype=object), "number": pd.Series(dtype=int), "step": pd.Series(dtype=int)}
    ).assign(value=pd.Series(dtype=float))


@dataclass(frozen=True)
class Trials:
    """One row per trial: cell, state, validation value, test metric, cost, raw parameter values."""

    name: str
    frame: pd.DataFrame
    scales: dict[str, Scale]
    metrics: dict[str, str]  # task -> metric name ("value" when a study does not say)
    study_attrs: dict[str, dict] = field(default_factory=dict)  # Optuna study name -> its user attributes
    # Every value a trial reported (`trial.report(value, step)`): a row per (study, number, step, value).
    # odyssey's workers report each epoch's validation metric at step = epoch (from 1).
    curves: pd.DataFrame = field(default_factory=no_curves)
    maximize: bool = False  # the objective is maximised (plain Optuna studies may be): the best value is the largest

    def complete(self) -> pd.DataFrame:
        """Finished trials with a validation value: what every statistic is computed on."""
        done = self.frame[(self.frame["state"] == "COMPLETE") & self.frame["value"].notna()]
        return done.reset_index(drop=True)


def open_existing(storage: str | BaseStorage) -> BaseStorage:
    """A storage URL that must already exist (or an open storage); ValueError (one line) when it does
    not or cannot be reached."""
    if isinstance(storage, str):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats: we only read
            opened = open_storage(storage, must_exist=True)
    else:
        opened = storage
    # get_all_studies reads the studies table only (study summaries would load every trial).
    if not opened.get_all_studies():
        raise OdysseyError(f"{mask_url(storage) if isinstance(storage, str) else 'the storage'}: holds no studies")
    return opened


def odyssey_names(storage) -> list[str]:
    return sorted({s.user_attrs[STUDY] for s in storage.get_all_studies() if STUDY in s.user_attrs})


def resolve_name(storage, name: str | None) -> str:
    """The given name if the storage has it, else the only odyssey study; a one-line error otherwise."""
    names = odyssey_names(storage)
    if name in names or (name is None and len(names) == 1):
        return name or names[0]
    if not names:
        raise OdysseyError("the storage holds no odyssey study (for plain Optuna studies, use `odyssey importance`)")
    held = f"it holds: {', '.join(names)}"
    if name is None:
        raise OdysseyError(f"the storage holds several odyssey studies; pick one with --name ({held})")
    raise OdysseyError(f"no odyssey study named {name!r} in this storage; {held}")


def _cell(summary: optuna.study.FrozenStudy) -> tuple[str, str]:
    """(task, variant) from the study's attributes, else from its name "{name}/{task}/{variant}"."""
    parts = summary.study_name.split("/")
    return summary.user_attrs.get(TASK, parts[-2] if len(parts) > 2 else "?"), summary.user_attrs.get(
        VARIANT, parts[-1]
    )


def _row(trial: FrozenTrial, *, study: str, task: str, variant: str, objective: int = 0) -> dict[str, object]:
    record = read_record(trial, study=study, task=task, variant=variant, objective=objective)
    return {
        "study": record.study,
        "task": record.task,
        "variant": record.variant,
        "number": record.number,
        # The planned slot a trial fills (record.SLOT): with `sampler = "paired"` slot k of every
        # variant of a task trains the same configuration. Trials not queued by odyssey have none.
        "slot": math.nan if record.slot is None else record.slot,
        "state": record.state,
        "value": record.value,
        "failure": record.failure,
        "versions": ", ".join(f"{k} {v}" for k, v in sorted(record.versions.items())),
        **{key: getattr(record, key) for key in ATTRS},
        **{PARAM_PREFIX + k: v for k, v in record.params.items()},
    }


def _merge_scales(distributions) -> dict[str, Scale]:
    """One scale per parameter from (param, distribution) pairs; cells with different ranges widen
    it, a different kind is an error."""
    scales: dict[str, Scale] = {}
    for param, distribution in distributions:
        new, old = scale_of(param, distribution), scales.get(param)
        if old is None or old == new:
            scales[param] = new
            continue
        if (old.log, old.choices) != (new.log, new.choices):
            raise OdysseyError(
                f"parameter {param!r} has different distributions in different trials; cannot analyse it on one scale"
            )
        scales[param] = Scale(param, min(old.low, new.low), max(old.high, new.high), old.log, old.choices, single=False)
    return scales


def _trial_distributions(trials: list[FrozenTrial]):
    return ((param, d) for t in trials for param, d in t.distributions.items())


def _curves(trials: list[FrozenTrial], study: str) -> list[tuple[str, int, int, float]]:
    return [(study, t.number, step, float(v)) for t in trials for step, v in t.intermediate_values.items()]


def _curve_frame(rows: list[tuple[str, int, int, float]]) -> pd.DataFrame:
    if not rows:  # most studies before [pruning] existed: nothing to sort
        return no_curves()
    frame = pd.DataFrame(rows, columns=no_curves().columns)
    return frame.sort_values(["study", "number", "step"], ignore_index=True)


def _frame(rows: list[dict[str, object]]) -> pd.DataFrame:
    columns = ["study", "task", "variant", "number", "slot", "state", "value", "failure", "versions", *ATTRS]
    return pd.DataFrame(rows, columns=columns + sorted({k for r in rows for k in r if k.startswith(PARAM_PREFIX)}))


def load_odyssey_trials(storage, name: str) -> Trials:
    """Every cell of the odyssey study `name`; retried and surplus trials left out (they hold no slot)."""
    summaries = [s for s in storage.get_all_studies() if s.user_attrs.get(STUDY) == name]
    rows, kept, metrics, curves = [], [], {}, []
    for summary in sorted(summaries, key=lambda s: s.study_name):
        trials = slot_trials(
            optuna.load_study(study_name=summary.study_name, storage=storage).get_trials(deepcopy=False)
        )
        task, variant = _cell(summary)
        rows += [_row(t, study=summary.study_name, task=task, variant=variant) for t in trials]
        curves += _curves(trials, summary.study_name)
        kept += trials
        metric = summary.user_attrs.get(METRIC) or next(
            (t.user_attrs[METRIC] for t in trials if METRIC in t.user_attrs), None
        )
        metrics[task] = metrics.get(task) or metric  # a cell with no trials yet does not know it
    metrics = {task: metric or "value" for task, metric in metrics.items()}
    return Trials(
        name,
        _frame(rows),
        _merge_scales(_trial_distributions(kept)),
        metrics,
        {s.study_name: s.user_attrs for s in summaries},
        _curve_frame(curves),
    )


def load_optuna_trials(storage, study: str, *, objective: int | None = None, curves: bool = True) -> Trials:
    """Any Optuna study, odyssey's or not: one cell, task and variant named after the study.

    objective: which objective of a multi-objective study (required there). On an RDB storage
    the trials are read with one query (see rdb.py), otherwise through Optuna. curves: read the
    learning curves too (on an RDB storage a second query; importance at the full budget needs none).
    """
    studies = {s.study_name: s for s in storage.get_all_studies()}
    if study not in studies:
        raise OdysseyError(f"no study named {study!r} in this storage; it holds: {', '.join(sorted(studies))}")
    frozen = studies[study]
    count = len(frozen.directions)
    if objective is None and count > 1:
        raise OdysseyError(f"study {study!r} has {count} objectives; pick one with --objective (0 to {count - 1})")
    objective = objective or 0
    if not 0 <= objective < count:
        raise OdysseyError(f"--objective {objective}: study {study!r} has {count} objective(s), numbered from 0")
    attrs = {"study": study, "task": study, "variant": "", "slot": math.nan, "failure": "", "versions": ""} | {
        key: math.nan for key in ATTRS
    }
    backend = rdb_backend(storage)
    if backend is not None:
        read, distributions = read_trials(backend, study_id_of(frozen), objective=objective, prefix=PARAM_PREFIX)
        frame = read.assign(**attrs)
        scales = _merge_scales((p, d) for p, ds in distributions.items() for d in ds)
        frame = frame[_frame([]).columns.tolist() + sorted(c for c in frame.columns if c.startswith(PARAM_PREFIX))]
        curve = read_curves(backend, study_id_of(frozen)).assign(study=study) if curves else no_curves()
        curve = curve[no_curves().columns] if len(curve) else no_curves()
    else:
        trials = storage.get_all_trials(study_id_of(frozen), deepcopy=False)
        rows = [_row(t, study=study, task=study, variant="", objective=objective) for t in trials]
        frame, scales = _frame(rows), _merge_scales(_trial_distributions(trials))
        curve = _curve_frame(_curves(trials, study) if curves else [])
    return Trials(
        study,
        frame,
        scales,
        {study: frozen.user_attrs.get(METRIC, "value")},
        {study: frozen.user_attrs},
        curve,
        maximize=frozen.directions[objective] == StudyDirection.MAXIMIZE,
    )


def study_trials(study: optuna.Study, *, target=None) -> Trials:
    """An Optuna `Study` in memory, as Optuna's importance evaluators see it: `target(trial)` (a
    FrozenTrial -> float) is the value, else the objective of a single-objective study. Without
    the learning curves: the evaluators, like Optuna's, judge complete trials by their objective."""
    if target is None and len(study.directions) > 1:
        raise OdysseyError(
            f"study {study.study_name!r} has {len(study.directions)} objectives: give a target, "
            "e.g. target=lambda t: t.values[0]"
        )
    trials = study.get_trials(deepcopy=False)
    rows = [_row(t, study=study.study_name, task=study.study_name, variant="") for t in trials]
    if target is not None:
        for row, trial in zip(rows, trials):
            row["value"] = float(target(trial)) if trial.state == TrialState.COMPLETE else math.nan
    return Trials(
        study.study_name,
        _frame(rows),
        _merge_scales(_trial_distributions(trials)),
        {study.study_name: "value"},
        {study.study_name: study.user_attrs},
    )
