"""Importance results as tables: the terms, marginal curves and pair surfaces that the figures draw
and the CSV files hold, and `odyssey importance` (`study_importance`) for any Optuna study, with what
it prints as a table, CSV or JSON (odyssey.console prints them).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from optuna.storages import BaseStorage

from .importance import PAIR_SIGN, SCALE_NOTE, SHARES_NOTE, Importance, analyse_spaces, choose_scales
from .trials import TooFewTrials, load_optuna_trials, open_existing
from .uncertainty import REFITS

FORMATS = ("table", "csv", "json")  # what `odyssey importance --format` prints

TERM_COLUMNS = [
    "term",
    "kind",
    "params",
    "scale",
    "mean",
    "std",
    "low",
    "high",
    "floor",
    "distinguishable",
    "space",
    "trials",
]
NOISE = "noise"


def terms_table(result: Importance) -> pd.DataFrame:
    """Variance shares, largest first, then the higher-order rest and the noise: the share, its spread
    over resampled trials, the interval, the noise floor and whether the share is distinguishable
    from zero (None: not assessed). The noise row is a share of the trials' variance, not of the
    forest's (see SHARES_NOTE)."""
    fa, scales, u = result.fanova, result.scales, result.uncertainty
    rows = [{"term": s.label, "kind": "main", "params": [s.param], "scale": s.kind} for s in scales]
    rows += [
        {
            "term": scales[i].label + PAIR_SIGN + scales[j].label,
            "kind": "pair",
            "params": [scales[i].param, scales[j].param],
            "scale": scales[i].kind + PAIR_SIGN + scales[j].kind,
        }
        for i, j in fa.pairs
    ]
    rows.append({"term": "higher order", "kind": "rest", "params": [], "scale": ""})
    table = pd.DataFrame(rows)
    table["mean"] = fa.shares
    table["std"], table["low"], table["high"], table["floor"] = (
        (u.std, u.low, u.high, u.floor) if u is not None else (math.nan,) * 4
    )
    table["distinguishable"] = pd.Series(
        [bool(v) for v in u.distinguishable] if u is not None else [None] * len(table), dtype=object
    )
    noise = pd.DataFrame(
        [
            {
                "term": NOISE,
                "kind": NOISE,
                "params": [],
                "scale": "",
                "mean": result.noise,
                "std": math.nan,
                "low": math.nan,
                "high": math.nan,
                "floor": math.nan,
                "distinguishable": None,
            }
        ]
    )
    table["space"], table["trials"] = result.space, result.trials
    noise["space"], noise["trials"] = result.space, result.trials
    effects = table[table["kind"] != "rest"].sort_values("mean", ascending=False, kind="stable")
    return pd.concat([effects, table[table["kind"] == "rest"], noise], ignore_index=True)[TERM_COLUMNS]


def curves_table(result: Importance) -> pd.DataFrame:
    """Marginal prediction vs each parameter on its analysis scale, with its spread over the
    resamples (NaN without them)."""
    fa, u = result.fanova, result.uncertainty
    return pd.concat(
        [
            pd.DataFrame(
                {
                    "param": s.label,
                    "x": fa.curve_x[d],
                    "mean": fa.curves[d],
                    "std": u.curve_std[d] if u is not None else math.nan,
                }
            )
            for d, s in enumerate(result.scales)
        ],
        ignore_index=True,
    ).assign(space=result.space, trials=result.trials)


def surfaces_table(result: Importance) -> pd.DataFrame:
    """Pair marginals on a grid, total and interaction-only (both main effects taken out), long format."""
    fa, u, frames = result.fanova, result.uncertainty, []
    for k, (i, j) in enumerate(fa.pairs):
        xi, xj = np.meshgrid(fa.surface_x[i], fa.surface_x[j], indexing="ij")
        frames.append(
            pd.DataFrame(
                {
                    "param_x": result.scales[i].label,
                    "param_y": result.scales[j].label,
                    "x": xi.ravel(),
                    "y": xj.ravel(),
                    "total_mean": fa.surfaces[k].ravel(),
                    "total_std": u.surface_std[k].ravel() if u is not None else math.nan,
                    "interaction_mean": fa.interactions[k].ravel(),
                    "interaction_std": u.interaction_std[k].ravel() if u is not None else math.nan,
                }
            )
        )
    columns = ["param_x", "param_y", "x", "y", "total_mean", "total_std", "interaction_mean", "interaction_std"]
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
    return table.assign(space=result.space, trials=result.trials)


def space_summary(space: str, result: Importance | str) -> dict[str, object]:
    """One line per analysed set of trials: how many, what was left out, or why nothing was computed."""
    if isinstance(result, str):
        return {
            "space": space,
            "trials": None,
            "dropped": [],
            "constant": None,
            "dominant": "",
            "uncertainty": None,
            "note": f"not computed: {result}",
        }
    u = result.uncertainty
    return {
        "space": space,
        "trials": result.trials,
        "dropped": list(result.dropped),
        "constant": result.constant,
        "dominant": result.dominant,
        "uncertainty": None if u is None else {"method": u.describe(), "replicates": u.replicates, "nulls": u.nulls},
        "noise": result.noise,
        "note": result.note,
    }


def study_importance(
    *,
    storage: str | BaseStorage,
    study: str,
    params: Sequence[str] | None = None,
    objective: int | None = None,
    trees: int = 32,
    seed: int = 0,
    refits: int = REFITS,
) -> tuple[pd.DataFrame, list[dict[str, object]], int]:
    """Any Optuna study: the terms of every space (all trials, then each conditional sub-space) in
    one table, a summary per space, and how many pruned trials were left out (importance at the
    full budget is of complete trials, as Optuna's evaluators have it; by_budget.study_budgets
    uses the pruned ones too). Refuses (TooFewTrials) only when no space can be analysed."""
    trials = load_optuna_trials(open_existing(storage), study, objective=objective, curves=False)
    spaces = analyse_spaces(
        trials.complete(), scales=choose_scales(trials, params), trees=trees, seed=seed, refits=refits
    )
    done = [r for _, r in spaces if isinstance(r, Importance)]
    pruned = int((trials.frame["state"] == "PRUNED").sum())
    if not done:
        left_out = f" ({pruned_note(pruned)})" if pruned else ""
        raise TooFewTrials((spaces[0][1] if spaces else f"study {study!r} has no complete trials") + left_out)
    table = pd.concat([terms_table(r) for r in done], ignore_index=True)
    return table, [space_summary(label, r) for label, r in spaces], pruned


def pruned_note(pruned: int) -> str:
    """What `odyssey importance` says of the pruned trials it leaves out."""
    return (
        f"{pruned} pruned trial{'s' * (pruned != 1)} left out: importance is of the complete trials, at the full "
        "budget: the region the pruner kept, not the whole space; --budgets analyses every trial at each budget "
        "level it reached"
    )


def strict_json(value: object) -> object:
    """Plain JSON types only: NaN and infinities become null (json.dumps(allow_nan=False) then cannot fail on them)."""
    if isinstance(value, dict):
        return {str(k): strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [strict_json(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def importance_document(
    table: pd.DataFrame,
    spaces: list[dict[str, object]],
    *,
    study: str,
    objective: int | None,
    seed: int,
    pruned: int = 0,
) -> dict:
    """`odyssey importance --format json`: study_importance's table and summaries, in plain JSON types."""
    document = {
        "study": study,
        "objective": objective or 0,
        "seed": seed,
        "pruned_left_out": pruned,
        "scales": SCALE_NOTE,
        "shares": SHARES_NOTE,
        "spaces": spaces,
        "terms": table.to_dict(orient="records"),
    }
    return strict_json(document)


def importance_csv(table: pd.DataFrame) -> str:
    """`odyssey importance --format csv`: the terms of every space, each term's parameters as a JSON list."""
    return table.assign(params=[json.dumps(p) for p in table["params"]]).to_csv(index=False)


def importance_tables(
    table: pd.DataFrame, spaces: list[dict[str, object]], *, study: str
) -> list[tuple[str, list[dict[str, str]]]]:
    """`odyssey importance`: per space, a title (trials, what was left out) and its rows as text; no
    rows when not computed."""
    from .render import cell_text

    shown = []
    for summary in spaces:
        part = table[table["space"] == summary["space"]]
        if part.empty:
            shown.append((f"{study}, {summary['space']}: {summary['note']}", []))
            continue
        notes = [f"left out: {d}" for d in summary["dropped"]] + (
            ["constant objective: no shares"] if summary["constant"] else []
        )
        notes += [summary["dominant"]] if summary["dominant"] else []
        title = f"{study}, {summary['space']}: variance shares over {summary['trials']:,} trials" + "".join(
            f"; {n}" for n in notes
        )
        part = part.drop(columns=["params", "space", "trials"]).assign(
            distinguishable=lambda t: t["distinguishable"].map(
                lambda flag: "" if flag is None else "yes" if flag else "no"
            )
        )
        shown.append((title, [{k: cell_text(v) for k, v in row.items()} for row in part.to_dict(orient="records")]))
    return shown


def importance_footer(spaces: list[dict[str, object]], *, seed: int) -> str:
    """The line under the tables: the scales, what a share divides, how the intervals were made, the seed."""
    methods = {s["uncertainty"]["method"] for s in spaces if s["uncertainty"]}
    return (
        f"{SCALE_NOTE[0].upper()}{SCALE_NOTE[1:]}. {SHARES_NOTE[0].upper()}{SHARES_NOTE[1:]}."
        + "".join(f" {m[0].upper()}{m[1:]}." for m in sorted(methods))
        + f" Seed {seed}."
    )
