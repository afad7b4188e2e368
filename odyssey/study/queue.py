"""A cell's trial queue: every planned trial is a slot, queued once, taken atomically, finished once.

The process that creates a cell queues its N slots as WAITING trials (random search: with values
drawn from (seed, cell, slot), or (seed, task, slot) when paired; TPE: empty, the sampler fills
them when taken). A worker takes one
with Optuna's own atomic WAITING -> RUNNING transition, so no trial exists beyond the plan and no
two workers run one slot. When a trial's worker dies, whoever moves it RUNNING -> FAIL (also atomic)
queues its retry for the same slot, with the same parameters: a slot is a retry chain. If two
trials ever claim one slot, the lowest number that was not retried holds it and the other is
pruned as surplus, never run.

A worker is alive while its heartbeat is fresh on the database's clock (Optuna's RDB heartbeat; a
journal storage has no server clock, so there the beat is a wall-clock attribute); a worker in this
PID namespace that no longer exists, or one the supervisor saw die, is dead at once.
"""

from __future__ import annotations

import copy
import os
import threading
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from ..optuna_private import (
    RUNG_MARK,
    move_state,
    record_heartbeat,
    rung_marks,
    storage_of,
    trial_handle,
    trial_id_of,
)
from ..record import (
    BEAT,
    CRASHES,
    FAILED_TRIAL,
    FAILURE,
    INTERRUPTED,
    PROGRESS,
    RETRY_HISTORY,
    SLOT,
    SURPLUS,
    WORKER,
    retried_numbers,
    slot_trials,
)
from ..storage import GRACE_SECONDS, HEARTBEAT_SECONDS

# --- how many slots are where -------------------------------------------------------------------


@dataclass(frozen=True)
class CellCounts:
    planned: int
    complete: int = 0
    failed: int = 0
    running: int = 0
    waiting: int = 0
    pruned: int = 0  # stopped early by the study's pruner: finished, as a complete one is

    @property
    def finished(self) -> int:
        return self.complete + self.failed + self.pruned

    @property
    def remaining(self) -> int:
        """Slots not finished: waiting, running, or not yet queued."""
        return max(self.planned - self.finished, 0)

    @property
    def unstarted(self) -> int:
        return max(self.planned - self.finished - self.running, 0)


def count(trials: list[FrozenTrial], planned: int) -> CellCounts:
    states = Counter(t.state for t in slot_trials(trials))
    return CellCounts(
        planned=planned,
        complete=states[TrialState.COMPLETE],
        failed=states[TrialState.FAIL],
        running=states[TrialState.RUNNING],
        waiting=states[TrialState.WAITING],
        pruned=states[TrialState.PRUNED],  # slot_trials leaves out the surplus ones, also PRUNED
    )


# --- workers ------------------------------------------------------------------------------------


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def _started(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (None: no such process, or a zombie)."""
    stat = _read(f"/proc/{pid}/stat")
    if not stat:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return None if fields[0] in ("Z", "X") else fields[19]


def _namespace() -> str:
    """This boot and PID namespace: where a pid names one process (not the hostname, which containers share)."""
    try:
        pidns = os.readlink("/proc/self/ns/pid")
    except OSError:
        pidns = ""
    return f"{_read('/proc/sys/kernel/random/boot_id')}/{pidns}"


@dataclass(frozen=True)
class Worker:
    """One worker process's identity, stamped on the trials it runs."""

    token: str
    namespace: str
    pid: int
    started: str | None

    @classmethod
    def this_process(cls, token: str | None = None) -> Worker:
        """token: given by a supervisor that must recognise this worker's trials if it dies."""
        pid = os.getpid()
        return cls(token or uuid.uuid4().hex, _namespace(), pid, _started(pid))

    def stamp(self) -> dict:
        return {"token": self.token, "namespace": self.namespace, "pid": self.pid, "started": self.started}


def dead_here(stamp: dict) -> bool:
    """True only when certain: a worker of this boot and PID namespace whose process is gone (or whose pid was
    reused)."""
    here = _namespace()
    if (
        stamp.get("namespace") != here or here.startswith("/") or here.endswith("/")
    ):  # unknown boot or namespace: never certain
        return False
    return _started(int(stamp.get("pid", 0))) != stamp.get("started")


# --- the queue ----------------------------------------------------------------------------------


def queue_slots(cell: optuna.Study, slots: dict[int, dict], distributions: dict) -> int:
    """Queue each missing slot (params {} lets the sampler fill it); returns how many were queued."""
    taken = {t.system_attrs.get(SLOT) for t in slot_trials(cell.get_trials(deepcopy=False))}
    missing = [slot for slot in slots if slot not in taken]
    for slot in missing:
        params = slots[slot]
        cell.add_trial(
            optuna.trial.create_trial(
                state=TrialState.WAITING,
                params=params,
                distributions={k: v for k, v in distributions.items() if k in params},
                system_attrs={SLOT: slot},
            )
        )
    return len(missing)


def _take(cell: optuna.Study, trial_id: int) -> bool:
    return move_state(cell, trial_id, old=TrialState.WAITING, new=TrialState.RUNNING)


def _prune_surplus(cell: optuna.Study, trial_id: int) -> None:
    storage_of(cell).set_trial_user_attr(trial_id, SURPLUS, True)
    move_state(cell, trial_id, old=TrialState.RUNNING, new=TrialState.PRUNED)


def discard_duplicates(cell: optuna.Study, trials: list[FrozenTrial]) -> None:
    """Prune queued trials whose slot another trial holds; taking them first, so one another worker took is never
    touched."""
    held = {t.number for t in slot_trials(trials)}
    for t in trials:
        if t.state == TrialState.WAITING and t.number not in held and _take(cell, trial_id_of(t)):
            _prune_surplus(cell, trial_id_of(t))


# How far a queued trial is from a pack (packs.fits): None where it cannot join; the closest is claimed first.
Fits = Callable[[FrozenTrial], float | None]


class Busy:
    """claim()'s answer when no slot is free but some still run elsewhere: wait, they may come back."""


BUSY = Busy()


def claim(
    cell: optuna.Study,
    *,
    worker: Worker,
    retries: int,
    dead: frozenset[str] = frozenset(),
    fits: Fits | None = None,
) -> optuna.Trial | Busy | None:
    """Take the lowest free slot of the cell, or with `fits` (a pack's) the closest of those that fit, the
    others staying queued: a Trial; BUSY while slots run elsewhere or wait unfit; None once every slot is
    finished."""
    recover(cell, retries=retries, dead=dead)
    trials = cell.get_trials(deepcopy=False)
    discard_duplicates(cell, trials)
    held = slot_trials(trials)
    free = [t for t in held if t.state == TrialState.WAITING]
    if fits is not None:
        ranked = [(distance, n, t) for n, t in enumerate(free) if (distance := fits(t)) is not None]
        free = [t for _, _, t in sorted(ranked, key=lambda r: r[:2])]
    for t in free:
        beat(
            storage_of(cell), trial_id_of(t)
        )  # before taking: a worker killed right after the take leaves a beat that goes stale
        if _take(cell, trial_id_of(t)):
            storage_of(cell).set_trial_user_attr(trial_id_of(t), WORKER, worker.stamp())
            return trial_handle(cell, trial_id_of(t))
    return BUSY if any(t.state in (TrialState.WAITING, TrialState.RUNNING) for t in held) else None


def finish(
    cell: optuna.Study,
    trial: optuna.Trial,
    *,
    attrs: dict,
    value: float | None = None,
    state: TrialState = TrialState.COMPLETE,
) -> bool:
    """Record a trial's result; False (nothing written) if it was finished meanwhile, e.g. failed as stale while its
    worker stalled."""
    try:
        for key, item in attrs.items():
            storage_of(cell).set_trial_user_attr(trial_id_of(trial), key, item)
    except optuna.exceptions.UpdateFinishedTrialError:
        return False
    told = cell.tell(trial, value if state == TrialState.COMPLETE else None, state=state, skip_if_finished=True)
    return told.state == state and told.user_attrs.get(SURPLUS) is None


def requeue(cell: optuna.Study, trial: FrozenTrial, *, retries: int) -> None:
    """Queue a failed trial's retry: same slot, same parameters, Optuna's retry attributes so its tools agree.

    A stop the user asked for (Ctrl-C, SIGTERM) is free; after `retries` deaths of its worker the
    chain ends failed instead, so one trial that always kills its worker cannot stall the study.
    """
    history = [*trial.system_attrs.get(RETRY_HISTORY, []), trial.number]
    crashes = trial.system_attrs.get(CRASHES, 0) + (not trial.user_attrs.get(INTERRUPTED, False))
    # Not the pruner's rung marks: the failed trial keeps them, and a copy would count the slot twice at each
    # rung it passed (should_prune judges the retry with them all the same).
    system_attrs = {k: v for k, v in trial.system_attrs.items() if k != BEAT and not k.startswith(RUNG_MARK)}
    system_attrs |= {FAILED_TRIAL: history[0], RETRY_HISTORY: history, CRASHES: crashes}
    user_attrs = {k: v for k, v in trial.user_attrs.items() if k not in (WORKER, PROGRESS, INTERRUPTED)}
    state = TrialState.WAITING
    if crashes > retries:
        state = TrialState.FAIL
        user_attrs[FAILURE] = (
            f"its worker died {crashes} times while training it (out of memory?); "
            f"not retried again (retries = {retries})"
        )
    cell.add_trial(
        optuna.trial.create_trial(
            state=state,
            params=trial.params,
            distributions=trial.distributions,
            user_attrs=user_attrs,
            system_attrs=system_attrs,
        )
    )


def fail_and_requeue(cell: optuna.Study, trial: FrozenTrial, *, retries: int) -> bool:
    """Fail a running trial and queue its retry; False if it was finished by someone else first."""
    if not move_state(
        cell, trial_id_of(trial), old=TrialState.RUNNING, new=TrialState.FAIL
    ):  # only one process retries it
        return False
    requeue(cell, storage_of(cell).get_trial(trial_id_of(trial)), retries=retries)
    return True


def recover(cell: optuna.Study, *, retries: int, dead: frozenset[str] = frozenset()) -> None:
    """Retry the trials of dead workers: stale heartbeats, and workers known dead here or to the supervisor."""
    with warnings.catch_warnings():  # fail_stale_trials is "experimental" in Optuna 5, and says so on every call
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(
            cell
        )  # RDB storages: the heartbeat on the database's clock; requeues through the callback
    now = time.time()
    for trial in cell.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        stamp = trial.user_attrs.get(WORKER) or {}
        stale = BEAT in trial.system_attrs and now - trial.system_attrs[BEAT] > GRACE_SECONDS
        if stamp.get("token") in dead or dead_here(stamp) or stale:
            fail_and_requeue(cell, trial, retries=retries)
    # A worker killed between failing a trial and queueing its retry leaves a failure that is not the
    # training's own (those carry "failure"): queue it now. Two workers may both do so: one slot, the lower holds.
    trials = cell.get_trials(deepcopy=False)
    retried = retried_numbers(trials)
    held = {t.system_attrs.get(SLOT) for t in slot_trials(trials) if t.state != TrialState.FAIL}
    for trial in trials:
        lost = trial.state == TrialState.FAIL and FAILURE not in trial.user_attrs and trial.number not in retried
        if lost and (trial.system_attrs.get(SLOT) not in held or SLOT not in trial.system_attrs):
            requeue(cell, trial, retries=retries)


def stored(trial: optuna.Trial) -> FrozenTrial:
    """A claimed trial as the storage holds it now."""
    return storage_of(trial.study).get_trial(trial_id_of(trial))


def slot_of(trial: optuna.Trial) -> int:
    """The planned slot a claimed trial fills (its number where it was queued without one, as TPE's are)."""
    return stored(trial).system_attrs.get(SLOT, trial.number)


def curve_of(trial: optuna.Trial) -> dict[int, float]:
    """The intermediate values a claimed trial reported so far (a retry's copy its parent's), by step."""
    return stored(trial).intermediate_values


def earlier_marks(trial: optuna.Trial) -> dict[str, float]:
    """The rung marks of the trials a retry follows in its slot (none for a first try): finished, so read once."""
    history = set(stored(trial).system_attrs.get(RETRY_HISTORY, []))
    marks: dict[str, float] = {}
    for earlier in trial.study.get_trials(deepcopy=False) if history else []:
        if earlier.number in history:
            marks |= rung_marks(earlier)
    return marks


def should_prune(trial: optuna.Trial, *, earlier: dict[str, float]) -> bool:
    """The cell's pruner on the trial as trial.should_prune() asks it, holding the `earlier` rung marks of its
    slot as its own: a retry is judged at the rungs an uninterrupted trial would meet next, not again at those
    its slot passed (on a later epoch's value)."""
    if not earlier:
        return trial.should_prune()
    latest = copy.copy(stored(trial))
    latest.system_attrs = earlier | latest.system_attrs
    return trial.study.pruner.prune(trial.study, latest)


def give_back(trial: optuna.Trial, *, retries: int) -> bool:
    """A claimed trial this worker will not finish: failed, and its slot queued again (see fail_and_requeue)."""
    return fail_and_requeue(trial.study, stored(trial), retries=retries)


# --- heartbeats -------------------------------------------------------------------------------


def beat(storage, trial_id: int) -> None:
    if not record_heartbeat(storage, trial_id):
        storage.set_trial_system_attr(trial_id, BEAT, time.time())


class Heartbeat:
    """Beats for a trial in the background while it trains, and notices when it was finished elsewhere."""

    @classmethod
    def of(cls, trial: optuna.Trial) -> Heartbeat:
        return cls(storage_of(trial.study), trial_id_of(trial))

    def __init__(self, storage, trial_id: int, interval: float = HEARTBEAT_SECONDS) -> None:
        self.superseded = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, args=(storage, trial_id, interval), daemon=True)

    def _beat(self, storage, trial_id: int, interval: float) -> None:
        while True:
            try:
                if storage.get_trial(trial_id).state != TrialState.RUNNING:
                    self.superseded.set()  # failed as stale while this worker stalled: its retry runs the slot
                    return
                beat(storage, trial_id)
            except optuna.exceptions.UpdateFinishedTrialError:
                self.superseded.set()
                return
            except Exception:  # noqa: BLE001 - a database hiccup: the next beat tries again
                pass
            if self._stop.wait(interval):
                return

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop beating (again: nothing more)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def __enter__(self) -> Heartbeat:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
