"""What a storage says about a study's cells: `odyssey status` and the live view of `odyssey run`."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import optuna
from optuna.trial import TrialState
from rich.console import Console
from rich.live import Live
from rich.table import Table

from ..errors import OdysseyError
from . import queue
from .storage import open_storage


def odyssey_studies(storage, name: str | None = None) -> list[optuna.study.StudySummary]:
    summaries = optuna.get_all_study_summaries(storage, include_best_trial=False)
    found = [s for s in summaries if "odyssey_study" in s.user_attrs and (name is None or s.user_attrs["odyssey_study"] == name)]
    if not found:
        names = sorted({s.user_attrs.get("odyssey_study", s.study_name) for s in summaries})
        known = f"; it holds: {', '.join(names)}" if names else "; it holds no studies"
        raise OdysseyError(f"no odyssey study{f' named {name!r}' if name else ''} in this storage{known}")
    return found


def cell_rows(storage, name: str | None = None) -> list[dict[str, object]]:
    """One row per (task, variant): slots complete / running / failed / remaining, best validation value."""
    rows = []
    for summary in odyssey_studies(storage, name):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        trials = study.get_trials(deepcopy=False)
        counts = queue.count(trials, int(summary.user_attrs.get("study_spec", {}).get("trials", len(trials))))
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        running = [t.user_attrs.get("progress") for t in trials if t.state == TrialState.RUNNING]
        best = min((t.value for t in complete), default=math.nan)
        rows.append(
            {
                "cell": summary.study_name,
                "complete": counts.complete,
                "running": counts.running,
                "failed": counts.failed,
                "remaining": counts.remaining - counts.running,
                "planned": counts.planned,
                "best": best,
                "now": "; ".join(f"epoch {p['epoch']}: {p['validation']:.4g}" for p in running if p) or "",
                "seconds": [t.user_attrs.get("seconds", math.nan) for t in complete],
                "failures": [
                    f"{summary.study_name} trial {t.number}: {t.user_attrs.get('failure', 'its worker stopped (retry pending)')}"
                    for t in queue.slot_trials(trials)
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


def _table(rows: list[dict[str, object]], *, started: float, done_at_start: int, jobs: int) -> Table:
    done = sum(r["complete"] + r["failed"] for r in rows)
    planned = sum(r["planned"] for r in rows)
    elapsed = time.monotonic() - started
    finished_now = done - done_at_start
    eta = f"{elapsed / finished_now * (planned - done):.0f} s" if finished_now else "-"
    table = Table(title=f"{done}/{planned} trials done, {elapsed:.0f} s elapsed, ETA {eta} ({jobs} job{'s' * (jobs > 1)})")
    for column in ("cell", "done", "failed", "running now", "best"):
        table.add_column(column, justify="left" if column in ("cell", "running now") else "right")
    for r in rows:
        table.add_row(r["cell"], f"{r['complete'] + r['failed']}/{r['planned']}", str(r["failed"]), r["now"], _best(r["best"]))
    return table


def _best(value: float) -> str:
    """A cell's best value; '-' before its first complete trial (not 'nan')."""
    return "-" if math.isnan(value) else f"{value:.4g}"


def watch(storage, name: str, *, running: Callable[[], bool], jobs: int, console: Console | None = None, poll: float = 1.0) -> None:
    """Show progress until `running()` turns false: a live table on a terminal, a line per finished trial otherwise."""
    console = console or Console()
    started = time.monotonic()
    rows = cell_rows(storage, name)
    done_at_start = sum(r["complete"] + r["failed"] for r in rows)
    if console.is_terminal:
        with Live(_table(rows, started=started, done_at_start=done_at_start, jobs=jobs), console=console, refresh_per_second=2) as live:
            while running():
                time.sleep(poll)
                live.update(_table(cell_rows(storage, name), started=started, done_at_start=done_at_start, jobs=jobs))
        return
    reported = {r["cell"]: r["complete"] + r["failed"] for r in rows}
    while True:
        alive = running()
        for r in cell_rows(storage, name):
            done = r["complete"] + r["failed"]
            if done != reported[r["cell"]]:
                reported[r["cell"]] = done
                console.print(f"{r['cell']}: {done}/{r['planned']} done ({r['failed']} failed), best {_best(r['best'])}")
        if not alive:
            return
        time.sleep(poll)
