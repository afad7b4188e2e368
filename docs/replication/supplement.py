"""The numbers docs/replication.md adds to the report, from the committed storage, as the tables it prints:

- step: does momentum matter on its own, or only through the step it makes? With Nesterov momentum
  m and learning rate lr, SGD's steady step is lr / (1 - m); odyssey, like torch, does not rescale
  lr by (1 - m). If momentum acts only through that step, a forest on log10(lr / (1 - m)) alone
  explains as much of the validation metric as one on log10(lr) and log10(1 - m) together, and
  both more than log10(lr) alone: the out-of-bag R^2 of each, per task.
- hidden: does hidden size matter where training works? Over all trials its share is tiny next to
  the learning rate's, whose range spans untrained and trained networks. Among the trials whose
  effective step lr / (1 - m) is at least STEP (a condition on the inputs, not the outcome): the
  rank correlation of hidden size with the validation metric, and the median metric per third of
  the log10 hidden-size range.
- cut: was training cut short? Per task and variant, how many of the best 10% (the trials the
  variant tests compare) had their best validation epoch at the last epoch allowed.
- draws: how lucky was each cell's search? Random search draws each cell's configurations on its
  own; per task and variant, the trials whose effective step lr / (1 - m) is at least LARGE_STEP.
- learnt: did a trial learn anything? The trials whose validation metric beat what every trial
  starts from (CER 1.0 on handwriting: CTC's all-blank output).

    python docs/replication/supplement.py [--storage sqlite:///docs/replication/replication.db]
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from scipy import stats

from odyssey.analysis.fanova import fit_forest
from odyssey.analysis.trials import load_odyssey_trials, open_existing
from odyssey.analysis.variant_stats import best_trials, variant_order

STORAGE = "sqlite:///docs/replication/replication.db"
MIN_TRIALS = 50
STEP = 1e-2
LARGE_STEP = 1e-1
INPUTS = {
    "log10(lr)": lambda f: [np.log10(f["params_learning_rate"])],
    "log10(lr), log10(1 - m)": lambda f: [np.log10(f["params_learning_rate"]), np.log10(f["params_one_minus_momentum"])],
    "log10(lr / (1 - m))": lambda f: [np.log10(f["params_learning_rate"] / f["params_one_minus_momentum"])],
}
UNTRAINED = {"handwriting": 1.0}  # the validation metric of an output that has learnt nothing


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)


def _step(trials: pd.DataFrame) -> str:
    rows = []
    for task, cell in trials.groupby("task", sort=True):
        if len(cell) < MIN_TRIALS:
            rows.append([task, str(len(cell)), *["too few trials"] * len(INPUTS)])
            continue
        y = cell["value"].to_numpy(float)
        forests = [fit_forest(np.column_stack(inputs(cell)), y, trees=128, min_samples_leaf=5, seed=0, oob=True) for inputs in INPUTS.values()]
        rows.append([task, str(len(cell)), *(f"{forest.oob_score_:.3f}" for forest in forests)])
    return _table(["task", "trials", *(f"R^2 on {name}" for name in INPUTS)], rows)


def _hidden(trials: pd.DataFrame) -> str:
    edges = np.logspace(np.log10(20), np.log10(200), 4)
    rows = []
    for task, cell in trials.groupby("task", sort=True):
        cell = cell[cell["params_learning_rate"] / cell["params_one_minus_momentum"] >= STEP]
        if len(cell) < MIN_TRIALS:
            rows.append([task, str(len(cell)), "too few trials", "", ""])
            continue
        rho, p = stats.spearmanr(cell["params_hidden_size"], cell["value"])
        medians = cell.groupby(pd.cut(cell["params_hidden_size"], edges, include_lowest=True), observed=False)["value"].median()
        rows.append([task, str(len(cell)), f"{rho:+.2f}", f"{p:.2g}", " / ".join(f"{m:.4g}" for m in medians)])
    header = [f"task", f"trials with lr / (1 - m) >= {STEP:g}", "Spearman (hidden, metric)", "p", "median metric at hidden 20-43 / 43-93 / 93-200"]
    return _table(header, rows)


def _cut(trials: pd.DataFrame, max_epochs: int) -> str:
    top = best_trials(trials)
    variants = variant_order(top["variant"].unique())
    rows = []
    for task, cell in top.groupby("task", sort=True):
        counts = {v: f"{int((g['best_epoch'] == max_epochs).sum())}/{len(g)}" for v, g in cell.groupby("variant")}
        rows.append([task, *(counts.get(v, "-") for v in variants)])
    return _table(["best 10% still improving at the last epoch", *variants], rows)


def _draws(trials: pd.DataFrame) -> str:
    variants = variant_order(trials["variant"].unique())
    large = trials["params_learning_rate"] / trials["params_one_minus_momentum"] >= LARGE_STEP
    counts = trials[large].groupby(["task", "variant"]).size()
    totals = trials.groupby(["task", "variant"]).size()
    rows = [[task, *(f"{counts.get((task, v), 0)}/{totals.get((task, v), 0)}" for v in variants)] for task in sorted(trials["task"].unique())]
    return _table([f"complete trials with lr / (1 - m) >= {LARGE_STEP:g}", *variants], rows)


def _learnt(trials: pd.DataFrame) -> str:
    rows = []
    for task, start in UNTRAINED.items():
        cell = trials[trials["task"] == task]
        rows.append([task, str(len(cell)), str(int((cell["value"] < start).sum())), f"{start:g}"])
    return _table(["task", "trials", "validation metric below the untrained one", "untrained"], rows)


def tables(storage: str = STORAGE) -> dict[str, str]:
    loaded = load_odyssey_trials(open_existing(storage), "replication")
    trials = loaded.complete()
    spec = next(iter(loaded.study_attrs.values()))["study_spec"]
    return {"step": _step(trials), "hidden": _hidden(trials), "cut": _cut(trials, spec["training"]["max_epochs"]), "draws": _draws(trials), "learnt": _learnt(trials)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", default=STORAGE)
    for name, table in tables(parser.parse_args().storage).items():
        print(f"{name}:\n{table}\n")


if __name__ == "__main__":
    main()
