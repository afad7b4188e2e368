"""What a storage says about a study's cells: the rows of `odyssey status` and of `odyssey run`'s live view
(odyssey.console draws them)."""

from __future__ import annotations

import math

import optuna
from optuna.trial import TrialState

from ..errors import OdysseyError
from ..record import FAILURE, PROGRESS, SECONDS, STUDY, STUDY_SPEC, slot_trials
from ..storage import open_storage
from . import queue


def odyssey_cells(storage, name: str | None = None) -> list[optuna.study.StudySummary]:
    """The summaries of the cells odyssey stored (of the study `name`, or of every study in the storage)."""
    summaries = optuna.get_all_study_summaries(storage, include_best_trial=False)
    found = [s for s in summaries if STUDY in s.user_attrs and (name is None or s.user_attrs[STUDY] == name)]
    if not found:
        names = sorted({s.user_attrs.get(STUDY, s.study_name) for s in summaries})
        known = f"; it holds: {', '.join(names)}" if names else "; it holds no studies"
        raise OdysseyError(f"no odyssey study{f' named {name!r}' if name else ''} in this storage{known}")
    return found


def cell_rows(storage, name: str | None = None) -> list[dict[str, object]]:
    """One row per (task, variant): slots complete / running / failed / pruned / remaining, best validation
    value (of the complete ones)."""
    rows = []
    for summary in odyssey_cells(storage, name):
        cell = optuna.load_study(study_name=summary.study_name, storage=storage)
        trials = cell.get_trials(deepcopy=False)
        counts = queue.count(trials, int(summary.user_attrs.get(STUDY_SPEC, {}).get("trials", len(trials))))
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        running = [t.user_attrs.get(PROGRESS) for t in trials if t.state == TrialState.RUNNING]
        best = min((t.value for t in complete), default=math.nan)
        rows.append(
            {
                "cell": summary.study_name,
                "complete": counts.complete,
                "running": counts.running,
                "failed": counts.failed,
                "pruned": counts.pruned,
                "remaining": counts.remaining - counts.running,
                "planned": counts.planned,
                "best": best,
                "now": "; ".join(f"epoch {p['epoch']}: {p['validation']:.4g}" for p in running if p) or "",
                "seconds": [t.user_attrs.get(SECONDS, math.nan) for t in complete],
                "failures": [
                    f"{summary.study_name} trial {t.number}: "
                    f"{t.user_attrs.get(FAILURE, 'its worker stopped (retry pending)')}"
                    for t in slot_trials(trials)
                    if t.state == TrialState.FAIL
                ],
            }
        )
    return rows


def status_report(storage_url: str, name: str | None = None) -> tuple[list[dict[str, object]], list[str]]:
    """The rows of `odyssey status`, and a line per failed trial saying why it failed."""
    rows = cell_rows(open_storage(storage_url, must_exist=True), name)
    table = [{k: v for k, v in row.items() if k not in ("now", "seconds", "failures")} for row in rows]
    return table, [line for row in rows for line in row["failures"]]


def status_rows(storage_url: str, name: str | None = None) -> list[dict[str, object]]:
    return status_report(storage_url, name)[0]
