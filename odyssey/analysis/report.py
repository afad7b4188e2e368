"""`odyssey report`: a study's analysis as report.html (self-contained), report.md, PNG figures and CSV tables.

Every figure has a CSV with the numbers it draws, so a reader can redraw or check it. The report is
built in memory (`assemble_report`) and written by one function at the end (`write_report`): an
analysis that fails leaves no half-written folder.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from optuna.storages import BaseStorage

from .. import __version__
from ..errors import OdysseyError
from ..record import STUDY_SPEC
from ..storage import mask_url, sqlite_path, writable_folder
from ..studytoml import load_analysis_settings
from . import plots
from .budget import budget_gaps
from .by_budget import BUDGET_COLUMNS, budget_rows, budget_table
from .importance import PAIR_SIGN, SCALE_NOTE, Importance
from .importance_tables import curves_table, surfaces_table, terms_table
from .render import Block, Heading, Image, Table, Text, to_html, to_markdown
from .settings import settings_blocks
from .study_analysis import StudyAnalysis, TaskAnalysis, analyse_study
from .trials import load_odyssey_trials, open_existing, resolve_name
from .uncertainty import REFITS
from .variant_stats import (
    ALPHA,
    CONFIDENCE,
    MARGIN_SD,
    MIN_TOP,
    PAIRED,
    PAIRED_AT_LEVEL,
    POWER,
    TOP_FRACTION,
    VANILLA,
)

FIGURES = "figures"
TEST_COLUMNS = [
    "variant", "parameters", "complete", "top", "mean", "difference", "low", "high", "difference_sd",
    "all_difference", "all_low", "all_high", "p", "p_adjusted", "margin", "p_equivalence_adjusted", "verdict",
    "detectable", "trials_needed", "note",
]  # fmt: skip


def build_report(
    *,
    storage: str | BaseStorage,
    name: str | None,
    out_dir: Path | None,
    study_file: Path | None = None,
    trees: int = 32,
    seed: int = 0,
    refits: int = REFITS,
) -> Path:
    """Analyse the odyssey study `name` (the storage's only one if None); write into out_dir, by default
    <name>/ beside an SQLite storage (results/<name>/ for the default one), else results/<name>/.

    Returns the path of report.html. Uses finished trials only, so it works while a study still runs.
    study_file: the file the study was run from, named in the report (its settings come from the storage).
    A default folder holding the report of another storage is never overwritten: give --out.
    """
    store = open_existing(storage)
    name = resolve_name(store, name)
    source = mask_url(storage) if isinstance(storage, str) else type(storage).__name__
    out = Path(out_dir) if out_dir is not None else _default_folder(storage, name, source)
    writable_folder(out, "--out" if out_dir is not None else "the report folder")  # before the analysis, not after it
    margins = load_analysis_settings(study_file).equivalence_margin if study_file is not None else None
    analysis = analyse_study(load_odyssey_trials(store, name), trees=trees, seed=seed, margins=margins, refits=refits)
    return write_report(assemble_report(analysis, source=source, study_file=study_file), out=out)


SOURCE = ".storage"  # which storage a report folder was written from


def _default_folder(storage: str | BaseStorage, name: str, source: str) -> Path:
    path = sqlite_path(storage) if isinstance(storage, str) else None
    out = (path.parent if path is not None else Path("results")) / name
    written = (out / SOURCE).read_text().strip() if (out / SOURCE).exists() else source
    if written != source:
        raise OdysseyError(f"{out}: holds the report of another storage ({written}); choose a folder with --out")
    return out


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "task"


def _with_task(task: str, frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(task=task)[["task", *frame.columns]]


def _figure(fig, stem: str, caption: str) -> Image:
    return Image(Path(FIGURES) / f"{stem}.png", caption, plots.png_bytes(fig))


PAIRS_DRAWN = 6
TERM_SHOWN = ["term", "scale", "mean", "std", "low", "high", "floor", "distinguishable"]


def _importance_blocks(
    task: TaskAnalysis, stem: str, tables: dict[str, list[pd.DataFrame]], *, pruned: int = 0
) -> list[Block]:
    blocks: list[Block] = [Heading("Hyperparameter importance", 3)]
    if isinstance(task.importance, str):
        blocks.append(Text(f"Not computed: {task.importance}."))
    blocks.append(
        Text(
            f"Functional ANOVA of the validation {task.metric} over the complete trials of all variants, on random "
            f"forests; {SCALE_NOTE}. Parameters that exist only in some trials (conditional ones) are analysed on "
            "the trials that have them, together with their parents; each table says how many trials it used. "
            "Shares divide the variance of the forest's mean prediction (the metric without its noise); 'higher "
            "order' is what single parameters and pairs leave of it, and 'noise' is the share of the trials' own "
            "variance that no parameter explains."
        )
    )
    if pruned:
        # benchmarks/fidelity.py --seed 1: the learning rate's share over the 26 trials Hyperband kept was 0.05
        # [0.00, 0.64], over all 160 trained to the end 0.80 [0.61, 0.90].
        blocks.append(
            Text(
                f"The study's pruner stopped {pruned:,} trials of this task early, so these shares describe the "
                "region it kept, not the whole space: a parameter that decides which trials are stopped (a "
                "learning rate too small to learn anything) varies little among those that are not, and its share "
                "here can be far below its share over all configurations. The importance across budgets below "
                "analyses every trial that reached each level."
            )
        )
    for k, (space, result) in enumerate(task.spaces):
        if isinstance(result, str):
            if k:
                blocks += [Heading(f"Sub-space: {space}", 4), Text(f"Not computed: {result}.")]
            continue
        blocks += _space_blocks(task, result, f"{stem}-{k}" if k else stem, tables, first=k == 0)
    return blocks


def _space_blocks(
    task: TaskAnalysis, result: Importance, stem: str, tables: dict[str, list[pd.DataFrame]], *, first: bool
) -> list[Block]:
    terms, curves, surfaces = terms_table(result), curves_table(result), surfaces_table(result)
    tables["importance"].append(_with_task(task.task, terms))
    tables["marginals"].append(_with_task(task.task, curves.assign(target=task.metric)))
    tables["pairs"].append(_with_task(task.task, surfaces))
    times = curves_table(task.times) if first and isinstance(task.times, Importance) else None
    if times is not None:
        tables["marginals"].append(_with_task(task.task, times.assign(target="seconds")))
    label = f"{task.task}, {result.space} ({result.trials:,} trials)"
    choices = {s.label: s.choices for s in result.scales if s.choices is not None}
    blocks: list[Block] = [
        Heading(f"{'All trials' if first else 'Sub-space: ' + result.space} ({result.trials:,} trials)", 4),
        Text(f"{result.note[0].upper()}{result.note[1:]}."),
        _figure(
            plots.share_bars(terms), f"{stem}-importance", f"{label}: share of the variance of validation {task.metric}"
        ),
        Table(terms[TERM_SHOWN]),
    ]
    if result.constant:
        return blocks
    blocks.append(
        _figure(
            plots.marginal_curves(curves, metric=f"validation {task.metric}", times=times, choices=choices),
            f"{stem}-marginals",
            f"{label}: marginal predicted {task.metric}"
            + (" and training seconds" if times is not None else "")
            + " per parameter, band ±1 std over resamples",
        )
    )
    if first and isinstance(task.times, str):
        blocks.append(Text(f"Training-time curves not drawn: {task.times}."))
    if not surfaces.empty:
        # The largest pairs only: fifteen rows of heat maps hide the two that matter. All are in pairs.csv.
        ranked = [tuple(t.split(PAIR_SIGN)) for t in terms.loc[terms["kind"] == "pair", "term"]]
        drawn = ranked[:PAIRS_DRAWN]
        shown = surfaces[[pair in set(drawn) for pair in zip(surfaces["param_x"], surfaces["param_y"])]]
        which = (
            f"the {len(drawn)} largest of {len(ranked)} pairs (all in pairs.csv)"
            if len(ranked) > len(drawn)
            else "every pair"
        )
        caption = (
            f"{label}: pairwise marginals of validation {task.metric} for {which}, largest first; total (left) and "
            "interaction only (right)"
        )
        blocks.append(
            _figure(
                plots.pair_heatmaps(shown, metric=task.metric, order=drawn, choices=choices), f"{stem}-pairs", caption
            )
        )
    return blocks


def _budget_blocks(task: TaskAnalysis, stem: str, tables: dict[str, list[pd.DataFrame]]) -> list[Block]:
    """Importance across budgets, where two budget levels or more have an analysis to compare."""
    budgets = task.budgets
    if budgets is None:
        return []
    table = budget_table(budgets)
    tables["importance_by_budget"].append(table)
    if not budgets.informative:
        return []
    unit = budgets.unit
    return [
        Heading("Importance across budgets", 3),
        Text(budgets.statement),
        Text(
            f"The importance of each parameter at each budget level, from every trial that reached it (complete or "
            f"pruned), by its value there: the best validation {task.metric} it reached up to that {unit}. The levels "
            f"are the {unit}s where the pruner stopped trials (else a handful of {unit}s) and the full budget ({unit} "
            f"{budgets.full}). Shares are the main effects' with their 90% intervals ('*': distinguishable from zero). "
            "The trials' rank correlation (Spearman's, over the trials that reached the full budget, 90% bootstrap "
            "interval) says how well a level ranks the configurations the full budget ranks; the ranking correlation "
            "compares the main-effect shares with the full budget's, over the parameters that stand above their noise "
            "floor at either level. The ranking 'no longer changes' from a level when no two levels from it on, the "
            "full budget included, order two parameters clearly the other way round (the 90% interval of the "
            "difference of their shares excludes zero at both). Where a pruner stopped trials, later levels see only "
            "the trials it kept: their shares describe that part of the space. Every term, the interactions' sum and "
            "the noise included, is in importance_by_budget.csv."
        ),
        _figure(
            plots.importance_by_budget(table, unit=unit, settled=budgets.settled),
            f"{stem}-budgets",
            f"{task.task}: main-effect shares of validation {task.metric} at each budget level, with the agreements "
            f"with the full budget ({unit} {budgets.full})",
        ),
        Table(budget_rows(budgets)),
    ]


def _curve_blocks(task: TaskAnalysis, analysis: StudyAnalysis, stem: str) -> list[Block]:
    """The learning curves per variant, where the trials reported them."""
    quartiles = analysis.curves
    part = quartiles[quartiles["task"] == task.task] if quartiles is not None else pd.DataFrame()
    if part.empty:
        return []
    unit = task.budgets.unit if task.budgets is not None else "epoch"
    return [
        Heading("Learning curves", 3),
        Text(
            f"The validation {task.metric} of each variant's finished trials (complete and pruned) at each {unit}: "
            f"the median and the quartiles over the trials that reached that {unit} (pruned trials drop out where "
            f"they were stopped); dashed: {VANILLA}'s median. The numbers are in learning_curves.csv."
        ),
        _figure(
            plots.learning_curves(part, metric=task.metric, unit=unit),
            f"{stem}-curves",
            f"{task.task}: validation {task.metric} by {unit} per variant, median and quartiles",
        ),
    ]


def _variant_blocks(task: TaskAnalysis, analysis: StudyAnalysis, stem: str) -> list[Block]:
    blocks: list[Block] = [Heading("Variants against vanilla", 3)]
    if VANILLA not in set(task.tests["variant"]):
        blocks.append(
            Text(f"No tests: task {task.task} has no complete vanilla ({VANILLA}) trials to compare against.")
        )
    else:
        paired = task.tests["test"].isin([PAIRED, PAIRED_AT_LEVEL]).any()
        at_level = task.tests["test"].eq(PAIRED_AT_LEVEL).any()
        unit = task.budgets.unit if task.budgets is not None else "epoch"
        compared = (
            f"validation {task.metric} against {VANILLA}'s over every slot both finished, each pair at the "
            f"{unit} both trials reached (the earlier one's last; a complete trial's is the full budget), "
            "by its best value up to there: the pruner stopped the bad configurations early, so the slots both "
            "completed are the good region only"
            if at_level
            else f"test {task.metric} against {VANILLA}'s over the slots both completed"
        )
        design = (
            f"A paired t-test of each variant's {compared} (the study is paired: slot k of every variant trained the "
            f"same configuration); the best {TOP_FRACTION:.0%} of each cell by validation value are shown beside it "
            "as the paper's numbers"
            if paired
            else f"Welch's t-test of each variant's test {task.metric} against {VANILLA}'s on the best "
            f"{TOP_FRACTION:.0%} of each cell's trials by validation value (at least {MIN_TOP} needed), as the paper "
            "does"
        )
        blocks.append(
            Text(
                f"{design}. Lower is better: a negative difference is an improvement. 'difference' [low, high] is "
                f"the difference of the best-{TOP_FRACTION:.0%} means with its {CONFIDENCE:.0%} interval "
                "('difference_sd' in pooled standard deviations), 'all_difference' "
                + (
                    "the paired difference the test runs on, of the validation values at those epochs"
                    if at_level
                    else "the same over all complete trials" + (" (paired: over the common slots)" if paired else "")
                )
                + ". All tests of this report are one family: 'p_adjusted' is Holm's, and a variant is 'worse' or "
                f"'better' only where it is below {ALPHA}. A variant is 'equivalent' only where two one-sided tests, "
                f"Holm-adjusted too, put the difference inside ±'margin' ({_margin_source(analysis)}); otherwise it "
                f"is 'not decided': 'detectable' is the difference these trials find {POWER:.0%} of the time at the "
                "corrected level, and 'trials_needed' the complete trials per cell that would decide it either way. "
                "Every column is in variant_stats.csv."
            )
        )
    complete = analysis.trials.complete()
    fig = plots.variant_boxplots(
        complete[complete["task"] == task.task],
        analysis.best[analysis.best["task"] == task.task],
        task.tests,
        metric=task.metric,
    )
    blocks.append(
        _figure(
            fig,
            f"{stem}-variants",
            f"{task.task}: test {task.metric} per variant; colour marks a difference to {VANILLA} (Holm-adjusted)",
        )
    )
    shown = task.tests[TEST_COLUMNS].assign(parameters=lambda t: t["parameters"].round().astype("Int64"))
    cells = analysis.cells[analysis.cells["task"] == task.task].set_index("variant")
    if cells["pruned"].any():
        # Trials stopped early have no test metric at the full budget: they count in their cells' sizes.
        blocks.append(
            Text(
                "'pruned' counts the trials the study's pruner stopped early. They count in their cell's size, and "
                f"its best {TOP_FRACTION:.0%} are taken from its complete trials (those that reached the full "
                "budget), as without pruning wherever the pruner stopped none of the best."
            )
        )
        shown.insert(
            shown.columns.get_loc("complete") + 1, "pruned", shown["variant"].map(cells["pruned"]).astype("Int64")
        )
    blocks.append(Table(shown))
    return blocks


def _margin_source(analysis: StudyAnalysis) -> str:
    if analysis.margins is None:
        return (
            f"by default one standard deviation of {VANILLA}'s best {TOP_FRACTION:.0%}: the study file states none "
            "under [analysis] equivalence_margin"
        )
    return (
        "as the study file's [analysis] equivalence_margin states"
        if not isinstance(analysis.margins, dict)
        else (
            f"as the study file's [analysis] equivalence_margin states for {', '.join(sorted(analysis.margins))}; "
            f"for other tasks, {MARGIN_SD:g} standard deviation of {VANILLA}'s best {TOP_FRACTION:.0%}"
        )
    )


def _paired(analysis: StudyAnalysis) -> bool:
    return any(
        (attrs.get(STUDY_SPEC) or {}).get("sampler") == "paired" for attrs in analysis.trials.study_attrs.values()
    )


def _document(
    analysis: StudyAnalysis, source: str, tables: dict[str, list[pd.DataFrame]], study_file: Path | None
) -> list[Block]:
    trials = analysis.trials
    totals = analysis.cells.drop(columns=["task", "variant"]).sum()
    blocks: list[Block] = [
        Heading(f"odyssey report: {trials.name}", 1),
        Text(
            f"Storage {source}; written {dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z} by odyssey {__version__}. "
            + ", ".join(f"{int(n)} {state}" for state, n in totals.items())
            + " trials. Statistics use complete trials"
            + ("" if totals.get("pruned", 0) else " only")
            + "; failed trials (diverged, or their worker died more than "
            "`retries` times; the reason is in trials.csv) are counted, not analysed"
            + (
                "; pruned trials (stopped early by the study's pruner) enter the learning curves, the importance "
                "across budgets and the variant tests (see there), not the importance at the full budget."
                if totals.get("pruned", 0)
                else "."
            )
        ),
        *(Text(line) for line in budget_gaps(analysis.cells, paired=_paired(analysis))),
        *([Heading("In short"), *(Text(line) for line in analysis.summary)] if analysis.summary else []),
        *settings_blocks(analysis.trials, study_file=study_file),
        Heading("The paper's findings on this data"),
        Text(
            "Each of the paper's findings that this study can speak to, with odyssey's verdict: 'agrees', "
            "'disagrees', 'not decided' (the data cannot separate the answer) or 'cannot be checked'. Variant "
            "findings are decided by the corrected tests below, with what their budget can detect; importance "
            "findings by the intervals and noise floors of the shares (below). 'finding' says what the data show, "
            "'evidence' the numbers behind it."
        ),
        Table(analysis.claims) if len(analysis.claims) else Text("No complete trials yet: nothing to check."),
        Heading("Trials per cell"),
        Table(analysis.cells),
    ]
    for i, task in enumerate(analysis.tasks):
        stem = f"{i + 1:02d}-{_slug(task.task)}"
        blocks += [Heading(f"Task {task.task} (metric: {task.metric}, lower is better)")]
        blocks += _variant_blocks(task, analysis, stem)
        blocks += _curve_blocks(task, analysis, stem)
        blocks += _importance_blocks(
            task, stem, tables, pruned=int(analysis.cells.loc[analysis.cells["task"] == task.task, "pruned"].sum())
        )
        blocks += _budget_blocks(task, stem, tables)
    blocks += [
        Heading("Files"),
        Text(
            "CSV tables beside this report: " + ", ".join(f"{n}.csv" for n in CSV_NAMES) + f"; figures in {FIGURES}/."
        ),
    ]
    return blocks


CSV_NAMES = (
    "trials", "cells", "variant_stats", "claims", "importance", "marginals", "pairs", "importance_by_budget",
    "learning_curves",
)  # fmt: skip


@dataclass(frozen=True)
class Report:
    """Everything a report folder holds, built in memory; `write_report` writes it."""

    title: str
    source: str  # the storage it was made from (masked), kept in the folder's SOURCE file
    blocks: list[Block]  # the document; its figures (Image blocks) carry their PNG bytes
    tables: dict[str, pd.DataFrame]  # CSV_NAMES -> the table written as <name>.csv

    def files(self) -> dict[Path, bytes]:
        """Each file of the report folder, by its path inside the folder, with its content."""
        files = {Path(SOURCE): f"{self.source}\n".encode()}
        files |= {block.path: block.png for block in self.blocks if isinstance(block, Image)}
        files |= {
            Path(f"{key}.csv"): self.tables[key].to_csv(index=False, float_format="%.6g").encode() for key in CSV_NAMES
        }
        files[Path("report.md")] = to_markdown(self.blocks).encode()
        files[Path("report.html")] = to_html(self.blocks, title=self.title).encode()
        return files


def assemble_report(analysis: StudyAnalysis, *, source: str, study_file: Path | None = None) -> Report:
    """The report of an analysed study, in memory: its document (figures drawn) and its CSV tables."""
    tables: dict[str, list[pd.DataFrame]] = {"importance": [], "marginals": [], "pairs": [], "importance_by_budget": []}
    blocks = _document(analysis, source, tables, study_file)
    csvs = {
        "trials": analysis.trials.frame,
        "cells": analysis.cells,
        "variant_stats": analysis.tests,
        "claims": analysis.claims,
        "learning_curves": analysis.curves if analysis.curves is not None else pd.DataFrame(columns=["task"]),
    }
    empty = {"importance_by_budget": BUDGET_COLUMNS}
    csvs |= {
        key: pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=empty.get(key, ["task"]))
        for key, parts in tables.items()
    }
    csvs["importance"] = csvs["importance"].assign(
        params=[json.dumps(list(p)) for p in csvs["importance"].get("params", [])]
    )
    return Report(title=f"odyssey report: {analysis.trials.name}", source=source, blocks=blocks, tables=csvs)


def write_report(report: Report, *, out: Path) -> Path:
    """Write every file of `report` into `out` (created if missing); the path of report.html."""
    for relative, content in report.files().items():
        (out / relative).parent.mkdir(parents=True, exist_ok=True)
        (out / relative).write_bytes(content)
    return out / "report.html"
