"""The paper's headline findings, checked on a study's own data, each with the number behind it.

Importance claims are decided by the uncertainty of the shares (importance.py / uncertainty.py):
a claim holds or fails only where the intervals and the noise floor separate the answer;
otherwise it is "not decided" and the evidence says what overlaps.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pandas as pd

from .variant_stats import POWER, VANILLA

HOLDS, FAILS, UNDECIDED, UNCHECKED = "holds", "does not hold", "not decided", "cannot be checked"
SMALL_INTERACTION = 0.10  # a pair share below this is "small": tuning one parameter at a time loses little
LEARNING_RATE = "learning_rate"


def _power_text(row: pd.Series) -> str:
    needed = row["trials_needed"]
    need = "no difference observed" if not math.isfinite(needed) else f"about {needed:,.0f} complete trials per cell would detect the observed difference"
    return (
        f"; this budget detects differences of {row['detectable']:.3g} ({row['detectable_sd']:.2f} pooled SDs) "
        f"{POWER:.0%} of the time; {need}"
    )


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
            f"p = {row['p']:.3g}, best {row['top']} vs {row['vanilla_top']} trials" + _power_text(row)
        )
        if expect == "worse":
            holds = bool(row["significant"]) and row["direction"] == "worse"
        else:
            holds = not row["significant"]
        return (HOLDS if holds else FAILS), evidence

    return check


def _none_better(tests: pd.DataFrame, _terms) -> tuple[str, str]:
    tested = tests[tests["significant"].notna()]
    count = f"{len(tested)} variant{'' if len(tested) == 1 else 's'} tested"
    if tested.empty:
        return UNCHECKED, f"no variant could be tested against {VANILLA}"
    better = tested[tested["significant"].astype(bool) & (tested["direction"] == "better")]
    if not better.empty:
        found = ", ".join(f"{r.variant} ({r.difference:+.3g}, p = {r.p:.3g})" for r in better.itertuples())
        return FAILS, f"significantly better than {VANILLA}: {found}; {count}"
    closest = tested[tested["direction"] == "better"].sort_values("p")
    nearest = f"; closest: {closest.iloc[0]['variant']} ({closest.iloc[0]['difference']:+.3g}, p = {closest.iloc[0]['p']:.3g})" if len(closest) else "; none has a lower mean"
    untested = len(tests) - len(tested) - int((tests["variant"] == VANILLA).any())
    return HOLDS, count + (f" ({untested} could not be)" if untested else "") + nearest


def _interval(row: pd.Series) -> str:
    if not math.isfinite(row["low"]):
        return f"{row['mean']:.3f} ± {row['std']:.3f} (std over trees)"
    return f"{row['mean']:.3f} [{row['low']:.3f}, {row['high']:.3f}], noise floor {row['floor']:.3f}"


def _effects(terms: pd.DataFrame | str) -> pd.DataFrame | str:
    """The terms of all trials (not a conditional sub-space), largest first, without the rest."""
    if isinstance(terms, str):
        return terms
    whole = terms[terms["space"] == terms["space"].iloc[0]] if "space" in terms else terms
    if whole["mean"].isna().all():
        return "the objective is constant: no variance to share out"
    return whole[whole["kind"] != "rest"].sort_values("mean", ascending=False)


def _separated(a: pd.Series, b: pd.Series) -> bool:
    """a's share is above b's beyond their intervals (without intervals: beyond one std each)."""
    if math.isfinite(a["low"]) and math.isfinite(b["high"]):
        return a["low"] > b["high"]
    return a["mean"] - a["std"] > b["mean"] + b["std"]


def _learning_rate_largest(_tests, terms: pd.DataFrame | str) -> tuple[str, str]:
    effects = _effects(terms)
    if isinstance(effects, str):
        return UNCHECKED, effects
    lr = effects[effects["params"].map(lambda p: list(p) == [LEARNING_RATE])]
    if lr.empty:
        return UNCHECKED, f"{LEARNING_RATE} is not a parameter of this study"
    lr = lr.iloc[0]
    others = effects[effects["term"] != lr["term"]]
    evidence = f"{LEARNING_RATE}: {_interval(lr)} of the variance over {lr['trials']:,} trials (paper: > 2/3)"
    if others.empty:
        return HOLDS, evidence
    rival = others.iloc[0]  # the largest other term
    if rival["mean"] > lr["mean"]:
        evidence += f"; larger: {rival['term']} {_interval(rival)}"
        return (FAILS if _separated(rival, lr) else UNDECIDED), evidence
    evidence += f"; next largest: {rival['term']} {_interval(rival)}"
    return (HOLDS if _separated(lr, rival) else UNDECIDED), evidence


def _interactions_small(_tests, terms: pd.DataFrame | str) -> tuple[str, str]:
    effects = _effects(terms)
    if isinstance(effects, str):
        return UNCHECKED, effects
    pairs = effects[effects["kind"] == "pair"]
    if pairs.empty:
        return UNCHECKED, "fewer than two parameters: no pairs"
    top = pairs.iloc[0]
    assessed = pairs["distinguishable"].notna().all()
    real = pairs[pairs["distinguishable"] == True] if assessed else pairs  # noqa: E712 (object column)
    evidence = (
        f"largest pair {top['term']}: {_interval(top)}; {len(real)} of {len(pairs)} pairs distinguishable from zero "
        f"over {top['trials']:,} trials; small means < {SMALL_INTERACTION}"
    )
    upper = pairs["high"] if assessed else pairs["mean"] + pairs["std"]
    lower = real["low"] if assessed else real["mean"] - real["std"]
    if (upper < SMALL_INTERACTION).all():
        return HOLDS, evidence
    if (lower > SMALL_INTERACTION).any():
        return FAILS, evidence
    return UNDECIDED, evidence


CLAIMS: dict[str, Callable] = {
    f"no variant is significantly better than {VANILLA}": _none_better,
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
