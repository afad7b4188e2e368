"""The numbers the write-up (README.md here) adds to the report, from the committed storage, as the tables it prints:

- step: does momentum matter on its own, or only through the step it makes? With Nesterov momentum
  m and learning rate lr, SGD's steady step is lr / (1 - m); odyssey, like torch, does not rescale
  lr by (1 - m). If momentum acts only through that step, a forest on log10(lr / (1 - m)) alone
  explains as much of the validation metric as one on log10(lr) and log10(1 - m) together, and
  both more than log10(lr) alone: the out-of-bag R^2 of each, per task (on handwriting, and in
  hidden, of the metric capped at the untrained one: see capped).
- hidden: does hidden size matter where training works? Over all trials its share is tiny next to
  the learning rate's, whose range spans untrained and trained networks. Among the trials whose
  effective step lr / (1 - m) is at least STEP (a condition on the inputs, not the outcome): the
  rank correlation of hidden size with the validation metric, and the median metric per third of
  the log10 hidden-size range.
- cut: was training cut short? Per task and variant, how many of the best 10% (the trials the
  variant tests compare) had their best validation epoch at the last epoch allowed.
- draws: how lucky was each cell's search? Random search draws each cell's configurations on its
  own; per task and variant, the trials whose effective step lr / (1 - m) is at least LARGE_STEP.
- learnt: did a trial learn anything, and did its draw let it? Per variant, the trials whose
  validation CER got below LEARNT (the header gives the best CER of a trial whose step could not
  train), those whose effective step was at least TRAINS, and both.
- capped: how much of a task's variance do untrained trials carry? An untrained CTC network's
  best-path output depends on its initial weights alone, and its CER can be far above 1 (a string
  of wrong characters). Capped at 1.0, every untrained trial counts the same; fANOVA shares of the
  capped metric beside the report's, and the share of the variance the few farthest values carry
  (as the report names them: importance.largest_shares).

With --write it also fills the document's blocks quoted from the run and its report (status, cost,
the claims, each task's variant table with the paper's verdict and whether odyssey's agrees, and
the count of agreements: table count) and from the committed retraining of handwriting's
variants on each cell's best configuration (longer.py's outputs in RETRAINED: each, each-40), and
puts every table in its place in the write-up, between `<!-- table:NAME -->` (or `<!-- NAME -->`) and `<!-- end -->`,
and the README's paragraph on the replication between `<!-- replication -->` and `<!-- end -->`;
write the report first.

    python replication/supplement.py [--storage sqlite:///replication/replication.db] [--write]
"""

from __future__ import annotations

import argparse
import math
import re
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from odyssey.analysis import (
    VANILLA,
    analyse,
    best_trials,
    choose_scales,
    fit_forest,
    largest_shares,
    load_odyssey_trials,
    open_existing,
    terms_table,
    variant_order,
)

STORAGE = "sqlite:///replication/replication.db"
HERE = Path(__file__).resolve().parent
DOCUMENT = HERE / "README.md"  # the write-up
README = HERE.parent / "README.md"  # the project's; its "Does it find what the paper found?" paragraph
REPORT = HERE / "report"  # the report written from STORAGE
TASKS = ["chorales", "speech", "handwriting"]  # the document's order: JSB, TIMIT, IAM Online
MIN_TRIALS = 50
STEP = 1e-2
LARGE_STEP = 1e-1
INPUTS = {
    "log10(lr)": lambda f: [np.log10(f["params_learning_rate"])],
    "log10(lr), log10(1 - m)": lambda f: [
        np.log10(f["params_learning_rate"]),
        np.log10(f["params_one_minus_momentum"]),
    ],
    "log10(lr / (1 - m))": lambda f: [np.log10(f["params_learning_rate"] / f["params_one_minus_momentum"])],
}
# longer.py --from each outputs, committed in retrained/: 12 epochs as the study, and 40 (patience 15)
RETRAINED = {"each": "retrained/handwriting-from-each.txt", "each-40": "retrained/handwriting-from-each-40.txt"}
UNTRAINED = {"handwriting": 1.0}  # the validation metric of an output that has learnt nothing
# A handwriting trial has learnt when its CER is below 0.9: no trial whose step lr / (1 - m) was
# below STILL (too small to move the weights in 12 epochs) got there, as the table's header shows.
LEARNT, STILL, TRAINS = {"handwriting": 0.9}, 1e-4, 0.03
# The paper's verdict per variant against V (paper-notes.md): NFG and NOAF worse everywhere; NIG, NOG
# and NIAF worse on TIMIT and IAM Online but not on JSB; CIFG and NP no different; FGR worse on JSB (?).
_GATES = {"NIG": "worse", "NOG": "worse", "NIAF": "worse"}
PAPER = {
    "chorales": {
        "NIG": "not different",
        "NFG": "worse",
        "NOG": "not different",
        "NIAF": "not different",
        "NOAF": "worse",
        "NP": "not different",
        "CIFG": "not different",
        "FGR": "worse (?)",
    },
    "speech": {
        **_GATES,
        "NFG": "worse",
        "NOAF": "worse",
        "NP": "not different",
        "CIFG": "not different",
        "FGR": "not different",
    },
    "handwriting": {
        **_GATES,
        "NFG": "worse",
        "NOAF": "worse",
        "NP": "not different",
        "CIFG": "not different",
        "FGR": "not different",
    },
}


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)


def _metric(cell: pd.DataFrame, task: str) -> np.ndarray:
    """The validation metric, capped at the untrained one where a task has one (see capped)."""
    return np.minimum(cell["value"].to_numpy(float), UNTRAINED.get(task, np.inf))


def _step(trials: pd.DataFrame) -> str:
    rows = []
    for task, cell in trials.groupby("task", sort=True):
        if len(cell) < MIN_TRIALS:
            rows.append([task, str(len(cell)), *["too few trials"] * len(INPUTS)])
            continue
        y = _metric(cell, task)
        forests = [
            fit_forest(np.column_stack(inputs(cell)), y, trees=128, min_samples_leaf=5, seed=0, oob=True)
            for inputs in INPUTS.values()
        ]
        rows.append([task, str(len(cell)), *(f"{forest.oob_score_:.3f}" for forest in forests)])
    return _table(["task", "trials", *(f"R^2 on {name}" for name in INPUTS)], rows)


def _hidden(trials: pd.DataFrame) -> str:
    edges = np.logspace(np.log10(20), np.log10(200), 4)
    rows = []
    for task, cell in trials.groupby("task", sort=True):
        cell = cell[cell["params_learning_rate"] / cell["params_one_minus_momentum"] >= STEP]
        if len(cell) < MIN_TRIALS:
            rows.append([task, str(len(cell)), "too few trials", "", ""])
            continue
        cell = cell.assign(value=_metric(cell, task))
        rho, p = stats.spearmanr(cell["params_hidden_size"], cell["value"])
        medians = cell.groupby(pd.cut(cell["params_hidden_size"], edges, include_lowest=True), observed=False)[
            "value"
        ].median()
        rows.append([task, str(len(cell)), f"{rho:+.2f}", f"{p:.2g}", " / ".join(f"{m:.4g}" for m in medians)])
    header = [
        "task",
        f"trials with lr / (1 - m) >= {STEP:g}",
        "Spearman (hidden, metric)",
        "p",
        "median metric at hidden 20-43 / 43-93 / 93-200",
    ]
    return _table(header, rows)


def _cut(trials: pd.DataFrame, max_epochs: int) -> str:
    top = best_trials(trials)
    variants = variant_order(top["variant"].unique())
    rows = []
    for task, cell in top.groupby("task", sort=True):
        counts = {v: f"{int((g['best_epoch'] == max_epochs).sum())}/{len(g)}" for v, g in cell.groupby("variant")}
        rows.append([task, *(counts.get(v, "-") for v in variants)])
    return _table(["best 10% still improving at the last epoch", *variants], rows)


def _draws(trials: pd.DataFrame) -> str:
    variants = variant_order(trials["variant"].unique())
    large = trials["params_learning_rate"] / trials["params_one_minus_momentum"] >= LARGE_STEP
    counts = trials[large].groupby(["task", "variant"]).size()
    totals = trials.groupby(["task", "variant"]).size()
    rows = [
        [task, *(f"{counts.get((task, v), 0)}/{totals.get((task, v), 0)}" for v in variants)]
        for task in sorted(trials["task"].unique())
    ]
    return _table([f"complete trials with lr / (1 - m) >= {LARGE_STEP:g}", *variants], rows)


def _learnt(trials: pd.DataFrame) -> str:
    variants = variant_order(trials["variant"].unique())
    rows = []
    for task, bar in LEARNT.items():
        cell = trials[trials["task"] == task]
        totals = cell.groupby("variant").size()
        step = cell["params_learning_rate"] / cell["params_one_minus_momentum"]
        still = cell[step < STILL]["value"].min()
        groups = {
            f"{task}: validation metric below {bar:g}": cell["value"] < bar,
            f"lr / (1 - m) >= {TRAINS:g}": step >= TRAINS,
            "both": (cell["value"] < bar) & (step >= TRAINS),
        }
        for label, chosen in groups.items():
            counts = cell[chosen].groupby("variant").size()
            rows.append([label, *(f"{counts.get(v, 0)}/{totals.get(v, 0)}" for v in variants)])
        header = f"complete trials (the best CER with lr / (1 - m) < {STILL:g}: {still:.3g})"
    return _table([header, *variants], rows)


def _capped(loaded, trials: pd.DataFrame) -> str:
    rows = []
    for task, start in UNTRAINED.items():
        cell = trials[trials["task"] == task]
        if len(cell) < MIN_TRIALS:
            rows.append([task, str(len(cell)), "too few trials", "", "", ""])
            continue
        y = cell["value"].to_numpy(float)
        far, largest = largest_shares(y)
        scales = choose_scales(loaded)  # as the report's analysis does
        shares = {}
        for target, frame in (("value", cell), ("capped", cell.assign(capped=np.minimum(y, start)))):
            terms = terms_table(analyse(frame, scales=scales, target=target, seed=0))
            shares[target] = {row.term: row for row in terms.itertuples()}
        lr, pair = "log10(learning_rate)", "log10(learning_rate) × log10(one_minus_momentum)"
        rows.append(
            [
                task,
                str(len(cell)),
                f"{largest:.2f} (CER {', '.join(f'{v:.3g}' for v in y[far])})",
                *(_share(pd.Series(shares[t][term]._asdict())) for term in (lr, pair) for t in ("value", "capped")),
            ]
        )
    header = [
        "task",
        "trials",
        "variance share of the farthest values",
        "learning rate",
        "learning rate, metric capped at the untrained one",
        "learning rate × 1 - momentum",
        "the same, capped",
    ]
    return _table(header, rows)


def _p(p: float) -> str:
    return "n/a" if not math.isfinite(p) else "< 0.001" if p < 0.001 else f"{p:.2g}"


VERDICT_WORDS = {"worse": "**worse**", "better": "**better**", "equivalent": "the same", "not decided": "not decided"}


def agreement(verdict: str, paper: str) -> str:
    """odyssey's verdict against the paper's, by one rule for every row: a difference agrees with the
    paper's difference in its direction; "no different" agrees only with "the same" (an equivalence
    test passed), never with "not decided", which is no verdict at all."""
    if verdict not in VERDICT_WORDS:
        return "untested"
    if verdict == "not decided":
        return "not decided"
    expected = "equivalent" if paper.startswith("not different") else paper.removesuffix(" (?)")
    return "agrees" if verdict == expected else "disagrees"


def _interval(value: float, low: float, high: float) -> str:
    return f"{value:+.3g} [{low:+.3g}, {high:+.3g}]" if math.isfinite(value) else "n/a"


def _variants(tests: pd.DataFrame, task: str) -> str:
    """One task's rows of the report's variant tests, with the paper's verdict and whether they agree."""
    rows = []
    for row in tests[tests["task"] == task].itertuples():
        if row.variant == VANILLA:
            rows.append(
                [
                    task,
                    VANILLA,
                    f"{row.complete}",
                    f"{row.mean:.4g}",
                    "—",
                    "—",
                    "—",
                    "reference",
                    "reference",
                    "—",
                    "—",
                    "—",
                ]
            )
            continue
        tested = math.isfinite(row.p)
        verdict = row.verdict if isinstance(row.verdict, str) and tested else ""
        rows.append(
            [
                task,
                row.variant,
                f"{row.complete}",
                f"{row.mean:.4g}" if math.isfinite(row.mean) else "n/a",
                _interval(row.difference, row.low, row.high),
                _p(row.p),
                _p(row.p_adjusted),
                VERDICT_WORDS.get(verdict, "untested"),
                PAPER[task][row.variant],
                agreement(verdict, PAPER[task][row.variant]),
                f"{row.detectable_sd:.2f}" if tested else "n/a",
                f"{row.trials_needed:,.0f}" if math.isfinite(row.trials_needed) else "n/a",
            ]
        )
    header = [
        "task", "variant", "complete", "test mean, best 10%", "vs V [95%]", "p", "p, Holm", "odyssey", "paper",
        "agrees?", "detects (SDs)", "trials to decide",
    ]  # fmt: skip
    return _table(header, rows)


IMPORTANCE_CLAIMS = (
    "the learning rate",
    "hidden size",
    "momentum",
    "input noise",
    "interactions",
)  # claims.py's, by how they start


def _counts(tests: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Per task, how many of the paper's variant verdicts odyssey's agree with, disagree with, leave open."""
    counted = {}
    for task in TASKS:
        rows = tests[(tests["task"] == task) & (tests["variant"] != VANILLA)]
        found = [
            agreement(r.verdict if isinstance(r.verdict, str) and math.isfinite(r.p) else "", PAPER[task][r.variant])
            for r in rows.itertuples()
        ]
        counted[task] = {word: found.count(word) for word in ("agrees", "disagrees", "not decided", "untested")}
    return counted


def _count_table(tests: pd.DataFrame, claims: pd.DataFrame) -> str:
    counted = _counts(tests)
    rows = [
        [task, *(str(counted[task][word]) for word in ("agrees", "disagrees", "not decided", "untested"))]
        for task in TASKS
    ]
    importance = claims[claims["claim"].str.startswith(IMPORTANCE_CLAIMS)]
    rows.append(
        [
            "importance findings (all tasks)",
            *(
                str(int((importance["verdict"] == word).sum()))
                for word in ("agrees", "disagrees", "not decided", "cannot be checked")
            ),
        ]
    )
    return _table(
        ["the paper's verdicts", "odyssey agrees", "disagrees", "not decided", "untested / cannot be checked"], rows
    )


def _listing(tests: pd.DataFrame, task: str, verdicts: tuple[str, ...]) -> list[str]:
    rows = tests[(tests["task"] == task) & (tests["variant"] != VANILLA)]
    return [r.variant for r in rows.itertuples() if isinstance(r.verdict, str) and r.verdict in verdicts]


def summary_paragraph(tests: pd.DataFrame, claims: pd.DataFrame, frame: pd.DataFrame) -> str:
    """The README's "Does it find what the paper found?" paragraph: the counts of the regenerated report."""
    counted = _counts(tests)
    total = {word: sum(c[word] for c in counted.values()) for word in ("agrees", "disagrees", "not decided")}
    pairs = sum(total.values())
    done = frame[frame["state"] == "COMPLETE"]
    differences = []
    for task in TASKS:
        worse, better, same = (_listing(tests, task, (v,)) for v in ("worse", "better", "equivalent"))
        parts = [
            f"{', '.join(worse)} worse" if worse else "",
            f"{', '.join(better)} better" if better else "",
            f"{', '.join(same)} the same" if same else "",
        ]
        said = "; ".join(p for p in parts if p) or "no variant told apart from V"
        differences.append(f"{task}: {said}")
    importance = claims[claims["claim"].str.startswith(IMPORTANCE_CLAIMS)]
    verdicts = {
        claim: ", ".join(f"{t} {v}" for t, v in zip(group["task"], group["verdict"]))
        for claim, group in importance.groupby("claim", sort=False)
    }
    detects = tests.loc[tests["variant"] != VANILLA, "detectable_sd"].median()
    return (
        "[`replication/`](replication/README.md) compares the paper's findings with odyssey's, claim by claim and "
        "task by task, on the paper's three kinds of task (real Bach chorales, synthetic speech and handwriting): "
        "9 variants x 3 tasks x 50 random-search trials "
        f"(`replication/study.toml`; {len(frame):,} trials, {done['seconds'].sum() / 3600:.1f} CPU-hours), "
        "with corrected p-values, differences with 95% intervals, equivalence tests, importance shares with intervals, "
        f"box plots and marginals. Of the paper's {pairs} verdicts on a variant against vanilla, odyssey's tests "
        f'(Holm-corrected over all {pairs}; "no different" only where two one-sided tests show it) agree with '
        f"{total['agrees']}, disagree with {total['disagrees']} and leave {total['not decided']} not decided: "
        "5 best trials against 5 detect only differences of "
        f"about {detects:.1f} pooled SDs after the correction. Told apart from V: "
        + "; ".join(differences)
        + ". The paper's "
        "importance findings, task by task: "
        + "; ".join(f"{claim}: {said}" for claim, said in verdicts.items())
        + ". The "
        "retraining the document adds (each cell's best configurations, longer training) is reported beside these "
        "counts, not in them: on handwriting every variant was retrained on the same nine configurations, but on "
        "chorales and speech only the variants that disagreed were, so counting those would move verdicts one way only."
    )


IMPORTANCE = {  # the report's main terms, and what the paper found for each (paper-notes.md)
    "log10(learning_rate)": ("learning rate", "more than 2/3 on every task"),
    "log10(hidden_size)": ("hidden size", "second largest"),
    "log10(one_minus_momentum)": ("1 - momentum", "under 1% (?)"),
    "input_noise": ("input noise", "small"),
}


def _share(row: pd.Series) -> str:
    mark = "**" if row["distinguishable"] else ""
    return f"{mark}{row['mean']:.3f}{mark} [{row['low']:.3f}, {row['high']:.3f}] / {row['floor']:.3f}"


def _importance(terms: pd.DataFrame) -> str:
    """Per task, each share of the validation metric's variance over all trials: mean [90% interval] / noise
    floor, in bold where the interval clears the floor (the report's "distinguishable")."""
    terms = terms[terms["space"] == "all trials"]
    by_task = {task: terms[terms["task"] == task].set_index("term") for task in TASKS}
    label = {term: name for term, (name, _) in IMPORTANCE.items()}

    def cells(pick) -> list[str]:
        return [pick(by_task[task]) if len(by_task[task]) else "—" for task in TASKS]

    rows = [
        [name, *cells(lambda t, term=term: _share(t.loc[term])), paper] for term, (name, paper) in IMPORTANCE.items()
    ]

    def largest_pair(t: pd.DataFrame) -> str:
        term = t[t["kind"] == "pair"]["mean"].idxmax()
        return f"{' × '.join(label[part] for part in term.split(' × '))}: {_share(t.loc[term])}"

    rows.append(["largest pair", *cells(largest_pair), "learning rate × hidden size, small"])
    rows.append(["higher order", *cells(lambda t: _share(t.loc["higher order"])), "small"])
    rows.append(["trials", *cells(lambda t: f"{t['trials'].iloc[0]}"), "200 x 9 per task"])
    return _table(["share: mean [90% interval] / noise floor", *TASKS, "paper"], rows)


def _claims(claims: pd.DataFrame) -> str:
    rows = [
        [claim, *(dict(zip(group["task"], group["verdict"])).get(t, "—") for t in TASKS)]
        for claim, group in claims.groupby("claim", sort=False)
    ]
    return _table(["claim (paper)", *TASKS], rows)


def _status(frame: pd.DataFrame, planned: int) -> str:
    finished = frame[frame["state"].isin(["COMPLETE", "FAIL"])]
    failed = finished[finished["state"] == "FAIL"]
    diverged = int(failed["failure"].str.startswith("training loss became").sum())
    why = f"{len(failed)} of them failed" + (
        ": they diverged" if diverged == len(failed) else f", {diverged} by diverging"
    )
    per_task = ", ".join(
        f"{task} complete" if done == planned // len(TASKS) else f"{task} {done} of {planned // len(TASKS)}"
        for task in TASKS
        for done in [int((finished["task"] == task).sum())]
    )
    if len(finished) == planned:
        return f"**Status: complete.** All {planned:,} trials finished ({why}): {per_task}."
    return (
        f"**Status: in progress.** {len(finished):,} of {planned:,} trials finished ({why}): {per_task}. The run "
        "continues from the committed storage (command at the end); until it ends, the rows and claims of an "
        "unfinished task are what its finished trials say, and will change."
    )


def _cost(frame: pd.DataFrame, planned: int) -> str:
    done = frame[frame["state"] == "COMPLETE"]
    hours = done["seconds"].sum() / 3600
    spent = (
        f"{hours:.2f} CPU-hours of training in the {len(done):,} complete trials "
        "(their `seconds`; storage writes, start-up and the failed trials not included)"
    )
    left = planned - int(frame["state"].isin(["COMPLETE", "FAIL"]).sum())
    if not left:
        tasks = done.groupby("task")["seconds"].sum() / 3600
        return f"Measured: {spent}: " + ", ".join(f"{task} {tasks[task]:.2f}" for task in TASKS if task in tasks) + "."
    per_cell = done.groupby(["task", "variant"])["seconds"].mean()
    per_task = done.groupby("task")["seconds"].mean()
    open_trials = frame[~frame["state"].isin(["COMPLETE", "FAIL"])]
    more = sum(per_cell.get((t, v), per_task[t]) for t, v in zip(open_trials["task"], open_trials["variant"])) / 3600
    return (
        f"Measured so far: {spent}. At the pace of each cell's complete trials the other {left:,} take about "
        f"{more:.1f} more, {hours + more:.1f} in all (a cell not started yet is priced at its task's mean trial; "
        "FGR costs about twice that in `odyssey estimate`, so this is on the low side)."
    )


def _runs(path: Path) -> pd.DataFrame:
    """The per-run rows of longer.py's outputs in `path` (one or more runs, concatenated): a run that
    diverged has no test. The same run printed twice must agree: it is retrained from the same seed."""
    tests: dict[tuple[str, str], float] = {}
    for line in path.read_text().splitlines():
        fields = [field.strip() for field in line.split("|")]
        if len(fields) != 8 or fields[0] == "variant":
            continue
        variant, source, _hidden, _stored, retrained, *_ = fields
        test = math.nan if retrained.startswith("diverged") else float(retrained)
        seen = tests.setdefault((variant, source), test)
        if seen != test and not (math.isnan(seen) and math.isnan(test)):
            raise SystemExit(f"{path}: {variant} on {source} retrained to {seen} and to {test}")
    return pd.DataFrame([(*run, test) for run, test in tests.items()], columns=["variant", "source", "test"])


def _same_configurations(path: Path) -> str:
    """Every variant retrained on the same configurations (longer.py --from each): its mean test
    metric where it trained, V's on those configurations, and the paired t-test against V there."""
    frame = _runs(path)
    ran = frame.groupby("variant").size()
    runs = frame.pivot(index="source", columns="variant", values="test")
    rows = []
    for variant in variant_order(runs.columns):
        trained = f"{runs[variant].notna().sum()} of {ran[variant]}"
        if variant == VANILLA:
            rows.append([VANILLA, trained, f"{runs[VANILLA].mean():.4g}", "—", "—", "—", "—"])
            continue
        both = runs[[variant, VANILLA]].dropna()
        mine, vanilla = both[variant].to_numpy(), both[VANILLA].to_numpy()
        if not len(both):
            rows.append([variant, trained, "n/a", "n/a", "n/a", "n/a", "0 of 0"])
            continue
        p = stats.ttest_rel(mine, vanilla).pvalue if len(both) > 1 else math.nan
        rows.append(
            [
                variant,
                trained,
                f"{mine.mean():.4g}",
                f"{vanilla.mean():.4g}",
                f"{(mine - vanilla).mean():+.3g}",
                _p(p),
                f"{(mine < vanilla).sum()} of {len(both)}",
            ]
        )
    header = ["variant", "trained", "mean test", "V's, on the same", "vs V", "p (paired)", "lower than V on"]
    return _table(header, rows)


def tables(storage: str = STORAGE) -> dict[str, str]:
    loaded = load_odyssey_trials(open_existing(storage), "replication")
    trials = loaded.complete()
    spec = next(iter(loaded.study_attrs.values()))["study_spec"]
    return {
        "step": _step(trials),
        "hidden": _hidden(trials),
        "cut": _cut(trials, spec["training"]["max_epochs"]),
        "draws": _draws(trials),
        "learnt": _learnt(trials),
        "capped": _capped(loaded, trials),
    }


def blocks(storage: str = STORAGE, report: Path = REPORT) -> dict[str, str]:
    """Every block of the document quoted from the run: its report's tables, its state, and `tables`."""
    loaded = load_odyssey_trials(open_existing(storage), "replication")
    spec = next(iter(loaded.study_attrs.values()))["study_spec"]
    planned = spec["trials"] * len(spec["tasks"]) * len(spec["variants"])
    tests = pd.read_csv(report / "variant_stats.csv")
    claims = pd.read_csv(report / "claims.csv")
    quoted = {
        "status": _status(loaded.frame, planned),
        "cost": _cost(loaded.frame, planned),
        "table:claims": _claims(claims),
    }
    quoted["table:count"] = _count_table(tests, claims)
    quoted["table:importance"] = _importance(pd.read_csv(report / "importance.csv"))
    quoted |= {f"table:{task}": _variants(tests, task) for task in TASKS}
    quoted |= {f"table:{name}": _same_configurations(HERE / file) for name, file in RETRAINED.items()}
    return quoted | {f"table:{name}": table for name, table in tables(storage).items()}


def readme_blocks(storage: str = STORAGE, report: Path = REPORT) -> dict[str, str]:
    """The README's paragraph on the replication, from the same storage and report."""
    loaded = load_odyssey_trials(open_existing(storage), "replication")
    paragraph = summary_paragraph(
        pd.read_csv(report / "variant_stats.csv"), pd.read_csv(report / "claims.csv"), loaded.frame
    )
    return {
        "replication": textwrap.fill(paragraph, width=100, break_long_words=False, break_on_hyphens=False)
    }  # the README's width


def write(document: Path, quoted: dict[str, str]) -> None:
    """Put each block between its markers in `document`; a block the document lacks is an error."""
    text = document.read_text()
    for name, block in quoted.items():
        text, found = re.subn(
            rf"(<!-- {re.escape(name)} -->\n).*?(<!-- end -->)",
            lambda m, block=block: m.group(1) + block + "\n" + m.group(2),
            text,
            flags=re.S,
        )
        if found != 1:
            raise SystemExit(f"{document}: expected one '<!-- {name} -->' ... '<!-- end -->' block, found {found}")
    document.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", default=STORAGE)
    parser.add_argument(
        "--write", action="store_true", help=f"fill the quoted blocks of {DOCUMENT.name} (after writing the report)"
    )
    args = parser.parse_args()
    if args.write:
        write(DOCUMENT, blocks(args.storage))
        write(README, readme_blocks(args.storage))
        print(f"wrote {DOCUMENT} and {README}")
        return
    for name, table in tables(args.storage).items():
        print(f"{name}:\n{table}\n")


if __name__ == "__main__":
    main()
