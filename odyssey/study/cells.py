"""A study file's cells: one Optuna study per (task, variant), checked against what the storage holds.

`prepare` checks the file against the study already stored under its name (field by field), creates
the missing cells and queues their slots; only the process whose `create_study` won queues a new
cell, so no slot is queued twice.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
import optuna

from ..errors import ConfigError
from ..optuna_private import HyperbandBySlot, storage_of, study_id_of
from ..record import QUEUED, SLOT, STUDY, STUDY_HASH, STUDY_SPEC, TASK, VARIANT, cell_name, derive_seed
from ..storage import open_storage
from . import queue
from .space import distributions, draw
from .studyfile import StudyFile

CREATOR_WAIT_SECONDS = 10  # how long a cell's queue may stand still before another process completes it


class StudyMismatch(ConfigError):
    """The study file changed under a storage that already holds its trials."""


def _sampler(study_file: StudyFile) -> optuna.samplers.BaseSampler:
    # Random-search slots are queued with their values; the TPE sampler fills an empty slot when it is taken.
    if study_file.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=derive_seed(study_file.seed, "tpe", os.getpid(), time.time_ns()))
    return optuna.samplers.RandomSampler(seed=derive_seed(study_file.seed, "random", os.getpid()))


def build_pruner(study_file: StudyFile) -> optuna.pruners.BasePruner:
    """The study's [pruning] as Optuna's pruner; steps are epochs, counted from 1 (worker.run_trial reports them)."""
    pruning, epochs = study_file.pruning, study_file.training.max_epochs
    if pruning.pruner == "successive_halving":  # its first rung is at step min_resource: epoch min_epochs
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=pruning.min_epochs, reduction_factor=pruning.reduction_factor
        )
    if pruning.pruner == "hyperband":  # brackets by slot: a retry meets the rungs its slot's first trial met
        return HyperbandBySlot(
            bracket_key=SLOT,
            min_resource=pruning.min_epochs,
            max_resource=epochs,
            reduction_factor=pruning.reduction_factor,
        )
    if pruning.pruner == "median":
        # The median pruner stops a trial at the earliest at step == n_warmup_steps. Optuna counts steps from
        # 0, but a trial reports its epochs from 1 (epoch 1's value is step 1), so min_epochs itself, not
        # min_epochs - 1, lets every trial train min_epochs epochs first, as the halving pruners' min_resource does.
        return optuna.pruners.MedianPruner(n_warmup_steps=pruning.min_epochs)
    return optuna.pruners.NopPruner()


def open_study_storage(study_file: StudyFile, url: str, *, create_folder: bool = False):
    """The storage; trials whose heartbeats went stale are retried (up to the study's limit) by whoever notices."""
    return open_storage(
        url,
        create_folder=create_folder,
        on_stale=lambda cell, trial: queue.requeue(cell, trial, retries=study_file.retries),
    )


def load_cells(study_file: StudyFile, storage) -> dict[tuple[str, str], optuna.Study]:
    return {
        (task, variant): optuna.load_study(
            study_name=cell_name(study_file.name, task, variant),
            storage=storage,
            sampler=_sampler(study_file),
            pruner=build_pruner(study_file),
        )
        for task, variant in study_file.cells()
    }


def prepare(study_file: StudyFile, storage, *, extend: bool = False) -> None:
    """Check the file against the stored study of its name, create the missing cells, queue their slots."""
    current = _plain(study_file.canonical())
    stored = stored_spec(storage, study_file.name)
    if stored is not None and stored != current:
        check_change(study_file.name, stored, current, extend=extend)
    attrs = {STUDY: study_file.name, STUDY_HASH: study_file.digest(), STUDY_SPEC: current}
    for task, variant in study_file.cells():
        name = cell_name(study_file.name, task, variant)
        try:
            cell, created = optuna.create_study(storage=storage, study_name=name, direction="minimize"), True
        except optuna.exceptions.DuplicatedStudyError:
            cell, created = optuna.load_study(study_name=name, storage=storage), False
        for key, value in (attrs | {TASK: task, VARIANT: variant}).items():
            if cell.user_attrs.get(key) != value:
                cell.set_user_attr(key, value)
        _queue(cell, study_file, task, variant, created=created)


def stored_spec(storage, name: str) -> dict | None:
    """The study file stored with the study `name` (every cell holds the same one), or None for a new study."""
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        if summary.user_attrs.get(STUDY) == name and STUDY_SPEC in summary.user_attrs:
            return summary.user_attrs[STUDY_SPEC]
    return None


def _plain(data: object) -> object:
    """As the storage keeps it (JSON): tuples become lists, so stored and current compare equal when they are."""
    return json.loads(json.dumps(data, sort_keys=True))


def _changes(stored: object, current: object, path: str = "") -> list[tuple[str, object, object]]:
    if isinstance(stored, dict | None) and isinstance(current, dict | None) and (stored, current) != (None, None):
        stored, current = stored or {}, current or {}
        keys = sorted(set(stored) | set(current))
        return [
            c
            for k in keys
            for c in _changes(stored.get(k), current.get(k), f"{path}{k}" if not path else f"{path}.{k}")
        ]
    return [] if stored == current else [(path, stored, current)]


def _additive(path: str, old: object, new: object, stored: dict) -> bool:
    """What --extend accepts: more trials, tasks or variants (with options for the new tasks), a new description."""
    if path == "description":
        return True
    if path == "trials":
        return new >= old
    if path in ("tasks", "variants"):
        return isinstance(new, list) and set(old) <= set(new)
    new_task = path.split(".")[1] not in stored["tasks"] if "." in path else False
    return path.split(".")[0] in ("task_options", "task_sources") and new_task and old is None


def _describe(path: str, old: object, new: object) -> str:
    if isinstance(old, list) and isinstance(new, list):
        added, removed = [v for v in new if v not in old], [v for v in old if v not in new]
        parts = [
            f"+{', +'.join(map(str, added))}" if added else "",
            f"-{', -'.join(map(str, removed))}" if removed else "",
        ]
        return f"{path} {' '.join(p for p in parts if p) or 'reordered'}"
    show = lambda value: "(absent)" if value is None else json.dumps(value)  # noqa: E731
    return f"{path} {show(old)} -> {show(new)}"


def _changed_sources(changes: list[tuple[str, object, object]], current: dict) -> list[str]:
    """What a changed hash under task_sources means, in words: which task's data file or factory module."""
    said = []
    for path, old, new in changes:
        parts = path.split(".")
        if parts[0] != "task_sources" or len(parts) < 3 or old is None or new is None:
            continue
        task = parts[1]
        if parts[2] == "sha256":
            where = (current.get("task_options", {}).get(task) or {}).get("path", "?")
            split = f" (its {parts[3]} file)" if len(parts) > 3 and parts[3] not in ("all", "file") else ""
            said.append(f"the data of task {task!r}, {where}{split}")
        elif parts[2] == "module_sha256":
            said.append(
                f"the source of task {task!r}'s factory "
                f"({(current.get('task_sources', {}).get(task) or {}).get('source', '?')})"
            )
    return list(dict.fromkeys(said))


def check_change(name: str, stored: dict, current: dict, *, extend: bool) -> None:
    changes = _changes(stored, current)
    if extend and all(_additive(path, old, new, stored) for path, old, new in changes):
        return
    sources = _changed_sources(changes, current)
    if sources:  # --extend cannot help: the stored trials were trained on the old data or code
        raise StudyMismatch(
            f"{'; '.join(sources)} changed since study {name!r} stored its trials; they belong to the old one: "
            "restore it, or give the study a new name (or --storage) to start one on the new data"
        )
    listed = "; ".join(_describe(*change) for change in changes)
    hint = (
        "--extend accepts only more trials, tasks or variants"
        if extend
        else "run with --extend to add trials, tasks or variants, or use a new study name or storage"
    )
    raise StudyMismatch(f"study file changed under the existing storage for study {name!r} (changed: {listed}); {hint}")


def _queue(cell: optuna.Study, study_file: StudyFile, task: str, variant: str, *, created: bool) -> None:
    """Queue the cell's slots: its creator does; another process only completes a queue that stands still (its
    creator died) or grew (--extend)."""
    if not created and _queued(cell) >= study_file.trials:
        return
    dists = distributions(study_file.space)
    draw_key = {"random": (study_file.seed, task, variant), "paired": (study_file.seed, task)}.get(
        study_file.sampler
    )  # whose slots share draws
    slots = {
        slot: draw(study_file.space, np.random.default_rng(derive_seed(*draw_key, slot))) if draw_key else {}
        for slot in range(study_file.trials)
    }
    queue.queue_slots(cell, slots, dists)
    storage_of(cell).set_study_system_attr(study_id_of(cell), QUEUED, study_file.trials)


def _queued(cell: optuna.Study) -> int:
    """The creator's count once it has queued them all; 0 if its queue stood still for CREATOR_WAIT_SECONDS."""
    storage, study_id, seen, still_since = storage_of(cell), study_id_of(cell), -1, time.monotonic()
    while (done := storage.get_study_system_attrs(study_id).get(QUEUED)) is None:
        now_seen = len(storage.get_all_trials(study_id, deepcopy=False))
        if now_seen != seen:
            seen, still_since = now_seen, time.monotonic()
        elif time.monotonic() - still_since > CREATOR_WAIT_SECONDS:
            return 0
        time.sleep(0.2)
    return done
