"""`odyssey run`: check and prepare the study once, build the kernel once, then train in N worker
processes while showing progress, and retry at once the trials of any worker that dies."""

from __future__ import annotations

import multiprocessing
import os
import threading
import traceback
import uuid
import warnings
from pathlib import Path

import optuna
from optuna.trial import TrialState

from ..errors import Interrupted, OdysseyError, WorkerFailed, first_line
from . import queue
from .cells import cell_name, default_checkpoint_dir, open_study_storage, prepare
from .status import status_rows, watch
from .stopping import STOP
from .storage import check_folder, mask_url
from .studyfile import StudyFile
from .worker import build_tasks, work


def _interrupted(url: str) -> Interrupted:
    return Interrupted(f"interrupted: finished trials are in {mask_url(url)}; run the same command to resume")


def _writable(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise OdysseyError(f"{directory}: results folder not writable ({err.strerror})") from None


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def open_and_prepare(spec: StudyFile, url: str, *, extend: bool):
    """One path for `prepare` and `run`: every task option and dataset is checked (and cached) before any cell exists."""
    build_tasks(spec)
    storage = open_study_storage(spec, url, create_folder=url == spec.default_storage)
    prepare(spec, storage, extend=extend)
    return storage


def prepare_study(spec: StudyFile, *, storage_url: str | None = None, extend: bool = False) -> list[dict[str, object]]:
    """Create the cells and queue their trials without training: do it once before starting many workers."""
    url = storage_url or spec.default_storage
    open_and_prepare(spec, url, extend=extend)
    return status_rows(url, spec.name)


def build_kernel() -> None:
    """Compile the C++ kernel now, with its own progress line, so no trial's time includes it; a failure is said once, here."""
    from ..model.kernel import KernelUnavailable, load
    from ..model.kernel.dispatch import chosen_backend

    if chosen_backend(None) == "reference":
        return
    try:
        load()
    except KernelUnavailable as error:
        print(f"odyssey: {error}; the workers use the slower reference LSTM", flush=True)


def _worker_process(spec: StudyFile, url: str, checkpoint_dir: Path, worker: int, threads: int, token: str, log: Path, errors) -> None:
    from ..model.kernel.dispatch import KernelFallback

    STOP.install()
    warnings.simplefilter("ignore", KernelFallback)  # the runner reported it once
    try:
        work(spec, url, checkpoint_dir=checkpoint_dir, worker=worker, threads=threads, token=token)
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
    spec: StudyFile,
    *,
    storage_url: str | None = None,
    jobs: int = 1,
    threads: int | None = None,
    extend: bool = False,
    checkpoint_dir: Path | None = None,
    force_jobs: bool = False,
    progress: bool = True,
) -> list[dict[str, object]]:
    """Run every cell's missing trials; returns the status rows afterwards."""
    url = storage_url or spec.default_storage
    checkpoint_dir = checkpoint_dir or default_checkpoint_dir(spec, url)
    with STOP.installed():
        try:
            check_folder(url, create=url == spec.default_storage)
            _writable(checkpoint_dir)
            storage = open_and_prepare(spec, url, extend=extend)
            unfinished = sum(r["planned"] - r["complete"] - r["failed"] for r in status_rows(url, spec.name))
            jobs = min(jobs if force_jobs else min(jobs, cores()), max(unfinished, 1))
            if unfinished:
                build_kernel()
            threads = threads or (1 if jobs > 1 else cores())
            if jobs == 1:
                _run_here(spec, url, storage, checkpoint_dir, threads, progress)
            else:
                _run_workers(spec, url, storage, checkpoint_dir, jobs, threads, progress)
        except KeyboardInterrupt:
            raise _interrupted(url) from None
    return status_rows(url, spec.name)


def _run_here(spec: StudyFile, url: str, storage, checkpoint_dir: Path, threads: int, progress: bool) -> None:
    done = threading.Event()
    viewer = threading.Thread(target=watch, args=(storage, spec.name), kwargs={"running": lambda: not done.is_set(), "jobs": 1}, daemon=True)
    if progress:
        viewer.start()
    try:
        work(spec, url, checkpoint_dir=checkpoint_dir, threads=threads)
    finally:
        done.set()
        if viewer.is_alive():
            viewer.join()


def _run_workers(spec: StudyFile, url: str, storage, checkpoint_dir: Path, jobs: int, threads: int, progress: bool) -> None:
    context = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools and open DB handles
    errors = context.Queue()
    logs = checkpoint_dir.parent / "logs"
    tokens = [uuid.uuid4().hex for _ in range(jobs)]
    workers = [
        context.Process(target=_worker_process, args=(spec, url, checkpoint_dir, w, threads, tokens[w], logs / f"worker-{w}.log", errors))
        for w in range(jobs)
    ]
    deaths: list[str] = []

    def running() -> bool:
        """Whether any worker is alive; a worker killed by a signal has its trial retried now, not after the heartbeat grace."""
        for n, w in enumerate(workers):
            if w.exitcode is not None and w.exitcode < 0 and tokens[n] not in deaths:
                deaths.append(tokens[n])
                _retry_trials_of(spec, storage, tokens[n])
        return any(w.is_alive() for w in workers)

    STOP.children = workers
    try:
        for w in workers:
            w.start()
        if progress:
            watch(storage, spec.name, running=running, jobs=jobs)
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
    failures = [_death(w.exitcode, n) for n, w in enumerate(workers) if w.exitcode < 0]
    failures += [errors.get(timeout=5) for w in workers if w.exitcode > 0 and not errors.empty()]
    if failures or any(w.exitcode for w in workers):
        raise WorkerFailed("; ".join(failures or ["a worker exited with an error"]))


def _retry_trials_of(spec: StudyFile, storage, token: str) -> None:
    for task, variant in spec.cells():
        study = optuna.load_study(study_name=cell_name(spec.name, task, variant), storage=storage)
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if (trial.user_attrs.get("worker") or {}).get("token") == token:
                queue.fail_and_requeue(study, trial, retries=spec.retries)


def _death(exitcode: int, worker: int) -> str:
    import signal

    try:
        name = signal.Signals(-exitcode).name
    except ValueError:
        name = f"signal {-exitcode}"
    hint = " (out of memory?)" if name == "SIGKILL" else ""
    return f"worker {worker}: killed by {name}{hint}; its trial went back to the queue"
