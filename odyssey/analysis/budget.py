"""What a study is too small to answer: the lines at the top of a report, so that a report of 6
trials per cell says which numbers are missing instead of 'cannot be checked' everywhere."""

from __future__ import annotations

import pandas as pd

from .importance import MIN_TRIALS
from .variant_stats import MIN_PAIRS, MIN_TOP, VANILLA, needed_for


def budget_gaps(cells: pd.DataFrame, *, paired: bool) -> list[str]:
    """One line per task whose complete trials are too few for a variant test or for importance; [] when none.

    cells: a row per (task, variant) with its 'complete' count (study_analysis.cell_counts).
    paired: sampler = "paired", whose test needs MIN_PAIRS slots complete in both cells; otherwise
    each cell's best TOP_FRACTION must hold MIN_TOP trials.
    """
    per_test = MIN_PAIRS if paired else needed_for(MIN_TOP)
    lines = []
    for task, rows in cells.groupby("task", sort=False):
        complete = dict(zip(rows["variant"], rows["complete"].astype(int)))
        missing = []
        if VANILLA not in complete:
            missing.append(f"no vanilla ({VANILLA}) cell to test the variants against")
        elif short := {v: n for v, n in complete.items() if n < per_test}:
            cells_said = ", ".join(f"{v} {n}" for v, n in short.items())
            missing.append(
                f"a test of a variant against {VANILLA} needs {per_test} complete trials in both cells"
                f"{' (paired slots)' if paired else ''}, these have fewer: {cells_said}"
            )
        if (total := sum(complete.values())) < MIN_TRIALS:
            missing.append(f"importance needs {MIN_TRIALS} complete trials of the task, it has {total}")
        if missing:
            lines.append(
                f"Too small to answer everything for task {task}: "
                + "; ".join(missing)
                + ". Raise 'trials' and run again with --extend."
            )
    return lines
