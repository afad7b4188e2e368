"""Pruned studies ([pruning]): the study file's table, trials stopped by Optuna's pruners and stored
PRUNED with their learning curves, resumed ones with the same curve, status and importance."""

import contextlib
import json
import math
import threading
import warnings

import numpy as np
import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from odyssey.optuna_private import RUNG_MARK
from odyssey.storage import open_storage
from odyssey.study import queue
from odyssey.study.cells import load_cells, open_study_storage, prepare
from odyssey.study.studyfile import StudyFileError, load_study_file
from odyssey.study.worker import build_tasks, run_trial, work

# The adding task at a tiny size: learning rates from 1e-6 (nothing learnt in 6 epochs) to 0.1.
STUDY = """
name = "pruned"
tasks = ["adding"]
variants = ["V"]
trials = {trials}
seed = 1
[training]
batch_size = 16
max_epochs = 6
patience = 50
[task_options.adding]
length = 10
train = 64
validation = 16
test = 16
[space]
hidden_size = 4
learning_rate = {{ low = 1e-6, high = 1e-1, log = true }}
"""
PRUNING = '\n[pruning]\npruner = "{pruner}"\n'


def write(tmp_path, text: str, name: str = "pruned.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "table, message",
    [
        ('pruner = "asha"', "'pruning.pruner' must be one of none, successive_halving, hyperband, median, got 'asha'"),
        ("pruner = 3", "'pruning.pruner' must be a string"),
        ('pruner = "median"\nmin_epochs = 0', "'pruning.min_epochs' must be a whole number from 1 to"),
        ('pruner = "median"\nmin_epochs = 7', "training.max_epochs (6), got 7"),
        ('pruner = "median"\nmin_epochs = 1.5', "'pruning.min_epochs' must be an integer"),
        ('pruner = "hyperband"\nreduction_factor = 1', "'pruning.reduction_factor' must be a whole number >= 2"),
        ('pruner = "hyperband"\nreduction_factor = true', "'pruning.reduction_factor' must be an integer"),
        ('pruner = "median"\nwarmup = 2', "unknown key 'pruning.warmup'"),
    ],
)
def test_bad_pruning_tables_are_one_line_errors_naming_file_and_key(tmp_path, cli, table, message):
    path = write(tmp_path, STUDY.format(trials=2) + f"\n[pruning]\n{table}\n")
    with pytest.raises(StudyFileError) as err:
        load_study_file(path)
    assert message in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)
    if "asha" in table:  # and on the command line: that line, exit 2
        done = cli("run", str(path), cwd=tmp_path, check=False)
        assert done.returncode == 2 and done.stderr.strip() == f"error: {err.value}"


def test_pruning_is_part_of_the_identity_but_none_leaves_the_digest_as_it_was(tmp_path, root):
    plain = load_study_file(write(tmp_path, STUDY.format(trials=2)))
    none = load_study_file(write(tmp_path, STUDY.format(trials=2) + PRUNING.format(pruner="none") + "min_epochs = 2\n"))
    median = load_study_file(write(tmp_path, STUDY.format(trials=2) + PRUNING.format(pruner="median")))
    halving = load_study_file(write(tmp_path, STUDY.format(trials=2) + PRUNING.format(pruner="successive_halving")))
    assert plain.digest() == none.digest() and "pruning" not in plain.canonical() and "pruning" not in none.canonical()
    assert len({plain.digest(), median.digest(), halving.digest()}) == 3
    assert median.canonical()["pruning"] == {"pruner": "median", "min_epochs": 1, "reduction_factor": 3}
    assert load_study_file(root / "replication" / "study.toml").digest() == "8adb00e506f4fe4b"


def test_a_pruned_study_stops_bad_trials_early_and_stores_them_pruned(tmp_path, cache, cli):
    study = write(tmp_path, STUDY.format(trials=10) + PRUNING.format(pruner="median"))
    cli("run", str(study), cwd=tmp_path)
    url = f"sqlite:///{tmp_path}/results/pruned.db"
    trials = optuna.load_study(study_name="pruned/adding/V", storage=url).trials
    assert len(trials) == 10 and sorted(t.system_attrs["odyssey_slot"] for t in trials) == list(range(10))
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert pruned and len(pruned) + len(complete) == 10, [(t.state, t.params) for t in trials]
    for t in trials:  # the learning curve: one value per epoch reached, as steps 1, 2, ...
        epochs = t.user_attrs["epochs"]
        assert sorted(t.intermediate_values) == list(range(1, epochs + 1)), t.number
    for t in pruned:
        attrs = t.user_attrs
        assert attrs["stopped"] == "pruned" and attrs["epochs"] < 6 and math.isfinite(attrs["test_metric"])
        assert attrs["best_validation"] == min(t.intermediate_values.values())
        assert t.value == t.intermediate_values[attrs["epochs"]]  # Optuna's: the last reported value
    assert all(t.user_attrs["epochs"] == 6 and t.user_attrs["stopped"] == "max_epochs" for t in complete)
    # Final: a second run queues and trains nothing again, and status counts them.
    cli("run", str(study), cwd=tmp_path)
    assert len(optuna.load_study(study_name="pruned/adding/V", storage=url).trials) == 10
    shown = cli("status", str(study), cwd=tmp_path).stdout
    header = next(line for line in shown.splitlines() if "pruned" in line and "cell" in line)
    row = next(line for line in shown.splitlines() if "pruned/adding/V" in line)
    columns = [c.strip() for c in header.strip("┃│ ").replace("┃", "│").split("│")]
    values = [c.strip() for c in row.strip("┃│ ").split("│")]
    assert values[columns.index("pruned")] == str(len(pruned))
    assert values[columns.index("remaining")] == "0"


def test_no_trial_is_pruned_at_its_last_epoch(tmp_path, cache, cli):
    """A rung at max_epochs (here 3 x 2 = 6) would store trials that trained to the end as PRUNED: left
    out of the variant tests as if stopped early, though pruning them saved nothing."""
    table = PRUNING.format(pruner="successive_halving") + "min_epochs = 3\nreduction_factor = 2\n"
    study = write(tmp_path, STUDY.format(trials=10) + table)
    cli("run", str(study), cwd=tmp_path)
    trials = optuna.load_study(study_name="pruned/adding/V", storage=f"sqlite:///{tmp_path}/results/pruned.db").trials
    stopped = {t.number: (t.state.name, t.user_attrs["epochs"]) for t in trials}
    assert {e for s, e in stopped.values() if s == "PRUNED"} == {3}, stopped
    assert {e for s, e in stopped.values() if s == "COMPLETE"} == {6}, stopped
    assert sum(s == "COMPLETE" for s, _ in stopped.values()) >= 2, stopped


class StopAfter:
    """A stop event that is set once the worker has looked at it `n` times (once per epoch): the user's
    Ctrl-C landing after epoch n's checkpoint, before its value was reported."""

    def __init__(self, n: int) -> None:
        self.looks, self.n = 0, n

    def is_set(self) -> bool:
        self.looks += 1
        return self.looks >= self.n


def _marks(trials) -> dict[str, float]:
    """The pruner's rung marks of a slot's trials, each held by one trial only (a retry does not copy its
    parent's: each rung counts a slot once)."""
    held = [{k: v for k, v in t.system_attrs.items() if k.startswith(RUNG_MARK)} for t in trials]
    marks = {k: v for h in held for k, v in h.items()}
    assert sum(map(len, held)) == len(marks), held
    return marks


def _storage_url(kind: str, folder, request) -> str:
    if kind == "postgres":
        return request.getfixturevalue("postgres")
    return f"journal://{folder}/s.log" if kind == "journal" else f"sqlite:///{folder}/s.db"


def _trials(url: str, cell: str) -> list:
    return optuna.load_study(study_name=cell, storage=open_storage(url)).trials


# "hyperband" as the study's name puts slot 0's trial 0 in bracket 1 (first rung at epoch 3) and its
# retry, trial 1, in bracket 0 by its number (Optuna's rule: crc32 of "<cell>_<number>" modulo the brackets'
# budgets 3 + 2); odyssey keeps a retry in its slot's bracket.
@pytest.mark.parametrize(
    "pruner, kind",
    [
        ("none", "sqlite"),
        ("successive_halving", "sqlite"),
        ("hyperband", "sqlite"),
        ("successive_halving", "journal"),
        ("hyperband", "postgres"),
    ],
)
def test_a_resumed_trial_has_the_learning_curve_of_an_uninterrupted_one(tmp_path, cache, request, pruner, kind):
    text = STUDY.format(trials=1).replace("1e-6", "1e-2") + PRUNING.format(pruner=pruner)
    text = text.replace('name = "pruned"', f'name = "{pruner}"')
    cell_name = f"{pruner}/adding/V"
    curves = {}
    for run in ("straight", "stopped"):
        folder = tmp_path / run
        folder.mkdir()
        study_file = load_study_file(write(folder, text))
        url = _storage_url(kind if run == "stopped" else "sqlite", folder, request)  # the reference on SQLite
        storage = open_study_storage(study_file, url)
        prepare(study_file, storage)
        if run == "stopped":
            cell = load_cells(study_file, storage)["adding", "V"]
            trial = queue.claim(cell, worker=queue.Worker.this_process(), retries=3)
            with pytest.raises(KeyboardInterrupt):
                run_trial(
                    trial,
                    study_file=study_file,
                    task=build_tasks(study_file)["adding"],
                    variant="V",
                    checkpoint_dir=folder / "checkpoints",
                    stop=StopAfter(3),
                )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            work(study_file, url, checkpoint_dir=folder / "checkpoints")
        assert not [w for w in caught if "already reported" in str(w.message)]
        curves[run] = _trials(url, cell_name)
    stopped, straight = curves["stopped"][-1], curves["straight"][-1]
    assert stopped.number == 1 and stopped.system_attrs["retry_history"] == [0]
    assert stopped.user_attrs["resumed_from_epoch"] == 3  # epoch 3 was checkpointed, then the stop
    assert stopped.state == straight.state == TrialState.COMPLETE
    assert sorted(stopped.intermediate_values) == list(range(1, 7))
    assert stopped.intermediate_values == pytest.approx(straight.intermediate_values, rel=1e-6)
    # The pruner judged the slot at the same rungs, on the same epochs' values, as if it had not been stopped.
    assert _marks(curves["stopped"]) == pytest.approx(_marks(curves["straight"]), rel=1e-6)
    assert bool(_marks(curves["straight"])) == (pruner != "none")


def test_a_trial_pruned_as_it_was_stopped_is_pruned_at_that_epoch_when_resumed(tmp_path, cache):
    """Seed 1's slot 1 is pruned at epoch 1 (validation 1.17 against slot 0's 0.86): a stop landing with that
    verdict gave the slot back, and its retry, holding the rung's mark, trained on past the rung."""
    text = STUDY.format(trials=2) + PRUNING.format(pruner="successive_halving")
    runs = {}
    for run in ("straight", "stopped"):
        folder = tmp_path / run
        folder.mkdir()
        study_file = load_study_file(write(folder, text))
        url = f"sqlite:///{folder}/s.db"
        storage = open_study_storage(study_file, url)
        prepare(study_file, storage)
        if run == "stopped":
            cell = load_cells(study_file, storage)["adding", "V"]
            task = build_tasks(study_file)["adding"]
            for stop in (threading.Event(), StopAfter(1)):  # slot 0 whole, then slot 1 stopped after epoch 1
                trial = queue.claim(cell, worker=queue.Worker.this_process(), retries=3)
                with contextlib.suppress(KeyboardInterrupt):
                    run_trial(
                        trial,
                        study_file=study_file,
                        task=task,
                        variant="V",
                        checkpoint_dir=folder / "checkpoints",
                        stop=stop,
                    )
        work(study_file, url, checkpoint_dir=folder / "checkpoints")
        runs[run] = optuna.load_study(study_name="pruned/adding/V", storage=url).trials
    straight, stopped = runs["straight"][1], runs["stopped"][-1]
    assert straight.state == TrialState.PRUNED and straight.user_attrs["epochs"] == 1
    assert stopped.system_attrs["retry_history"] == [1] and stopped.state == TrialState.PRUNED
    assert stopped.user_attrs["epochs"] == 1 and sorted(stopped.intermediate_values) == [1]


def test_importance_of_a_plain_optuna_study_with_pruned_trials_uses_the_complete_ones(tmp_path, cli, root):
    url = f"sqlite:///{tmp_path / 'plain.db'}"
    study = optuna.create_study(storage=url, study_name="plain", pruner=optuna.pruners.NopPruner())
    rng = np.random.default_rng(0)
    dists = {"x": FloatDistribution(0, 1), "y": FloatDistribution(0, 1)}
    for k in range(40):
        params = {name: float(rng.uniform()) for name in dists}
        pruned = k % 4 == 3
        value = 3 * params["x"] + 0.1 * params["y"]
        # A pruned trial's value is its last reported one, as Optuna stores it: infinite for one that blew up.
        curve = ({1: 5.0, 2: 4.0} if k != 7 else {1: math.inf}) if pruned else {1: 5.0, 2: 4.0, 3: value}
        study.add_trial(
            optuna.trial.create_trial(
                state=TrialState.PRUNED if pruned else TrialState.COMPLETE,
                value=curve[max(curve)],
                params=params,
                distributions=dists,
                intermediate_values=curve,
            )
        )
    done = cli("importance", "--storage", url, "--study", "plain", "--format", "json", "--refits", "0", cwd=root)
    data = json.loads(done.stdout)
    assert data["spaces"][0]["trials"] == 30, data["spaces"]
    assert data["terms"][0]["term"] == "x"
