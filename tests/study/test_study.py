"""Studies end to end through the CLI: run, resume after SIGKILL, refuse changes, divergence, status."""

import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState


def cells(storage: str) -> dict[str, list[optuna.trial.FrozenTrial]]:
    return {
        s.study_name: optuna.load_study(study_name=s.study_name, storage=storage).trials
        for s in optuna.get_all_study_summaries(storage)
    }


def states(trials) -> list[TrialState]:
    return [t.state for t in trials]


def test_run_records_every_trial_and_a_second_run_adds_none(tmp_path, cache, tiny_study, cli):
    study = tiny_study()
    cli("run", str(study), cwd=tmp_path)
    storage = f"sqlite:///{tmp_path}/results/tiny.db"
    found = cells(storage)
    assert sorted(found) == ["tiny/vowels/CIFG", "tiny/vowels/V"]
    for name, trials in found.items():
        assert states(trials) == [TrialState.COMPLETE] * 2, name
        for t in trials:
            attrs = t.user_attrs
            assert attrs["task"] == "vowels" and attrs["metric"] == "frame_error" and attrs["epochs"] == 2
            assert 0 <= attrs["test_metric"] <= 1 and attrs["seconds"] > 0 and attrs["parameter_count"] > 0
            assert set(attrs["versions"]) == {"odyssey", "torch", "optuna"}
            assert 4 <= t.params["hidden_size"] <= 8 and 1e-3 <= t.params["learning_rate"] <= 1e-2
    study_attrs = optuna.load_study(study_name="tiny/vowels/V", storage=storage).user_attrs
    assert study_attrs["odyssey_study"] == "tiny" and len(study_attrs["study_hash"]) == 16

    cli("run", str(study), cwd=tmp_path)
    assert {n: len(t) for n, t in cells(storage).items()} == {n: 2 for n in found}

    shown = cli("status", str(study), cwd=tmp_path).stdout
    assert "tiny/vowels/CIFG" in shown and "tiny/vowels/V" in shown


def test_same_seed_same_trials_whatever_the_number_of_jobs(tmp_path, cache, tiny_study, cli):
    one, two = tmp_path / "one", tmp_path / "two"
    for folder, jobs in ((one, "1"), (two, "2")):
        folder.mkdir()
        cli("run", str(tiny_study(folder)), "--jobs", jobs, cwd=folder)
    a, b = cells(f"sqlite:///{one}/results/tiny.db"), cells(f"sqlite:///{two}/results/tiny.db")
    for name in a:
        assert sorted(t.params["learning_rate"] for t in a[name]) == sorted(t.params["learning_rate"] for t in b[name])
        assert sorted(t.value for t in a[name]) == pytest.approx(sorted(t.value for t in b[name]), abs=0.02)


def test_paired_draws_give_every_variant_of_a_task_the_same_configuration_in_each_slot(tmp_path, tiny_study):
    """Random search draws each cell's configurations on its own: in the replication, handwriting's V
    drew 2 of 50 that train within 12 epochs and NFG 15, which decided their comparison. Paired
    draws share each slot's configuration between a task's variants; random keeps them apart."""
    from odyssey.record import cell_name
    from odyssey.storage import open_storage
    from odyssey.study.cells import prepare
    from odyssey.study.studyfile import load_study_file

    queued = {}
    for sampler in ("random", "paired"):
        folder = tmp_path / sampler
        folder.mkdir()
        path = tiny_study(folder, trials=4)
        path.write_text(path.read_text().replace("seed = 3", f'seed = 3\nsampler = "{sampler}"'))
        spec = load_study_file(path)
        storage = open_storage(f"sqlite:///{folder}/s.db")
        prepare(spec, storage)
        queued[sampler] = {
            variant: [
                t.params
                for t in sorted(
                    optuna.load_study(study_name=cell_name("tiny", "vowels", variant), storage=storage).trials,
                    key=lambda t: t.number,
                )
            ]
            for variant in spec.variants
        }
        assert all(len(slots) == 4 for slots in queued[sampler].values())
    assert queued["paired"]["V"] == queued["paired"]["CIFG"]
    assert len({repr(p) for p in queued["paired"]["V"]}) == 4  # four configurations, not one
    assert all(a != b for a, b in zip(queued["random"]["V"], queued["random"]["CIFG"]))
    assert queued["random"]["V"] != queued["paired"]["V"]


def test_changed_study_file_is_refused_unless_extended(tmp_path, cache, tiny_study, cli):
    study = tiny_study(trials=1)
    cli("run", str(study), cwd=tmp_path)
    study.write_text(study.read_text().replace("seed = 3", "seed = 4"))
    refused = cli("run", str(study), cwd=tmp_path, check=False)
    assert refused.returncode == 2 and "changed: seed" in refused.stderr and "Traceback" not in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    study = tiny_study(trials=2)
    assert "--extend" in cli("run", str(study), cwd=tmp_path, check=False).stderr
    cli("run", str(study), "--extend", cwd=tmp_path)
    assert all(len(t) == 2 for t in cells(f"sqlite:///{tmp_path}/results/tiny.db").values())


def test_divergence_fails_the_trial_and_the_study_goes_on(tmp_path, cache, cli):
    study = tmp_path / "diverge.toml"
    study.write_text(
        'name = "diverge"\ntasks = ["adding"]\nvariants = ["V"]\ntrials = 3\n'
        "[training]\nbatch_size = 16\nmax_epochs = 3\n"
        "[task_options.adding]\nlength = 10\ntrain = 64\nvalidation = 16\ntest = 16\n"
        # learning rates from harmless to explosive: the MSE of a linear head blows up to inf
        "[space]\nhidden_size = 4\nlearning_rate = { low = 1e-3, high = 1e6, log = true }\n"
    )
    cli("run", str(study), cwd=tmp_path)
    trials = cells(f"sqlite:///{tmp_path}/results/diverge.db")["diverge/adding/V"]
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert failed and len(trials) == 3, [(t.state, t.params["learning_rate"]) for t in trials]
    assert all("became" in t.user_attrs["failure"] for t in failed)
    assert any(t.state == TrialState.COMPLETE for t in trials)  # the study went on past the failures
    shown = cli("status", str(study), cwd=tmp_path).stdout  # and says why, a line per failed trial
    reasons = [line.strip() for line in shown.splitlines()[shown.splitlines().index("failed trials:") + 1 :]]
    assert reasons == [f"diverge/adding/V trial {t.number}: {t.user_attrs['failure']}" for t in failed]


def _running_trials(db: Path) -> list[tuple[int, int]]:
    """(epoch checkpointed, worker pid) of each running trial past its first checkpoint, read straight from SQLite."""
    try:
        with sqlite3.connect(db, timeout=1) as con:
            rows = con.execute(
                "select p.value_json, w.value_json from trials t "
                "join trial_user_attributes p on p.trial_id = t.trial_id and p.key = 'progress' "
                "join trial_user_attributes w on w.trial_id = t.trial_id and w.key = 'worker' "
                "where t.state = 'RUNNING'"
            ).fetchall()
    except sqlite3.Error:
        return []
    return [(json.loads(p)["epoch"], json.loads(w)["pid"]) for p, w in rows]


def _furthest_running_trial(db: Path) -> tuple[int, int]:
    """(epoch checkpointed, worker pid) of the running trial furthest on."""
    return max(_running_trials(db), default=(0, 0))


STOPS = {  # how the run is stopped: (signal, jobs, whom)
    "SIGKILL": (signal.SIGKILL, 1, "run"),
    "Ctrl-C": (signal.SIGINT, 1, "run"),
    "SIGTERM": (signal.SIGTERM, 2, "run"),  # a scheduler's preemption: the run passes it on to its workers
    "SIGKILL-a-worker": (signal.SIGKILL, 2, "worker"),  # out of memory, say: the other worker goes on
}


@pytest.mark.parametrize("stop", STOPS)
def test_stopped_mid_trial_then_resumed_completes_each_trial_once(
    tmp_path, cache, stop, tiny_study, cli, odyssey_command
):
    sig, jobs, whom = STOPS[stop]
    study = tiny_study(batch_size=2, max_epochs=5)
    db = tmp_path / "results" / "tiny.db"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [*odyssey_command, "run", str(study), "--jobs", str(jobs)]
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while (furthest := _furthest_running_trial(db))[0] < 2:
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "no trial reached epoch 2"
        time.sleep(0.2)
    os.kill(furthest[1] if whom == "worker" else proc.pid, sig)
    proc.wait(timeout=60)
    message = proc.stderr.read().decode()
    if sig != signal.SIGKILL:  # a clean stop: the running trials are queued again, one line says so
        assert proc.returncode == 130 and "run the same command to resume" in message and "Traceback" not in message
    if whom == "worker":  # a warning, and the run finishes the study
        assert proc.returncode == 0 and "Traceback" not in message, message
        assert (
            "warning: worker" in message
            and "killed by SIGKILL (out of memory?); its trial went back to the queue" in message
        )

    cli("run", str(study), cwd=tmp_path)
    found = cells(f"sqlite:///{db}")
    complete = [t for trials in found.values() for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 4
    failed = [(f, trials) for trials in found.values() for f in trials if f.state == TrialState.FAIL]
    assert 1 <= len(failed) <= jobs  # the trials running at the stop, each retried once
    retries = [next(t for t in trials if t.system_attrs.get("retry_history") == [f.number]) for f, trials in failed]
    assert all(
        retry.state == TrialState.COMPLETE and retry.params == f.params for retry, (f, _) in zip(retries, failed)
    )
    assert max(retry.user_attrs["resumed_from_epoch"] for retry in retries) >= 2
    assert all(retry.user_attrs["epochs"] == 5 for retry in retries)
    killed = 1 if sig == signal.SIGKILL else 0  # only a death spends one of the study's retries
    assert sum(retry.system_attrs["odyssey_crashes"] for retry in retries) == killed
    assert not list((tmp_path / "results" / "tiny" / "checkpoints").rglob("*.pt"))


def _running_workers(db: Path) -> set[int]:
    """The pids of the workers running a trial that reached its first epoch."""
    return {pid for _, pid in _running_trials(db)}


def _alive(pid: int) -> bool:
    """A process that has not ended (a zombie has)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, IndexError):
        return False


def _two_workers_running(
    study: Path, folder: Path, odyssey_command: list[str]
) -> tuple[subprocess.Popen, Path, set[int]]:
    """`odyssey run STUDY --jobs 2` started in `folder`, once both its workers train a trial: the run,
    its storage and the workers' process ids."""
    command = [*odyssey_command, "run", str(study), "--jobs", "2"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(command, cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    db = folder / "results" / "tiny.db"
    deadline = time.monotonic() + 120
    while len(pids := _running_workers(db)) < 2:
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "two workers never ran a trial at once"
        time.sleep(0.2)
    return proc, db, pids


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")
def test_killed_workers_are_replaced_and_the_run_succeeds(tmp_path, cache, tiny_study, odyssey_command):
    """Issue 25: both workers of --jobs 2 SIGKILLed: only their replacements can finish the study, in
    the same run, exit 0."""
    study = tiny_study(batch_size=2, max_epochs=4)
    proc, db, workers = _two_workers_running(study, tmp_path, odyssey_command)
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    proc.wait(timeout=300)
    message = proc.stderr.read().decode()
    assert proc.returncode == 0 and "Traceback" not in message and "error" not in message, message
    deaths = [line for line in message.splitlines() if line.startswith("warning: worker")]
    assert len(deaths) == 2 and all(
        line.endswith("its trial went back to the queue; a new worker takes its place") for line in deaths
    ), message
    complete = [t for trials in cells(f"sqlite:///{db}").values() for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 4


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")
def test_workers_die_with_a_killed_run(tmp_path, cache, tiny_study, odyssey_command):
    """Issue 25: SIGKILL of `odyssey run --jobs 2` left its workers running as orphans until the study ended."""
    study = tiny_study(batch_size=2, max_epochs=50, trials=200)  # orphans would train for many minutes
    proc, db, workers = _two_workers_running(study, tmp_path, odyssey_command)
    proc.kill()
    proc.wait(timeout=60)
    try:
        # A clean stop: each worker queues its trial again, then exits (about a second).
        deadline = time.monotonic() + 60
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_alive(pid) for pid in workers)
    finally:
        for pid in filter(_alive, workers):  # the orphans of a failed test
            os.kill(pid, signal.SIGKILL)
    running = [t for trials in cells(f"sqlite:///{db}").values() for t in trials if t.state == TrialState.RUNNING]
    assert not running  # their trials went back to the queue as a stop's do


def test_bad_inputs_are_one_line_errors(tmp_path, cache, tiny_study, cli):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\ntasks = ["vowels"]\nvariants = ["V"]\ntrials = 1\nepochs = 3\n')
    result = cli("run", str(bad), cwd=tmp_path, check=False)
    assert (
        result.returncode == 2
        and result.stderr.strip()
        == f"error: {bad}: unknown key 'epochs'; expected one of " + result.stderr.split("expected one of ")[1].strip()
    )
    result = cli("status", "--storage", f"sqlite:///{tmp_path}/absent.db", cwd=tmp_path, check=False)
    assert result.returncode == 2 and "no storage yet" in result.stderr and "Traceback" not in result.stderr
    result = cli(
        "run", str(tiny_study()), "--storage", "postgresql://user:secret@127.0.0.1:1/db", cwd=tmp_path, check=False
    )
    assert result.returncode == 2 and "secret" not in result.stderr and "***" in result.stderr
