"""Importance on the studies that break naive fANOVA: steps, categoricals, conditional parameters,
degenerate objectives, and whether a share can be told from noise (analytic truths throughout)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from odyssey.analysis.importance import analyse, analyse_spaces, choose_scales
from odyssey.analysis.importance_tables import terms_table
from odyssey.analysis.trials import study_trials
from odyssey.console import print_importance

optuna.logging.set_verbosity(optuna.logging.WARNING)
OPTIMIZERS = ["sgd", "adam", "rmsprop"]


def _study(n: int, draw, distributions, *, storage=None, name: str = "s", seed: int = 0) -> optuna.Study:
    """n complete trials: draw(rng) -> (params, value); params missing from a trial are conditional."""
    rng = np.random.default_rng(seed)
    study = optuna.create_study(storage=storage, study_name=name)
    trials = []
    for _ in range(n):
        params, value = draw(rng)
        trials.append(
            optuna.trial.create_trial(params=params, distributions={k: distributions[k] for k in params}, value=value)
        )
    study.add_trials(trials)
    return study


def _shares(study: optuna.Study, **options) -> dict[str, float]:
    trials = study_trials(study)
    table = terms_table(analyse(trials.complete(), scales=choose_scales(trials), **options))
    return dict(zip(table["term"], table["mean"]))


STEP = {"x": FloatDistribution(0.0, 1.0, step=0.25), "z": FloatDistribution(0.0, 1.0)}


def _step_draw(rng):
    params = {"x": float(rng.integers(0, 5)) * 0.25, "z": float(rng.uniform())}
    return params, params["x"] + 0.5 * params["z"]


def test_a_float_with_step_weighs_its_end_values_like_the_others():
    # x takes 0, .25, ..., 1 equally often: Var x = 0.125; Var 0.5 z = 1/48. Cells of half width at
    # the ends (the old bounds [0, 1]) weigh the end values half and give 0.818 instead.
    truth = 0.125 / (0.125 + 1 / 48)
    assert _shares(_study(400, _step_draw, STEP), refits=0)["x"] == pytest.approx(truth, abs=0.01)


CATEGORICAL = {
    "optimizer": CategoricalDistribution(OPTIMIZERS),
    "num_layers": IntDistribution(1, 3),
    "lr": FloatDistribution(1e-5, 1e-1, log=True),
}


def _categorical_draw(rng):
    params = {
        "optimizer": OPTIMIZERS[rng.integers(3)],
        "num_layers": int(rng.integers(1, 4)),
        "lr": float(10 ** rng.uniform(-5, -1)),
    }
    return params, OPTIMIZERS.index(params["optimizer"]) + 0.5 * params["num_layers"] + 0.5 * math.log10(params["lr"])


def test_categorical_and_integer_parameters_get_their_shares():
    # Var: optimizer (0, 1, 2 equally weighted) 2/3, num_layers 0.25 * 2/3, 0.5 log10 lr on [-5, -1] 1/3.
    shares = _shares(_study(400, _categorical_draw, CATEGORICAL), refits=0)
    assert [shares["optimizer"], shares["num_layers"], shares["log10(lr)"]] == pytest.approx(
        [4 / 7, 1 / 7, 2 / 7], abs=0.03
    )


CONDITIONAL = CATEGORICAL | {"momentum": FloatDistribution(0.0, 0.99)}


def _conditional_draw(rng):
    params = {
        "optimizer": OPTIMIZERS[rng.integers(3)],
        "lr": float(10 ** rng.uniform(-5, -1)),
        "num_layers": int(rng.integers(1, 4)),
    }
    value = abs(math.log10(params["lr"]) + 3) + 0.3 * params["num_layers"]
    if params["optimizer"] == "sgd":
        params["momentum"] = float(rng.uniform(0.0, 0.99))
        value += 1.0 + 2.0 * params["momentum"]
    return params, value


def test_conditional_parameters_are_analysed_where_they_exist_and_their_parent_on_all_trials():
    study = _study(600, _conditional_draw, CONDITIONAL)
    trials = study_trials(study)
    spaces = analyse_spaces(trials.complete(), scales=choose_scales(trials))
    (whole_label, whole), (sub_label, sub) = spaces
    sgd = int(trials.complete()["params_momentum"].notna().sum())
    assert (whole_label, whole.trials) == ("all trials", 600) and sub.trials == sgd
    assert sub_label == "trials with momentum (optimizer = sgd)"
    # All trials, momentum averaged out: optimizer adds 1 + 2 E[momentum] = 1.99 for a third of
    # them; lr's |log10 lr + 3| has variance 1/3, num_layers 0.06. Momentum's spread within sgd
    # (4 Var m / 3) is variance no root parameter explains: noise here, outside the shares.
    variance = 1.99**2 * 2 / 9 + 1 / 3 + 0.06
    whole_shares = dict(zip(terms_table(whole)["term"], terms_table(whole)["mean"]))
    assert whole_shares["optimizer"] == pytest.approx(1.99**2 * 2 / 9 / variance, abs=0.05)
    spread = 4 * 0.99**2 / 12 / 3
    assert whole_shares["noise"] == pytest.approx(spread / (variance + spread), abs=0.05)
    assert "momentum" not in whole_shares
    # The sgd trials: momentum 4 * 0.99^2 / 12, lr 1/3, num_layers 0.06; optimizer is one value there.
    sub_table = terms_table(sub).set_index("term")
    inside = 4 * 0.99**2 / 12 + 1 / 3 + 0.06
    # On ~200 noise-free trials fully grown trees isolate each trial by lr and momentum before they
    # split on num_layers' three values, so its 0.083 comes out 0.018 and momentum 0.55 for 0.45:
    # the interval, which allows for the bias the resamples show, holds the truth.
    momentum = sub_table.loc["momentum"]
    assert momentum["mean"] == pytest.approx(4 * 0.99**2 / 12 / inside, abs=0.1)
    assert momentum["low"] <= 4 * 0.99**2 / 12 / inside <= momentum["high"]
    assert sub_table.loc["log10(lr)", "low"] <= 1 / 3 / inside <= sub_table.loc["log10(lr)", "high"]
    assert "optimizer" not in sub_table.index and any("optimizer (one value, 'sgd'" in d for d in sub.dropped)
    assert set(terms_table(sub)["trials"]) == {sgd} and set(terms_table(whole)["trials"]) == {600}


def _json(capsys, url: str, study: str) -> dict:
    """`odyssey importance --format json`, parsed strictly (NaN or Infinity fail the test)."""

    def refuse(constant: str):
        raise AssertionError(f"not strict JSON: {constant}")

    print_importance(storage=url, study=study, fmt="json")
    return json.loads(capsys.readouterr().out, parse_constant=refuse)


def test_a_constant_objective_gives_strict_json_with_undefined_shares(tmp_path: Path, capsys):
    url = f"sqlite:///{tmp_path / 'c.db'}"
    _study(
        30,
        lambda rng: ({"x": float(rng.uniform()), "y": float(rng.uniform())}, 1.5),
        {"x": FloatDistribution(0, 1), "y": FloatDistribution(0, 1)},
        storage=url,
    )
    data = _json(capsys, url, "s")
    assert {t["mean"] for t in data["terms"]} == {None} and data["spaces"][0]["constant"] is True
    assert "objective is constant" in data["spaces"][0]["note"]


def test_a_one_choice_categorical_is_left_out_and_said_so(tmp_path: Path, capsys):
    url = f"sqlite:///{tmp_path / 'one.db'}"
    dists = {"x": FloatDistribution(0, 1), "act": CategoricalDistribution(["tanh"])}
    _study(40, lambda rng: ((p := {"x": float(rng.uniform()), "act": "tanh"}), p["x"]), dists, storage=url)
    data = _json(capsys, url, "s")
    assert all("act" not in term["params"] for term in data["terms"])
    assert [t["term"] for t in data["terms"]] == ["x", "higher order", "noise"]
    assert data["spaces"][0]["dropped"] == ["act (its distribution allows one value only)"]
    assert data["terms"][0]["params"] == ["x"] and data["terms"][0]["scale"] == "linear scale"


def test_an_infinite_objective_is_one_line_naming_the_trial(tmp_path: Path, capsys, cli, root):
    url = f"sqlite:///{tmp_path / 'inf.db'}"
    values = iter([0.1 * k if k != 7 else math.inf for k in range(30)])
    _study(30, lambda rng: ({"x": float(rng.uniform())}, next(values)), {"x": FloatDistribution(0, 1)}, storage=url)
    with pytest.raises(ValueError, match=r"^trial 7 of study 's' has value inf; fANOVA needs finite values"):
        print_importance(storage=url, study="s")
    done = cli("importance", "--storage", url, "--study", "s", cwd=root, check=False)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "trial 7" in done.stderr


ADDITIVE = {f"x{k}": FloatDistribution(0.0, 1.0) for k in range(4)}


def _function_study(f, n: int, seed: int = 0) -> optuna.Study:
    def draw(rng):
        x = rng.uniform(0, 1, 4)
        return {f"x{k}": float(v) for k, v in enumerate(x)}, float(f(x))

    return _study(n, draw, ADDITIVE, seed=seed)


def _verdicts(study: optuna.Study) -> dict[str, bool]:
    trials = study_trials(study)
    table = terms_table(analyse(trials.complete(), scales=choose_scales(trials)))
    table = table[table["kind"] != "noise"]
    assert table["low"].le(table["mean"]).all() and table["high"].ge(table["mean"]).all()
    return dict(zip(table["term"], table["distinguishable"]))


@pytest.mark.parametrize("n", [60, 400])
def test_an_additive_function_shows_no_pair_beyond_the_noise_floor(n: int):
    # A plain forest reports pair shares of 0.025 (400 trials) to 0.11 (60 trials) here: all noise.
    verdicts = _verdicts(_function_study(lambda x: x[0] + 2 * x[1], n))
    assert verdicts["x0"] and verdicts["x1"]
    assert not verdicts["x2"] and not verdicts["x3"]
    assert not any(v for term, v in verdicts.items() if " × " in term)


def test_a_real_interaction_is_distinguishable():
    # x0 + 4 (x0 - 1/2)(x1 - 1/2): the pair holds 4/7 of the variance.
    verdicts = _verdicts(_function_study(lambda x: x[0] + 4 * (x[0] - 0.5) * (x[1] - 0.5), 300))
    assert verdicts["x0 × x1"] and verdicts["x0"]
    assert not any(v for term, v in verdicts.items() if " × " in term and term != "x0 × x1")


def test_a_multi_objective_study_needs_its_objective_named(tmp_path: Path, capsys):
    url = f"sqlite:///{tmp_path / 'mo.db'}"
    study = optuna.create_study(storage=url, study_name="mo", directions=["minimize", "minimize"])
    rng = np.random.default_rng(0)
    for _ in range(40):
        params = {"x": float(rng.uniform()), "y": float(rng.uniform())}
        study.add_trial(
            optuna.trial.create_trial(
                params=params,
                distributions={"x": FloatDistribution(0, 1), "y": FloatDistribution(0, 1)},
                values=[params["x"], params["y"]],
            )
        )
    with pytest.raises(ValueError, match=r"study 'mo' has 2 objectives; pick one with --objective \(0 to 1\)"):
        print_importance(storage=url, study="mo")
    print_importance(storage=url, study="mo", objective=1, fmt="json", refits=0)
    data = json.loads(capsys.readouterr().out)
    assert data["objective"] == 1 and data["terms"][0]["term"] == "y" and data["terms"][0]["mean"] > 0.9
    with pytest.raises(ValueError, match="--objective 2: study 'mo' has 2 objective"):
        print_importance(storage=url, study="mo", objective=2)


LR = {"lr": FloatDistribution(1e-5, 1e-1, log=True), "noise": FloatDistribution(0.0, 1.0)}


def _lr_draw(rng):
    params = {"lr": float(10 ** rng.uniform(-5, -1)), "noise": float(rng.uniform())}
    return params, -math.log10(params["lr"]) + 0.1 * rng.normal()


def test_one_trial_that_carries_most_of_the_variance_is_named_with_the_shares(tmp_path, capsys):
    """A handwriting study's untrained network scored a CER of 9.6 among CERs of 0.5 to 2: that one
    trial was 0.96 of the variance, and every share described it (then two such trials, 0.96
    together). The report and `odyssey importance` say so; a study without them gets no such note."""
    storage = f"sqlite:///{tmp_path / 'o.db'}"
    plain = _study(80, _lr_draw, LR, storage=storage, name="plain")
    outlier = _study(80, _lr_draw, LR, storage=storage, name="outlier")
    params = {"lr": 1e-3, "noise": 0.5}
    outlier.add_trial(optuna.trial.create_trial(params=params, distributions=LR, value=500.0))
    trials = study_trials(outlier)
    result = analyse(trials.complete(), scales=choose_scales(trials), refits=0)
    assert result.dominant.startswith("trial 80 at 500 carries 0.9") and result.dominant in result.note
    clean = study_trials(plain)
    assert analyse(clean.complete(), scales=choose_scales(clean), refits=0).dominant == ""
    print_importance(storage=storage, study="outlier", refits=0)
    assert "trial 80 at 500 carries 0.9" in capsys.readouterr().out
    # Two such trials, each under half of the variance, together most of it (handwriting had two):
    outlier.add_trial(optuna.trial.create_trial(params=params, distributions=LR, value=-480.0))
    trials = study_trials(outlier)
    two = analyse(trials.complete(), scales=choose_scales(trials), refits=0).dominant
    assert two.startswith("trial 80 at 500 and trial 81 at -480 carry 1.00"), two
