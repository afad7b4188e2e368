"""One study's trials straight from an RDB storage's tables: one SELECT, read only, no FrozenTrials.

Optuna builds a FrozenTrial per trial with every attribute and intermediate value, which is most
of the time `odyssey importance` takes on thousands of trials; importance needs only states,
objective values and parameters. The query itself (on Optuna's tables) is optuna_private.trial_rows;
this module turns its rows into a table of trials.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from optuna.distributions import CategoricalDistribution, json_to_distribution
from optuna.storages import RDBStorage

from ..optuna_private import trial_rows


def read_trials(
    backend: RDBStorage, study_id: int, *, objective: int = 0, prefix: str = "params_"
) -> tuple[pd.DataFrame, dict[str, list]]:
    """(frame, distributions): number, state and value per trial, a column `prefix + name` per
    parameter holding its external value (NaN where a trial lacks it), and each parameter's
    distributions as stored (a list: cells or trials may store different ranges)."""
    named = trial_rows(backend, study_id, objective=objective)
    long = pd.DataFrame(named, columns=["number", "state", "value", "value_type", "param", "internal", "distribution"])
    kinds = long["value_type"].tolist()
    infinite = {"INF_POS": math.inf, "INF_NEG": -math.inf}
    long["value"] = [
        infinite.get(k, v) if v is not None or k in infinite else math.nan for v, k in zip(long["value"], kinds)
    ]
    frame = long.drop_duplicates("number")[["number", "state", "value"]].sort_values("number").set_index("number")
    frame["value"] = frame["value"].astype(float)
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
