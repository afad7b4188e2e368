"""A study file's TOML, the part both study and analysis read: the file, typed fields, the [analysis] table.

Every error names the file and the key and says what was expected, in one line (StudyFileError).
odyssey.study.studyfile validates a whole study file with these; the report reads the [analysis]
table alone, without odyssey.study (whose task registry would import torch).
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from .errors import ConfigError


class StudyFileError(ConfigError):
    """A study file that cannot be used, with a one-line reason."""


@dataclass(frozen=True)
class AnalysisSettings:
    """How the report decides, not what the search is: kept out of the stored spec and its digest, so
    a study file may state (or change) them after its trials ran, and the committed storages still
    open with their files."""

    # The difference to vanilla (in the task's metric) below which a variant counts as "the same":
    # one number for every task, or one per task; None: one SD of V's best-10% test metric
    # (odyssey.analysis.variant_stats.MARGIN_SD says why).
    equivalence_margin: float | dict[str, float] | None = None


def read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8-sig"))  # a BOM (Windows editors write one) is no TOML error
    except FileNotFoundError:
        raise StudyFileError(f"{path}: no such study file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise StudyFileError(f"{path}: cannot read ({err})") from None
    except tomllib.TOMLDecodeError as err:
        raise StudyFileError(f"{path}: not valid TOML ({err})") from None


def no_unknown(table: dict, allowed: set[str], where: str, prefix: str = "") -> None:
    for key in table:
        if key not in allowed:
            raise StudyFileError(f"{where}: unknown key '{prefix}{key}'; expected one of {', '.join(sorted(allowed))}")


def typed(table: dict, key: str, kind: type, where: str, default=None, prefix: str = ""):
    value = table.get(key, default)
    # bool is an int in Python; a study file's `trials = true` is still a mistake.
    if not isinstance(value, kind) or (kind in (int, float) and isinstance(value, bool)):
        expected = {int: "an integer", float: "a number", str: "a string", dict: "a table", bool: "true or false"}[kind]
        raise StudyFileError(f"{where}: '{prefix}{key}' must be {expected}, got {value!r}")
    return value


def names(raw: dict, key: str, where: str) -> tuple[str, ...]:
    value = raw[key]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise StudyFileError(f"{where}: '{key}' must be a non-empty list of names, got {value!r}")
    if len(set(value)) != len(value):
        raise StudyFileError(f"{where}: '{key}' lists a name twice: {value!r}")
    return tuple(value)


def analysis_settings(table: dict, tasks: tuple[str, ...], where: str) -> AnalysisSettings:
    """The [analysis] table, checked against the study's tasks."""
    no_unknown(table, {f.name for f in fields(AnalysisSettings)}, where, "analysis.")
    margin = table.get("equivalence_margin")
    if margin is None:
        return AnalysisSettings()
    expected = "a number > 0 in the metric's units, or a table of one per task"

    def positive(value) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0

    if isinstance(margin, dict):
        for task, value in margin.items():
            if task not in tasks:
                raise StudyFileError(
                    f"{where}: 'analysis.equivalence_margin.{task}' is for a task the study does not run; its tasks "
                    f"are {', '.join(tasks)}"
                )
            if not positive(value):
                raise StudyFileError(
                    f"{where}: 'analysis.equivalence_margin.{task}' must be a number > 0 in the metric's units, got "
                    f"{value!r}"
                )
        return AnalysisSettings({task: float(value) for task, value in margin.items()})
    if not positive(margin):
        raise StudyFileError(f"{where}: 'analysis.equivalence_margin' must be {expected}, got {margin!r}")
    return AnalysisSettings(float(margin))


def load_analysis_settings(path: str | Path) -> AnalysisSettings:
    """The [analysis] table of a study file alone (reports read it without validating the tasks,
    which would import torch)."""
    raw = read_toml(Path(path))
    where = str(path)
    tasks = names(raw, "tasks", where) if "tasks" in raw else ()
    table = typed(raw, "analysis", dict, where, {})
    return analysis_settings(table, tasks, where)
