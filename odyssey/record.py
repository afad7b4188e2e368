"""The stored-trial contract: every name odyssey writes into an Optuna storage, and one trial read back.

`odyssey run` writes these (study/cells.py, study/queue.py, study/worker.py); `status`, `report`
and `importance` read them (study/status.py, analysis/trials.py). Stored studies outlive versions
of odyssey, so each name keeps its stored string exactly (the committed replication storage holds
them; tests/replication/test_replication.py reads it). Neither torch nor pandas: study and analysis both
import this module, and it imports nothing of theirs.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

from optuna.trial import FrozenTrial, TrialState

# --- a cell: one Optuna study per (task, variant) ----------------------------------------------


def cell_name(study_name: str, task: str, variant: str) -> str:
    """The Optuna study that holds one cell of the odyssey study `study_name`."""
    return f"{study_name}/{task}/{variant}"


def derive_seed(*parts: object) -> int:
    """A seed from names and numbers: (seed, task, variant, slot) seeds a trial's training,
    (seed, cell, slot) its draw."""
    return int.from_bytes(hashlib.sha256("/".join(map(str, parts)).encode()).digest()[:4], "little")


# --- study attributes, on every cell ------------------------------------------------------------

STUDY = "odyssey_study"  # user attr: the study file's name, shared by the cells of one odyssey study
STUDY_HASH = "study_hash"  # user attr: the study file's digest
STUDY_SPEC = "study_spec"  # user attr: the study file as stored (JSON), checked against the file on every run
TASK = "task"  # user attr of the cell and of each trial
VARIANT = "variant"  # user attr of the cell and of each trial
METRIC = "metric"  # user attr of each trial (synthetic studies: of the cell too): the task's metric name
QUEUED = "odyssey_queued"  # system attr: the slots queued so far, set once they all are

# --- trial system attributes --------------------------------------------------------------------

SLOT = "odyssey_slot"  # which planned slot a trial fills
CRASHES = "odyssey_crashes"  # how many times a worker died training this slot's chain
BEAT = "odyssey_heartbeat"  # the wall-clock heartbeat on storages without one of their own
RETRY_HISTORY = "retry_history"  # Optuna's own retry attributes, so its tools agree: the numbers retried
FAILED_TRIAL = "failed_trial"  # ... and the first of them

# --- trial user attributes ----------------------------------------------------------------------

WORKER = "worker"  # the stamp (token, namespace, pid, start time) of the process that took it
PROGRESS = "progress"  # {epoch, validation, best} after each epoch, while it trains
INTERRUPTED = "interrupted"  # the user stopped it (Ctrl-C, SIGTERM): its retry spends no crash
SURPLUS = "surplus"  # a second trial for a slot another holds: pruned, never run
FAILURE = "failure"  # why the training itself failed (it diverged, its worker kept dying)
PARAMETER_COUNT = "parameter_count"
VERSIONS = "versions"  # {"odyssey": ..., "torch": ..., "optuna": ...}
INACTIVE = "inactive_params"  # conditional parameters whose condition this trial does not meet
TEST_METRIC = "test_metric"
EPOCHS = "epochs"
BEST_EPOCH = "best_epoch"
SECONDS = "seconds"
STOPPED = "stopped"  # why its training ended: "max_epochs", "patience", "max_seconds" or PRUNED
PRUNED = "pruned"  # stopped by the study's pruner ([pruning]): the trial is stored PRUNED
# The epoch its pruner stopped it at, written with the verdict: a retry of a trial stopped or killed before
# it was stored PRUNED (its test split still to evaluate) stops there too, not at the next rung.
PRUNED_AT = "pruned_at_epoch"
BEST_VALIDATION = "best_validation"  # a pruned trial's best validation metric (its value is its last epoch's)
RESUMED_FROM = "resumed_from_epoch"


def start_attrs(
    *, task: str, variant: str, metric: str, parameter_count: int, versions: dict[str, str], inactive: list[str]
) -> dict[str, object]:
    """What a trial stores when its training starts (status and report read them while it runs)."""
    attrs: dict[str, object] = {
        TASK: task,
        VARIANT: variant,
        METRIC: metric,
        PARAMETER_COUNT: parameter_count,
        VERSIONS: versions,
    }
    if inactive:
        attrs[INACTIVE] = inactive
    return attrs


def result_attrs(
    *, test_metric: float, epochs: int, best_epoch: int, seconds: float, stopped: str, resumed_from: int
) -> dict[str, object]:
    """What a trial stores when its training finishes, with its validation value (queue.finish writes them)."""
    return {
        TEST_METRIC: test_metric,
        EPOCHS: epochs,
        BEST_EPOCH: best_epoch,
        SECONDS: seconds,
        STOPPED: stopped,
        RESUMED_FROM: resumed_from,
    }


# --- one stored trial, read back ----------------------------------------------------------------

NUMBERS = (TEST_METRIC, SECONDS, EPOCHS, BEST_EPOCH, PARAMETER_COUNT)  # the user attrs read as floats (NaN when absent)


@dataclass(frozen=True)
class TrialRecord:
    """One stored trial as analysis reads it: its cell, slot, state, validation value, result and parameters."""

    study: str  # the Optuna study holding it (a cell, for odyssey's studies)
    task: str
    variant: str
    number: int
    slot: int | None  # None: not queued by odyssey
    state: str  # TrialState's name
    value: float  # the objective of a complete trial; NaN otherwise
    failure: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    test_metric: float = math.nan
    seconds: float = math.nan
    epochs: float = math.nan
    best_epoch: float = math.nan
    parameter_count: float = math.nan
    params: dict[str, object] = field(default_factory=dict)


def read_record(trial: FrozenTrial, *, study: str, task: str, variant: str, objective: int = 0) -> TrialRecord:
    """The record of a stored trial; attributes it lacks (a plain Optuna study's, a running one's) are NaN or empty."""
    attrs = trial.user_attrs
    versions = attrs.get(VERSIONS)
    numbers = {key: float(attrs[key]) if isinstance(attrs.get(key), (int, float)) else math.nan for key in NUMBERS}
    return TrialRecord(
        study=study,
        task=task,
        variant=variant,
        number=trial.number,
        slot=trial.system_attrs.get(SLOT),
        state=trial.state.name,
        value=trial.values[objective] if trial.state == TrialState.COMPLETE and trial.values else math.nan,
        failure=attrs.get(FAILURE, ""),
        versions=versions if isinstance(versions, dict) else {},
        params=trial.params,
        **numbers,
    )


# --- who holds a slot ---------------------------------------------------------------------------


def retried_numbers(trials: list[FrozenTrial]) -> set[int]:
    """The numbers of trials whose retry was queued: they hold no slot any more."""
    return {n for t in trials for n in t.system_attrs.get(RETRY_HISTORY, [])}


def slot_trials(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """The trials holding slots: per slot the lowest number that is neither retried nor surplus."""
    retried = retried_numbers(trials)
    held, seen = [], set()
    for t in sorted(trials, key=lambda t: t.number):
        if t.user_attrs.get(SURPLUS) or t.number in retried:
            continue
        slot = t.system_attrs.get(SLOT)
        if slot is not None:
            if slot in seen:
                continue
            seen.add(slot)
        held.append(t)
    return held
