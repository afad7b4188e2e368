"""`odyssey importance` on the paper's size (5400 trials x 4 parameters, all pairs) against loading alone.

    python benchmarks/fanova.py [--trials 5400] [--repeats 3]

The reference is what any analysis of the study must at least pay through Optuna:
`optuna.load_study(...).get_trials()` in a fresh Python process. The command runs in a fresh
process too (`python cli.py importance ... --format json`, with its intervals and noise
floor at their defaults), so interpreter start-up and imports count on both sides. The two
alternate and each reports its median; the target is a ratio under 2.

The study is one SQLite cell written the way `odyssey run` writes trials (the user attributes
every finished trial carries), cached in the temp folder: writing 5400 trials through Optuna takes
about a minute, once. Then it prints the parts of the command on the same trials, in this process:
reading, forest fit, decomposition with all pairs, the resampled fits.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from odyssey.analysis.fanova import decompose_forest  # noqa: E402
from odyssey.analysis.forest import fit_forest  # noqa: E402
from odyssey.analysis.importance import analyse, choose_scales  # noqa: E402
from odyssey.analysis.synthetic import write_synthetic_study  # noqa: E402
from odyssey.analysis.trials import PARAM_PREFIX, load_optuna_trials, open_existing  # noqa: E402

STUDY = "bench/toy/V"


def study_url(trials: int) -> str:
    """The cached benchmark storage, written on first use."""
    path = Path(tempfile.gettempdir()) / f"odyssey-fanova-bench-{trials}.db"
    url = f"sqlite:///{path}"
    if path.exists():
        try:
            if len(optuna.load_study(study_name=STUDY, storage=url).get_trials(deepcopy=False)) == trials:
                return url
        except KeyError:
            pass
        path.unlink()
    print(f"writing {trials} trials to {path} (once; about a minute)...", flush=True)
    write_synthetic_study(url, name="bench", variants=("V",), trials=trials, failed=0, running=0, noise=0.02)
    return url


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        raise SystemExit(f"{' '.join(command[:3])}... failed:\n{done.stderr}")
    return time.perf_counter() - started


def best_of(repeats: int, work) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5400)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = study_url(args.trials)

    load = [
        sys.executable,
        "-c",
        f"import optuna; optuna.load_study(study_name={STUDY!r}, storage={url!r}).get_trials()",
    ]
    command = [
        sys.executable,
        str(ROOT / "cli.py"),
        "importance",
        "--storage",
        url,
        "--study",
        STUDY,
        "--format",
        "json",
    ]
    loads, commands = [], []
    for _ in range(args.repeats):  # alternate: a busy machine slows both alike
        loads.append(timed(load))
        commands.append(timed(command))
    load_s, command_s = statistics.median(loads), statistics.median(commands)
    print(f"{args.trials} trials x 4 parameters, all pairs; median of {args.repeats}, fresh processes")
    print(f"optuna.load_study(...).get_trials():  {load_s:7.2f} s")
    print(
        f"odyssey importance (CLI, JSON):       {command_s:7.2f} s  = {command_s / load_s:.2f} x loading (target < 2)"
    )

    def read():
        return load_optuna_trials(open_existing(url), STUDY)

    read_s = best_of(args.repeats, read)
    trials = read()
    rows, scales = trials.complete(), choose_scales(trials)
    x = np.column_stack([s.transform(rows[PARAM_PREFIX + s.param]) for s in scales])
    y = rows["value"].to_numpy(float)
    lows, highs = np.array([s.low for s in scales]), np.array([s.high for s in scales])
    fit_s = best_of(args.repeats, lambda: fit_forest(x, y))
    forest = fit_forest(x, y)
    all_s = best_of(args.repeats, lambda: decompose_forest(forest, lows=lows, highs=highs))
    whole_s = best_of(1, lambda: analyse(rows, scales=scales))
    bare_s = best_of(1, lambda: analyse(rows, scales=scales, refits=0))
    print(
        f"in this process (best of {args.repeats}): read {read_s:.2f} s, forest fit {fit_s:.2f} s, "
        f"decomposition with all pairs {all_s:.2f} s;"
    )
    print(
        f"  the whole analysis {whole_s:.2f} s, of which the resamples and the noise floors' refits "
        f"{whole_s - bare_s:.2f} s"
    )


if __name__ == "__main__":
    main()
