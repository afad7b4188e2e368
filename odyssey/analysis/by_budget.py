"""Importance across budgets: the hyperparameters' importance at each budget level (an epoch) from
every trial that reached it, and how far each level agrees with the full budget.

At each budget level the trials that reached it (complete or pruned) are analysed as `analyse` does
the complete ones, by their value at that budget (curves.py). Two agreements with the full budget:
- the trials' rank correlation: Spearman's, between their values at the level and at the full
  budget, over the trials that reached both, with a bootstrap interval: how well the level ranks
  the configurations the full budget ranks (what successive halving relies on);
- the importance ranking's correlation: Spearman's, between the main-effect shares at the level and
  at the full budget, over the parameters distinguishable from zero at either (at least the full
  budget's two largest: the order of parameters that matter at neither is noise), with an interval
  from the two analyses' halves (uncertainty.py), recentred on their shares.

"The ranking no longer changes from level b" means: no two budget levels from b on, the full budget
included, rank two parameters clearly the other way round, where "clearly" is a 90% interval of the
difference of their shares (from the halves' spread) that excludes zero, at both budgets. A rank
correlation below 1 alone does not decide it: two parameters of nearly equal shares swap places from
one analysis to the next where nothing changed, and with several such the correlation's interval
stops reaching 1 at every budget; a reversal needs evidence at both budgets. Every pair of budgets
counts, not only each against the full one: the full budget of a pruned study has the fewest trials
and may order nothing clearly, while two earlier budgets still show the ranking turning over.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from ..errors import OdysseyError
from ..record import STUDY_SPEC
from .curves import KEYS, finished_curves, full_budget, values_at
from .importance import MIN_TRIALS, SCALE_NOTE, Importance, analyse, choose_scales
from .importance_tables import strict_json, terms_table
from .render import cell_text
from .scales import Scale
from .trials import PARAM_PREFIX, Trials, load_optuna_trials, open_existing
from .uncertainty import LEVEL, REFITS, Z_INTERVAL

LEVELS = 6  # the most budgets analysed, the full one included: each is a whole importance analysis
MIN_CORRELATION = 5  # trials behind a rank correlation of trials
RESAMPLES = 1000  # bootstrap resamples behind its interval
TAILS = (100 * (1 - LEVEL) / 2, 100 * (1 + LEVEL) / 2)  # the percentiles of a 90% interval


@dataclass(frozen=True)
class Correlation:
    """Spearman's rank correlation with its 90% interval, over `count` trials (or parameters); NaN and why when none."""

    value: float
    low: float = math.nan
    high: float = math.nan
    count: int = 0
    why: str = ""

    def text(self) -> str:
        if math.isnan(self.value):
            return ""
        interval = f" [{self.low:.2f}, {self.high:.2f}]" if not math.isnan(self.low) else ""
        return f"{self.value:.2f}{interval}"


@dataclass(frozen=True)
class BudgetLevel:
    budget: int  # the step (epoch) every trial here reached
    trials: int  # the trials that reached it
    pruned: int  # of them, how many the pruner stopped before the next level
    importance: Importance | str  # the analysis, or why there is none
    trials_agree: Correlation  # the trials' values here against theirs at the full budget
    ranking_agrees: Correlation  # the main-effect shares here against the full budget's
    reversed: tuple[tuple[str, str], ...] = ()  # (p, q): p clearly above q here, clearly below at the full budget


@dataclass(frozen=True)
class BudgetAnalysis:
    task: str
    unit: str  # "epoch" for odyssey's studies, "step" for others
    full: int  # the full budget: the last level
    levels: list[BudgetLevel]
    settled: int | None  # the budget from which the ranking no longer changes; None when it does not settle
    statement: str  # the one line that says so, or why it cannot be said

    @property
    def computed(self) -> list[BudgetLevel]:
        return [level for level in self.levels if isinstance(level.importance, Importance)]

    @property
    def informative(self) -> bool:
        """Two levels or more with an importance analysis: something to compare."""
        return len(self.computed) >= 2


# --- the levels --------------------------------------------------------------------------------


def _fibonacci_positions(count: int) -> list[int]:
    """0, 1, 2, 4, 7, 12, ...: the positions i < count whose i + 1 is a Fibonacci number."""
    found, a, b = [], 1, 2
    while a <= count:
        found.append(a - 1)
        a, b = b, a + b
    return found


def budget_levels(steps: list[int], decided: list[int], *, full: int) -> list[int]:
    """The budgets to analyse: the steps where the pruner stopped trials (its rungs), else every step
    reported; either thinned to at most LEVELS - 1 below the full budget, which closes the list.

    Thinning keeps the 1st, 2nd, 3rd, 5th, 8th, ... step (epochs 1, 2, 3, 5, 8, ... when every
    epoch is reported), then every other one until few enough remain: early budgets change most."""
    base = sorted({int(s) for s in (decided or steps) if s < full})
    if len(base) > LEVELS - 1:
        base = [base[i] for i in _fibonacci_positions(len(base))]
        while len(base) > LEVELS - 1:
            base = base[::2]
    return [*base, int(full)]


# --- agreement -----------------------------------------------------------------------------------


def spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman's correlation of a and b along their last axis (ties take their mean rank); NaN
    where either is constant."""
    ra, rb = rankdata(a, axis=-1), rankdata(b, axis=-1)
    ra, rb = ra - ra.mean(axis=-1, keepdims=True), rb - rb.mean(axis=-1, keepdims=True)
    scale = np.sqrt((ra**2).sum(axis=-1) * (rb**2).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(scale > 0, (ra * rb).sum(axis=-1) / scale, np.nan)


def trial_correlation(a: np.ndarray, b: np.ndarray, *, seed: int = 0) -> Correlation:
    """Spearman's correlation of paired values, with a percentile bootstrap 90% interval (trials resampled);
    pairs with a NaN are left out (an infinite value ranks last or first)."""
    kept = ~(np.isnan(a) | np.isnan(b))
    a, b = a[kept], b[kept]
    n = len(a)
    if n < MIN_CORRELATION:
        return Correlation(
            math.nan, count=n, why=f"{n} trials reached both budget levels; a correlation needs {MIN_CORRELATION}"
        )
    value = float(spearman(a, b))
    if math.isnan(value):
        return Correlation(math.nan, count=n, why="the values are all the same at one of the budget levels")
    picks = np.random.default_rng(seed).integers(0, n, size=(RESAMPLES, n))
    low, high = np.nanpercentile(spearman(a[picks], b[picks]), TAILS)
    return Correlation(value, float(low), float(high), n)


def _shares(result: Importance, params: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
    """The main-effect shares of `params`, and joint draws of them: each half's shares moved onto
    the reported ones (their spread is the shares' own; uncertainty.py). None without refits."""
    where = {s.param: d for d, s in enumerate(result.scales)}
    index = [where[p] for p in params]
    point = np.nan_to_num(result.fanova.shares[index])
    u = result.uncertainty
    if u is None:
        return point, None
    halves = u.halves[:, index]
    return point, halves - halves.mean(axis=0) + point


def _mattering(result: Importance, params: list[str]) -> set[str]:
    u = result.uncertainty
    if u is None:
        return set(params)
    return {s.param for d, s in enumerate(result.scales) if s.param in params and u.distinguishable[d]}


def ranking_correlation(level: Importance, full: Importance) -> Correlation:
    """The main-effect shares' rank correlation between a level and the full budget (see the module's docstring)."""
    common = [s.param for s in full.scales if s.param in {t.param for t in level.scales}]
    if len(common) < 2:
        return Correlation(math.nan, count=len(common), why="fewer than two parameters analysed at both budget levels")
    point_full, _ = _shares(full, common)
    top_two = {common[i] for i in np.argsort(-point_full, kind="stable")[:2]}
    ranked = [p for p in common if p in _mattering(level, common) | _mattering(full, common) | top_two]
    (a, draws_a), (b, draws_b) = _shares(level, ranked), _shares(full, ranked)
    value = float(spearman(a, b))
    if draws_a is None or draws_b is None:
        return Correlation(value, count=len(ranked))
    # Every half of one analysis against every half of the other: independent analyses, so any pairing is a draw.
    pairs = spearman(draws_a[:, None, :], draws_b[None, :, :]).ravel()
    low, high = np.nanpercentile(pairs, TAILS)
    return Correlation(value, float(low), float(high), len(ranked))


def clear_order(result: Importance, p: str, q: str) -> int:
    """+1 where p's share is clearly above q's (the 90% interval of their difference, from the halves'
    spread, excludes zero), -1 where clearly below, 0 where the analysis cannot tell; 0 without refits."""
    point, draws = _shares(result, [p, q])
    if draws is None:
        return 0
    difference, spread = point[0] - point[1], float(np.std(draws[:, 0] - draws[:, 1], ddof=1))
    return int(np.sign(difference)) if abs(difference) > Z_INTERVAL * spread else 0


def reversals(one: Importance, other: Importance) -> tuple[tuple[str, str], ...]:
    """The pairs (p, q) that `one` ranks clearly p above q and `other` clearly q above p."""
    common = [s.param for s in other.scales if s.param in {t.param for t in one.scales}]
    found = []
    for p, q in combinations(common, 2):
        here, there = clear_order(one, p, q), clear_order(other, p, q)
        if here and there == -here:
            found.append((p, q) if here > 0 else (q, p))
    return tuple(found)


# --- the analysis --------------------------------------------------------------------------------


def _unit(trials: Trials, task: str) -> str:
    studies = set(trials.frame.loc[trials.frame["task"] == task, "study"])
    return "epoch" if any(STUDY_SPEC in trials.study_attrs.get(s, {}) for s in studies) else "step"


def _scales(trials: Trials, pool: pd.DataFrame, params: list[str] | None) -> list[Scale]:
    """The requested parameters, else those every trial with a curve has (conditional ones are not
    analysed across budgets)."""
    scales = choose_scales(trials, params)
    if params:
        return scales
    return [s for s in scales if PARAM_PREFIX + s.param in pool and pool[PARAM_PREFIX + s.param].notna().all()]


def _level(rows: pd.DataFrame, budget: int, unit: str, scales: list[Scale], options: dict) -> Importance | str:
    count = int(rows["value"].notna().sum())
    if count < MIN_TRIALS:
        return f"{count} trials reached {unit} {budget}; fANOVA needs at least {MIN_TRIALS}"
    try:
        return analyse(rows, scales=scales, pairs=False, space=f"{unit} {budget}", **options)
    except OdysseyError as refusal:  # no parameter varies, an infinite value: said, and the other levels go on
        return str(refusal)


def analyse_budgets(
    trials: Trials,
    *,
    task: str,
    params: list[str] | None = None,
    trees: int = 32,
    seed: int = 0,
    refits: int = REFITS,
) -> BudgetAnalysis | None:
    """Importance at each budget level of `task` and its agreement with the full budget; None when
    none of its finished trials reported a learning curve."""
    curves = finished_curves(trials, task)
    full = full_budget(trials, task)
    if curves.empty or full is None:
        return None
    unit = _unit(trials, task)
    last = curves.groupby(KEYS).agg(step=("step", "max"), state=("state", "first"))
    budgets = budget_levels(
        sorted(curves["step"].unique()), sorted(last.loc[last["state"] == "PRUNED", "step"].unique()), full=full
    )
    at = values_at(trials, task, budgets)
    pool = trials.frame.set_index(KEYS).loc[last.index].reset_index()
    scales = _scales(trials, pool, params)
    options = {"trees": trees, "seed": seed, "refits": refits}
    results = {b: _level(at[b], b, unit, scales, options) for b in budgets}
    final, at_full = results[full], at[full].set_index(KEYS)["value"]
    pruned = last[last["state"] == "PRUNED"]["step"]
    levels = []
    for budget, following in zip(budgets, [*budgets[1:], math.inf]):
        here = at[budget].set_index(KEYS)["value"]
        both = at_full.index.intersection(here.index)
        ranking, reversed_ = _against(results[budget], final, same=budget == full)
        levels.append(
            BudgetLevel(
                budget=budget,
                trials=len(here),
                pruned=int(((pruned >= budget) & (pruned < following)).sum()),
                importance=results[budget],
                trials_agree=(
                    Correlation(1.0, 1.0, 1.0, len(both))
                    if budget == full
                    else trial_correlation(here[both].to_numpy(float), at_full[both].to_numpy(float), seed=seed)
                ),
                ranking_agrees=ranking,
                reversed=reversed_,
            )
        )
    settled, statement = settles(levels, unit=unit, full=full)
    return BudgetAnalysis(task, unit, full, levels, settled, statement)


def _against(result: Importance | str, final: Importance | str, *, same: bool) -> tuple[Correlation, tuple]:
    """A level's ranking correlation with the full budget, and the pairs of parameters it reverses."""
    if not (isinstance(result, Importance) and isinstance(final, Importance)):
        return Correlation(math.nan, why="no importance at this budget level or the full budget"), ()
    if same:
        return Correlation(1.0, 1.0, 1.0, len(final.scales)), ()
    return ranking_correlation(result, final), reversals(result, final)


def _ranking(result: Importance) -> str:
    """The full budget's parameters that stand above their noise floors, largest share first."""
    u = result.uncertainty
    order = np.argsort(-np.nan_to_num(result.fanova.main), kind="stable")
    shown = [result.scales[d].param for d in order if u is None or u.distinguishable[d]]
    if len(shown) < 2:
        return (
            f"{shown[0]} alone stands above its noise floor" if shown else "no parameter stands above its noise floor"
        )
    return " > ".join(shown)


def settles(levels: list[BudgetLevel], *, unit: str, full: int) -> tuple[int | None, str]:
    """The budget from which no two budgets (the full one included) rank two parameters clearly the
    other way round, and the line that says so, with the last such reversal (or why it cannot be said)."""
    final = levels[-1].importance
    if not isinstance(final, Importance):
        return (
            None,
            f"Whether the ranking settles cannot be said: no importance at the full budget ({unit} {full}): {final}.",
        )
    if final.uncertainty is None:
        return None, "Whether the ranking settles is not assessed without refits (--refits 0)."
    computed = [lv for lv in levels if isinstance(lv.importance, Importance)]
    if len(computed) < 2:
        return None, f"No budget level below the full budget ({unit} {full}) has an importance analysis to compare."
    ranking = f"at the full budget ({unit} {full}): {_ranking(final)}"
    # Every pair of budgets, not only each against the full one: where the full budget's few trials cannot
    # order two parameters, two earlier budgets that order them clearly the other way round still count.
    changes = [
        (early, late, pair)
        for k, early in enumerate(computed)
        for late in computed[k + 1 :]
        for pair in reversals(early.importance, late.importance)
    ]
    if not changes:
        return computed[0].budget, (
            f"From {unit} {computed[0].budget} on (the first budget level analysed), the ranking of the "
            f"hyperparameters no longer changes: no two budget levels order two of them clearly the other way round; "
            f"{ranking}."
        )
    early, late, (p, q) = max(changes, key=lambda change: (change[0].budget, -change[1].budget))
    was = f"at {unit} {early.budget}, {p} ranks clearly above {q}, at {unit} {late.budget} clearly below it"
    settled = next(lv.budget for lv in computed if lv.budget > early.budget)
    if settled == full:
        return None, f"The ranking of the hyperparameters keeps changing until the full budget: {was}; {ranking}."
    return (
        settled,
        f"From {unit} {settled} on, the ranking of the hyperparameters no longer changes ({was}); {ranking}.",
    )


# --- tables --------------------------------------------------------------------------------------

BUDGET_COLUMNS = [
    "task", "budget", "trials", "pruned", "term", "kind", "mean", "std", "low", "high", "floor", "distinguishable",
    "trial_rank_correlation", "trial_rank_low", "trial_rank_high", "trial_rank_trials",
    "ranking_correlation", "ranking_low", "ranking_high", "reversed", "note",
]  # fmt: skip


def budget_table(analysis: BudgetAnalysis) -> pd.DataFrame:
    """importance_by_budget.csv: per level its terms (main effects, the interactions together as
    'higher order', the noise), each row with the level's agreements with the full budget; a level
    without an analysis has one row saying why."""
    frames = []
    for level in analysis.levels:
        agree, ranking = level.trials_agree, level.ranking_agrees
        common = {
            "task": analysis.task,
            "budget": level.budget,
            "trials": level.trials,
            "pruned": level.pruned,
            "trial_rank_correlation": agree.value,
            "trial_rank_low": agree.low,
            "trial_rank_high": agree.high,
            "trial_rank_trials": agree.count,
            "ranking_correlation": ranking.value,
            "ranking_low": ranking.low,
            "ranking_high": ranking.high,
            "reversed": "; ".join(f"{p} > {q}" for p, q in level.reversed),
        }
        if isinstance(level.importance, Importance):
            terms = terms_table(level.importance).drop(columns=["params", "scale", "space", "trials"])
            frames.append(terms.assign(**common, note=""))
        else:
            frames.append(pd.DataFrame([common | {"term": "", "kind": "", "note": level.importance}]))
    return pd.concat(frames, ignore_index=True).reindex(columns=BUDGET_COLUMNS)


def budget_rows(analysis: BudgetAnalysis) -> pd.DataFrame:
    """The levels as a table to read: per level its trials, each parameter's main-effect share with
    its interval ("*": distinguishable from zero), the two agreements with the full budget."""
    labels = {s.label: s.param for lv in analysis.computed for s in lv.importance.scales}
    rows = []
    for level in analysis.levels:
        row = {analysis.unit: level.budget, "trials": level.trials, "pruned": level.pruned}
        shares = {}
        if isinstance(level.importance, Importance):
            terms = terms_table(level.importance).set_index("term")
            for label in labels:
                if label in terms.index:
                    t = terms.loc[label]
                    mark = "*" if t["distinguishable"] else ""
                    interval = f" [{t['low']:.2f}, {t['high']:.2f}]" if not math.isnan(t["low"]) else ""
                    shares[label] = f"{t['mean']:.2f}{interval}{mark}"
        row |= {label: shares.get(label, "") for label in labels}
        row |= {
            "trials' rank correlation": level.trials_agree.text(),
            "ranking correlation": level.ranking_agrees.text(),
            "note": "; ".join(f"{p} > {q} here, < at the full budget" for p, q in level.reversed)
            if isinstance(level.importance, Importance)
            else level.importance,
        }
        rows.append({k: cell_text(v) if not isinstance(v, str) else v for k, v in row.items()})
    return pd.DataFrame(rows)


# --- `odyssey importance --budgets` --------------------------------------------------------------


def study_budgets(
    *,
    storage,
    study: str,
    params: list[str] | None = None,
    objective: int | None = None,
    trees: int = 32,
    seed: int = 0,
    refits: int = REFITS,
) -> BudgetAnalysis:
    """Any Optuna study across its budgets: every trial that reported intermediate values
    (`trial.report(value, step)`), complete or pruned, at each budget level it reached."""
    trials = load_optuna_trials(open_existing(storage), study, objective=objective)
    analysis = analyse_budgets(trials, task=study, params=params, trees=trees, seed=seed, refits=refits)
    if analysis is None:
        raise OdysseyError(
            f"study {study!r}: no complete or pruned trial reported an intermediate value (trial.report); "
            "--budgets needs learning curves"
        )
    return analysis


def budget_document(analysis: BudgetAnalysis, *, study: str, objective: int | None, seed: int) -> dict:
    """`odyssey importance --budgets --format json`: the levels' terms and agreements, and the statement."""
    return strict_json(
        {
            "study": study,
            "objective": objective or 0,
            "seed": seed,
            "unit": analysis.unit,
            "full_budget": analysis.full,
            "settled_from": analysis.settled,
            "statement": analysis.statement,
            "scales": SCALE_NOTE,
            "levels": [
                {
                    "budget": lv.budget,
                    "trials": lv.trials,
                    "pruned": lv.pruned,
                    "computed": isinstance(lv.importance, Importance),
                }
                for lv in analysis.levels
            ],
            "terms": budget_table(analysis).to_dict(orient="records"),
        }
    )


def budget_footer(analysis: BudgetAnalysis, *, seed: int) -> str:
    """The lines under `odyssey importance --budgets`' table: the statement, what the columns are, the seed."""
    unit = analysis.unit
    return (
        f"{analysis.statement}\nShares: main effects at each {unit} from every trial that reached it (complete or "
        f"pruned), by the best value it reported up to that {unit}, with 90% intervals; '*': distinguishable from "
        f"zero. Rank correlations (Spearman's, 90% intervals) with the full budget ({unit} {analysis.full}): of "
        "the trials that reached it, and of the parameters' shares. "
        f"{SCALE_NOTE[0].upper()}{SCALE_NOTE[1:]}. Seed {seed}."
    )
