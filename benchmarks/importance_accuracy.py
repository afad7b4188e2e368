"""How right `odyssey importance` is, on analytic studies whose variance shares are known exactly.

    python benchmarks/importance_accuracy.py [--sizes 60 200 1000] [--replicates 3] [--studies ...] [--no-optuna]

Each study is a function of the paper's search space on its analysis scales (learning rate and
1 - momentum log10, hidden size an integer drawn log-uniformly, input noise linear, a 9-level
`variant`), plus noise. Its true shares are the functional ANOVA of the noise-free function under
the uniform measure on those scales, by quadrature on a tensor grid (midpoints, 64 per active
dimension; a dimension the function ignores needs two). Trials are drawn at random, as random
search draws them, and analysed by `odyssey.analysis.importance.analyse_spaces`, which is what
`odyssey importance` and the report run.

Four sets of six studies of the same kinds: A, those the analysis was built and tuned on (the kinds
issue 21 measured); B, written afterwards and then used to choose one part of the analysis; C,
written before that choice, run once after it, and then used to choose a further part; D, written
while that part was built, with new functions, noise and parameter roles (SETS says how far it is
held out). The summary lines give each set apart.

Printed per study and size (over the replicates; a term is "nonzero" at a true share >= 0.01, "zero"
below 0.001, "large" at 0.05 or more; the higher-order rest counts as a term):
- max |err|: the largest error of a main or pair share against the truth;
- cover: how often the 90% interval holds the truth, over the nonzero terms;
- FP: zero terms called distinguishable from zero; FN: large terms not called so;
- same: how many terms get the same distinguishable decision from the analysis with seed 1 as with
  seed 0 (the forests, halves and refits drawn anew; with --no-seeds, not run);
- s: seconds per analysis (intervals and floors included);
- optuna: the largest main-share error of Optuna's `FanovaImportanceEvaluator` (normalize=False) and
  its seconds; PED-ANOVA's error too, though it measures importance inside the best 10% of trials,
  another quantity, so its error says how far that is from the whole-space shares.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from odyssey.analysis.importance import ALL_TRIALS, PAIR_SIGN, Importance, analyse_spaces  # noqa: E402
from odyssey.analysis.importance_tables import terms_table  # noqa: E402
from odyssey.analysis.scales import Scale  # noqa: E402
from odyssey.analysis.trials import PARAM_PREFIX  # noqa: E402

VARIANTS = ("V", "NIG", "NFG", "NOG", "NIAF", "NOAF", "NP", "CIFG", "FGR")
OPTIMIZERS = ("sgd", "adam")
SCALES = {
    "learning_rate": Scale("learning_rate", -6.0, -2.0, log=True),
    "hidden_size": Scale("hidden_size", math.log10(20), math.log10(200), log=True),
    "input_noise": Scale("input_noise", 0.0, 1.0),
    "one_minus_momentum": Scale("one_minus_momentum", -2.0, 0.0, log=True),
    "variant": Scale("variant", -0.5, len(VARIANTS) - 0.5, choices=VARIANTS),
    "optimizer": Scale("optimizer", -0.5, len(OPTIMIZERS) - 0.5, choices=OPTIMIZERS),
}
NONZERO, ZERO, LARGE = 0.01, 0.001, 0.05
COLUMNS = (
    "truth",
    "share",
    "low",
    "high",
    "dist",
    "kind",
    "std",
    "moved",
    "floor",
    "above",
    "forest",
)  # per term, in --csv
# Fixed, unlike the draws: the variants' offsets of the categorical study (a real effect, share ~0.15).
OFFSETS = np.array([0.0, 0.35, -0.3, 0.1, -0.15, 0.5, 0.05, -0.4, 0.25])


def unit(name: str, u: np.ndarray) -> np.ndarray:
    """A parameter on its analysis scale mapped to [0, 1] (the hidden size rounded to the integer a trial gets)."""
    s = SCALES[name]
    if name == "hidden_size":
        u = np.log10(np.round(10.0**u))
    return (u - s.low) / (s.high - s.low)


@dataclass(frozen=True)
class Analytic:
    """A study: the mean objective of the analysis-scale parameters, the noise's sd, and which parameters exist."""

    name: str
    params: tuple[str, ...]
    mean: callable  # dict of analysis-scale arrays -> mean objective
    noise: callable  # (dict, mean objective's variance) -> noise sd per point
    conditional: bool = False  # one_minus_momentum exists only where optimizer == sgd
    ignores: tuple[str, ...] = ()  # parameters the mean does not depend on (their quadrature needs two points)
    held_out: str = ""  # its set (SETS): "" for those the analysis was built on


def _t(p, name):
    return unit(name, p[name])


def _homoscedastic(ratio):
    return lambda p, v: np.full(len(next(iter(p.values()))), math.sqrt(ratio * v))


def _by_learning_rate(p, v):
    """Noise whose sd grows 9x across the learning rate's range, mean variance half the signal's (E[w^2] = 1.2133)."""
    return math.sqrt(0.5 * v / 1.2133) * (0.2 + 1.6 * _t(p, "learning_rate"))


def _smooth(p):
    lr, om, h = _t(p, "learning_rate"), _t(p, "one_minus_momentum"), _t(p, "hidden_size")
    return 3 * (lr - 0.6) ** 2 + 0.8 * om + 0.5 * h + 2.5 * (lr - 0.5) * (om - 0.5)


def _categorical(p):
    lr, h = _t(p, "learning_rate"), _t(p, "hidden_size")
    sgd = p["optimizer"] == 0
    om = np.where(sgd, _t(p, "one_minus_momentum"), 0.5) if "one_minus_momentum" in p else 0.5
    return (
        1.6 * np.sin(math.pi * lr) + 0.8 * h + OFFSETS[p["variant"].astype(int)] + np.where(sgd, 1.2 * (om - 0.5), 0.2)
    )


def _threeway(p):
    return np.prod(
        [np.sin(2 * math.pi * _t(p, n)) for n in ("learning_rate", "one_minus_momentum", "input_noise")], axis=0
    )


def _threshold(p):
    lr, h = _t(p, "learning_rate"), _t(p, "hidden_size")
    return (lr > 0.3 + 0.4 * h).astype(float) + 0.3 * _t(p, "input_noise")


def _tiny(p):
    return (
        3 * _t(p, "learning_rate")
        + 0.6 * _t(p, "one_minus_momentum")
        + 0.4 * _t(p, "hidden_size")
        + 0.3 * _t(p, "input_noise")
    )


# Issue 21's targets hold "on studies you did not tune on": two more sets of the same six kinds, with
# other functions, noise levels and parameters, each written before anything ran on it (2026-12-07).
# Set B ran once, showed interactions of parameters without main effects lost, and was then used to
# choose the model that fits one-way effects first (forest.fit_model): it is no longer held out.
# Set C was written before that choice and ran once, after it; nothing was changed for its numbers.
# Set C then showed pairs and a three-way interaction lost beside main effects, and was used to choose
# the model that fits binned interactions first. Set D was written while that was built (2026-12-07),
# with functions, noise levels and parameter roles none of A-C has. It first ran by mistake in a run
# of the pairs alone, beside C, whose three-way study had failed there, and it showed the same: triples
# were added after that run had been seen. Nothing was changed for D's numbers.
SETS = {"": "A (built on)", "B": "B (seen)", "C": "C (seen)", "D": "D (held out)"}
OFFSETS_2 = np.array([0.0, -0.2, 0.45, -0.35, 0.15, 0.3, -0.1, 0.6, -0.25])
SLOPES = np.array([0.0, 0.8, -0.6, 0.3, 0.0, -0.9, 0.5, 0.2, -0.3])  # each variant's own learning-rate slope


def _bowl(p):
    lr, om, h, n = (_t(p, k) for k in ("learning_rate", "one_minus_momentum", "hidden_size", "input_noise"))
    return 4 * (lr - 0.4) ** 2 + 0.6 * np.log1p(3 * om) + 1.5 * (h - 0.5) * (n - 0.5)


def _by_hidden_size(p, v):
    """Noise whose sd grows 20x across the hidden size's range, mean variance half the signal's (E[w^2] = 1.4033)."""
    return math.sqrt(0.5 * v / 1.4033) * (0.1 + 1.9 * _t(p, "hidden_size"))


def _decay(p):
    lr, om, h = _t(p, "learning_rate"), _t(p, "one_minus_momentum"), _t(p, "hidden_size")
    return np.exp(-3 * lr) + 0.5 * om + 1.2 * (lr - 0.5) * (h - 0.5)


def _categorical_slopes(p):
    lr, h = _t(p, "learning_rate"), _t(p, "hidden_size")
    sgd, v = p["optimizer"] == 0, p["variant"].astype(int)
    om = np.where(sgd, _t(p, "one_minus_momentum"), 0.5) if "one_minus_momentum" in p else 0.5
    return 2 * lr**2 + 0.6 * h + OFFSETS_2[v] + SLOPES[v] * (lr - 0.5) + np.where(sgd, 2.0 * (om - 0.4) ** 2, 0.1)


def _threeway_and_main(p):
    three = np.prod(
        [np.cos(math.pi * _t(p, n)) for n in ("learning_rate", "one_minus_momentum", "hidden_size")], axis=0
    )
    return 2 * three + 2.0 * _t(p, "input_noise")


def _noise_threshold(p):
    n, om = _t(p, "input_noise"), _t(p, "one_minus_momentum")
    return (n > 0.25 + 0.5 * om).astype(float) + 0.5 * _t(p, "learning_rate")


def _tiny_pair(p):
    lr, om, h, n = (_t(p, k) for k in ("learning_rate", "one_minus_momentum", "hidden_size", "input_noise"))
    return 3 * lr**1.5 + 0.65 * h + 1.95 * (om - 0.5) * (n - 0.5)


OFFSETS_3 = np.array([0.1, 0.0, -0.3, 0.25, 0.4, -0.2, -0.45, 0.15, 0.05])
H_SLOPES = np.array([0.5, -0.4, 0.0, 0.7, -0.6, 0.2, 0.0, -0.3, 0.1])  # each variant's own hidden-size slope


def _wave(p):
    lr, om, h = _t(p, "learning_rate"), _t(p, "one_minus_momentum"), _t(p, "hidden_size")
    return 0.8 * np.sin(1.5 * math.pi * lr) + 0.7 * h**2 + 1.2 * (om - 0.5) * (lr - 0.3)


def _by_momentum(p, v):
    """Noise whose sd grows 6x across 1 - momentum's range, mean variance 0.4 of the signal's (E[w^2] = 1.5233)."""
    return math.sqrt(0.4 * v / 1.5233) * (0.3 + 1.5 * _t(p, "one_minus_momentum"))


def _kink(p):
    lr, h, n = _t(p, "learning_rate"), _t(p, "hidden_size"), _t(p, "input_noise")
    return 2 * np.abs(lr - 0.5) + 0.6 * n + 1.4 * (n - 0.5) * (h - 0.5)


def _variant_by_hidden(p):
    lr, h, v = _t(p, "learning_rate"), _t(p, "hidden_size"), p["variant"].astype(int)
    return 1.5 * np.sqrt(lr) + OFFSETS_3[v] + H_SLOPES[v] * (h - 0.5) + 0.3 * _t(p, "one_minus_momentum")


def _threeway_two_mains(p):
    lr, om, n, h = (_t(p, k) for k in ("learning_rate", "one_minus_momentum", "input_noise", "hidden_size"))
    return 8 * (lr - 0.5) * (om - 0.5) * (n - 0.5) + 0.5 * h + 0.4 * (lr - 0.5) ** 2


def _hidden_threshold(p):
    lr, h = _t(p, "learning_rate"), _t(p, "hidden_size")
    return (h > 0.6 - 0.3 * lr).astype(float) + 0.4 * _t(p, "one_minus_momentum")


def _tiny_hidden(p):
    lr, om, h, n = (_t(p, k) for k in ("learning_rate", "one_minus_momentum", "hidden_size", "input_noise"))
    return 2 * np.exp(h) + 0.62 * lr + 0.5 * n + 1.74 * (lr - 0.5) * (om - 0.5)


OFFSETS_4 = np.array([-0.1, 0.3, 0.0, -0.45, 0.2, 0.55, -0.25, 0.1, -0.35])
N_SLOPES = np.array([0.2, -0.7, 0.6, 0.0, -0.4, 0.9, -0.2, 0.4, -0.8])  # each variant's own input-noise slope


def _ridge(p):
    lr, h, n = _t(p, "learning_rate"), _t(p, "hidden_size"), _t(p, "input_noise")
    return 2.5 * (lr - 0.4 * n - 0.3) ** 2 + 0.6 * np.log1p(2 * h) + 0.3 * n


def _by_input_noise(p, v):
    """Noise whose sd grows 8x across the input noise's range, mean variance 0.45 of the signal's (E[w^2] = 0.97333)."""
    return math.sqrt(0.45 * v / 0.97333) * (0.2 + 1.4 * _t(p, "input_noise"))


def _saddle(p):
    lr, h, om = _t(p, "learning_rate"), _t(p, "hidden_size"), _t(p, "one_minus_momentum")
    return 1.2 * (1 - om) ** 2 + 0.7 * np.sin(math.pi * lr) + 0.3 * h + 1.6 * (h - 0.5) * (om - 0.5)


def _variant_by_noise(p):
    lr, n = _t(p, "learning_rate"), _t(p, "input_noise")
    sgd, v = p["optimizer"] == 0, p["variant"].astype(int)
    om = np.where(sgd, _t(p, "one_minus_momentum"), 0.5) if "one_minus_momentum" in p else 0.5
    return (
        1.5 * (1 - lr) ** 2 + 0.5 * n + OFFSETS_4[v] + N_SLOPES[v] * (n - 0.5) + np.where(sgd, np.abs(om - 0.5), 0.15)
    )


def _sine_threeway(p):
    lr, h, n, om = (_t(p, k) for k in ("learning_rate", "hidden_size", "input_noise", "one_minus_momentum"))
    return 3.3 * np.sin(2 * math.pi * om) * (h - 0.5) * (n - 0.5) + 0.6 * lr + 0.3 * n


def _momentum_threshold(p):
    om, n = _t(p, "one_minus_momentum"), _t(p, "input_noise")
    return (om > 0.25 + 0.45 * n).astype(float) + 0.4 * _t(p, "hidden_size")


def _tiny_momentum(p):
    lr, om, h, n = (_t(p, k) for k in ("learning_rate", "one_minus_momentum", "hidden_size", "input_noise"))
    return 2.5 * om**2 + 0.4 * lr + 0.45 * n + 0.4 * h + 1.35 * (lr - 0.5) * (h - 0.5)


PAPER = ("learning_rate", "hidden_size", "input_noise", "one_minus_momentum")
STUDIES = {
    s.name: s
    for s in (
        Analytic("noise 1/2", PAPER, _smooth, _homoscedastic(0.5), ignores=("input_noise",)),
        Analytic("noise by lr", PAPER, _smooth, _by_learning_rate, ignores=("input_noise",)),
        Analytic(
            "categorical",
            (*PAPER, "variant", "optimizer"),
            _categorical,
            _homoscedastic(0.1),
            conditional=True,
            ignores=("input_noise",),
        ),
        Analytic("three-way", PAPER, _threeway, _homoscedastic(0.1), ignores=("hidden_size",)),
        Analytic("threshold", PAPER, _threshold, _homoscedastic(0.1), ignores=("one_minus_momentum",)),
        Analytic("tiny mains", PAPER, _tiny, _homoscedastic(0.2)),
        Analytic("bowl, 1/3", PAPER, _bowl, _homoscedastic(1 / 3), held_out="B"),
        Analytic("noise by h", PAPER, _decay, _by_hidden_size, ignores=("input_noise",), held_out="B"),
        Analytic(
            "cat x lr",
            (*PAPER, "variant", "optimizer"),
            _categorical_slopes,
            _homoscedastic(0.15),
            conditional=True,
            ignores=("input_noise",),
            held_out="B",
        ),
        Analytic("3-way+main", PAPER, _threeway_and_main, _homoscedastic(0.1), held_out="B"),
        Analytic("noise jump", PAPER, _noise_threshold, _homoscedastic(0.1), ignores=("hidden_size",), held_out="B"),
        Analytic("tiny pair", PAPER, _tiny_pair, _homoscedastic(0.25), held_out="B"),
        Analytic("wave, 1/2", PAPER, _wave, _homoscedastic(0.5), ignores=("input_noise",), held_out="C"),
        Analytic("noise by m", PAPER, _kink, _by_momentum, held_out="C"),
        Analytic(
            "variant x h",
            (*PAPER, "variant"),
            _variant_by_hidden,
            _homoscedastic(0.15),
            ignores=("input_noise",),
            held_out="C",
        ),
        Analytic("3-way+2", PAPER, _threeway_two_mains, _homoscedastic(0.15), held_out="C"),
        Analytic("h jump", PAPER, _hidden_threshold, _homoscedastic(0.1), ignores=("input_noise",), held_out="C"),
        Analytic("tiny h", PAPER, _tiny_hidden, _homoscedastic(0.2), held_out="C"),
        Analytic("ridge, 0.45", PAPER, _ridge, _homoscedastic(0.45), ignores=("one_minus_momentum",), held_out="D"),
        Analytic("noise by n", PAPER, _saddle, _by_input_noise, ignores=("input_noise",), held_out="D"),
        Analytic(
            "cat x noise",
            (*PAPER, "variant", "optimizer"),
            _variant_by_noise,
            _homoscedastic(0.15),
            conditional=True,
            ignores=("hidden_size",),
            held_out="D",
        ),
        Analytic("sine 3-way", PAPER, _sine_threeway, _homoscedastic(0.12), held_out="D"),
        Analytic("m jump", PAPER, _momentum_threshold, _homoscedastic(0.1), ignores=("learning_rate",), held_out="D"),
        Analytic("tiny m", PAPER, _tiny_momentum, _homoscedastic(0.2), held_out="D"),
    )
}


def _grid(name: str, active: bool = True) -> np.ndarray:
    s = SCALES[name]
    if s.choices is not None:
        return np.arange(len(s.choices), dtype=float)
    n = 64 if active else 2
    return s.low + (np.arange(n) + 0.5) / n * (s.high - s.low)


def true_shares(
    study: Analytic, params: tuple[str, ...], fixed: dict[str, float] | None = None, averaged: tuple[str, ...] = ()
) -> dict[str, float]:
    """Exact shares (to quadrature) of the mean objective over `params`, with `fixed` held and
    `averaged` integrated out first."""
    names = (*params, *averaged)
    grids = [_grid(n, n not in study.ignores) for n in names]
    mesh = np.meshgrid(*grids, indexing="ij")
    point = {n: m for n, m in zip(names, mesh)} | {n: np.full(mesh[0].shape, v) for n, v in (fixed or {}).items()}
    f = study.mean(point)
    f = f.reshape(mesh[0].shape).mean(axis=tuple(range(len(params), len(names)))) if averaged else f
    f = f - f.mean()
    total = float(np.mean(f**2))
    axes = range(len(params))
    marginal = {}
    for size in (1, 2):
        for subset in combinations(axes, size):
            other = tuple(a for a in axes if a not in subset)
            marginal[subset] = float(np.mean(f.mean(axis=other) ** 2))
    label = {a: SCALES[p].label for a, p in enumerate(params)}
    shares = {label[a]: marginal[(a,)] / total for a in axes}
    shares |= {
        label[i] + PAIR_SIGN + label[j]: (marginal[(i, j)] - marginal[(i,)] - marginal[(j,)]) / total
        for i, j in combinations(axes, 2)
    }
    shares["higher order"] = 1.0 - sum(shares.values())
    return shares


def truths(study: Analytic) -> dict[str, dict[str, float]]:
    """Per set of trials odyssey analyses (all trials; the sgd trials of a conditional study): term -> share."""
    if not study.conditional:
        return {ALL_TRIALS: true_shares(study, study.params)}
    everywhere = tuple(p for p in study.params if p != "one_minus_momentum")
    inner = tuple(p for p in study.params if p != "optimizer")
    return {
        ALL_TRIALS: true_shares(study, everywhere, averaged=("one_minus_momentum",)),
        "sgd": true_shares(study, inner, fixed={"optimizer": 0.0}),
    }


def draw(study: Analytic, n: int, rng: np.random.Generator, signal_variance: float) -> pd.DataFrame:
    """n random-search trials: raw parameter values as Optuna stores them, and the noisy objective."""
    u = {}
    for name in study.params:
        s = SCALES[name]
        u[name] = (
            rng.integers(len(s.choices), size=n).astype(float)
            if s.choices is not None
            else rng.uniform(s.low, s.high, n)
        )
    if "hidden_size" in u:
        u["hidden_size"] = np.log10(np.round(10.0 ** u["hidden_size"]))
    mean = study.mean(u)
    y = mean + rng.standard_normal(n) * study.noise(u, signal_variance)
    frame = {"number": np.arange(n), "value": y}
    for name, values in u.items():
        s = SCALES[name]
        raw = [s.choices[int(k)] for k in values] if s.choices is not None else 10.0**values if s.log else values
        frame[PARAM_PREFIX + name] = pd.Series(raw, dtype=object if s.choices is not None else float)
    frame = pd.DataFrame(frame)
    if study.conditional:
        frame.loc[frame[PARAM_PREFIX + "optimizer"] != "sgd", PARAM_PREFIX + "one_minus_momentum"] = np.nan
    return frame


def signal_variance(study: Analytic, rng: np.random.Generator) -> float:
    """The mean objective's variance over the space, by a large sample (it only sizes the noise)."""
    frame = {
        n: (
            rng.integers(len(SCALES[n].choices), size=200_000).astype(float)
            if SCALES[n].choices
            else rng.uniform(SCALES[n].low, SCALES[n].high, 200_000)
        )
        for n in study.params
    }
    return float(np.var(study.mean(frame)))


def score(results: list[tuple[str, Importance | str]], truth: dict[str, dict[str, float]]) -> dict[str, list]:
    """Per term of every analysed set: truth, share, interval, distinguishable."""
    rows: dict[str, list] = {k: [] for k in COLUMNS}
    for space, result in results:
        key = ALL_TRIALS if space == ALL_TRIALS else "sgd"
        if isinstance(result, str) or key not in truth:
            continue
        table = terms_table(result)
        table = table[table["kind"] != "noise"]
        u = result.uncertainty
        order = [
            *[s.label for s in result.scales],
            *[result.scales[i].label + PAIR_SIGN + result.scales[j].label for i, j in result.fanova.pairs],
            "higher order",
        ]
        moved, above, raw = (
            dict(zip(order, u.moved)),
            dict(zip(order, u.above_noise)),
            dict(zip(order, result.fanova.shares)),
        )
        for row in table.itertuples():
            if row.term not in truth[key]:
                continue
            rows["truth"].append(truth[key][row.term])
            rows["share"].append(row.mean)
            rows["low"].append(row.low)
            rows["high"].append(row.high)
            rows["dist"].append(bool(row.distinguishable))
            rows["kind"].append(row.kind)
            rows["std"].append(row.std)
            rows["floor"].append(row.floor)
            rows["moved"].append(moved[row.term])
            rows["above"].append(above[row.term])
            rows["forest"].append(raw[row.term])
    return rows


def optuna_errors(frame: pd.DataFrame, study: Analytic, truth: dict[str, float]) -> tuple[float, float, float]:
    """Max main-share error of Optuna's fANOVA (normalize=False) and PED-ANOVA, and fANOVA's seconds,
    on the all-trials parameters."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    params = [p for p in study.params if frame[PARAM_PREFIX + p].notna().all()]
    dists = {}
    for p in params:
        s = SCALES[p]
        dists[p] = (
            CategoricalDistribution(s.choices)
            if s.choices
            else FloatDistribution(10.0**s.low, 10.0**s.high, log=True)
            if s.log
            else FloatDistribution(s.low, s.high)
        )
    trials = [
        optuna.trial.create_trial(
            params={p: (r[PARAM_PREFIX + p] if SCALES[p].choices else float(r[PARAM_PREFIX + p])) for p in params},
            distributions=dists,
            value=float(r["value"]),
        )
        for _, r in frame.iterrows()
    ]
    study_ = optuna.create_study(direction="minimize")
    study_.add_trials(trials)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fanova = optuna.importance.get_param_importances(
            study_, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0), normalize=False
        )
        seconds = time.perf_counter() - started
        ped = optuna.importance.get_param_importances(
            study_, evaluator=optuna.importance.PedAnovaImportanceEvaluator(), normalize=True
        )
    label = {p: SCALES[p].label for p in params}
    err = max(abs(fanova.get(p, 0.0) - truth[label[p]]) for p in params)
    ped_err = max(abs(ped.get(p, 0.0) - truth[label[p]]) for p in params)
    return err, ped_err, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[60, 200, 1000])
    parser.add_argument("--replicates", type=int, default=3)
    parser.add_argument("--studies", nargs="+", default=list(STUDIES), choices=list(STUDIES))
    parser.add_argument(
        "--sets", nargs="+", default=list("ABCD"), choices=list("ABCD"), help="only these sets' studies"
    )
    parser.add_argument("--seed", type=int, default=0, help="the draws' seed (the analysis uses its own default seed)")
    parser.add_argument("--no-optuna", action="store_true", help="skip Optuna's evaluators")
    parser.add_argument("--no-seeds", action="store_true", help="skip the second seed's analysis")
    parser.add_argument("--csv", type=Path, help="also write every term's row here")
    args = parser.parse_args()
    print(
        f"{'study':<17} {'trials':>6} {'max|err|':>8} {'cover':>6} {'FP':>8} {'FN':>8} {'same':>5} {'s':>6} "
        f"{'optuna':>7} {'opt s':>6} {'PED':>6}"
    )
    totals: dict[int, dict[str, list]] = {}
    every = []
    for name in [s for s in args.studies if (STUDIES[s].held_out or "A") in args.sets]:
        study = STUDIES[name]
        truth = truths(study)
        variance = signal_variance(study, np.random.default_rng(12345))
        for n in args.sizes:
            rows: dict[str, list] = {
                k: []
                for k in ("truth", "share", "low", "high", "dist", "kind", "std", "moved", "floor", "above", "forest")
            }
            seconds, opt, same = [], [], []
            for r in range(args.replicates):
                rng = np.random.default_rng([args.seed, n, r, sum(map(ord, name))])
                frame = draw(study, n, rng, variance)
                scales = [SCALES[p] for p in study.params]
                started = time.perf_counter()
                results = analyse_spaces(frame, scales=scales)
                seconds.append(time.perf_counter() - started)
                scored = score(results, truth)
                for k, v in scored.items():
                    rows[k] += v
                if not args.no_seeds:
                    other = score(analyse_spaces(frame, scales=scales, seed=1), truth)["dist"]
                    same.append((sum(a == b for a, b in zip(scored["dist"], other)), len(other)))
                if not args.no_optuna:
                    opt.append(optuna_errors(frame, study, truth[ALL_TRIALS]))
            t = pd.DataFrame(rows)
            every.append(t.assign(study=name, trials=n, held_out=study.held_out))
            total = totals.setdefault((study.held_out, n), {})
            for k, v in rows.items():
                total.setdefault(k, []).extend(v)
            print(line(name, n, t, float(np.mean(seconds)), opt, same), flush=True)
            total.setdefault("same", []).extend(same)
    for (held_out, n), rows in sorted(totals.items()):
        same = rows.pop("same", [])
        print(line(f"all, {SETS[held_out]}", n, pd.DataFrame(rows), math.nan, [], same))
    if args.csv:
        pd.concat(every).to_csv(args.csv, index=False)


def line(name: str, n: int, t: pd.DataFrame, seconds: float, opt: list, same: list) -> str:
    effects = t[t["kind"] != "rest"]
    err = float((effects["share"] - effects["truth"]).abs().max()) if len(effects) else math.nan
    nonzero = t[t["truth"] >= NONZERO]
    cover = (
        float(((nonzero["low"] <= nonzero["truth"]) & (nonzero["truth"] <= nonzero["high"])).mean())
        if len(nonzero)
        else math.nan
    )
    zero, large = t[t["truth"].abs() < ZERO], t[t["truth"] >= LARGE]
    fp = f"{int(zero['dist'].sum())}/{len(zero)}"
    fn = f"{int((~large['dist']).sum())}/{len(large)}"
    o = (
        f"{max(e for e, _, _ in opt):7.3f} {np.mean([s for *_, s in opt]):6.2f} {max(p for _, p, _ in opt):6.3f}"
        if opt
        else ""
    )
    kept = f"{sum(a for a, _ in same) / max(sum(b for _, b in same), 1):.0%}" if same else "-"
    return f"{name:<17} {n:>6} {err:8.3f} {cover:6.0%} {fp:>8} {fn:>8} {kept:>5} {seconds:6.2f} {o}"


if __name__ == "__main__":
    main()
