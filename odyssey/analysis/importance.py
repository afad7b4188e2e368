"""Hyperparameter importance of a set of trials: fANOVA on the analysis scales, as tables.

The tables (terms, marginal curves, pair surfaces) are what the figures draw and the CSV files
hold; `print_importance` is `odyssey importance`, for any Optuna study.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from optuna.storages import BaseStorage

from ..errors import OdysseyError
from .fanova import Fanova, decompose_forest, fit_forest
from .scales import Scale, param_order
from .trials import PARAM_PREFIX, Trials, TooFewTrials, load_optuna_trials, open_existing

MIN_TRIALS = 20  # fewer than this and a forest's shares say more about the sample than the space
PAIR_SIGN = " × "
FORMATS = ("table", "csv", "json")


@dataclass(frozen=True)
class Importance:
    scales: list[Scale]
    trials: int
    fanova: Fanova


def choose_scales(trials: Trials, params: Sequence[str] | None = None) -> list[Scale]:
    """The requested parameters (all by default), in a stable order; unknown names are an error."""
    if not params:
        # A parameter fixed to one value spans nothing: there is no variance to give it.
        return [trials.scales[p] for p in param_order(trials.scales) if trials.scales[p].high > trials.scales[p].low]
    unknown = [p for p in params if p not in trials.scales]
    if unknown:
        raise OdysseyError(f"unknown parameter(s) {', '.join(unknown)}; the study has: {', '.join(sorted(trials.scales))}")
    fixed = [p for p in params if trials.scales[p].high <= trials.scales[p].low]
    if fixed:
        raise OdysseyError(f"parameter(s) {', '.join(fixed)} take a single value in this study: nothing to analyse")
    return [trials.scales[p] for p in dict.fromkeys(params)]


def analyse(frame: pd.DataFrame, *, scales: Sequence[Scale], target: str = "value", pairs: bool = True, trees: int = 32, seed: int = 0) -> Importance:
    """fANOVA of `target` over the complete trials in `frame` that have every parameter."""
    if not scales:
        raise OdysseyError("no parameters to analyse: the trials have none that vary")
    columns = [PARAM_PREFIX + s.param for s in scales]
    rows = frame.dropna(subset=[*columns, target]) if set(columns) <= set(frame.columns) else frame.iloc[:0]
    if len(rows) < MIN_TRIALS:
        raise TooFewTrials(f"fANOVA needs at least {MIN_TRIALS} complete trials with {target}; {len(rows)} present")
    lows, highs = np.array([s.low for s in scales]), np.array([s.high for s in scales])
    x = np.clip(np.column_stack([s.transform(rows[c]) for s, c in zip(scales, columns)]), lows, highs)
    forest = fit_forest(x, rows[target].to_numpy(float), trees=trees, seed=seed)
    fanova = decompose_forest(forest, lows=lows, highs=highs, pairs=None if pairs else [])
    return Importance(list(scales), len(rows), fanova)


def _summary(values: np.ndarray) -> dict[str, float]:
    return {"mean": float(np.nanmean(values)), "std": float(np.nanstd(values))}


def terms_table(result: Importance) -> pd.DataFrame:
    """Variance shares: one row per parameter, per pair, and the higher-order rest (mean and std over trees)."""
    fa, scales = result.fanova, result.scales
    rows = [{"term": s.label, "kind": "main", "params": s.param, **_summary(fa.main[:, d])} for d, s in enumerate(scales)]
    rows += [
        {"term": scales[i].label + PAIR_SIGN + scales[j].label, "kind": "pair", "params": f"{scales[i].param},{scales[j].param}", **_summary(fa.pair[:, k])}
        for k, (i, j) in enumerate(fa.pairs)
    ]
    rows.append({"term": "higher order", "kind": "rest", "params": "", **_summary(fa.higher_order)})
    return pd.DataFrame(rows)


def curves_table(result: Importance) -> pd.DataFrame:
    """Marginal prediction vs each parameter on its analysis scale, with the spread across trees."""
    fa = result.fanova
    return pd.concat(
        [
            pd.DataFrame({"param": s.label, "x": fa.curve_x[d], "mean": fa.curves[:, d].mean(0), "std": fa.curves[:, d].std(0)})
            for d, s in enumerate(result.scales)
        ],
        ignore_index=True,
    )


def surfaces_table(result: Importance) -> pd.DataFrame:
    """Pair marginals on a grid, total and interaction-only (both main effects taken out), long format."""
    fa, frames = result.fanova, []
    for k, (i, j) in enumerate(fa.pairs):
        xi, xj = np.meshgrid(fa.surface_x[i], fa.surface_x[j], indexing="ij")
        frames.append(
            pd.DataFrame(
                {
                    "param_x": result.scales[i].label,
                    "param_y": result.scales[j].label,
                    "x": xi.ravel(),
                    "y": xj.ravel(),
                    "total_mean": fa.surfaces[:, k].mean(0).ravel(),
                    "total_std": fa.surfaces[:, k].std(0).ravel(),
                    "interaction_mean": fa.interactions[:, k].mean(0).ravel(),
                    "interaction_std": fa.interactions[:, k].std(0).ravel(),
                }
            )
        )
    columns = ["param_x", "param_y", "x", "y", "total_mean", "total_std", "interaction_mean", "interaction_std"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def study_importance(*, storage: str | BaseStorage, study: str, params: Sequence[str] | None = None, trees: int = 32, seed: int = 0) -> tuple[pd.DataFrame, int]:
    """Terms table of any Optuna study (log-scaled distributions in log10), and the number of trials behind it."""
    trials = load_optuna_trials(open_existing(storage), study)
    result = analyse(trials.complete(), scales=choose_scales(trials, params), trees=trees, seed=seed)
    return terms_table(result), result.trials


def print_importance(*, storage: str, study: str, params: Sequence[str] | None = None, fmt: str = "table") -> None:
    """`odyssey importance`: main effects, pairwise interactions and the rest, as a table, CSV or JSON."""
    if fmt not in FORMATS:
        raise OdysseyError(f"unknown format {fmt!r}; use one of: {', '.join(FORMATS)}")
    table, count = study_importance(storage=storage, study=study, params=params)
    if fmt == "csv":
        table.to_csv(sys.stdout, index=False)
    elif fmt == "json":
        print(json.dumps({"study": study, "trials": count, "terms": table.to_dict(orient="records")}, indent=2))
    else:
        from ..console import print_rows

        print_rows(table.drop(columns="params").to_dict(orient="records"), title=f"{study}: variance shares over {count} trials (mean, std over trees)")
