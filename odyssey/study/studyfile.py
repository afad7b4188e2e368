"""Study files: a flat TOML description of a search, validated on load.

Every error names the file and the key and says what was expected, in one line.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..errors import ConfigError
from .space import PAPER_SPACE, ParamRange
from ..training.config import TrainingConfig
from ..model.variants import canonical_name


def default_storage(name: str) -> str:
    return f"sqlite:///results/{name}.db"


class StudyFileError(ConfigError):
    """A study file that cannot be used, with a one-line reason."""


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
    space: dict[str, ParamRange] = field(default_factory=lambda: dict(PAPER_SPACE))
    task_options: dict[str, dict[str, object]] = field(default_factory=dict)
    path: Path | None = field(default=None, compare=False)

    @property
    def default_storage(self) -> str:
        return self.storage or default_storage(self.name)

    def cells(self) -> list[tuple[str, str]]:
        return [(task, variant) for task in self.tasks for variant in self.variants]

    def canonical(self) -> dict[str, object]:
        """What defines the search, as plain data: stored on every study and hashed."""
        data = asdict(self)
        data.pop("path")
        data.pop("retries")  # how to run it, not what it finds: may change under an existing storage
        data["space"] = {k: asdict(v) for k, v in sorted(self.space.items())}
        return data

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.canonical(), sort_keys=True).encode()).hexdigest()[:16]


SAMPLERS = ("random", "tpe")
# What may change under an existing storage with --extend: more trials, tasks or variants.
EXTENSIBLE = {"trials", "tasks", "variants", "description"}
_TOP_LEVEL = {f.name for f in fields(StudyFile)} - {"path"}


def load_study_file(path: str | Path) -> StudyFile:
    path = Path(path)
    return parse_study(_read_toml(path), where=str(path), path=path)


def _read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise StudyFileError(f"{path}: no such study file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise StudyFileError(f"{path}: cannot read ({err})") from None
    except tomllib.TOMLDecodeError as err:
        raise StudyFileError(f"{path}: not valid TOML ({err})") from None


def parse_study(raw: dict, *, where: str = "<study>", path: Path | None = None) -> StudyFile:
    from ..tasks import TASKS  # the registry: importing it must not build any data

    _no_unknown(raw, _TOP_LEVEL, where)
    for key in ("name", "tasks", "variants", "trials"):
        if key not in raw:
            raise StudyFileError(f"{where}: missing key '{key}'")
    name = _typed(raw, "name", str, where)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise StudyFileError(f"{where}: 'name' must be letters, digits, '_', '.', '-' (it names files and studies), got {name!r}")
    tasks = _names(raw, "tasks", where)
    for task in tasks:
        if task not in TASKS:
            raise StudyFileError(f"{where}: 'tasks' has unknown task {task!r}; expected one of {', '.join(TASKS)}")
    variants = _variants(_names(raw, "variants", where), where)
    trials = _typed(raw, "trials", int, where)
    if trials < 1:
        raise StudyFileError(f"{where}: 'trials' must be at least 1, got {trials}")
    sampler = _typed(raw, "sampler", str, where, "random")
    if sampler not in SAMPLERS:
        raise StudyFileError(f"{where}: 'sampler' must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    task_options = _typed(raw, "task_options", dict, where, {})
    for task, options in task_options.items():
        if task not in tasks:
            raise StudyFileError(f"{where}: [task_options.{task}] is for a task the study does not run; its tasks are {', '.join(tasks)}")
        if not isinstance(options, dict):
            raise StudyFileError(f"{where}: 'task_options.{task}' must be a table of options")
    retries = _typed(raw, "retries", int, where, StudyFile.retries)
    if retries < 0:
        raise StudyFileError(f"{where}: 'retries' must be 0 or more, got {retries}")
    storage = raw.get("storage")
    if storage is not None and not isinstance(storage, str):
        raise StudyFileError(f"{where}: 'storage' must be a string (a database URL), got {type(storage).__name__}")
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
        training=_training(_typed(raw, "training", dict, where, {}), where),
        space=_space(_typed(raw, "space", dict, where, {}), where),
        task_options={task: dict(options) for task, options in task_options.items()},
        path=path,
    )


def _no_unknown(table: dict, allowed: set[str], where: str, prefix: str = "") -> None:
    for key in table:
        if key not in allowed:
            raise StudyFileError(f"{where}: unknown key '{prefix}{key}'; expected one of {', '.join(sorted(allowed))}")


def _typed(table: dict, key: str, kind: type, where: str, default=None, prefix: str = ""):
    value = table.get(key, default)
    # bool is an int in Python; a study file's `trials = true` is still a mistake.
    if not isinstance(value, kind) or (kind in (int, float) and isinstance(value, bool)):
        expected = {int: "an integer", float: "a number", str: "a string", dict: "a table", bool: "true or false"}[kind]
        raise StudyFileError(f"{where}: '{prefix}{key}' must be {expected}, got {value!r}")
    return value


def _names(raw: dict, key: str, where: str) -> tuple[str, ...]:
    value = raw[key]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise StudyFileError(f"{where}: '{key}' must be a non-empty list of names, got {value!r}")
    if len(set(value)) != len(value):
        raise StudyFileError(f"{where}: '{key}' lists a name twice: {value!r}")
    return tuple(value)


def _variants(names: tuple[str, ...], where: str) -> tuple[str, ...]:
    """Canonical names ("cifg" is "CIFG", "NP+CIFG" is "CIFG+NP"): one cell per variant, however spelled."""
    canonical = []
    for name in names:
        try:
            canonical.append(canonical_name(name))
        except ValueError as err:
            raise StudyFileError(f"{where}: 'variants': {err}") from None
    twice = sorted({f"{a!r} and {b!r}" for i, a in enumerate(names) for j, b in enumerate(names) if i < j and canonical[i] == canonical[j]})
    if twice:
        raise StudyFileError(f"{where}: 'variants' names one variant twice: {', '.join(twice)}")
    return tuple(canonical)


def _training(table: dict, where: str) -> TrainingConfig:
    defaults = TrainingConfig()
    allowed = {f.name for f in fields(TrainingConfig)}
    _no_unknown(table, allowed, where, "training.")
    values = {}
    for key, value in table.items():
        default = getattr(defaults, key)
        kind = float if isinstance(default, float) or default is None else type(default)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        values[key] = _typed(table | {key: value}, key, kind, where, prefix="training.")
    try:
        return TrainingConfig(**values)
    except ValueError as err:
        raise StudyFileError(f"{where}: [training] {err}") from None


def _space(table: dict, where: str) -> dict[str, ParamRange]:
    _no_unknown(table, set(PAPER_SPACE), where, "space.")
    space = dict(PAPER_SPACE)
    for key, value in table.items():
        paper = PAPER_SPACE[key]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = {"low": value, "high": value, "log": paper.log}  # a fixed value, not searched
        if not isinstance(value, dict):
            raise StudyFileError(f"{where}: 'space.{key}' must be a number or {{ low = ..., high = ..., log = ... }}, got {value!r}")
        _no_unknown(value, {"low", "high", "log"}, where, f"space.{key}.")
        for bound in ("low", "high"):
            if bound not in value or isinstance(value[bound], bool) or not isinstance(value[bound], (int, float)):
                raise StudyFileError(f"{where}: 'space.{key}.{bound}' must be a number")
        low, high, log = value["low"], value["high"], value.get("log", paper.log)
        if not isinstance(log, bool):
            raise StudyFileError(f"{where}: 'space.{key}.log' must be true or false, got {log!r}")
        if low > high:
            raise StudyFileError(f"{where}: 'space.{key}' is an empty range: low {low} > high {high}")
        if log and low <= 0:
            raise StudyFileError(f"{where}: 'space.{key}' is log-scaled, so low must be > 0, got {low}")
        if paper.integer and (low != int(low) or high != int(high) or low < 1):
            raise StudyFileError(f"{where}: 'space.{key}' must have whole numbers >= 1 as bounds, got {low}..{high}")
        if key == "one_minus_momentum" and not 0 < low <= high <= 1:
            raise StudyFileError(f"{where}: 'space.one_minus_momentum' must lie in (0, 1] (momentum in [0, 1)), got {low}..{high}")
        if key in ("learning_rate", "input_noise") and low < 0:
            raise StudyFileError(f"{where}: 'space.{key}' must not be negative, got {low}")
        space[key] = ParamRange(float(low), float(high), log=log, integer=paper.integer)
    return space


def resolve_storage(study: Path | None, storage: str | None, name: str | None) -> tuple[str, str | None]:
    """(storage URL, study name) from a study file and/or explicit options; the options win.

    Reads only the file's name and storage (status and reports must not import torch, which
    validating the tasks would).
    """
    if study is None and storage is None:
        raise StudyFileError("give a study file or --storage URL")
    if study is None:
        return storage, name
    raw = _read_toml(Path(study))
    where = str(study)
    file_name = _typed(raw, "name", str, where)
    file_storage = raw.get("storage")
    if file_storage is not None and not isinstance(file_storage, str):
        raise StudyFileError(f"{where}: 'storage' must be a string (a database URL), got {type(file_storage).__name__}")
    return storage or file_storage or default_storage(file_name), name or file_name
