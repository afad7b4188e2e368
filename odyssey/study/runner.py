"""`odyssey run`: prepare the cells once, then train in N worker processes while showing progress."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
from pathlib import Path

from ..errors import Interrupted, OdysseyError, WorkerFailed
from .status import status_rows, watch
from .storage import mask_url
from .cells import default_checkpoint_dir, open_study_storage, prepare
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


@contextlib.contextmanager
def _sigterm_stops(children: list[multiprocessing.Process] = ()):
    """SIGTERM (kill, a scheduler's preemption) stops like Ctrl-C: running trials are queued again at once.

    Ctrl-C reaches the whole process group; SIGTERM only this process, so it passes it on.
    """
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return

    def stop(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the requeueing short
        for child in children:
            if child.is_alive():
                child.terminate()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _worker_process(spec: StudyFile, storage_url: str, checkpoint_dir: Path, worker: int, threads: int, errors) -> None:
    try:
        with _sigterm_stops():
            work(spec, storage_url, checkpoint_dir=checkpoint_dir, worker=worker, threads=threads)
    except KeyboardInterrupt:
        pass
    except Exception as err:  # noqa: BLE001 - reported by the parent in one line
        errors.put(f"worker {worker}: {type(err).__name__}: {err}")
        raise SystemExit(1) from None


def prepare_study(spec: StudyFile, *, storage_url: str | None = None, extend: bool = False) -> list[dict[str, object]]:
    """Create the cells and queue their trials without training: do it once before starting many workers."""
    url = storage_url or spec.default_storage
    prepare(spec, open_study_storage(spec, url), extend=extend)
    return status_rows(url, spec.name)


def run(
    spec: StudyFile,
    *,
    storage_url: str | None = None,
    jobs: int = 1,
    threads: int | None = None,
    extend: bool = False,
    checkpoint_dir: Path | None = None,
    progress: bool = True,
) -> list[dict[str, object]]:
    """Run every cell's missing trials; returns the status rows afterwards."""
    url = storage_url or spec.default_storage
    checkpoint_dir = checkpoint_dir or default_checkpoint_dir(spec, url)
    _writable(checkpoint_dir)
    build_tasks(spec)  # first: a bad task option or dataset path must not leave cells behind; fills the cache once
    storage = open_study_storage(spec, url)
    prepare(spec, storage, extend=extend)
    threads = threads or (1 if jobs > 1 else max(os.cpu_count() or 1, 1))
    if jobs == 1:
        done = threading.Event()
        viewer = threading.Thread(target=watch, args=(storage, spec.name), kwargs={"running": lambda: not done.is_set(), "jobs": 1}, daemon=True)
        if progress:
            viewer.start()
        try:
            with _sigterm_stops():
                work(spec, url, checkpoint_dir=checkpoint_dir, threads=threads)
        except KeyboardInterrupt:
            raise _interrupted(url) from None
        finally:
            done.set()
            if viewer.is_alive():
                viewer.join()
        return status_rows(url, spec.name)
    context = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools and open DB handles
    errors = context.Queue()
    workers = [context.Process(target=_worker_process, args=(spec, url, checkpoint_dir, w, threads, errors)) for w in range(jobs)]
    try:
        with _sigterm_stops(workers):
            for w in workers:
                w.start()
            if progress:
                watch(storage, spec.name, running=lambda: any(w.is_alive() for w in workers), jobs=jobs)
            for w in workers:
                w.join()
    except KeyboardInterrupt:
        for w in workers:
            w.join()
        raise _interrupted(url) from None
    failures = [_death(w.exitcode, n) for n, w in enumerate(workers) if w.exitcode < 0]
    failures += [errors.get(timeout=5) for w in workers if w.exitcode > 0 and not errors.empty()]
    if failures or any(w.exitcode for w in workers):
        raise WorkerFailed("; ".join(failures or ["a worker exited with an error"]))
    return status_rows(url, spec.name)


def _death(exitcode: int, worker: int) -> str:
    try:
        name = signal.Signals(-exitcode).name
    except ValueError:
        name = f"signal {-exitcode}"
    hint = " (out of memory?)" if name == "SIGKILL" else ""
    return f"worker {worker}: killed by {name}{hint}; its trial went back to the queue"
