"""Which trials count toward a cell's planned number, and retrying the trials of dead workers.

A cell plans N trial slots. Every trial holds a slot except a trial that was retried (its retry
holds the slot now) and a surplus trial (created by a race between workers, never run).
A failure of the training itself (divergence) is final and keeps its slot, and so is a chain
whose workers died more than the study's `retries` times.
"""

from __future__ import annotations

import datetime
import os
import socket
from collections import Counter
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from .storage import GRACE_SECONDS

HOST = socket.gethostname()


def retried_numbers(trials: list[FrozenTrial]) -> set[int]:
    return {n for t in trials for n in t.system_attrs.get("retry_history", [])}


SLOT = "odyssey_slot"  # system attr of a queued random-search trial: which planned slot it fills


def slot_trials(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """The trials holding slots. Two workers queueing the same slot at once: the lower number holds it."""
    retried = retried_numbers(trials)
    held, seen = [], set()
    for t in sorted(trials, key=lambda t: t.number):
        if t.user_attrs.get("surplus") or t.number in retried:
            continue
        slot = t.system_attrs.get(SLOT)
        if slot is not None:
            if slot in seen:
                continue
            seen.add(slot)
        held.append(t)
    return held


@dataclass(frozen=True)
class CellCounts:
    planned: int
    complete: int = 0
    failed: int = 0
    running: int = 0
    waiting: int = 0

    @property
    def remaining(self) -> int:
        """Slots not finished: waiting, running, or not yet created."""
        return max(self.planned - self.complete - self.failed, 0)

    @property
    def unstarted(self) -> int:
        return max(self.planned - self.complete - self.failed - self.running, 0)


def count(trials: list[FrozenTrial], planned: int) -> CellCounts:
    states = Counter(t.state for t in slot_trials(trials))
    return CellCounts(
        planned=planned,
        complete=states[TrialState.COMPLETE],
        failed=states[TrialState.FAIL],
        running=states[TrialState.RUNNING],
        waiting=states[TrialState.WAITING],
    )


def discard_duplicates(study: optuna.Study, trials: list[FrozenTrial]) -> None:
    """Finish, as surplus, queued trials whose slot another trial already holds (two machines queued it)."""
    held = {t.number for t in slot_trials(trials)}
    for t in trials:
        if t.state == TrialState.WAITING and t.number not in held:
            if _take(study, t._trial_id):  # the list may be stale: a trial another worker took is not surplus
                mark_surplus(study, t._trial_id)


def _take(study: optuna.Study, trial_id: int) -> bool:
    """Move a queued trial to RUNNING; False if another worker took it first (Optuna checks atomically)."""
    try:
        return study._storage.set_trial_state_values(trial_id, state=TrialState.RUNNING)
    except optuna.exceptions.UpdateFinishedTrialError:
        return False


def mark_surplus(study: optuna.Study, trial_id: int) -> None:
    """Never run this trial, which the caller holds RUNNING: its slot is another trial's."""
    try:
        study._storage.set_trial_user_attr(trial_id, "surplus", True)
        study._storage.set_trial_state_values(trial_id, state=TrialState.PRUNED)
    except optuna.exceptions.UpdateFinishedTrialError:
        pass  # this worker stalled past the grace period and another failed its trial as stale, queueing a retry


def root_number(trial: FrozenTrial) -> int:
    """The first trial of a retry chain: its checkpoint is the one to resume."""
    history = trial.system_attrs.get("retry_history", [])
    return history[0] if history else trial.number


CRASHES = "odyssey_crashes"  # system attr: how many times a worker died training this retry chain


def requeue(study: optuna.Study, trial: FrozenTrial, *, retries: int) -> None:
    """Queue a failed trial again with the same parameters (Optuna's retry attributes, so its tools agree).

    A stop the user asked for (Ctrl-C, SIGTERM) is free. After `retries` deaths of its worker (out
    of memory, an error in training) the chain ends failed instead: one bad trial must not stop
    every later run of the study.
    """
    history = [*trial.system_attrs.get("retry_history", []), trial.number]
    crashes = trial.system_attrs.get(CRASHES, 0) + (not trial.user_attrs.get("interrupted", False))
    system_attrs = {**trial.system_attrs, "failed_trial": history[0], "retry_history": history, CRASHES: crashes}
    user_attrs = {k: v for k, v in trial.user_attrs.items() if k not in ("worker", "progress", "interrupted")}
    state = TrialState.WAITING
    if crashes > retries:
        state = TrialState.FAIL
        user_attrs["failure"] = f"its worker died {crashes} times while training it (out of memory?); not retried again (retries = {retries})"
    study.add_trial(
        optuna.trial.create_trial(
            state=state,
            params=trial.params,
            distributions=trial.distributions,
            user_attrs=user_attrs,
            system_attrs=system_attrs,
        )
    )


def fail_and_requeue(study: optuna.Study, trial: FrozenTrial, *, retries: int) -> bool:
    """Mark a running trial failed and queue its retry; False if someone else finished it first."""
    storage = study._storage  # Optuna exposes no public way to fail a trial by id
    try:
        if not storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
            return False
    except optuna.exceptions.UpdateFinishedTrialError:
        return False
    requeue(study, storage.get_trial(trial._trial_id), retries=retries)
    return True


def stamp(study: optuna.Study, trial_id: int) -> None:
    """Mark a just-claimed trial as this process's and start its heartbeat record."""
    study._storage.set_trial_user_attr(trial_id, "worker", {"host": HOST, "pid": os.getpid()})
    study._storage.record_heartbeat(trial_id)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed child its parent has not reaped yet still answers signal 0
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def recover_lost_trials(study: optuna.Study, *, retries: int) -> int:
    """Retry at once the running trials of processes on this host that no longer exist.

    Heartbeats find dead workers on other machines after the grace period; a local dead process
    is certain now, so a restarted run need not wait.
    """
    failed = 0
    now = datetime.datetime.now()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get("worker")
        if worker is None:
            # Killed between claiming and stamping: no heartbeat either, so Optuna never calls it stale.
            orphaned = trial.datetime_start is not None and (now - trial.datetime_start).total_seconds() > GRACE_SECONDS
        else:
            orphaned = worker.get("host") == HOST and worker.get("pid") != os.getpid() and not _alive(int(worker.get("pid", 0)))
        if orphaned:
            failed += fail_and_requeue(study, trial, retries=retries)
    # A worker killed between failing a dead trial and queueing its retry leaves a failure that is not
    # the training's own (those carry "failure"): queue the retry now. Duplicates lose to the lower number.
    trials = study.get_trials(deepcopy=False)
    retried = retried_numbers(trials)
    for trial in trials:
        if trial.state == TrialState.FAIL and "failure" not in trial.user_attrs and trial.number not in retried:
            requeue(study, trial, retries=retries)
    return failed
