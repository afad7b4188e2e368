"""The published replication (replication/README.md) stays true to its committed storage and this code.

The storage under replication/ is the run itself; the report in replication/report/ was written from it.
These tests open a copy of the storage with the current code, check that the run can go on from it
with replication/study.toml, regenerate the report and compare its tables with the committed
ones, and check the document's numbers against them.
"""

from __future__ import annotations

import importlib.util
import math
import re
import sqlite3
from pathlib import Path

import optuna
import pandas as pd
import pytest

from odyssey.analysis.report import build_report
from odyssey.record import cell_name
from odyssey.storage import open_storage
from odyssey.study.cells import prepare
from odyssey.study.studyfile import load_study_file

ROOT = Path(__file__).resolve().parents[2]
STORAGE = ROOT / "replication" / "replication.db"
REPORT = ROOT / "replication" / "report"
DOCUMENT = ROOT / "replication" / "README.md"
STUDY = ROOT / "replication" / "study.toml"
URL = "sqlite:///replication/replication.db"  # as the committed report names it
TABLES = ["cells.csv", "variant_stats.csv", "claims.csv", "importance.csv", "pairs.csv", "marginals.csv", "trials.csv"]


@pytest.fixture(scope="module")
def copy(tmp_path_factory) -> Path:
    """A copy of the committed storage at the same relative path, so nothing here writes to it."""
    root = tmp_path_factory.mktemp("replication")
    (root / "replication").mkdir()
    source = sqlite3.connect(f"file:{STORAGE}?mode=ro", uri=True)
    target = sqlite3.connect(root / "replication" / "replication.db")
    source.backup(target)
    target.close()
    source.close()
    return root


@pytest.fixture(scope="module")
def regenerated(copy: Path, tmp_path_factory, monkeypatch_module) -> Path:
    monkeypatch_module.chdir(copy)
    out = tmp_path_factory.mktemp("report")
    build_report(storage=URL, name=None, out_dir=out, study_file=STUDY)
    return out


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_the_committed_storage_is_this_study_file_and_the_run_can_go_on(copy: Path):
    spec = load_study_file(STUDY)
    storage = open_storage(f"sqlite:///{copy / 'replication' / 'replication.db'}")
    for task, variant in spec.cells():
        study = optuna.load_study(study_name=cell_name(spec.name, task, variant), storage=storage)
        assert study.user_attrs["study_hash"] == spec.digest(), f"{task}/{variant} was run from another study file"
    before = {s.study_name: s.n_trials for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}
    prepare(spec, storage)  # what `odyssey run` does first: refuses a changed file, queues nothing twice
    after = {s.study_name: s.n_trials for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}
    assert after == before and len(after) == len(spec.cells())
    assert all(n <= spec.trials + spec.retries * spec.trials for n in after.values())


def test_the_committed_report_regenerates_from_the_committed_storage(regenerated: Path):
    for table in TABLES:
        committed, fresh = pd.read_csv(REPORT / table), pd.read_csv(regenerated / table)
        assert list(fresh.columns) == list(committed.columns), table
        assert len(fresh) == len(committed), f"{table}: {len(fresh)} rows regenerated, {len(committed)} committed"
        for column in committed.columns:
            if pd.api.types.is_numeric_dtype(committed[column]) and pd.api.types.is_numeric_dtype(fresh[column]):
                pd.testing.assert_series_equal(
                    fresh[column], committed[column], check_exact=False, rtol=1e-6, atol=1e-9, obj=f"{table}:{column}"
                )
            else:
                assert (
                    fresh[column].fillna("").astype(str).tolist() == committed[column].fillna("").astype(str).tolist()
                ), f"{table}:{column}"
    assert sorted(p.name for p in (regenerated / "figures").iterdir()) == sorted(
        p.name for p in (REPORT / "figures").iterdir()
    )


def _p(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:.2g}" if value >= 0.001 else "< 0.001"


def _verdict(row: pd.Series) -> str:
    if not math.isfinite(row["p"]):
        return "untested"
    return {"worse": "**worse**", "better": "**better**", "equivalent": "the same"}.get(row["verdict"], "not decided")


def _interval(row: pd.Series) -> str:
    return (
        f"{row['difference']:+.3g} [{row['low']:+.3g}, {row['high']:+.3g}]"
        if math.isfinite(row["difference"])
        else "n/a"
    )


def test_the_documents_numbers_are_the_reports():
    """Every row of the document's variant and claim tables is the committed report's, as the document prints it."""
    text = DOCUMENT.read_text()
    tests = pd.read_csv(REPORT / "variant_stats.csv")
    rows = re.findall(r"^\| (chorales|speech|handwriting) \| ([A-Z][A-Z0-9+]*) \| (.+) \|$", text, flags=re.M)
    assert {task for task, *_ in rows} == set(tests["task"]), "replication/README.md has no variant table for some task"
    for task, variant, rest in rows:
        row = tests[(tests["task"] == task) & (tests["variant"] == variant)]
        assert len(row) == 1, f"{task}/{variant} is not in the report"
        row = row.iloc[0]
        cells = [c.strip() for c in rest.split("|")]
        assert cells[0] == f"{int(row['complete'])}", f"{task}/{variant}: complete trials"
        assert cells[1] == (f"{row['mean']:.4g}" if math.isfinite(row["mean"]) else "n/a"), (
            f"{task}/{variant}: mean of the best 10%"
        )
        if variant != "V":
            assert cells[2] == _interval(row), f"{task}/{variant}: difference and its interval"
            assert cells[3] == _p(row["p"]) and cells[4] == _p(row["p_adjusted"]), (
                f"{task}/{variant}: p, raw and Holm-adjusted"
            )
            assert cells[5] == _verdict(row), f"{task}/{variant}: verdict"
    claims = pd.read_csv(REPORT / "claims.csv")
    quoted = 0
    for claim, verdicts in claims.groupby("claim", sort=False):
        line = re.search(rf"^\| {re.escape(claim)} \| (.+) \|$", text, flags=re.M)
        assert line, f"replication/README.md does not give the verdicts on {claim!r}"
        by_task = dict(zip(verdicts["task"], verdicts["verdict"]))
        assert [c.strip() for c in line.group(1).split("|")] == [
            by_task.get(t, "—") for t in ("chorales", "speech", "handwriting")
        ], claim
        quoted += 1
    assert quoted == claims["claim"].nunique()
    for figure in re.findall(r"\]\((report/figures/[^)]+)\)", text):
        assert (DOCUMENT.parent / figure).is_file(), f"replication/README.md shows {figure}, which is not committed"


@pytest.fixture(scope="module")
def supplement():
    location = ROOT / "replication" / "supplement.py"
    module = importlib.util.spec_from_file_location("replication_supplement", location)
    loaded = importlib.util.module_from_spec(module)
    module.loader.exec_module(loaded)
    return loaded


def test_the_documents_other_numbers_are_what_its_script_writes(regenerated: Path, supplement):
    """Every block replication/supplement.py --write fills (its own tables, the status, the cost, the
    claims and variant tables, the retraining on the same configurations), computed from the committed
    storage, the regenerated report and the committed retraining output, is the document's."""
    text = DOCUMENT.read_text()
    quoted = supplement.blocks(URL, regenerated)  # the working directory is the copy's (see `regenerated`)
    assert {
        "status",
        "cost",
        "table:claims",
        "table:count",
        "table:step",
        "table:handwriting",
        "table:each",
        "table:each-40",
    } <= set(quoted)
    for name, block in quoted.items():
        shown = re.search(rf"<!-- {re.escape(name)} -->\n(.*?)<!-- end -->", text, flags=re.S)
        assert shown, f"replication/README.md has no {name} block"
        assert shown.group(1).strip() == block, f"replication/README.md's {name} block is not what supplement.py writes"
    # The README's "Does it find what the paper found?" paragraph is the same counts, written by the same script.
    readme = (ROOT / "README.md").read_text()
    for name, block in supplement.readme_blocks(URL, regenerated).items():
        shown = re.search(rf"<!-- {re.escape(name)} -->\n(.*?)<!-- end -->", readme, flags=re.S)
        assert shown and shown.group(1).strip() == block, (
            f"README.md's {name} paragraph is not what supplement.py writes"
        )


def test_a_retraining_that_came_back_different_is_refused_not_averaged(tmp_path: Path, supplement):
    """The same run printed twice (V in both halves of a --from each retraining) comes from the same seed;
    two different results mean the halves ran on different code or machines, and the table would mix them."""
    header = "variant | trial (of its cell) | hidden | stored test | retrained test | epochs | best epoch | seconds"
    half = [
        header,
        "V | NP 33 | 139 | - | 0.5692 | 12 | 11 | 51",
        "NFG | NP 33 | 139 | - | diverged: training loss became nan in epoch 3 | | | 7",
    ]
    agreeing = tmp_path / "agreeing.txt"
    agreeing.write_text("\n".join(half + half + ["V | NOG 8 | 163 | - | 0.6305 | 12 | 12 | 55"]))
    runs = supplement._runs(agreeing)
    assert len(runs) == 3 and runs["test"].isna().sum() == 1
    table = supplement._same_configurations(agreeing).splitlines()
    assert (
        table[2].startswith("| V | 2 of 2 | 0.5998 |")
        and table[3] == "| NFG | 0 of 1 | n/a | n/a | n/a | n/a | 0 of 0 |"
    )
    differing = tmp_path / "differing.txt"
    differing.write_text("\n".join(half + [half[1].replace("0.5692", "0.5693")]))
    with pytest.raises(SystemExit, match=r"differing.txt: V on NP 33 retrained to 0.5692 and to 0.5693"):
        supplement._runs(differing)
