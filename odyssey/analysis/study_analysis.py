"""Everything a report shows, computed from a study's trials: counts, variant tests, importance, claims,
learning curves and importance across budgets."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ..record import STUDY_SPEC
from .by_budget import BudgetAnalysis, analyse_budgets
from .claims import check_claims, summary
from .curves import curve_quartiles, pairs_at_common_level
from .importance import Importance, analyse_spaces, choose_scales
from .importance_tables import curves_table, terms_table
from .trials import Trials
from .uncertainty import REFITS
from .variant_stats import best_trials, variant_order, variant_tests

# Complete trials reached the full budget; pruned ones were stopped early by the study's pruner ([pruning]).
STATES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running", "WAITING": "waiting"}


@dataclass(frozen=True)
class TaskAnalysis:
    task: str
    metric: str
    tests: pd.DataFrame
    spaces: list[tuple[str, Importance | str]]  # all trials first, then each conditional sub-space: result or why none
    times: Importance | str  # training seconds vs the parameters (all trials): marginal curves only
    budgets: BudgetAnalysis | None = None  # importance at each budget; None: no learning curves

    @property
    def importance(self) -> Importance | str:
        """The analysis of all trials (what the claims are checked on)."""
        return self.spaces[0][1] if self.spaces else "no parameters"


@dataclass(frozen=True)
class StudyAnalysis:
    trials: Trials
    cells: pd.DataFrame
    best: pd.DataFrame
    tests: pd.DataFrame
    tasks: list[TaskAnalysis]
    claims: pd.DataFrame
    summary: tuple[str, ...] = ()  # the report's opening sentences, in plain words (claims.summary)
    margins: float | dict[str, float] | None = None  # the equivalence margins the study stated (None: the default)
    curves: pd.DataFrame | None = None  # the learning curves' quartiles per task, variant and epoch (curve_quartiles)


def cell_counts(frame: pd.DataFrame) -> pd.DataFrame:
    """Trials per (task, variant) by state; failed trials are diverged runs (retried crashes are not counted)."""
    columns = ["task", "variant", *STATES.values()]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    counts = frame.groupby(["task", "variant"])["state"].value_counts().unstack(fill_value=0)
    counts = counts.reindex(columns=list(STATES), fill_value=0).rename(columns=STATES).reset_index()
    order = {v: i for i, v in enumerate(variant_order(counts["variant"]))}
    return counts.sort_values(["task", "variant"], key=lambda s: s.map(order) if s.name == "variant" else s)[
        columns
    ].reset_index(drop=True)


def _times(rows: pd.DataFrame, scales) -> Importance | str:
    if not rows["seconds"].notna().any():
        return "no trial recorded its training time"
    first = analyse_spaces(rows, scales=scales, target="seconds", pairs=False, refits=0)[0][1]
    return first


def analyse_study(
    trials: Trials,
    *,
    trees: int = 32,
    seed: int = 0,
    margins: float | dict[str, float] | None = None,
    refits: int = REFITS,
) -> StudyAnalysis:
    """Importance pools every variant of a task, as the paper does: the space, not one architecture.

    margins: the study's equivalence margin(s) ([analysis] equivalence_margin); None: the default.
    """
    complete = trials.complete()
    tests = study_tests(trials, margins=margins)
    scales = choose_scales(trials)
    tasks = [
        TaskAnalysis(
            task=task,
            metric=trials.metrics.get(task, "value"),
            tests=tests[tests["task"] == task].reset_index(drop=True),
            spaces=analyse_spaces(rows, scales=scales, trees=trees, seed=seed, refits=refits),
            times=_times(rows, scales),
            budgets=analyse_budgets(trials, task=task, trees=trees, seed=seed, refits=refits),
        )
        for task, rows in complete.groupby("task", sort=True)
    ]
    terms = {t.task: t.importance if isinstance(t.importance, str) else terms_table(t.importance) for t in tasks}
    curves = {t.task: curves_table(t.importance) for t in tasks if not isinstance(t.importance, str)}
    claims = check_claims(tests, terms, curves)
    return StudyAnalysis(
        trials,
        cell_counts(trials.frame),
        best_trials(complete, pruned=pruned_counts(trials)),
        tests,
        tasks,
        claims,
        tuple(summary(tests, claims, trials.metrics)),
        margins,
        curve_quartiles(trials),
    )


def pruned_counts(trials: Trials) -> dict[tuple[str, str], int]:
    """Per (task, variant), the trials the study's pruner stopped (none: an empty mapping)."""
    stopped = trials.frame[trials.frame["state"] == "PRUNED"]
    return {key: int(n) for key, n in stopped.groupby(["task", "variant"]).size().items()}


def study_tests(trials: Trials, *, margins: float | dict[str, float] | None = None) -> pd.DataFrame:
    """The variants against vanilla as the report tests them (variant_stats.variant_tests): pruned
    trials count in their cells' sizes, and a paired task with pruned trials compares each slot's
    trials at the budget level both reached (curves.pairs_at_common_level)."""
    paired = paired_study(trials)
    return variant_tests(
        trials.complete(),
        margins=margins,
        paired=paired,
        pruned=pruned_counts(trials),
        level_pairs=pairs_at_common_level(trials) if paired else None,
    )


def paired_study(trials: Trials) -> bool:
    """Every cell was drawn with `sampler = "paired"`: slot k holds the same configuration in every variant."""
    samplers = {
        attrs[STUDY_SPEC].get("sampler")
        for attrs in trials.study_attrs.values()
        if isinstance(attrs.get(STUDY_SPEC), dict)
    }
    return samplers == {"paired"}
