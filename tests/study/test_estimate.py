"""`odyssey estimate`: timing a tiny study's cells and projecting its CPU-hours and wall time."""

import math
from dataclasses import replace

import pytest

from odyssey.study import estimate as estimate_module
from odyssey.study.estimate import _Share, _trial_seconds, estimate, summary
from odyssey.study.space import ParamRange
from odyssey.study.studyfile import parse_study
from odyssey.tasks import make_task

TINY = {
    "name": "tiny",
    "tasks": ["adding"],
    "variants": ["V", "CIFG"],
    "trials": 5,
    "training": {"batch_size": 8, "max_epochs": 10, "patience": 2},
    "space": {"hidden_size": {"low": 4, "high": 16, "log": True}},
    "task_options": {"adding": {"length": 12, "train": 32, "validation": 8, "test": 8}},
}


def test_a_trial_costs_its_epochs_times_the_power_law_between_the_two_sizes():
    study = parse_study(TINY)
    fixed = ParamRange(8, 8, log=True, integer=True)
    # 1 s per epoch at H = 4, 4 s at H = 16: linear in H, so 2 s at H = 8.
    patience, most = _trial_seconds({4: 1.0, 16: 4.0}, fixed, study)
    assert (patience, most) == pytest.approx((2 * 2 * 2.0, 10 * 2.0))
    capped = replace(study, training=replace(study.training, max_seconds=5.0))
    assert _trial_seconds({4: 1.0, 16: 4.0}, fixed, capped) == pytest.approx(
        (3 * 2.0, 3 * 2.0)
    )  # stops after the epoch past 5 s
    # Drawn log-uniformly over [4, 16], the mean of linear costs lies between the two ends, below their middle.
    patience, _ = _trial_seconds({4: 1.0, 16: 4.0}, study.space["hidden_size"], study)
    assert 4 * 1.0 < patience < 4 * 2.5
    # The test split's one evaluation comes on top, on its own power law.
    with_test = _trial_seconds({4: 1.0, 16: 4.0}, fixed, study, test={4: 0.5, 16: 0.5})
    assert with_test == pytest.approx((8.0 + 0.5, 20.0 + 0.5))


def test_a_share_of_the_batches_is_timed_and_scaled_up_by_frames(monkeypatch):
    task = make_task("adding", length=12, train=40, validation=8, test=8)
    share = _Share(task, 0.25, batch_sizes=(4, 8))
    clock = iter(range(100))
    monkeypatch.setattr(estimate_module.time, "perf_counter", lambda: float(next(clock)))
    served = list(share.batches("train", 4))
    assert len(served) == 3  # a quarter of 10 batches, rounded up
    assert share.seconds["train"] == pytest.approx(1.0 * 40 / 12)  # one tick for 12 of 40 sequences
    assert share.seconds["validation"] == share.seconds["test"] == 0.0


def test_estimate_times_every_cell_and_projects_the_study():
    study = parse_study(TINY)
    costs = estimate(study, epochs=1, share=0.5)
    assert [(c.task, c.variant) for c in costs] == study.cells()
    for cost in costs:
        assert set(cost.epoch_seconds) == set(cost.test_seconds) == {4, 16}
        assert all(0 < s < 60 for s in (*cost.epoch_seconds.values(), *cost.test_seconds.values()))
        assert 0 < cost.patience_seconds < cost.max_seconds  # 4 epochs against 10
    rows, lines = summary(study, costs, jobs=2)
    assert len(rows) == 2 and rows[0]["task"] == "adding"
    hours = study.trials * sum(c.patience_seconds for c in costs) / 3600
    assert math.isclose(sum(r["CPU-h (4 ep.)"] for r in rows), hours)
    assert lines[0].startswith("10 trials (5 per cell)")
    assert "2 x patience = 4 epochs" in lines[1] and "max_epochs = 10" in lines[2] and "--jobs 2" in lines[3]


def test_the_estimate_command(tmp_path, cache, cli):
    path = tmp_path / "tiny.toml"
    path.write_text(
        'name = "tiny"\ntasks = ["adding"]\nvariants = ["NP"]\ntrials = 3\n[training]\nbatch_size = 8\nmax_epochs = 4\n'
        "patience = 2\n[space]\nhidden_size = { low = 4, high = 8, log = true }\n"
        "[task_options.adding]\nlength = 10\ntrain = 16\nvalidation = 8\ntest = 8\n"
    )
    result = cli("estimate", str(path), "--jobs", "2", timeout=300)
    assert "3 trials (3 per cell)" in result.stdout and "with --jobs 2" in result.stdout
    bad = cli("estimate", str(tmp_path / "missing.toml"), check=False, timeout=300)
    assert bad.returncode == 2 and "no such study file" in bad.stderr and "Traceback" not in bad.stderr
