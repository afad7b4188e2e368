"""Your own data and your own task: .npz files, long tables, factories; every bad-data case is one line."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch

from odyssey.errors import ConfigError, DataError
from odyssey.model.network import SequenceNetwork
from odyssey.study.studyfile import StudyFileError, load_study_file
from odyssey.tasks import make_task


@pytest.fixture(autouse=True)
def forget_factories(cache):
    """Task data in the test's own cache; each test writes its own factory package, forgotten after it."""
    yield
    for name in ("mypkg", "mypkg.tasks"):  # each test writes its own factory package
        sys.modules.pop(name, None)


def sequences(n=30, features=2, seed=0, low=3, high=9):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(low, high, n)
    return rng.normal(5.0, 3.0, (int(lengths.sum()), features)).astype(np.float32), lengths


def write_npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def frame_class_arrays(n=30, seed=0):
    inputs, lengths = sequences(n, seed=seed)
    return {"inputs": inputs, "lengths": lengths, "frame_labels": (inputs[:, 0] > 5).astype(np.int64)}


def files_task(path, **options):
    return make_task("mine", source="files", path=str(path), **options)


def targets_of(task, split):
    return [t for t in task._targets[split]]


# --- every kind ----------------------------------------------------------------------------------


def test_frame_labels_make_a_framewise_classification_standardised_with_training_statistics(tmp_path):
    arrays = frame_class_arrays(40)
    task = files_task(write_npz(tmp_path / "d.npz", **arrays), bidirectional=True)
    assert (task.name, task.metric_name, task.output_size, task.bidirectional) == ("mine", "frame_error", 2, True)
    assert [task.sizes()[s] for s in ("train", "validation", "test")] == [32, 4, 4]
    frames = torch.cat([b.inputs[: int(n), i] for b in task.batches("train", 8) for i, n in enumerate(b.lengths)])
    assert frames.mean(0).abs().max() < 1e-5 and (frames.std(0, unbiased=False) - 1).abs().max() < 1e-4
    # the labels travel with their own frames: label = (raw feature 0 > 5) still holds after scaling
    for batch in task.batches("validation", 4):
        raw = batch.inputs[..., 0] * task.input_std[0] + task.input_mean[0]
        valid = batch.targets != -100
        assert ((raw > 5).long()[valid] == batch.targets[valid]).all()


def test_labels_make_a_sequence_classification_read_from_both_directions(tmp_path):
    inputs, lengths = sequences(30)
    labels = np.arange(30) % 3
    task = files_task(write_npz(tmp_path / "d.npz", inputs=inputs, lengths=lengths, labels=labels), bidirectional=True)
    assert (task.metric_name, task.output_size, task.readout) == ("error_rate", 3, "last")
    batch = next(task.batches("train", 5))
    assert batch.targets.shape == (5,)
    torch.manual_seed(0)
    net = SequenceNetwork(
        input_size=2, hidden_size=4, output_size=3, variant="V", bidirectional=True, readout=task.readout
    )
    out = net(batch.inputs, batch.lengths)
    features, _ = net.lstm(batch.inputs, lengths=batch.lengths)
    b = int(batch.lengths.argmin())
    last = int(batch.lengths[b]) - 1
    whole = torch.cat([features[last, b, :4], features[0, b, 4:]])  # forward's last step, backward's first
    assert torch.allclose(out[last, b], net.head(whole), atol=1e-6)
    errors, count = task.metric(out, batch)
    assert count == 5 and 0 <= errors <= 5


def test_frame_targets_are_regression_or_multilabel_when_all_zero_or_one(tmp_path):
    inputs, lengths = sequences(20)
    real = write_npz(tmp_path / "real.npz", inputs=inputs, lengths=lengths, frame_targets=inputs[:, :1] * 2.0)
    binary = write_npz(
        tmp_path / "binary.npz", inputs=inputs, lengths=lengths, frame_targets=(inputs > 5).astype(np.float32)
    )
    regression, multilabel = files_task(real), files_task(binary)
    assert (regression.metric_name, regression.output_size) == ("mse", 1)
    assert (multilabel.metric_name, multilabel.output_size) == ("nll", 2)
    batch = next(regression.batches("train", 4))
    zero = torch.zeros(batch.inputs.shape[0], batch.size, 1)
    total, count = regression.metric(zero, batch)
    assert count == int(batch.lengths.sum()) and total == pytest.approx(float((batch.targets**2).sum()), rel=1e-5)
    forced = files_task(binary, kind="frame_regression")
    assert forced.metric_name == "mse"


def test_label_sequences_make_a_ctc_task_with_the_blank_added(tmp_path):
    inputs, lengths = sequences(20, low=4, high=8)
    label_lengths = np.minimum(lengths, 3)
    rng = np.random.default_rng(1)
    flat = rng.integers(0, 4, int(label_lengths.sum()))
    task = files_task(
        write_npz(tmp_path / "d.npz", inputs=inputs, lengths=lengths, label_sequences=flat, label_lengths=label_lengths)
    )
    assert (task.metric_name, task.output_size) == ("cer", 5)
    all_targets = np.concatenate([t for s in ("train", "validation", "test") for t in task._targets[s]])
    assert all_targets.min() >= 1 and sorted(np.unique(all_targets - 1)) == sorted(np.unique(flat))


def test_a_split_array_or_a_folder_fixes_the_split_and_carving_is_seeded(tmp_path):
    arrays = frame_class_arrays(30)
    split = np.array([0] * 20 + [1] * 4 + [2] * 6)
    task = files_task(write_npz(tmp_path / "s.npz", **arrays, split=split))
    assert [task.sizes()[s] for s in ("train", "validation", "test")] == [20, 4, 6]
    carved = tmp_path / "c.npz"
    write_npz(carved, **arrays)
    a, b, c = files_task(carved), files_task(carved), files_task(carved, split_seed=1)
    lengths = lambda t: [len(x) for x in t._inputs["test"]]  # noqa: E731
    assert lengths(a) == lengths(b) and [len(x) for x in a._inputs["train"]] != [len(x) for x in c._inputs["train"]]
    assert files_task(carved, validation_fraction=0.3, test_fraction=0.2).sizes()["validation"] == 9
    folder = tmp_path / "folder"
    folder.mkdir()
    for number, name in enumerate(("train", "validation", "test")):
        write_npz(folder / f"{name}.npz", **frame_class_arrays(10 + number, seed=number))
    task = files_task(folder)
    assert [task.sizes()[s] for s in ("train", "validation", "test")] == [10, 11, 12]
    write_npz(folder / "test.npz", **frame_class_arrays(12), split=np.zeros(12, np.int64))
    with pytest.raises(DataError, match="test.npz: array 'split'.*the split already"):
        files_task(folder)


def test_the_split_sequences_are_the_files_own_in_order(tmp_path):
    inputs, lengths = sequences(6)
    split = np.array([1, 0, 2, 0, 1, 2])
    task = files_task(
        write_npz(
            tmp_path / "d.npz", inputs=inputs, lengths=lengths, frame_labels=np.arange(len(inputs)) % 2, split=split
        )
    )
    starts = np.r_[0, np.cumsum(lengths)[:-1]]
    restored = [x.numpy() * task.input_std + task.input_mean for x in task._inputs["validation"]]
    expected = [inputs[starts[i] : starts[i] + lengths[i]] for i in (0, 4)]
    assert all(np.allclose(r, e, atol=1e-4) for r, e in zip(restored, expected))


# --- bad data: one line naming the file, the array and the first bad index -------------------------


def _with(**changes):
    def build():
        inputs, lengths = sequences(20)
        arrays = {
            "inputs": inputs,
            "lengths": lengths,
            "frame_labels": np.zeros(len(inputs), np.int64) + (np.arange(len(inputs)) % 2),
        }
        for key, value in changes.items():
            if value is None:
                arrays.pop(key)
            else:
                arrays[key] = value(arrays) if callable(value) else value
        return arrays

    return build


def _set(name, index, value, dtype=None):
    def change(arrays):
        array = arrays[name].astype(dtype or arrays[name].dtype).copy()
        array[index] = value
        return array

    return change


BAD = [
    ("missing inputs", _with(inputs=None), {}, ["array 'inputs'", "missing"]),
    ("missing lengths", _with(lengths=None), {}, ["array 'lengths'", "missing"]),
    ("no targets", _with(frame_labels=None), {}, ["no targets"]),
    ("lengths do not sum", _with(lengths=_set("lengths", 3, 100)), {}, ["array 'lengths'", "sums to"]),
    (
        "an empty sequence",
        _with(lengths=lambda a: np.r_[a["lengths"][:4], 0, a["lengths"][4:]]),
        {},
        ["array 'lengths' index 4", "at least one step"],
    ),
    ("float lengths", _with(lengths=lambda a: a["lengths"].astype(float)), {}, ["array 'lengths'", "integers"]),
    ("nan input", _with(inputs=_set("inputs", (17, 1), np.nan)), {}, ["array 'inputs' index 17, column 1", "nan"]),
    ("inf input", _with(inputs=_set("inputs", (5, 0), np.inf)), {}, ["array 'inputs' index 5, column 0", "inf"]),
    (
        "one-dimensional inputs",
        _with(inputs=lambda a: a["inputs"][:, 0]),
        {},
        ["array 'inputs'", "(total_steps, features)"],
    ),
    ("negative label", _with(frame_labels=_set("frame_labels", 9, -1)), {}, ["array 'frame_labels' index 9", "is -1"]),
    (
        "label beyond the classes",
        _with(frame_labels=_set("frame_labels", 11, 2), classes=np.array(["a", "b"])),
        {},
        ["array 'frame_labels' index 11", "is 2", "2 classes"],
    ),
    (
        "labels of the wrong length",
        _with(frame_labels=lambda a: a["frame_labels"][:-1]),
        {},
        ["array 'frame_labels'", "shape"],
    ),
    (
        "split out of range",
        _with(split=lambda a: np.r_[np.zeros(15, int), 1, 3, 2, 2, 2]),
        {},
        ["array 'split' index 16", "is 3"],
    ),
    ("an empty split", _with(split=lambda a: np.r_[np.zeros(15, int), np.ones(5, int)]), {}, ["test split is empty"]),
    (
        "an empty carved split",
        _with(lengths=lambda a: np.r_[a["lengths"][:3], a["lengths"][3:].sum()]),
        {},
        ["split is empty"],
    ),
    ("an unknown array", _with(label=np.zeros(20)), {}, ["array 'label'", "not one odyssey reads"]),
    (
        "a kind without its array",
        _with(),
        {"kind": "sequence_class"},
        ["kind 'sequence_class' needs array 'labels'", "it has frame_labels"],
    ),
    (
        "multilabel that is not 0/1",
        _with(frame_labels=None, frame_targets=lambda a: a["inputs"][:, :1].copy()),
        {"kind": "frame_multilabel"},
        ["array 'frame_targets' index 0, column 0", "0/1"],
    ),
    (
        "nan target",
        _with(frame_labels=None, frame_targets=_set("inputs", (3, 1), np.nan)),
        {},
        ["array 'frame_targets' index 3, column 1", "nan"],
    ),
    ("two targets", _with(labels=np.zeros(20, np.int64)), {}, ["several targets", "kind"]),
    ("one class only", _with(frame_labels=lambda a: np.zeros_like(a["frame_labels"])), {}, ["at least two classes"]),
    (
        "ctc without lengths",
        _with(frame_labels=None, label_sequences=np.ones(5, np.int64)),
        {},
        ["missing array 'label_lengths'"],
    ),
    (
        "ctc lengths do not sum",
        _with(frame_labels=None, label_sequences=np.ones(5, np.int64), label_lengths=np.ones(20, np.int64)),
        {},
        ["array 'label_lengths'", "sums to 20", "holds 5"],
    ),
    (
        "ctc longer than its sequence",
        _with(
            frame_labels=None,
            label_sequences=lambda a: np.ones(int(a["lengths"][0]) + 20, np.int64),
            label_lengths=lambda a: np.r_[a["lengths"][0] + 1, np.ones(19, int)],
        ),
        {},
        ["array 'label_lengths' index 0", "more labels than the sequence has steps"],
    ),
]


@pytest.mark.parametrize("case, build, options, expected", BAD, ids=[case for case, *_ in BAD])
def test_bad_data_is_one_line_naming_the_file_the_array_and_the_first_bad_index(
    tmp_path, case, build, options, expected
):
    path = write_npz(tmp_path / "bad.npz", **build())
    with pytest.raises(DataError) as err:
        files_task(path, **options)
    message = str(err.value)
    assert str(path) in message and "\n" not in message, message
    for part in expected:
        assert part in message, (case, message)


def test_paths_and_options_that_cannot_work(tmp_path):
    with pytest.raises(DataError, match="no such file or folder"):
        files_task(tmp_path / "absent.npz")
    (tmp_path / "d.txt").write_text("x")
    with pytest.raises(DataError, match=r"expected an \.npz, \.csv or \.parquet"):
        files_task(tmp_path / "d.txt")
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="broken.npz: not an .npz"):
        files_task(tmp_path / "broken.npz")
    folder = tmp_path / "f"
    folder.mkdir()
    write_npz(folder / "train.npz", **frame_class_arrays())
    with pytest.raises(DataError, match="found none for validation"):
        files_task(folder)
    good = write_npz(tmp_path / "good.npz", **frame_class_arrays())
    with pytest.raises(ConfigError, match="option 'kind' must be one of"):
        files_task(good, kind="frames")
    with pytest.raises(ConfigError, match="sum to < 1"):
        files_task(good, validation_fraction=0.5, test_fraction=0.5)
    with pytest.raises(ConfigError, match="applies to tables"):
        files_task(good, target="y")
    with pytest.raises(ConfigError, match="has no option 'pth'"):
        make_task("mine", source="files", pth="x")
    with pytest.raises(ConfigError, match="is built in"):
        make_task("vowels", source="files", path=str(good))


# --- long tables ---------------------------------------------------------------------------------


def long_table(n=24, seed=0, labels="int"):
    import pandas as pd

    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n):
        for t in range(int(rng.integers(3, 7))):
            x1, x2 = rng.normal(size=2)
            rows.append({"sequence": f"s{s}", "step": t, "x1": x1, "x2": x2, "y": int(x1 > 0), "z": x1 * 2})
    frame = pd.DataFrame(rows)
    if labels == "text":
        frame["y"] = np.where(frame["y"] == 1, "up", "down")
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)  # rows in any order


def test_a_long_table_reads_like_the_npz(tmp_path):
    frame = long_table()
    frame.to_csv(tmp_path / "d.csv", index=False)
    task = files_task(tmp_path / "d.csv", features=["x1", "x2"], target="y")
    assert (task.metric_name, task.output_size, task.input_size) == ("frame_error", 2, 2)
    assert sum(task.sizes()[s] for s in ("train", "validation", "test")) == 24
    # steps are put in order within each sequence, and each label stays with its own step
    for split in ("train", "validation", "test"):
        for x, y in zip(task._inputs[split], task._targets[split]):
            raw = x.numpy()[:, 0] * task.input_std[0] + task.input_mean[0]
            assert ((raw > 0).astype(int) == y).all()
    same = files_task(tmp_path / "d.csv", target="y", features=["x1", "x2"])
    assert [len(x) for x in same._inputs["test"]] == [len(x) for x in task._inputs["test"]]
    regression = files_task(tmp_path / "d.csv", features=["x1", "x2"], target="z")
    assert regression.metric_name == "mse"
    both = files_task(tmp_path / "d.csv", features=["x1"], target=["z", "x2"])
    assert both.output_size == 2


def test_a_table_with_text_labels_sequence_labels_and_a_split_column(tmp_path):
    frame = long_table(labels="text")
    frame.to_csv(tmp_path / "t.csv", index=False)
    task = files_task(tmp_path / "t.csv", features=["x1", "x2"], target="y")
    assert task.class_names == ["down", "up"]
    per_sequence = frame.copy()
    per_sequence["y"] = per_sequence["sequence"].str[1:].astype(int) % 3
    per_sequence["split"] = np.where(
        per_sequence["sequence"].isin(["s0", "s1"]),
        "test",
        np.where(per_sequence["sequence"] == "s2", "validation", "train"),
    )
    per_sequence.to_csv(tmp_path / "p.csv", index=False)
    task = files_task(tmp_path / "p.csv", target="y", kind="sequence_class", features=["x1", "x2"])
    assert task.metric_name == "error_rate" and [task.sizes()[s] for s in ("train", "validation", "test")] == [21, 1, 2]
    assert sorted(int(t[0]) for t in task._targets["test"]) == [0, 1]


def test_a_label_constant_within_every_sequence_needs_a_kind(tmp_path):
    """Issue 25: a text label per recording was trained per step unless `kind` was set; now the file
    says which to choose."""
    per_sequence = long_table(labels="text")
    per_sequence["y"] = np.where(per_sequence["sequence"].str[1:].astype(int) % 2 == 0, "walk", "sit")
    per_sequence.to_csv(tmp_path / "p.csv", index=False)
    with pytest.raises(
        ConfigError, match=r"p.csv: column 'y' is the same on every row of each sequence: set kind = \"sequence_class\""
    ):
        files_task(tmp_path / "p.csv", target="y", features=["x1", "x2"])
    assert (
        files_task(tmp_path / "p.csv", target="y", features=["x1", "x2"], kind="sequence_class").metric_name
        == "error_rate"
    )
    assert (
        files_task(tmp_path / "p.csv", target="y", features=["x1", "x2"], kind="frame_class").metric_name
        == "frame_error"
    )


def test_a_header_only_table_and_a_truncated_or_foreign_npz_are_one_line(tmp_path):
    """Issue 25: these were 'a bug in odyssey' (IndexError, BadZipFile) or numpy's allow_pickle hint."""
    (tmp_path / "h.csv").write_text("sequence,step,x1,x2,y\n")
    with pytest.raises(DataError, match=r"h.csv: no rows below the header; a long table needs a row per step"):
        files_task(tmp_path / "h.csv", target="y")
    whole = write_npz(tmp_path / "whole.npz", **frame_class_arrays()).read_bytes()
    (tmp_path / "cut.npz").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "text.npz").write_text("inputs,lengths\n1,2\n" * 20)
    for name in ("cut.npz", "text.npz"):
        with pytest.raises(DataError) as err:
            files_task(tmp_path / name)
        assert (
            str(err.value)
            == f"{tmp_path / name}: not an .npz (no complete zip archive: truncated, or another format?); "
            "write it with numpy.savez"
        )
    np.savez(tmp_path / "objects.npz", inputs=np.array([[1.0], "a"], dtype=object), lengths=np.array([2]))
    with pytest.raises(DataError, match="objects.npz: holds an object array") as err:
        files_task(tmp_path / "objects.npz")
    assert "allow_pickle" not in str(err.value)


TABLE_BAD = [
    ("missing column", lambda f: f.drop(columns=["x2"]), {"features": ["x1", "x2"], "target": "y"}, ["no column 'x2'"]),
    ("no target option", lambda f: f, {}, ["needs option 'target'"]),
    (
        "nan feature",
        lambda f: f.assign(x1=f["x1"].where(f.index != 7)),
        {"features": ["x1", "x2"], "target": "y"},
        ["column 'x1', line 9", "nan"],
    ),
    (
        "text feature",
        lambda f: f.assign(x2=f["x2"].astype(str).where(f.index != 4, "oops")),
        {"features": ["x1", "x2"], "target": "y"},
        ["column 'x2', line 6", "'oops'"],
    ),
    (
        "a step twice",
        lambda f: f.assign(
            step=f["step"].where(f.index != 3, f.loc[f["sequence"] == f.loc[3, "sequence"], "step"].drop(3).iloc[0])
        ),
        {"target": "y", "features": ["x1", "x2"]},
        ["column 'step'", "comes twice"],
    ),
    (
        "negative label",
        lambda f: f.assign(y=f["y"].where(f.index != 10, -2)),
        {"target": "y", "features": ["x1", "x2"]},
        ["column 'y', line 12", "is -2"],
    ),
    (
        "empty target",
        lambda f: f.assign(z=f["z"].where(f.index != 2)),
        {"target": "z", "features": ["x1", "x2"]},
        ["column 'z', line 4", "empty"],
    ),
    (
        "label changes within a sequence",
        lambda f: f,
        {"target": "y", "kind": "sequence_class", "features": ["x1", "x2"]},
        ["column 'y', sequence", "changes within the sequence"],
    ),
    (
        "bad split value",
        lambda f: f.assign(split=np.where(f.index == 5, "holdout", "train")),
        {"target": "y", "features": ["x1", "x2"]},
        ["column 'split', line 7", "'holdout'"],
    ),
    ("ctc", lambda f: f, {"target": "y", "kind": "ctc", "features": ["x1", "x2"]}, ["write an .npz"]),
]


@pytest.mark.parametrize("case, change, options, expected", TABLE_BAD, ids=[c for c, *_ in TABLE_BAD])
def test_bad_tables_name_the_file_the_column_and_the_line(tmp_path, case, change, options, expected):
    path = tmp_path / "bad.csv"
    change(long_table()).to_csv(path, index=False)
    with pytest.raises((DataError, ConfigError)) as err:
        files_task(path, **options)
    message = str(err.value)
    assert str(path) in message and "\n" not in message, message
    for part in expected:
        assert part in message, (case, message)


def test_parquet_reads_where_pyarrow_is_installed_and_says_what_to_install_where_not(tmp_path):
    frame = long_table()
    path = tmp_path / "d.parquet"
    if importlib.util.find_spec("pyarrow") is None and importlib.util.find_spec("fastparquet") is None:
        path.write_bytes(b"PAR1")
        with pytest.raises(DataError, match=r"reading Parquet needs pyarrow: pip install pyarrow"):
            files_task(path, target="y")
    else:
        frame.to_parquet(path)
        assert files_task(path, target="y", features=["x1", "x2"]).metric_name == "frame_error"


# --- the CLI: bad data stops before any cell -----------------------------------------------------

STUDY = """
name = "own"
tasks = ["mine"]
variants = ["V"]
trials = {trials}
seed = 1
[training]
batch_size = 8
max_epochs = 1
[space]
hidden_size = 4
learning_rate = 0.01
[task_options.mine]
{options}
"""


def test_bad_data_exits_2_with_one_line_before_any_cell_is_created(tmp_path, cli):
    arrays = frame_class_arrays(20)
    arrays["inputs"][12, 0] = np.nan
    write_npz(tmp_path / "bad.npz", **arrays)
    study = tmp_path / "own.toml"
    study.write_text(STUDY.format(trials=1, options='source = "files"\npath = "bad.npz"'))
    result = cli("run", str(study), cwd=tmp_path, check=False)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == "error: bad.npz: array 'inputs' index 12, column 0 is nan; inputs must be finite"
    assert not (tmp_path / "results" / "own.db").exists()


# --- a factory of your own -------------------------------------------------------------------------

FACTORY = '''
import numpy as np
from odyssey.tasks import Dataset, FramewiseClassification, Sequences, SequenceTask


def make(*, seed: int = 0, sequences: int = 24, scale: float = 1.0) -> SequenceTask:
    """Signs of noise (generated, tiny)."""
    rng = np.random.default_rng(seed)

    def split(n):
        xs = [scale * rng.normal(size=(int(rng.integers(3, 6)), 1)).astype(np.float32) for _ in range(n)]
        return Sequences(xs, [(x[:, 0] > 0).astype(np.int64) for x in xs])

    return SequenceTask(
        "signs",
        Dataset({{"train": split(sequences), "validation": split(6), "test": split(6)}}),
        FramewiseClassification(2),
        bidirectional=False,
    )
{extra}
'''


def write_factory(folder: Path, extra: str = "") -> None:
    package = folder / "mypkg"
    package.mkdir(exist_ok=True)
    (package / "__init__.py").write_text("")
    (package / "tasks.py").write_text(FACTORY.format(extra=extra))


def test_a_factory_task_runs_under_two_jobs_and_a_changed_factory_is_refused(tmp_path, cli):
    write_factory(tmp_path)
    study = tmp_path / "own.toml"
    # Two cells, so the two workers start apart (as in test_study.py's --jobs runs).
    text = STUDY.format(trials=2, options='source = "mypkg.tasks:make"\nsequences = 16').replace(
        'variants = ["V"]', 'variants = ["V", "CIFG"]'
    )
    study.write_text(text)
    cli("run", str(study), "--jobs", "2", cwd=tmp_path)
    storage = f"sqlite:///{tmp_path}/results/own.db"
    for cell in ("own/mine/V", "own/mine/CIFG"):
        trials = optuna.load_study(study_name=cell, storage=storage).trials
        assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"], cell
        assert all(t.user_attrs["task"] == "mine" and t.user_attrs["metric"] == "frame_error" for t in trials)
    stored = optuna.load_study(study_name="own/mine/V", storage=storage).user_attrs["study_spec"]
    assert (
        stored["task_sources"]["mine"]["source"] == "mypkg.tasks:make"
        and len(stored["task_sources"]["mine"]["module_sha256"]) == 64
    )
    write_factory(tmp_path, extra="\n# a changed factory\n")
    result = cli("run", str(study), cwd=tmp_path, check=False)
    assert (
        result.returncode == 2
        and "the source of task 'mine''s factory (mypkg.tasks:make) changed since study 'own' stored its trials"
        in result.stderr
    ), result.stderr
    assert "sha256" not in result.stderr and "--extend" not in result.stderr


def test_a_changed_factory_or_data_file_changes_the_stored_spec(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    write_factory(tmp_path)
    study = tmp_path / "own.toml"
    study.write_text(STUDY.format(trials=1, options='source = "mypkg.tasks:make"'))
    before = load_study_file(study)
    assert load_study_file(study).digest() == before.digest()
    write_factory(tmp_path, extra="\ndef helper():\n    return 1\n")
    after = load_study_file(study)
    assert after.canonical()["task_sources"] != before.canonical()["task_sources"] and after.digest() != before.digest()
    write_npz(tmp_path / "d.npz", **frame_class_arrays(20))
    study.write_text(STUDY.format(trials=1, options='source = "files"\npath = "d.npz"'))
    first = load_study_file(study).digest()
    write_npz(tmp_path / "d.npz", **frame_class_arrays(20, seed=5))
    assert load_study_file(study).digest() != first


def test_factory_errors_are_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    write_factory(
        tmp_path,
        extra="\ndef not_a_task(*, seed=0):\n    return 42\n\ndef no_seed(*, size: int = 1):\n    return None\n",
    )
    with pytest.raises(
        ConfigError, match=r"cannot import 'nopkg.tasks' for source 'nopkg.tasks:make'.*ModuleNotFoundError"
    ):
        make_task("mine", source="nopkg.tasks:make")
    with pytest.raises(ConfigError, match="has no function 'absent'"):
        make_task("mine", source="mypkg.tasks:absent")
    with pytest.raises(ConfigError, match=r"'source' must be \"files\" or an import path"):
        make_task("mine", source="mypkg/tasks.py")
    with pytest.raises(ConfigError, match="has no option 'sequencez'; its options: sequences, scale"):
        make_task("mine", source="mypkg.tasks:make", sequencez=3)
    with pytest.raises(ConfigError, match="option 'scale' must be a number"):
        make_task("mine", source="mypkg.tasks:make", scale="big")
    with pytest.raises(ConfigError, match="returned int, not a task"):
        make_task("mine", source="mypkg.tasks:not_a_task")
    with pytest.raises(ConfigError, match="must take a keyword argument 'seed'"):
        make_task("mine", source="mypkg.tasks:no_seed")
    task = make_task("mine", source="mypkg.tasks:make", sequences=5, seed=3)
    assert task.name == "mine" and task.sizes()["train"] == 5
    study = tmp_path / "own.toml"
    study.write_text(STUDY.format(trials=1, options='source = "nopkg.tasks:make"'))
    with pytest.raises(StudyFileError) as err:
        load_study_file(study)
    assert (
        "[task_options.mine]" in str(err.value)
        and "cannot import 'nopkg.tasks'" in str(err.value)
        and "\n" not in str(err.value)
    )


def test_changed_data_names_the_file_and_what_to_do_not_hashes_or_extend(tmp_path, cli, storage_url):
    """Issue 25: changed data was 'study file changed' with raw sha256 hashes and a suggestion of --extend."""
    write_npz(tmp_path / "d.npz", **frame_class_arrays())
    study = tmp_path / "own.toml"
    study.write_text(STUDY.format(trials=1, options='source = "files"\npath = "d.npz"'))
    cli("prepare", str(study), "--storage", storage_url, cwd=tmp_path)
    write_npz(tmp_path / "d.npz", **frame_class_arrays(seed=1))
    for extend in ([], ["--extend"]):
        result = cli("prepare", str(study), "--storage", storage_url, *extend, cwd=tmp_path, check=False)
        assert result.returncode == 2 and result.stderr == (
            "error: the data of task 'mine', d.npz changed since study 'own' stored its trials; "
            "they belong to the old one: "
            "restore it, or give the study a new name (or --storage) to start one on the new data\n"
        ), result.stderr


def test_an_error_in_your_factory_is_one_line_naming_your_file_and_line(tmp_path, monkeypatch):
    """Issue 25: an exception in the user's own factory was shown as a bug in odyssey."""
    monkeypatch.syspath_prepend(str(tmp_path))
    write_factory(
        tmp_path,
        extra="\ndef broken(*, seed=0):\n    folder = 'data'\n    raise FileNotFoundError(f'{folder}/train.csv')\n"
        "\ndef no_splits(*, seed=0):\n    return SequenceTask('x', Dataset({}), FramewiseClassification(2))\n",
    )
    tasks = tmp_path / "mypkg" / "tasks.py"
    line = tasks.read_text().splitlines().index("    raise FileNotFoundError(f'{folder}/train.csv')") + 1
    with pytest.raises(ConfigError) as err:
        make_task("mine", source="mypkg.tasks:broken")
    assert (
        str(err.value)
        == f"task 'mine': mypkg.tasks:broken raised FileNotFoundError: data/train.csv (at {tasks}:{line} in broken)"
    )
    line = (
        tasks.read_text().splitlines().index("    return SequenceTask('x', Dataset({}), FramewiseClassification(2))")
        + 1
    )
    with pytest.raises(
        ConfigError,
        match=rf"raised ValueError: a dataset needs the splits .* \(at {re.escape(str(tasks))}:{line} in no_splits\)",
    ):
        make_task("mine", source="mypkg.tasks:no_splits")  # odyssey's error, raised where your code called it


# --- the README's commands ---------------------------------------------------------------------------


def readme_commands(root: Path, section: str) -> list[str]:
    text = (root / "README.md").read_text()
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", body, re.S)
    return [
        line.strip() for block in blocks for line in block.splitlines() if line.strip() and not line.startswith("#")
    ]


def test_the_readme_numpy_example_is_the_shipped_script(root):
    text = (root / "README.md").read_text().split("## Your own data\n", 1)[1].split("\n## ", 1)[0]
    (example,) = re.findall(r"```python\n(.*?)```", text, re.S)
    assert example.strip() in (root / "examples" / "make_npz.py").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("section", ["Your own data", "Your own task in Python"])
def test_the_readme_commands_run_as_written_on_a_copy_of_the_repository(tmp_path, section, cli, root, full_tests):
    """On a copy of examples/ and studies/; trimmed to one trial of one epoch unless ODYSSEY_FULL_TESTS=1."""
    for folder in ("examples", "studies"):
        shutil.copytree(
            root / folder, tmp_path / folder, ignore=shutil.ignore_patterns("*.npz", "*.csv", "__pycache__")
        )
    commands = readme_commands(root, section)
    assert commands, section
    if not full_tests:
        for study in (tmp_path / "studies").glob("my*.toml"):
            text = re.sub(r"(?m)^trials = \d+", "trials = 1", study.read_text())
            study.write_text(re.sub(r"(?m)^max_epochs = \d+", "max_epochs = 1", text))
    for command in commands:
        for part in command.split(" && "):
            words = part.split()
            if words[0] == "odyssey":
                cli(*words[1:], cwd=tmp_path)
            else:
                assert words[0] == "python", part
                subprocess.run([sys.executable, *words[1:]], cwd=tmp_path, check=True, capture_output=True, timeout=120)
    assert list((tmp_path / "results").glob("*.db"))


def test_a_folder_of_tables_numbers_text_labels_across_every_file(tmp_path):
    frame = long_table(labels="text")
    for number, split in enumerate(("train", "validation", "test")):
        part = frame[frame["sequence"].str[1:].astype(int) % 3 == number]
        if split == "test":
            part = part[part["y"] == "up"]  # this file holds one of the two names only
        part.to_csv(tmp_path / f"{split}.csv", index=False)
    task = files_task(tmp_path, target="y", features=["x1", "x2"])
    assert task.class_names == ["down", "up"] and task.output_size == 2
    assert all((t == 1).all() for t in task._targets["test"])


# --- relative paths in a study file --------------------------------------------------------------


def test_relative_paths_in_a_study_file_are_read_from_its_folder_from_any_current_folder(tmp_path, cli):
    """Issue 25: `path` (and a study file's own storage) resolved against the current folder, so a study
    file beside its data failed when run from anywhere else."""
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    write_npz(project / "data" / "d.npz", **frame_class_arrays())
    study = project / "own.toml"
    options = 'source = "files"\npath = "data/d.npz"'
    study.write_text('storage = "sqlite:///results/own.db"\n' + STUDY.format(trials=1, options=options))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = cli("prepare", str(study), cwd=elsewhere)
    assert "warning" not in result.stderr, result.stderr
    assert (project / "results" / "own.db").is_file() and not (elsewhere / "results").exists()
    assert (
        "mine" in cli("status", str(study), cwd=tmp_path).stdout
    )  # status finds the storage from the study file's folder too


def test_a_path_found_only_from_the_current_folder_is_read_from_there_with_one_warning(tmp_path, monkeypatch):
    """Study files written before (studies/mydata.toml's "examples/mydata.npz", meant from the repository's
    root) keep working, with their stored spec unchanged; the warning says what to write."""
    from odyssey.errors import OdysseyWarning

    (tmp_path / "examples").mkdir()
    (tmp_path / "studies").mkdir()
    write_npz(tmp_path / "examples" / "d.npz", **frame_class_arrays())
    study = tmp_path / "studies" / "own.toml"
    study.write_text(STUDY.format(trials=1, options='source = "files"\npath = "examples/d.npz"'))
    monkeypatch.chdir(tmp_path)
    with pytest.warns(
        OdysseyWarning,
        match=r"'task_options\.mine\.path' 'examples/d\.npz' is not in the study file's folder .* "
        r"write '\.\./examples/d\.npz'",
    ) as seen:
        spec = load_study_file("studies/own.toml")
    assert len(seen) == 1
    assert (
        spec.options_for("mine")["path"] == "examples/d.npz"
        and spec.canonical()["task_options"]["mine"]["path"] == "examples/d.npz"
    )
    study.write_text(STUDY.format(trials=1, options='source = "files"\npath = "../examples/d.npz"'))
    monkeypatch.chdir(tmp_path / "examples")  # written as the warning says: found from any folder, without a warning
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        moved = load_study_file(tmp_path / "studies" / "own.toml")
    assert Path(moved.options_for("mine")["path"]).resolve() == (tmp_path / "examples" / "d.npz").resolve()
    assert (
        moved.canonical()["task_options"]["mine"]["path"] == "../examples/d.npz"
    )  # the stored spec is what the file says
    assert moved.task_sources == spec.task_sources  # the same data file, the same hash


def test_a_factory_option_annotated_as_a_path_is_read_from_the_study_files_folder(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    write_factory(
        tmp_path,
        extra="\nimport os\ndef with_file(*, seed: int = 0, table: str | os.PathLike = '', label: str = 'x'):\n"
        "    return make(seed=seed)\n",
    )
    (tmp_path / "studies").mkdir()
    (tmp_path / "studies" / "t.csv").write_text("x\n")
    study = tmp_path / "studies" / "own.toml"
    study.write_text(
        STUDY.format(trials=1, options='source = "mypkg.tasks:with_file"\ntable = "t.csv"\nlabel = "t.csv"')
    )
    spec = load_study_file(study)
    assert spec.options_for("mine")["table"] == str(tmp_path / "studies" / "t.csv")
    assert spec.options_for("mine")["label"] == "t.csv"  # a plain string option is no path


def test_a_small_validation_split_of_sequence_labels_is_a_warning_saying_why(tmp_path, cli, storage_url):
    """Issue 25: the sensor study's validation error sat far below its test error, unexplained. Its validation
    split held 24 recordings: the rate moves in steps of 1/24 and each trial's best epoch on it reads low."""
    inputs, lengths = sequences(40)
    write_npz(tmp_path / "d.npz", inputs=inputs, lengths=lengths, labels=np.arange(40) % 3)
    study = tmp_path / "own.toml"
    study.write_text(STUDY.format(trials=1, options='source = "files"\npath = "d.npz"\nvalidation_fraction = 0.2'))
    result = cli("prepare", str(study), "--storage", storage_url, cwd=tmp_path)
    assert result.stderr.startswith(
        "warning: task 'mine': its validation split holds 8 sequences, each one error or none: "
        "the error rate moves in steps of 0.125 "
    ), result.stderr
    write_npz(tmp_path / "d.npz", inputs=inputs, lengths=lengths, frame_labels=(inputs[:, 0] > 5).astype(np.int64))
    result = cli("prepare", str(study), "--storage", f"sqlite:///{tmp_path}/f.db", cwd=tmp_path)
    assert "warning" not in result.stderr  # a label per step: every frame of the split counts


def test_validation_and_test_holding_the_same_sequences_score_the_chosen_model_alike(tmp_path):
    """Issue 25's low validation error against test was the data's, not the evaluation's: validation is scored on
    its own split and averaged as test is, so the two splits holding the same sequences give one number."""
    from odyssey.study.worker import network_for
    from odyssey.training import train
    from odyssey.training.config import TrainingConfig

    inputs, lengths = sequences(60)
    labels = (np.add.reduceat(inputs[:, 0], np.r_[0, np.cumsum(lengths)[:-1]]) / lengths > 5).astype(np.int64)
    starts = np.r_[0, np.cumsum(lengths)]
    held = [slice(starts[i], starts[i + 1]) for i in range(40, 60)]
    arrays = {  # sequences 40..59 twice: once as validation, once as test
        "inputs": np.concatenate([inputs, *(inputs[s] for s in held)]),
        "lengths": np.r_[lengths, lengths[40:]],
        "labels": np.r_[labels, labels[40:]],
        "split": np.r_[np.zeros(40, int), np.ones(20, int), np.full(20, 2)],
    }
    task = files_task(write_npz(tmp_path / "d.npz", **arrays))
    config = TrainingConfig(learning_rate=0.05, hidden_size=8, momentum=0.9, batch_size=8, max_epochs=3, patience=3)
    torch.manual_seed(0)
    result = train(network_for(task, "V", config), task, config=config, seed=0)
    assert result.validation == result.test
