"""The paper's headline findings, checked on a study's own data, each in plain words with the numbers behind it.

Each row names a claim of the paper, odyssey's verdict on it ("agrees", "disagrees", "not
decided", "cannot be checked"), what the data show in words a reader who knows no statistics can
act on (`finding`), and the test's numbers (`evidence`).

Variant claims are decided by the report's corrected family of tests (variant_stats.py): a
difference only where Holm's adjusted p is below alpha; "the same" only where two one-sided tests
put the difference inside the study's equivalence margin. Neither: "not decided", with what the
budget detects and how many trials per cell would decide it. A variant that is not in the study
gets no row.

Importance claims are decided by the uncertainty of the shares (importance.py / uncertainty.py):
a claim holds or fails only where the intervals and the noise floor separate the answer;
otherwise it is "not decided" and the evidence says what overlaps. Only terms of kind "main" and
"pair" are read: the rest ("higher order", and any other kind the importance table adds) are not
terms of a claim.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pandas as pd

from .variant_stats import ALPHA, PAIRED_AT_LEVEL, POWER, VANILLA

AGREES, DISAGREES, UNDECIDED, UNCHECKED = "agrees", "disagrees", "not decided", "cannot be checked"
VERDICTS = (AGREES, DISAGREES, UNDECIDED, UNCHECKED)
SMALL_INTERACTION = 0.10  # a pair share below this is "small": tuning one parameter at a time loses little
LARGE_SHARE = 2 / 3  # the paper: the learning rate explains more than two thirds of the variance
NEGLIGIBLE = 0.01  # the paper: momentum explains under 1%
LEARNING_RATE, HIDDEN_SIZE, INPUT_NOISE = "learning_rate", "hidden_size", "input_noise"
MOMENTUM = ("one_minus_momentum", "momentum")  # odyssey's space searches 1 - momentum; a study may search momentum
TERM_KINDS = ("main", "pair")
COLUMNS = ["task", "claim", "verdict", "finding", "evidence"]

# The paper's verdict on each variant against vanilla that holds on all three of its datasets
# (paper-notes.md); "same" is its "not significantly different".
PAPER_VARIANTS = {"NFG": "worse", "NOAF": "worse", "CIFG": "same", "NP": "same"}
_PAPER_WORDS = {"worse": "worse", "better": "better", "same": "no different"}


def _number(value: float) -> str:
    return f"{value:.3g}"


def _p(value: float) -> str:
    return "< 0.001" if value < 0.001 else f"{value:.2g}"


def _effect(row: pd.Series, *, signed: bool = False) -> str:
    """The tested difference with its 95% interval (the best 10%'s, or the pairs'): "+0.03 [0.01, 0.05]";
    unsigned, a lower metric's is turned round to read as "better by 0.03 [0.01, 0.05]"."""
    paired = math.isfinite(row["pairs"])
    value, low, high = (
        (row["all_difference"], row["all_low"], row["all_high"])
        if paired
        else (row["difference"], row["low"], row["high"])
    )
    if signed:
        return f"{value:+.3g} [{_number(low)}, {_number(high)}]"
    if value < 0:
        value, low, high = -value, -high, -low
    return f"{_number(value)} [{_number(low)}, {_number(high)}]"


def _budget(row: pd.Series) -> str:
    needed = row["trials_needed"]
    more = (
        f"about {needed:,.0f} trials per cell would decide it" if math.isfinite(needed) else "no budget would decide it"
    )
    return f"this budget detects differences of {_number(row['detectable'])} or more; {more}"


def variant_finding(row: pd.Series) -> str:
    """What one tested row shows, in words: "NFG: worse than V by 0.3 [0.1, 0.5], adjusted p 0.02"."""
    name = row["variant"]
    if row["verdict"] in ("better", "worse"):
        return f"{name}: {row['verdict']} than {VANILLA} by {_effect(row)}, adjusted p {_p(row['p_adjusted'])}"
    if row["verdict"] == "equivalent":
        return (
            f"{name}: the same as {VANILLA} within ±{_number(row['margin'])} (difference {_effect(row, signed=True)}, "
            f"adjusted p of equivalence {_p(row['p_equivalence_adjusted'])})"
        )
    return (
        f"{name}: not decided (difference {_effect(row, signed=True)}, adjusted p {_p(row['p_adjusted'])}): "
        f"{_budget(row)}"
    )


def _evidence(row: pd.Series) -> str:
    paired = math.isfinite(row["pairs"])
    design = (
        f"paired t-test over {row['pairs']:,.0f} slots, each pair's validation values at the budget level both reached"
        if row["test"] == PAIRED_AT_LEVEL
        else f"paired t-test over {row['pairs']:,.0f} slots both completed"
        if paired
        else f"Welch's t-test, best {row['top']} vs {row['vanilla_top']} trials"
    )
    return (
        f"{design}: t = {row['t']:.3g}, p = {row['p']:.3g}, Holm-adjusted {row['p_adjusted']:.3g}; best-10% test "
        f"mean {row['mean']:.4g} vs {row['vanilla_mean']:.4g} for {VANILLA} ({row['difference']:+.3g} "
        f"[{row['low']:.3g}, {row['high']:.3g}], {row['difference_sd']:+.2f} pooled SDs); "
        f"{'the pairs' if row['test'] == PAIRED_AT_LEVEL else 'all trials'} "
        f"{row['all_difference']:+.3g} [{row['all_low']:.3g}, {row['all_high']:.3g}]; equivalence margin "
        f"±{row['margin']:.3g}, two one-sided tests p = {row['p_equivalence']:.3g} (adjusted "
        f"{row['p_equivalence_adjusted']:.3g}); detectable {row['detectable']:.3g} ({row['detectable_sd']:.2f} "
        f"pooled SDs, {POWER:.0%} power at the corrected level)"
    )


def _variant_claim(variant: str, expect: str) -> Callable[[pd.DataFrame, object, object], tuple[str, str, str] | None]:
    """expect: "worse" (the paper found it worse than vanilla) or "same" (no different)."""

    def check(tests: pd.DataFrame, _terms, _curves) -> tuple[str, str, str] | None:
        row = tests[tests["variant"] == variant]
        if row.empty:
            return None  # not in the study: no verdict
        row = row.iloc[0]
        paper = f"the paper found it {_PAPER_WORDS[expect]}"
        if row["note"]:
            return UNCHECKED, f"{variant}: not tested ({row['note']}); {paper}", row["note"]
        verdict = row["verdict"]
        if verdict == "not decided":
            decided = UNDECIDED
        elif expect == "same":
            decided = AGREES if verdict == "equivalent" else DISAGREES
        else:
            decided = AGREES if verdict == expect else DISAGREES  # better, or the same within the margin
        return decided, f"{variant_finding(row)}; {paper}", _evidence(row)

    return check


def _none_better(tests: pd.DataFrame, _terms, _curves) -> tuple[str, str, str]:
    tested = tests[tests["significant"].notna()]
    count = f"{len(tested)} variant{'' if len(tested) == 1 else 's'} tested"
    if tested.empty:
        return (
            UNCHECKED,
            f"no variant could be tested against {VANILLA}",
            f"no variant could be tested against {VANILLA}",
        )
    better = tested[tested["verdict"] == "better"]
    untested = len(tests) - len(tested) - int((tests["variant"] == VANILLA).any())
    count += f" ({untested} could not be)" if untested else ""
    if not better.empty:
        found = "; ".join(variant_finding(r) for _, r in better.iterrows())
        return DISAGREES, f"{found}; the paper found none better", f"{count}; Holm-adjusted over the report's tests"
    closest = tested[tested["direction"] == "better"].sort_values("p")
    nearest = f"; closest: {variant_finding(closest.iloc[0])}" if len(closest) else "; none has a lower mean"
    return AGREES, f"no variant is better than {VANILLA} at adjusted p < {ALPHA}, as the paper found", count + nearest


def _interval(row: pd.Series) -> str:
    if not math.isfinite(row["low"]):
        spread = (
            f" ± {row['std']:.3f} (spread over halves of the trials)"
            if math.isfinite(row["std"])
            else " (no interval computed)"
        )
        return f"{row['mean']:.3f}{spread}"
    return f"{row['mean']:.3f} [{row['low']:.3f}, {row['high']:.3f}], noise floor {row['floor']:.3f}"


def _bounds(row: pd.Series) -> tuple[float, float]:
    """The share's interval; without one, one spread over halves of the trials either side (none without refits)."""
    if math.isfinite(row["low"]) and math.isfinite(row["high"]):
        return row["low"], row["high"]
    return row["mean"] - row["std"], row["mean"] + row["std"]


def _real(row: pd.Series) -> bool:
    """The share is told apart from what a term without effect reaches (its noise floor)."""
    if isinstance(row["distinguishable"], (bool, int)) and not pd.isna(row["distinguishable"]):
        return bool(row["distinguishable"])
    floor = row["floor"] if math.isfinite(row["floor"]) else 0.0
    return _bounds(row)[0] > floor


def _effects(terms: pd.DataFrame | str) -> pd.DataFrame | str:
    """The main and pair terms of all trials (not a conditional sub-space), largest first."""
    if isinstance(terms, str):
        return terms
    whole = terms[terms["space"] == terms["space"].iloc[0]] if "space" in terms else terms
    whole = whole[whole["kind"].isin(TERM_KINDS)]
    if whole.empty or whole["mean"].isna().all():
        return "the objective is constant: no variance to share out"
    return whole.sort_values("mean", ascending=False)


def _main(effects: pd.DataFrame, params: tuple[str, ...]) -> pd.Series | None:
    found = effects[
        (effects["kind"] == "main") & effects["params"].map(lambda p: len(list(p)) == 1 and list(p)[0] in params)
    ]
    return found.iloc[0] if len(found) else None


def _lookup(terms, params: tuple[str, ...], what: str) -> tuple[pd.DataFrame, pd.Series] | tuple[str, str, str]:
    """(the terms, the main term of `params`), or the claim's refusal when there is none."""
    effects = _effects(terms)
    if isinstance(effects, str):
        return UNCHECKED, effects, effects
    row = _main(effects, params)
    if row is None:
        return UNCHECKED, f"{what} is not searched in this study", f"no main term of {params[0]}"
    return effects, row


def _separated(a: pd.Series, b: pd.Series) -> bool:
    """a's share is above b's beyond their intervals (without intervals: beyond one std each)."""
    return _bounds(a)[0] > _bounds(b)[1]


def _learning_rate_large(_tests, terms, _curves) -> tuple[str, str, str]:
    found = _lookup(terms, (LEARNING_RATE,), "the learning rate")
    if len(found) == 3:
        return found
    _, lr = found
    low, high = _bounds(lr)
    evidence = f"{LEARNING_RATE}: {_interval(lr)} of the variance over {lr['trials']:,} trials (paper: > 2/3)"
    share = f"the learning rate explains {lr['mean']:.2f} [{low:.2f}, {high:.2f}] of the variance"
    if low > LARGE_SHARE:
        return AGREES, f"{share}: more than 2/3, as the paper found", evidence
    if high < LARGE_SHARE:
        return DISAGREES, f"{share}: less than 2/3, where the paper found more", evidence
    return UNDECIDED, f"{share}: the interval includes 2/3", evidence


def _hidden_second(_tests, terms, _curves) -> tuple[str, str, str]:
    found = _lookup(terms, (HIDDEN_SIZE,), "hidden size")
    if len(found) == 3:
        return found
    effects, hidden = found
    others = effects[(effects["kind"] == "main") & (effects["term"] != hidden["term"])]
    if others.empty:
        return UNCHECKED, "hidden size is the only parameter searched", "one main term"
    above = [r for _, r in others.iterrows() if _separated(r, hidden)]
    below = [r for _, r in others.iterrows() if _separated(hidden, r)]
    rank = f"hidden size explains {hidden['mean']:.3f} of the variance"
    evidence = f"{hidden['term']}: {_interval(hidden)}; " + "; ".join(
        f"{r['term']}: {_interval(r)}" for _, r in others.iterrows()
    )
    if len(above) == 1 and len(below) == len(others) - 1:
        return AGREES, f"{rank}: second only to {above[0]['term']}, as the paper found", evidence
    if len(above) >= 2:
        return (
            DISAGREES,
            f"{rank}: below {' and '.join(r['term'] for r in above)}, where the paper found it second",
            evidence,
        )
    if len(below) == len(others):
        return DISAGREES, f"{rank}: the largest share, where the paper found it second", evidence
    return UNDECIDED, f"{rank}: its rank is not separated by the intervals", evidence


def _momentum_negligible(_tests, terms, _curves) -> tuple[str, str, str]:
    found = _lookup(terms, MOMENTUM, "momentum")
    if len(found) == 3:
        return found
    _, momentum = found
    low, high = _bounds(momentum)
    evidence = f"{momentum['term']}: {_interval(momentum)} (paper: under {NEGLIGIBLE:.0%})"
    share = f"momentum explains {momentum['mean']:.3f} [{low:.3f}, {high:.3f}] of the variance"
    if high < NEGLIGIBLE:
        return AGREES, f"{share}: under {NEGLIGIBLE:.0%}, negligible as the paper found", evidence
    if low > NEGLIGIBLE and _real(momentum):
        return DISAGREES, f"{share}: more than {NEGLIGIBLE:.0%}, where the paper found it negligible", evidence
    return UNDECIDED, f"{share}: the interval includes {NEGLIGIBLE:.0%}", evidence


def _noise_hurts(_tests, terms, curves) -> tuple[str, str, str]:
    """Input noise hurts: its share is told apart from the noise floor, and the marginal metric
    rises with it (lower is better) by more than the two ends' spreads over halves of the trials together."""
    found = _lookup(terms, (INPUT_NOISE,), "input noise")
    if len(found) == 3:
        return found
    _, noise = found
    curve = (
        curves[(curves["param"] == noise["term"]) & (curves["space"] == noise["space"])]
        if isinstance(curves, pd.DataFrame) and {"param", "x", "mean", "std"} <= set(curves)
        else None
    )
    if curve is None or len(curve) < 2:
        return UNCHECKED, "no marginal curve of input noise", f"{noise['term']}: {_interval(noise)}; no marginal curve"
    curve = curve.sort_values("x")
    first, last = curve.iloc[0], curve.iloc[-1]
    rise = last["mean"] - first["mean"]
    band = first["std"] + last["std"]
    evidence = (
        f"{noise['term']}: {_interval(noise)}; marginal metric {first['mean']:.4g} ± {first['std']:.2g} at "
        f"{first['x']:.3g} and {last['mean']:.4g} ± {last['std']:.2g} at {last['x']:.3g} (± std over halves of the "
        "trials)"
    )
    change = (
        f"from the least to the most input noise the predicted metric goes from {first['mean']:.4g} to "
        f"{last['mean']:.4g}"
    )
    if not _real(noise):
        return (
            UNDECIDED,
            f"input noise's share ({noise['mean']:.3f}) is not told apart from its noise floor; {change}",
            evidence,
        )
    if rise > band:
        return AGREES, f"input noise hurts, as the paper found: {change}", evidence
    if -rise > band:
        return DISAGREES, f"input noise helps, where the paper found it hurts: {change}", evidence
    return UNDECIDED, f"{change}, within the spread over halves of the trials", evidence


def _interactions_small(_tests, terms, _curves) -> tuple[str, str, str]:
    effects = _effects(terms)
    if isinstance(effects, str):
        return UNCHECKED, effects, effects
    pairs = effects[effects["kind"] == "pair"]
    if pairs.empty:
        return UNCHECKED, "fewer than two parameters: no pairs", "no pair terms"
    top = pairs.iloc[0]
    assessed = pairs["distinguishable"].notna().all()
    real = pairs[pairs["distinguishable"] == True] if assessed else pairs  # noqa: E712 (object column)
    evidence = (
        f"largest pair {top['term']}: {_interval(top)}; {len(real)} of {len(pairs)} pairs distinguishable from zero "
        f"over {top['trials']:,} trials; small means < {SMALL_INTERACTION}"
    )
    upper = pairs.apply(lambda r: _bounds(r)[1], axis=1)
    lower = real.apply(lambda r: _bounds(r)[0], axis=1) if len(real) else pd.Series(dtype=float)
    share = f"the largest interaction, {top['term']}, explains {top['mean']:.3f} of the variance"
    if (upper < SMALL_INTERACTION).all():
        return AGREES, f"{share}: every pair under {SMALL_INTERACTION}, small as the paper found", evidence
    if (lower > SMALL_INTERACTION).any():
        return DISAGREES, f"{share}: more than {SMALL_INTERACTION}, where the paper found interactions small", evidence
    return UNDECIDED, f"{share}: the intervals include {SMALL_INTERACTION}", evidence


CLAIMS: dict[str, Callable] = {
    f"no variant is better than {VANILLA}": _none_better,
    **{
        f"{v} is {'no different from' if e == 'same' else e + ' than'} {VANILLA}": _variant_claim(v, e)
        for v, e in PAPER_VARIANTS.items()
    },
    "the learning rate explains more than 2/3 of the variance": _learning_rate_large,
    "hidden size is the second most important hyperparameter": _hidden_second,
    "momentum is negligible (under 1% of the variance)": _momentum_negligible,
    "input noise hurts": _noise_hurts,
    "interactions between hyperparameters are small": _interactions_small,
}


def check_claims(
    tests: pd.DataFrame, terms: dict[str, pd.DataFrame | str], curves: dict[str, pd.DataFrame] | None = None
) -> pd.DataFrame:
    """One row per (task, claim) that the study can speak to. `terms[task]` is the importance table
    (or why there is none), `curves[task]` its marginal curves (importance.curves_table)."""
    rows = []
    for task in sorted(set(tests["task"]) | set(terms)):
        task_tests = tests[tests["task"] == task]
        task_terms = terms.get(task, "no importance analysis for this task")
        for claim, check in CLAIMS.items():
            result = check(task_tests, task_terms, (curves or {}).get(task))
            if result is not None:
                verdict, finding, evidence = result
                rows.append(
                    {"task": task, "claim": claim, "verdict": verdict, "finding": finding, "evidence": evidence}
                )
    return pd.DataFrame(rows, columns=COLUMNS)


def summary(tests: pd.DataFrame, claims: pd.DataFrame, metrics: dict[str, str]) -> list[str]:
    """A few sentences for the top of a report: per task, which variants differ from vanilla, which are
    the same, which are not decided; and how many of the paper's claims the data agree with."""
    lines = []
    for task, rows in tests.groupby("task", sort=True):
        tested = rows[rows["verdict"] != ""]
        if tested.empty:
            lines.append(
                f"{task}: no variant could be compared with {VANILLA} "
                f"({rows['note'].iloc[-1] if len(rows) else 'no trials'})."
            )
            continue
        parts = []
        for verdict, words in (
            ("worse", "worse than V"),
            ("better", "better than V"),
            ("equivalent", "the same as V within the margin"),
        ):
            chosen = tested[tested["verdict"] == verdict]
            if len(chosen):
                parts.append(
                    f"{words}: "
                    + ", ".join(
                        f"{r['variant']} ({_effect(r)})" if verdict != "equivalent" else r["variant"]
                        for _, r in chosen.iterrows()
                    )
                )
        open_ = tested[tested["verdict"] == "not decided"]
        if len(open_):
            parts.append(
                "not decided: "
                + ", ".join(open_["variant"])
                + f" (these trials detect differences of about {open_['detectable'].median():.3g} or more; the table "
                "says what each needs)"
            )
        measured = (
            f"validation {metrics.get(task, 'metric')} of each slot's trials at the epoch both reached"
            if tested["test"].eq(PAIRED_AT_LEVEL).any()
            else f"test {metrics.get(task, 'metric')}"
        )
        lines.append(
            f"{task} ({measured}, lower is better; the difference to {VANILLA} with its 95% interval): "
            + "; ".join(parts)
            + "."
        )
    if len(claims):
        counts = claims["verdict"].value_counts()
        words = {
            AGREES: "agree with the paper",
            DISAGREES: "disagree with it",
            UNDECIDED: "are not decided",
            UNCHECKED: "cannot be checked",
        }
        said = ", ".join(f"{counts[v]} {words[v]}" for v in VERDICTS if v in counts)
        lines.append(f"The paper's findings, checked task by task: {said} (below).")
    lines.append(
        "'Not decided' means these trials can show neither a difference nor that there is none: a variant called "
        "different passed a test corrected for every comparison in this report, and one called the same is within "
        "the study's equivalence margin by two one-sided tests."
    )
    return lines
