"""One worker: take a free slot, train it, record the result; until every cell's slots are finished."""

from __future__ import annotations

import threading
from functools import partial
from pathlib import Path

import optuna

from ..errors import ConfigError, first_line
from ..record import INTERRUPTED
from ..tasks import Task, make_task
from ..training.loop import train_alone, training_threads
from . import queue
from .cells import load_cells, open_study_storage
from .packs import run_pack
from .stopping import STOP
from .studyfile import StudyFile

# network_for and checkpoint_identity lived here before trial.py: code outside odyssey imports them from here.
from .trial import TrialOutcome, finish, give_back, prepare
from .trial import checkpoint_identity as checkpoint_identity
from .trial import network_for as network_for

POLL_SECONDS = 2.0  # how often a worker with nothing to take looks again (a peer's trial may come back)


def run_trial(
    trial: optuna.Trial, *, study_file: StudyFile, task: Task, variant: str, checkpoint_dir: Path, stop: threading.Event
) -> TrialOutcome:
    """Train one claimed trial and store its result; a crash gives its slot back, resuming from its checkpoint."""
    prepared = prepare(
        trial, study_file=study_file, task=task, variant=variant, checkpoint_dir=checkpoint_dir, stop=stop
    )
    try:
        outcome = train_alone(prepared.member, task)
    except Exception as err:  # noqa: BLE001 - Diverged, Superseded or a crash: finish tells them apart
        outcome = err
    except BaseException as err:
        # The user's stop (Ctrl-C, SIGTERM) is not a crash: no retry spent.
        give_back(prepared, interrupted=isinstance(err, KeyboardInterrupt))
        raise
    return finish(prepared, outcome)


def _claim(
    cell: optuna.Study, me: queue.Worker, retries: int, fits: queue.Fits | None = None
) -> optuna.Trial | queue.Busy | None:
    """A stop landing while a trial is claimed waits for the claim to finish, then gives the trial back at once."""
    with STOP.shielded():
        trial = queue.claim(cell, worker=me, retries=retries, fits=fits)
        if isinstance(trial, optuna.Trial) and STOP.event.is_set():
            trial.set_user_attr(INTERRUPTED, True)
            queue.give_back(trial, retries=retries)
    if STOP.event.is_set():
        raise KeyboardInterrupt
    return trial


def check_backend() -> None:
    """$ODYSSEY_BACKEND, checked before a study or an estimate starts: a wrong value is one line (exit 2), not a
    bug in every worker's first trial."""
    from ..model.kernel.dispatch import chosen_backend

    try:
        chosen_backend(None)
    except ValueError as err:
        raise ConfigError(f"environment variable {first_line(err)}") from None


def build_tasks(study_file: StudyFile) -> dict[str, Task]:
    return {name: make_task(name, seed=study_file.seed, **study_file.options_for(name)) for name in study_file.tasks}


def work(
    study_file: StudyFile,
    storage_url: str,
    *,
    checkpoint_dir: Path,
    worker: int = 0,
    threads: int = 1,
    token: str | None = None,
    pack: int = 1,
    device: str = "cpu",
) -> list[TrialOutcome]:
    """Run trials until every cell's slots are finished, staying while a peer's trial might come back.

    Workers start on different cells to spread out; `token` names this worker to its supervisor. `pack`:
    up to this many slots of a cell train in lockstep (packs.py); 1 trains each alone. `device`: where
    they train; on a GPU always as a pack (of one with pack 1).
    """
    with training_threads(threads):  # and denormals flushed: see there
        return _work(
            study_file, storage_url, checkpoint_dir=checkpoint_dir, worker=worker, token=token, pack=pack, device=device
        )


def _work(
    study_file: StudyFile,
    storage_url: str,
    *,
    checkpoint_dir: Path,
    worker: int,
    token: str | None,
    pack: int,
    device: str,
) -> list[TrialOutcome]:
    stop = STOP.event
    tasks = build_tasks(study_file)
    me = queue.Worker.this_process(token)
    cells = load_cells(study_file, open_study_storage(study_file, storage_url))
    order = list(cells)  # the study file's (task, variant) order
    order = order[worker % len(order) :] + order[: worker % len(order)]
    outcomes: list[TrialOutcome] = []
    while order:
        busy = []
        for task_name, variant in order:
            if stop.is_set():
                raise KeyboardInterrupt
            cell = cells[task_name, variant]
            given = {
                "study_file": study_file,
                "task": tasks[task_name],
                "variant": variant,
                "checkpoint_dir": checkpoint_dir,
                "stop": stop,
            }
            while isinstance(trial := _claim(cell, me, study_file.retries), optuna.Trial):
                if pack == 1 and device == "cpu":
                    outcomes.append(run_trial(trial, **given))
                else:
                    more = partial(_claim, cell, me, study_file.retries)
                    outcomes += run_pack(trial, size=pack, claim=more, device=device, **given)
            if trial is queue.BUSY:
                busy.append((task_name, variant))
        order = busy
        if order:
            stop.wait(POLL_SECONDS)
    return outcomes
