"""Retrain the best trials of a task's cells: for longer, or all on one cell's hyperparameters (README.md here).

Retrains the best 10% (by validation) of each listed cell with the same hyperparameters and seeds,
here for at most --epochs with --patience, and compares the variants with vanilla again (Welch's
t-test on the test metric, as the report does). With --epochs 12 --patience 4 it retrains as the
study did: on the machine that ran a trial its test metric comes back to the last digit; on another
CPU the floating-point sums differ in their last bits, and a chaotic training (handwriting's CTC
plateau, an exploding gradient) can end elsewhere. A run that diverges is reported and left out, as
the study leaves out a failed trial.

With --from VARIANT every listed variant trains on that cell's best hyperparameters instead of its
own: the same configurations for all, so what differs is the cell, not the luck of the search's
draws (then a paired t-test too). --from each takes the best configuration of every cell of the
task instead, one per variant the study ran: where few draws train at all, those are ones that do,
and no variant gets more configurations picked for its own luck (its seed included) than another.

    python replication/longer.py --task chorales --variants V NOG NIAF NOAF --epochs 40 --patience 15
    python replication/longer.py --task speech --variants V CIFG --from CIFG --epochs 12 --patience 4
    python replication/longer.py --task handwriting --variants V NFG NOAF --from each --epochs 12 --patience 4
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time

import numpy as np
import torch
from scipy import stats

from odyssey.analysis import VANILLA, best_trials, load_odyssey_trials, open_existing
from odyssey.study import derive_seed, load_study_file, network_for, trial_settings
from odyssey.tasks import make_task
from odyssey.training import Diverged, TrainingConfig, train, training_threads

PREFIX = "params_"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", default="sqlite:///replication/replication.db")
    parser.add_argument("--study", default="replication/study.toml")
    parser.add_argument("--task", required=True)
    parser.add_argument("--variants", nargs="+", required=True)
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--patience", type=int, required=True)
    parser.add_argument(
        "--from",
        dest="source",
        help="train every variant on this variant's best hyperparameters, or on each cell's best ('each')",
    )
    args = parser.parse_args()
    with training_threads(1):  # as a study's worker trains
        retrain(args)


def retrain(args: argparse.Namespace) -> None:
    study_file = load_study_file(args.study)
    training: TrainingConfig = dataclasses.replace(study_file.training, max_epochs=args.epochs, patience=args.patience)
    task = make_task(args.task, seed=study_file.seed, **study_file.task_options.get(args.task, {}))
    trials = load_odyssey_trials(open_existing(args.storage), study_file.name).complete()
    trials = trials[trials["task"] == args.task]
    if args.source == "each":
        top = (
            trials.dropna(subset=["test_metric"]).sort_values(["value", "number"]).groupby("variant").head(1)
        )  # lower is better
    else:
        top = best_trials(trials[trials["variant"].isin([args.source] if args.source else args.variants)])
    runs = (
        [(variant, row._asdict()) for variant in args.variants for row in top.itertuples(index=False)]
        if args.source
        else [(row.variant, row._asdict()) for row in top.itertuples(index=False)]
    )
    tests: dict[str, list[float]] = {}
    source = (
        "each cell's best configuration"
        if args.source == "each"
        else f"{args.source}'s best 10%"
        if args.source
        else "the best 10%"
    )
    print(f"{args.task}: {source} retrained for at most {args.epochs} epochs, patience {args.patience}")
    print("variant | trial (of its cell) | hidden | stored test | retrained test | epochs | best epoch | seconds")
    for variant, row in runs:
        values = {k[len(PREFIX) :]: v for k, v in row.items() if k.startswith(PREFIX) and v == v}
        values["hidden_size"] = int(values["hidden_size"])
        config = trial_settings(training, values)
        seed = derive_seed(
            study_file.seed, args.task, row["variant"], row["number"]
        )  # a first attempt's slot is its number
        torch.manual_seed(seed)
        start = time.perf_counter()
        stored = f"{row['test_metric']:.4f}" if variant == row["variant"] else "-"
        try:
            result = train(network_for(task, variant, config), task, config=config, seed=seed)
        except Diverged as err:  # as the study counts it: a failed trial, left out of the statistics
            tests.setdefault(variant, []).append(math.nan)
            print(
                f"{variant} | {row['variant']} {row['number']} | {config.hidden_size} | {stored} | "
                f"diverged: {err} | | | {time.perf_counter() - start:.0f}"
            )
            continue
        tests.setdefault(variant, []).append(result.test)
        print(
            f"{variant} | {row['variant']} {row['number']} | {config.hidden_size} | {stored} | {result.test:.4f} | "
            f"{result.epochs} | {result.best_epoch} | {time.perf_counter() - start:.0f}"
        )
    reference = np.array(tests[VANILLA])
    print(f"\nvariant | runs | mean test | vs {VANILLA} | p (Welch)" + (" | p (paired)" if args.source else ""))
    for variant in args.variants:
        mine = np.array(tests[variant])
        done, both = np.isfinite(mine), np.isfinite(mine) & np.isfinite(reference) if args.source else None
        welch = (
            stats.ttest_ind(mine[done], reference[np.isfinite(reference)], equal_var=False).pvalue
            if variant != VANILLA
            else math.nan
        )
        paired = (
            f" | {stats.ttest_rel(mine[both], reference[both]).pvalue:.2g}"
            if args.source and variant != VANILLA
            else (" | " if args.source else "")
        )
        print(
            f"{variant} | {done.sum()} of {len(mine)} | {mine[done].mean():.4g} | "
            f"{mine[done].mean() - np.nanmean(reference):+.3g} | {welch:.2g}{paired}"
        )


if __name__ == "__main__":
    main()
