"""Whole trials per CPU-hour: `odyssey run` on a study, as one process with every core as a torch
thread against `--jobs` processes of one thread each, each run on a fresh storage; with `--pack K`,
`--jobs` workers training alone against the same workers training packs of K (issue 24).

    python benchmarks/trials.py                 # studies/quick.toml and a batch-1 study, once each
    python benchmarks/trials.py --rounds 2      # alternated twice; medians
    python benchmarks/trials.py --quick         # a third of the trials
    python benchmarks/trials.py --pack 8        # the paper protocol's chorales cell, alone and in packs
    python benchmarks/trials.py --pack 64 --device cuda  # the packs on a GPU, against the CPU alone

The batch-1 study is the paper's protocol (one update per sequence) on JapaneseVowels with three
variants and a short budget, written to a temporary file. CPU-hours count every core of the
machine for the run's wall time: both settings occupy all of them. With --pack the studies are the
paper protocol's chorales cell (batch 1, the paper's space, V, NFG, CIFG and FGR, a short budget),
the same at hidden size 200 and with hidden sizes 20-50 only; memory is the largest worker's peak resident set
(its VmHWM, read from /proc as it runs) over the trials it trains at once. With --device cuda the
packs train on the GPU (`odyssey run --device cuda`, the card named in the header) and the
trials per CPU-hour still count every core for the run's wall time.
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
CHORALES_CELL = """name = "chorales-cell"
description = "the paper's protocol on chorales (batch 1, the paper's space), four variants, a short budget"
tasks = ["chorales"]
variants = ["V", "NFG", "CIFG", "FGR"]
trials = {trials}
sampler = "random"
seed = 0

[training]
batch_size = 1
max_epochs = {epochs}
patience = 15
{space}"""
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


def worker_peaks(root: int) -> dict[int, int]:
    """pid -> peak resident set (VmHWM, KiB) of every worker process (multiprocessing's spawn) below `root`."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    below, found = {root}, {}
    for _ in range(4):  # the run, its workers, their helpers
        below |= {pid for pid, parent in parents.items() if parent in below}
    for pid in below - {root}:
        try:
            if b"spawn_main" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                continue
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        found[pid] = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0)
    return found


def run_study(study: Path, args: list[str], env: dict[str, str], where: Path, *, peak: list | None = None) -> float:
    """Wall seconds of one `odyssey run` of the study on a fresh storage under `where`; `peak` gets the largest
    worker's peak resident set in MiB (read from /proc while it runs: Linux)."""
    storage = where / f"run-{time.monotonic_ns()}"
    command = [sys.executable, str(ROOT / "cli.py"), "run", str(study), "--storage", f"sqlite:///{storage}.db",
               "--checkpoint-dir", str(storage), *args]  # fmt: skip
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peaks: dict[int, int] = {}
    while process.poll() is None:
        if peak is not None:
            for pid, kib in worker_peaks(process.pid).items():
                peaks[pid] = max(peaks.get(pid, 0), kib)
        time.sleep(0.2)
    seconds = time.perf_counter() - start
    out, err = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"odyssey run failed ({process.returncode}):\n{out[-2000:]}\n{err[-2000:]}")
    if peak is not None:
        peak.append(max(peaks.values(), default=0) / 1024)
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
    parser.add_argument("--pack", type=int, help="compare --jobs alone with --jobs --pack K on the chorales cell")
    parser.add_argument("--trials", type=int, default=64, help="with --pack: trials per variant (a quarter at H=200)")
    parser.add_argument("--epochs", type=int, default=2, help="with --pack: max_epochs of every trial")
    parser.add_argument("--device", default="cpu", help="with --pack: where the packs train (cpu, cuda)")
    args = parser.parse_args()
    if args.pack:
        return packs(args)
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


def packs(args: argparse.Namespace) -> None:
    """--jobs {cores} alone against --jobs {cores} --pack K, alternated, on the chorales cell and at H = 200."""
    cores = os.cpu_count() or 1
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env["ODYSSEY_CACHE_DIR"] = os.environ.get("ODYSSEY_CACHE_DIR", str(Path.home() / ".cache" / "odyssey"))
    packed = ["--jobs", str(cores), "--pack", str(args.pack)]
    packed += ["--device", args.device] if args.device != "cpu" else []
    settings = {f"--jobs {cores}": ["--jobs", str(cores)], " ".join(packed): packed}
    card = ""
    if args.device != "cpu":
        import torch  # only here: the CPU rows need no torch in this process

        card = f"; packs on {torch.cuda.get_device_name(torch.device(args.device))}"
    studies = {
        "chorales cell, the paper's space": (args.trials, ""),
        "chorales cell, hidden size 200": (max(args.pack, args.trials // 4), "\n[space]\nhidden_size = 200\n"),
        "chorales cell, hidden sizes 20-50": (args.trials, "\n[space]\nhidden_size = { low = 20, high = 50 }\n"),
    }
    print(f"{cores} cores{card}; `odyssey run` on a fresh storage, median of {args.rounds} alternated run(s); "
          f"{args.epochs} epochs per trial\n")  # fmt: skip
    print("| study | trials | setting | wall s | trials per CPU-hour | vs alone | worker's peak MiB | per trial |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp)
        for label, (per_variant, space) in studies.items():
            study = where / f"cell-{per_variant}.toml"
            study.write_text(CHORALES_CELL.format(trials=per_variant, epochs=args.epochs, space=space))
            warm = where / "warm.toml"
            warm.write_text(CHORALES_CELL.format(trials=1, epochs=1, space=space))
            run_study(warm, [], env, where)  # the data and the kernel, built untimed
            trials = 4 * per_variant
            seconds = {name: [] for name in settings}
            peaks = {name: [] for name in settings}
            for _ in range(args.rounds):
                for name, extra in settings.items():
                    seconds[name].append(run_study(study, extra, env, where, peak=peaks[name]))
            alone = statistics.median(next(iter(seconds.values())))
            for (name, times), in_flight in zip(seconds.items(), (1, args.pack)):
                wall = statistics.median(times)
                print(
                    f"| {label} | {trials} | {name} | {wall:.1f} | {trials / (wall * cores / 3600):.0f} | "
                    f"{alone / wall:.2f}x | {max(peaks[name]):.0f} | {max(peaks[name]) / in_flight:.0f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
