"""Carrying out a study file: one Optuna study per (task, variant), resumable at any moment.

`prepare` creates every cell once (before any worker starts: concurrent creation races in Optuna)
and queues the random-search trials; `work` claims and trains trials until no slot is left.
"""

from __future__ import annotations

import functools
import hashlib
import os
import warnings
from pathlib import Path

import numpy as np
import optuna
from optuna.trial import TrialState

from ..errors import ConfigError
from . import queue
from .space import distributions, draw
from .storage import open_storage, sqlite_path
from .studyfile import EXTENSIBLE, StudyFile

optuna.logging.set_verbosity(optuna.logging.WARNING)
# fail_stale_trials and the retry attributes are "experimental" in Optuna 5, and say so on every call.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
# odyssey drives trials with ask/tell and records heartbeats itself (worker.Heartbeat, queue.stamp).
warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")


class StudyMismatch(ConfigError):
    """The study file changed under a storage that already holds its trials."""


def cell_name(study_name: str, task: str, variant: str) -> str:
    return f"{study_name}/{task}/{variant}"


def derive_seed(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256("/".join(map(str, parts)).encode()).digest()[:4], "little")


def default_checkpoint_dir(spec: StudyFile, storage_url: str) -> Path:
    """Beside an SQLite storage; under ./results for a server storage (share it for cross-machine resume)."""
    path = sqlite_path(storage_url)
    return (path.parent if path is not None else Path("results")) / spec.name / "checkpoints"


def _sampler(spec: StudyFile, worker: int) -> optuna.samplers.BaseSampler:
    if spec.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=derive_seed(spec.seed, "tpe", worker, os.getpid()))
    # Random trials are queued by `prepare`; this sampler only fills a slot lost in a race.
    return optuna.samplers.RandomSampler(seed=derive_seed(spec.seed, "random", worker, os.getpid()))


def open_study_storage(spec: StudyFile, url: str):
    """The storage, retrying (up to the study's limit) trials whose workers Optuna finds dead."""
    return open_storage(url, on_stale=functools.partial(queue.requeue, retries=spec.retries))


def load_cells(spec: StudyFile, storage, *, worker: int = 0) -> dict[tuple[str, str], optuna.Study]:
    return {
        (task, variant): optuna.load_study(study_name=cell_name(spec.name, task, variant), storage=storage, sampler=_sampler(spec, worker))
        for task, variant in spec.cells()
    }


def prepare(spec: StudyFile, storage, *, extend: bool = False) -> None:
    """Create the cells, check the study file against what the storage holds, queue random trials."""
    digest, canonical = spec.digest(), spec.canonical()
    for task, variant in spec.cells():
        name = cell_name(spec.name, task, variant)
        try:
            study = optuna.create_study(storage=storage, study_name=name, direction="minimize")
        except optuna.exceptions.DuplicatedStudyError:
            study = optuna.load_study(study_name=name, storage=storage)
            _check_unchanged(study, canonical, digest, extend=extend)
        attrs = {"odyssey_study": spec.name, "task": task, "variant": variant, "study_hash": digest, "study_spec": canonical}
        for key, value in attrs.items():
            if study.user_attrs.get(key) != value:
                study.set_user_attr(key, value)
        if spec.sampler == "random":
            _queue_random_trials(study, spec, task, variant)


def _check_unchanged(study: optuna.Study, canonical: dict, digest: str, *, extend: bool) -> None:
    stored_hash = study.user_attrs.get("study_hash")
    if stored_hash is None or stored_hash == digest:
        return
    stored = study.user_attrs.get("study_spec", {})
    changed = sorted(k for k in set(stored) | set(canonical) if stored.get(k) != canonical.get(k))
    if extend and set(changed) <= EXTENSIBLE:
        return
    hint = (
        "--extend allows only more trials, tasks or variants"
        if extend
        else "run with --extend to add trials, tasks or variants, or use a new study name or storage"
    )
    raise StudyMismatch(
        f"study file changed under the existing storage for {study.study_name!r} (changed: {', '.join(changed)}); {hint}"
    )


def _queue_random_trials(study: optuna.Study, spec: StudyFile, task: str, variant: str) -> None:
    """Queue the missing slots with values drawn from (seed, cell, slot): the same on every machine."""
    taken = {t.system_attrs.get(queue.SLOT) for t in queue.slot_trials(study.get_trials(deepcopy=False))}
    dists = distributions(spec.space)
    for slot in range(spec.trials):
        if slot not in taken:
            params = draw(spec.space, np.random.default_rng(derive_seed(spec.seed, task, variant, slot)))
            study.add_trial(
                optuna.trial.create_trial(
                    state=TrialState.WAITING, params=params, distributions={k: dists[k] for k in params}, system_attrs={queue.SLOT: slot}
                )
            )


def claim(study: optuna.Study, planned: int, *, sampler: str, retries: int) -> optuna.Trial | None:
    """The next trial to run in this cell, or None when every slot is taken.

    Two workers can race (for a queued slot both machines queued, or for the last new TPE trial):
    the loser marks its trial surplus, never runs it, and asks again.
    """
    while True:
        optuna.storages.fail_stale_trials(study)
        queue.recover_lost_trials(study, retries=retries)
        trials = study.get_trials(deepcopy=False)
        queue.discard_duplicates(study, trials)
        counts = queue.count(trials, planned)
        if counts.waiting == 0 and (sampler == "random" or counts.unstarted == 0):
            return None
        trial = study.ask()
        queue.stamp(study, trial._trial_id)  # at once: a worker killed from here on is found and retried
        held = queue.slot_trials(study.get_trials(deepcopy=False))
        mine = next((t for t in held if t.number == trial.number), None)
        if mine is not None and mine.state == TrialState.RUNNING and (mine.params or sum(t.number < trial.number for t in held) < planned):
            return trial  # a queued slot, a retry, or a new trial within the plan
        queue.mark_surplus(study, trial._trial_id)
