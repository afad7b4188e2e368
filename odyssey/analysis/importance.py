"""Hyperparameter importance of a set of trials: fANOVA on the analysis scales, with intervals and floors.

`analyse` is one set of trials, `analyse_spaces` a study's trials split where the space changes
(conditional parameters); importance_tables.py turns the results into the tables the report, the
figures and `odyssey importance` show.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import OdysseyError
from .fanova import Fanova, decompose_forest
from .forest import effects_part, fit_effects, fit_forest, fit_model
from .scales import Scale, param_order
from .trials import PARAM_PREFIX, TooFewTrials, Trials
from .uncertainty import REFITS, Uncertainty, estimate, table_bounds

# A refit's shares feed a spread, a bias or a floor, not a reported share: a quarter of the trees, fewer
# probes for its higher-order rest, fewer bins in its pair grids. At 5400 trials 36 refits as large
# as the reported forest took 16 s, against 5 s for Optuna to load the trials. The bias is measured
# against the reported forest's first REFIT_TREES trees, decomposed as a refit is, so that a smaller
# forest's extra noise is not taken for bias; the floors, from smaller forests, err on the high side.
REFIT_TREES, REFIT_PROBES, REFIT_PAIR_BINS = 8, 2**12, 256
MIN_TRIALS = 20  # fewer than this and a forest's shares say more about the sample than the space
# Trials that each carry OUTLIER or more of the objective's variance, and DOMINANT together, are
# named beside the shares.
OUTLIER, DOMINANT = 0.1, 0.5
PAIR_SIGN = " × "
ALL_TRIALS = "all trials"
SCALE_NOTE = "log-sampled parameters on their log10 scale, categorical ones as equally weighted choices"
SHARES_NOTE = (
    "shares divide the variance of the model's prediction over the space (the effects fit first plus the forest's "
    "mean: the objective without its noise, as the model sees it); the noise row is the share of the trials' own "
    "variance that no parameter explains (out of bag)"
)
FIRST_NOTE = {  # what the forest was fit to, where more than the categorical effects came first (forest.fit_model)
    "one-way": ", fit to what each parameter's one-way effect leaves (that predicted left-out trials better)",
    "interactions": ", fit to what each parameter's one-way effect and binned effects of pairs and triples of "
    "parameters leave (that predicted left-out trials better)",
}


@dataclass(frozen=True)
class Importance:
    """fANOVA of one set of trials: all of them, or the sub-space where some conditional parameters exist."""

    scales: list[Scale]
    trials: int
    fanova: Fanova
    space: str = ALL_TRIALS
    dropped: tuple[str, ...] = ()  # parameters left out here, each with the reason
    uncertainty: Uncertainty | None = None
    constant: bool = False  # the target has one value: there is no variance to share out
    dominant: str = ""  # the few trials that carry most of the target's variance, said (see `dominant_trials`)
    noise: float = math.nan  # the share of the trials' variance no parameter explains (out-of-bag error / variance)
    first: str = "categorical"  # the effects fit before the forest (forest.FIRST, chosen by forest.fit_model)

    @property
    def note(self) -> str:
        """What a reader must know beside the numbers: dropped parameters, a constant target, trials
        that outweigh the rest."""
        notes = [
            f"{self.trials} trials ({self.space})",
            SCALE_NOTE,
            SHARES_NOTE,
            f"forest of {self.fanova.trees} trees, leaves of {self.fanova.leaf}+ trials (chosen out of bag)"
            + FIRST_NOTE.get(self.first, ""),
        ]
        if self.constant:
            notes.append("the objective is constant over these trials: its variance is zero and no share is defined")
        if self.dominant:
            notes.append(self.dominant)
        notes += [f"left out: {d}" for d in self.dropped]
        if self.uncertainty is not None:
            notes.append(self.uncertainty.describe())
        return "; ".join(notes)


def choose_scales(trials: Trials, params: Sequence[str] | None = None) -> list[Scale]:
    """The requested parameters (all by default), in a stable order; unknown names are an error.

    Parameters with a single possible value are kept here and left out by `analyse`, which says so.
    """
    if not params:
        return [trials.scales[p] for p in param_order(trials.scales)]
    unknown = [p for p in params if p not in trials.scales]
    if unknown:
        raise OdysseyError(
            f"unknown parameter(s) {', '.join(unknown)}; the study has: {', '.join(sorted(trials.scales))}"
        )
    return [trials.scales[p] for p in dict.fromkeys(params)]


def _check_finite(rows: pd.DataFrame, target: str) -> None:
    bad = rows[~np.isfinite(rows[target].to_numpy(float))]
    if len(bad):
        first = bad.iloc[0]
        study = f" of study {first['study']!r}" if "study" in bad.columns else ""
        raise OdysseyError(
            f"trial {int(first['number'])}{study} has {target} {first[target]}; fANOVA needs finite values (fix or "
            "delete that trial)"
        )


def _narrowed(scale: Scale, values: pd.Series) -> tuple[Scale | None, str]:
    """The scale for these trials, or None and why the parameter is left out."""
    if scale.single:
        return None, f"{scale.param} (its distribution allows one value only)"
    if values.nunique() < 2:
        value = values.iloc[0]
        shown = (
            repr(value) if isinstance(value, str) else f"{value:g}" if isinstance(value, (int, float)) else str(value)
        )
        return None, f"{scale.param} (one value, {shown}, in these trials)"
    if scale.choices is not None and len(set(values)) < len(scale.choices):
        # A choice no trial took here cannot be judged: weigh the ones that were.
        present = tuple(c for c in scale.choices if c in set(values))
        return Scale(scale.param, -0.5, len(present) - 0.5, choices=present), ""
    return scale, ""


def largest_shares(y: np.ndarray) -> tuple[np.ndarray, float]:
    """The values that each carry a tenth or more of the variance of y (else the single farthest from
    the mean): their positions, farthest first, and the share they carry together (0 for a constant y)."""
    deviations = (y - y.mean()) ** 2
    shares = deviations / deviations.sum() if deviations.sum() else np.zeros_like(deviations)
    order = np.argsort(shares)[::-1]
    big = order[shares[order] >= OUTLIER] if shares[order[0]] >= OUTLIER else order[:1]
    return big, float(shares[big].sum())


def dominant_trials(rows: pd.DataFrame, y: np.ndarray) -> str:
    """Where the trials that each carry a tenth of the variance of y carry DOMINANT of it together: which, and how much.

    Shares are fractions of a variance, and an outlier or two (a diverged network's loss, an
    untrained one's error far above the rest) can be most of it: then every share mostly says where
    those trials lie, and the intervals and floors are wide for it."""
    positions, share = largest_shares(y)
    if share < DOMINANT:
        return ""

    def who(k: int) -> str:
        row = rows.iloc[k]
        name = f"trial {int(row['number'])}" if "number" in rows else "a trial"
        return (
            name
            + (f" ({row['variant']})" if isinstance(row.get("variant"), str) and row["variant"] else "")
            + f" at {y[k]:.4g}"
        )

    one = len(positions) == 1
    return (
        f"{' and '.join(who(k) for k in positions)} {'carries' if one else 'carry'} {share:.2f} of the objective's "
        f"variance: the shares mostly say where {'that trial lies' if one else 'those trials lie'}, not how the "
        "others vary (an objective capped or on a log scale would say more)"
    )


def recode(x: np.ndarray, y: np.ndarray, categorical: Sequence[int]) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Each categorical column's choices renumbered by their mean objective, lowest first (a choice
    no trial here took sits at the overall mean): the code of each choice, and x so coded.

    A tree then separates good choices from bad ones in one split, as CART does for categoricals
    (Breiman et al. 1984); in the given order a real effect of a 9-level choice needed a split per
    level, the trees isolated the trials by the continuous parameters first, and its share came out
    0.007 where the truth is 0.110. The uniform measure over choices ignores their order, so the
    shares are unchanged by it; the floors' refits recode their own targets, so the floors include
    what ordering by the data adds to noise."""
    coded, codes = x.copy(), {}
    for d in categorical:
        levels = x[:, d].astype(int)
        count = np.bincount(levels, minlength=levels.max(initial=0) + 1)
        means = np.where(count > 0, np.bincount(levels, y, len(count)) / np.maximum(count, 1), np.mean(y))
        codes[d] = np.argsort(np.argsort(means, kind="stable"), kind="stable").astype(float)
        coded[:, d] = codes[d][levels]
    return coded, codes


def analyse(
    frame: pd.DataFrame,
    *,
    scales: Sequence[Scale],
    target: str = "value",
    pairs: bool = True,
    trees: int = 32,
    seed: int = 0,
    refits: int = REFITS,
    space: str = ALL_TRIALS,
) -> Importance:
    """fANOVA of `target` over the trials in `frame` that have every parameter in `scales`.

    refits: resamples behind each interval and refits behind each noise floor (uncertainty.py);
    0 for the shares alone, without intervals or floors, as Optuna's evaluators give them.
    """
    if not scales:
        raise OdysseyError("no parameters to analyse: the trials have none")
    columns = [PARAM_PREFIX + s.param for s in scales]
    rows = frame.dropna(subset=[*columns, target]) if set(columns) <= set(frame.columns) else frame.iloc[:0]
    _check_finite(rows, target)
    if len(rows) < MIN_TRIALS:
        raise TooFewTrials(
            f"fANOVA needs at least {MIN_TRIALS} complete trials with {target}; {len(rows)} present ({space})"
        )
    kept, dropped = [], []
    for scale, column in zip(scales, columns):
        narrowed, why = _narrowed(scale, rows[column])
        if narrowed is None:
            dropped.append(why)
        else:
            kept.append((narrowed, column))
    if not kept:
        raise TooFewTrials(
            f"no parameter varies over these {len(rows)} trials ({space}): nothing to analyse; left out: "
            f"{'; '.join(dropped)}"
        )
    used = [s for s, _ in kept]
    lows, highs = np.array([s.low for s in used]), np.array([s.high for s in used])
    x = np.clip(np.column_stack([s.transform(rows[c]) for s, c in kept]), lows, highs)
    y = rows[target].to_numpy(float)
    categorical = [d for d, s in enumerate(used) if s.choices is not None]
    grid = {} if pairs else {"pairs": []}
    coded, codes = recode(x, y, categorical)
    fit = fit_model(coded, y, categorical=categorical, lows=lows, highs=highs, trees=trees, seed=seed)
    effects, forest = fit.effects, fit.forest
    leaf = forest.min_samples_leaf
    fanova = decompose_forest(forest, lows=lows, highs=highs, codes=codes, effects=effects, **grid)

    def refit(xs: np.ndarray, ys: np.ndarray, at: int, with_pairs: bool) -> Fanova:
        # The same analysis on other trials or targets (the marginals' spread over them is the curves' band).
        again, again_codes = recode(xs, ys, categorical)
        again_effects, _ = fit_effects(again, ys, categorical=categorical, lows=lows, highs=highs, first=fit.first)
        target = ys - effects_part(again, again_effects)
        model = fit_forest(again, target, trees=min(trees, REFIT_TREES), min_samples_leaf=leaf, seed=at)
        return small(model, again_codes, again_effects, with_pairs)

    def small(model, model_codes, model_effects, with_pairs: bool, first: int | None = None) -> Fanova:
        return decompose_forest(
            model,
            lows=lows,
            highs=highs,
            codes=model_codes,
            effects=model_effects,
            probes=REFIT_PROBES,
            pair_bins=REFIT_PAIR_BINS,
            first=first,
            **({} if with_pairs and pairs else {"pairs": []}),
        )

    constant = bool(np.ptp(y) == 0)
    fitted = fit.left_out  # trials the forest did not see (the categorical effects are in-sample means)
    seen = np.isfinite(fitted)
    noise = float(np.mean((y[seen] - fitted[seen]) ** 2) / np.var(y)) if seen.any() and not constant else math.nan
    uncertainty = None
    if refits and not constant:
        residuals = y - np.where(seen, fitted, np.mean(y))
        mains = main_parts(fanova, x)
        uncertainty = estimate(
            refit,
            x,
            y,
            fanova,
            like_refits=small(forest, codes, effects, True, first=REFIT_TREES),
            residuals=residuals,
            additive=additive_part(fanova, x),
            replicates=refits,
            nulls=refits,
            seed=seed,
            table_high=table_bounds(x, y, mains, fanova.pairs, categorical=categorical, lows=lows, highs=highs),
        )
    return Importance(
        used,
        len(rows),
        fanova,
        space=space,
        dropped=tuple(dropped),
        uncertainty=uncertainty,
        constant=constant,
        dominant=dominant_trials(rows, y),
        noise=min(noise, 1.0),
        first=fit.first,
    )


def main_parts(fanova: Fanova, x: np.ndarray) -> np.ndarray:
    """(N, D) each parameter's main effect at each trial (its marginal less the overall mean)."""
    mean = float(fanova.curves.mean())
    return np.column_stack([np.interp(x[:, d], fanova.curve_x[d], fanova.curves[d]) - mean for d in range(x.shape[1])])


def additive_part(fanova: Fanova, x: np.ndarray) -> np.ndarray:
    """The forest's main effects summed at each trial: the objective with every interaction removed."""
    return float(fanova.curves.mean()) + sum(main_parts(fanova, x).T)


def _condition(rows: pd.DataFrame, inside: pd.Series, scales: dict[str, Scale]) -> str:
    """Categorical parameters whose values inside the sub-space never occur outside it: "optimizer = sgd"."""
    parts = []
    for param, scale in scales.items():
        column = PARAM_PREFIX + param
        if scale.choices is None or column not in rows or rows[column].isna().any():
            continue
        values_in, values_out = set(rows.loc[inside, column]), set(rows.loc[~inside, column])
        if values_in and not values_in & values_out:
            parts.append(f"{param} = {' or '.join(map(str, sorted(values_in, key=str)))}")
    return ", ".join(parts)


def analyse_spaces(
    frame: pd.DataFrame, *, scales: Sequence[Scale], target: str = "value", **options
) -> list[tuple[str, Importance | str]]:
    """Every parameter where it exists: the parameters all trials have, on all trials; each set of
    conditional parameters (present in the same trials) on the trials that have it, with its parents.

    Returns (space, result or the reason there is none) per space, all trials first.
    """
    rows = frame[frame[target].notna()] if target in frame else frame.iloc[:0]
    by_param = {s.param: s for s in scales}
    present = {
        p: rows[PARAM_PREFIX + p].notna().to_numpy() if PARAM_PREFIX + p in rows else np.zeros(len(rows), bool)
        for p in by_param
    }
    everywhere = [p for p, mask in present.items() if mask.all()]
    groups: dict[bytes, list[str]] = {}
    for p, mask in present.items():
        if mask.any() and not mask.all():
            groups.setdefault(mask.tobytes(), []).append(p)
    spaces: list[tuple[str, list[str], pd.DataFrame]] = []
    if everywhere or not groups:
        spaces.append((ALL_TRIALS, everywhere, rows))
    for key, params in sorted(groups.items(), key=lambda kv: (-np.frombuffer(kv[0], bool).sum(), kv[1])):
        inside = np.frombuffer(key, bool)
        # Parents: every parameter present wherever these are (nested conditionals included).
        with_parents = [p for p in by_param if present[p][inside].all()]
        condition = _condition(rows, pd.Series(inside, index=rows.index), {p: by_param[p] for p in everywhere})
        label = f"trials with {', '.join(params)}" + (f" ({condition})" if condition else "")
        spaces.append((label, with_parents, rows[inside]))
    results: list[tuple[str, Importance | str]] = []
    for label, params, part in spaces:
        if not params:
            results.append((label, "no parameter is present in every trial"))
            continue
        try:
            results.append(
                (label, analyse(part, scales=[by_param[p] for p in params], target=target, space=label, **options))
            )
        except TooFewTrials as refusal:
            results.append((label, str(refusal)))
    return results
