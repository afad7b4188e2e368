"""Which pruner settings a study could afford: an unpruned arm of benchmarks/fidelity.py replayed under each.

    python benchmarks/pruning_replay.py OUT                  # OUT: a fidelity.py --out folder with its unpruned arm
    python benchmarks/pruning_replay.py OUT --settings hyperband:1:3 hyperband:1:4 successive_halving:1:4

Every slot of the unpruned arm (fidelity-none.db) trained its network to the end and reported each epoch's
validation metric; a pruned run trains the same networks (slot k, the same seed) and reports the same
curve until it is stopped (fidelity.py checks it). So a pruned run is replayed here without training:
each cell's slots, in the order one worker claims them (`--jobs 1`: lowest slot first, the study's
cells in turn), report their stored curves to the pruner that `[pruning]` builds
(odyssey.study.cells.build_pruner, on an in-memory cell of the pruned study's name, so Hyperband's
brackets are the real run's), judged where a worker judges (not at the full budget), until pruned or
at its own end (patience). Replaying the arm that fidelity.py measured reproduces its pruned slots
and epochs exactly (checked below when OUT holds that arm too). With several workers the pruner's
decisions depend on their timing, so a real run differs somewhat.

Per setting: epochs trained against the unpruned arm's; CPU projected from each trial's own seconds
per epoch in the unpruned arm (the trial's fixed cost of claiming, building and testing left out,
0.2-0.3 s a trial); how many slots of each variant's best 10% (by the unpruned arm) were pruned; the
paired verdicts against V as the report gives them (each slot's trials compared at the budget level
both reached), with their pairs; the learning rate's share with its interval over the trials that
reached the full budget.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import replace
from pathlib import Path

import optuna
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from fidelity import VARIANTS, curves, learning_rate_share, pruned_in_best  # noqa: E402

from odyssey.analysis import load_odyssey_trials, open_existing  # noqa: E402
from odyssey.analysis.render import Table, to_markdown  # noqa: E402
from odyssey.analysis.study_analysis import study_tests  # noqa: E402
from odyssey.analysis.trials import Trials  # noqa: E402
from odyssey.optuna_private import storage_of, trial_id_of  # noqa: E402
from odyssey.record import SLOT, cell_name  # noqa: E402
from odyssey.study.cells import build_pruner  # noqa: E402
from odyssey.study.studyfile import load_study_file  # noqa: E402

SETTINGS = (
    "hyperband:1:3",
    "hyperband:2:3",
    "hyperband:3:3",
    "hyperband:1:4",
    "hyperband:1:5",
    "successive_halving:1:3",
    "successive_halving:1:4",
    "successive_halving:3:3",
)


def pruned_study(unpruned: Path, pruner: str, min_epochs: int, reduction_factor: int, where: Path) -> Path:
    """The unpruned arm's study file with this [pruning], named as fidelity.py names its pruned arm."""
    text = unpruned.read_text().replace('name = "fidelity-none"', 'name = "fidelity-hyperband"')
    head, _, _ = text.partition("[pruning]")
    path = where / f"replay-{pruner}-{min_epochs}-{reduction_factor}.toml"
    path.write_text(
        head + f'[pruning]\npruner = "{pruner}"\nmin_epochs = {min_epochs}\nreduction_factor = {reduction_factor}\n'
    )
    return path


def replay(study_path: Path, frame: pd.DataFrame) -> dict[tuple[str, int], int | None]:
    """(variant, slot) -> the epoch it was pruned at, or None where it trained to its own end."""
    study_file = load_study_file(study_path)
    (task,) = study_file.tasks
    max_epochs = study_file.training.max_epochs
    stopped = {}
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for variant in study_file.variants:
        cell = optuna.create_study(
            study_name=cell_name(study_file.name, task, variant),
            storage=optuna.storages.InMemoryStorage(),
            pruner=build_pruner(study_file),
        )
        mine = frame[frame["variant"] == variant].sort_values("slot")
        for slot, curve in zip(mine["slot"], mine["curve"]):
            trial = cell.ask()
            storage_of(cell).set_trial_system_attr(trial_id_of(trial), SLOT, int(slot))
            at = None
            for epoch in sorted(curve):
                trial.report(curve[epoch], epoch)
                if epoch < max_epochs and trial.should_prune():
                    at = epoch
                    break
            stopped[variant, int(slot)] = at
            if at is None:
                cell.tell(trial, min(curve.values()))
            else:
                cell.tell(trial, state=optuna.trial.TrialState.PRUNED)
    return stopped


def cut_trials(trials: Trials, at: list[int | None]) -> Trials:
    """The unpruned arm's trials as the replayed pruner leaves them: a trial stopped at epoch e is
    PRUNED after reporting epochs 1..e (its row of `trials.frame` in order, `at` its epoch or None)."""
    stopped = {(study, number): e for study, number, e in zip(trials.frame["study"], trials.frame["number"], at)}
    frame = trials.frame.assign(state=[s if e is None else "PRUNED" for s, e in zip(trials.frame["state"], at)])
    limit = [stopped.get((study, number)) for study, number in zip(trials.curves["study"], trials.curves["number"])]
    keep = [e is None or step <= e for e, step in zip(limit, trials.curves["step"])]
    return replace(trials, frame=frame, curves=trials.curves[keep].reset_index(drop=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="a benchmarks/fidelity.py --out folder holding fidelity-none.db")
    parser.add_argument("--settings", nargs="+", default=SETTINGS, help="pruner:min_epochs:reduction_factor")
    args = parser.parse_args()
    storage = open_existing(f"sqlite:///{args.out / 'fidelity-none.db'}")
    trials = load_odyssey_trials(storage, "fidelity-none")
    frame = trials.frame.copy()
    stored = curves(args.out / "fidelity-none.db", "fidelity-none")
    frame["curve"] = [stored[v, s] for v, s in zip(frame["variant"], frame["slot"])]
    frame["per_epoch"] = frame["seconds"] / frame["epochs"]
    full_tests = study_tests(trials).set_index("variant")
    full_epochs, full_seconds = frame["epochs"].sum(), frame["seconds"].sum()
    real = args.out / "fidelity-hyperband.db"
    rows = []
    for setting in args.settings:
        pruner, min_epochs, factor = setting.split(":")
        study = pruned_study(args.out / "fidelity-none.toml", pruner, int(min_epochs), int(factor), args.out)
        stopped = replay(study, frame)
        at = [stopped[v, s] for v, s in zip(frame["variant"], frame["slot"])]
        epochs = [e if a is None else a for e, a in zip(frame["epochs"], at)]
        seconds = sum(e * p for e, p in zip(epochs, frame["per_epoch"]))
        cut = cut_trials(trials, at)
        tests = study_tests(cut).set_index("variant")
        lost, best = pruned_in_best(frame, cut.frame)
        share = learning_rate_share(cut.complete(), trials)
        kept = cut.frame[cut.frame["state"] == "COMPLETE"]
        row = {
            "setting": setting,
            "epochs": f"{full_epochs / sum(epochs):.2f}x fewer",
            "CPU (projected)": f"{full_seconds / seconds:.2f}x less",
            "complete": len(kept),
            "best 10% pruned": f"{lost} of {best}",
            "learning-rate share": (
                f"{share[0]:.2f} [{share[1]:.2f}, {share[2]:.2f}]"
                if math.isfinite(share[0])
                else f"- ({share[3]} trials, too few)"
            ),
        }
        for variant in VARIANTS[1:]:
            verdict = tests.loc[variant]
            row[f"{variant} (unpruned: {full_tests.loc[variant, 'verdict']})"] = (
                f"{verdict['verdict']} ({int(verdict['pairs'])} pairs)"
                if "pairs" in verdict and not math.isnan(verdict["pairs"])
                else verdict["verdict"]
            )
        rows.append(row)
        if real.exists() and setting == _measured(args.out):
            _check(real, stopped)
    print(to_markdown([Table(pd.DataFrame(rows))]))


def _measured(out: Path) -> str:
    """The setting of the pruned arm fidelity.py measured in OUT."""
    pruning = load_study_file(out / "fidelity-hyperband.toml").pruning
    return f"{pruning.pruner}:{pruning.min_epochs}:{pruning.reduction_factor}"


def _check(real: Path, stopped: dict[tuple[str, int], int | None]) -> None:
    """The replay of the measured setting prunes the slots the measured run pruned, at the same epochs."""
    frame = load_odyssey_trials(open_existing(f"sqlite:///{real}"), "fidelity-hyperband").frame
    measured = {
        (v, int(s)): (int(e) if st == "PRUNED" else None)
        for v, s, e, st in zip(frame["variant"], frame["slot"], frame["epochs"], frame["state"])
    }
    differ = {k: (measured.get(k), v) for k, v in stopped.items() if measured.get(k) != v}
    print(f"replay against the measured run ({real}): {len(differ)} of {len(stopped)} slots differ {differ}")


if __name__ == "__main__":
    main()
