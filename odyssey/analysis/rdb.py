"""One study's trials straight from an RDB storage's tables: one SELECT, read only, no FrozenTrials.

Optuna builds a FrozenTrial per trial with every attribute and intermediate value, which is most
of the time `odyssey importance` takes on thousands of trials; importance needs only states,
objective values and parameters, and the budgets their learning curves. The queries themselves
(on Optuna's tables) are optuna_private.trial_rows and intermediate_rows; this module turns their
rows into tables.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from optuna.distributions import CategoricalDistribution, json_to_distribution
from optuna.storages import RDBStorage

from ..optuna_private import intermediate_rows, trial_rows

# What Optuna stores by its type alone (the value column is NULL): trial values and intermediate values alike.
BY_TYPE = {"INF_POS": math.inf, "INF_NEG": -math.inf, "NAN": math.nan}


def _values(values: pd.Series, kinds: list) -> list[float]:
    """Stored values as floats: by their type where it says, NaN where a trial has none (its type is None too)."""
    return [BY_TYPE[k] if k in BY_TYPE else math.nan if v is None else float(v) for v, k in zip(values, kinds)]


def read_trials(
    backend: RDBStorage, study_id: int, *, objective: int = 0, prefix: str = "params_"
) -> tuple[pd.DataFrame, dict[str, list]]:
    """(frame, distributions): number, state and value per trial, a column `prefix + name` per
    parameter holding its external value (NaN where a trial lacks it), and each parameter's
    distributions as stored (a list: cells or trials may store different ranges)."""
    named = trial_rows(backend, study_id, objective=objective)
    long = pd.DataFrame(named, columns=["number", "state", "value", "value_type", "param", "internal", "distribution"])
    long["value"] = _values(long["value"], long["value_type"].tolist())
    frame = long.drop_duplicates("number")[["number", "state", "value"]].sort_values("number").set_index("number")
    # A complete trial's objective only, as record.read_record reads it: Optuna also stores a pruned
    # trial's last reported value as its value, which is not its objective.
    frame["value"] = frame["value"].astype(float).where(frame["state"] == "COMPLETE")
    distributions: dict[str, list] = {}
    present = long.dropna(subset=["param"])
    for (param, text), part in present.groupby(["param", "distribution"], sort=False):
        distribution = json_to_distribution(text)
        distributions.setdefault(param, []).append(distribution)
        internal = part["internal"].to_numpy(float)
        if isinstance(distribution, CategoricalDistribution):
            # Categorical values are stored as the index of the choice.
            external = pd.Series(
                np.asarray(distribution.choices, dtype=object)[internal.astype(int)], index=part["number"].to_numpy()
            )
        else:
            external = pd.Series(internal, index=part["number"].to_numpy())
        column = frame.get(prefix + param)
        frame[prefix + param] = external if column is None else column.where(column.notna(), external)
    return frame.reset_index(), distributions


def read_curves(backend: RDBStorage, study_id: int) -> pd.DataFrame:
    """Every trial's learning curve: a row per reported (number, step, value), by number and step."""
    rows = intermediate_rows(backend, study_id)
    long = pd.DataFrame(rows, columns=["number", "step", "value", "value_type"])
    long["value"] = _values(long["value"], long["value_type"].tolist())
    long = long.astype({"number": int, "step": int, "value": float})
    return long[["number", "step", "value"]].sort_values(["number", "step"], ignore_index=True)
