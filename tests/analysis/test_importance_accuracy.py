"""Importance against known truth: the analytic studies of benchmarks/importance_accuracy.py, whose
shares are exact (quadrature), at sizes the suite affords. The benchmark runs them all, at 60, 200
and 1000 trials, with coverage and error rates; these are the cases the issue measured, each of
which the code before this change got wrong."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from odyssey.analysis.forest import left_out_prediction, one_way_effects
from odyssey.analysis.importance import ALL_TRIALS, analyse_spaces
from odyssey.analysis.importance_tables import terms_table

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("importance_accuracy", ROOT / "benchmarks" / "importance_accuracy.py")
bench = sys.modules.setdefault(
    "importance_accuracy", importlib.util.module_from_spec(_spec)
)  # dataclasses look their module up
_spec.loader.exec_module(bench)


def _analysed(name: str, n: int, *, seed: int = 0, draw: int = 0, **options):
    study = bench.STUDIES[name]
    frame = bench.draw(
        study, n, np.random.default_rng([draw, n]), bench.signal_variance(study, np.random.default_rng(12345))
    )
    spaces = analyse_spaces(frame, scales=[bench.SCALES[p] for p in study.params], seed=seed, **options)
    return {space: terms_table(result).set_index("term") for space, result in spaces}, bench.truths(study)


def test_noise_does_not_shrink_the_shares_of_the_noise_free_objective():
    """Noise with half the signal's variance: each share is of the noise-free objective (the code
    before gave the learning rate 0.48 for 0.73 on such a study: every tree's variance held the
    noise it fitted), and the noise is its own row, a share of the trials' variance."""
    tables, truth = _analysed("noise 1/2", 1000, refits=0)
    table, exact = tables[ALL_TRIALS], truth[ALL_TRIALS]
    for term in (
        "log10(learning_rate)",
        "log10(one_minus_momentum)",
        "log10(hidden_size)",
        "log10(learning_rate) × log10(one_minus_momentum)",
    ):
        assert table.loc[term, "mean"] == pytest.approx(exact[term], abs=0.05), term
    assert table.loc["noise", "mean"] == pytest.approx(0.5 / 1.5, abs=0.08)  # noise / (signal + noise)


def test_a_nine_level_choice_beside_strong_continuous_parameters_keeps_its_share():
    """The code before gave `variant` 0.05 of a true 0.20 here, and a two-level `optimizer` of 0.026
    nothing: trees isolated trials by the continuous parameters and each leaf spanned most choices.
    Each choice's effect is now fit first (one-way means: under random search parameters are drawn
    on their own) and the forest fits what it leaves. Every main share within 0.05, in both spaces."""
    tables, truth = _analysed("categorical", 1000, refits=0)
    for space, exact in ((ALL_TRIALS, truth[ALL_TRIALS]), (next(s for s in tables if s != ALL_TRIALS), truth["sgd"])):
        table = tables[space]
        for term in table.index[table["kind"] == "main"]:
            assert table.loc[term, "mean"] == pytest.approx(exact[term], abs=0.05), (space, term)
    assert tables[ALL_TRIALS].loc["optimizer", "mean"] == pytest.approx(truth[ALL_TRIALS]["optimizer"], abs=0.01)


def test_a_pure_three_way_interaction_is_higher_order_not_nothing():
    """The code before reported higher order 0.46 for a true 1.0, with spurious mains and pairs."""
    tables, _ = _analysed("three-way", 1000, refits=0)
    table = tables[ALL_TRIALS]
    assert table.loc["higher order", "mean"] > 0.8
    effects = table[table["kind"].isin(["main", "pair"])]
    assert effects["mean"].max() < 0.05


def test_a_pair_of_parameters_without_main_effects_beside_strong_ones_is_found():
    """A pair of 0.074 between hidden size and input noise, neither of which matters alone, beside a
    learning rate and a momentum that explain the rest (a held-out study): trees grown on the
    objective split on the strong parameters only, and the code before gave the pair 0.001-0.002 in
    3 of 3 draws. Fit on what the one-way effects leave (which predicts the trials it left out
    better here), the pair is found: 0.030 in this draw (issue 21's target: within 0.05 of the truth),
    the largest of the pairs."""
    tables, truth = _analysed("bowl, 1/3", 1000, refits=0)
    table, pair = tables[ALL_TRIALS], "log10(hidden_size) × input_noise"
    assert table.loc[pair, "mean"] == pytest.approx(truth[ALL_TRIALS][pair], abs=0.05)
    assert table.loc[pair, "mean"] == table.loc[table["kind"] == "pair", "mean"].max()


def test_the_one_way_effects_are_fit_first_only_where_that_predicts_left_out_trials_better():
    """On a smooth study whose pair is between two strong parameters, fitting their one-way effects
    first blurred the pair (largest error 0.048 -> 0.091 at 1000 trials), and the left-out error
    keeps the forest alone there; on the study above it fits the one-way effects first, and says so."""
    chosen = {}
    for name in ("noise 1/2", "bowl, 1/3"):
        study = bench.STUDIES[name]
        frame = bench.draw(
            study, 1000, np.random.default_rng([0, 1000]), bench.signal_variance(study, np.random.default_rng(12345))
        )
        (_, result), *_ = analyse_spaces(frame, scales=[bench.SCALES[p] for p in study.params], refits=0)
        chosen[name] = (result.one_way, "one-way effect leaves" in result.note)
    assert chosen == {"noise 1/2": (False, False), "bowl, 1/3": (True, True)}


def test_a_continuous_one_way_effect_left_out_is_its_bins_mean_of_the_other_trials():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (200, 1))
    y = np.where(x[:, 0] < 0.5, 0.0, 1.0) + rng.normal(0, 0.1, 200)
    effects = one_way_effects(x, y, categorical=[], lows=np.zeros(1), highs=np.ones(1), continuous=True)
    edges, effect = effects[0]
    assert len(edges) - 1 in (2, 4, 6, 8, 12, 16) and effect[0] < 0 < effect[-1]  # a step: an even count of bins

    class Forest:  # predicts nothing beyond the one-way effect
        oob_prediction_ = np.zeros(200)

    left_out = left_out_prediction(Forest(), x, y, effects, categorical=[])
    bins = np.clip(np.searchsorted(edges, x[:, 0], side="right") - 1, 0, len(effect) - 1)
    means = np.array([y[bins == b].mean() for b in range(len(effect))])
    centre = means.mean()  # the effect is each bin's mean less the mean over bins
    for i in (0, 57, 199):
        others = (bins == bins[i]) & (np.arange(200) != i)
        assert left_out[i] == pytest.approx(y[others].mean() - centre, abs=1e-12)


@pytest.mark.slow
def test_a_truly_zero_pair_is_not_called_distinguishable_under_noise_that_grows_with_a_parameter(full_tests):
    """Noise whose sd grows 9x with the learning rate: shuffling residuals across trials (the code
    before) moved the noise off the learning rate, and a truly-zero pair came out distinguishable in
    3 of 3 studies; sign-flipped residuals keep it where it is. CI checks one such study, ODYSSEY_FULL_TESTS=1 three."""
    for draw in range(3 if full_tests else 1):
        tables, truth = _analysed("noise by lr", 1000, draw=draw)
        table = tables[ALL_TRIALS]
        zero = [t for t, v in truth[ALL_TRIALS].items() if abs(v) < 1e-9 and t in table.index]
        assert zero and not table.loc[zero, "distinguishable"].any(), table.loc[zero]


def test_the_decisions_hold_across_seeds():
    """The floors come from enough refits that another seed (or CPU) rarely flips a decision: the
    issue's target is 95% of terms alike across seeds."""
    decisions = [_analysed("threshold", 400, seed=seed)[0][ALL_TRIALS]["distinguishable"] for seed in (0, 1, 2)]
    terms = decisions[0].index.drop(["noise"])
    same = np.mean([all(d[t] == decisions[0][t] for d in decisions) for t in terms])
    assert same >= 0.9, [d.to_dict() for d in decisions]


def test_odyssey_importance_takes_a_seed_and_says_it(tmp_path: Path, cli, root, storage_url):
    """--seed reaches the forests, resamples and refits, and the output names it."""
    import optuna

    study = bench.STUDIES["tiny mains"]
    frame = bench.draw(study, 60, np.random.default_rng(0), 1.0)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    stored = optuna.create_study(storage=storage_url, study_name="s")
    dists = {
        p: optuna.distributions.FloatDistribution(10.0 ** bench.SCALES[p].low, 10.0 ** bench.SCALES[p].high, log=True)
        if bench.SCALES[p].log
        else optuna.distributions.FloatDistribution(bench.SCALES[p].low, bench.SCALES[p].high)
        for p in study.params
    }
    for _, row in frame.iterrows():
        stored.add_trial(
            optuna.trial.create_trial(
                params={p: float(row["params_" + p]) for p in study.params},
                distributions=dists,
                value=float(row["value"]),
            )
        )

    def run(*extra: str) -> dict:
        done = cli(
            "importance",
            "--storage",
            storage_url,
            "--study",
            "s",
            "--format",
            "json",
            "--refits",
            "3",
            *extra,
            cwd=root,
        )
        return json.loads(done.stdout)

    first, again, other = run("--seed", "7"), run("--seed", "7"), run("--seed", "8")
    assert first["seed"] == 7 and other["seed"] == 8
    assert first["terms"] == again["terms"]
    assert [t["floor"] for t in first["terms"]] != [t["floor"] for t in other["terms"]]


def test_floors_do_not_move_when_another_cpu_rounds_the_refits_targets_differently(monkeypatch):
    """The replication's pair floors came out 0.058 on an AMD EPYC and 0.059 on an Intel Xeon, and
    one handwriting floor moved by 54%: the null refits' targets (the forest's additive part, summed
    by BLAS kernels that differ between AVX2 and AVX-512) differed in their last bits, and that
    decided ties between partitions. Here the other CPU is simulated: the same targets, a few ulps off."""
    import odyssey.analysis.importance as importance

    before = _analysed("threshold", 300)[0][ALL_TRIALS]
    exact = importance.additive_part

    def rounded_elsewhere(fanova, x):
        value = exact(fanova, x)
        return value * (1 + np.random.default_rng(1).choice([-2.0, -1.0, 0.0, 1.0, 2.0], len(value)) * 2.0**-52)

    monkeypatch.setattr(importance, "additive_part", rounded_elsewhere)
    after = _analysed("threshold", 300)[0][ALL_TRIALS]
    assert after["floor"].to_numpy() == pytest.approx(before["floor"].to_numpy(), rel=1e-9, abs=1e-12, nan_ok=True)
    assert after["distinguishable"].tolist() == before["distinguishable"].tolist()
