"""The paper's headline findings, checked on a study's own data, each with the number behind it."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from .variant_stats import VANILLA

HOLDS, FAILS, UNCHECKED = "holds", "does not hold", "cannot be checked"
SMALL_INTERACTION = 0.10  # a pair share below this is "small": tuning one parameter at a time loses little
LEARNING_RATE = "learning_rate"


def _variant_claim(variant: str, expect: str) -> Callable[[pd.DataFrame, pd.DataFrame | str], tuple[str, str]]:
    """expect: "worse" (significantly worse than vanilla) or "same" (not significantly different)."""

    def check(tests: pd.DataFrame, _terms) -> tuple[str, str]:
        row = tests[tests["variant"] == variant]
        if row.empty:
            return UNCHECKED, f"no {variant} trials"
        row = row.iloc[0]
        if row["note"]:
            return UNCHECKED, row["note"]
        evidence = (
            f"test mean {row['mean']:.4g} vs {row['vanilla_mean']:.4g} for {VANILLA} ({row['difference']:+.3g}), "
            f"p = {row['p']:.3g}, best {row['top']} vs {row['vanilla_top']} trials"
        )
        if expect == "worse":
            holds = bool(row["significant"]) and row["direction"] == "worse"
        else:
            holds = not row["significant"]
        return (HOLDS if holds else FAILS), evidence

    return check


def _shares(terms: pd.DataFrame | str) -> pd.DataFrame | str:
    return terms if isinstance(terms, str) else terms.sort_values("mean", ascending=False)


def _learning_rate_largest(_tests, terms: pd.DataFrame | str) -> tuple[str, str]:
    ranked = _shares(terms)
    if isinstance(ranked, str):
        return UNCHECKED, ranked
    effects = ranked[ranked["kind"] != "rest"]
    lr = effects[(effects["kind"] == "main") & (effects["params"] == LEARNING_RATE)]
    if lr.empty:
        return UNCHECKED, f"{LEARNING_RATE} is not a parameter of this study"
    share, std = lr.iloc[0]["mean"], lr.iloc[0]["std"]
    others = effects[effects["term"] != lr.iloc[0]["term"]]
    runner = f"; next: {others.iloc[0]['term']} {others.iloc[0]['mean']:.2f}" if len(others) else ""
    holds = others.empty or share > others.iloc[0]["mean"]
    return (HOLDS if holds else FAILS), f"{LEARNING_RATE}: {share:.2f} ± {std:.2f} of the variance (paper: > 2/3){runner}"


def _interactions_small(_tests, terms: pd.DataFrame | str) -> tuple[str, str]:
    ranked = _shares(terms)
    if isinstance(ranked, str):
        return UNCHECKED, ranked
    pairs = ranked[ranked["kind"] == "pair"]
    if pairs.empty:
        return UNCHECKED, "fewer than two parameters: no pairs"
    top, rest = pairs.iloc[0], ranked[ranked["kind"] == "rest"]["mean"].sum()
    evidence = f"largest pair {top['term']}: {top['mean']:.3f} ± {top['std']:.3f}; all pairs {pairs['mean'].sum():.3f}; higher order {rest:.3f} (small: < {SMALL_INTERACTION})"
    return (HOLDS if top["mean"] < SMALL_INTERACTION else FAILS), evidence


CLAIMS: dict[str, Callable] = {
    f"NFG is significantly worse than {VANILLA}": _variant_claim("NFG", "worse"),
    f"NOAF is significantly worse than {VANILLA}": _variant_claim("NOAF", "worse"),
    f"CIFG is not significantly different from {VANILLA}": _variant_claim("CIFG", "same"),
    f"NP is not significantly different from {VANILLA}": _variant_claim("NP", "same"),
    "the learning rate explains the largest share of variance": _learning_rate_largest,
    "interactions between hyperparameters are small": _interactions_small,
}


def check_claims(tests: pd.DataFrame, terms: dict[str, pd.DataFrame | str]) -> pd.DataFrame:
    """One row per (task, claim). `terms[task]` is the importance table, or why there is none."""
    rows = []
    for task in sorted(set(tests["task"]) | set(terms)):
        task_tests = tests[tests["task"] == task]
        task_terms = terms.get(task, "no importance analysis for this task")
        for claim, check in CLAIMS.items():
            verdict, evidence = check(task_tests, task_terms)
            rows.append({"task": task, "claim": claim, "verdict": verdict, "evidence": evidence})
    return pd.DataFrame(rows, columns=["task", "claim", "verdict", "evidence"])
