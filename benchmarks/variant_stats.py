"""The variant verdicts' error rates and power, simulated on synthetic studies with known truth.

    python benchmarks/variant_stats.py                   # 100 null studies, 10 paper-shaped, random and paired
    python benchmarks/variant_stats.py --null 200 --paper 20

Null: every variant is vanilla (3 tasks x 9 variants x 50 trials, noise 0.05, as issue 22 measured
it): how many studies call any variant different (Holm promises at most 5% in expectation), and
how many call one the same as V (correct here, but 5 best trials against 5 cannot show it at the
default margin). Paper-shaped: PAPER_OFFSETS (NFG +0.12, NOAF +0.10, NIG/NOG/NIAF +0.02, FGR +0.01,
the rest 0) at --trials per cell: how many cells find each variant worse, and how many call a
variant better (none is). tests/analysis/test_variant_stats.py runs a smaller deterministic version.

Measured on this repository's 2-core machine (2026-12-06, beside other work; the counts do not
depend on the machine): null, random, 100 studies: 8 called a variant different (Holm's 5% is for
normal data; these are the 5 best of 50 by validation, not normal), 0 cells called equivalent (5
best trials cannot show it at one SD); null, paired: 4 of 100, and 1,528 of 2,400 cells rightly
called equivalent (50 pairs can); paper-shaped, random at 200 trials (30 cells per variant): NFG
and NOAF worse in 30 of 30, NIG 2, NOG 3, NIAF 3 (true +0.02), none better; paired at 50 trials:
NFG and NOAF 30 of 30, NIG 4, NOG 3, NIAF 2, NP worse in 1 (a false one of 270 null cells), none
better. Before the correction (commit 4a16c90) 14 of 20 null studies called a variant different.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

import optuna

from odyssey.analysis.synthetic import PAPER_OFFSETS, write_synthetic_study
from odyssey.analysis.trials import load_odyssey_trials
from odyssey.analysis.variant_stats import variant_tests

NULL = {variant: 0.0 for variant in PAPER_OFFSETS}


def simulate(studies: int, *, offsets: dict[str, float], trials: int, paired: bool) -> tuple[int, Counter, Counter]:
    """(studies calling any variant different, cells per verdict "worse" / "better" by variant,
    cells "equivalent" by variant)."""
    different, found, same = 0, Counter(), Counter()
    for seed in range(studies):
        storage = optuna.storages.InMemoryStorage()
        write_synthetic_study(
            storage, tasks=("a", "b", "c"), trials=trials, noise=0.05, seed=seed, offsets=offsets, paired=paired
        )
        tests = variant_tests(load_odyssey_trials(storage, "synthetic").complete(), paired=paired)
        different += bool(tests["significant"].eq(True).any())
        for row in tests.itertuples():
            if row.verdict in ("worse", "better"):
                found[(row.variant, row.verdict)] += 1
            elif row.verdict == "equivalent":
                same[row.variant] += 1
    return different, found, same


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--null", type=int, default=100, help="null studies per design")
    parser.add_argument("--paper", type=int, default=10, help="paper-shaped studies per design")
    parser.add_argument("--trials", type=int, default=200, help="trials per cell of the paper-shaped random studies")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for paired in (False, True):
        design = "paired" if paired else "random"
        start = time.perf_counter()
        different, _, same = simulate(args.null, offsets=NULL, trials=50, paired=paired)
        print(
            f"null, {design}: {different} of {args.null} studies called a variant different; "
            f"{sum(same.values())} cells called equivalent ({time.perf_counter() - start:.0f} s)"
        )
        trials = 50 if paired else args.trials
        _, found, _ = simulate(args.paper, offsets=PAPER_OFFSETS, trials=trials, paired=paired)
        cells = 3 * args.paper
        print(
            f"paper-shaped, {design}, {trials} trials per cell ({cells} cells per variant): "
            + ", ".join(f"{v} {verdict} {n}" for (v, verdict), n in sorted(found.items()))
        )


if __name__ == "__main__":
    main()
