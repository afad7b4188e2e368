"""Optuna storages into one pandas table of trials, with the search space on its analysis scales."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import optuna
import pandas as pd
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from ..errors import OdysseyError
from ..study.queue import slot_trials
from ..study.storage import mask_url, open_storage, study_names
from .scales import Scale, scale_of

PARAM_PREFIX = "params_"  # as Optuna's own trials_dataframe names parameter columns
ATTRS = {"test_metric": float, "seconds": float, "epochs": float, "parameter_count": float}


class TooFewTrials(OdysseyError):
    """A statistic refused for lack of trials; the message says how many it needs and how many there are."""


@dataclass(frozen=True)
class Trials:
    """One row per trial: cell, state, validation value, test metric, cost, raw parameter values."""

    name: str
    frame: pd.DataFrame
    scales: dict[str, Scale]
    metrics: dict[str, str]  # task -> metric name ("value" when a study does not say)

    def complete(self) -> pd.DataFrame:
        """Finished trials with a validation value: what every statistic is computed on."""
        done = self.frame[(self.frame["state"] == "COMPLETE") & self.frame["value"].notna()]
        return done.reset_index(drop=True)


def open_existing(storage: str | BaseStorage) -> BaseStorage:
    """A storage URL that must already exist (or an open storage); ValueError (one line) when it does not or cannot be reached."""
    if isinstance(storage, str):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats: we only read
            opened = open_storage(storage, must_exist=True)
    else:
        opened = storage
    if not study_names(opened):
        raise OdysseyError(f"{mask_url(storage) if isinstance(storage, str) else 'the storage'}: holds no studies")
    return opened


def odyssey_names(storage) -> list[str]:
    summaries = optuna.get_all_study_summaries(storage, include_best_trial=False)
    return sorted({s.user_attrs["odyssey_study"] for s in summaries if "odyssey_study" in s.user_attrs})


def resolve_name(storage, name: str | None) -> str:
    """The given name if the storage has it, else the only odyssey study; a one-line error otherwise."""
    names = odyssey_names(storage)
    if name in names or (name is None and len(names) == 1):
        return name or names[0]
    held = f"it holds: {', '.join(names)}" if names else "it holds no odyssey studies (plain Optuna studies: use `odyssey importance`)"
    if name is None:
        raise OdysseyError(f"the storage holds several odyssey studies; pick one with --name ({held})")
    raise OdysseyError(f"no odyssey study named {name!r} in this storage; {held}")


def _cell(summary: optuna.study.StudySummary) -> tuple[str, str]:
    """(task, variant) from the study's attributes, else from its name "{name}/{task}/{variant}"."""
    parts = summary.study_name.split("/")
    return summary.user_attrs.get("task", parts[-2] if len(parts) > 2 else "?"), summary.user_attrs.get("variant", parts[-1])


def _row(trial: FrozenTrial, *, study: str, task: str, variant: str) -> dict[str, object]:
    attrs = trial.user_attrs
    row: dict[str, object] = {
        "study": study,
        "task": task,
        "variant": variant,
        "number": trial.number,
        "state": trial.state.name,
        "value": trial.value if trial.state == TrialState.COMPLETE else math.nan,
        "failure": attrs.get("failure", ""),
    }
    for key, kind in ATTRS.items():
        value = attrs.get(key)
        row[key] = kind(value) if isinstance(value, (int, float)) else math.nan
    row.update({PARAM_PREFIX + k: v for k, v in trial.params.items()})
    return row


def _merge_scales(trials: list[FrozenTrial]) -> dict[str, Scale]:
    """One scale per parameter; cells with different ranges widen it, a different kind is an error."""
    scales: dict[str, Scale] = {}
    for trial in trials:
        for param, distribution in trial.distributions.items():
            new, old = scale_of(param, distribution), scales.get(param)
            if old is not None and (old.log, old.choices) != (new.log, new.choices):
                raise OdysseyError(f"parameter {param!r} has different distributions in different trials; cannot analyse it on one scale")
            scales[param] = new if old is None else Scale(param, min(old.low, new.low), max(old.high, new.high), old.log, old.choices)
    return scales


def _frame(rows: list[dict[str, object]]) -> pd.DataFrame:
    columns = ["study", "task", "variant", "number", "state", "value", "failure", *ATTRS]
    return pd.DataFrame(rows, columns=columns + sorted({k for r in rows for k in r if k.startswith(PARAM_PREFIX)}))


def load_odyssey_trials(storage, name: str) -> Trials:
    """Every cell of the odyssey study `name`; retried and surplus trials left out (they hold no slot)."""
    summaries = [s for s in optuna.get_all_study_summaries(storage, include_best_trial=False) if s.user_attrs.get("odyssey_study") == name]
    rows, kept, metrics = [], [], {}
    for summary in sorted(summaries, key=lambda s: s.study_name):
        trials = slot_trials(optuna.load_study(study_name=summary.study_name, storage=storage).get_trials(deepcopy=False))
        task, variant = _cell(summary)
        rows += [_row(t, study=summary.study_name, task=task, variant=variant) for t in trials]
        kept += trials
        metric = summary.user_attrs.get("metric") or next((t.user_attrs["metric"] for t in trials if "metric" in t.user_attrs), None)
        metrics[task] = metrics.get(task) or metric or "value"
    return Trials(name, _frame(rows), _merge_scales(kept), metrics)


def load_optuna_trials(storage, study: str) -> Trials:
    """Any Optuna study, odyssey's or not: one cell, task and variant named after the study."""
    known = study_names(storage)
    if study not in known:
        raise OdysseyError(f"no study named {study!r} in this storage; it holds: {', '.join(sorted(known))}")
    loaded = optuna.load_study(study_name=study, storage=storage)
    if len(loaded.directions) != 1:
        raise OdysseyError(f"study {study!r} has {len(loaded.directions)} objectives; importance needs a single one")
    trials = loaded.get_trials(deepcopy=False)
    rows = [_row(t, study=study, task=study, variant="") for t in trials]
    return Trials(study, _frame(rows), _merge_scales(trials), {study: loaded.user_attrs.get("metric", "value")})
