"""The trial queue, with races between workers replayed in one process at the moment they interleave."""

import subprocess
import threading

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from odyssey.storage import open_storage
from odyssey.study import cells, queue
from odyssey.study.studyfile import parse_study

X = {"x": FloatDistribution(0, 1)}


@pytest.fixture
def study(tmp_path) -> optuna.Study:
    storage = open_storage(f"sqlite:///{tmp_path / 'queue.db'}")
    return optuna.create_study(storage=storage, study_name="cell", sampler=optuna.samplers.RandomSampler(seed=0))


ME, PEER = queue.Worker.this_process(), queue.Worker.this_process()


def add(study: optuna.Study, slot: int, params: dict | None = None) -> None:
    """Queue slot `slot` (again, if it is queued already: as two machines racing would)."""
    params = {"x": 0.5} if params is None else params
    study.add_trial(
        optuna.trial.create_trial(
            state=TrialState.WAITING,
            params=params,
            distributions={k: X[k] for k in params},
            system_attrs={queue.SLOT: slot},
        )
    )


def other_worker_takes(study: optuna.Study, number: int) -> None:
    assert study._storage.set_trial_state_values(study.trials[number]._trial_id, state=TrialState.RUNNING)


def summary(study: optuna.Study) -> list[tuple[int, str, bool]]:
    return [(t.number, t.state.name, bool(t.user_attrs.get("surplus"))) for t in study.trials]


def claim(study: optuna.Study, worker: queue.Worker = ME, retries: int = 3):
    return queue.claim(study, worker=worker, retries=retries)


def test_a_worker_that_finds_every_slot_taken_creates_no_trial_and_waits(study):
    add(study, 0)
    other_worker_takes(study, 0)  # the other worker won the last slot
    assert claim(study) is queue.BUSY  # not None: that trial may yet come back to the queue
    assert summary(study) == [(0, "RUNNING", False)]  # and nothing beyond the plan was created


def test_a_duplicate_queued_slot_is_discarded_unless_another_worker_took_it_since(study):
    for _ in range(3):
        add(study, 0)  # three machines queued slot 0; trial 0 holds it
    listed = study.get_trials()
    other_worker_takes(study, 2)  # after the list was read: that worker finds out itself, at its own claim
    queue.discard_duplicates(study, listed)
    assert summary(study) == [(0, "WAITING", False), (1, "PRUNED", True), (2, "RUNNING", False)]


def test_a_worker_claims_slots_in_order_then_waits_then_is_done(study):
    for slot in range(2):
        add(study, slot)
    first, second = claim(study), claim(study)
    assert (first.number, second.number) == (0, 1)
    assert [t.user_attrs["worker"]["token"] for t in study.trials] == [ME.token] * 2
    assert claim(study) is queue.BUSY
    for trial in (first, second):
        assert queue.finish(study, trial, attrs={"seconds": 1.0}, value=0.5)
    assert claim(study) is None


def test_two_retries_of_one_failed_tpe_trial_run_once(study):
    queue.queue_slots(study, {0: {}}, X)  # a TPE slot: the sampler fills it when it is taken
    trial = claim(study)
    trial.suggest_float("x", 0, 1)
    frozen = study._storage.get_trial(trial._trial_id)
    assert study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)  # worker A fails it ...
    queue.recover(study, retries=3)  # ... worker B sees a failure without a retry and queues one ...
    queue.requeue(study, study._storage.get_trial(trial._trial_id), retries=3)  # ... then A queues its own
    retry = claim(study)
    assert retry.number == 1 and retry.params == frozen.params
    assert claim(study) is queue.BUSY  # the second retry is surplus, never run
    assert summary(study) == [(0, "FAIL", False), (1, "RUNNING", False), (2, "PRUNED", True)]


def test_a_stalled_worker_whose_trial_was_failed_as_stale_records_nothing_and_goes_on(study):
    add(study, 0)
    trial = claim(study)
    with queue.Heartbeat(study._storage, trial._trial_id, interval=0.05) as heartbeat:
        # the worker stalls; another finds its heartbeat stale, fails the trial and queues a retry
        assert queue.fail_and_requeue(study, study._storage.get_trial(trial._trial_id), retries=3)
        assert heartbeat.superseded.wait(5)  # the stalled worker notices and stops training it
    assert not queue.finish(study, trial, attrs={"seconds": 1.0}, value=0.1)  # no UpdateFinishedTrialError
    assert summary(study) == [(0, "FAIL", False), (1, "WAITING", False)]
    assert "seconds" not in study.trials[0].user_attrs


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_liveness_by_pid_only_within_this_boot_and_pid_namespace():
    dead = {**ME.stamp(), "pid": dead_pid()}
    assert queue.dead_here(dead)
    assert queue.dead_here({**ME.stamp(), "started": "1"})  # the pid lives on, but as another process
    assert not queue.dead_here(ME.stamp())
    # a container with the same hostname but its own PID namespace: its pids mean nothing here
    assert not queue.dead_here({**dead, "namespace": "other-boot/pid:[1]"})
    assert not queue.dead_here({"host": "box", "pid": dead["pid"]})  # an old stamp: never certain


def test_a_peer_that_dies_after_the_last_slot_was_taken_has_its_trial_run_by_the_worker_that_stayed(study):
    add(study, 0)
    peer_trial = claim(study, PEER)
    assert claim(study) is queue.BUSY  # the worker stays: the peer might die
    study._storage.set_trial_user_attr(peer_trial._trial_id, "worker", {**PEER.stamp(), "pid": dead_pid()})
    retry = claim(study)  # the peer is dead: its slot comes back at once
    assert retry.number == 1 and study._storage.get_trial(retry._trial_id).system_attrs["retry_history"] == [0]


def test_a_trial_whose_worker_keeps_dying_fails_after_the_retries(study):
    add(study, 0)
    for _ in range(3):  # each time the worker training it dies (out of memory, say)
        trial = claim(study, retries=2)
        study._storage.set_trial_user_attr(trial._trial_id, "worker", {**ME.stamp(), "pid": dead_pid()})
    assert claim(study, retries=2) is None  # the third death used up the two retries
    *dead, last = study.trials
    assert [t.state for t in dead] == [TrialState.FAIL] * 3 and last.state == TrialState.FAIL
    assert last.params == dead[0].params and last.system_attrs["retry_history"] == [0, 1, 2]
    assert "died 3 times" in last.user_attrs["failure"]
    assert queue.count(study.trials, 1) == queue.CellCounts(planned=1, failed=1)


def test_a_stop_the_user_asked_for_spends_no_retry(study):
    add(study, 0)
    for _ in range(5):
        trial = claim(study, retries=0)
        trial.set_user_attr("interrupted", True)  # as the worker records a Ctrl-C or SIGTERM
        assert queue.fail_and_requeue(study, study._storage.get_trial(trial._trial_id), retries=0)
    retry = claim(study, retries=0)
    assert retry is not None and retry.number == 5
    assert study._storage.get_trial(retry._trial_id).system_attrs["odyssey_crashes"] == 0


def test_only_the_process_that_created_a_cell_queues_it(tmp_path, monkeypatch):
    spec = parse_study({"name": "q", "tasks": ["adding"], "variants": ["V"], "trials": 4})
    storage = open_storage(f"sqlite:///{tmp_path / 'q.db'}")
    halfway, resume = threading.Event(), threading.Event()
    add_trial = optuna.Study.add_trial

    def slow_add(self, trial):  # the creator pauses after queueing two slots, while a second process prepares
        add_trial(self, trial)
        if len(self.get_trials(deepcopy=False)) == 2 and threading.current_thread().name == "creator":
            halfway.set()
            resume.wait(10)

    monkeypatch.setattr(optuna.Study, "add_trial", slow_add)
    creator = threading.Thread(target=cells.prepare, args=(spec, storage), name="creator")
    creator.start()
    assert halfway.wait(10)
    other = threading.Thread(target=cells.prepare, args=(spec, storage), name="other")
    other.start()
    other.join(0.5)
    resume.set()
    creator.join(10)
    other.join(20)
    trials = optuna.load_study(study_name="q/adding/V", storage=storage).trials
    assert sorted(t.system_attrs[queue.SLOT] for t in trials) == [0, 1, 2, 3]  # each slot queued once


def _take_after(url: str, name: str, barrier, out) -> None:
    study = optuna.load_study(study_name=name, storage=open_storage(url))
    trial_id = study.get_trials(deepcopy=False)[0]._trial_id
    barrier.wait()
    out.put(queue._take(study, trial_id))


def test_two_processes_taking_one_queued_trial_at_once_on_sqlite_one_wins(tmp_path):
    """Optuna's check-then-set lets both win on SQLite (it ignores SELECT ... FOR UPDATE): 14 of 30 tries here."""
    import multiprocessing

    url = f"sqlite:///{tmp_path / 'race.db'}"
    context = multiprocessing.get_context("fork")
    for round_ in range(30):
        study = optuna.create_study(storage=open_storage(url), study_name=f"race-{round_}")
        add(study, 0)
        barrier, out = context.Barrier(2), context.Queue()
        takers = [context.Process(target=_take_after, args=(url, study.study_name, barrier, out)) for _ in range(2)]
        for taker in takers:
            taker.start()
        for taker in takers:
            taker.join(60)
        assert sorted(out.get(timeout=10) for _ in takers) == [False, True], f"round {round_}"


def test_a_claimed_trial_beats_on_the_databases_clock_and_goes_stale_there(study, monkeypatch):
    add(study, 0)
    trial = claim(study)
    assert (
        queue.BEAT not in study._storage.get_trial(trial._trial_id).system_attrs
    )  # Optuna's heartbeat, not the wall-clock one
    rdb = study._storage._backend
    monkeypatch.setattr(rdb, "grace_period", -1)  # as if the worker had not beaten for longer than the grace
    assert rdb._get_stale_trial_ids(study._study_id) == [trial._trial_id]
    queue.recover(study, retries=3)
    assert summary(study) == [(0, "FAIL", False), (1, "WAITING", False)]
