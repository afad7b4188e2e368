"""`odyssey report`: a study's analysis as report.html (self-contained), report.md, PNG figures and CSV tables.

Every figure has a CSV with the numbers it draws, so a reader can redraw or check it.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pandas as pd
from optuna.storages import BaseStorage

from .. import __version__
from ..study.storage import mask_url
from . import plots
from .importance import Importance, curves_table, surfaces_table, terms_table
from .render import Block, Heading, Image, Table, Text, to_html, to_markdown
from .study_analysis import StudyAnalysis, TaskAnalysis, analyse_study
from .trials import load_odyssey_trials, open_existing, resolve_name
from .variant_stats import ALPHA, MIN_TOP, TOP_FRACTION, VANILLA

FIGURES = "figures"
TEST_COLUMNS = ["variant", "parameters", "complete", "top", "mean", "difference", "direction", "p", "significant", "note"]


def build_report(*, storage: str | BaseStorage, name: str | None, out_dir: Path | None, trees: int = 32, seed: int = 0) -> Path:
    """Analyse the odyssey study `name` (the storage's only one if None); write into out_dir or results/<name>/.

    Returns the path of report.html. Uses finished trials only, so it works while a study still runs.
    """
    store = open_existing(storage)
    name = resolve_name(store, name)
    analysis = analyse_study(load_odyssey_trials(store, name), trees=trees, seed=seed)
    out = Path(out_dir) if out_dir is not None else Path("results") / name
    return write_report(analysis, out=out, source=mask_url(storage) if isinstance(storage, str) else type(storage).__name__)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "task"


def _with_task(task: str, frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(task=task)[["task", *frame.columns]]


def _figure(fig, out: Path, stem: str, caption: str) -> Image:
    relative = Path(FIGURES) / f"{stem}.png"
    plots.save_png(fig, out / relative)
    return Image(relative, caption)


def _importance_blocks(task: TaskAnalysis, out: Path, stem: str, tables: dict[str, list[pd.DataFrame]]) -> list[Block]:
    if isinstance(task.importance, str):
        return [Heading("Hyperparameter importance", 3), Text(f"Not computed: {task.importance}.")]
    result: Importance = task.importance
    terms, curves, surfaces = terms_table(result), curves_table(result), surfaces_table(result)
    times = curves_table(task.times) if isinstance(task.times, Importance) else None
    tables["importance"].append(_with_task(task.task, terms.assign(trials=result.trials)))
    tables["marginals"].append(_with_task(task.task, curves.assign(target=task.metric)))
    if times is not None:
        tables["marginals"].append(_with_task(task.task, times.assign(target="seconds")))
    tables["pairs"].append(_with_task(task.task, surfaces))
    blocks: list[Block] = [
        Heading("Hyperparameter importance", 3),
        Text(
            f"Functional ANOVA of the validation {task.metric} over {result.trials} complete trials of all variants, "
            f"on a random forest of {result.fanova.variance.size} trees; log-sampled parameters on a log10 scale. "
            "Shares are mean ± std over trees; 'higher order' is what single parameters and pairs leave unexplained."
        ),
        _figure(plots.share_bars(terms), out, f"{stem}-importance", f"{task.task}: share of the variance of validation {task.metric}"),
        Table(terms.drop(columns="params")),
        _figure(
            plots.marginal_curves(curves, metric=f"validation {task.metric}", times=times),
            out,
            f"{stem}-marginals",
            f"{task.task}: marginal predicted {task.metric} (and training time) per parameter, band ±1 std over trees",
        ),
    ]
    if isinstance(task.times, str):
        blocks.append(Text(f"Training-time curves not drawn: {task.times}."))
    if not surfaces.empty:
        caption = f"{task.task}: pairwise marginals of validation {task.metric}, total (left) and interaction only (right)"
        blocks.append(_figure(plots.pair_heatmaps(surfaces, metric=task.metric), out, f"{stem}-pairs", caption))
    return blocks


def _variant_blocks(task: TaskAnalysis, analysis: StudyAnalysis, out: Path, stem: str) -> list[Block]:
    blocks: list[Block] = [Heading("Variants against vanilla", 3)]
    if VANILLA not in set(task.tests["variant"]):
        blocks.append(Text(f"No t-tests: task {task.task} has no complete vanilla ({VANILLA}) trials to compare against."))
    else:
        blocks.append(
            Text(
                f"Welch's t-test of each variant's test {task.metric} against {VANILLA}'s, on the best {TOP_FRACTION:.0%} of each "
                f"cell's trials by validation value (at least {MIN_TOP} needed); significant at p < {ALPHA}. "
                "Lower is better: a negative difference is an improvement."
            )
        )
    complete = analysis.trials.complete()
    fig = plots.variant_boxplots(
        complete[complete["task"] == task.task], analysis.best[analysis.best["task"] == task.task], task.tests, metric=task.metric
    )
    blocks.append(_figure(fig, out, f"{stem}-variants", f"{task.task}: test {task.metric} per variant; colour marks significance against {VANILLA}"))
    blocks.append(Table(task.tests[TEST_COLUMNS]))
    return blocks


def _document(analysis: StudyAnalysis, out: Path, source: str, tables: dict[str, list[pd.DataFrame]]) -> list[Block]:
    trials = analysis.trials
    totals = analysis.cells.drop(columns=["task", "variant"]).sum()
    blocks: list[Block] = [
        Heading(f"odyssey report: {trials.name}", 1),
        Text(
            f"Storage {source}; written {dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z} by odyssey {__version__}. "
            + ", ".join(f"{int(n)} {state}" for state, n in totals.items())
            + " trials. Statistics use complete trials only; failed trials (diverged, or their worker died more than "
            "`retries` times; the reason is in trials.csv) are counted, not analysed."
        ),
        Heading("The paper's findings on this data"),
        Table(analysis.claims),
        Heading("Trials per cell"),
        Table(analysis.cells),
    ]
    for i, task in enumerate(analysis.tasks):
        stem = f"{i + 1:02d}-{_slug(task.task)}"
        blocks += [Heading(f"Task {task.task} (metric: {task.metric}, lower is better)")]
        blocks += _variant_blocks(task, analysis, out, stem)
        blocks += _importance_blocks(task, out, stem, tables)
    blocks += [Heading("Files"), Text("CSV tables beside this report: " + ", ".join(f"{n}.csv" for n in CSV_NAMES) + f"; figures in {FIGURES}/.")]
    return blocks


CSV_NAMES = ("trials", "cells", "variant_stats", "claims", "importance", "marginals", "pairs")


def write_report(analysis: StudyAnalysis, *, out: Path, source: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    tables: dict[str, list[pd.DataFrame]] = {"importance": [], "marginals": [], "pairs": []}
    blocks = _document(analysis, out, source, tables)
    csvs = {"trials": analysis.trials.frame, "cells": analysis.cells, "variant_stats": analysis.tests, "claims": analysis.claims}
    csvs |= {key: pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["task"]) for key, parts in tables.items()}
    for key in CSV_NAMES:
        csvs[key].to_csv(out / f"{key}.csv", index=False, float_format="%.6g")
    (out / "report.md").write_text(to_markdown(blocks), encoding="utf-8")
    path = out / "report.html"
    path.write_text(to_html(blocks, root=out, title=f"odyssey report: {analysis.trials.name}"), encoding="utf-8")
    return path
