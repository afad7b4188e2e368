"""The built-in tasks on small slices: shapes, label ranges, determinism, caching, and one training
step of a plain LSTM through each task's loss and metric."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from rich.console import Console

from odyssey.console import print_task_table
from odyssey.tasks import SPLITS, make_task, task_table
from odyssey.tasks.core.cache import cache_dir
from odyssey.tasks.core.objectives import IGNORE

SMALL = {
    "chorales": {"pieces": 6},
    "vowels": {},
    "speech": {"train_speakers": 2, "validation_speakers": 1, "test_speakers": 1, "utterances_per_speaker": 2},
    "handwriting": {"train_writers": 3, "validation_writers": 1, "test_writers": 1, "lines_per_writer": 3},
    "adding": {"length": 30, "train": 40, "validation": 10, "test": 10},
    "copy": {"copy_length": 3, "delay": 10, "train": 40, "validation": 10, "test": 10},
}


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("odyssey-cache")


@pytest.fixture(autouse=True)
def cache_in_tmp(shared_cache, monkeypatch):
    # One cache for the module: each small data set (the chorale parse above all) is built once.
    monkeypatch.setenv("ODYSSEY_CACHE_DIR", str(shared_cache))


@pytest.fixture(scope="module")
def tasks(shared_cache):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ODYSSEY_CACHE_DIR", str(shared_cache))
        return {name: make_task(name, **options) for name, options in SMALL.items()}


def all_batches(task, split, batch_size=4):
    return list(task.batches(split, batch_size))


@pytest.mark.parametrize("name", list(SMALL))
def test_batches_have_the_declared_shapes(tasks, name):
    task = tasks[name]
    for split in SPLITS:
        batches = all_batches(task, split)
        assert sum(b.size for b in batches) == task.sizes()[split] > 0
        for batch in batches:
            steps, size, inputs = batch.inputs.shape
            assert inputs == task.input_size and steps == int(batch.lengths.max())
            assert batch.inputs.dtype == torch.float32 and batch.lengths.dtype == torch.int64
            assert torch.isfinite(batch.inputs).all()


@pytest.mark.parametrize("name", list(SMALL))
def test_a_plain_lstm_trains_through_loss_and_metric(tasks, name):
    task = tasks[name]
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(task.input_size, 8, bidirectional=task.bidirectional)
    head = torch.nn.Linear(16 if task.bidirectional else 8, task.output_size)
    batch = next(task.batches("train", 3, shuffle=True, generator=torch.Generator().manual_seed(0)))
    outputs = head(lstm(batch.inputs)[0])
    loss = task.loss(outputs, batch)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for p in lstm.parameters())
    errors, count = task.metric(outputs.detach(), batch)
    assert count > 0 and errors >= 0


@pytest.mark.parametrize("name", ["speech", "handwriting", "adding", "copy"])
def test_generated_data_is_deterministic_for_a_seed(tasks, name, shared_cache, monkeypatch):
    # A fresh cache directory forces a second build from scratch.
    monkeypatch.setenv("ODYSSEY_CACHE_DIR", str(shared_cache / f"rebuild-{name}"))
    again = make_task(name, **SMALL[name])
    other_seed = make_task(name, seed=1, **SMALL[name])
    first, second, third = (list(t.batches("train", 2)) for t in (tasks[name], again, other_seed))
    assert all(torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets) for a, b in zip(first, second))
    assert not all(a.inputs.shape == c.inputs.shape and torch.equal(a.inputs, c.inputs) for a, c in zip(first, third))


def test_chorales_are_rolls_predicting_the_next_frame(tasks):
    task = tasks["chorales"]
    assert (task.input_size, task.output_size, task.metric_name, task.bidirectional) == (88, 88, "nll", False)
    assert [task.sizes()[s] for s in SPLITS] == [4, 1, 1]
    (batch,) = all_batches(task, "train", 4)
    targets = batch.targets
    assert set(targets.unique().tolist()) <= {0.0, 1.0}
    # the input at t+1, un-standardised, is the target at t
    raw_next = (batch.inputs[1:] * torch.from_numpy(task.input_std) + torch.from_numpy(task.input_mean)).round()
    for i, n in enumerate(batch.lengths.tolist()):
        assert torch.equal(raw_next[: n - 1, i], targets[: n - 1, i])
    assert 2 <= targets.sum(-1)[: int(batch.lengths.min())].mean() <= 6  # four voices, mostly
    assert any(f.name.startswith("chorales-") for f in cache_dir().iterdir())


def test_vowels_keep_the_official_split_and_label_every_frame(tasks):
    task = tasks["vowels"]
    sizes = task.sizes()
    assert (sizes["train"] + sizes["validation"], sizes["test"]) == (270, 370)
    assert (sizes["train"], sizes["validation"], sizes["classes"], task.input_size) == (216, 54, 9, 12)
    for batch in all_batches(task, "validation", 100):
        for i, n in enumerate(batch.lengths.tolist()):
            labels = batch.targets[:n, i]
            assert 7 <= n <= 29 and (labels == labels[0]).all() and 0 <= labels[0] < 9


def test_speech_labels_phones_per_frame(tasks):
    task = tasks["speech"]
    assert task.input_size == 39 and task.bidirectional and "sil" in task.class_names
    assert [task.sizes()[s] for s in SPLITS] == [4, 2, 2]
    for batch in all_batches(task, "train"):
        valid = batch.targets != IGNORE
        assert valid.sum() == batch.lengths.sum()
        assert batch.targets[valid].min() >= 0 and batch.targets[valid].max() < task.output_size
        assert len(batch.targets[valid].unique()) > 5  # several phones, not one label
    logmel = make_task("speech", features="logmel", **SMALL["speech"])
    assert logmel.input_size == 40


def test_handwriting_targets_are_text_lines_shorter_than_the_pen_trace(tasks):
    task = tasks["handwriting"]
    assert (task.input_size, task.metric_name, task.output_size) == (4, "cer", len(task.class_names) + 1)
    for batch in all_batches(task, "train"):
        assert batch.target_lengths.sum() == batch.targets.numel()
        assert (batch.targets >= 1).all() and (batch.targets < task.output_size).all()
        assert (batch.lengths > 5 * batch.target_lengths).all()
        texts = [
            "".join(task.class_names[i - 1] for i in t)
            for t in torch.split(batch.targets, batch.target_lengths.tolist())
        ]
        assert all(text.strip() and text[0].isalpha() for text in texts)
    assert make_task("handwriting", time=False, **SMALL["handwriting"]).input_size == 3


def test_adding_targets_are_the_sums_of_the_marked_numbers(tasks):
    task = tasks["adding"]
    (batch, *_) = all_batches(task, "test", 10)
    raw = batch.inputs * torch.from_numpy(task.input_std) + torch.from_numpy(task.input_mean)
    marked = raw[:, :, 1].round() == 1
    assert (marked.sum(0) == 2).all()
    sums = (raw[:, :, 0] * marked).sum(0)
    assert torch.allclose(sums, batch.targets[:, 0], atol=1e-4)


def test_copy_scores_only_the_recall_steps(tasks):
    task = tasks["copy"]
    (batch, *_) = all_batches(task, "train", 40)
    scored = batch.targets != IGNORE
    assert (scored.sum(0) == 3).all() and scored[-3:].all()
    shown = (batch.inputs[:3] * torch.from_numpy(task.input_std) + torch.from_numpy(task.input_mean)).argmax(-1)
    assert torch.equal(shown, batch.targets[-3:])


def test_the_task_table_builds_nothing_slow(shared_cache):
    before = set(shared_cache.rglob("*"))
    out = io.StringIO()
    print_task_table(task_table(), out=Console(file=out, width=120))
    text = out.getvalue()
    for shown in ("vowels", "adding", "copy", "frame_error", "needs --path timit=", "not built yet"):
        assert shown in text
    assert set(shared_cache.rglob("*")) == before  # the default chorales and speech stay unbuilt


def test_odyssey_tasks_command_prints_the_table():
    from typer.testing import CliRunner

    from odyssey.cli import app

    result = CliRunner().invoke(app, ["tasks", "--path", "jsb=/no/such/file"])
    assert result.exit_code == 0, result.output
    assert "frame_error" in result.output and "cannot read the JSB pickle" in result.output


@pytest.mark.slow
def test_all_chorales_split_close_to_the_papers_229_76_77(full_tests):
    """Parses every chorale (~15-30 s) when ODYSSEY_FULL_TESTS=1, else the first 40."""
    task = make_task("chorales", pieces=None if full_tests else 40)
    sizes = task.sizes()
    counts = [sizes[s] for s in SPLITS]
    assert sum(counts) == (371 if full_tests else 40)
    assert np.allclose(np.array(counts) / sum(counts), np.array([229, 76, 77]) / 382, atol=0.02)
    if full_tests:
        assert counts == [222, 74, 75] and 45 < sizes["mean_length"] < 65
