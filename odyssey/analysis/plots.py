"""The report's figures, drawn from the tables the analysis computed (never computing anything here).

Figures are built on `matplotlib.figure.Figure` directly, not pyplot: no GUI backend, no global
figure registry to leak, safe in any process.
"""

from __future__ import annotations

import io
import math
import warnings

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import MatplotlibDeprecationWarning
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from .variant_stats import VANILLA

STYLE = "whitegrid"
COLOURS = {
    "reference": "#9e9e9e",
    "worse": "#d62728",
    "better": "#2ca02c",
    "the same": "#7fa7d1",
    "not decided": "#c9d6e3",
    "not tested": "#e0e0e0",
}
KIND_COLOURS = {"main": "#4c72b0", "pair": "#dd8452", "rest": "#9e9e9e"}


def _verdict(row: pd.Series) -> str:
    if row["variant"] == VANILLA:
        return "reference"
    if row["note"]:
        return "not tested"
    # The tests' own verdict (Holm-corrected; "the same" only by equivalence): "not significant" read as "the same".
    return {"equivalent": "the same", "worse": "worse", "better": "better"}.get(row["verdict"], "not decided")


def _count(value: float) -> str:
    if not np.isfinite(value):
        return "?"
    return f"{value / 1e6:.1f}M" if value >= 1e6 else f"{value / 1e3:.1f}k" if value >= 1e3 else f"{value:.0f}"


FAR = 10.0  # a value this many 5%-95% spreads beyond that range is written at the edge, not drawn to scale


def _limits_without_far_values(ax, values: np.ndarray) -> None:
    """Keep the axis on the bulk of the values: one untrained network at a CER of 13 squashed every
    box of a panel whose other trials lay between 0.4 and 1.9 into a line."""
    low, high = np.quantile(values, [0.05, 0.95])
    spread = max(high - low, 1e-12)
    far = (values < low - FAR * spread) | (values > high + FAR * spread)
    if not far.any():
        return
    near = values[~far]
    bottom, top = near.min() - 0.05 * spread, near.max() + 0.05 * spread
    below, above = values[values < bottom], values[values > top]
    ax.set_ylim(bottom, top)
    for outside, align in ((above, "top"), (below, "bottom")):
        if len(outside):
            said = ", ".join(f"{v:.3g}" for v in sorted(outside, key=abs, reverse=True)[:3]) + (
                ", ..." if len(outside) > 3 else ""
            )
            ax.text(
                0.99,
                0.98 if align == "top" else 0.02,
                f"{len(outside)} off the scale: {said}",
                transform=ax.transAxes,
                ha="right",
                va=align,
                fontsize=7,
            )


def _jittered_points(ax, data: pd.DataFrame, order: list[str]) -> None:
    """Every trial as a dot over its variant's box, spread sideways as seaborn's stripplot would, but
    from a generator of its own: stripplot draws from numpy's global one, so a report written twice
    from the same storage had different figures."""
    rng = np.random.default_rng(0)
    position = data["variant"].map({variant: i for i, variant in enumerate(order)}).to_numpy(float)
    ax.scatter(
        position + rng.uniform(-0.2, 0.2, len(position)),
        data["test_metric"],
        s=6,
        color="black",
        alpha=0.5,
        linewidths=0,
        zorder=3,
    )


def variant_boxplots(complete: pd.DataFrame, best: pd.DataFrame, tests: pd.DataFrame, *, metric: str) -> Figure:
    """Test metric per variant, all trials and the best by validation; colour = verdict against vanilla."""
    order = list(tests["variant"])
    colours = {row["variant"]: COLOURS[_verdict(row)] for _, row in tests.iterrows()}
    labels = [f"{row['variant']}\n{_count(row['parameters'])}" for _, row in tests.iterrows()]
    with sns.axes_style(STYLE):
        fig = Figure(figsize=(max(7.0, 1.5 + 1.3 * len(order)), 4.2), layout="constrained")
        axes = fig.subplots(1, 2, sharey=False)
        for ax, data, title in ((axes[0], complete, "all trials"), (axes[1], best, "best 10% by validation")):
            data = data[data["variant"].isin(order)].dropna(subset=["test_metric"])
            if data.empty:
                ax.text(0.5, 0.5, "no trials with a test metric", ha="center", va="center", transform=ax.transAxes)
            else:
                with warnings.catch_warnings():  # seaborn 0.13 passes matplotlib 3.11 a deprecated argument
                    warnings.simplefilter("ignore", MatplotlibDeprecationWarning)
                    sns.boxplot(
                        data=data,
                        x="variant",
                        y="test_metric",
                        order=order,
                        hue="variant",
                        hue_order=order,
                        palette=colours,
                        legend=False,
                        ax=ax,
                        fliersize=0,
                    )
                _jittered_points(ax, data, order)
                _limits_without_far_values(ax, data["test_metric"].to_numpy(float))
            ax.set_xticks(range(len(order)), labels, fontsize=8)
            ax.set(title=title, xlabel="variant (median parameter count)", ylabel=f"test {metric}")
        handles = [
            Patch(color=c, label=k) for k, c in COLOURS.items() if k in {_verdict(r) for _, r in tests.iterrows()}
        ]
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8, frameon=False)
    return fig


def share_bars(terms: pd.DataFrame) -> Figure:
    """Variance shares in the table's order (largest first, "higher order" last). Error bars are the
    intervals (one std over resamples without them), ticks the noise floors; pale bars are not
    distinguishable from zero. The noise row divides another variance (the trials'): it is named
    under the axis, not drawn among the shares."""
    noise = terms.loc[terms["kind"] == "noise", "mean"]
    ordered = terms[terms["kind"] != "noise"].fillna({"mean": 0.0})
    assessed = ordered["low"].notna().all()
    with sns.axes_style(STYLE):
        fig = Figure(figsize=(7.5, 1.2 + 0.32 * len(ordered)), layout="constrained")
        ax = fig.subplots()
        y = np.arange(len(ordered))
        mean = ordered["mean"].to_numpy(float)
        if assessed:
            error = np.vstack([mean - ordered["low"].to_numpy(float), ordered["high"].to_numpy(float) - mean]).clip(0)
            alpha = [1.0 if d else 0.35 for d in ordered["distinguishable"]]
        else:
            error, alpha = ordered["std"].fillna(0).to_numpy(float), [1.0] * len(ordered)
        colours = [(*to_rgb(KIND_COLOURS[k]), a) for k, a in zip(ordered["kind"], alpha)]
        ax.barh(y, mean, xerr=error, color=colours, capsize=2)
        if assessed:
            ax.scatter(ordered["floor"], y, marker="|", s=120, color="black", zorder=3)
        reach = mean + (error[1] if assessed else error)
        for row, (value, end) in enumerate(zip(mean, reach)):
            ax.text(max(end, 0) + 0.01, row, f"{value:.3f}", va="center", fontsize=7)
        ax.set_yticks(y, ordered["term"], fontsize=8)
        ax.invert_yaxis()
        what = (
            "whiskers: 90% interval, ticks: noise floor\npale: not distinguishable from zero"
            if assessed
            else "no intervals computed"
        )
        said = (
            f"\nnoise: {float(noise.iloc[0]):.2f} of the trials' own variance"
            if len(noise) and np.isfinite(noise.iloc[0])
            else ""
        )
        ax.set(xlabel=f"share of the noise-free variance ({what}){said}", xlim=(0.0, 1.05))
    return fig


def _choice_ticks(ax, axis: str, choices: tuple | None) -> None:
    """A categorical parameter is analysed as the index of its choice: label the indices with the choices."""
    if choices:
        getattr(ax, f"set_{axis}ticks")(range(len(choices)), [str(c) for c in choices])


def marginal_curves(
    curves: pd.DataFrame, *, metric: str, times: pd.DataFrame | None = None, choices: dict[str, tuple] | None = None
) -> Figure:
    """Predicted metric (and training time) vs each parameter, ±1 std across trees as a band.

    Training time cannot be negative: its band is clipped at 0 s. `choices`: label -> choices of
    the categorical parameters.
    """
    rows = [(curves, f"{metric} (marginal)")] + (
        [(times, "training seconds (marginal)")] if times is not None and not times.empty else []
    )
    params = list(dict.fromkeys(curves["param"]))
    with sns.axes_style(STYLE):
        fig = Figure(figsize=(3.2 * len(params), 2.8 * len(rows)), layout="constrained")
        # One y-axis per row: a flat curve should look flat next to the one that matters.
        axes = fig.subplots(len(rows), len(params), squeeze=False, sharey="row")
        for r, (table, ylabel) in enumerate(rows):
            for c, param in enumerate(params):
                ax, part = axes[r, c], table[table["param"] == param]
                low = part["mean"] - part["std"]
                if table is times:
                    low = low.clip(lower=0.0)
                ax.plot(part["x"], part["mean"], color="#4c72b0")
                ax.fill_between(part["x"], low, part["mean"] + part["std"], color="#4c72b0", alpha=0.25, linewidth=0)
                ax.set(xlabel=param, ylabel=ylabel if c == 0 else "")
                _choice_ticks(ax, "x", (choices or {}).get(param))
            if table is times:  # after the whole row: its shared axis has seen every curve
                axes[r, 0].set_ylim(0.0, axes[r, 0].get_ylim()[1])
    return fig


def pair_heatmaps(
    surfaces: pd.DataFrame,
    *,
    metric: str,
    order: list[tuple[str, str]] | None = None,
    choices: dict[str, tuple] | None = None,
) -> Figure:
    """Per pair (in `order`, default as the table has them): the pair's marginal (total) and what
    remains after both main effects (interaction only)."""
    pairs = order if order is not None else list(dict.fromkeys(zip(surfaces["param_x"], surfaces["param_y"])))
    # Shared colour ranges: a weak interaction must look weak, not be stretched to full colour.
    limits = {"total_mean": {"vmin": surfaces["total_mean"].min(), "vmax": surfaces["total_mean"].max()}}
    reach = float(surfaces["interaction_mean"].abs().max()) if len(surfaces) else 0.0
    limits["interaction_mean"] = {"vmin": -(reach or 1.0), "vmax": reach or 1.0}
    bars = {"total_mean": f"predicted {metric}", "interaction_mean": f"interaction part of {metric}"}
    with sns.axes_style("white"):
        fig = Figure(figsize=(11, 3.6 * max(len(pairs), 1)), layout="constrained")
        axes = fig.subplots(max(len(pairs), 1), 2, squeeze=False)
        for r, (px, py) in enumerate(pairs):
            part = surfaces[(surfaces["param_x"] == px) & (surfaces["param_y"] == py)]
            xs, ys = np.unique(part["x"]), np.unique(part["y"])
            for ax, column, title, cmap in (
                (axes[r, 0], "total_mean", "pair marginal (total)", "viridis_r"),
                (axes[r, 1], "interaction_mean", "interaction only (main effects removed)", "vlag"),
            ):
                grid = part.pivot(index="y", columns="x", values=column).to_numpy()
                mesh = ax.pcolormesh(xs, ys, grid, cmap=cmap, shading="nearest", **limits[column])
                fig.colorbar(mesh, ax=ax, label=bars[column])
                ax.set_title(title, fontsize=9)
                ax.set(xlabel=px, ylabel=py)
                _choice_ticks(ax, "x", (choices or {}).get(px))
                _choice_ticks(ax, "y", (choices or {}).get(py))
    return fig


def _budget_axis(ax, budgets: np.ndarray, unit: str) -> None:
    """Budgets that span a decade or more on a log axis; each one a tick."""
    log = budgets.max() >= 8 * budgets.min() > 0
    if log:
        ax.set_xscale("log")
        ax.minorticks_off()
    # Labels closer than 4% of the axis overlap (27 and 30 of Hyperband's rungs read "2730"): the later
    # budget, the full one first, keeps its label.
    place = np.log(budgets) if log else budgets
    span, labels, last = max(np.ptp(place), 1e-9), [], math.inf
    for b, x in sorted(zip(budgets, place), reverse=True):
        near = (last - x) / span < 0.04
        labels.append("" if near else str(int(b)))
        last = last if near else x
    ax.set_xticks(sorted(budgets, reverse=True), labels)
    ax.set_xlabel(unit)


def importance_by_budget(table: pd.DataFrame, *, unit: str, settled: int | None) -> Figure:
    """Main-effect shares against the budget, whiskers their 90% intervals (hollow: not distinguishable
    from zero), and below them the two agreements with the full budget, with their intervals. A
    dotted line marks the budget from which the ranking no longer changes. `table`: one task's rows
    of by_budget.budget_table."""
    budgets = np.sort(table["budget"].unique()).astype(float)
    mains = table[table["kind"] == "main"]
    with sns.axes_style(STYLE):
        fig = Figure(figsize=(7.5, 6.4), layout="constrained")
        top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 2))
        terms = list(dict.fromkeys(mains["term"]))
        colours = sns.color_palette("tab10", max(len(terms), 1))
        for k, (term, colour) in enumerate(zip(terms, colours)):
            rows = mains[mains["term"] == term].sort_values("budget")
            # A small sideways shift per term, so that whiskers at one budget do not hide each other.
            x = rows["budget"].to_numpy(float) * 1.025 ** (k - (len(terms) - 1) / 2)
            mean = rows["mean"].to_numpy(float)
            error = np.vstack([mean - rows["low"].to_numpy(float), rows["high"].to_numpy(float) - mean]).clip(0)
            top.errorbar(x, mean, yerr=np.nan_to_num(error), color=colour, capsize=2, label=term, linewidth=1.2)
            solid = rows["distinguishable"].fillna(False).astype(bool).to_numpy()
            top.scatter(x, mean, s=28, color=[colour if d else "white" for d in solid], edgecolors=[colour], zorder=3)
        top.set(ylabel="main-effect share", ylim=(-0.02, 1.02))
        levels = table.drop_duplicates("budget").sort_values("budget")
        for column, label, colour in (
            ("trial_rank", "trials' rank correlation with the full budget", "#4c72b0"),
            ("ranking", "importance ranking's correlation with the full budget", "#dd8452"),
        ):
            value = levels[f"{column}_correlation"].to_numpy(float)
            low, high = levels[f"{column}_low"].to_numpy(float), levels[f"{column}_high"].to_numpy(float)
            error = np.nan_to_num(np.vstack([value - low, high - value]).clip(0))
            bottom.errorbar(levels["budget"], value, yerr=error, marker="o", color=colour, capsize=2, label=label)
        bottom.axhline(1.0, color="black", linewidth=0.6)
        bottom.set(ylabel="Spearman's correlation", ylim=(-1.05, 1.05))
        if settled is not None:
            top.axvline(
                settled, color="black", linestyle=":", linewidth=1.0, label=f"ranking settled ({unit} {settled})"
            )
            bottom.axvline(settled, color="black", linestyle=":", linewidth=1.0)
        if terms:
            top.legend(fontsize=8, frameon=False, loc="best")
        bottom.legend(fontsize=8, frameon=False, loc="lower right")
        _budget_axis(bottom, budgets, unit)
    return fig


def learning_curves(quartiles: pd.DataFrame, *, metric: str, unit: str = "epoch") -> Figure:
    """One panel per variant: the median of its trials' validation metric at each epoch, the band
    between the quartiles; vanilla's median, dashed, in every other panel for comparison.
    `quartiles`: one task's rows of curves.curve_quartiles."""
    variants = list(dict.fromkeys(quartiles["variant"]))
    columns = min(3, max(len(variants), 1))
    rows = -(-max(len(variants), 1) // columns)
    reference = quartiles[quartiles["variant"] == VANILLA]
    with sns.axes_style(STYLE):
        fig = Figure(figsize=(3.4 * columns, 2.6 * rows + 0.4), layout="constrained")
        axes = fig.subplots(rows, columns, squeeze=False, sharex=True, sharey=True)
        for ax, variant in zip(axes.flat, variants):
            part = quartiles[quartiles["variant"] == variant]
            if variant != VANILLA and len(reference):
                ax.plot(reference["step"], reference["median"], color="#9e9e9e", linestyle="--", linewidth=1)
            ax.fill_between(part["step"], part["q25"], part["q75"], color="#4c72b0", alpha=0.25, linewidth=0)
            ax.plot(part["step"], part["median"], color="#4c72b0")
            ax.set_title(f"{variant or 'all trials'} ({int(part['trials'].max())} trials)", fontsize=9)
        for ax in axes.flat[len(variants) :]:
            ax.set_visible(False)
        for ax in axes[-1]:
            ax.set_xlabel(unit)
        for ax in axes[:, 0]:
            ax.set_ylabel(f"validation {metric}")
    return fig


def png_bytes(fig: Figure) -> bytes:
    """The figure as a PNG file's bytes (the report writes them, and inlines them in its HTML)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=100, format="png")
    return buffer.getvalue()
