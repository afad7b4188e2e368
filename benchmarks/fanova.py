"""How long exact all-pairs fANOVA takes on the paper's size: 5400 trials x 4 parameters.

    python benchmarks/fanova.py [--trials 5400] [--trees 32] [--repeats 3]

Prints the best of a few runs for fitting the forest and for decomposing it (main effects, all
pairs, marginal curves and surfaces), and their ratio: the decomposition is measured against the
forest fit of the same run, so the ratio means something on any machine.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import optuna

from odyssey.analysis.fanova import decompose_forest, fit_forest
from odyssey.analysis.importance import choose_scales
from odyssey.analysis.synthetic import PAPER_OFFSETS, write_synthetic_study
from odyssey.analysis.trials import PARAM_PREFIX, load_odyssey_trials


def best_of(repeats: int, work) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - started)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5400, help="trials in all (split over the nine variants)")
    parser.add_argument("--trees", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.InMemoryStorage()
    write_synthetic_study(storage, name="bench", trials=args.trials // len(PAPER_OFFSETS), failed=0, running=0, noise=0.02)
    trials = load_odyssey_trials(storage, "bench")
    rows, scales = trials.complete(), choose_scales(trials)
    x = np.column_stack([s.transform(rows[PARAM_PREFIX + s.param]) for s in scales])
    y = rows["value"].to_numpy(float)
    lows, highs = np.array([s.low for s in scales]), np.array([s.high for s in scales])

    fit_s, forest = best_of(args.repeats, lambda: fit_forest(x, y, trees=args.trees))
    all_s, result = best_of(args.repeats, lambda: decompose_forest(forest, lows=lows, highs=highs))
    main_s, _ = best_of(args.repeats, lambda: decompose_forest(forest, lows=lows, highs=highs, pairs=[]))
    leaves = np.mean([tree.tree_.n_leaves for tree in forest.estimators_])

    print(f"{len(rows)} trials x {len(scales)} parameters, {args.trees} trees of {leaves:.0f} leaves on average (best of {args.repeats})")
    print(f"forest fit:                      {fit_s:7.3f} s")
    print(f"fANOVA, main effects only:       {main_s:7.3f} s")
    print(f"fANOVA, all {len(result.pairs)} pairs + surfaces:    {all_s:7.3f} s  = {all_s / fit_s:.2f} x the forest fit")
    shares = {s.label: float(np.nanmean(result.main[:, d])) for d, s in enumerate(scales)}
    print("main-effect shares: " + ", ".join(f"{k} {v:.3f}" for k, v in shares.items()))


if __name__ == "__main__":
    main()
