"""odyssey's fANOVA inside Optuna: an importance evaluator, and pairs and marginals of a `Study`.

    import optuna, odyssey
    optuna.importance.get_param_importances(study, evaluator=odyssey.FanovaImportanceEvaluator(seed=0), normalize=False)
    optuna.visualization.plot_param_importances(study, evaluator=odyssey.FanovaImportanceEvaluator())

Shares are those of the forest's mean prediction (fanova.py) on the analysis scales (log-sampled
parameters in log10, steps and integers as equal-width cells, categorical choices weighed equally).
Optuna's `get_param_importances` normalises shares to sum to 1 unless told `normalize=False`:
then shares that leave most of the variance to interactions look as if they explained it all, so
`evaluate` warns when the main effects explain less than half.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import optuna
import pandas as pd
from optuna.importance import BaseImportanceEvaluator
from optuna.trial import FrozenTrial

from .importance import Importance, analyse, analyse_spaces, choose_scales
from .importance_tables import curves_table, surfaces_table, terms_table
from .trials import PARAM_PREFIX, TooFewTrials, study_trials
from .uncertainty import REFITS

Target = Callable[[FrozenTrial], float]
MAIN_EXPLAINS = 0.5  # below this share of the variance in main effects, `evaluate` warns


class FanovaImportanceEvaluator(BaseImportanceEvaluator):
    """fANOVA main-effect shares, exact per tree, with log-sampled parameters on their log scale.

    Args:
        n_trees: trees in the random forest.
        seed: the forest's seed (results are deterministic for a given seed).
        target: the value to explain, a FrozenTrial -> float (needed for a multi-objective study,
            e.g. ``lambda t: t.values[0]``); a ``target`` given to ``evaluate`` (as Optuna's
            functions pass theirs) takes precedence.

    Parameters present in only some trials are analysed on the trials that have them when asked
    for by name; by default, as Optuna's evaluators do, only the parameters every complete trial has.
    A parameter with a single possible value gets 0, and so does every parameter of a constant
    objective. Unlike Optuna's evaluators, an infinite target is an error naming the trial (not
    silently dropped), and fewer than 20 complete trials are refused (odyssey.errors.OdysseyError,
    a ValueError).
    """

    def __init__(self, *, n_trees: int = 32, seed: int = 0, target: Target | None = None) -> None:
        if n_trees < 1:
            raise ValueError(f"n_trees must be at least 1, got {n_trees}")
        self._n_trees, self._seed, self._target = n_trees, seed, target

    def evaluate(
        self, study: optuna.Study, params: list[str] | None = None, *, target: Target | None = None
    ) -> dict[str, float]:
        trials = study_trials(study, target=target or self._target)
        complete = trials.complete()
        names = (
            list(params)
            if params
            else [s.param for s in choose_scales(trials) if complete[PARAM_PREFIX + s.param].notna().all()]
        )
        if not names:
            return {}
        result = analyse(complete, scales=choose_scales(trials, names), trees=self._n_trees, seed=self._seed, refits=0)
        shares = {
            s.param: float(result.fanova.main[d]) if not result.constant else 0.0 for d, s in enumerate(result.scales)
        }
        explained = sum(shares.values())
        if not result.constant and explained < MAIN_EXPLAINS:
            # get_param_importances normalises by default: main shares of 0.07, 0.05 and 0.04 (the rest
            # interactions and noise) came out as 0.41, 0.31 and 0.26, as if they said it all.
            warnings.warn(
                f"the parameters' main effects explain {explained:.2f} of the variance (the rest is interactions); "
                "get_param_importances(..., normalize=False) keeps the shares as they are, and "
                "odyssey.analysis.evaluator.study_fanova gives the pairs",
                UserWarning,
                stacklevel=2,
            )
        shares |= {p: 0.0 for p in names if p not in shares}  # left out: a single value
        return dict(sorted(shares.items(), key=lambda kv: kv[1], reverse=True))


def study_fanova(
    study: optuna.Study,
    *,
    params: Sequence[str] | None = None,
    target: Target | None = None,
    n_trees: int = 32,
    seed: int = 0,
    pairs: bool = True,
    refits: int = REFITS,
) -> list[Importance]:
    """fANOVA of a `Study` with pairs, marginals and uncertainty: one result per set of trials (all
    of them first, then the trials that have each group of conditional parameters).

    Tables: `terms_table(r)`, `curves_table(r)` (marginal per parameter), `surfaces_table(r)`
    (pair marginals), or `study_tables` for all three over every set.
    """
    trials = study_trials(study, target=target)
    spaces = analyse_spaces(
        trials.complete(), scales=choose_scales(trials, params), trees=n_trees, seed=seed, pairs=pairs, refits=refits
    )
    for space, result in spaces:
        if isinstance(result, str):
            warnings.warn(f"{space}: not analysed: {result}", stacklevel=2)
    done = [r for _, r in spaces if isinstance(r, Importance)]
    if not done:
        raise TooFewTrials(spaces[0][1] if spaces else f"study {study.study_name!r} has no complete trials")
    return done


def study_tables(results: Sequence[Importance]) -> dict[str, pd.DataFrame]:
    """{"terms", "marginals", "pairs"} over every result, each row naming its set of trials and their count."""
    return {
        "terms": pd.concat([terms_table(r) for r in results], ignore_index=True),
        "marginals": pd.concat([curves_table(r) for r in results], ignore_index=True),
        "pairs": pd.concat([surfaces_table(r) for r in results], ignore_index=True),
    }
