"""Whole trials per CPU-hour: `odyssey run` on a study, as one process with every core as a torch
thread against `--jobs` processes of one thread each, each run on a fresh storage.

    python benchmarks/trials.py                 # studies/quick.toml and a batch-1 study, once each
    python benchmarks/trials.py --rounds 2      # alternated twice; medians
    python benchmarks/trials.py --quick         # a third of the trials

The batch-1 study is the paper's protocol (one update per sequence) on JapaneseVowels with three
variants and a short budget, written to a temporary file. CPU-hours count every core of the
machine for the run's wall time: both settings occupy all of them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BATCH_ONE = """name = "batch1"
description = "one update per sequence on vowels, short budget"
tasks = ["vowels"]
variants = ["V", "NFG", "CIFG"]
trials = 6
sampler = "random"
seed = 0

[training]
batch_size = 1
max_epochs = 4
patience = 2

[space]
learning_rate = { low = 1e-3, high = 1e-1, log = true }
hidden_size = { low = 8, high = 64, log = true }
"""
# (label, arguments of `odyssey run`, environment). The odyssey command sets OMP_WAIT_POLICY=PASSIVE
# unless told otherwise; ACTIVE with libgomp's default spin count is what torch does without it.
SETTINGS = {
    "1 process, {cores} threads, OpenMP threads spinning (torch's default)": (
        [],
        {"OMP_WAIT_POLICY": "ACTIVE", "GOMP_SPINCOUNT": "300000"},
    ),
    "1 process, {cores} threads (odyssey's default, OMP_WAIT_POLICY=PASSIVE)": ([], {}),
    "--jobs {cores}, 1 thread each": (["--jobs", "{cores}"], {}),
}


def run_study(study: Path, args: list[str], env: dict[str, str], where: Path) -> float:
    """Wall seconds of one `odyssey run` of the study on a fresh storage under `where`."""
    storage = where / f"run-{time.monotonic_ns()}"
    command = [sys.executable, str(ROOT / "cli.py"), "run", str(study), "--storage", f"sqlite:///{storage}.db",
               "--checkpoint-dir", str(storage), *args]  # fmt: skip
    start = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"odyssey run failed ({result.returncode}):\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return seconds


def trimmed(study: Path, share: float, where: Path) -> tuple[Path, str, int]:
    """A copy of the study with `share` of its trials (at least one per cell): its path, the study's
    name and its number of trials."""
    text = study.read_text()
    spec = tomllib.loads(text)
    per_cell = max(1, round(spec["trials"] * share))
    out = where / f"{study.stem}-{per_cell}-per-cell.toml"
    out.write_text(text.replace(f"trials = {spec['trials']}", f"trials = {per_cell}", 1))
    return out, spec["name"], per_cell * len(spec["tasks"]) * len(spec["variants"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="a third of each study's trials")
    parser.add_argument(
        "--studies", nargs="+", type=Path, help="study files (default: studies/quick.toml and the batch-1 study)"
    )
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp)
        batch_one = where / "batch1.toml"
        batch_one.write_text(BATCH_ONE)
        studies = args.studies or [ROOT / "studies" / "quick.toml", batch_one]
        env = {
            **os.environ,
            "ODYSSEY_CACHE_DIR": os.environ.get("ODYSSEY_CACHE_DIR", str(Path.home() / ".cache" / "odyssey")),
        }
        print(
            f"{cores} cores; wall time of `odyssey run` on a fresh storage, median of {args.rounds} alternated run(s)\n"
        )
        print("| study | trials | setting | wall s | trials per CPU-hour | speed vs 1 process |")
        print("|---|---|---|---|---|---|")
        for study in studies:
            run_study(trimmed(study, 0.0, where)[0], [], env, where)  # a trial per cell: data and kernel built untimed
            study, name, trials = trimmed(study, 1 / 3 if args.quick else 1.0, where)
            seconds = {label: [] for label in SETTINGS}
            for _ in range(args.rounds):
                for label, (extra, variables) in SETTINGS.items():
                    run_args = [a.format(cores=cores) for a in extra]
                    seconds[label].append(
                        run_study(
                            study,
                            run_args,
                            {k: v for k, v in env.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
                            | variables,
                            where,
                        )
                    )
            first = statistics.median(next(iter(seconds.values())))
            for label, times in seconds.items():
                wall = statistics.median(times)
                print(
                    f"| {name} | {trials} | {label.format(cores=cores)} | {wall:.1f} | "
                    f"{trials / (wall * cores / 3600):.0f} | {first / wall:.2f}x |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
