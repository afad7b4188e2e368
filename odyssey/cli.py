"""The odyssey command line: each command is a docstring, its options, and one call into `odyssey/`.

Library imports sit inside the commands so that `odyssey report` never imports torch.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Which parts of an LSTM, and which hyperparameters, actually matter.", no_args_is_help=True)


def _print_version(value: bool) -> None:
    if value:
        from odyssey import __version__

        typer.echo(f"odyssey {__version__}")
        raise typer.Exit()


@app.callback()
def odyssey(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """odyssey: the LSTM search-space study of Greff et al. (2017) on your own data."""
    import optuna

    # Optuna's INFO lines ("Trial 3 finished with value ...") repeat what the tables and the live view
    # say. Set here, not on import: a library user's own setting stays theirs.
    optuna.logging.set_verbosity(optuna.logging.WARNING)


@app.command()
def variants(
    input_size: Annotated[int, typer.Option(min=1, help="Inputs per step, for the parameter counts.")] = 39,
    hidden_size: Annotated[int, typer.Option(min=1, help="LSTM blocks, for the parameter counts.")] = 100,
) -> None:
    """List the LSTM variants, what each changes, and its parameter count (one direction)."""
    from odyssey.console import print_rows
    from odyssey.model.variants import variant_table

    print_rows(
        variant_table(input_size=input_size, hidden_size=hidden_size),
        title=f"variants (I={input_size}, H={hidden_size})",
    )


StudyArg = Annotated[Path, typer.Argument(help="A study file (TOML), e.g. studies/quick.toml.", show_default=False)]
StorageOpt = Annotated[str | None, typer.Option(help="Optuna storage URL; default sqlite:///results/<name>.db.")]


@app.command()
def run(
    study: StudyArg,
    storage: StorageOpt = None,
    jobs: Annotated[int, typer.Option(min=1, help="Worker processes on this machine.")] = 1,
    threads: Annotated[
        int | None, typer.Option(min=1, help="Torch threads per worker (default: 1 with several jobs).")
    ] = None,
    extend: Annotated[
        bool, typer.Option(help="Accept more trials, tasks or variants in a changed study file.")
    ] = False,
    checkpoint_dir: Annotated[
        Path | None, typer.Option(help="Per-epoch checkpoints; share it between machines to resume there.")
    ] = None,
    force_jobs: Annotated[bool, typer.Option(help="Start --jobs workers even beyond this machine's cores.")] = False,
    pack: Annotated[
        int,
        typer.Option(
            min=1,
            help="Each worker trains up to this many trials of a cell in lockstep (same results; on a CPU it pays "
            "for small networks).",
        ),
    ] = 1,
    device: Annotated[
        str,
        typer.Option(
            help="Where workers train: cpu, or cuda (cuda:N) to train each worker's packs on that GPU (same "
            "results within float rounding; use a --pack of 32 or more there).",
        ),
    ] = "cpu",
) -> None:
    """Run a study: each (task, variant) cell gets its missing trials. Safe to stop and run again."""
    from odyssey.console import print_rows, watch
    from odyssey.study.runner import run as run_study
    from odyssey.study.studyfile import load_study_file

    study_file = load_study_file(study)
    rows = run_study(
        study_file,
        storage_url=storage,
        jobs=jobs,
        threads=threads,
        extend=extend,
        checkpoint_dir=checkpoint_dir,
        force_jobs=force_jobs,
        pack=pack,
        device=device,
        progress=watch,
    )
    print_rows(rows, title=study_file.name)


@app.command()
def prepare(
    study: StudyArg,
    storage: StorageOpt = None,
    extend: Annotated[
        bool, typer.Option(help="Accept more trials, tasks or variants in a changed study file.")
    ] = False,
) -> None:
    """Create a study's cells and queue its trials without training: once, before workers on many machines."""
    from odyssey.console import print_rows
    from odyssey.study.runner import prepare_study
    from odyssey.study.studyfile import load_study_file

    study_file = load_study_file(study)
    print_rows(prepare_study(study_file, storage_url=storage, extend=extend), title=study_file.name)


@app.command()
def estimate(
    study: StudyArg,
    jobs: Annotated[int | None, typer.Option(min=1, help="Also project the wall time with this many workers.")] = None,
    epochs: Annotated[int, typer.Option(min=1, help="Timed epochs per (task, variant) and hidden size.")] = 1,
    share: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Time this share of each epoch's batches and scale up by frames.")
    ] = 1.0,
    pack: Annotated[int, typer.Option(min=1, help="Time each trial's epochs in packs of this many (run --pack).")] = 1,
) -> None:
    """Project a study's CPU-hours (and with --jobs its wall time) from a few timed epochs per cell."""
    from odyssey.console import print_lines, print_rows
    from odyssey.study.estimate import estimate as estimate_study
    from odyssey.study.estimate import summary
    from odyssey.study.studyfile import load_study_file

    study_file = load_study_file(study)
    costs = estimate_study(study_file, epochs=epochs, share=share, pack=pack)
    rows, lines = summary(study_file, costs, jobs=jobs, pack=pack)
    print_rows(rows, title=f"{study_file.name}: seconds per epoch and per trial (one torch thread)")
    print_lines(lines, title="projection", limit=len(lines))


@app.command()
def status(
    study: Annotated[Path | None, typer.Argument(help="A study file; or give --storage.", show_default=False)] = None,
    storage: StorageOpt = None,
    name: Annotated[str | None, typer.Option(help="The study's name, when the storage holds several.")] = None,
) -> None:
    # One line on purpose: the docstring is the command's help, and typer's rich help keeps its line breaks.
    """Show, per (task, variant), complete / running / failed / remaining trials and the best value; then why each failed trial failed."""  # noqa: E501
    from odyssey.console import print_lines, print_rows
    from odyssey.study.status import status_report
    from odyssey.study.studyfile import resolve_storage

    url, name = resolve_storage(study, storage, name)
    rows, failures = status_report(url, name)
    print_rows(rows, title=name)
    print_lines(failures, title="failed trials", limit=20)


@app.command()
def tasks(
    path: Annotated[
        list[str] | None, typer.Option(help="TASK=PATH: your copy of timit, iam_ondb or jsb (repeatable).")
    ] = None,
    build: Annotated[
        bool, typer.Option(help="Build default data sets not cached yet (chorales ~20 s, speech ~20-40 s).")
    ] = False,
) -> None:
    """Show every task with its default sizes and metric (cached or instant data only unless --build)."""
    from odyssey.console import print_task_table
    from odyssey.tasks import task_table

    print_task_table(task_table(paths=path, build=build))


RefitsOpt = Annotated[
    int | None,
    typer.Option(
        min=0,
        help="Resamples behind each interval and refits behind each noise floor; default 12 (the output says); "
        "0: shares only, no intervals or floors.",
        show_default=False,
    ),
]
SeedOpt = Annotated[
    int | None,
    typer.Option(
        help="Seed of the forests, resamples and refits (the output says which); default 0.", show_default=False
    ),
]


def _given(**options: int | None) -> dict[str, int]:
    """Only the options given: the library's defaults stay in one place."""
    return {k: v for k, v in options.items() if v is not None}


@app.command()
def importance(
    storage: Annotated[
        str, typer.Option(help="Optuna storage URL, e.g. sqlite:///results/mini.db.", show_default=False)
    ],
    study: Annotated[
        str, typer.Option(help="The Optuna study's name (any study, not only odyssey's).", show_default=False)
    ],
    params: Annotated[
        list[str] | None, typer.Option("--params", help="Parameters to analyse (repeatable); default all.")
    ] = None,
    objective: Annotated[
        int | None, typer.Option(min=0, help="Which objective of a multi-objective study (from 0).")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
    budgets: Annotated[
        bool,
        typer.Option(
            "--budgets",
            help="Importance at each budget level (step) from every trial that reached it, pruned ones too, and "
            "how far each agrees with the full budget.",
        ),
    ] = False,
    refits: RefitsOpt = None,
    seed: SeedOpt = None,
) -> None:
    # One line on purpose: the docstring is the command's help, and typer's rich help keeps its line breaks.
    """Variance shares of each hyperparameter and pair (fANOVA; log-sampled ones in log10), with intervals, noise floors and trial counts."""  # noqa: E501
    from odyssey.console import print_importance

    print_importance(
        storage=storage,
        study=study,
        params=params,
        objective=objective,
        fmt=fmt,
        budgets=budgets,
        **_given(refits=refits, seed=seed),
    )


@app.command()
def report(
    study: Annotated[Path | None, typer.Argument(help="A study file; or give --storage.", show_default=False)] = None,
    storage: StorageOpt = None,
    name: Annotated[str | None, typer.Option(help="The study's name, when the storage holds several.")] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder; default results/<name>/.")] = None,
    refits: RefitsOpt = None,
    seed: SeedOpt = None,
) -> None:
    # One line on purpose: the docstring is the command's help, and typer's rich help keeps its line breaks.
    """Write report.html (self-contained), report.md, figures and CSV tables: settings, variants, importance, the paper's claims."""  # noqa: E501
    from odyssey.analysis.report import build_report
    from odyssey.study.studyfile import resolve_storage

    url, name = resolve_storage(study, storage, name)
    written = build_report(storage=url, name=name, out_dir=out, study_file=study, **_given(refits=refits, seed=seed))
    typer.echo(f"wrote {written}")


def main() -> None:
    """The console entry point: what the user can fix prints as one line (exit 2; a stop: 130); anything
    else is a bug in odyssey: a short traceback and the file holding the whole (ODYSSEY_DEBUG=1: all of it)."""
    from odyssey.errors import Interrupted, OdysseyError, first_line
    from odyssey.study.stopping import STOP

    # torch's idle OpenMP threads otherwise spin after every parallel region, taking the cores that
    # other work on the machine (another study, another job) needs: 10-100x slower steps measured
    # (benchmarks/contention.py). libgomp reads this once, when torch loads: before any command does.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    _one_line_warnings()
    STOP.install()  # from the first moment: a SIGTERM during start-up stops cleanly too
    try:
        app()
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    except OdysseyError as err:
        if os.environ.get("ODYSSEY_DEBUG"):
            raise
        print(f"error: {first_line(err)}", file=sys.stderr)
        raise SystemExit(130 if isinstance(err, Interrupted) else 2) from None
    except Exception as err:  # noqa: BLE001 - a bug: say where it happened
        if os.environ.get("ODYSSEY_DEBUG"):
            raise
        raise SystemExit(_report_bug(err)) from None


def _one_line_warnings() -> None:
    """odyssey's own warnings (OdysseyWarning) print as 'warning: ...', without Python's file and line."""
    import warnings

    from odyssey.errors import OdysseyWarning

    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        if issubclass(category, OdysseyWarning):
            print(f"warning: {message}", file=file or sys.stderr, flush=True)
        else:
            default(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    warnings.simplefilter("always", OdysseyWarning)  # two deaths of one worker slot are two lines


def _report_bug(err: Exception) -> int:
    import tempfile
    import traceback

    full = "".join(traceback.format_exception(err))
    log = Path(tempfile.gettempdir()) / f"odyssey-bug-{os.getpid()}.log"
    log.write_text(full)
    frames = traceback.extract_tb(err.__traceback__)[-3:]
    print(f"error: a bug in odyssey: {type(err).__name__}: {err}", file=sys.stderr)
    for frame in frames:
        print(f"  {frame.filename}:{frame.lineno} in {frame.name}", file=sys.stderr)
    print(f"  the whole traceback: {log} (please report it)", file=sys.stderr)
    return 1


if __name__ == "__main__":
    main()
