"""What a study is too small to answer: the lines at the top of a report, so that a report of 6
trials per cell says which numbers are missing instead of 'cannot be checked' everywhere."""

from __future__ import annotations

import pandas as pd

from .importance import MIN_TRIALS
from .variant_stats import MIN_PAIRS, MIN_TOP, TOP_FRACTION, VANILLA, needed_for, top_count


def budget_gaps(cells: pd.DataFrame, *, paired: bool) -> list[str]:
    """One line per task whose trials are too few for a variant test or for importance; [] when none.

    cells: a row per (task, variant) with its 'complete' count, and its 'pruned' one where a pruner
    stopped trials (study_analysis.cell_counts).
    paired: sampler = "paired", whose test needs MIN_PAIRS slots in both cells (complete, or with a
    pruner finished: pruned ones are compared at the budget level both reached); otherwise each
    cell's best TOP_FRACTION (of its finished trials, taken from the complete ones) must hold MIN_TOP.
    """
    per_test = MIN_PAIRS if paired else needed_for(MIN_TOP)
    lines = []
    for task, rows in cells.groupby("task", sort=False):
        complete = dict(zip(rows["variant"], rows["complete"].astype(int)))
        stopped = dict(zip(rows["variant"], rows["pruned"].astype(int))) if "pruned" in rows else {}
        pruned = any(stopped.values())

        missing = []
        if VANILLA not in complete:
            missing.append(f"no vanilla ({VANILLA}) cell to test the variants against")
        elif short := [v for v, n in complete.items() if not _testable(n, stopped.get(v, 0), paired=paired)]:
            cells_said = ", ".join(
                f"{v} {complete[v]}" + (f" + {stopped.get(v, 0)} pruned" if pruned else "") for v in short
            )
            needs = (
                f"{per_test} complete trials in both cells{' (paired slots)' if paired else ''}"
                if not pruned
                else f"{per_test} finished trials (complete or pruned) in both cells"
                + ("" if paired else f", and {MIN_TOP} complete among their best {TOP_FRACTION:.0%}")
            )
            missing.append(f"a test of a variant against {VANILLA} needs {needs}, these have fewer: {cells_said}")
        if (total := sum(complete.values())) < MIN_TRIALS:
            missing.append(f"importance needs {MIN_TRIALS} complete trials of the task, it has {total}")
        if missing:
            lines.append(
                f"Too small to answer everything for task {task}: "
                + "; ".join(missing)
                + ". Raise 'trials' and run again with --extend."
            )
    return lines


def _testable(complete: int, pruned: int, *, paired: bool) -> bool:
    """A cell with these trials enters a variant test (variant_stats.variant_tests)."""
    finished = complete + pruned
    return finished >= MIN_PAIRS if paired else min(top_count(finished), complete) >= MIN_TOP
