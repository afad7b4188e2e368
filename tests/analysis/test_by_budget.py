"""Importance across budgets, checked against studies whose truth is known: trials report learning curves
in which the learning rate decides the early epochs and the hidden size the late ones, switching at a
chosen epoch, and Optuna's own SuccessiveHalvingPruner stops some of them."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import optuna
import pandas as pd
import pytest
import sqlalchemy
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from odyssey.analysis.by_budget import (
    LEVELS,
    analyse_budgets,
    budget_levels,
    budget_table,
    clear_order,
    ranking_correlation,
    trial_correlation,
)
from odyssey.analysis.curves import values_at
from odyssey.analysis.importance import Importance
from odyssey.analysis.trials import load_optuna_trials
from odyssey.console import print_importance
from odyssey.errors import OdysseyError
from odyssey.optuna_private import rdb_backend
from odyssey.storage import open_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)

DISTS = {p: FloatDistribution(0.0, 1.0) for p in ("learning_rate", "hidden_size", "extra")}
FAST = {"trees": 16, "refits": 4}  # the default's 32 trees and 12 refits take twice as long and decide the same here
LR, HIDDEN = "learning_rate", "hidden_size"


def simulate(
    storage, *, trials: int, epochs: int, switch: int, pruner=None, seed: int = 0, weights=None, noise: float = 0.05
) -> optuna.Study:
    """A study run as Optuna's users run one (ask, report each epoch, ask the pruner, tell). Its value at
    epoch e is (epochs - e) + a*lr + b*hidden + noise, with (a, b) = (1, 0.3) up to epoch `switch` and
    (0.3, 1) after: the true main-effect shares are 0.917 and 0.083, then the other way round, and
    `extra` has none. The curve falls by 1 an epoch, more than the parameters move it: its best value
    up to an epoch is its value there."""
    rng = np.random.default_rng(seed)
    study = optuna.create_study(storage=storage, study_name="sim", pruner=pruner or optuna.pruners.NopPruner())
    for _ in range(trials):
        params = {p: float(rng.uniform()) for p in DISTS}
        study.add_trial(optuna.trial.create_trial(state=TrialState.WAITING, params=params, distributions=DISTS))
        trial = study.ask()
        for epoch in range(1, epochs + 1):
            a, b = weights(epoch) if weights else ((1.0, 0.3) if epoch <= switch else (0.3, 1.0))
            value = (epochs - epoch) + a * params[LR] + b * params[HIDDEN] + rng.normal(0.0, noise)
            trial.report(value, epoch)
            if epoch < epochs and trial.should_prune():
                study.tell(trial, state=TrialState.PRUNED)
                break
        else:
            study.tell(trial, value)
    return study


def halving() -> optuna.pruners.BasePruner:
    return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=2)  # rungs at epochs 1, 2, 4


@pytest.fixture(scope="module")
def unpruned():
    """Every trial trains 8 epochs; the learning rate decides epochs 1-2, the hidden size epochs 3-8."""
    study = simulate(optuna.storages.InMemoryStorage(), trials=80, epochs=8, switch=2)
    return study, by_budget(study)


@pytest.fixture(scope="module")
def halved():
    """Successive halving over 400 trials (rungs at epochs 1, 2, 4); the switch after epoch 3. Seed 7:
    the 51 trials that reach epoch 8 are too few to order the two parameters clearly (seeds 0-6 of
    this study come out alike, bar that)."""
    study = simulate(optuna.storages.InMemoryStorage(), trials=400, epochs=8, switch=3, pruner=halving(), seed=7)
    return study, by_budget(study)


def by_budget(study: optuna.Study, **options):
    trials = load_optuna_trials(optuna_storage(study), "sim")
    return analyse_budgets(trials, task="sim", **(FAST | options))


def optuna_storage(study: optuna.Study):
    from odyssey.optuna_private import storage_of

    return storage_of(study)


def shares(result: Importance) -> dict[str, tuple[float, float, float]]:
    terms = [(s.param, d) for d, s in enumerate(result.scales)]
    u = result.uncertainty
    return {p: (float(result.fanova.main[d]), float(u.low[d]), float(u.high[d])) for p, d in terms}


def test_the_budgets_are_the_pruners_rungs_else_a_thinned_handful_of_epochs():
    assert budget_levels(list(range(1, 8)), [], full=8) == [1, 2, 3, 5, 8]
    assert budget_levels(list(range(1, 100)), [], full=100) == [1, 3, 8, 21, 55, 100]
    assert budget_levels(list(range(1, 8)), [1, 2, 4], full=8) == [1, 2, 4, 8]  # successive halving's rungs
    assert budget_levels(list(range(10, 100, 10)), [], full=100) == [10, 20, 30, 50, 80, 100]  # steps of 10
    median = budget_levels(list(range(1, 50)), list(range(3, 50)), full=50)  # a median pruner stops at every epoch
    assert median[0] == 3 and median[-1] == 50 and len(median) <= LEVELS and median == sorted(set(median))
    assert budget_levels([1, 2, 3], [], full=3) == [1, 2, 3]


def test_a_trials_value_at_a_budget_is_its_best_so_far_and_a_complete_trial_reaches_every_budget():
    memory = optuna.storages.InMemoryStorage()
    for direction, best in (("minimize", min), ("maximize", max)):
        study = optuna.create_study(storage=memory, study_name=direction, direction=direction)
        curves = {
            TrialState.COMPLETE: {1: 5.0, 2: 3.0, 3: 4.0},  # stopped by patience at epoch 3 of 5
            TrialState.PRUNED: {1: 6.0, 2: 7.0},
            TrialState.FAIL: {1: 1.0, 2: 1.0, 3: 1.0, 4: 1.0},  # not finished: never counted
        }
        for state, curve in curves.items():
            study.add_trial(
                optuna.trial.create_trial(
                    state=state,
                    value=best(curve.values()) if state == TrialState.COMPLETE else None,
                    params={"x": 0.5},
                    distributions={"x": FloatDistribution(0, 1)},
                    intermediate_values=curve,
                )
            )
        trials = load_optuna_trials(memory, direction)
        at = {
            b: rows.set_index("state")["value"].to_dict() for b, rows in values_at(trials, direction, [2, 3, 5]).items()
        }
        assert at[2] == {"COMPLETE": best(5.0, 3.0), "PRUNED": best(6.0, 7.0)}, direction
        assert at[3] == {"COMPLETE": best(5.0, 3.0, 4.0)} and at[5] == at[3], direction


def reached(study: optuna.Study, budget: int) -> int:
    """Optuna's own count of the finished trials that reported `budget` or a later step."""
    finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    return sum(max(t.intermediate_values) >= budget for t in finished)


def top(level) -> str:
    return max(shares(level.importance).items(), key=lambda kv: kv[1][0])[0]


def test_the_ranking_settles_where_the_truth_changes_it(unpruned):
    study, analysis = unpruned
    switch = 2
    assert [lv.budget for lv in analysis.levels] == [1, 2, 3, 5, 8] and analysis.full == 8 and analysis.unit == "step"
    for level in analysis.levels:
        assert level.trials == reached(study, level.budget) == 80 and level.pruned == 0
        assert top(level) == (LR if level.budget <= switch else HIDDEN), level.budget
        assert level.reversed == (((LR, HIDDEN),) if level.budget <= switch else ()), level.budget
        assert (level.ranking_agrees.high < 1.0) == (level.budget <= switch), level.budget
        # Every trial reaches every budget: the shares are the whole space's, known exactly.
        truth = {LR: 0.917, HIDDEN: 0.083} if level.budget <= switch else {LR: 0.083, HIDDEN: 0.917}
        for param, share in truth.items():
            value, low, high = shares(level.importance)[param]
            assert low - 0.03 <= share <= high + 0.03, (level.budget, param, value, low, high)
    assert analysis.settled == 3
    assert analysis.statement.startswith("From step 3 on, the ranking of the hyperparameters no longer changes")
    assert "at step 2, learning_rate ranks clearly above hidden_size, at step 3 clearly below it" in analysis.statement


def test_under_successive_halving_each_budget_has_every_trial_that_reached_it_and_the_turn_is_found(halved):
    study, analysis = halved
    assert [lv.budget for lv in analysis.levels] == [1, 2, 4, 8]  # the pruner's rungs and the full budget
    assert [lv.trials for lv in analysis.levels] == [reached(study, lv.budget) for lv in analysis.levels]
    assert analysis.levels[0].trials == 400 and analysis.levels[-1].trials < 100
    assert sum(lv.pruned for lv in analysis.levels) == sum(t.state == TrialState.PRUNED for t in study.trials)
    assert [top(lv) for lv in analysis.levels[:3]] == [LR, LR, HIDDEN]
    # The full budget's few trials order nothing clearly, so no budget is reversed against it alone;
    # epochs 2 and 4 still show the turn, and the ranking settles after it.
    assert clear_order(analysis.levels[-1].importance, LR, HIDDEN) == 0
    assert not any(lv.reversed for lv in analysis.levels)
    assert analysis.settled == 4
    assert "at step 2, learning_rate ranks clearly above hidden_size, at step 4 clearly below it" in analysis.statement


def test_a_ranking_that_changes_at_the_full_budget_never_settles():
    analysis = by_budget(simulate(optuna.storages.InMemoryStorage(), trials=80, epochs=8, switch=7))
    assert analysis.settled is None and all(lv.reversed for lv in analysis.levels[:-1])
    assert analysis.statement.startswith("The ranking of the hyperparameters keeps changing until the full budget")
    assert "at step 5, learning_rate ranks clearly above hidden_size, at step 8 clearly below it" in analysis.statement


def test_parameters_of_equal_shares_swapping_places_are_no_change_of_the_ranking():
    """Four parameters that matter equally at every epoch: their order is noise. Here it swaps so that
    the ranking correlation's interval at epoch 1 stops short of 1 (the naive reading: "it changed"),
    yet no two budgets order any pair clearly the other way round: the ranking is settled from epoch 1."""
    dists = {f"x{k}": FloatDistribution(0.0, 1.0) for k in range(4)}
    rng = np.random.default_rng(3)
    study = optuna.create_study(study_name="sim")
    for _ in range(120):
        params = {p: float(rng.uniform()) for p in dists}
        # noise of 0.2: enough that their order is uncertain at every epoch
        curve = {e: (4 - e) + sum(params.values()) + rng.normal(0, 0.2) for e in range(1, 5)}
        study.add_trial(
            optuna.trial.create_trial(
                state=TrialState.COMPLETE, value=curve[4], params=params, distributions=dists, intermediate_values=curve
            )
        )
    analysis = analyse_budgets(load_optuna_trials(optuna_storage(study), "sim"), task="sim", **FAST)
    assert analysis.levels[0].ranking_agrees.high < 1.0
    assert analysis.settled == 1 and "no two budget levels order two of them clearly" in analysis.statement


def test_a_budget_with_too_few_trials_says_why_and_so_does_the_statement():
    pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=4)
    analysis = by_budget(simulate(optuna.storages.InMemoryStorage(), trials=120, epochs=8, switch=3, pruner=pruner))
    final = analysis.levels[-1]
    assert isinstance(final.importance, str) and f"{final.trials} trials reached step 8" in final.importance
    assert "needs at least 20" in final.importance and final.trials < 20
    assert analysis.settled is None and "no importance at the full budget (step 8)" in analysis.statement
    table = budget_table(analysis)
    assert table.loc[table["budget"] == 8, "note"].tolist() == [final.importance]
    first = table[table["budget"] == 1]
    assert set(first["kind"]) == {"main", "rest", "noise"} and first["floor"].notna().sum() == 4


def test_the_trials_rank_correlation_covers_the_truth_nine_times_in_ten():
    """Bivariate normal pairs, whose Spearman correlation is (6/pi) asin(rho/2) exactly: the 90%
    bootstrap interval held it in 0.875-0.95 of 200 draws at 20-200 pairs when measured."""
    rng, rho, hits, draws = np.random.default_rng(1), 0.7, 0, 200
    truth = 6 / math.pi * math.asin(rho / 2)
    for draw in range(draws):
        x = rng.multivariate_normal([0.0, 0.0], [[1.0, rho], [rho, 1.0]], size=40)
        found = trial_correlation(x[:, 0], x[:, 1], seed=draw)
        hits += found.low <= truth <= found.high
    assert 0.82 <= hits / draws <= 0.97, hits / draws
    assert math.isnan(trial_correlation(np.arange(4.0), np.arange(4.0)).value)  # too few trials: none, and why
    assert "4 trials" in trial_correlation(np.arange(4.0), np.arange(4.0)).why


def test_the_ranking_correlation_compares_what_matters_at_either_budget(unpruned):
    _, analysis = unpruned
    early, late, full = analysis.levels[0].importance, analysis.levels[3].importance, analysis.levels[-1].importance
    flipped, same = ranking_correlation(early, full), ranking_correlation(late, full)
    assert flipped.count == 2 and flipped.value == pytest.approx(-1.0) and flipped.high == pytest.approx(-1.0)
    assert same.value == pytest.approx(1.0) and same.low == pytest.approx(1.0)


def _curves_study(storage) -> None:
    """Curves with every kind of value Optuna stores apart (infinite, NaN), and a pruned trial with a value."""
    study = optuna.create_study(storage=storage, study_name="curves")
    x = {"x": FloatDistribution(0, 1)}
    for k, (state, curve) in enumerate(
        [
            (TrialState.COMPLETE, {0: 3.0, 1: 2.0, 2: 1.5}),
            (TrialState.PRUNED, {0: math.inf, 1: -math.inf}),
            (TrialState.PRUNED, {0: 4.0, 1: math.nan}),
            (TrialState.COMPLETE, {}),
        ]
    ):
        value = list(curve.values())[-1] if curve and state == TrialState.PRUNED else 1.0
        study.add_trial(
            optuna.trial.create_trial(
                state=state, value=value, params={"x": k / 4}, distributions=x, intermediate_values=curve
            )
        )


def test_the_rdb_fast_path_reads_the_curves_optuna_reads(tmp_path):
    memory = optuna.storages.InMemoryStorage()
    _curves_study(memory)
    url = f"sqlite:///{tmp_path / 'c.db'}"
    _curves_study(url)
    storage = open_storage(url)
    queries = []
    sqlalchemy.event.listen(rdb_backend(storage).engine, "before_cursor_execute", lambda *a: queries.append(a[2]))
    fast, slow = load_optuna_trials(storage, "curves"), load_optuna_trials(memory, "curves")
    assert len([q for q in queries if "trial_intermediate_values" in q]) == 1  # every curve in one query
    pd.testing.assert_frame_equal(fast.curves, slow.curves)
    assert len(fast.curves) == 7 and fast.curves["value"].isna().sum() == 1
    assert np.isinf(fast.curves["value"]).sum() == 2
    # A pruned trial's value (Optuna stores its last reported one) is not its objective, read either way.
    assert fast.frame["value"].isna().tolist() == slow.frame["value"].isna().tolist() == [False, True, True, False]
    queries.clear()
    assert load_optuna_trials(storage, "curves", curves=False).curves.empty
    assert not [q for q in queries if "trial_intermediate_values" in q]  # importance alone reads no curves


def test_odyssey_importance_on_a_plain_optuna_study_with_pruned_trials(tmp_path, halved, capsys, cli, root):
    study, analysis = halved
    storage = optuna_storage(study)
    pruned = sum(t.state == TrialState.PRUNED for t in study.trials)
    print_importance(storage=storage, study="sim", refits=0)
    shown = capsys.readouterr().out
    assert f"{pruned} pruned trials left out" in shown and "--budgets" in shown
    print_importance(storage=storage, study="sim", fmt="json", refits=0)
    out, err = capsys.readouterr()
    assert json.loads(out)["pruned_left_out"] == pruned and f"{pruned} pruned trials left out" in err
    print_importance(storage=storage, study="sim", budgets=True, refits=FAST["refits"])
    shown = capsys.readouterr().out
    assert "ranking correlation" in shown and "From step 4 on, the ranking of the hyperparameters" in shown
    # The command line, on a file: a journal is written in a blink, where SQLite takes a transaction a trial.
    url = f"journal://{tmp_path / 'plain.log'}"
    optuna.copy_study(from_study_name="sim", from_storage=storage, to_storage=open_storage(url))
    done = cli(
        "importance", "--storage", url, "--study", "sim", "--budgets", "--format", "csv", "--refits", "0", cwd=root
    )
    table = pd.read_csv(io.StringIO(done.stdout))
    assert sorted(table["budget"].unique()) == [1, 2, 4, 8] and {"trial_rank_correlation", "floor"} <= set(table)
    assert table.groupby("budget")["trials"].first().tolist() == [lv.trials for lv in analysis.levels]


def test_budgets_of_a_study_without_curves_is_a_one_line_error():
    study = optuna.create_study(study_name="flat")
    study.add_trial(optuna.trial.create_trial(state=TrialState.COMPLETE, value=1.0, params={}, distributions={}))
    with pytest.raises(
        OdysseyError, match="^study 'flat': no complete or pruned trial reported an intermediate"
    ) as err:
        print_importance(storage=optuna_storage(study), study="flat", budgets=True)
    assert "\n" not in str(err.value)
