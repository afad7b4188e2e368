"""Learning curves: the full budget a study trains to, each trial's value at a budget level, and the
quartiles of each cell's curves by epoch (the report's figure of them).

A trial's value at a budget level b is the best value it reported up to step b, in the study's direction:
what its objective would have been had its training stopped at b and kept its best epoch, which is
how odyssey's objective is defined (the validation metric at the best epoch). At the full budget it
is the objective of a complete trial; for a curve that only improves it is the value at step b.
A trial reached b when it reported step b or later, or when it is complete: a complete trial that
stopped before b (patience, max_seconds) finished on its own terms, and its value there is its best.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..record import STUDY_SPEC
from .trials import Trials
from .variant_stats import VANILLA, variant_order

FINISHED = ("COMPLETE", "PRUNED")  # trials whose curves are final: complete ones and those a pruner stopped
KEYS = ["study", "number"]  # a trial: its Optuna study (a cell) and its number there
QUARTILES = ((0.25, "q25"), (0.5, "median"), (0.75, "q75"))


def full_budget(trials: Trials, task: str) -> int | None:
    """The step a trial of `task` trains to when nothing stops it: the study file's
    training.max_epochs for odyssey's studies, else the largest step any of its trials reported;
    None when they reported none."""
    studies = set(trials.frame.loc[trials.frame["task"] == task, "study"])
    stated = [
        spec["training"]["max_epochs"]
        for name in studies
        if isinstance(spec := trials.study_attrs.get(name, {}).get(STUDY_SPEC), dict)
        and isinstance(spec.get("training"), dict)
        and isinstance(spec["training"].get("max_epochs"), int)
    ]
    if stated:
        return max(stated)
    steps = trials.curves.loc[trials.curves["study"].isin(studies), "step"]
    return int(steps.max()) if len(steps) else None


def finished_curves(trials: Trials, task: str) -> pd.DataFrame:
    """The curves of the task's finished trials (complete or pruned), each row with its trial's state."""
    frame = trials.frame
    finished = frame.loc[(frame["task"] == task) & frame["state"].isin(FINISHED), [*KEYS, "state"]]
    return trials.curves.merge(finished, on=KEYS)


def values_at(trials: Trials, task: str, budgets: list[int]) -> dict[int, pd.DataFrame]:
    """Per budget, the task's trials that reached it (a copy of their rows of `trials.frame`), with
    'value' their best value up to that step (see the module's docstring)."""
    curves = finished_curves(trials, task)
    per_trial = curves.groupby(KEYS)
    last, complete = per_trial["step"].max(), per_trial["state"].first() == "COMPLETE"
    rows = trials.frame.set_index(KEYS)
    found = {}
    for budget in budgets:
        before = curves[curves["step"] <= budget].groupby(KEYS)["value"]
        best = before.max() if trials.maximize else before.min()
        reached = best.index[((last >= budget) | complete).reindex(best.index).to_numpy()]
        found[budget] = rows.loc[reached].assign(value=best[reached]).reset_index()
    return found


def curve_quartiles(trials: Trials) -> pd.DataFrame:
    """Per task, variant and step: how many finished trials reported a finite value there, and the
    quartiles of those values (each curve as reported, not its best so far)."""
    columns = ["task", "variant", "step", "trials", "q25", "median", "q75"]
    frame = trials.frame[trials.frame["state"].isin(FINISHED)]
    curves = trials.curves.merge(frame[[*KEYS, "task", "variant"]], on=KEYS)
    curves = curves[np.isfinite(curves["value"].to_numpy(float))]
    if curves.empty:
        return pd.DataFrame(columns=columns)
    grouped = curves.groupby(["task", "variant", "step"])["value"]
    table = pd.concat(
        [grouped.size().rename("trials"), *(grouped.quantile(q).rename(n) for q, n in QUARTILES)], axis=1
    ).reset_index()
    order = {v: i for i, v in enumerate(variant_order(table["variant"].unique()))}
    table = table.sort_values(["task", "variant", "step"], key=lambda s: s.map(order) if s.name == "variant" else s)
    return table[columns].reset_index(drop=True)


def pairs_at_common_level(trials: Trials) -> pd.DataFrame:
    """In each task with pruned trials: every slot's trial of each variant beside vanilla's trial of the
    same slot, both valued at the budget level both reached (the earlier of the two trials' last steps, a
    complete trial's being the full budget), each by its best value up to there (the module's
    docstring). Columns task, variant, slot, level, value, vanilla; no rows where no task has pruned
    trials or trials carry no slots.

    A paired study compares a variant with vanilla on the same configurations; a pruner stops the
    bad ones early, and the slots both cells completed are the good region only. At a common budget
    level every slot that both cells finished is compared, like with like, as the pruner compared them."""
    columns = ["task", "variant", "slot", "level", "value", "vanilla"]
    frame = trials.frame
    finished = frame[frame["state"].isin(FINISHED) & frame["slot"].notna()]
    finished = finished.sort_values("state").drop_duplicates(["task", "variant", "slot"])  # COMPLETE before PRUNED
    curves = trials.curves.merge(finished[[*KEYS, "task", "variant", "slot", "state"]], on=KEYS)
    curves = curves[np.isfinite(curves["value"].to_numpy(float))].sort_values([*KEYS, "step"])
    rows = []
    for task, mine in curves.groupby("task", sort=True):
        if not (mine["state"] == "PRUNED").any():
            continue
        full = full_budget(trials, task)
        values = mine.groupby(KEYS)["value"]
        best = values.cummax() if trials.maximize else values.cummin()
        by_trial = {
            (variant, int(slot)): (part["step"].to_numpy(int), best[part.index].to_numpy(float), part["state"].iloc[0])
            for (variant, slot), part in mine.groupby(["variant", "slot"])
        }
        for (variant, slot), (steps, values, state) in sorted(by_trial.items()):
            vanilla = by_trial.get((VANILLA, slot))
            if variant == VANILLA or vanilla is None:
                continue
            level = min(_reached(steps, state, full), _reached(vanilla[0], vanilla[2], full))
            rows.append((task, variant, slot, level, _best_at(steps, values, level), _best_at(*vanilla[:2], level)))
    return pd.DataFrame(rows, columns=columns).dropna(subset=["value", "vanilla"]).reset_index(drop=True)


def _reached(steps: np.ndarray, state: str, full: int | None) -> int:
    """The budget level a trial reached: its last step, the full budget for a complete one (module docstring)."""
    return max(full or 0, int(steps[-1])) if state == "COMPLETE" else int(steps[-1])


def _best_at(steps: np.ndarray, best: np.ndarray, level: int) -> float:
    """The best value so far at budget level `level`, from a trial's steps and running best (NaN: none by then)."""
    last = np.searchsorted(steps, level, side="right") - 1
    return float(best[last]) if last >= 0 else math.nan
