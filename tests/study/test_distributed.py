"""Many workers, one study: PostgreSQL and SQLite under concurrent workers, SIGKILLs and bad input.

PostgreSQL comes from ODYSSEY_TEST_POSTGRES (set by .ci/run) or is installed and started here by
.ci/postgres.sh when running as root; the PostgreSQL tests skip, saying why, only when neither works.
"""

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from odyssey.errors import OdysseyError
from odyssey.optuna_private import RUNG_MARK
from odyssey.storage import mask_url, open_storage, writable_folder
from odyssey.study.status import status_rows

STUDY = """
name = "dist"
tasks = ["adding"]
variants = ["V", "NP"]
trials = {trials}
seed = 5
retries = 100  # the kill tests may kill one trial's workers many times: it must still complete
[training]
batch_size = {batch_size}
max_epochs = {epochs}
patience = 50
[task_options.adding]
length = 20
train = {train}
validation = 16
test = 16
[space]
hidden_size = 6
learning_rate = {{ low = 1e-3, high = 1e-2, log = true }}
"""


def write_study(
    folder: Path, *, trials: int, epochs: int = 2, batch_size: int = 16, train: int = 64, pruner: str = "none"
) -> Path:
    path = folder / "dist.toml"
    text = STUDY.format(trials=trials, epochs=epochs, batch_size=batch_size, train=train)
    path.write_text(text + f'\n[pruning]\npruner = "{pruner}"\nmin_epochs = 1\n' * (pruner != "none"))
    return path


@pytest.fixture(scope="session")
def start(odyssey_command):
    """Start a worker: `odyssey run STUDY --storage URL` in the background."""

    def worker(study: Path, storage: str, cwd: Path) -> subprocess.Popen:
        return subprocess.Popen(
            [*odyssey_command, "run", str(study), "--storage", storage],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    return worker


def finish(proc: subprocess.Popen, timeout: float = 900) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"worker failed ({proc.returncode}): {err}"
    return out + err


def all_trials(url: str) -> dict[str, list[optuna.trial.FrozenTrial]]:
    storage = open_storage(url)  # as the workers open it: it may be polled while they create it
    names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
    return {n: optuna.load_study(study_name=n, storage=storage).get_trials() for n in names}


def test_workers_starting_together_on_a_new_sqlite_file_all_open_it(tmp_path):
    """SQLite reports the schema race as "table ... already exists": the losers must retry."""
    opener = (
        "import sys, time\nfrom odyssey.storage import open_storage\n"
        "while time.time() < float(sys.argv[2]): pass\nopen_storage(sys.argv[1])"
    )
    for attempt in range(2):
        url, start_at = f"sqlite:///{tmp_path}/race{attempt}.db", time.time() + 3
        openers = [
            subprocess.Popen(
                [sys.executable, "-W", "ignore", "-c", opener, url, str(start_at)], stderr=subprocess.PIPE, text=True
            )
            for _ in range(4)
        ]
        errors = [p.communicate()[1] for p in openers]
        assert all(p.returncode == 0 for p in openers), errors


def assert_planned_exactly_once(
    storage: str, planned: int, *, states: tuple[TrialState, ...] = (TrialState.COMPLETE,)
) -> list[optuna.trial.FrozenTrial]:
    """Each cell: `planned` trials finished in one of `states` (COMPLETE), one per slot; nothing RUNNING or
    WAITING left."""
    completed = []
    for name, trials in all_trials(storage).items():
        done = [t for t in trials if t.state in states and not t.user_attrs.get("surplus")]
        table = [
            (
                t.number,
                t.state.name,
                t.system_attrs.get("odyssey_slot"),
                t.system_attrs.get("retry_history"),
                t.user_attrs.get("worker"),
            )
            for t in trials
        ]
        assert sorted(t.system_attrs["odyssey_slot"] for t in done) == list(range(planned)), (name, table)
        assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)], (name, table)
        completed += done
    return completed


def test_four_workers_on_one_postgres_study(postgres, tmp_path, cache, cli, start):
    study = write_study(tmp_path, trials=6)
    workers = [start(study, postgres, tmp_path) for _ in range(4)]  # all at once: schema and cells race
    outputs = [finish(w) for w in workers]
    completed = assert_planned_exactly_once(postgres, 6)
    assert len(completed) == 12 and len({t.user_attrs["worker"]["pid"] for t in completed}) >= 2
    password = "odyssey-test"
    assert all(password not in out for out in outputs)
    shown = cli("status", "--storage", postgres, check=False)
    assert "dist/adding/V" in shown.stdout and password not in shown.stdout + shown.stderr


def _training(storage: str, pids: set[int]) -> dict[int, int]:
    """Trial number -> worker pid, for running trials of these workers between their first and
    next-to-last epoch: a kill then surely lands inside the trial, whatever this check's latency."""
    return {
        t.number: t.user_attrs["worker"]["pid"]
        for trials in all_trials(storage).values()
        for t in trials
        if t.state == TrialState.RUNNING
        and 1 <= (t.user_attrs.get("progress") or {}).get("epoch", 0) <= EPOCHS - 2
        and t.user_attrs.get("worker", {}).get("pid") in pids
    }


EPOCHS = 6


def _kill_mid_trial(storage: str, workers: list[subprocess.Popen], rng: random.Random) -> subprocess.Popen | None:
    """SIGKILL a worker at a random moment inside a trial's epoch; None once all workers have exited."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        alive = {w.pid: w for w in workers if w.poll() is None}
        if not alive:
            return None
        candidates = _training(storage, set(alive))
        if candidates:
            number, pid = rng.choice(sorted(candidates.items()))
            time.sleep(rng.uniform(0.0, 0.3))
            if _training(storage, {pid}).get(number) == pid:  # still inside that trial
                alive[pid].send_signal(signal.SIGKILL)
                alive[pid].wait()
                return alive[pid]
        time.sleep(0.05)
    raise AssertionError("no worker reached a trial's first epoch in time")


def _kill_workers_at_random_moments(
    start, storage: str, tmp_path: Path, *, kills: int, seed: int, pruner: str = "none"
) -> int:
    """Two workers; `kills` times SIGKILL one mid-trial, at a random moment of an epoch, and start another."""
    study = write_study(tmp_path, trials=3, epochs=EPOCHS, batch_size=4, train=1024, pruner=pruner)
    rng = random.Random(seed)
    workers = [start(study, storage, tmp_path) for _ in range(2)]
    killed = 0
    for _ in range(kills):
        victim = _kill_mid_trial(storage, workers, rng)
        if victim is None:
            break
        killed += 1
        workers = [w for w in workers if w is not victim] + [start(study, storage, tmp_path)]
    for w in workers:
        finish(w)
    finish(start(study, storage, tmp_path))  # whatever the last kill left queued
    return killed


FINAL = (TrialState.COMPLETE, TrialState.PRUNED)


def _check_resumed(storage: str) -> int:
    """A killed trial is retried with its parameters, loses at most the epoch it was in, and reports the
    learning curve its killed trial reported, value for value; the pruner's rung marks stay with the killed
    trial (each rung counts a slot once)."""
    resumed = 0
    for trials in all_trials(storage).values():
        by_number = {t.number: t for t in trials}
        for t in trials:
            # A surplus trial (a second one for a slot another holds) is PRUNED too, and never ran.
            if t.state in FINAL and t.system_attrs.get("retry_history") and not t.user_attrs.get("surplus"):
                failed = by_number[t.system_attrs["retry_history"][-1]]
                assert failed.state == TrialState.FAIL and failed.params == t.params
                reached = (failed.user_attrs.get("progress") or {}).get("epoch", 0)
                assert t.user_attrs["resumed_from_epoch"] >= reached
                curve = failed.intermediate_values
                assert {step: t.intermediate_values.get(step) for step in curve} == curve, t.number
                assert not {k for k in failed.system_attrs if k.startswith(RUNG_MARK)} & set(t.system_attrs)
                resumed += t.user_attrs["resumed_from_epoch"] >= 1
    return resumed


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_sigkill_at_random_moments_loses_no_trial(backend, tmp_path, cache, request, full_tests, start):
    storage = f"sqlite:///{tmp_path}/dist.db" if backend == "sqlite" else request.getfixturevalue("postgres")
    kills = 6 if full_tests else 3
    assert _kill_workers_at_random_moments(start, storage, tmp_path, kills=kills, seed=11) == kills
    assert len(assert_planned_exactly_once(storage, 3)) == 6
    assert _check_resumed(storage) >= 1  # at least one killed trial went on from its checkpoint


@pytest.mark.parametrize(
    "storage, expected",
    [
        ("sqlit:///x.db", "cannot open storage"),
        ("postgresql+psycopg2://me:hunter2@127.0.0.1:1/db", "cannot open storage"),
        ("nonsense", "cannot open storage"),
    ],
)
def test_bad_storage_urls_are_one_line_errors_without_passwords(tmp_path, storage, expected, cli):
    study = write_study(tmp_path, trials=1)
    result = cli("run", str(study), "--storage", storage, cwd=tmp_path, check=False)
    assert result.returncode == 2 and expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "hunter2" not in result.stderr


def test_errors_after_finished_work_lose_nothing(tmp_path, cache, cli, start):
    study = write_study(tmp_path, trials=2)
    storage = f"sqlite:///{tmp_path}/keep.db"
    finish(start(study, storage, tmp_path))
    before = {n: [(t.number, t.value) for t in ts] for n, ts in all_trials(storage).items()}

    def run(path: Path, *extra: str) -> subprocess.CompletedProcess:
        return cli("run", str(path), "--storage", storage, *extra, cwd=tmp_path, check=False)

    blocked = tmp_path / "a-file"  # a folder cannot be made under a file, even by root
    blocked.write_text("")
    result = run(study, "--checkpoint-dir", str(blocked / "checkpoints"))
    assert (
        result.returncode == 2
        and "the checkpoint folder" in result.stderr
        and "cannot write there" in result.stderr
        and len(result.stderr.strip().splitlines()) == 1
    )

    missing = tmp_path / "timit.toml"
    missing.write_text(
        'name = "dist"\ntasks = ["timit"]\nvariants = ["V"]\ntrials = 1\n'
        '[task_options.timit]\npath = "/no/such/timit"\n'
    )
    result = run(missing, "--extend")
    assert result.returncode == 2 and "/no/such/timit" in result.stderr and len(result.stderr.strip().splitlines()) == 1

    after = {
        n: [(t.number, t.value) for t in ts if t.state == TrialState.COMPLETE] for n, ts in all_trials(storage).items()
    }
    assert {n: v for n, v in after.items() if n in before} == before


def test_mask_url_hides_passwords():
    assert mask_url("postgresql+psycopg2://u:p%40ss@h:5432/db") == "postgresql+psycopg2://u:***@h:5432/db"
    assert mask_url("sqlite:///results/x.db") == "sqlite:///results/x.db"


def test_two_workers_on_a_journal_storage_without_a_server(tmp_path, cache, cli, start):
    """A cluster with a shared filesystem and no database: Optuna's JournalStorage as `journal://PATH`."""
    study = write_study(tmp_path, trials=2)
    storage = f"journal://{tmp_path}/dist.log"
    cli("prepare", str(study), "--storage", storage, cwd=tmp_path)
    workers = [start(study, storage, tmp_path) for _ in range(2)]
    for worker in workers:
        finish(worker)
    assert len(assert_planned_exactly_once(storage, 2)) == 4
    shown = cli("status", "--storage", storage, cwd=tmp_path, check=False)
    assert shown.returncode == 0 and "dist/adding/NP" in shown.stdout, shown.stderr


def _storage(backend: str, tmp_path: Path, request) -> str:
    return f"journal://{tmp_path}/dist.log" if backend == "journal" else request.getfixturevalue("postgres")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["journal", "postgres"])
def test_two_workers_finish_each_slot_of_a_pruned_study_once(backend, tmp_path, cache, request, start, full_tests):
    """Successive halving from epoch 1 (rungs at epochs 1 and 3 of 4), two workers at once. Trimmed: the
    journal file only (16 s; PostgreSQL 21 s), as two pruned workers on PostgreSQL also run in the kill
    test below."""
    if backend == "postgres" and not full_tests:
        pytest.skip("trimmed: two pruned workers on PostgreSQL run in the kill test (ODYSSEY_FULL_TESTS=1 runs it)")
    study = write_study(tmp_path, trials=6, epochs=4, pruner="successive_halving")
    storage = _storage(backend, tmp_path, request)
    for worker in [start(study, storage, tmp_path) for _ in range(2)]:
        finish(worker)
    done = assert_planned_exactly_once(storage, 6, states=FINAL)
    pruned = [t for t in done if t.state == TrialState.PRUNED]
    assert pruned and all(t.user_attrs["stopped"] == "pruned" and t.user_attrs["epochs"] in (1, 3) for t in pruned)
    stored = sum(map(len, all_trials(storage).values()))
    finish(start(study, storage, tmp_path))  # pruned trials are final: nothing is run again
    assert sum(map(len, all_trials(storage).values())) == stored
    pruned_per_cell = {
        cell: sum(t.state == TrialState.PRUNED and not t.user_attrs.get("surplus") for t in trials)
        for cell, trials in all_trials(storage).items()
    }
    shown = {row["cell"]: (row["pruned"], row["remaining"]) for row in status_rows(storage, "dist")}
    assert shown == {cell: (count, 0) for cell, count in pruned_per_cell.items()}


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["journal", "postgres"])
def test_a_killed_worker_of_a_pruned_study_resumes_the_same_curve(backend, tmp_path, cache, request, start, full_tests):
    """Trimmed: PostgreSQL only (21 s each); the journal file's resumed curve is test_pruning's resume test."""
    if backend == "journal" and not full_tests:
        pytest.skip("trimmed: PostgreSQL only (ODYSSEY_FULL_TESTS=1 runs the journal file too)")
    storage = _storage(backend, tmp_path, request)
    assert _kill_workers_at_random_moments(start, storage, tmp_path, kills=1, seed=11, pruner="successive_halving") == 1
    assert len(assert_planned_exactly_once(storage, 3, states=FINAL)) == 6
    assert _check_resumed(storage) >= 1


def test_workers_starting_at_once_may_all_check_one_checkpoint_folder(tmp_path):
    """Four workers started together each check that the shared checkpoint folder is writable; with one
    fixed probe name they unlinked each other's probe and one stopped with "No such file or directory"."""
    errors = []

    def check() -> None:
        for _ in range(300):
            try:
                writable_folder(tmp_path / "checkpoints", "the checkpoint folder")
            except OdysseyError as err:
                errors.append(str(err))

    threads = [threading.Thread(target=check) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[0]
