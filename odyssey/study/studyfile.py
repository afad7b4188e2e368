"""Study files: a flat TOML description of a search, validated on load.

Every error names the file and the key and says what was expected, in one line.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..errors import OdysseyError, OdysseyWarning
from ..model.variants import canonical_name
from ..studytoml import AnalysisSettings, StudyFileError
from ..studytoml import (
    analysis_settings as _analysis,
)
from ..studytoml import (
    names as _names,
)
from ..studytoml import (
    no_unknown as _no_unknown,
)
from ..studytoml import (
    read_toml as _read_toml,
)
from ..studytoml import (
    typed as _typed,
)
from ..training.config import SPACE_KEYS, TRAINING_KEYS, TrainingConfig, setting, space_setting, stored_training
from .space import PAPER_SPACE, Choice, Param, ParamRange


def default_storage(name: str) -> str:
    return f"sqlite:///results/{name}.db"


# none: every trial trains to its end (the paper's protocol); the others are Optuna's pruners over the
# validation metric each epoch reports (cells.build_pruner builds them).
PRUNERS = ("none", "successive_halving", "hyperband", "median")


@dataclass(frozen=True)
class Pruning:
    """The [pruning] table: which of Optuna's pruners stops trials early, from which epoch, how hard."""

    pruner: str = "none"
    min_epochs: int = 1  # the epochs every trial trains before a pruner may stop it
    reduction_factor: int = 3  # successive halving and hyperband: 1 in this many trials goes on at each rung

    @property
    def enabled(self) -> bool:
        return self.pruner != "none"


@dataclass(frozen=True)
class StudyFile:
    name: str
    tasks: tuple[str, ...]
    variants: tuple[str, ...]
    trials: int
    sampler: str = "random"
    seed: int = 0
    storage: str | None = None
    retries: int = 3  # how often a trial whose worker died is run again before it counts as failed
    description: str = ""
    training: TrainingConfig = field(default_factory=TrainingConfig)
    space: dict[str, Param] = field(default_factory=lambda: dict(PAPER_SPACE))
    task_options: dict[str, dict[str, object]] = field(default_factory=dict)
    # Tasks of your own: what their factory or data files were (sources.identity), so a change is noticed.
    task_sources: dict[str, dict[str, object]] = field(default_factory=dict)
    analysis: AnalysisSettings = field(default_factory=AnalysisSettings)
    pruning: Pruning = field(default_factory=Pruning)
    path: Path | None = field(default=None, compare=False)
    # The relative paths above as found from the study file's folder (see locate): used to read and
    # write, never stored or hashed, so the digest stays what the file says and studies stored by
    # earlier versions (which resolved against the current folder) still open with their files.
    located_options: dict[str, dict[str, str]] = field(default_factory=dict, compare=False)
    located_storage: str | None = field(default=None, compare=False)

    @property
    def default_storage(self) -> str:
        return self.located_storage or self.storage or default_storage(self.name)

    def options_for(self, task: str) -> dict[str, object]:
        """The task's options as its factory gets them: relative paths found from the study file's folder."""
        return {**self.task_options.get(task, {}), **self.located_options.get(task, {})}

    def cells(self) -> list[tuple[str, str]]:
        return [(task, variant) for task in self.tasks for variant in self.variants]

    def canonical(self) -> dict[str, object]:
        """What defines the search, as plain data: stored on every study and hashed."""
        data = asdict(self)
        for local in ("path", "located_options", "located_storage"):
            data.pop(local)  # where this machine finds the files, not what the study is
        data.pop("retries")  # how to run it, not what it finds: may change under an existing storage
        data.pop("analysis")  # how the report reads it, not what the search is: may change at any time
        if not self.task_sources:
            data.pop("task_sources")  # built-in tasks only: the spec stays as it was before tasks of your own
        if not self.pruning.enabled:
            data.pop("pruning")  # unpruned, the paper's protocol: the spec stays as it was before [pruning]
        data["space"] = {k: v.stored() for k, v in sorted(self.space.items())}
        # Settings added later are stored only when set, so older study files keep their digest.
        data["training"] = stored_training(self.training)
        return data

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.canonical(), sort_keys=True).encode()).hexdigest()[:16]


# random: the paper's, each (task, variant) cell draws its own configurations; paired: random search
# where every variant of a task gets the same configuration in each slot, so a comparison of
# variants is not also one of their draws; tpe: Optuna's TPE, each cell on its own.
SAMPLERS = ("random", "paired", "tpe")
# What may change under an existing storage with --extend: more trials, tasks or variants.
# Trials per cell: all are queued up front, about 90 a second on SQLite here, so 10,000 is about two
# minutes a cell before training starts (the rate issue 25 measured); 1e8 hung silently for days.
MAX_TRIALS = 10_000
EXTENSIBLE = {"trials", "tasks", "variants", "description"}
_TOP_LEVEL = {f.name for f in fields(StudyFile)} - {"path", "task_sources", "located_options", "located_storage"}


def load_study_file(path: str | Path) -> StudyFile:
    path = Path(path)
    return parse_study(_read_toml(path), where=str(path), path=path)


def parse_study(raw: dict, *, where: str = "<study>", path: Path | None = None) -> StudyFile:
    from ..tasks import TASKS  # the registry: importing it must not build any data

    _no_unknown(raw, _TOP_LEVEL, where)
    for key in ("name", "tasks", "variants", "trials"):
        if key not in raw:
            raise StudyFileError(f"{where}: missing key '{key}'")
    name = _typed(raw, "name", str, where)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise StudyFileError(
            f"{where}: 'name' must be letters, digits, '_', '.', '-' (it names files and studies), got {name!r}"
        )
    tasks = _names(raw, "tasks", where)
    task_options = _typed(raw, "task_options", dict, where, {})
    for task in tasks:
        own = isinstance(task_options.get(task), dict) and "source" in task_options[task]
        if task not in TASKS and not own:
            raise StudyFileError(
                f"{where}: 'tasks' has unknown task {task!r}; expected one of {', '.join(TASKS)}, "
                f'or a task of your own with [task_options.{task}] source = "files" or "module:function"'
            )
        if task in TASKS and own:
            raise StudyFileError(f"{where}: task {task!r} is built in; give your own task (source = ...) another name")
    variants = _variants(_names(raw, "variants", where), where)
    trials = _typed(raw, "trials", int, where)
    if not 1 <= trials <= MAX_TRIALS:
        raise StudyFileError(
            f"{where}: 'trials' must be between 1 and {MAX_TRIALS:,} per (task, variant), got {trials:,}; "
            "every trial is queued in the storage before any starts (about 90 a second on SQLite), "
            "and the paper ran 200 (more later, with --extend)"
        )
    sampler = _typed(raw, "sampler", str, where, "random")
    if sampler not in SAMPLERS:
        raise StudyFileError(f"{where}: 'sampler' must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    for task, options in task_options.items():
        if task not in tasks:
            raise StudyFileError(
                f"{where}: [task_options.{task}] is for a task the study does not run; its tasks are {', '.join(tasks)}"
            )
        if not isinstance(options, dict):
            raise StudyFileError(f"{where}: 'task_options.{task}' must be a table of options")
    retries = _typed(raw, "retries", int, where, StudyFile.retries)
    if retries < 0:
        raise StudyFileError(f"{where}: 'retries' must be 0 or more, got {retries}")
    storage = raw.get("storage")
    if storage is not None and not isinstance(storage, str):
        raise StudyFileError(f"{where}: 'storage' must be a string (a database URL), got {type(storage).__name__}")
    training_table = _typed(raw, "training", dict, where, {})
    training = _training(training_table, where)
    base = path.parent if path is not None else None
    located_options = _located_options(task_options, base, where)
    return StudyFile(
        name=name,
        tasks=tasks,
        variants=variants,
        trials=trials,
        sampler=sampler,
        seed=_typed(raw, "seed", int, where, 0),
        storage=storage,
        retries=retries,
        description=_typed(raw, "description", str, where, ""),
        training=training,
        space=_space(_typed(raw, "space", dict, where, {}), training, set(training_table), where),
        task_options={task: dict(options) for task, options in task_options.items()},
        task_sources=_task_sources({t: {**o, **located_options.get(t, {})} for t, o in task_options.items()}, where),
        analysis=_analysis(_typed(raw, "analysis", dict, where, {}), tasks, where),
        pruning=_pruning(_typed(raw, "pruning", dict, where, {}), training, where),
        path=path,
        located_options=located_options,
        located_storage=locate_storage(storage, base, where),
    )


def _task_sources(task_options: dict, where: str) -> dict[str, dict[str, object]]:
    """Each task of your own's factory (import path, source hash) or data files (hashes)."""
    from ..tasks.yours import identity  # the tasks import torch; status and report read study files without it

    found = {}
    for task, options in sorted(task_options.items()):
        try:
            own = identity(task, options)
        except OdysseyError as err:  # a bad source, an import that fails, data files that are not there
            raise StudyFileError(f"{where}: [task_options.{task}]: {err}") from None
        if own is not None:
            found[task] = own
    return found


def locate(written: str, base: Path | None, where: str, what: str) -> str:
    """A path a study file holds, found from the study file's folder `base`, so a study runs alike from
    any folder. Study files written before this (studies/mydata.toml's "examples/mydata.npz", meant
    from the repository's root) keep working: a path that is not beside the study file but is in the
    current folder is used from there, with one warning line saying how to write it. A path found in
    neither is the study file's, so the error names the place it should be."""
    given = Path(written).expanduser()
    if given.is_absolute() or base is None:
        return str(given)
    beside = _shown(base / given)
    if beside.exists() or not given.exists() or beside.resolve() == given.resolve():
        return str(beside)
    advice = Path(os.path.relpath(given.resolve(), base.resolve())).as_posix()
    warnings.warn(
        f"{where}: {what} {written!r} is not in the study file's folder ({base}) but in the current folder, "
        "so it is read from there; relative paths are read from the study file's folder: "
        f"write {advice!r} (or an absolute path) to run it from any folder",
        OdysseyWarning,
        stacklevel=2,
    )
    return str(given)


def _shown(path: Path) -> Path:
    """The path as errors and reports show it: from the current folder when it lies below it (where
    `odyssey run` and its workers run), else absolute; '..' taken out either way."""
    absolute, here = os.path.abspath(path), os.getcwd()
    return Path(os.path.relpath(absolute, here) if os.path.commonpath([absolute, here]) == here else absolute)


def _located_options(task_options: dict, base: Path | None, where: str) -> dict[str, dict[str, str]]:
    """Each task's path options whose place differs from what the file says (relative paths, ~)."""
    from ..tasks.yours import path_options  # the tasks import torch; status and report read study files without it

    located = {}
    for task, options in sorted(task_options.items()):
        try:
            names = path_options(task, options)
        except OdysseyError as err:  # a factory that cannot be imported to read its signature
            raise StudyFileError(f"{where}: [task_options.{task}]: {err}") from None
        found = {name: locate(options[name], base, where, f"'task_options.{task}.{name}'") for name in names}
        found = {name: value for name, value in found.items() if value != options[name]}
        if found:
            located[task] = found
    return located


def locate_storage(url: str | None, base: Path | None, where: str) -> str | None:
    """A study file's own SQLite or journal storage with its file found as locate finds data; None
    when the file names no storage (the default, results/<name>.db, is the current folder's)."""
    from ..storage import JOURNAL, journal_path, sqlite_path  # storage.py needs neither torch nor optuna at import

    if url is None:
        return None
    file = sqlite_path(url) or journal_path(url)
    if file is None:
        return url
    found = locate(str(file), base, where, "'storage'")
    return ("sqlite:///" if url.startswith("sqlite:///") else JOURNAL) + found


def _variants(names: tuple[str, ...], where: str) -> tuple[str, ...]:
    """Canonical names ("cifg" is "CIFG", "NP+CIFG" is "CIFG+NP"): one cell per variant, however spelled."""
    canonical = []
    for name in names:
        try:
            canonical.append(canonical_name(name))
        except ValueError as err:
            raise StudyFileError(f"{where}: 'variants': {err}") from None
    twice = sorted(
        {
            f"{a!r} and {b!r}"
            for i, a in enumerate(names)
            for j, b in enumerate(names)
            if i < j and canonical[i] == canonical[j]
        }
    )
    if twice:
        raise StudyFileError(f"{where}: 'variants' names one variant twice: {', '.join(twice)}")
    return tuple(canonical)


def _pruning(table: dict, training: TrainingConfig, where: str) -> Pruning:
    """The [pruning] table; pruner = "none" (or no table) is the default whatever else it says, so it
    leaves the stored spec as it was."""
    _no_unknown(table, {f.name for f in fields(Pruning)}, where, "pruning.")
    pruner = _typed(table, "pruner", str, where, Pruning.pruner, prefix="pruning.")
    if pruner not in PRUNERS:
        raise StudyFileError(f"{where}: 'pruning.pruner' must be one of {', '.join(PRUNERS)}, got {pruner!r}")
    min_epochs = _typed(table, "min_epochs", int, where, Pruning.min_epochs, prefix="pruning.")
    if not 1 <= min_epochs <= training.max_epochs:
        raise StudyFileError(
            f"{where}: 'pruning.min_epochs' must be a whole number from 1 to training.max_epochs "
            f"({training.max_epochs}), got {min_epochs}"
        )
    factor = _typed(table, "reduction_factor", int, where, Pruning.reduction_factor, prefix="pruning.")
    if factor < 2:
        raise StudyFileError(f"{where}: 'pruning.reduction_factor' must be a whole number >= 2, got {factor}")
    return Pruning(pruner, min_epochs, factor) if pruner != "none" else Pruning()


def _training(table: dict, where: str) -> TrainingConfig:
    allowed = set(TRAINING_KEYS)
    for key in table:
        if key in SPACE_KEYS and key not in allowed:
            raise StudyFileError(f"{where}: '{key}' belongs under [space], not [training] (a number there fixes it)")
    _no_unknown(table, allowed, where, "training.")
    values = {}
    for key, value in table.items():
        rule = setting(key)
        if rule.kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        values[key] = _typed(table | {key: value}, key, rule.kind, where, prefix="training.")
        if not rule.valid(values[key]):
            raise StudyFileError(f"{where}: 'training.{key}' must be {rule.expected}, got {value!r}")
    return TrainingConfig(**values)


def _space(table: dict, training: TrainingConfig, given: set[str], where: str) -> dict[str, Param]:
    """The paper's space with the file's keys replacing or adding to it, in the order of drawing; a key
    that only applies under a value [training] fixes otherwise is left out (or refused if given)."""
    _no_unknown(table, set(SPACE_KEYS), where, "space.")
    for key in table:
        if key in given:
            raise StudyFileError(
                f"{where}: '{key}' is set under both [training] and [space]; "
                "keep one (a value in [training] fixes it, [space] may search it)"
            )
    space = {**PAPER_SPACE, **{key: _param(key, value, where) for key, value in table.items()}}
    fixed = {name: getattr(training, name) for name in TRAINING_KEYS}
    for key in list(space):
        condition = space_setting(key).only_if
        if condition is not None and condition[0] not in space and fixed.get(condition[0]) not in condition[1]:
            if key in table:
                allowed = " or ".join(repr(v) for v in condition[1])
                raise StudyFileError(
                    f"{where}: 'space.{key}' applies only with {condition[0]} {allowed}, "
                    f"and [training] sets {condition[0]} = {fixed[condition[0]]!r}"
                )
            del space[key]
    return {key: space[key] for key in SPACE_KEYS if key in space}


def _param(key: str, value, where: str) -> Param:
    setting = space_setting(key)
    paper = PAPER_SPACE.get(key)
    name = f"space.{key}"
    if isinstance(value, dict) and "choices" in value:
        _no_unknown(value, {"choices"}, where, f"{name}.")
        choices = value["choices"]
        if not isinstance(choices, list) or not choices or len(set(map(repr, choices))) != len(choices):
            raise StudyFileError(
                f"{where}: '{name}.choices' must be a non-empty list of different values, got {choices!r}"
            )
        return Choice(tuple(_value(key, v, where, f"{name}.choices") for v in choices))
    if setting.kind is str or isinstance(value, (str, bool)):
        if isinstance(value, dict):
            raise StudyFileError(f"{where}: '{name}' is a choice: give a value or {{ choices = [...] }}, got {value!r}")
        return Choice((_value(key, value, where, name),))
    if isinstance(value, (int, float)):
        value = {"low": value, "high": value}  # a fixed value, not searched
    if not isinstance(value, dict):
        raise StudyFileError(
            f"{where}: '{name}' must be a number, {{ low = ..., high = ..., log = ..., step = ... }} "
            f"or {{ choices = [...] }}, got {value!r}"
        )
    _no_unknown(value, {"low", "high", "log", "step"}, where, f"{name}.")
    for bound in ("low", "high"):
        if bound not in value or isinstance(value[bound], bool) or not isinstance(value[bound], (int, float)):
            raise StudyFileError(f"{where}: '{name}.{bound}' must be a number")
    low, high = value["low"], value["high"]
    log = value.get("log", paper.log if paper else False)
    step = value.get("step")
    if not isinstance(log, bool):
        raise StudyFileError(f"{where}: '{name}.log' must be true or false, got {log!r}")
    if low > high:
        raise StudyFileError(f"{where}: '{name}' is an empty range: low {low} > high {high}")
    if log and low <= 0:
        raise StudyFileError(f"{where}: '{name}' is log-scaled, so low must be > 0, got {low}")
    integer = setting.kind is int
    if integer and (low != int(low) or high != int(high)):
        raise StudyFileError(f"{where}: '{name}' must have whole numbers as bounds, got {low}..{high}")
    for bound in (low, high):
        if not setting.valid(int(bound) if integer else setting.to_field(float(bound))):
            raise StudyFileError(
                f"{where}: '{name}' must lie where {setting.field} is {setting.expected}, got {low}..{high}"
            )
    if step is not None:
        if isinstance(step, bool) or not isinstance(step, (int, float)) or step <= 0 or (integer and step != int(step)):
            raise StudyFileError(
                f"{where}: '{name}.step' must be a {'whole ' if integer else ''}number > 0, got {step!r}"
            )
        if log:
            raise StudyFileError(f"{where}: '{name}' cannot be both log-scaled and stepped")
        count = (high - low) / step
        if abs(count - round(count)) > 1e-9:
            raise StudyFileError(f"{where}: '{name}': high - low ({high - low:g}) must be a multiple of step {step:g}")
        step = int(step) if integer else float(step)
    return ParamRange(float(low), float(high), log=log, integer=integer, step=step)


def _value(key: str, value, where: str, name: str):
    """One fixed value or choice of `key`, of its setting's type and range."""
    setting = space_setting(key)
    kinds = {int: (int,), float: (int, float), str: (str,)}[setting.kind]
    if isinstance(value, bool) or not isinstance(value, kinds):
        expected = {int: "whole numbers", float: "numbers", str: "strings"}[setting.kind]
        raise StudyFileError(f"{where}: '{name}' must hold {expected}, got {value!r}")
    value = float(value) if setting.kind is float else value
    if not setting.valid(setting.to_field(value)):
        raise StudyFileError(f"{where}: '{name}': {setting.field} must be {setting.expected}, got {value!r}")
    return value


def resolve_storage(study_file: Path | None, storage: str | None, name: str | None) -> tuple[str, str | None]:
    """(storage URL, study name) from a study file and/or explicit options; the options win.

    Reads only the file's name and storage (status and reports must not import torch, which
    validating the tasks would).
    """
    if study_file is None and storage is None:
        raise StudyFileError("give a study file or --storage URL")
    if study_file is None:
        return storage, name
    raw = _read_toml(Path(study_file))
    where = str(study_file)
    file_name = _typed(raw, "name", str, where)
    file_storage = raw.get("storage")
    if file_storage is not None and not isinstance(file_storage, str):
        raise StudyFileError(f"{where}: 'storage' must be a string (a database URL), got {type(file_storage).__name__}")
    if storage is None:
        file_storage = locate_storage(file_storage, Path(study_file).parent, where)
    return storage or file_storage or default_storage(file_name), name or file_name
