"""Importance against known truth: the analytic studies of benchmarks/importance_accuracy.py, whose
shares are exact (quadrature), at sizes the suite affords. The benchmark runs them all, at 60, 200
and 1000 trials, with coverage and error rates; these are the cases the issue measured, each of
which the code before this change got wrong."""

from __future__ import annotations

import importlib.util
import json
import sys
from functools import reduce
from pathlib import Path

import numpy as np
import pytest

from odyssey.analysis.fanova import decompose_forest
from odyssey.analysis.forest import (
    Effect,
    _loo_error,
    fit_effects,
    fit_forest,
    interaction_effects,
    left_out_prediction,
)
from odyssey.analysis.importance import ALL_TRIALS, FIRST_NOTE, analyse_spaces
from odyssey.analysis.importance_tables import terms_table
from odyssey.analysis.uncertainty import table_bound, table_bounds

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


def test_a_pair_of_a_nine_level_choice_and_a_continuous_parameter_is_found():
    """A 9-level `variant` whose hidden-size slope differs by choice (pair 0.061) beside a learning
    rate that explains most of the rest: after the choice's one-way effect no single split helps, and
    the code before gave the pair 0.016 in this draw (0.000-0.004 in the benchmark's three). Binned
    first (9 choices by equal-width hidden-size bins), it is found: 0.058 here, the largest of the pairs."""
    tables, truth = _analysed("variant x h", 1000, refits=0)
    table, pair = tables[ALL_TRIALS], "log10(hidden_size) × variant"
    assert table.loc[pair, "mean"] == pytest.approx(truth[ALL_TRIALS][pair], abs=0.03)
    assert table.loc[pair, "mean"] == table.loc[table["kind"] == "pair", "mean"].max()


def test_a_three_way_interaction_beside_a_main_effect_keeps_both_shares():
    """A three-way interaction of 0.63 beside a main effect of hidden size (0.36): the forest's mean
    smoothed the interaction away, and the code before gave it 0.17-0.24 and hidden size 0.61-0.67.
    Binned first as a triple, both come out within 0.05."""
    tables, truth = _analysed("3-way+2", 1000, refits=0)
    table, exact = tables[ALL_TRIALS], truth[ALL_TRIALS]
    for term in ("log10(hidden_size)", "higher order"):
        assert table.loc[term, "mean"] == pytest.approx(exact[term], abs=0.05), term


def test_which_effects_come_first_is_chosen_by_left_out_error():
    """On a smooth study whose pair is between two strong parameters, fitting the one-way effects
    first blurred the pair (largest error 0.048 -> 0.091 at 1000 trials), and the left-out error
    keeps the forest alone there; the two studies above fit every one-way effect first, and the
    second the interactions too; the note says which."""
    chosen = {}
    for name in ("noise 1/2", "bowl, 1/3", "variant x h"):
        study = bench.STUDIES[name]
        frame = bench.draw(
            study, 1000, np.random.default_rng([0, 1000]), bench.signal_variance(study, np.random.default_rng(12345))
        )
        (_, result), *_ = analyse_spaces(frame, scales=[bench.SCALES[p] for p in study.params], refits=0)
        chosen[name] = (result.first, FIRST_NOTE.get(result.first, "") in result.note)
    assert chosen == {
        "noise 1/2": ("categorical", True),
        "bowl, 1/3": ("one-way", True),
        "variant x h": ("interactions", True),
    }


def test_an_effect_left_out_is_its_cells_mean_of_the_other_trials():
    """The left-out prediction that chooses the model: a continuous one-way effect's bin, and an
    interaction's cell (fit to what the one-way effects leave), each without the trial itself."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (400, 2))
    y = np.where(x[:, 0] < 0.5, 0.0, 1.0) + np.where((x[:, 0] < 0.5) == (x[:, 1] < 0.5), 0.6, -0.6)
    y = y + rng.normal(0, 0.1, 400)
    effects, correction = fit_effects(x, y, categorical=[], lows=np.zeros(2), highs=np.ones(2), first="interactions")
    assert [e.dims for e in effects][-1] == (0, 1)
    step = effects[0]
    assert step.dims == (0,) and len(step.edges[0]) - 1 in (2, 4, 6, 8, 12, 16)  # a step: an even count of bins
    assert step.values[0] < 0 < step.values[-1]

    class Forest:  # predicts nothing beyond the effects
        oob_prediction_ = np.zeros(400)

    left_out = left_out_prediction(Forest(), x, effects, correction)
    one_way = [e for e in effects if len(e.dims) == 1]
    rest = y - sum(e(x) for e in one_way)  # what the interaction was fit to
    expected = np.zeros(400)
    for effect, target in [*((e, y) for e in one_way), (effects[-1], rest)]:
        cells = effect.cells(x)
        means = np.array([target[cells == c].mean() for c in range(effect.values.size)])
        for i in range(400):
            others = (cells == cells[i]) & (np.arange(400) != i)
            expected[i] += target[others].mean() - means.mean()  # each cell's mean less the mean over cells
    np.testing.assert_allclose(left_out, expected, atol=1e-12)


def test_only_interactions_beyond_noise_are_fit_first_among_many_parameters():
    """Twelve parameters, one real pair: of the 66 pairs' and 220 triples' grids, the best predicts
    left-out trials better than one mean by chance, and by left-out error alone two spurious pairs were
    fit beside the real one here; the F test over every grid a round tries keeps
    the real pair alone (and on pure noise, nothing)."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (1000, 12))
    bounds = {"categorical": [], "lows": np.zeros(12), "highs": np.ones(12)}
    y = (x[:, 1] - 0.5) * (x[:, 2] - 0.5) * 4 + rng.normal(0, 0.3, 1000)
    found, _ = interaction_effects(x, y, **bounds)
    assert [e.dims for e in found] == [(1, 2)]
    assert interaction_effects(x, rng.normal(0, 1, 1000), **bounds)[0] == []


def test_an_interaction_fit_first_is_decomposed_exactly():
    """Effects of a pair and a triple as boxes (fanova._effect_boxes): a checkerboard of two
    parameters is a pure pair, of three a pure three-way interaction, beside a forest with nothing to fit."""
    x = np.random.default_rng(0).uniform(0, 1, (100, 3))
    forest = fit_forest(x, np.zeros(100), trees=2)
    halves = np.array([0.0, 0.5, 1.0])
    sign = np.array([1.0, -1.0])
    pair = Effect((0, 2), (halves, halves), np.outer(sign, sign))
    triple = Effect((0, 1, 2), (halves,) * 3, np.einsum("i,j,k->ijk", sign, sign, sign))
    lows, highs = np.zeros(3), np.ones(3)
    shares = decompose_forest(forest, lows=lows, highs=highs, effects=[pair]).shares
    np.testing.assert_allclose(shares, [0, 0, 0, 0, 1, 0, 0], atol=1e-9)  # mains, pairs (0,1) (0,2) (1,2), rest
    shares = decompose_forest(forest, lows=lows, highs=highs, effects=[triple]).shares
    np.testing.assert_allclose(shares, [0, 0, 0, 0, 0, 0, 1], atol=1e-9)


def test_a_cells_left_out_error_is_the_direct_one():
    """`_loo_error` from three sums per cell, against predicting each trial by its cell's other trials."""
    rng = np.random.default_rng(1)
    levels, y = rng.integers(0, 7, 300), 1e3 + rng.normal(0, 1, 300)  # a large mean: no digits lost
    direct = np.mean([(y[i] - y[(levels == levels[i]) & (np.arange(300) != i)].mean()) ** 2 for i in range(300)])
    assert _loo_error(levels, y, 7) == pytest.approx(direct, rel=1e-9)
    assert _loo_error(np.array([0, 0, 1]), np.array([1.0, 2.0, 3.0]), 2) == np.inf  # a trial alone in its cell


def test_the_interval_of_a_pair_the_forest_does_not_find_reaches_its_truth():
    """Hidden size and input noise matter only as a pair (0.074) beside strong main effects: at 200
    trials the forest finds it in neither all the trials nor their halves, so the move between
    them shows no bias and the interval stopped short (the code before: share 0.002, interval up to
    0.007 in draw 0; 0.001 and 0.002 in draw 2). The two-way table of the trials bounds it from above."""
    for draw in (0, 2):
        tables, truth = _analysed("bowl, 1/3", 200, draw=draw)
        term = "log10(hidden_size) × input_noise"
        row = tables[ALL_TRIALS].loc[term]
        assert row["mean"] < 0.02 and row["high"] >= truth[ALL_TRIALS][term], (draw, row.to_dict())


def test_the_interval_of_higher_order_reaches_a_three_way_interaction_the_forest_does_not_find():
    """A pure three-way interaction (higher order 1.0) at 60 trials: the forest finds none of it (0.02
    or less) and the code before ended the interval at 0.02-0.16. The three-way tables of the trials
    (2 bins a side, 7.5 trials a cell) bound it from above: in these draws up to the truth."""
    for draw in (1, 2):
        tables, truth = _analysed("three-way", 60, draw=draw)
        row = tables[ALL_TRIALS].loc["higher order"]
        assert row["mean"] < 0.05 and row["high"] >= truth[ALL_TRIALS]["higher order"], (draw, row.to_dict())


@pytest.mark.parametrize(
    ("shape", "n", "growth"),
    [((8,), 200, 1), ((4,), 60, 1), ((2, 2), 60, 1), ((4, 4), 200, 1), ((9, 2), 100, 1), ((2, 8), 200, 1)]
    + [((2, 2, 2), 60, 1), ((4, 2, 2), 200, 1), ((8,), 200, 9), ((4, 4), 200, 9)],
    ids=str,
)
def test_a_tables_bound_holds_its_effect_95_percent_of_the_time(shape, n, growth):
    """`table_bound` is called a 95% upper bound of the binned effect's variance: simulated, with
    the effect known (a product of linear functions of the sides, or of a choice's slopes; of two
    or three sides, a pure interaction; variance 0.03), noise and another parameter's effect beside
    it (0.11), it holds 90-99% of the time (94-96% measured), and where there is no effect it
    mostly stays below one of 0.03. The normal approximation before held 88% for effects of one
    degree of freedom (2 x 2, 2 x 2 x 2 tables). `growth`: the noise's sd grows that many times
    across the first side's cells (93-95% measured at 9x)."""
    rng = np.random.default_rng(list(shape) + [n])
    centres = [(np.arange(k) + 0.5) / k - 0.5 for k in shape]
    slopes = [np.linspace(-1.0, 1.0, k) if k == 9 else c for k, c in zip(shape, centres)]
    binned = reduce(np.multiply.outer, slopes)
    for axis in range(binned.ndim):
        binned = binned - binned.mean(axis=axis, keepdims=True)
    exact = 0.03  # the effect's variance; the noise's is 0.11
    binned *= np.sqrt(exact / np.mean(binned**2))
    held, zero = [], []
    for _ in range(400):
        levels = [rng.integers(0, k, n) for k in shape]
        effect = binned[tuple(levels)]
        other = rng.uniform(-0.5, 0.5, n)
        sd = 0.3 * (1.0 + (growth - 1.0) * (levels[0] / (shape[0] - 1) - 0.5) * 2.0 / (growth + 1.0))
        noise = rng.normal(0.0, 1.0, n) * sd + 0.5 * other
        held.append(table_bound(levels, shape, effect + noise))
        zero.append(table_bound(levels, shape, noise))
    held, zero = np.array(held), np.array(zero)
    assert np.isfinite(held).mean() > 0.9  # NaN only where a cell drew no trial
    assert 0.90 <= np.mean(held[np.isfinite(held)] >= exact) <= 0.99, np.mean(held[np.isfinite(held)] >= exact)
    assert np.nanmedian(zero) < exact, np.nanmedian(zero)  # 0.004-0.015 measured, by cells per trial


def test_tables_use_a_choices_levels_and_need_trials_in_every_cell():
    """A categorical side is its choices, a continuous one 2-8 bins; with 60 trials a 9-level
    choice's own table (9 cells, 5 trials a cell on average) bounds it, but no table of it with a
    continuous parameter (18 cells or more) is filled: NaN, and the interval stays the forest's."""
    rng = np.random.default_rng(3)
    n = 60
    x = np.column_stack([rng.uniform(0.0, 1.0, n), rng.uniform(0.0, 1.0, n), rng.integers(0, 9, n)])
    y = np.where(x[:, 2] == 4, 1.0, 0.0) + rng.normal(0.0, 0.1, n)
    lows, highs = np.array([0.0, 0.0, -0.5]), np.array([1.0, 1.0, 8.5])
    bounds = table_bounds(x, y, np.zeros((n, 3)), [(0, 1), (0, 2)], categorical=[2], lows=lows, highs=highs)
    main_x, main_choice, pair, pair_choice = bounds[0], bounds[2], bounds[3], bounds[4]
    assert np.isfinite([main_x, main_choice, pair]).all() and np.isnan(pair_choice), bounds
    exact = np.var(np.eye(9)[4])  # the choice's effect, uniform over its 9 choices: 0.099
    assert main_choice >= exact and main_x < exact / 3, bounds


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
