"""`odyssey run`: check and prepare the study once, build the kernel once, then train in N worker
processes while showing progress, and retry at once the trials of any worker that dies."""

from __future__ import annotations

import multiprocessing
import os
import threading
import traceback
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import optuna
from optuna.trial import TrialState

from ..errors import Interrupted, OdysseyError, OdysseyWarning, WorkerDied, WorkerFailed, first_line
from ..record import FAILURE, WORKER, cell_name
from ..storage import check_folder, checkpoint_folder, mask_url, writable_folder
from . import queue
from .cells import open_study_storage, prepare
from .packs import check_device
from .status import cell_rows, status_rows
from .stopping import STOP, die_with_parent
from .studyfile import StudyFile
from .worker import build_tasks, check_backend, work


def _interrupted(url: str) -> Interrupted:
    return Interrupted(f"interrupted: finished trials are in {mask_url(url)}; run the same command to resume")


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


# A per-sequence error rate on fewer validation sequences than this is too coarse to choose a trial's
# best epoch by. Issue 25's sensor study (240 recordings, 3 activities, default 10% validation and test)
# had 24: the rate moves in steps of 0.042, and the objective, each trial's best of 10 epochs on them,
# read low against the test split (a rebuilt study: best trial 0.125 against 0.208 on test). At 50 a
# step is 0.02 and an error rate of 0.2 has a standard error of 0.057 rather than 0.082.
FEW_VALIDATION_SEQUENCES = 50


def warn_coarse_validation(study_file: StudyFile, tasks: dict) -> None:
    """One warning line per task of your own scored one error per sequence on a small validation split."""
    for name, task in tasks.items():
        count = len(task._targets["validation"])
        if (
            name in study_file.task_sources
            and getattr(task, "readout", None) == "last"
            and count < FEW_VALIDATION_SEQUENCES
        ):
            warnings.warn(
                f"task {name!r}: its validation split holds {count} sequences, each one error or none: "
                f"the error rate moves in steps of {1 / count:.3f} and each trial's best epoch on it (the objective) "
                f"reads low against the test split; give it {FEW_VALIDATION_SEQUENCES} or more "
                "(option validation_fraction, or a split column with whole recordings, or subjects, in each split)",
                OdysseyWarning,
                stacklevel=2,
            )


def open_and_prepare(study_file: StudyFile, url: str, *, extend: bool):
    """One path for `prepare` and `run`: every task option and dataset is checked (and cached) before any cell
    exists."""
    warn_coarse_validation(study_file, build_tasks(study_file))
    storage = open_study_storage(study_file, url, create_folder=url == study_file.default_storage)
    prepare(study_file, storage, extend=extend)
    return storage


def prepare_study(
    study_file: StudyFile, *, storage_url: str | None = None, extend: bool = False
) -> list[dict[str, object]]:
    """Create the cells and queue their trials without training: do it once before starting many workers."""
    url = storage_url or study_file.default_storage
    open_and_prepare(study_file, url, extend=extend)
    return status_rows(url, study_file.name)


def build_kernel() -> None:
    """Compile the C++ kernel now, with its own progress line, so no trial's time includes it; a failure is said
    once, here."""
    from ..model.kernel import KernelUnavailable, load
    from ..model.kernel.dispatch import chosen_backend

    if chosen_backend(None) == "reference":
        return
    try:
        load()
    except KernelUnavailable as error:
        warnings.warn(f"{error}; the workers use the slower reference LSTM", OdysseyWarning, stacklevel=2)


@dataclass(frozen=True)
class EachWorker:
    """How each worker trains: its torch threads, up to how many slots of a cell at once (--pack), and where
    (--device)."""

    threads: int
    pack: int = 1
    device: str = "cpu"


def _worker_process(
    study_file: StudyFile,
    url: str,
    checkpoint_dir: Path,
    worker: int,
    each: EachWorker,
    token: str,
    log: Path,
    errors,
    parent: int,
    verbosity: int,
) -> None:
    from ..model.kernel.dispatch import KernelFallback
    from ..training.loop import keep_freed_memory

    STOP.install()
    keep_freed_memory()  # a process that does nothing but train
    optuna.logging.set_verbosity(verbosity)  # a spawned process starts at Optuna's default: log as the parent does
    warnings.simplefilter("ignore", KernelFallback)  # the runner reported it once
    try:
        die_with_parent(parent)  # after install: the parent's death arrives as a clean stop (SIGTERM)
        work(
            study_file,
            url,
            checkpoint_dir=checkpoint_dir,
            worker=worker,
            threads=each.threads,
            token=token,
            pack=each.pack,
            device=each.device,
        )
    except KeyboardInterrupt:
        pass
    except OdysseyError as err:
        errors.put(f"worker {worker}: {first_line(err)}")
        raise SystemExit(2) from None
    except Exception as err:  # noqa: BLE001 - a bug: the parent says where its traceback is
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(traceback.format_exc())
        errors.put(f"worker {worker} stopped on a bug in odyssey: {type(err).__name__}: {err} (traceback: {log})")
        raise SystemExit(1) from None


def run(
    study_file: StudyFile,
    *,
    storage_url: str | None = None,
    jobs: int = 1,
    threads: int | None = None,
    extend: bool = False,
    checkpoint_dir: Path | None = None,
    force_jobs: bool = False,
    pack: int = 1,
    device: str = "cpu",
    progress: Callable[..., None] | None = None,
) -> list[dict[str, object]]:
    """Run every cell's missing trials; returns the status rows afterwards.

    pack: each worker trains up to this many slots of a cell in lockstep (packs.py); the results are the same.
    device: "cpu", or "cuda" ("cuda:N"): each worker's packs train on that GPU (packs.py), --pack 1 included.

    progress: shows the run while it trains, called as progress(cells, running=..., jobs=...) where
    cells() reads the status rows afresh and running() says whether trials still train (the CLI
    passes odyssey.console.watch); None shows nothing.

    Each worker keeps the memory it frees for its next steps (training.loop.keep_freed_memory); with one
    job the worker is this process, which then keeps its peak memory until it ends.
    """
    default = study_file.default_storage
    url = storage_url or default
    with STOP.installed():
        try:
            check_backend()
            device = check_device(device)
            checkpoint_dir = checkpoint_dir or checkpoint_folder(url, study_file.name)
            check_folder(url, create=url == default)
            writable_folder(checkpoint_dir, "the checkpoint folder")
            storage = open_and_prepare(study_file, url, extend=extend)
            unfinished = _unfinished(url, study_file.name)
            jobs = min(jobs if force_jobs else min(jobs, cores()), max(unfinished, 1))
            if unfinished:
                build_kernel()
            each = EachWorker(threads=threads or (1 if jobs > 1 else cores()), pack=pack, device=device)
            if jobs == 1:
                _run_here(study_file, url, storage, checkpoint_dir, each, progress)
            else:
                _run_workers(study_file, url, storage, checkpoint_dir, jobs, each, progress)
        except KeyboardInterrupt:
            raise _interrupted(url) from None
    return status_rows(url, study_file.name)


def _run_here(
    study_file: StudyFile,
    url: str,
    storage,
    checkpoint_dir: Path,
    each: EachWorker,
    progress: Callable[..., None] | None,
) -> None:
    done = threading.Event()
    cells = partial(cell_rows, storage, study_file.name)
    viewer = threading.Thread(
        target=progress, args=(cells,), kwargs={"running": lambda: not done.is_set(), "jobs": 1}, daemon=True
    )
    if progress:
        viewer.start()
    from ..training.loop import keep_freed_memory

    keep_freed_memory()  # this process is the worker
    try:
        work(study_file, url, checkpoint_dir=checkpoint_dir, threads=each.threads, pack=each.pack, device=each.device)
    finally:
        done.set()
        if viewer.is_alive():
            viewer.join()


def _unfinished(url: str, name: str) -> int:
    return sum(r["remaining"] + r["running"] for r in status_rows(url, name))


def _run_workers(
    study_file: StudyFile,
    url: str,
    storage,
    checkpoint_dir: Path,
    jobs: int,
    each: EachWorker,
    progress: Callable[..., None] | None,
) -> None:
    """A worker killed by a signal (out of memory, say) has its trial queued again at once and is
    replaced while trials remain; each death is a warning, and the run succeeds if every slot ends.

    A trial that kills every worker running it spends its retries and then fails, so replacements
    of workers that held a trial are bounded by the study's retries; a worker that dies holding
    none (at start-up, say) is replaced at most `jobs` times in all, so a machine that kills every
    new worker does not restart them forever.
    """
    context = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools and open DB handles
    errors = context.Queue()
    logs = checkpoint_dir.parent / "logs"
    workers: list = []  # STOP.children: a replacement takes its predecessor's place
    tokens: list[str] = []  # each worker's, by place
    handled: set[str] = set()  # the tokens of dead workers whose trials went back to the queue
    verbosity = optuna.logging.get_verbosity()

    def start(n: int) -> None:
        token = uuid.uuid4().hex
        process = context.Process(
            target=_worker_process,
            args=(
                study_file,
                url,
                checkpoint_dir,
                n,
                each,
                token,
                logs / f"worker-{n}.log",
                errors,
                os.getpid(),
                verbosity,
            ),
        )
        process.start()
        if n < len(workers):
            workers[n], tokens[n] = process, token
        else:
            workers.append(process)
            tokens.append(token)

    idle_deaths = 0

    def running() -> bool:
        """Whether any worker is alive; a worker killed by a signal has its trial retried now, not after the
        heartbeat grace."""
        nonlocal idle_deaths
        for n, w in enumerate(workers):
            if w.exitcode is None or w.exitcode >= 0 or tokens[n] in handled:
                continue
            handled.add(tokens[n])
            held = _retry_trials_of(study_file, storage, tokens[n])
            idle_deaths += not held
            replace = not STOP.event.is_set() and _unfinished(url, study_file.name) > 0 and idle_deaths <= jobs
            warnings.warn(WorkerDied(_death(w.exitcode, n, held=held, replaced=replace)), stacklevel=1)
            if replace:
                start(n)
        return any(w.is_alive() for w in workers)

    STOP.children = workers
    try:
        for n in range(jobs):
            start(n)
        if progress:
            progress(partial(cell_rows, storage, study_file.name), running=running, jobs=jobs)
        while running():
            STOP.event.wait(0.5)
    except KeyboardInterrupt:
        for w in workers:
            w.join()
        raise
    finally:
        STOP.children = []
    running()
    if STOP.event.is_set():
        raise KeyboardInterrupt
    failures = [errors.get(timeout=5) for w in workers if w.exitcode > 0 and not errors.empty()]
    if failures or any(w.exitcode > 0 for w in workers):
        raise WorkerFailed("; ".join(failures or ["a worker exited with an error"]))
    if left := _unfinished(url, study_file.name):
        raise WorkerFailed(
            f"{left} trials are unfinished: the workers kept dying (see the warnings above); "
            "run the same command to resume"
        )


def _retry_trials_of(study_file: StudyFile, storage, token: str) -> int:
    """Queue again the trials a dead worker held; how many it held (a surviving worker may have queued them first)."""
    held = 0
    for task, variant in study_file.cells():
        cell = optuna.load_study(study_name=cell_name(study_file.name, task, variant), storage=storage)
        for trial in cell.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.FAIL)):
            if (trial.user_attrs.get(WORKER) or {}).get("token") != token:
                continue
            if trial.state == TrialState.RUNNING:
                queue.fail_and_requeue(cell, trial, retries=study_file.retries)
            held += trial.state == TrialState.RUNNING or FAILURE not in trial.user_attrs  # not a divergence of its own
    return held


def _death(exitcode: int, worker: int, *, held: int, replaced: bool) -> str:
    import signal

    try:
        name = signal.Signals(-exitcode).name
    except ValueError:
        name = f"signal {-exitcode}"
    hint = " (out of memory?)" if name == "SIGKILL" else ""
    trial = "its trial went back to the queue" if held else "it held no trial"
    return f"worker {worker} was killed by {name}{hint}; {trial}{'; a new worker takes its place' if replaced else ''}"
