"""Analysis of finished studies: variant statistics, functional ANOVA, figures and reports.

Nothing here imports torch: reports read Optuna storages only, so they stay quick to produce.
The names below are imported lazily (scikit-learn and matplotlib load with the module that needs them).
"""

from .._lazy import resolve

_WHERE = {
    # stored trials, as one row each
    "PARAM_PREFIX": ".trials",
    "load_odyssey_trials": ".trials",
    "load_optuna_trials": ".trials",
    "open_existing": ".trials",
    # variants against vanilla
    "VANILLA": ".variant_stats",
    "best_trials": ".variant_stats",
    "variant_order": ".variant_stats",
    "variant_tests": ".variant_stats",
    # functional ANOVA
    "ALL_TRIALS": ".importance",
    "PAIR_SIGN": ".importance",
    "Importance": ".importance",
    "analyse": ".importance",
    "analyse_spaces": ".importance",
    "choose_scales": ".importance",
    "largest_shares": ".importance",
    "terms_table": ".importance_tables",
    # importance at each budget level of the learning curves, and its agreement with the full budget
    "analyse_budgets": ".by_budget",
    "Scale": ".scales",
    "decompose_forest": ".fanova",
    "fit_forest": ".forest",
    # inside Optuna (docs/importance.md)
    "FanovaImportanceEvaluator": ".evaluator",
    "study_fanova": ".evaluator",
    "study_tables": ".evaluator",
    # a study with known effects, for checking the above
    "PAPER_OFFSETS": ".synthetic",
    "write_synthetic_study": ".synthetic",
}

__all__ = [
    "ALL_TRIALS",
    "PAIR_SIGN",
    "PAPER_OFFSETS",
    "PARAM_PREFIX",
    "VANILLA",
    "FanovaImportanceEvaluator",
    "Importance",
    "Scale",
    "analyse",
    "analyse_budgets",
    "analyse_spaces",
    "best_trials",
    "choose_scales",
    "decompose_forest",
    "fit_forest",
    "largest_shares",
    "load_odyssey_trials",
    "load_optuna_trials",
    "open_existing",
    "study_fanova",
    "study_tables",
    "terms_table",
    "variant_order",
    "variant_tests",
    "write_synthetic_study",
]


def __getattr__(name: str) -> object:
    return resolve(__name__, _WHERE, name)
