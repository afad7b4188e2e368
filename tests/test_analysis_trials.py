"""Loading odyssey cells from a storage: which trials count, their states and the analysis scales."""

from __future__ import annotations

import math

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from odyssey.analysis.scales import scale_of
from odyssey.analysis.study_analysis import cell_counts
from odyssey.analysis.trials import load_odyssey_trials

DISTS = {"learning_rate": FloatDistribution(1e-6, 1e-2, log=True)}


def _add(study: optuna.Study, state: TrialState, **attrs) -> None:
    system = attrs.pop("system_attrs", {})
    value = 0.5 if state == TrialState.COMPLETE else None
    trial = optuna.trial.create_trial(state=state, value=value, params={"learning_rate": 1e-3}, distributions=DISTS, user_attrs=attrs, system_attrs=system)
    study.add_trial(trial)


def test_cells_count_slots_not_retries_and_keep_states():
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage, study_name="s/chorales/V")
    study.set_user_attr("odyssey_study", "s")  # no task/variant attributes: read from the name
    _add(study, TrialState.COMPLETE, test_metric=0.4, seconds=3.0, parameter_count=100, metric="nll")
    _add(study, TrialState.FAIL, failure="diverged")
    _add(study, TrialState.FAIL)  # a crashed worker's trial, retried below: its retry holds the slot
    _add(study, TrialState.WAITING, system_attrs={"retry_history": [2]})
    _add(study, TrialState.RUNNING)
    trials = load_odyssey_trials(storage, "s")
    assert cell_counts(trials.frame).iloc[0].to_dict() == {"task": "chorales", "variant": "V", "complete": 1, "failed": 1, "running": 1, "waiting": 1}
    assert trials.metrics == {"chorales": "nll"}  # from the trials when the study does not say
    done = trials.complete()
    assert len(done) == 1 and done.loc[0, "test_metric"] == 0.4 and done.loc[0, "params_learning_rate"] == 1e-3
    assert trials.frame.loc[trials.frame.state == "FAIL", "failure"].tolist() == ["diverged"]
    assert math.isnan(trials.frame.loc[trials.frame.state == "RUNNING", "value"].iloc[0])


@pytest.mark.parametrize(
    ("distribution", "low", "high", "label"),
    [
        (FloatDistribution(1e-6, 1e-2, log=True), -6.0, -2.0, "log10(p)"),
        (IntDistribution(20, 200, log=True), math.log10(20), math.log10(200), "log10(p)"),
        (IntDistribution(1, 3), 0.5, 3.5, "p"),  # each integer owns a cell of width 1
        (FloatDistribution(0.0, 1.0), 0.0, 1.0, "p"),
        (CategoricalDistribution(["a", "b", "c"]), -0.5, 2.5, "p"),
    ],
)
def test_analysis_scales_come_from_the_distribution(distribution, low, high, label):
    scale = scale_of("p", distribution)
    assert scale.low == pytest.approx(low) and scale.high == pytest.approx(high) and scale.label == label
    if isinstance(distribution, CategoricalDistribution):
        assert scale.transform(["c", "a"]).tolist() == [2.0, 0.0]
