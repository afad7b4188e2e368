"""Races between workers over a cell's slots, replayed in one process at the moment they interleave."""

import os
import subprocess

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from odyssey.study import queue as slots
from odyssey.study.storage import open_storage
from odyssey.study.cells import claim


@pytest.fixture
def study(tmp_path) -> optuna.Study:
    storage = open_storage(f"sqlite:///{tmp_path / 'slots.db'}")
    return optuna.create_study(storage=storage, study_name="cell", sampler=optuna.samplers.RandomSampler(seed=0))


def queue(study: optuna.Study, slot: int) -> None:
    study.add_trial(
        optuna.trial.create_trial(
            state=TrialState.WAITING, params={"x": 0.5}, distributions={"x": FloatDistribution(0, 1)}, system_attrs={slots.SLOT: slot}
        )
    )


def other_worker_takes(study: optuna.Study, number: int) -> None:
    assert study._storage.set_trial_state_values(study.trials[number]._trial_id, state=TrialState.RUNNING)


def summary(study: optuna.Study) -> list[tuple[int, str, bool]]:
    return [(t.number, t.state.name, bool(t.user_attrs.get("surplus"))) for t in study.trials]


def test_a_worker_that_loses_the_last_queued_slot_prunes_the_trial_it_asked_for(study, monkeypatch):
    queue(study, 0)
    ask = study.ask

    def ask_after_another_worker(*args, **kwargs):  # the other worker wins between counting and asking
        other_worker_takes(study, 0)
        monkeypatch.setattr(study, "ask", ask)
        return ask(*args, **kwargs)

    monkeypatch.setattr(study, "ask", ask_after_another_worker)
    assert claim(study, 1, sampler="random", retries=3) is None
    assert summary(study) == [(0, "RUNNING", False), (1, "PRUNED", True)]


def test_a_duplicate_queued_slot_is_discarded_unless_another_worker_took_it_since(study):
    for _ in range(3):
        queue(study, 0)  # three machines queued slot 0; trial 0 holds it
    listed = study.get_trials()
    other_worker_takes(study, 2)  # after the list was read: that worker finds out itself, at its own claim
    slots.discard_duplicates(study, listed)
    assert summary(study) == [(0, "WAITING", False), (1, "PRUNED", True), (2, "RUNNING", False)]


def test_a_worker_claims_queued_slots_in_order_then_stops(study):
    for slot in range(2):
        queue(study, slot)
    numbers = [trial.number for trial in iter(lambda: claim(study, 2, sampler="random", retries=3), None)]
    assert numbers == [0, 1]
    assert [t.user_attrs["worker"]["pid"] for t in study.trials] == [os.getpid()] * 2


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_a_trial_whose_worker_keeps_dying_fails_after_the_retries(study):
    queue(study, 0)
    for _ in range(3):  # each time the worker training it dies (out of memory, say)
        trial = claim(study, 1, sampler="random", retries=2)
        study._storage.set_trial_user_attr(trial._trial_id, "worker", {"host": slots.HOST, "pid": dead_pid()})
    assert claim(study, 1, sampler="random", retries=2) is None  # the third death used up the two retries
    *dead, last = study.trials
    assert [t.state for t in dead] == [TrialState.FAIL] * 3 and last.state == TrialState.FAIL
    assert last.params == dead[0].params and last.system_attrs["retry_history"] == [0, 1, 2]
    assert "died 3 times" in last.user_attrs["failure"]
    assert slots.count(study.trials, 1) == slots.CellCounts(planned=1, failed=1)


def test_a_stop_the_user_asked_for_spends_no_retry(study):
    queue(study, 0)
    for _ in range(5):
        trial = claim(study, 1, sampler="random", retries=0)
        trial.set_user_attr("interrupted", True)  # as the worker records a Ctrl-C or SIGTERM
        assert slots.fail_and_requeue(study, study._storage.get_trial(trial._trial_id), retries=0)
    retry = claim(study, 1, sampler="random", retries=0)
    assert retry is not None and retry.number == 5
    assert study._storage.get_trial(retry._trial_id).system_attrs["odyssey_crashes"] == 0
