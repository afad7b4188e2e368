"""odyssey's fANOVA inside Optuna: the evaluator in get_param_importances and both plot back ends,
multi-objective targets, and the Study API for pairs and marginals."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution

import odyssey
from odyssey.analysis.evaluator import study_fanova, study_tables

optuna.logging.set_verbosity(optuna.logging.WARNING)
DISTS = {"learning_rate": FloatDistribution(1e-6, 1e-2, log=True), "input_noise": FloatDistribution(0.0, 1.0)}
TRUTH = {
    "learning_rate": 16 / 16.25,
    "input_noise": 0.25 / 16.25,
}  # log10 lr on [-6, -2] has variance 16/12; 0.5 noise 0.25/12


def _study(n: int = 300, *, objectives: int = 1) -> optuna.Study:
    rng = np.random.default_rng(0)
    study = optuna.create_study(directions=["minimize"] * objectives)
    for _ in range(n):
        params = {"learning_rate": float(10 ** rng.uniform(-6, -2)), "input_noise": float(rng.uniform())}
        first = np.log10(params["learning_rate"]) + 0.5 * params["input_noise"]
        values = [first, params["input_noise"]][:objectives]  # the second objective depends on noise alone
        study.add_trial(optuna.trial.create_trial(params=params, distributions=DISTS, values=values))
    return study


def test_the_evaluator_is_optunas_kind_and_keyword_only():
    assert issubclass(odyssey.FanovaImportanceEvaluator, optuna.importance.BaseImportanceEvaluator)
    with pytest.raises(TypeError):
        odyssey.FanovaImportanceEvaluator(32)  # type: ignore[misc]


def test_get_param_importances_gives_log_scale_shares_sorted():
    importances = optuna.importance.get_param_importances(_study(), evaluator=odyssey.FanovaImportanceEvaluator(seed=0))
    assert list(importances) == ["learning_rate", "input_noise"]
    assert [importances[k] for k in TRUTH] == pytest.approx(list(TRUTH.values()), abs=0.02)
    again = optuna.importance.get_param_importances(_study(), evaluator=odyssey.FanovaImportanceEvaluator(seed=0))
    assert again == importances  # the seed makes it deterministic
    # Optuna's own fANOVA works on the raw scale: it gives learning_rate much less here.
    theirs = optuna.importance.get_param_importances(
        _study(), evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0)
    )
    assert theirs["learning_rate"] < importances["learning_rate"] - 0.05


def test_a_multi_objective_study_needs_a_target():
    study = _study(objectives=2)
    with pytest.raises(ValueError, match="2 objectives: give a target"):
        optuna.importance.get_param_importances(study, evaluator=odyssey.FanovaImportanceEvaluator())
    second = odyssey.FanovaImportanceEvaluator(target=lambda t: t.values[1])
    assert optuna.importance.get_param_importances(study, evaluator=second)["input_noise"] > 0.95
    # A target passed by Optuna's functions takes precedence over the evaluator's own.
    first = optuna.importance.get_param_importances(study, evaluator=second, target=lambda t: t.values[0])
    assert first["learning_rate"] == pytest.approx(TRUTH["learning_rate"], abs=0.02)


def test_both_plot_back_ends_draw_the_evaluators_shares():
    pytest.importorskip("plotly", reason="plotly is a test extra: pip install -e '.[test]'")
    study, evaluator = _study(), odyssey.FanovaImportanceEvaluator(seed=0)
    expected = optuna.importance.get_param_importances(study, evaluator=evaluator)
    figure = optuna.visualization.plot_param_importances(study, evaluator=evaluator)
    drawn = dict(zip(figure.data[0].y, figure.data[0].x))
    assert drawn == pytest.approx(expected)
    ax = optuna.visualization.matplotlib.plot_param_importances(study, evaluator=evaluator)
    widths = {label.get_text(): bar.get_width() for label, bar in zip(ax.get_yticklabels(), ax.patches)}
    assert widths == pytest.approx(expected)


def test_the_study_api_gives_pairs_marginals_and_conditional_spaces():
    study = optuna.create_study()
    rng = np.random.default_rng(1)
    choice = {"optimizer": CategoricalDistribution(["sgd", "adam"])}
    for _ in range(200):
        params = {"learning_rate": float(10 ** rng.uniform(-6, -2)), "optimizer": ["sgd", "adam"][rng.integers(2)]}
        dists = {"learning_rate": DISTS["learning_rate"]} | choice
        value = np.log10(params["learning_rate"])
        if params["optimizer"] == "sgd":
            params["momentum"], dists["momentum"] = float(rng.uniform()), FloatDistribution(0.0, 1.0)
            value += params["momentum"]
        study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, value=value))
    results = study_fanova(study, refits=0)
    assert [r.space for r in results] == ["all trials", "trials with momentum (optimizer = sgd)"]
    tables = study_tables(results)
    assert set(tables["terms"]["space"]) == {r.space for r in results}
    pairs = tables["pairs"]
    assert set(zip(pairs["param_x"], pairs["param_y"])) == {
        ("log10(learning_rate)", "optimizer"),
        ("log10(learning_rate)", "momentum"),
    }
    lr = tables["marginals"].query("param == 'log10(learning_rate)' and space == 'all trials'")
    assert (lr["x"].min(), lr["x"].max()) == (-6.0, -2.0) and np.corrcoef(lr["x"], lr["mean"])[0, 1] > 0.95


def test_import_odyssey_stays_light(root):
    code = (
        "import sys, odyssey\n"
        "assert not {'torch', 'sklearn'} & set(sys.modules), 'heavy import'\n"
        "assert odyssey.FanovaImportanceEvaluator.__name__ == 'FanovaImportanceEvaluator'\n"
        "assert 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)


def test_the_evaluator_warns_when_main_effects_leave_most_of_the_variance_to_interactions():
    """Optuna normalises by default: main shares summing to 0.16 became 0.41 / 0.31 / 0.26. The
    shares stay as they are with normalize=False, and the evaluator says that they explain little."""
    dists = {"a": FloatDistribution(0.0, 1.0), "b": FloatDistribution(0.0, 1.0)}
    rng = np.random.default_rng(0)
    study = optuna.create_study()
    for _ in range(300):
        a, b = rng.uniform(size=2)
        study.add_trial(
            optuna.trial.create_trial(
                params={"a": a, "b": b}, distributions=dists, value=float((a - 0.5) * (b - 0.5) + 0.05 * a)
            )
        )
    evaluator = odyssey.FanovaImportanceEvaluator(seed=0)
    with pytest.warns(UserWarning, match=r"main effects explain 0\.\d\d of the variance .*normalize=False"):
        raw = optuna.importance.get_param_importances(study, evaluator=evaluator, normalize=False)
    assert sum(raw.values()) < 0.5
    with pytest.warns(UserWarning):
        scaled = optuna.importance.get_param_importances(study, evaluator=evaluator)
    assert sum(scaled.values()) == pytest.approx(1.0)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an additive study explains itself: no warning
        optuna.importance.get_param_importances(_study(), evaluator=evaluator)


def test_pruned_trials_are_left_out_as_optunas_evaluators_leave_them():
    """Optuna's evaluators judge complete trials only; so does odyssey's, whatever the pruned ones hold:
    their last reported value (infinite where a trial blew up) and parameters the complete ones lack."""
    complete = _study(100)
    pruned = optuna.create_study()
    pruned.add_trials(complete.trials)
    extra = {**DISTS, "dropout": FloatDistribution(0.0, 0.5)}
    for k, value in enumerate([5.0, float("inf"), 7.0]):
        pruned.add_trial(
            optuna.trial.create_trial(
                state=optuna.trial.TrialState.PRUNED,
                value=value,
                params={"learning_rate": 1e-3, "input_noise": 0.1 * k, "dropout": 0.1},
                distributions=extra,
                intermediate_values={1: value},
            )
        )
    evaluator = odyssey.FanovaImportanceEvaluator(seed=0)
    found = optuna.importance.get_param_importances(pruned, evaluator=evaluator)
    assert found == optuna.importance.get_param_importances(complete, evaluator=evaluator)
    assert set(found) == set(optuna.importance.get_param_importances(pruned)) == {"learning_rate", "input_noise"}
    assert len(study_fanova(pruned, refits=0)[0].fanova.shares) and study_fanova(pruned, refits=0)[0].trials == 100
