"""`odyssey report` and `odyssey importance` on synthetic studies: files, contents, escaping, errors, no torch."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest

from odyssey.analysis import plots
from odyssey.analysis.importance_tables import study_importance
from odyssey.analysis.report import CSV_NAMES, build_report
from odyssey.analysis.settings import range_text
from odyssey.analysis.synthetic import write_synthetic_study
from odyssey.console import print_importance

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """One task with vanilla and three variants, one without vanilla; failed and running trials in every cell."""
    folder = tmp_path_factory.mktemp("report")
    storage = optuna.storages.InMemoryStorage()
    write_synthetic_study(storage, name="demo", tasks=("toy",), variants=("V", "NFG", "CIFG", "NP"), trials=30)
    write_synthetic_study(storage, name="demo", tasks=("novanilla",), variants=("NFG", "CIFG"), trials=10, seed=1)
    return build_report(storage=storage, name=None, out_dir=folder / "out")


def test_report_writes_html_markdown_figures_and_csvs(report: Path):
    out = report.parent
    assert report.name == "report.html"
    assert {f"{name}.csv" for name in CSV_NAMES} <= {p.name for p in out.iterdir()}
    text = report.read_text()
    assert text.count("data:image/png;base64,") == len(list((out / "figures").glob("*.png"))) >= 5
    assert "src='figures/" not in text  # self-contained: nothing to fetch
    markdown = (out / "report.md").read_text()
    for link in [line.split("](")[1].rstrip(")") for line in markdown.splitlines() if line.startswith("![")]:
        assert (out / link).is_file()


def test_report_counts_trials_per_cell_by_state(report: Path):
    cells = pd.read_csv(report.parent / "cells.csv").set_index(["task", "variant"])
    assert cells.loc[("toy", "V"), ["complete", "failed", "running"]].tolist() == [30, 1, 1]
    assert list(cells.loc["toy"].index) == ["V", "NFG", "NP", "CIFG"]  # vanilla first


def test_report_tables_behind_the_figures(report: Path):
    out = report.parent
    stats = pd.read_csv(out / "variant_stats.csv")
    nfg = stats[(stats.task == "toy") & (stats.variant == "NFG")].iloc[0]
    assert nfg["direction"] == "worse" and nfg["significant"]
    assert stats[stats.task == "novanilla"]["note"].str.contains("no vanilla").all()
    importance = pd.read_csv(out / "importance.csv")
    toy = importance[importance.task == "toy"].set_index("term")
    assert toy.loc["log10(learning_rate)", "mean"] > 0.5 and {"mean", "std"} <= set(toy.columns)
    assert toy.loc[toy["kind"] != "noise", "mean"].sum() == pytest.approx(1.0)  # the shares of the noise-free variance
    assert 0.0 <= toy.loc["noise", "mean"] <= 1.0  # the noise: a share of the trials' own variance
    assert {"total_mean", "interaction_std"} <= set(pd.read_csv(out / "pairs.csv").columns)
    assert set(pd.read_csv(out / "marginals.csv")["target"]) == {"error", "seconds"}
    claims = pd.read_csv(out / "claims.csv")
    assert set(claims["task"]) == {"toy", "novanilla"} and claims["evidence"].notna().all()


def test_report_text_says_what_was_skipped(report: Path):
    text = (report.parent / "report.md").read_text()
    assert "has no complete vanilla (V) trials" in text
    assert "paper's findings" in text


def test_report_opens_with_the_studys_own_settings(report: Path):
    text = (report.parent / "report.md").read_text()
    settings = text[text.index("## Study settings") : text.index("## The paper's findings")]
    for line in (
        "| description | synthetic: a known function of the hyperparameters plus noise |",
        "| trials per cell | 30 |",
        "| training | batch_size 16, max_epochs 10, patience 3 |",
        "| learning_rate | 1e-06 to 0.01, log scale (analysed in log10) |",
        "| hidden_size | 20 to 200, integers, log scale (analysed in log10) |",
    ):
        assert line in settings
    assert "trials trained with: odyssey synthetic" in settings and "This report: odyssey" in settings


def test_report_opens_in_plain_words_and_decides_on_corrected_tests(report: Path):
    text = (report.parent / "report.md").read_text()
    assert text.index("## In short") < text.index("## Study settings") < text.index("## The paper's findings")
    short = text[text.index("## In short") : text.index("## Study settings")]
    assert re.search(
        r"toy \(test error, lower is better; the difference to V with its 95% interval\): "
        r"worse than V: NFG \([0-9.]+ \[[0-9.]+, [0-9.]+\]\); not decided: NP, CIFG \(",
        short,
    ), short
    assert (
        "agree with the paper" in short
        and "'Not decided' means" in short
        and "novanilla: no variant could be compared with V" in short
    )
    stats = pd.read_csv(report.parent / "variant_stats.csv")
    tested = stats[stats["p"].notna()]
    assert len(tested) == 3 and (tested["p_adjusted"] >= tested["p"]).all()
    assert (tested["significant"] == (tested["p_adjusted"] < 0.05)).all()
    assert {
        "low",
        "high",
        "difference_sd",
        "all_difference",
        "all_low",
        "all_high",
        "margin",
        "p_equivalence_adjusted",
        "verdict",
    } <= set(stats.columns)
    claims = pd.read_csv(report.parent / "claims.csv")
    assert not claims["claim"].str.contains("NOAF").any()  # not in the study: no verdict on it
    assert "one standard deviation of V's best 10%: the study file states none" in text


def test_the_study_files_equivalence_margin_decides_the_report(tmp_path: Path):
    storage = optuna.storages.InMemoryStorage()
    write_synthetic_study(storage, name="demo", tasks=("toy",), variants=("V", "CIFG"), trials=40)
    study = tmp_path / "demo.toml"
    study.write_text(
        'name = "demo"\ntasks = ["toy"]\nvariants = ["V", "CIFG"]\ntrials = 40\n[analysis]\nequivalence_margin = 0.5\n'
    )
    out = build_report(storage=storage, name=None, out_dir=tmp_path / "out", study_file=study).parent
    cifg = pd.read_csv(out / "variant_stats.csv").set_index("variant").loc["CIFG"]
    assert cifg["margin"] == 0.5 and cifg["verdict"] == "equivalent"
    claims = pd.read_csv(out / "claims.csv").set_index("claim")
    assert claims.loc["CIFG is no different from V", "verdict"] == "agrees"
    assert "as the study file's [analysis] equivalence_margin states" in (out / "report.md").read_text()


def test_the_space_renders_any_kind_of_parameter():
    assert range_text({"choices": ["sgd", "adam"]}) == "one of [sgd, adam]"
    assert range_text({"low": 1, "high": 3, "log": False, "integer": True}) == "1 to 3, integers"
    assert (
        range_text({"low": 0.0, "high": 0.5, "step": 0.1, "when": "optimizer == 'sgd'"})
        == "0 to 0.5, step 0.1, when optimizer == 'sgd'"
    )
    assert range_text(0.9) == "fixed at 0.9"


def test_report_text_is_plain_and_counts_are_integers(report: Path):
    text = (report.parent / "report.md").read_text()
    assert "p < 0.05" in text and "&lt;" not in text and "&amp;" not in text
    assert "| V | 4,100 |" in text and "e+0" not in text
    importance = pd.read_csv(report.parent / "importance.csv")
    toy = importance[importance.task == "toy"]
    effects = toy[~toy.kind.isin(["rest", "noise"])]["mean"].tolist()
    assert effects == sorted(effects, reverse=True) and toy["kind"].iloc[-2:].tolist() == ["rest", "noise"]
    assert json.loads(toy["params"].iloc[0]) == ["learning_rate"] and set(toy["trials"]) == {120}
    assert {"low", "high", "floor", "distinguishable", "space"} <= set(toy.columns)


def test_figures_clip_training_time_label_colour_bars_and_keep_titles_apart(report: Path):
    terms = pd.read_csv(report.parent / "importance.csv").query("task == 'toy'")
    fig = plots.share_bars(terms)
    fig.canvas.draw()
    assert (
        fig.bbox.contains(*fig.axes[0].xaxis.label.get_window_extent().p1)
        and fig.axes[0].xaxis.label.get_window_extent().x0 >= 0
    )
    curves = pd.DataFrame(
        {"param": "p", "x": [0.0, 1.0], "mean": [1.0, 2.0], "std": [3.0, 0.5], "space": "all trials", "trials": 30}
    )
    fig = plots.marginal_curves(curves, metric="error", times=curves.copy())
    band = fig.axes[1].collections[0].get_paths()[0].vertices
    assert band[:, 1].min() >= 0.0 and fig.axes[1].get_ylim()[0] == 0.0  # seconds cannot be negative
    assert fig.axes[0].collections[0].get_paths()[0].vertices[:, 1].min() < 0.0  # the metric's band is not clipped
    choice = pd.DataFrame({"param": "optimizer", "x": [-0.5, 0.5, 1.5], "mean": [1.0, 2.0, 2.0], "std": 0.1})
    fig = plots.marginal_curves(choice, metric="error", choices={"optimizer": ("sgd", "adam")})
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["sgd", "adam"]  # choices, not their indices
    grid = np.linspace(0, 1, 5)
    x, y = np.meshgrid(grid, grid, indexing="ij")
    pairs = pd.concat(
        [
            pd.DataFrame(
                {
                    "param_x": a,
                    "param_y": b,
                    "x": x.ravel(),
                    "y": y.ravel(),
                    "total_mean": x.ravel() + y.ravel(),
                    "interaction_mean": x.ravel() * y.ravel(),
                }
            )
            for a, b in [("log10(learning_rate)", "log10(hidden_size)"), ("log10(learning_rate)", "input_noise")]
        ]
    )
    fig = plots.pair_heatmaps(pairs, metric="validation cross-entropy loss per frame (nats)")
    fig.canvas.draw()  # lay out: constrained layout places titles and colour bars
    colour_bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(colour_bars) == 4 and all(ax.get_ylabel() for ax in colour_bars)
    maps = [ax for ax in fig.axes if ax.get_title()]
    titles = [ax.title.get_window_extent() for ax in maps]
    assert len(titles) == 4 and not any(a.overlaps(b) for i, a in enumerate(titles) for b in titles[i + 1 :])
    # Each title stays over its own map, clear of the colour bar and the neighbouring map.
    for ax, title in zip(maps, titles):
        assert ax.get_window_extent().x0 <= title.x0 and title.x1 <= ax.get_window_extent().x1


def test_names_are_escaped_in_html_and_markdown(tmp_path: Path):
    storage = optuna.storages.InMemoryStorage()
    write_synthetic_study(
        storage,
        name="x",
        tasks=("<script>alert(1)</script>",),
        variants=("V", "<b>NFG"),
        trials=12,
        failed=0,
        running=0,
    )
    path = build_report(storage=storage, name="x", out_dir=tmp_path)
    page, markdown = path.read_text(), (tmp_path / "report.md").read_text()
    assert "<script>alert" not in page and "<b>NFG" not in page and "&lt;script" in page
    # Markdown: backslash escapes, which print as the plain character; no raw tag anywhere.
    assert not re.search(r"(?<!\\)<(script|b>)", markdown) and "\\<script>" in markdown


@pytest.mark.parametrize(
    ("setup", "match"),
    [
        ("missing", "does not exist"),
        ("empty", "holds no studies"),
        ("unknown", "no odyssey study named 'nope'.*it holds: a, b"),
        ("several", "several odyssey studies.*a, b"),
        ("unreachable", "cannot open storage"),
    ],
)
def test_bad_input_is_one_clear_error(tmp_path: Path, setup: str, match: str, storage_url):
    url = storage_url
    if setup in ("unknown", "several"):
        storage = optuna.storages.InMemoryStorage()
        for name in ("a", "b"):
            write_synthetic_study(storage, name=name, variants=("V",), trials=1, failed=0, running=0)
        url = storage
    elif setup == "empty":
        optuna.storages.RDBStorage(url)
    elif setup == "unreachable":
        url = "postgresql://user:secret@127.0.0.1:1/none"
    with pytest.raises(ValueError, match=match) as error:
        build_report(storage=url, name="nope" if setup == "unknown" else None, out_dir=tmp_path / "out")
    assert "\n" not in str(error.value) and "secret" not in str(error.value)


def _plain_study(url: str) -> None:
    """An Optuna study that odyssey did not write: its own names, a log-scaled parameter, one that does nothing."""

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
        dropout = trial.suggest_float("dropout", 0.0, 0.5)
        trial.suggest_float("wd", 0.0, 1.0)
        return abs(math.log10(lr) + 3) + dropout

    optuna.create_study(storage=url, study_name="plain", sampler=optuna.samplers.RandomSampler(seed=0)).optimize(
        objective, n_trials=40
    )


def test_importance_of_any_optuna_study(tmp_path: Path, capsys):
    url = f"sqlite:///{tmp_path / 'plain.db'}"
    _plain_study(url)
    table, spaces, pruned = study_importance(storage=url, study="plain", params=["lr", "dropout"])
    assert (
        pruned == 0
        and [s["trials"] for s in spaces] == [40]
        and set(table["term"])
        == {
            "log10(lr)",
            "dropout",
            "log10(lr) × dropout",
            "higher order",
            "noise",
        }
    )
    print_importance(storage=url, study="plain", fmt="json")
    data = json.loads(capsys.readouterr().out)
    assert data["spaces"][0]["trials"] == 40 and "log10 scale" in data["scales"]
    assert {"term", "kind", "mean", "std", "low", "high", "floor", "distinguishable", "trials"} <= set(data["terms"][0])
    assert data["terms"][0]["params"] == ["lr"] and data["terms"][0]["scale"] == "log10 scale"
    means = [t["mean"] for t in data["terms"] if t["kind"] not in ("rest", "noise")]
    assert means == sorted(means, reverse=True) and [t["term"] for t in data["terms"][-2:]] == ["higher order", "noise"]
    print_importance(storage=url, study="plain", fmt="csv")
    csv = capsys.readouterr().out
    assert (
        csv.startswith("term,kind,params,scale,mean,std,low,high,floor,distinguishable,space,trials")
        and '"[""lr""]"' in csv
    )
    print_importance(storage=url, study="plain", fmt="table", refits=0)
    shown = " ".join(capsys.readouterr().out.split())
    assert (
        "plain, all trials: variance shares over 40 trials" in shown
        and "Log-sampled parameters on their log10 scale" in shown
    )
    with pytest.raises(ValueError, match="unknown parameter.*the study has: dropout, lr, wd"):
        study_importance(storage=url, study="plain", params=["momentum"])
    with pytest.raises(ValueError, match="no study named 'other'.*plain"):
        study_importance(storage=url, study="other")


def test_report_command_writes_results_name_without_importing_torch(tmp_path: Path, root, storage_url):
    write_synthetic_study(storage_url, name="cli", variants=("V", "CIFG"), trials=12, failed=0, running=0)
    code = (
        f"import sys; sys.path.insert(0, {str(root)!r}); import cli\n"
        f"sys.argv = ['odyssey', 'report', '--storage', {storage_url!r}]\n"
        "try:\n    cli.main()\nexcept SystemExit as end:\n    assert not end.code, end.code\n"
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"wrote {tmp_path}/cli/report.html"  # the storage's only study, in <name>/ beside it
    assert (tmp_path / "cli/report.md").is_file()


def test_a_default_report_folder_of_another_storage_is_not_overwritten(tmp_path: Path):
    from odyssey.analysis.report import build_report
    from odyssey.errors import OdysseyError

    first, second = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    for url in (first, second):
        write_synthetic_study(url, name="same", variants=("V", "CIFG"), trials=12, failed=0, running=0)
    assert build_report(storage=first, name=None, out_dir=None, refits=0) == tmp_path / "same" / "report.html"
    build_report(storage=first, name=None, out_dir=None, refits=0)  # its own folder: rewritten
    with pytest.raises(
        OdysseyError, match=r"holds the report of another storage \(sqlite:///.*a\.db\); choose a folder with --out"
    ):
        build_report(storage=second, name=None, out_dir=None, refits=0)
    assert build_report(storage=second, name=None, out_dir=tmp_path / "b", refits=0) == tmp_path / "b" / "report.html"


def test_command_errors_are_one_line(tmp_path: Path, cli):
    args = ["importance", "--storage", f"sqlite:///{tmp_path / 'missing.db'}", "--study", "x"]
    done = cli(*args, check=False)
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1 and "does not exist" in done.stderr


def test_analysis_never_imports_torch(root):
    code = (
        "import importlib, pkgutil, sys, odyssey.analysis as a\n"
        "for m in pkgutil.iter_modules(a.__path__): importlib.import_module(f'odyssey.analysis.{m.name}')\n"
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)


def test_report_analyses_conditional_parameters_where_they_exist(tmp_path: Path):
    storage = optuna.storages.InMemoryStorage()
    write_synthetic_study(storage, name="cond", variants=("V", "NFG"), trials=30, failed=0, running=0, conditional=True)
    path = build_report(storage=storage, name="cond", out_dir=tmp_path, refits=2)
    trials = pd.read_csv(tmp_path / "trials.csv")
    sgd = int(trials["params_momentum"].notna().sum())
    importance = pd.read_csv(tmp_path / "importance.csv")
    assert dict(importance.groupby("space")["trials"].first()) == {
        "all trials": 60,
        "trials with momentum (optimizer = sgd)": sgd,
    }
    whole = importance[importance.space == "all trials"]
    assert "optimizer" in set(whole["term"]) and not any("momentum" in json.loads(p) for p in whole["params"])
    text = (tmp_path / "report.md").read_text()
    assert (
        f"#### Sub-space: trials with momentum (optimizer = sgd) ({sgd} trials)" in text
        and "#### All trials (60 trials)" in text
    )
    assert "| optimizer | one of [sgd, adam] |" in text and "| momentum | 0 to 0.99, when optimizer = sgd |" in text
    assert path.is_file()


def test_a_far_value_is_written_at_the_edge_of_the_variant_boxes_not_drawn_to_scale():
    """An untrained handwriting network at a test CER of 13.3 squashed every box of the all-trials
    panel, whose other trials lay between 0.4 and 1.6, into a line."""
    from odyssey.analysis.variant_stats import best_trials, variant_tests

    rng = np.random.default_rng(0)
    rows = [
        {"task": "t", "variant": v, "number": n, "value": x, "test_metric": x, "parameter_count": 100.0}
        for v in ("V", "NFG")
        for n, x in enumerate(rng.uniform(0.4, 1.6, 40))
    ]
    plain = pd.DataFrame(rows)
    far = pd.concat(
        [plain, pd.DataFrame([{**rows[0], "number": 99, "value": 50.0, "test_metric": 50.0}])], ignore_index=True
    )
    for frame, expected in ((plain, []), (far, ["1 off the scale: 50"])):
        fig = plots.variant_boxplots(frame, best_trials(frame), variant_tests(frame), metric="cer")
        ax = fig.axes[0]
        assert [t.get_text() for t in ax.texts] == expected
        low, high = ax.get_ylim()
        assert low <= plain["test_metric"].min() and plain["test_metric"].max() <= high < 2.0


def test_the_variant_figure_is_the_same_each_time_it_is_drawn_from_the_same_trials(tmp_path):
    """seaborn's stripplot spread the dots with numpy's global generator, so the committed replication
    report changed its figures every time it was regenerated from unchanged storage."""
    from odyssey.analysis.variant_stats import best_trials, variant_tests

    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        [
            {"task": "t", "variant": v, "number": n, "value": x, "test_metric": x, "parameter_count": 100.0}
            for v in ("V", "NP")
            for n, x in enumerate(rng.uniform(0.4, 1.0, 30))
        ]
    )
    drawn = []
    for seed in (1, 2):
        np.random.seed(seed)  # whatever else in the process used the global generator
        drawn.append(
            plots.png_bytes(plots.variant_boxplots(frame, best_trials(frame), variant_tests(frame), metric="cer"))
        )
    assert drawn[0] == drawn[1]
    dots = (
        plots.variant_boxplots(frame, best_trials(frame), variant_tests(frame), metric="cer")
        .axes[0]
        .collections[-1]
        .get_offsets()
    )
    assert len(dots) == len(frame) and sorted(np.asarray(dots)[:, 1]) == sorted(frame["test_metric"])
    assert np.all(np.abs(np.asarray(dots)[:, 0] - np.repeat([0, 1], 30)) <= 0.2)  # over its own variant's box


def test_the_report_is_built_in_memory_and_written_at_the_end(tmp_path, monkeypatch):
    """A report that fails while it is built leaves no half-written folder; one that does not writes
    exactly the files it assembled."""
    from odyssey.analysis import report as report_module
    from odyssey.analysis.study_analysis import analyse_study
    from odyssey.analysis.trials import load_odyssey_trials

    storage = optuna.storages.InMemoryStorage()
    write_synthetic_study(storage, name="demo", tasks=("toy",), variants=("V", "NFG"), trials=30)

    def broken(*args, **kwargs):
        raise RuntimeError("the last step fails")

    with monkeypatch.context() as patch:
        patch.setattr(report_module, "to_html", broken)
        with pytest.raises(RuntimeError, match="the last step fails"):
            build_report(storage=storage, name=None, out_dir=tmp_path / "failed", refits=0)
    assert [p for p in (tmp_path / "failed").rglob("*")] == []

    assembled = report_module.assemble_report(
        analyse_study(load_odyssey_trials(storage, "demo"), refits=0), source="memory"
    )
    files = assembled.files()
    assert {p.name for p in tmp_path.iterdir()} == {"failed"}  # nothing written yet
    out = tmp_path / "out"
    assert report_module.write_report(assembled, out=out) == out / "report.html"
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == files
    assert sum(p.parent.name == "figures" for p in files) >= 2 and files[Path(".storage")] == b"memory\n"


@pytest.fixture(scope="module")
def pruned_report(tmp_path_factory) -> tuple[Path, optuna.storages.BaseStorage]:
    """Task toy: V and NFG, 120 trials each, 8 epochs, Optuna's successive halving (rungs at epochs 1, 2,
    4); task flat: V alone, 20 trials of 3 epochs trained to the end, curves but no pruner."""
    storage = optuna.storages.InMemoryStorage()
    halving = optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=2)
    write_synthetic_study(
        storage, name="p", tasks=("toy",), variants=("V", "NFG"), trials=120, epochs=8, pruner=halving
    )
    write_synthetic_study(storage, name="p", tasks=("flat",), variants=("V",), trials=20, epochs=3, seed=1)
    out = tmp_path_factory.mktemp("pruned") / "out"
    return build_report(storage=storage, name="p", out_dir=out, trees=16, refits=4), storage


def _finished(storage, task: str, variant: str) -> list[optuna.trial.FrozenTrial]:
    trials = optuna.load_study(study_name=f"p/{task}/{variant}", storage=storage).trials
    return [t for t in trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]


def test_a_pruned_study_counts_its_pruned_trials_and_tests_variants_on_the_complete_ones(pruned_report):
    report, storage = pruned_report
    out = report.parent
    cells = pd.read_csv(out / "cells.csv").set_index(["task", "variant"])
    stats = pd.read_csv(out / "variant_stats.csv").set_index(["task", "variant"])
    for variant in ("V", "NFG"):
        states = pd.Series([t.state.name for t in _finished(storage, "toy", variant)]).value_counts()
        assert cells.loc[("toy", variant), ["complete", "pruned", "failed"]].tolist() == [
            states["COMPLETE"],
            states["PRUNED"],
            1,
        ]
        assert stats.loc[("toy", variant), "complete"] == states["COMPLETE"] and states["PRUNED"] > 50
    text = (out / "report.md").read_text()
    assert "pruned trials (stopped early by the study's pruner) enter the learning curves" in text
    assert "| variant | parameters | complete | pruned |" in text
    # The full budget's importance says whose it is: the trials the pruner kept (task toy only).
    assert text.count("so these shares describe the region it kept, not the whole space") == 1


def test_a_pruned_study_reports_importance_across_budgets_with_its_table_and_figures(pruned_report):
    report, storage = pruned_report
    out = report.parent
    table = pd.read_csv(out / "importance_by_budget.csv")
    toy = table[table["task"] == "toy"]
    assert sorted(toy["budget"].unique()) == [1, 2, 4, 8]  # the pruner's rungs and the full budget
    finished = _finished(storage, "toy", "V") + _finished(storage, "toy", "NFG")
    for budget, trials in toy.groupby("budget")["trials"].first().items():
        assert trials == sum(max(t.intermediate_values) >= budget for t in finished), budget
    mains = toy[toy["kind"] == "main"]
    assert mains["floor"].notna().all() and (mains["low"] <= mains["mean"] + 1e-12).all()
    assert toy.loc[toy["budget"] == 8, "trial_rank_correlation"].eq(1.0).all()
    assert toy.loc[toy["budget"] == 1, "trial_rank_correlation"].between(-1, 1).all()
    assert sorted(table.loc[table["task"] == "flat", "budget"].unique()) == [1, 2, 3]  # every epoch, unpruned
    text = (out / "report.md").read_text()
    assert text.count("### Importance across budgets") == 2 and text.count("### Learning curves") == 2
    for stem in ("01-flat", "02-toy"):
        assert (out / "figures" / f"{stem}-budgets.png").is_file() and (
            out / "figures" / f"{stem}-curves.png"
        ).is_file()
    assert re.search(r"(From epoch \d+ on|keeps changing|cannot be said)", text)


def test_the_learning_curves_table_holds_the_quartiles_the_figure_draws(pruned_report):
    report, storage = pruned_report
    curves = pd.read_csv(report.parent / "learning_curves.csv").set_index(["task", "variant", "step"])
    for step in (1, 2, 5, 8):
        values = [t.intermediate_values[step] for t in _finished(storage, "toy", "V") if step in t.intermediate_values]
        row = curves.loc[("toy", "V", step)]
        assert row["trials"] == len(values)
        quartiles = np.quantile(values, [0.25, 0.5, 0.75])
        assert row[["q25", "median", "q75"]].tolist() == pytest.approx(quartiles, rel=1e-5)  # CSVs: 6 digits


def test_a_study_without_curves_has_no_budget_section_and_empty_budget_tables(report: Path):
    out = report.parent
    assert pd.read_csv(out / "importance_by_budget.csv").empty and pd.read_csv(out / "learning_curves.csv").empty
    assert "Importance across budgets" not in (out / "report.md").read_text()
    assert not list((out / "figures").glob("*-budgets.png")) and not list((out / "figures").glob("*-curves.png"))
