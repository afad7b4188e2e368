"""One claimed trial, alone or in a pack: prepare it for training (its settings, seed, network,
checkpoint, callbacks and heartbeat) and finish it with what its training ended in."""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path

import optuna
import torch
from optuna.trial import TrialState

from ..model.network import SequenceNetwork, parameter_count
from ..record import (
    BEST_VALIDATION,
    FAILURE,
    INTERRUPTED,
    PROGRESS,
    PRUNED,
    PRUNED_AT,
    cell_name,
    derive_seed,
    result_attrs,
    start_attrs,
)
from ..tasks import Task
from ..training import checkpoint
from ..training.config import TrainingConfig
from ..training.loop import Diverged, TrainingResult
from ..training.pack import Member
from . import queue
from .space import inactive, suggest, trial_settings
from .stopping import STOP
from .studyfile import EXTENSIBLE, StudyFile


class Superseded(Exception):
    """This worker's trial was finished elsewhere (failed as stale while the worker stalled): stop training it."""


@dataclass(frozen=True)
class TrialOutcome:
    cell: str
    number: int
    state: str  # "COMPLETE", "PRUNED", "FAIL" or "SUPERSEDED" (failed as stale while this worker stalled; its
    # retry runs it)
    value: float | None
    reason: str = ""


def versions() -> dict[str, str]:
    from .. import __version__

    return {"odyssey": __version__, "torch": torch.__version__, "optuna": optuna.__version__}


def checkpoint_identity(study_file: StudyFile, task: str, variant: str, slot: int, params: dict) -> dict:
    """What a checkpoint belongs to: a leftover one of another study, protocol, slot or parameters is never resumed."""
    canonical = json.loads(json.dumps(study_file.canonical(), sort_keys=True))
    per_task = ("task_options", "task_sources")  # only this task's: adding a task keeps the others' checkpoints
    protocol = {k: v for k, v in canonical.items() if k not in EXTENSIBLE.union(per_task)}
    protocol |= {key: canonical.get(key, {}).get(task, {}) for key in per_task}
    digest = hashlib.sha256(json.dumps(protocol, sort_keys=True).encode()).hexdigest()[:16]
    return {
        "cell": cell_name(study_file.name, task, variant),
        "slot": slot,
        "params": json.loads(json.dumps(params)),
        "protocol": digest,
    }


def checkpoint_path(directory: Path, task: str, variant: str, slot: int) -> Path:
    return directory / task / variant.replace("+", "_") / f"slot-{slot}.pt"


def network_for(task: Task, variant: str, config: TrainingConfig) -> SequenceNetwork:
    """The network a trial trains: the task's shape, the variant's cell, the trial's size and layers."""
    return SequenceNetwork(
        input_size=task.input_size,
        hidden_size=config.hidden_size,
        output_size=task.output_size,
        variant=variant,
        bidirectional=task.bidirectional,
        forget_bias=config.forget_bias,
        num_layers=config.num_layers,
        dropout=config.dropout,
        readout=getattr(task, "readout", "frames"),
    )


@dataclass(frozen=True)
class Prepared:
    """A claimed trial ready to train: what `train` (or a pack, as a Member) takes, and its beating heartbeat."""

    trial: optuna.Trial
    name: str  # its cell's name
    member: Member
    heartbeat: queue.Heartbeat
    retries: int


def prepare(
    trial: optuna.Trial, *, study_file: StudyFile, task: Task, variant: str, checkpoint_dir: Path, stop: threading.Event
) -> Prepared:
    """A claimed trial's settings, seed, network, checkpoint and callbacks, its start recorded and its heartbeat
    beating (finish or give_back stops it)."""
    slot = queue.slot_of(trial)
    values = suggest(trial, study_file.space)
    config = trial_settings(study_file.training, values)
    unused = inactive(study_file.space, values)  # conditional parameters whose condition this trial does not meet
    seed, name = derive_seed(study_file.seed, task.name, variant, slot), cell_name(study_file.name, task.name, variant)
    torch.manual_seed(seed)
    model = network_for(task, variant, config)
    rng_state = torch.get_rng_state()  # where its dropout draws start, alone or in a pack
    path = checkpoint_path(checkpoint_dir, task.name, variant, slot)
    identity = checkpoint_identity(study_file, task.name, variant, slot, trial.params)
    _record_start(trial, task=task, variant=variant, model=model, inactive=unused)

    # The learning curve: each epoch's validation metric as the trial's intermediate value at step `epoch`.
    # A retry resuming from its checkpoint reports the epochs done before (once: Optuna warns on a step twice).
    reported = set(queue.curve_of(trial))
    # A retry is judged as its slot's uninterrupted trial would be: with the rungs its slot passed, and pruned
    # where an earlier trial of the slot was pruned but stopped or killed before it was stored PRUNED.
    earlier, pruned_at = queue.earlier_marks(trial), queue.stored(trial).user_attrs.get(PRUNED_AT)
    heartbeat = queue.Heartbeat.of(trial)

    def report(epoch: int, metric: float) -> None:
        if epoch not in reported:
            trial.report(metric, epoch)
            reported.add(epoch)

    def pruned(epoch: int) -> str | None:
        if not study_file.pruning.enabled:
            return None
        if pruned_at is not None and epoch >= pruned_at:
            return PRUNED
        if epoch >= config.max_epochs:  # the full budget is spent: pruning saves nothing, it would hide a result
            return None
        if not queue.should_prune(trial, earlier=earlier):
            return None
        trial.set_user_attr(PRUNED_AT, epoch)  # at once: the test split is still to evaluate before it is stored
        return PRUNED

    def on_resume(curve: list[float]) -> str | None:
        for epoch, metric in enumerate(curve, start=1):
            report(epoch, metric)
        return pruned(len(curve)) if curve else None

    def on_epoch(epoch: int, metric: float, best: float) -> str | None:
        if heartbeat.superseded.is_set():
            raise Superseded
        with STOP.shielded():  # the epoch's writes to the storage go whole: a stop waits for them
            report(epoch, metric)
            trial.set_user_attr(PROGRESS, {"epoch": epoch, "validation": metric, "best": best})
            verdict = pruned(epoch)
        if stop.is_set():  # a stop that landed here, or where Python could not raise it (a destructor, a C call)
            raise KeyboardInterrupt
        return verdict

    member = Member(model, config, seed, path, identity, on_epoch, on_resume, rng_state=rng_state)
    return Prepared(trial, name, member, heartbeat.start(), study_file.retries)


def finish(prepared: Prepared, outcome: TrainingResult | Exception) -> TrialOutcome:
    """Store what the trial's training ended in (a result, or Diverged) and remove its checkpoint; another
    exception gives its slot back (a crash) and is raised again."""
    trial, name, path = prepared.trial, prepared.name, prepared.member.checkpoint_path
    prepared.heartbeat.stop()
    cell = trial.study
    if isinstance(outcome, Diverged):
        queue.finish(cell, trial, attrs={FAILURE: str(outcome)}, state=TrialState.FAIL)
        checkpoint.remove(path)
        return TrialOutcome(name, trial.number, "FAIL", None, str(outcome))
    if isinstance(outcome, Superseded):
        return TrialOutcome(name, trial.number, "SUPERSEDED", None, "failed as stale while this worker stalled")
    if isinstance(outcome, BaseException):
        give_back(prepared, interrupted=False)
        raise outcome
    result = outcome
    results = result_attrs(
        test_metric=result.test,
        epochs=result.epochs,
        best_epoch=result.best_epoch,
        seconds=result.seconds,
        stopped=result.stopped,
        resumed_from=result.resumed_from,
    )
    # A pruned trial is final, as a complete one: its slot is not queued again. Optuna stores its last
    # reported value as its value; its best epoch's validation and test metrics are in its attributes.
    state = TrialState.PRUNED if result.stopped == PRUNED else TrialState.COMPLETE
    if state == TrialState.PRUNED:
        results[BEST_VALIDATION] = result.validation
    value = result.validation if state == TrialState.COMPLETE else None
    if not queue.finish(cell, trial, attrs=results, value=value, state=state):
        return TrialOutcome(name, trial.number, "SUPERSEDED", None, "failed as stale while this worker stalled")
    checkpoint.remove(path)
    return TrialOutcome(name, trial.number, state.name, result.validation)


def give_back(prepared: Prepared, *, interrupted: bool) -> None:
    """The slot goes back to the queue, its retry resuming from the last epoch's checkpoint; a user's stop
    (Ctrl-C, SIGTERM: `interrupted`) is not a crash, so it spends no retry. A trial finished meanwhile
    (failed as stale) is left to its retry."""
    prepared.heartbeat.stop()
    trial = prepared.trial
    if interrupted:
        try:
            trial.set_user_attr(INTERRUPTED, True)
        except optuna.exceptions.UpdateFinishedTrialError:
            return
    queue.give_back(trial, retries=prepared.retries)


def _record_start(
    trial: optuna.Trial, *, task: Task, variant: str, model: torch.nn.Module, inactive: list[str]
) -> None:
    """What status and the report read while the trial trains: its cell, metric, size and versions."""
    attrs = start_attrs(
        task=task.name,
        variant=variant,
        metric=task.metric_name,
        parameter_count=parameter_count(model),
        versions=versions(),
        inactive=inactive,
    )
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
