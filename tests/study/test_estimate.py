"""`odyssey estimate`: timing a tiny study's cells and projecting its CPU-hours and wall time."""

import math
from dataclasses import replace

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from odyssey.errors import ConfigError
from odyssey.study import estimate as estimate_module
from odyssey.study.cells import build_pruner
from odyssey.study.estimate import CellCost, _pruned_seconds, _Share, _trial_seconds, estimate, summary
from odyssey.study.rungs import halving_rungs, hyperband_shares, stop_epochs
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


def test_with_pack_each_trials_epoch_is_timed_in_a_pack_of_that_many(monkeypatch):
    """`--pack K`: each (cell, hidden size) trains K networks of that size together for the timed epochs, after an
    untimed epoch on one batch, and a trial's epoch costs the pack's wall time over the epochs its trials ran."""
    from odyssey.training import pack as pack_training

    study = parse_study(TINY)
    packs, real = [], pack_training.train_pack

    def spy(members, task, **kwargs):
        packs.append([(m.model.hidden_size, m.config.max_epochs) for m in members])
        return real(members, task, **kwargs)

    monkeypatch.setattr(pack_training, "train_pack", spy)
    costs = estimate(study, epochs=2, pack=3)
    assert packs == [[(h, epochs)] * 3 for _ in study.cells() for h in (4, 16) for epochs in (1, 2)]
    for cost in costs:
        assert all(0 < s < 60 for s in cost.epoch_seconds.values())
    _, lines = summary(study, costs, jobs=None, pack=3)
    assert "in packs of 3 (odyssey run --pack 3)" in lines[0]


def test_a_pack_of_none_is_one_line():
    with pytest.raises(ConfigError, match="--pack must be at least 1, got 0"):
        estimate(parse_study(TINY), pack=0)


# --- under a pruner ---------------------------------------------------------------------------------

PRUNED = {**TINY, "pruning": {"pruner": "successive_halving", "min_epochs": 1, "reduction_factor": 3}}


def test_successive_halving_stops_a_third_of_the_trials_at_each_rung_before_max_epochs():
    # Rungs at epochs 1, 3, 9 (27 is past max_epochs = 10): 2/3 stop at 1, 2/9 at 3, 2/27 at 9, 1/27 run all 10.
    stops = stop_epochs(parse_study(PRUNED).pruning, max_epochs=10)
    assert stops == pytest.approx({1: 2 / 3, 3: 2 / 9, 9: 2 / 27, 10: 1 / 27})
    # 1 s per epoch at every size, no test split: seconds are epochs; 2 x patience = 4 stops the last third at 4.
    fixed = ParamRange(8, 8, log=True, integer=True)
    low, high = _pruned_seconds({4: 1.0, 16: 1.0}, fixed, parse_study(PRUNED))
    assert high == pytest.approx(2 / 3 + 3 * 2 / 9 + 9 * 2 / 27 + 10 / 27)
    assert low == pytest.approx(2 / 3 + 3 * 2 / 9 + 4 / 9)


def test_hyperband_shares_trials_between_its_brackets_by_their_budgets():
    # max/min = 30, reduction 3: floor(log3 30) + 1 = 4 brackets; budgets ceil(4 x 3^s / (s + 1)) for s = 3..0.
    assert hyperband_shares(min_epochs=1, reduction_factor=3, max_epochs=30) == pytest.approx(
        [27 / 49, 12 / 49, 6 / 49, 4 / 49]
    )
    assert halving_rungs(min_epochs=1, reduction_factor=3, max_epochs=30, bracket=2) == [9, 27]
    hyperband = replace(parse_study(PRUNED).pruning, pruner="hyperband")
    assert stop_epochs(hyperband, max_epochs=30)[1] == pytest.approx(27 / 49 * 2 / 3)  # only bracket 0 judges at 1


def _simulated_epochs(pruner: optuna.pruners.BasePruner, *, trials: int, max_epochs: int, seed: int) -> float:
    """The mean epochs trials train under Optuna's own pruner, one after another, with a value drawn afresh
    each epoch (no trial better than another: what a rung keeps is chance, as the formula assumes)."""
    rng = np.random.default_rng(seed)
    study = optuna.create_study(pruner=pruner, study_name=f"simulated-{seed}")
    epochs = []
    for _ in range(trials):
        trial = study.ask()
        for epoch in range(1, max_epochs + 1):
            trial.report(float(rng.uniform()), epoch)
            if trial.should_prune():
                break
        epochs.append(epoch)
        study.tell(trial, state=TrialState.PRUNED)
    return float(np.mean(epochs))


@pytest.mark.parametrize("pruner", ["successive_halving", "hyperband"])
def test_the_expected_epochs_agree_with_optunas_own_pruners(pruner):
    """At 1,000 trials to 30 epochs, 20 seeds put Optuna's mean at 0.925-1.106 times the formula (halving) and
    0.939-1.072 times (hyperband), 1.07 with seed 0; the few trials at the last rungs make most of the spread."""
    study = parse_study(PRUNED)
    study = replace(
        study, pruning=replace(study.pruning, pruner=pruner), training=replace(study.training, max_epochs=30)
    )
    expected = sum(e * share for e, share in stop_epochs(study.pruning, max_epochs=30).items())
    simulated = _simulated_epochs(build_pruner(study), trials=1000, max_epochs=30, seed=0)
    assert simulated == pytest.approx(expected, rel=0.12)


def test_a_pruned_study_projects_its_pruner_beside_the_unpruned_lines():
    costs = [CellCost("adding", v, {4: 1.0, 16: 1.0}, {4: 0.0, 16: 0.0}, 4.0, 10.0, (2.0, 3.0)) for v in ("V", "CIFG")]
    rows, lines = summary(parse_study(PRUNED), costs, jobs=2)
    assert rows[0]["s/trial (successive_halving, patience)"] == 2.0 and rows[0]["s/trial (successive_halving)"] == 3.0
    unpruned = summary(parse_study(TINY), costs, jobs=2)[1]
    assert lines[:3] == unpruned[:3] and lines[5] == unpruned[3]  # what an unpruned study prints, then the pruner
    assert "rungs at 1, 3, 9 epochs): 2.4 epochs per trial, 1.8 with the 2 x patience stop" in lines[3]
    assert "20 seconds CPU with the 2 x patience stop, 30 seconds without; how many are pruned depends" in lines[4]
    assert lines[6] == "with --jobs 2 under the pruner: 10 seconds to 15 seconds of wall time"
    hyperband = parse_study({**PRUNED, "pruning": {"pruner": "hyperband", "min_epochs": 1}})
    assert (
        "rungs at 1, 3, 9 epochs, in 3 brackets that start judging at 1, 3, 9)"
        in summary(hyperband, costs, jobs=None)[1][3]
    )
    median = summary(parse_study({**PRUNED, "pruning": {"pruner": "median", "min_epochs": 2}}), costs, jobs=None)
    assert "s/trial (median)" not in median[0][0] and len(median[1]) == 4
    assert (
        "no closed form" in median[1][3]
        and "20 seconds CPU (every trial pruned at min_epochs = 2) to the unpruned" in median[1][3]
    )


def test_estimate_times_a_pruned_study_once_and_projects_it_under_its_pruner():
    study = parse_study({**PRUNED, "variants": ["V"], "pruning": {"pruner": "hyperband", "min_epochs": 1}})
    (cost,) = estimate(study, epochs=1, share=0.5)
    low, high = cost.pruned_seconds
    assert 0 < low < cost.patience_seconds and low < high < cost.max_seconds
    assert estimate(parse_study({**TINY, "variants": ["V"]}), epochs=1, share=0.5)[0].pruned_seconds is None
