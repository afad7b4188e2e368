"""The shared pieces behind every task: metrics, objectives, batching, cache, options, features."""

from __future__ import annotations

import ast
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import odyssey.tasks
from odyssey.tasks import TASKS, Batch, Task, make_task
from odyssey.tasks.core.cache import NotCached, cache_dir, cache_only, cached
from odyssey.tasks.core.features import deltas, frame_count, frame_labels, log_mel, mfcc_energy_deltas
from odyssey.tasks.core.metrics import best_path, edit_distance
from odyssey.tasks.core.objectives import (
    IGNORE,
    CTCTranscription,
    FinalStepRegression,
    FramewiseClassification,
    NextStepBinary,
)
from odyssey.tasks.core.pen import pen_features
from odyssey.tasks.core.sequences import Dataset, Sequences, batch_indices, split_by_fractions
from odyssey.tasks.core.task import SequenceTask

pytestmark = pytest.mark.usefixtures("cache")  # task data in each test's own folder


# --- metrics -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "frames, decoded",
    [
        ([1, 1, 0, 1, 2, 2, 0, 0, 3], [1, 1, 2, 3]),  # blank between equal labels keeps both
        ([0, 0, 0], []),
        ([2, 2, 2], [2]),
        ([0, 1, 0, 1, 1, 0], [1, 1]),
        ([], []),
    ],
)
def test_best_path_merges_repeats_then_drops_blanks(frames, decoded):
    assert best_path(torch.tensor(frames, dtype=torch.int64)) == decoded


@pytest.mark.parametrize(
    "a, b, distance",
    [
        ("kitten", "sitting", 3),
        ("flaw", "lawn", 2),
        ("", "abc", 3),
        ("abc", "", 3),
        ("abc", "abc", 0),
        ([1, 2, 3, 4], [2, 3, 4, 5], 2),
        ("intention", "execution", 5),
    ],
)
def test_edit_distance_hand_cases(a, b, distance):
    assert edit_distance(a, b) == distance
    assert edit_distance(b, a) == distance


def test_edit_distance_matches_textbook_dynamic_programme():
    rng = np.random.default_rng(0)
    for _ in range(50):
        a, b = rng.integers(0, 4, rng.integers(0, 9)).tolist(), rng.integers(0, 4, rng.integers(0, 9)).tolist()
        table = np.zeros((len(a) + 1, len(b) + 1), dtype=int)
        table[:, 0], table[0, :] = range(len(a) + 1), range(len(b) + 1)
        for i in range(1, len(a) + 1):
            for j in range(1, len(b) + 1):
                table[i, j] = min(
                    table[i - 1, j] + 1, table[i, j - 1] + 1, table[i - 1, j - 1] + (a[i - 1] != b[j - 1])
                )
        assert edit_distance(a, b) == table[-1, -1]


# --- objectives ----------------------------------------------------------------------------------


def one_hot_logits(labels: list[list[int]], classes: int) -> torch.Tensor:
    """(T, B, classes) logits whose argmax is labels[b][t]."""
    return torch.stack([torch.eye(classes)[torch.tensor(seq)] * 10 for seq in labels], dim=1)


def test_framewise_metric_counts_errors_on_scored_frames_only():
    objective = FramewiseClassification(3)
    targets, _ = objective.collate([np.array([0, 1, 2]), np.array([2])])
    assert targets.tolist() == [[0, 2], [1, IGNORE], [2, IGNORE]]
    batch = Batch(torch.zeros(3, 2, 1), torch.tensor([3, 1]), targets)
    outputs = one_hot_logits([[0, 1, 1], [0, 0, 0]], 3)  # one wrong in seq 0, one wrong in seq 1
    assert objective.metric(outputs, batch) == (2.0, 4.0)
    uniform = torch.zeros(3, 2, 3, requires_grad=True)
    loss = objective.loss(uniform, batch)
    assert loss.item() == pytest.approx(math.log(3))
    loss.backward()
    assert uniform.grad[1:, 1].abs().sum() == 0  # padding gets no gradient


def test_next_step_nll_sums_keys_and_averages_valid_frames():
    objective = NextStepBinary(2)
    targets, _ = objective.collate([np.array([[1, 0], [0, 0]], np.uint8), np.array([[1, 1]], np.uint8)])
    batch = Batch(torch.zeros(2, 2, 2), torch.tensor([2, 1]), targets)
    outputs = torch.zeros(2, 2, 2)  # p = 0.5 everywhere: every key costs log 2
    assert objective.metric(outputs, batch) == pytest.approx((3 * 2 * math.log(2), 3.0))
    assert objective.loss(outputs, batch).item() == pytest.approx(2 * math.log(2))
    confident = torch.tensor([[[20.0, -20], [20, 20]], [[-20, -20], [0, 0]]])  # padding ignored
    assert objective.metric(confident, batch)[0] == pytest.approx(0.0, abs=1e-6)


def test_ctc_metric_is_edit_distance_of_best_path_over_reference_length():
    objective = CTCTranscription(labels=3)
    assert objective.output_size == 4
    targets, target_lengths = objective.collate([np.array([1, 2, 2]), np.array([3])])
    assert targets.tolist() == [1, 2, 2, 3] and target_lengths.tolist() == [3, 1]
    batch = Batch(torch.zeros(6, 2, 1), torch.tensor([6, 2]), targets, target_lengths)
    # seq 0 decodes to [1, 2] (one deletion); seq 1 decodes to [3] within its 2 frames
    outputs = one_hot_logits([[1, 1, 0, 2, 2, 0], [3, 0, 1, 1, 1, 1]], 4)
    assert objective.decode(outputs, batch.lengths) == [[1, 2], [3]]
    assert objective.metric(outputs, batch) == (1.0, 4.0)
    loss = objective.loss(torch.zeros(6, 2, 4, requires_grad=True), batch)
    assert torch.isfinite(loss) and loss.item() > 0
    loss.backward()


def test_final_step_regression_reads_each_sequences_last_step():
    objective = FinalStepRegression(1)
    targets, _ = objective.collate([np.array([1.0]), np.array([2.0])])
    batch = Batch(torch.zeros(4, 2, 1), torch.tensor([4, 2]), targets)
    outputs = torch.zeros(4, 2, 1)
    outputs[3, 0, 0], outputs[1, 1, 0] = 1.0, 5.0  # last steps: 1 (exact) and 5 (off by 3)
    assert objective.metric(outputs, batch) == (9.0, 2.0)
    assert objective.loss(outputs, batch).item() == pytest.approx(4.5)


# --- batching ------------------------------------------------------------------------------------


def test_batches_without_shuffle_are_sorted_by_length_longest_first_within():
    lengths = np.array([5, 3, 8, 1, 4])
    assert [b.tolist() for b in batch_indices(lengths, 2, shuffle=False, generator=None)] == [[1, 3], [0, 4], [2]]


def test_shuffled_batches_cover_everything_and_follow_the_generator():
    lengths = np.random.default_rng(0).integers(1, 100, 1000)

    def epoch(seed):
        return [
            b.tolist() for b in batch_indices(lengths, 8, shuffle=True, generator=torch.Generator().manual_seed(seed))
        ]

    assert epoch(1) == epoch(1) and epoch(1) != epoch(2)
    assert sorted(i for b in epoch(1) for i in b) == list(range(1000))
    # bucketing: a batch's lengths are close together (pools of 400 sequences drawn from 1..99)
    spreads = [np.ptp(lengths[b]) for b in epoch(1)]
    assert np.mean(spreads) < 5


def tiny_task(bidirectional=True) -> SequenceTask:
    rng = np.random.default_rng(0)

    def split(n):
        xs = [rng.normal(3.0, 2.0, (int(rng.integers(1, 7)), 2)).astype(np.float32) for _ in range(n)]
        return Sequences(xs, [rng.integers(0, 3, len(x)) for x in xs])

    dataset = Dataset({"train": split(20), "validation": split(5), "test": split(4)}, classes=["a", "b", "c"])
    return SequenceTask("tiny", dataset, FramewiseClassification(3), bidirectional=bidirectional)


def test_task_batches_are_padded_time_major_and_standardised_with_training_statistics():
    task = tiny_task()
    assert isinstance(task, Task)
    assert (task.input_size, task.output_size, task.metric_name) == (2, 3, "frame_error")
    frames = torch.cat([b.inputs[: int(n), i] for b in task.batches("train", 4) for i, n in enumerate(b.lengths)])
    assert frames.mean(0).abs().max() < 1e-5 and (frames.std(0, unbiased=False) - 1).abs().max() < 1e-5
    seen = 0
    for batch in task.batches("validation", 2):
        steps, size, inputs = batch.inputs.shape
        assert batch.inputs.dtype == torch.float32 and batch.lengths.dtype == torch.int64
        assert steps == int(batch.lengths.max()) and inputs == 2 and batch.targets.shape == (steps, size)
        for i, n in enumerate(batch.lengths.tolist()):
            assert (batch.inputs[n:, i] == 0).all() and (batch.targets[n:, i] == IGNORE).all()
        seen += size
    assert seen == 5
    assert [b.size for b in task.batches("test", 1)] == [1, 1, 1, 1]
    assert task.sizes()["train"] == 20 and task.sizes()["classes"] == 3


def test_split_by_fractions_is_a_seeded_partition():
    parts = split_by_fractions(371, (229, 76, 77), seed=1)
    assert [len(p) for p in parts] == [222, 74, 75]
    assert sorted(np.concatenate(parts).tolist()) == list(range(371))
    assert all((a == b).all() for a, b in zip(parts, split_by_fractions(371, (229, 76, 77), seed=1)))


# --- cache and registry --------------------------------------------------------------------------


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    assert cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("ODYSSEY_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "odyssey"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "odyssey"


def test_cached_builds_once_per_settings_and_round_trips():
    calls = []

    def build():
        calls.append(1)
        seqs = Sequences([np.ones((3, 2), np.float32)], [np.array([1, 2, 3])])
        return Dataset({"train": seqs, "validation": seqs, "test": Sequences()}, classes=["x"])

    first = cached("demo", {"n": 1}, build)
    again = cached("demo", {"n": 1}, build)
    assert len(calls) == 1
    assert again.classes == ["x"] and len(again.splits["test"]) == 0
    assert (again.splits["train"].inputs[0] == first.splits["train"].inputs[0]).all()
    with cache_only(), pytest.raises(NotCached):
        cached("demo", {"n": 2}, build)


def test_make_task_rejects_unknown_names_options_and_types():
    with pytest.raises(ValueError, match="unknown task 'nope'; known tasks: chorales, vowels"):
        make_task("nope")
    with pytest.raises(ValueError, match="has no option 'lenght'; its options: length, train, validation, test"):
        make_task("adding", lenght=5)
    with pytest.raises(ValueError, match="option 'length' must be an integer, got '5'"):
        make_task("adding", length="5")
    with pytest.raises(ValueError, match="option 'time' must be true/false"):
        make_task("handwriting", time=1)
    with pytest.raises(ValueError, match="seed must be an integer"):
        make_task("adding", seed=1.5)
    with pytest.raises(ValueError, match="task 'timit' needs option path"):
        make_task("timit")
    assert set(TASKS) >= {"chorales", "vowels", "speech", "handwriting", "adding", "copy", "timit", "iam_ondb", "jsb"}


# --- features ------------------------------------------------------------------------------------


def test_speech_features_have_the_paper_shapes():
    rate = 16000
    signal = np.sin(2 * np.pi * 440 * np.arange(rate) / rate) * 1000
    assert frame_count(rate, rate) == 1 + (16000 - 400) // 160 == 98
    assert mfcc_energy_deltas(signal, rate).shape == (98, 39)
    assert log_mel(signal, rate).shape == (98, 40)
    ramp = np.arange(10.0)[:, None] * 3
    assert np.allclose(deltas(ramp)[2:-2], 3.0)


def test_frame_labels_take_the_segment_under_each_frame_centre():
    # 16 kHz: frames every 160 samples, centres at 200, 360, 520, ...
    labels = frame_labels(np.array([0, 300, 500]), np.array([7, 8, 9]), 4, 16000)
    assert labels.tolist() == [7, 8, 9, 9]


def test_pen_features_are_moves_time_in_stroke_and_pen_up():
    strokes = [np.array([[0, 0, 10.0], [1, 2, 10.5]]), np.array([[5, 5, 11.0], [6, 5, 11.2], [6, 7, 11.3]])]
    expected = [[0, 0, 0, 0], [1, 2, 0.5, 1], [4, 3, 0, 0], [1, 0, 0.2, 0], [0, 2, 0.3, 1]]
    assert np.allclose(pen_features(strokes), expected)
    assert np.allclose(pen_features(strokes, with_time=False), np.array(expected)[:, [0, 1, 3]])


# --- objectives and options for tasks of your own ---------------------------------------------------


def test_sequence_classification_reads_each_sequences_last_step():
    from odyssey.tasks.core.objectives import SequenceClassification

    objective = SequenceClassification(3)
    targets, _ = objective.collate([np.array([2]), np.array([0])])
    assert targets.tolist() == [2, 0] and objective.readout == "last"
    batch = Batch(torch.zeros(4, 2, 1), torch.tensor([4, 2]), targets)
    outputs = torch.zeros(4, 2, 3)
    outputs[3, 0, 2] = 10.0  # right at sequence 0's last step
    outputs[1, 1, 1] = 10.0  # wrong at sequence 1's last step
    outputs[3, 1, 0] = 10.0  # padding of sequence 1: never read
    assert objective.metric(outputs, batch) == (1.0, 2.0)
    assert objective.loss(torch.zeros(4, 2, 3), batch).item() == pytest.approx(math.log(3))


def test_framewise_regression_averages_squared_error_over_valid_frames_and_outputs():
    from odyssey.tasks.core.objectives import FramewiseRegression

    objective = FramewiseRegression(2)
    targets, _ = objective.collate([np.ones((3, 2), np.float32), np.full((1, 2), 2.0, np.float32)])
    batch = Batch(torch.zeros(3, 2, 1), torch.tensor([3, 1]), targets)
    outputs = torch.zeros(3, 2, 2)
    outputs[1:, 1] = 100.0  # padding: not scored
    assert objective.metric(outputs, batch) == (3 * 2 * 1.0 + 2 * 4.0, 8.0)
    assert objective.loss(outputs, batch).item() == pytest.approx(14 / 8)


def test_options_of_your_own_factories_check_lists_and_accept_unannotated_options():
    from odyssey.tasks.core.options import check_options

    def typed(*, seed: int = 0, columns: list[str] | None = None, scale: float = 1.0):
        """A typed factory."""

    def loose(*, seed=0, anything=None, **more):
        """Takes any option."""

    check_options("mine", typed, {"columns": ["a", "b"], "scale": 2})
    with pytest.raises(ValueError, match="option 'columns' must be a list of strings or None, got \\[1\\]"):
        check_options("mine", typed, {"columns": [1]})
    check_options("mine", loose, {"anything": object(), "extra": 1})


# --- layout: four kinds of module, imports one way ----------------------------------------------

KINDS = ("core", "builtin", "paper", "yours")  # dependency order: core first, the rest build on it


def task_modules(root: Path) -> dict[str, Path]:
    """Every module under the tasks folder `root`, by dotted name (a package by its __init__.py)."""
    modules = {}
    for file in root.rglob("*.py"):
        parts = file.relative_to(root).with_suffix("").parts
        parts = parts[:-1] if parts[-1] == "__init__" else parts
        modules[".".join(("odyssey.tasks", *parts))] = file
    return modules


def imported(name: str, file: Path, modules: dict[str, Path]) -> set[str]:
    """The tasks modules `file` imports, at its top or inside a function (a lazy import still closes a circle)."""
    package = name if file.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(file.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            stem = ".".join(p for p in (base, node.module) if p)
            targets = [f"{stem}.{alias.name}" if f"{stem}.{alias.name}" in modules else stem for alias in node.names]
        else:
            continue
        found |= {t for t in targets if t in modules and t != name}
    return found


def import_circle(root: Path) -> list[str] | None:
    """A circle of imports among the tasks modules under `root`, or None."""
    modules = task_modules(root)
    edges = {name: imported(name, file, modules) for name, file in modules.items()}
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> list[str] | None:
        state[name] = "open"
        for target in sorted(edges[name]):
            if state.get(target) == "open":
                return [*path[path.index(target) :], target] if target in path else [name, target]
            if target not in state and (circle := visit(target, [*path, target])):
                return circle
        state[name] = "done"
        return None

    return next((c for name in sorted(modules) if name not in state and (c := visit(name, [name]))), None)


TASKS_ROOT = Path(odyssey.tasks.__file__).parent


def test_tasks_modules_import_no_circle():
    assert import_circle(TASKS_ROOT) is None


def test_core_imports_no_sibling_and_the_others_only_core():
    modules = task_modules(TASKS_ROOT)
    kind_of = {name: (name.split(".") + [""])[2] for name in modules}  # odyssey.tasks.<kind>.module
    for name, file in modules.items():
        kind = kind_of[name]
        if kind not in KINDS:
            continue  # the registry, the listing and the package itself join the four
        crossing = {t for t in imported(name, file, modules) if kind_of[t] not in (kind, "core")}
        assert not crossing, f"{name} ({kind}) imports {sorted(crossing)}"
    assert set(KINDS) <= set(kind_of.values())


@pytest.mark.parametrize("kind", KINDS)
def test_each_tasks_sub_package_imports_alone_in_a_fresh_interpreter(kind):
    code = f"import odyssey.tasks.{kind} as p; assert p.__all__ and all(hasattr(p, n) for n in p.__all__)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_the_old_objectives_path_still_imports():
    # The README taught `from odyssey.tasks.objectives import ...` for a task of your own.
    from odyssey.tasks.objectives import SequenceClassification as old

    assert old is odyssey.tasks.SequenceClassification
