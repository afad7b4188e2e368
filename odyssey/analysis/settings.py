"""The report's opening: the study's own settings, read from the `study_spec` every cell stores.

The space is rendered generically (any keys a range or a choice may carry: low/high/log/integer,
choices, step, conditions...), so new kinds of parameter show up without a change here.
"""

from __future__ import annotations

from collections import Counter
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pandas as pd

from .. import __version__
from ..record import STUDY_SPEC
from .render import Block, Heading, Table, Text
from .trials import Trials

SHOWN_ELSEWHERE = {"name", "description", "tasks", "variants", "trials", "space", "storage"}


def _value(value: object) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_value(v)}" for k, v in value.items()) if value else "none"
    return "none" if value is None else str(value)


def range_text(param: object) -> str:
    """One parameter of the space in words: "0.001 to 0.1, log scale", "one of [sgd, adam]", plus any other keys."""
    if not isinstance(param, dict):
        return f"fixed at {_value(param)}"
    rest = dict(param)
    parts = []
    if "choices" in rest:
        parts.append(f"one of {_value(rest.pop('choices'))}")
    if "low" in rest and "high" in rest:
        low, high = rest.pop("low"), rest.pop("high")
        integer = rest.pop("integer", False)
        parts.append(
            f"{_value(int(low) if integer else low)} to {_value(int(high) if integer else high)}"
            + (", integers" if integer else "")
        )
        if rest.pop("log", False):
            parts.append("log scale (analysed in log10)")
    parts += [f"{k} {_value(v)}" for k, v in rest.items() if v not in (None, False)]
    return ", ".join(parts) or "(no settings)"


def _versions(trials: Trials) -> str:
    counts = Counter(v for v in trials.frame.get("versions", pd.Series(dtype=str)) if v)
    trained = "; ".join(f"{v} ({n:,} trials)" for v, n in counts.most_common()) if counts else "not recorded"

    def installed(package: str) -> str:
        try:
            return version(package)
        except PackageNotFoundError:
            return "?"

    report = ", ".join(f"{p} {installed(p)}" for p in ("optuna", "scikit-learn", "numpy", "pandas"))
    return f"trials trained with: {trained}. This report: odyssey {__version__}, {report}."


def settings_blocks(trials: Trials, *, study_file: Path | None) -> list[Block]:
    """Study file, description, protocol, space and trials per cell; one set per distinct stored spec."""
    specs: dict[str, tuple[dict, list[str]]] = {}
    for cell, attrs in sorted(trials.study_attrs.items()):
        spec = attrs.get(STUDY_SPEC)
        if isinstance(spec, dict):
            specs.setdefault(repr(sorted(spec.items(), key=lambda kv: kv[0])), (spec, []))[1].append(cell)
    blocks: list[Block] = [Heading("Study settings")]
    source = (
        f"study file {study_file}"
        if study_file is not None
        else "no study file given (settings as stored in the storage)"
    )
    if not specs:
        return [
            *blocks,
            Text(
                f"{source.capitalize()}; the cells store no study settings (not written by `odyssey run`?). "
                f"{_versions(trials)}"
            ),
        ]
    if len(specs) > 1:
        blocks.append(
            Text(
                f"The cells store {len(specs)} different settings (a study extended with --extend, or cells of "
                "different files); each is shown with its cells."
            )
        )
    for spec, cells in specs.values():
        rows = [
            {"setting": "source", "value": source},
            {"setting": "description", "value": spec.get("description") or "none given"},
            {"setting": "tasks", "value": _value(spec.get("tasks", []))},
            {"setting": "variants", "value": _value(spec.get("variants", []))},
            {"setting": "trials per cell", "value": _value(spec.get("trials"))},
        ]
        rows += [{"setting": key, "value": _value(value)} for key, value in spec.items() if key not in SHOWN_ELSEWHERE]
        if len(specs) > 1:
            rows.append({"setting": "cells", "value": ", ".join(cells)})
        space = spec.get("space") or {}
        blocks += [
            Heading("Protocol", 3),
            Table(pd.DataFrame(rows)),
            Heading("Search space", 3),
            Table(
                pd.DataFrame(
                    [{"parameter": p, "distribution": range_text(v)} for p, v in sorted(space.items())],
                    columns=["parameter", "distribution"],
                )
            ),
        ]
    blocks.append(Text(_versions(trials)))
    return blocks
