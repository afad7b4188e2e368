"""One worker: claim a trial, train it, record the result; until no cell has a free slot."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import optuna
import torch
from optuna.trial import TrialState

from . import queue
from ..training import checkpoint
from ..model.network import SequenceNetwork, parameter_count
from .space import inactive, suggest, trial_settings
from .storage import HEARTBEAT_SECONDS
from .cells import cell_name, claim, derive_seed, load_cells, open_study_storage
from .studyfile import StudyFile
from ..tasks import make_task
from ..tasks.base import Task
from ..training.train import Diverged, train


@dataclass(frozen=True)
class TrialOutcome:
    cell: str
    number: int
    state: str  # "COMPLETE" or "FAIL"
    value: float | None
    reason: str = ""


class Heartbeat:
    """Records a trial's heartbeat in the background while it trains."""

    def __init__(self, storage, trial_id: int, interval: float = HEARTBEAT_SECONDS) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, args=(storage, trial_id, interval), daemon=True)

    def _beat(self, storage, trial_id: int, interval: float) -> None:
        while True:
            storage.record_heartbeat(trial_id)
            if self._stop.wait(interval):
                return

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def versions() -> dict[str, str]:
    from .. import __version__

    return {"odyssey": __version__, "torch": torch.__version__, "optuna": optuna.__version__}


def checkpoint_path(directory: Path, task: str, variant: str, root: int) -> Path:
    return directory / task / variant.replace("+", "_") / f"trial-{root}.pt"


def run_trial(trial: optuna.Trial, *, spec: StudyFile, task: Task, variant: str, checkpoint_dir: Path) -> TrialOutcome:
    study, storage = trial.study, trial.study._storage
    values = suggest(trial, spec.space)
    hparams, config = trial_settings(spec.training, values)
    root = queue.root_number(storage.get_trial(trial._trial_id))
    seed = derive_seed(spec.seed, task.name, variant, root)
    torch.manual_seed(seed)
    model = SequenceNetwork(
        input_size=task.input_size,
        hidden_size=hparams.hidden_size,
        output_size=task.output_size,
        variant=variant,
        bidirectional=task.bidirectional,
        forget_bias=config.forget_bias,
        num_layers=config.num_layers,
        dropout=config.dropout,
        readout=getattr(task, "readout", "frames"),
    )
    attrs = {
        "task": task.name,
        "variant": variant,
        "metric": task.metric_name,
        "parameter_count": parameter_count(model),
        "versions": versions(),
    }
    unused = inactive(spec.space, values)
    if unused:
        attrs["inactive_params"] = unused  # conditional parameters whose condition this trial does not meet
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    path = checkpoint_path(checkpoint_dir, task.name, variant, root)
    name = cell_name(spec.name, task.name, variant)

    def on_epoch(epoch: int, metric: float, best: float) -> None:
        trial.set_user_attr("progress", {"epoch": epoch, "validation": metric, "best": best})

    try:
        with Heartbeat(storage, trial._trial_id):
            result = train(model, task, hparams, config=config, seed=seed, checkpoint_path=path, on_epoch=on_epoch)
    except Diverged as err:
        trial.set_user_attr("failure", str(err))
        study.tell(trial, state=TrialState.FAIL)
        checkpoint.remove(path)
        return TrialOutcome(name, trial.number, "FAIL", None, str(err))
    except BaseException as err:
        # Interrupted or crashed: the slot goes back to the queue, resuming from the last epoch's checkpoint.
        if isinstance(err, KeyboardInterrupt):  # the user's stop (Ctrl-C, SIGTERM) is not a crash: no retry spent
            trial.set_user_attr("interrupted", True)
        queue.fail_and_requeue(study, storage.get_trial(trial._trial_id), retries=spec.retries)
        raise
    for key, value in {
        "test_metric": result.test,
        "epochs": result.epochs,
        "best_epoch": result.best_epoch,
        "seconds": result.seconds,
        "stopped": result.stopped,
        "resumed_from_epoch": result.resumed_from,
    }.items():
        trial.set_user_attr(key, value)
    study.tell(trial, result.validation)
    checkpoint.remove(path)
    return TrialOutcome(name, trial.number, "COMPLETE", result.validation)


def build_tasks(spec: StudyFile) -> dict[str, Task]:
    return {name: make_task(name, seed=spec.seed, **spec.task_options.get(name, {})) for name in spec.tasks}


def work(spec: StudyFile, storage_url: str, *, checkpoint_dir: Path, worker: int = 0, threads: int = 1) -> list[TrialOutcome]:
    """Run trials until every cell's slots are taken. Workers start on different cells to spread out."""
    torch.set_num_threads(threads)
    storage = open_study_storage(spec, storage_url)
    cells = load_cells(spec, storage, worker=worker)
    tasks = build_tasks(spec)
    order = spec.cells()
    order = order[worker % len(order) :] + order[: worker % len(order)]
    outcomes = []
    for task_name, variant in order:
        study = cells[task_name, variant]
        while (trial := claim(study, spec.trials, sampler=spec.sampler, retries=spec.retries)) is not None:
            outcomes.append(run_trial(trial, spec=spec, task=tasks[task_name], variant=variant, checkpoint_dir=checkpoint_dir))
    return outcomes
