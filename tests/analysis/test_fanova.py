"""fANOVA: exact per tree (hand-built and brute-force checks), and right on functions with a known decomposition."""

from __future__ import annotations

import functools
import time
from itertools import combinations
from types import SimpleNamespace

import numpy as np
import optuna
import pytest
from optuna.distributions import FloatDistribution
from sklearn.tree import DecisionTreeRegressor

from odyssey.analysis.fanova import decompose_forest, decompose_tree, leaf_boxes
from odyssey.analysis.forest import fit_forest, predict
from odyssey.analysis.importance import analyse, choose_scales
from odyssey.analysis.importance_tables import terms_table
from odyssey.analysis.scales import Scale
from odyssey.analysis.trials import TooFewTrials, load_optuna_trials

UNIT2 = (np.zeros(2), np.ones(2))


def _decompose(tree, lows, highs, *, points: int = 9):
    pairs = list(combinations(range(len(lows)), 2))
    grid = [np.linspace(lo, hi, points) for lo, hi in zip(lows, highs)]
    return decompose_tree(
        leaf_boxes(tree, lows=lows, highs=highs), lows=lows, highs=highs, pairs=pairs, curve_x=grid, surface_x=grid
    )


def test_hand_built_tree_has_the_analytic_decomposition():
    # f = 1 where x0 <= 0.3; else 2 where x1 <= 0.5, else 4: worked out by hand in the comments below.
    tree = SimpleNamespace(
        children_left=[1, -1, 3, -1, -1],
        children_right=[2, -1, 4, -1, -1],
        feature=[0, -2, 1, -2, -2],
        threshold=[0.3, -2.0, 0.5, -2.0, -2.0],
        value=[0.0, 1.0, 0.0, 2.0, 4.0],
    )
    terms = _decompose(tree, *UNIT2)
    assert terms.mean == pytest.approx(2.4)  # 0.3*1 + 0.35*2 + 0.35*4
    assert terms.variance == pytest.approx(1.54)
    assert terms.main == pytest.approx([0.84, 0.49])  # marginals 1 | 3 over x0, 1.7 | 3.1 over x1
    assert terms.pair == pytest.approx([0.21])  # the rest: two dimensions have no higher order
    assert terms.main.sum() + terms.pair.sum() == pytest.approx(terms.variance)
    assert terms.curves[0, [0, -1]] == pytest.approx([1.0, 3.0])
    assert terms.curves[1, [0, -1]] == pytest.approx([1.7, 3.1])


def test_splits_outside_the_bounds_carry_no_volume():
    tree = SimpleNamespace(
        children_left=[1, -1, -1],
        children_right=[2, -1, -1],
        feature=[0, -2, -2],
        threshold=[5.0, 0, 0],
        value=[0, 1.0, 9.0],
    )
    boxes = leaf_boxes(tree, lows=np.zeros(1), highs=np.ones(1))
    assert boxes.value.tolist() == [1.0]
    assert _decompose(tree, np.zeros(1), np.ones(1)).variance == 0.0


def _brute_force(trees, predict, lows: np.ndarray, highs: np.ndarray):
    """Every cell of the grid cut at all the trees' thresholds, predicted at its midpoint, marginalised
    by weighted sums: mean, variance, main and pair variances of `predict` (one tree's, or a forest's mean)."""
    d = len(lows)
    cuts = [[lows[k], highs[k]] for k in range(d)]
    for tree in trees:
        for k in range(d):
            cuts[k] += list(tree.threshold[tree.feature == k])
    edges = [np.unique(np.clip(c, lows[k], highs[k])) for k, c in enumerate(cuts)]
    widths = [np.diff(e) / (highs[k] - lows[k]) for k, e in enumerate(edges)]
    mids = np.meshgrid(*[(e[1:] + e[:-1]) / 2 for e in edges], indexing="ij")
    f = predict(np.stack([m.ravel() for m in mids], axis=1)).reshape(mids[0].shape)
    weight = functools.reduce(np.multiply.outer, widths)
    mean = (weight * f).sum()

    def marginal(keep):
        axes = tuple(k for k in range(d) if k not in keep)
        return (weight * f).sum(axis=axes) / weight.sum(axis=axes)

    main = [widths[k] @ (marginal((k,)) - mean) ** 2 for k in range(d)]
    pair = [
        widths[i] @ (marginal((i, j)) - mean) ** 2 @ widths[j] - main[i] - main[j] for i, j in combinations(range(d), 2)
    ]
    return mean, (weight * (f - mean) ** 2).sum(), np.array(main), np.array(pair)


def test_tree_decomposition_is_exact_against_a_brute_force_grid():
    rng = np.random.default_rng(1)
    lows, highs = np.array([0.0, -1.0, 2.0]), np.array([1.0, 1.0, 5.0])
    x = rng.uniform(lows, highs, (80, 3))
    y = np.sin(3 * x[:, 0]) * x[:, 1] + x[:, 2] + rng.normal(0, 0.1, 80)
    tree = DecisionTreeRegressor(max_leaf_nodes=30, random_state=0).fit(x, y)
    mean, variance, main, pair = _brute_force([tree.tree_], tree.predict, lows, highs)
    terms = _decompose(tree.tree_, lows, highs)
    assert terms.mean == pytest.approx(mean, abs=1e-12)
    assert terms.variance == pytest.approx(variance, abs=1e-12)
    assert terms.main == pytest.approx(main, abs=1e-12)
    assert terms.pair == pytest.approx(pair, abs=1e-12)
    # The surface at (x0, x1) = (0.5, 0), grid point 4 of 9 in both, is the tree's mean over x2 there.
    third = np.linspace(2.0, 5.0, 30001)
    brute = tree.predict(np.column_stack([np.full_like(third, 0.5), np.zeros_like(third), third])).mean()
    assert terms.surfaces[0, 4, 4] == pytest.approx(brute, abs=2e-3)


def _shares(f, *, n: int, d: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (n, d))
    result = decompose_forest(fit_forest(x, f(x), seed=seed), lows=np.zeros(d), highs=np.ones(d))
    return result.main, result.pair, result


# (function, trials, dimensions, main shares, pair shares in combinations order, tolerance)
CASES = {
    # V_i = a_i^2 / 12 for a_i * x_i: 1 : 4; x2, x3 irrelevant.
    "additive with irrelevant": (lambda x: x[:, 0] + 2 * x[:, 1], 300, 4, [0.2, 0.8, 0, 0], [0] * 6, 0.04),
    # A centred product has no main effects at all. Greedy trees find it hardest (no first split
    # gains anything), so it needs more trials than the others for the same accuracy.
    "pure interaction": (lambda x: (x[:, 0] - 0.5) * (x[:, 1] - 0.5), 1000, 2, [0, 0], [1.0], 0.03),
    # x0 + 4 (x0 - 1/2)(x1 - 1/2): V_0 = 1/12, V_01 = 16/144, so 3/7 and 4/7.
    "mixed": (lambda x: x[:, 0] + 4 * (x[:, 0] - 0.5) * (x[:, 1] - 0.5), 300, 3, [3 / 7, 0, 0], [4 / 7, 0, 0], 0.02),
    "one relevant of four": (lambda x: np.sin(4 * x[:, 0]), 300, 4, [1, 0, 0, 0], [0] * 6, 0.01),
}


@pytest.mark.parametrize("case", CASES)
def test_shares_match_the_analytic_decomposition(case):
    f, n, d, main, pair, tolerance = CASES[case]
    got_main, got_pair, result = _shares(f, n=n, d=d)
    assert got_main == pytest.approx(main, abs=tolerance)
    assert got_pair == pytest.approx(pair, abs=tolerance)
    assert result.higher_order == pytest.approx(1 - sum(main) - sum(pair), abs=tolerance)


def test_marginal_curve_of_an_additive_function_is_its_term():
    _, _, result = _shares(lambda x: x[:, 0] + 2 * x[:, 1], n=400, d=2)
    # Averaging 2 x1 over [0, 1] leaves x0 + 1.
    inner = slice(10, -10)  # trees are piecewise constant: the ends of the range are cruder
    assert result.curves[0][inner] == pytest.approx(result.curve_x[0][inner] + 1.0, abs=0.06)


def _optuna_study(n: int, seed: int = 0) -> optuna.Study:
    study = optuna.create_study(direction="minimize")
    dists = {"learning_rate": FloatDistribution(1e-6, 1e-2, log=True), "input_noise": FloatDistribution(0.0, 1.0)}
    rng = np.random.default_rng(seed)
    for _ in range(n):
        params = {"learning_rate": 10 ** rng.uniform(-6, -2), "input_noise": rng.uniform(0, 1)}
        value = np.log10(params["learning_rate"]) + 0.5 * params["input_noise"]
        study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, value=value))
    return study


def test_log_scaled_parameter_is_analysed_in_log10():
    # On log10 scales: V_lr = 4^2/12, V_noise = 0.5^2/12.
    study = _optuna_study(300)
    trials = load_optuna_trials(study._storage, study.study_name)
    scales = choose_scales(trials)
    assert [s.label for s in scales] == ["log10(learning_rate)", "input_noise"]
    assert (scales[0].low, scales[0].high) == (-6.0, -2.0)  # from the distribution, not the data
    terms = terms_table(analyse(trials.complete(), scales=scales)).set_index("term")["mean"]
    truth = np.array([16, 0.25]) / 16.25
    assert terms[["log10(learning_rate)", "input_noise"]].to_numpy() == pytest.approx(truth, abs=0.02)
    # The same trials on the raw scale: a forest misattributes the variance (about 0.92 here).
    raw = [Scale("learning_rate", 1e-6, 1e-2), scales[1]]
    assert terms_table(analyse(trials.complete(), scales=raw))["mean"].iloc[0] < truth[0] - 0.04


def test_too_few_trials_is_refused_with_the_count():
    study = _optuna_study(4)
    trials = load_optuna_trials(study._storage, study.study_name)
    with pytest.raises(TooFewTrials, match="at least 20 .* 4 present"):
        analyse(trials.complete(), scales=choose_scales(trials))


def test_constant_metric_has_undefined_shares_not_zero():
    x = np.random.default_rng(0).uniform(0, 1, (50, 2))
    result = decompose_forest(fit_forest(x, np.zeros(50)), lows=np.zeros(2), highs=np.ones(2))
    assert np.isnan(result.main).all() and np.isnan(result.pair).all() and np.isnan(result.higher_order)


@pytest.mark.slow
def test_all_pairs_on_paper_sized_study_take_seconds(full_tests):
    """5400 trials x 4 parameters with ODYSSEY_FULL_TESTS=1 (the paper's size), else 2000."""
    n = 5400 if full_tests else 2000
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (n, 4))
    y = x[:, 0] ** 2 + np.sin(3 * x[:, 1]) + x[:, 2] * x[:, 3]
    started = time.perf_counter()
    result = decompose_forest(fit_forest(x, y), lows=np.zeros(4), highs=np.ones(4))
    assert time.perf_counter() - started < 30
    # Var x0^2 = 4/45; Var sin(3 x1) = 1/2 - sin(6)/12 - ((1 - cos 3)/3)^2; x2 x3: 1/48 each, 1/144 jointly.
    parts = np.array([4 / 45, 0.5 - np.sin(6) / 12 - ((1 - np.cos(3)) / 3) ** 2, 1 / 48, 1 / 48, 1 / 144])
    truth = parts / parts.sum()
    assert result.main == pytest.approx(truth[:4], abs=0.03)
    assert result.pair[5] == pytest.approx(truth[4], abs=0.03)


def test_a_forest_grows_the_same_trees_when_the_objective_differs_in_its_last_bits():
    """What another CPU's rounding does to a refit's target (BLAS kernels differ between AVX2 and
    AVX-512): a few values one ulp off. With the objective as floats, a partition two features
    give alike was decided by the rounding of two sums, and the trees differed (the replication's
    pair floors moved by up to 54% between an Intel Xeon and an AMD EPYC); with exact integer
    targets the sums are exact, so the tie goes the same way."""
    rng = np.random.default_rng(0)
    n = 500
    x = np.column_stack(
        [rng.uniform(-6, -2, n), np.log10(rng.integers(20, 200, n)), rng.integers(0, 9, n), rng.uniform(0, 1, n)]
    )
    y = np.sin(x[:, 0]) + 0.1 * x[:, 2] + 0.3 * rng.standard_normal(n)
    nudged = y * (1 + rng.choice([-1, 0, 1], n) * 2.0**-52)
    assert not np.array_equal(y, nudged)
    first, second = fit_forest(x, y), fit_forest(x, nudged)
    for a, b in zip(first.estimators_, second.estimators_):
        assert np.array_equal(a.tree_.feature, b.tree_.feature) and np.array_equal(a.tree_.threshold, b.tree_.threshold)


@pytest.mark.parametrize("d", [2, 3])
def test_the_forests_mean_prediction_is_decomposed_exactly(d: int):
    """Main effects and pairs of the mean of several trees are exact (all trees' leaves on one grid);
    the total is exact in two dimensions and, in three, off by the quasi-random estimate of the
    higher-order rest alone."""
    rng = np.random.default_rng(3)
    lows, highs = np.array([0.0, -1.0, 2.0])[:d], np.array([1.0, 1.0, 5.0])[:d]
    x = rng.uniform(lows, highs, (120, d))
    y = np.sin(3 * x[:, 0]) * x[:, 1] + (x[:, 2] * x[:, 0] * x[:, 1] if d == 3 else 0) + rng.normal(0, 0.1, 120)
    forest = fit_forest(x, y, trees=4, min_samples_leaf=5)
    _, variance, main, pair = _brute_force(
        [est.tree_ for est in forest.estimators_], lambda p: predict(forest, p), lows, highs
    )
    result = decompose_forest(forest, lows=lows, highs=highs)
    assert result.main * result.variance == pytest.approx(main, rel=1e-9, abs=1e-12)
    assert result.pair * result.variance == pytest.approx(pair, rel=1e-9, abs=1e-12)
    assert result.variance == pytest.approx(variance, rel=1e-9 if d == 2 else 0.01)
