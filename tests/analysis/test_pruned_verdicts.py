"""Variant verdicts of pruned studies: the best 10% counted over every trial a cell finished, and a
paired study's slots compared at the budget level both of their trials reached (curves.pairs_at_common_level)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from odyssey.analysis.curves import pairs_at_common_level
from odyssey.analysis.study_analysis import study_tests
from odyssey.analysis.trials import Trials
from odyssey.analysis.variant_stats import PAIRED, PAIRED_AT_LEVEL, best_trials, variant_tests
from odyssey.record import STUDY_SPEC

EPOCHS = 8


def _trials(curves: dict[tuple[str, int], list[float]], pruned_at: dict[tuple[str, int], int], *, maximize=False):
    """A paired study of one task: curves[(variant, slot)] the validation value per epoch (from 1), a
    trial in `pruned_at` stopped after that epoch, the others complete with a test metric of their
    best value + 0.01."""
    rows, points = [], []
    for number, ((variant, slot), curve) in enumerate(sorted(curves.items())):
        study = f"s/t/{variant}"
        stop = pruned_at.get((variant, slot))
        reported = curve[:stop] if stop else curve
        best = max(reported) if maximize else min(reported)
        rows.append(
            {
                "study": study,
                "task": "t",
                "variant": variant,
                "number": number,
                "slot": float(slot),
                "state": "PRUNED" if stop else "COMPLETE",
                "value": best,
                "test_metric": best + 0.01,
                "parameter_count": 100,
            }
        )
        points += [(study, number, epoch, v) for epoch, v in enumerate(reported, start=1)]
    frame = pd.DataFrame(rows)
    spec = {STUDY_SPEC: {"sampler": "paired", "training": {"max_epochs": EPOCHS}}}
    return Trials(
        name="s",
        frame=frame,
        scales={},
        metrics={"t": "value"},
        study_attrs={s: spec for s in frame["study"].unique()},
        curves=pd.DataFrame(points, columns=["study", "number", "step", "value"]),
        maximize=maximize,
    )


def _robust_but_worse_at_best(slots: int = 40, seed: int = 0):
    """NFG against V where NFG is far better on the bad configurations (slots 0-29: V barely learns)
    and a little worse on the good ones (slots 30-39): better over the whole space, worse in the good
    region. Curves fall from 10 towards their end value; noise 0.02."""
    rng = np.random.default_rng(seed)
    curves = {}
    for slot in range(slots):
        good = slot >= 30
        end = {"V": 1.0 if good else 8.0, "NFG": 1.1 if good else 4.0}
        for variant, target in end.items():
            epochs = np.arange(1, EPOCHS + 1)
            curves[variant, slot] = list(target + (10 - target) * 0.5**epochs + rng.normal(0, 0.02, EPOCHS))
    # The pruner stops every bad configuration after epoch 2 (both variants) and keeps the good ones.
    pruned = {(v, s): 2 for (v, s) in curves if s < 30}
    return curves, pruned


def test_a_paired_pruned_study_compares_each_slot_at_the_budget_level_both_reached():
    curves, pruned = _robust_but_worse_at_best()
    unpruned = study_tests(_trials(curves, {})).set_index("variant").loc["NFG"]
    assert unpruned["test"] == PAIRED and unpruned["pairs"] == 40 and unpruned["verdict"] == "better"
    trials = _trials(curves, pruned)
    tests = study_tests(trials).set_index("variant").loc["NFG"]
    assert tests["test"] == PAIRED_AT_LEVEL and tests["pairs"] == 40
    assert tests["verdict"] == "better"  # as trained to the end
    # The survivors alone (the test before): the good region, where NFG is worse.
    survivors = variant_tests(trials.complete(), paired=True).set_index("variant").loc["NFG"]
    assert survivors["pairs"] == 10 and survivors["verdict"] == "worse"


def test_pairs_at_common_level_value_each_trial_by_its_best_up_to_the_earlier_stop():
    curves = {
        ("V", 0): [5.0, 4.0, 4.5, 3.0, 3.0, 3.0, 3.0, 2.0],  # complete: reaches the full budget
        ("NFG", 0): [6.0, 3.5, 3.9],  # pruned after epoch 3
        ("V", 1): [5.0, 4.0],  # pruned after epoch 2
        ("NFG", 1): [6.0, 5.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
        ("NFG", 2): [1.0] * 8,  # no vanilla trial in slot 2: no pair
    }
    pruned = {("NFG", 0): 3, ("V", 1): 2}
    pairs = pairs_at_common_level(_trials(curves, pruned)).set_index("slot")
    assert list(pairs.index) == [0, 1]
    assert pairs.loc[0, ["level", "value", "vanilla"]].tolist() == [3, 3.5, 4.0]
    assert pairs.loc[1, ["level", "value", "vanilla"]].tolist() == [2, 5.0, 4.0]
    # A maximised objective's best is its largest value.
    up = pairs_at_common_level(_trials(curves, pruned, maximize=True)).set_index("slot")
    assert up.loc[0, ["value", "vanilla"]].tolist() == [6.0, 5.0]
    # A complete trial that stopped early on its own (patience) reached every budget level.
    curves[("V", 1)], curves[("NFG", 1)] = [5.0, 4.0], [6.0, 5.0, 1.0]
    early = pairs_at_common_level(_trials(curves, {("NFG", 0): 3})).set_index("slot")
    assert early.loc[1, ["level", "value", "vanilla"]].tolist() == [EPOCHS, 1.0, 4.0]


def test_no_pruned_trial_no_pairs_at_a_common_level():
    curves, _ = _robust_but_worse_at_best(slots=35)
    assert pairs_at_common_level(_trials(curves, {})).empty


def test_the_best_ten_percent_count_the_pruned_trials_of_the_cell():
    rng = np.random.default_rng(1)
    complete = pd.DataFrame(
        {"task": "t", "variant": "V", "number": range(7), "value": rng.uniform(size=7), "test_metric": 1.0}
    )
    assert len(best_trials(complete)) == 1
    best = best_trials(complete, pruned={("t", "V"): 33})  # 40 trials finished: the best 4
    assert len(best) == 4 and sorted(best["value"]) == sorted(complete["value"].nsmallest(4))
    assert len(best_trials(complete, pruned={("t", "V"): 93})) == 7  # the best 10 of 100: all 7 that completed
    assert len(best_trials(complete, pruned={("t", "NFG"): 33})) == 1  # another cell's pruned trials


@pytest.mark.parametrize("paired", [False, True])
def test_a_pruned_study_tests_the_best_ten_percent_of_all_its_trials(paired):
    curves, pruned = _robust_but_worse_at_best()
    tests = study_tests(_trials(curves, pruned) if paired else _unpaired(_trials(curves, pruned)))
    assert tests.set_index("variant").loc["NFG", "top"] == 4  # 10% of 40, not of the 10 that completed


def _unpaired(trials: Trials) -> Trials:
    from dataclasses import replace

    spec = {STUDY_SPEC: {"sampler": "random", "training": {"max_epochs": EPOCHS}}}
    return replace(trials, study_attrs={s: spec for s in trials.study_attrs})


def test_a_stored_paired_study_under_a_pruner_pairs_every_slot_both_cells_finished():
    import optuna

    from odyssey.analysis.synthetic import write_synthetic_study
    from odyssey.analysis.trials import load_odyssey_trials

    storage = optuna.storages.InMemoryStorage()
    halving = optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=2)
    write_synthetic_study(
        storage, name="pp", variants=("V", "NFG"), trials=60, epochs=8, pruner=halving, paired=True, failed=0
    )
    trials = load_odyssey_trials(storage, "pp")
    assert (trials.frame["state"] == "PRUNED").sum() > 60
    nfg = study_tests(trials).set_index("variant").loc["NFG"]
    assert nfg["test"] == PAIRED_AT_LEVEL and nfg["pairs"] == 60
    both = trials.complete().groupby("slot")["variant"].nunique()
    assert (both == 2).sum() < 30  # the slots both completed: what the test ran on before


def test_pairs_compared_at_a_common_level_never_make_a_variant_equivalent():
    """NFG and V alike to 0.001 on every slot: unpruned that is equivalence within V's spread; with
    30 of 40 slots stopped after epoch 1 it is not decided, since early pairs are alike anyway."""
    rng = np.random.default_rng(2)
    curves = {}
    for slot in range(40):
        end = rng.uniform(1.0, 1.5)
        curve = end + (10 - end) * 0.5 ** np.arange(1, EPOCHS + 1)
        for variant in ("V", "NFG"):
            curves[variant, slot] = list(curve + rng.normal(0, 0.001, EPOCHS))
    assert study_tests(_trials(curves, {})).set_index("variant").loc["NFG", "verdict"] == "equivalent"
    pruned = {(v, s): 1 for (v, s) in curves if s < 30}
    nfg = study_tests(_trials(curves, pruned)).set_index("variant").loc["NFG"]
    assert nfg["test"] == PAIRED_AT_LEVEL and nfg["verdict"] == "not decided" and np.isnan(nfg["p_equivalence"])
    assert nfg["note"] == "equivalence is not tested on pairs compared at a common budget level"


def test_the_summary_says_what_a_pruned_paired_study_compared():
    from odyssey.analysis.claims import summary

    curves, pruned = _robust_but_worse_at_best()
    line = summary(study_tests(_trials(curves, pruned)), pd.DataFrame(), {"t": "nll"})[0]
    assert line.startswith("t (validation nll of each slot's trials at the epoch both reached, lower is better;")
    assert summary(study_tests(_trials(curves, {})), pd.DataFrame(), {"t": "nll"})[0].startswith("t (test nll, ")
