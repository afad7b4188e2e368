"""What pruning costs in answers: the same configurations trained to the end and under Hyperband.

    python benchmarks/fidelity.py                    # chorales, 4 variants x 40 paired slots, 30 epochs
    python benchmarks/fidelity.py --trials 6 --max-epochs 6 --jobs 1    # a quick look
    python benchmarks/fidelity.py --out results/fidelity --keep         # keep both storages

On the real chorales with the paper's search space (batch 1, at most 30 epochs, patience 15), the
variants V, NFG, NOAF and CIFG run twice from one seed with `sampler = "paired"`: with `pruner =
"none"` and with `pruner = "hyperband"`. Draws and training seeds come from (seed, task, variant,
slot), not from the study's name, so slot k trains the same network in both runs, and a trial the
pruner stopped is the unpruned run's trial cut short (the table checks it: its reported curve equals
the unpruned one's first epochs). Side by side: CPU-hours (every process of the run, from the
kernel's accounting), the best value and the best-10% mean per variant, the verdicts against V, the
learning rate's share of the variance with its interval, and how many pruned trials would have ended
in their variant's best 10% had they run on. `benchmarks/pruning_replay.py OUT` replays the unpruned
arm under other pruner settings without training.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from odyssey.analysis import analyse, choose_scales, load_odyssey_trials, open_existing, terms_table  # noqa: E402
from odyssey.analysis.render import Table, to_markdown  # noqa: E402
from odyssey.analysis.study_analysis import pruned_counts, study_tests  # noqa: E402
from odyssey.analysis.variant_stats import best_trials  # noqa: E402

VARIANTS = ("V", "NFG", "NOAF", "CIFG")
ARMS = ("none", "hyperband")
STUDY = """name = "fidelity-{pruner}"
description = "benchmarks/fidelity.py: chorales, paper space, batch 1, pruner {pruner}"
tasks = ["chorales"]
variants = {variants}
trials = {trials}
sampler = "paired"
seed = {seed}

[training]
batch_size = 1
max_epochs = {max_epochs}
patience = 15

[pruning]
pruner = "{pruner}"
min_epochs = {min_epochs}
reduction_factor = {reduction_factor}
"""


def study_text(pruner: str, *, trials: int, max_epochs: int, seed: int, min_epochs: int, reduction_factor: int) -> str:
    variants = "[" + ", ".join(f'"{v}"' for v in VARIANTS) + "]"
    return STUDY.format(
        pruner=pruner, variants=variants, trials=trials, max_epochs=max_epochs, seed=seed, min_epochs=min_epochs,
        reduction_factor=reduction_factor,
    )  # fmt: skip


def children_cpu() -> float:
    """CPU seconds (user + system) of every finished child process and theirs."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_arm(study: Path, storage: Path, *, jobs: int) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one `odyssey run` of the study on a new storage, kept beside it
    in a .cost file: a second call with the same --out reads it instead of running again (a resumed
    run would count only its own part of the CPU, so a storage without its .cost is refused)."""
    cost = storage.with_suffix(".cost")
    if cost.exists():
        cpu, wall = map(float, cost.read_text().split())
        return cpu, wall
    if storage.exists():
        sys.exit(f"{storage}: exists without its measured cost; remove it or give another --out")
    command = [sys.executable, str(ROOT / "cli.py"), "run", str(study), "--storage", f"sqlite:///{storage}",
               "--checkpoint-dir", str(storage.with_suffix(".checkpoints")), "--jobs", str(jobs)]  # fmt: skip
    cpu, start = children_cpu(), time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    cpu, wall = children_cpu() - cpu, time.perf_counter() - start
    cost.write_text(f"{cpu} {wall}\n")
    return cpu, wall


def curves(storage: Path, name: str) -> dict[tuple[str, int], dict[int, float]]:
    """Each slot's reported curve (epoch -> validation metric), by (variant, slot)."""
    import optuna

    from odyssey.record import SLOT, slot_trials
    from odyssey.record import STUDY as STUDY_ATTR

    store = open_existing(f"sqlite:///{storage}")
    out = {}
    for summary in store.get_all_studies():
        if summary.user_attrs.get(STUDY_ATTR) != name:
            continue
        variant = summary.study_name.split("/")[-1]
        for t in slot_trials(optuna.load_study(study_name=summary.study_name, storage=store).trials):
            out[variant, t.system_attrs[SLOT]] = dict(t.intermediate_values)
    return out


def learning_rate_share(complete: pd.DataFrame, trials) -> tuple[float, float, float, int]:
    """(share, low, high, trials) of the learning rate's main effect over the arm's complete trials."""
    try:
        result = analyse(complete, scales=choose_scales(trials))
    except Exception as err:  # too few trials at the full budget: say so in the table
        print(f"  learning-rate share not computed: {err}", file=sys.stderr)
        return math.nan, math.nan, math.nan, len(complete)
    table = terms_table(result)
    row = table[table["params"].map(lambda p: p == ["learning_rate"])].iloc[0]
    return float(row["mean"]), float(row["low"]), float(row["high"]), len(complete)


def arm_table(storage: Path, name: str) -> tuple[pd.DataFrame, pd.DataFrame, tuple, pd.DataFrame]:
    """(per-variant table, verdicts, learning-rate share, all trials) of one arm."""
    trials = load_odyssey_trials(open_existing(f"sqlite:///{storage}"), name)
    frame, complete = trials.frame, trials.complete()
    top = best_trials(complete, pruned=pruned_counts(trials))
    tests = study_tests(trials)  # as the report tests them
    rows = []
    for variant in VARIANTS:
        mine = frame[frame["variant"] == variant]
        done = complete[complete["variant"] == variant]
        rows.append(
            {
                "variant": variant,
                "complete": len(done),
                "pruned": int((mine["state"] == "PRUNED").sum()),
                "epochs": float(mine["epochs"].sum()),
                "best": float(done["value"].min()) if len(done) else math.nan,
                "best_slot": int(done.loc[done["value"].idxmin(), "slot"]) if len(done) else -1,
                "best_10%_mean": float(top[top["variant"] == variant]["test_metric"].mean()),
            }
        )
    return pd.DataFrame(rows), tests, learning_rate_share(complete, trials), frame


def pruned_in_best(full: pd.DataFrame, pruned: pd.DataFrame) -> tuple[int, int]:
    """(pruned trials whose slot, trained to the end in the unpruned arm, is in its variant's best 10%;
    how many slots those best 10% hold)."""
    top = best_trials(full[(full["state"] == "COMPLETE") & full["value"].notna()].reset_index(drop=True))
    best = set(zip(top["variant"], top["slot"]))
    stopped = pruned[pruned["state"] == "PRUNED"]
    return sum((v, s) in best for v, s in zip(stopped["variant"], stopped["slot"])), len(best)


def curve_gap(full: dict, cut: dict) -> float:
    """The largest difference between a slot's curve in the two arms over the epochs both reported:
    0 when the pruned run trained the same networks (CPU float rounding aside)."""
    gaps = [abs(full[k][e] - c[e]) for k, c in cut.items() if k in full for e in c if e in full[k]]
    return max(gaps, default=math.nan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40, help="paired slots per variant")
    parser.add_argument("--max-epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-epochs", type=int, default=1, help="Hyperband's [pruning] min_epochs")
    parser.add_argument("--reduction-factor", type=int, default=3, help="Hyperband's [pruning] reduction_factor")
    parser.add_argument("--jobs", type=int, default=max(1, min(2, (os.cpu_count() or 2) - 1)))
    parser.add_argument("--out", type=Path, help="folder for the study files, storages and tables (kept)")
    parser.add_argument(
        "--arm", choices=ARMS, help="run this arm only (e.g. both at once in two processes with one --out); "
        "the table is printed by the call that finds both measured"
    )  # fmt: skip
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        out = args.out or Path(scratch)
        out.mkdir(parents=True, exist_ok=True)
        costs, tables, tests, shares, frames, curve = {}, {}, {}, {}, {}, {}
        for pruner in [args.arm] if args.arm else ARMS:
            study = out / f"fidelity-{pruner}.toml"
            study.write_text(
                study_text(pruner, trials=args.trials, max_epochs=args.max_epochs, seed=args.seed,
                           min_epochs=args.min_epochs, reduction_factor=args.reduction_factor)
            )  # fmt: skip
            storage = out / f"fidelity-{pruner}.db"
            costs[pruner] = run_arm(study, storage, jobs=args.jobs)
        if not all(out.joinpath(f"fidelity-{pruner}.cost").exists() for pruner in ARMS):
            return
        for pruner in ARMS:
            storage = out / f"fidelity-{pruner}.db"
            costs[pruner] = run_arm(out / f"fidelity-{pruner}.toml", storage, jobs=args.jobs)
            tables[pruner], tests[pruner], shares[pruner], frames[pruner] = arm_table(storage, f"fidelity-{pruner}")
            curve[pruner] = curves(storage, f"fidelity-{pruner}")
        report(args, out, costs, tables, tests, shares, frames, curve)


def cpu_name() -> str:
    """The CPU's model name (Linux), else the architecture."""
    info = Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.exists() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    wide = any(line.startswith("flags") and " avx512f" in line for line in lines)
    return (names[0] if names else platform.machine()) + (" (AVX-512)" if wide else "")


def report(args, out: Path, costs, tables, tests, shares, frames, curve) -> None:
    machine = f"{cpu_name()}, {os.cpu_count()} cores"
    none, band = ARMS
    print(
        f"chorales, paper space, batch 1, max {args.max_epochs} epochs, {args.trials} paired slots x "
        f"{len(VARIANTS)} variants, --jobs {args.jobs}; {machine}; {time.strftime('%Y-%m-%d')}\n"
    )

    def lr(arm: str) -> str:
        share, low, high, n = shares[arm]
        return f"{share:.2f} [{low:.2f}, {high:.2f}] ({n} trials)"

    arms = pd.DataFrame(
        {
            "": [
                "CPU-hours (all processes)",
                "wall minutes",
                "epochs trained",
                "trials complete / pruned",
                "learning-rate share [90% interval]",
            ],  # fmt: skip
            **{
                a: [
                    f"{costs[a][0] / 3600:.3f}",
                    f"{costs[a][1] / 60:.1f}",
                    f"{tables[a]['epochs'].sum():.0f}",
                    f"{tables[a]['complete'].sum()} / {tables[a]['pruned'].sum()}",
                    lr(a),
                ]  # fmt: skip
                for a in ARMS
            },
        }
    )
    side = tables[none].merge(tables[band], on="variant", suffixes=(f" {none}", f" {band}"))
    # The verdict of a paired study is a paired t-test over its slots: of the test metric, every slot
    # complete, unpruned; of the validation value at the budget both trials of a slot reached, pruned.
    verdicts = {a: tests[a].set_index("variant")["verdict"] for a in ARMS}
    for a in ARMS:
        indexed = tests[a].set_index("variant")
        side[f"verdict {a}"] = side["variant"].map(verdicts[a]).fillna("")
        side[f"paired difference {a}"] = side["variant"].map(indexed["all_difference"])
        side[f"pairs {a}"] = side["variant"].map(indexed["pairs"])
    print(to_markdown([Table(arms), Table(side)]))
    same = all(verdicts[none].get(v) == verdicts[band].get(v) for v in VARIANTS)
    print(f"CPU none / hyperband: {costs[none][0] / costs[band][0]:.2f}x; same verdicts: {'yes' if same else 'no'}")
    lost, best = pruned_in_best(*frames.values())
    found = (side[f"best_slot {none}"] == side[f"best_slot {band}"]).sum()
    print(f"pruned trials that would have ended in their variant's best 10%: {lost} of the {best} slots there")
    print(f"variants whose best configuration the pruned run also trained to the end: {found} of {len(side)}")
    print(f"largest difference between a slot's curves in the two runs: {curve_gap(*curve.values()):.2g}")
    side.to_csv(out / "fidelity.csv", index=False)
    arms.to_csv(out / "fidelity_arms.csv", index=False)
    if args.out is None:
        print("(storages discarded: give --out to keep them)")


if __name__ == "__main__":
    main()
