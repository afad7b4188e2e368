"""Everything a report shows, computed from a study's trials: counts, variant tests, importance, claims."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from .claims import check_claims
from .importance import Importance, analyse, choose_scales, terms_table
from .trials import Trials, TooFewTrials
from .variant_stats import best_trials, variant_order, variant_tests

STATES = {"COMPLETE": "complete", "FAIL": "failed", "RUNNING": "running", "WAITING": "waiting"}


@dataclass(frozen=True)
class TaskAnalysis:
    task: str
    metric: str
    tests: pd.DataFrame
    importance: Importance | str  # the result, or why there is none
    times: Importance | str  # training seconds vs the parameters: marginal curves only


@dataclass(frozen=True)
class StudyAnalysis:
    trials: Trials
    cells: pd.DataFrame
    best: pd.DataFrame
    tests: pd.DataFrame
    tasks: list[TaskAnalysis]
    claims: pd.DataFrame


def cell_counts(frame: pd.DataFrame) -> pd.DataFrame:
    """Trials per (task, variant) by state; failed trials are diverged runs (retried crashes are not counted)."""
    columns = ["task", "variant", *STATES.values()]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    counts = frame.groupby(["task", "variant"])["state"].value_counts().unstack(fill_value=0)
    counts = counts.reindex(columns=list(STATES), fill_value=0).rename(columns=STATES).reset_index()
    order = {v: i for i, v in enumerate(variant_order(counts["variant"]))}
    return counts.sort_values(["task", "variant"], key=lambda s: s.map(order) if s.name == "variant" else s)[columns].reset_index(drop=True)


def _try(compute) -> Importance | str:
    try:
        return compute()
    except TooFewTrials as refusal:
        return str(refusal)


def analyse_study(trials: Trials, *, trees: int = 32, seed: int = 0) -> StudyAnalysis:
    """Importance pools every variant of a task, as the paper does: the space, not one architecture."""
    complete = trials.complete()
    tests = variant_tests(complete)
    scales = choose_scales(trials)
    tasks = [
        TaskAnalysis(
            task=task,
            metric=trials.metrics.get(task, "value"),
            tests=tests[tests["task"] == task].reset_index(drop=True),
            importance=_try(lambda: analyse(rows, scales=scales, trees=trees, seed=seed)),
            times=_try(lambda: analyse(rows, scales=scales, target="seconds", pairs=False, trees=trees, seed=seed)),
        )
        for task, rows in complete.groupby("task", sort=True)
    ]
    terms = {t.task: t.importance if isinstance(t.importance, str) else terms_table(t.importance) for t in tasks}
    return StudyAnalysis(trials, cell_counts(trials.frame), best_trials(complete), tests, tasks, check_claims(tests, terms))
