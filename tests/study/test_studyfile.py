"""Study files: what loads, and the one-line errors for what does not."""

import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from odyssey.study.space import PAPER_SPACE
from odyssey.study.studyfile import StudyFileError, load_study_file
from odyssey.studytoml import load_analysis_settings

GOOD = """
name = "demo"
tasks = ["adding"]
variants = ["V", "CIFG+NP"]
trials = 3
seed = 7
[training]
batch_size = 4
max_epochs = 2
patience = 1
[space]
learning_rate = { low = 1e-4, high = 1e-1, log = true }
hidden_size = 8
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "study.toml"
    path.write_text(text)
    return path


def test_a_good_file_loads_with_the_paper_space_as_default(tmp_path):
    spec = load_study_file(write(tmp_path, GOOD))
    assert spec.name == "demo" and spec.cells() == [("adding", "V"), ("adding", "CIFG+NP")]
    assert spec.training.batch_size == 4 and spec.training.patience == 1
    assert spec.space["learning_rate"].high == 1e-1
    assert spec.space["hidden_size"].low == spec.space["hidden_size"].high == 8
    assert spec.space["input_noise"] == PAPER_SPACE["input_noise"]
    assert spec.default_storage == "sqlite:///results/demo.db"


def test_the_digest_ignores_formatting_but_not_content(tmp_path):
    a = load_study_file(write(tmp_path, GOOD))
    b = load_study_file(write(tmp_path, "# a comment\n" + GOOD.replace("trials = 3", "trials   =   3")))
    c = load_study_file(write(tmp_path, GOOD.replace("seed = 7", "seed = 8")))
    assert a.digest() == b.digest() != c.digest()
    d = load_study_file(write(tmp_path, GOOD.replace("seed = 7", "seed = 7\nretries = 9")))
    assert d.retries == 9 and a.retries == 3 and d.digest() == a.digest()  # how to run it, not what it finds


def test_analysis_settings_are_not_part_of_the_studys_identity(tmp_path, root):
    """A margin is how the report reads the trials: stating or changing it must not make the stored
    study another one (the committed replication storage still opens with its file)."""
    plain = load_study_file(write(tmp_path, GOOD))
    assert plain.analysis.equivalence_margin is None
    one = load_study_file(write(tmp_path, GOOD + "\n[analysis]\nequivalence_margin = 0.02\n"))
    per_task = load_study_file(write(tmp_path, GOOD + "\n[analysis.equivalence_margin]\nadding = 1\n"))
    assert one.analysis.equivalence_margin == 0.02 and per_task.analysis.equivalence_margin == {"adding": 1.0}
    assert plain.digest() == one.digest() == per_task.digest() and "analysis" not in one.canonical()
    assert load_analysis_settings(tmp_path / "study.toml") == per_task.analysis
    replication = load_study_file(root / "replication" / "study.toml")
    assert replication.digest() == "8adb00e506f4fe4b"  # the study_hash every cell of replication/replication.db stores


@pytest.mark.parametrize(
    "change, message",
    [
        (("trials = 3", "trials = 3\nepochs = 4"), "unknown key 'epochs'"),
        (("batch_size = 4", "batch_size = 4\nlr = 1"), "unknown key 'training.lr'"),
        (("trials = 3", 'trials = "many"'), "'trials' must be an integer"),
        (("trials = 3", "trials = 0"), "'trials' must be between 1 and 10,000"),
        (("trials = 3", "trials = 3\nretries = -1"), "'retries' must be 0 or more"),
        (("trials = 3", "trials = 3\nretries = 1.5"), "'retries' must be an integer"),
        (("batch_size = 4", "batch_size = 1.5"), "'training.batch_size' must be an integer"),
        (('["adding"]', '["nope"]'), "unknown task 'nope'"),
        (('"CIFG+NP"', '"XYZ"'), "unknown variant 'XYZ'"),
        (("low = 1e-4, high = 1e-1", "low = 1e-1, high = 1e-4"), "empty range: low 0.1 > high 0.0001"),
        (("low = 1e-4", "low = 0"), "log-scaled, so low must be > 0"),
        (("hidden_size = 8", "hidden_size = 8.5"), "whole numbers"),
        (("hidden_size = 8", "drop_out = 0.1"), "unknown key 'space.drop_out'"),
        (('name = "demo"', 'name = "a/b"'), "'name' must be letters"),
        (('variants = ["V", "CIFG+NP"]', 'variants = ["V", "V"]'), "lists a name twice"),
        (("seed = 7", "seed = 7\n[task_options.vowels]\nx = 1"), "task the study does not run"),
        (("seed = 7", "seed = 7\n[analysis]\nmargin = 0.1"), "unknown key 'analysis.margin'"),
        (
            ("seed = 7", "seed = 7\n[analysis]\nequivalence_margin = 0"),
            "'analysis.equivalence_margin' must be a number > 0",
        ),
        (
            ("seed = 7", 'seed = 7\n[analysis]\nequivalence_margin = "small"'),
            "'analysis.equivalence_margin' must be a number > 0",
        ),
        (
            ("seed = 7", "seed = 7\n[analysis]\nequivalence_margin = true"),
            "'analysis.equivalence_margin' must be a number > 0",
        ),
        (
            ("seed = 7", "seed = 7\n[analysis.equivalence_margin]\nadding = -1"),
            "'analysis.equivalence_margin.adding' must be a number > 0",
        ),
        (
            ("seed = 7", "seed = 7\n[analysis.equivalence_margin]\nvowels = 0.1"),
            "'analysis.equivalence_margin.vowels' is for a task the study does not run",
        ),
        (("seed = 7", "seed = 7\nanalysis = 3"), "'analysis' must be a table"),
    ],
)
def test_bad_files_give_one_line_errors_naming_file_and_key(tmp_path, change, message):
    path = write(tmp_path, GOOD.replace(*change))
    with pytest.raises(StudyFileError) as err:
        load_study_file(path)
    text = str(err.value)
    assert message in text and str(path) in text and "\n" not in text


def test_missing_keys_malformed_toml_and_missing_files(tmp_path):
    with pytest.raises(StudyFileError, match="missing key 'trials'"):
        load_study_file(write(tmp_path, GOOD.replace("trials = 3", "")))
    with pytest.raises(StudyFileError, match="not valid TOML"):
        load_study_file(write(tmp_path, GOOD + "\n[training\n"))
    with pytest.raises(StudyFileError, match="no such study file"):
        load_study_file(tmp_path / "absent.toml")


def test_shipped_studies_load(tmp_path, monkeypatch, root):
    # As on a clean clone: the example data is written by its script, relative paths from the checkout.
    for folder in ("examples", "studies"):
        shutil.copytree(root / folder, tmp_path / folder, ignore=shutil.ignore_patterns("*.npz", "__pycache__"))
    subprocess.run([sys.executable, "examples/make_npz.py"], cwd=tmp_path, check=True, capture_output=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter(
            "error"
        )  # their paths are written from their own folder: no "found in the current folder" warning
        for path in sorted(tmp_path.joinpath("studies").glob("*.toml")):
            spec = load_study_file(path)
            assert spec.cells(), path
    assert set(load_study_file(tmp_path / "studies/mytask.toml").task_sources) == {"waves"}


def test_tasks_of_your_own_need_a_source_and_a_name_of_their_own(tmp_path):
    with pytest.raises(
        StudyFileError, match="unknown task 'mine'.*or a task of your own with \\[task_options.mine\\] source"
    ):
        load_study_file(write(tmp_path, GOOD.replace('["adding"]', '["mine"]')))
    with pytest.raises(StudyFileError, match="task 'adding' is built in"):
        load_study_file(write(tmp_path, GOOD + '[task_options.adding]\nsource = "files"\n'))
    with pytest.raises(StudyFileError, match="'source' must be \"files\" or an import path"):
        load_study_file(
            write(tmp_path, GOOD.replace('["adding"]', '["mine"]') + '[task_options.mine]\nsource = "data.npz"\n')
        )
    with pytest.raises(StudyFileError, match="source \"files\" needs option 'path'"):
        load_study_file(
            write(tmp_path, GOOD.replace('["adding"]', '["mine"]') + '[task_options.mine]\nsource = "files"\n')
        )
    with pytest.raises(StudyFileError, match="no such file or folder"):
        load_study_file(
            write(
                tmp_path,
                GOOD.replace('["adding"]', '["mine"]') + '[task_options.mine]\nsource = "files"\npath = "absent.npz"\n',
            )
        )


def test_a_byte_order_mark_at_the_start_of_a_study_file_is_read(tmp_path):
    """Issue 25: a UTF-8 BOM (Windows editors write one) was 'Invalid statement'."""
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + b'name = "bom"\ntasks = ["vowels"]\nvariants = ["V"]\ntrials = 1\n')
    assert load_study_file(path).name == "bom"


def test_a_number_of_trials_that_would_take_days_to_queue_is_refused_with_the_reason(tmp_path):
    """Issue 25: trials = 100000000 queued silently at about 90 a second."""
    path = tmp_path / "huge.toml"
    path.write_text('name = "huge"\ntasks = ["vowels"]\nvariants = ["V"]\ntrials = 100000000\n')
    with pytest.raises(
        StudyFileError,
        match=r"'trials' must be between 1 and 10,000 per \(task, variant\), got 100,000,000; every trial is queued",
    ):
        load_study_file(path)
    path.write_text(path.read_text().replace("100000000", "10000"))
    assert load_study_file(path).trials == 10_000
