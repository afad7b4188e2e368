"""Issue 25: a report of a study too small for any test or importance says exactly what is missing, at its top."""

import pandas as pd

from odyssey.analysis.budget import budget_gaps


def cells(**complete):
    return pd.DataFrame({"task": "mydata", "variant": list(complete), "complete": list(complete.values())})


def test_six_trials_per_cell_say_what_each_answer_needs():
    assert budget_gaps(cells(V=6, CIFG=6, NFG=5), paired=False) == [
        "Too small to answer everything for task mydata: a test of a variant against V needs 21 complete trials "
        "in both cells, these have fewer: V 6, CIFG 6, NFG 5; importance needs 20 complete trials of the task, "
        "it has 17. Raise 'trials' and run again with --extend."
    ]


def test_paired_studies_need_three_slots_and_a_large_enough_study_says_nothing():
    assert budget_gaps(cells(V=8, CIFG=8, NFG=8), paired=True) == []
    assert budget_gaps(cells(V=30, NOG=30), paired=False) == []
    assert budget_gaps(cells(V=2, NOG=8), paired=True)[0].endswith(
        "these have fewer: V 2; importance needs 20 complete trials of the task, it has 10. "
        "Raise 'trials' and run again with --extend."
    )
    assert "no vanilla (V) cell" in budget_gaps(cells(NOG=40), paired=False)[0]


def test_pruned_trials_count_in_a_cells_size_for_the_variant_tests():
    pruned = cells(V=7, NFG=2).assign(pruned=[33, 38])
    # Unpaired: V's best 10% of 40 are 4 of its 7 complete; NFG's are 4, but only 2 completed.
    assert budget_gaps(pruned, paired=False) == [
        "Too small to answer everything for task mydata: a test of a variant against V needs 21 finished trials "
        "(complete or pruned) in both cells, and 3 complete among their best 10%, these have fewer: NFG 2 + 38 "
        "pruned; importance needs 20 complete trials of the task, it has 9. Raise 'trials' and run again with "
        "--extend."
    ]
    # Paired: every slot both cells finished is compared, at the budget level both reached.
    assert budget_gaps(cells(V=2, NFG=1, CIFG=30).assign(pruned=[38, 39, 10]), paired=True) == []
    assert budget_gaps(cells(V=2, NFG=1).assign(pruned=[0, 0]), paired=True)[0].startswith(
        "Too small to answer everything for task mydata: a test of a variant against V needs 3 complete trials in "
        "both cells (paired slots), these have fewer: V 2, NFG 1;"
    )
