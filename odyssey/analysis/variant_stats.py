"""Variants against vanilla: Welch's t-test on the best trials of each cell, as the paper does.

The paper compares the test metric of the best 10% of trials by validation value: the region a
practitioner would end up in, not the failures of a random search.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

VANILLA = "V"
PAPER_ORDER = ("V", "NIG", "NFG", "NOG", "NIAF", "NOAF", "NP", "CIFG", "FGR")
TOP_FRACTION = 0.1
ALPHA = 0.05
MIN_TOP = 3  # Welch's test runs on 2 values per group, but with 1 degree of freedom it says nothing
POWER = 0.8


def variant_order(variants) -> list[str]:
    """Vanilla first, then the paper's order, then combinations and others alphabetically."""
    present = set(variants)
    return [v for v in PAPER_ORDER if v in present] + sorted(present - set(PAPER_ORDER))


def top_count(complete: int, *, fraction: float = TOP_FRACTION) -> int:
    # The small offset keeps 0.1 * 30 from rounding up to 4.
    return max(math.ceil(fraction * complete - 1e-9), 1) if complete else 0


def needed_for(top: int, *, fraction: float = TOP_FRACTION) -> int:
    """The fewest complete trials whose best `fraction` holds `top` trials."""
    n = top
    while top_count(n, fraction=fraction) < top:
        n += 1
    return n


def best_trials(complete: pd.DataFrame, *, fraction: float = TOP_FRACTION) -> pd.DataFrame:
    """Per (task, variant), the best `fraction` of trials by validation value that have a test metric."""
    scored = complete.dropna(subset=["value", "test_metric"]).sort_values(["task", "variant", "value", "number"])
    cells = scored.groupby(["task", "variant"])
    size = cells["value"].transform("size").map(lambda n: top_count(n, fraction=fraction))
    return scored[cells.cumcount() < size].reset_index(drop=True)


def _welch(variant: np.ndarray, vanilla: np.ndarray) -> tuple[float, float]:
    if np.ptp(variant) == 0 and np.ptp(vanilla) == 0:
        # No spread at all: the test is undefined; equal values are simply not different.
        return (math.nan, 1.0) if variant[0] == vanilla[0] else (math.copysign(math.inf, variant[0] - vanilla[0]), 0.0)
    result = stats.ttest_ind(variant, vanilla, equal_var=False)
    return float(result.statistic), float(result.pvalue)


def _refusal(label: str, complete: int, *, fraction: float, min_top: int) -> str:
    return (
        f"{label} has {complete} complete trials (best {fraction:.0%}: {top_count(complete, fraction=fraction)}); "
        f"the t-test needs {min_top} in the best {fraction:.0%}, i.e. at least {needed_for(min_top, fraction=fraction)} complete trials"
    )


def detectable(a: np.ndarray, b: np.ndarray, *, alpha: float = ALPHA, power: float = POWER) -> tuple[float, float]:
    """(pooled SD, minimum detectable effect in pooled SDs): the difference Welch's two-sided test
    at `alpha` finds with probability `power` on groups of these sizes (t quantiles at Welch's df)."""
    va, vb = np.var(a, ddof=1), np.var(b, ddof=1)
    pooled = math.sqrt((va + vb) / 2)
    na, nb = len(a), len(b)
    se = math.sqrt(va / na + vb / nb)
    df = se**4 / ((va / na) ** 2 / (na - 1) + (vb / nb) ** 2 / (nb - 1)) if se > 0 else na + nb - 2
    spread = stats.t.ppf(1 - alpha / 2, df) + stats.t.ppf(power, df)
    return pooled, spread * math.sqrt(1 / na + 1 / nb)


def trials_needed(effect_sd: float, *, alpha: float = ALPHA, power: float = POWER, fraction: float = TOP_FRACTION) -> float:
    """Complete trials per cell for the best `fraction` of two cells to show a difference of
    `effect_sd` pooled SDs at `alpha` with `power` (normal approximation, equal cells); inf for none."""
    if not effect_sd or not math.isfinite(effect_sd):
        return math.inf
    top = max(math.ceil(2 * ((stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)) / abs(effect_sd)) ** 2), MIN_TOP)
    return float(needed_for(top, fraction=fraction))


def variant_tests(complete: pd.DataFrame, *, fraction: float = TOP_FRACTION, alpha: float = ALPHA, min_top: int = MIN_TOP) -> pd.DataFrame:
    """One row per (task, variant): its best trials' test metric against vanilla's (lower is better).

    What the budget can resolve: `detectable_sd` is the difference (in pooled SDs of the two best
    groups; `detectable` in the metric's units) the test finds 80% of the time at these group
    sizes, and `trials_needed` how many complete trials per cell would find the observed
    difference that often. A row that cannot be tested says why in `note` and leaves them empty.
    """
    top = best_trials(complete, fraction=fraction)
    rows = []
    for task, cells in complete.groupby("task", sort=True):
        counts = cells.dropna(subset=["test_metric"]).groupby("variant").size()
        vanilla = top[(top["task"] == task) & (top["variant"] == VANILLA)]["test_metric"].to_numpy(float)
        for variant in variant_order(cells["variant"].unique()):
            mine = top[(top["task"] == task) & (top["variant"] == variant)]["test_metric"].to_numpy(float)
            row = {
                "task": task,
                "variant": variant,
                "parameters": cells.loc[cells["variant"] == variant, "parameter_count"].median(),
                "complete": int(counts.get(variant, 0)),
                "top": len(mine),
                "mean": float(mine.mean()) if len(mine) else math.nan,
                "vanilla_top": len(vanilla),
                "vanilla_mean": float(vanilla.mean()) if len(vanilla) else math.nan,
                "difference": math.nan,
                "direction": "",
                "t": math.nan,
                "p": math.nan,
                "significant": None,  # untested: neither yes nor no
                "pooled_sd": math.nan,
                "detectable_sd": math.nan,
                "detectable": math.nan,
                "trials_needed": math.nan,
                "note": "",
            }
            if variant == VANILLA:
                row["note"] = "reference"
            elif VANILLA not in counts:
                row["note"] = f"no vanilla ({VANILLA}) trials with a test metric in task {task}: nothing to compare against"
            elif len(mine) < min_top or len(vanilla) < min_top:
                short = variant if len(mine) < min_top else VANILLA
                row["note"] = _refusal(short, int(counts.get(short, 0)), fraction=fraction, min_top=min_top)
            else:
                t, p = _welch(mine, vanilla)
                difference = row["mean"] - row["vanilla_mean"]
                row.update(t=t, p=p, difference=difference, significant=bool(p < alpha), direction="better" if difference < 0 else "worse" if difference > 0 else "same")
                pooled, mde = detectable(mine, vanilla, alpha=alpha)
                observed = difference / pooled if pooled > 0 else (0.0 if difference == 0 else math.inf)
                row.update(pooled_sd=pooled, detectable_sd=mde, detectable=mde * pooled, trials_needed=trials_needed(observed, alpha=alpha, fraction=fraction))
            rows.append(row)
    columns = ["task", "variant", "parameters", "complete", "top", "mean", "vanilla_top", "vanilla_mean", "difference", "direction", "t", "p", "significant"]
    return pd.DataFrame(rows, columns=[*columns, "pooled_sd", "detectable_sd", "detectable", "trials_needed", "note"])
