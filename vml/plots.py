"""Figures for the book, in one style. Every function takes numbers (from `vml.stats` or raw arrays),
draws on a fresh `matplotlib.figure.Figure` (or on a given Axes) and returns the Figure.

Nothing here reads files, calls `plt.show` or touches pyplot's global figure list, so the functions
are safe under the Agg backend and a returned Figure is displayed exactly once in a notebook.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Mapping, Sequence, TypeVar

import matplotlib as mpl
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from . import stats

__all__ = [
    "PALETTE", "color_for", "plot_reactivity", "plot_reactivity_scatter", "plot_ccf",
    "plot_accuracy_kde", "plot_pareto", "plot_controller", "plot_learning_curves",
    "plot_seed_groups", "plot_power", "plot_noise_floor", "plot_forest",
]

# Base and VML keep the same colours in every figure; other labels take the colour-blind palette.
PALETTE: dict[str, str] = {"base": "#4C72B0", "vml": "#DD8452"}
_CYCLE = sns.color_palette("colorblind").as_hex()
ACCENT = "#C44E52"  # peaks, fronts and markers that the eye should find first

_RC: dict[str, Any] = {
    **sns.axes_style("whitegrid"),
    **sns.plotting_context("paper", font_scale=1.1),
    "figure.dpi": 110,
    "axes.titleweight": "bold",
    "legend.frameon": False,
}

F = TypeVar("F", bound=Callable[..., Figure])


def _styled(fn: F) -> F:
    """Draw inside the house style without changing the caller's rcParams."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Figure:
        with mpl.rc_context(_RC):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def color_for(label: str, i: int = 0) -> str:
    """The colour of a series: fixed for Base/VML (any case), else the i-th colour-blind colour."""
    return PALETTE.get(str(label).lower(), _CYCLE[i % len(_CYCLE)])


def _fig_axes(n: int = 1, width: float = 4.2, height: float = 3.2,
              max_cols: int | None = None) -> tuple[Figure, list[Axes]]:
    # n panels of width x height each, wrapped after max_cols so that a page-wide figure stays legible
    ncols = n if max_cols is None else min(n, max_cols)
    nrows = -(-n // ncols)
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = list(fig.subplots(nrows, ncols, squeeze=False).ravel())
    for ax in axes[n:]:
        ax.remove()
    return fig, axes[:n]


def _target(ax: Axes | None, **kw: Any) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax  # type: ignore[return-value]
    fig, axes = _fig_axes(1, **kw)
    return fig, axes[0]


def _rows(x: Any, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2 or a.shape[1] < 1:
        raise ValueError(f"{name} must be (steps,) or (seeds, steps); got shape {np.shape(x)}")
    return a


# ----------------------------------------------------------------------------- Fig. 1

@_styled
def plot_reactivity_scatter(result: stats.Reactivity, ax: Axes | None = None) -> Figure:
    """Fig. 1 left: one dot per epoch at (z(dlambda_k), z(dloss_{k+lead})) with the OLS line (slope = r)."""
    fig, ax = _target(ax, width=4.2, height=3.6)
    ax.scatter(result.x, result.y, s=18, color=PALETTE["base"], alpha=0.8, lw=0, label="epoch k")
    xs = np.linspace(result.x.min(), result.x.max(), 2)
    ax.plot(xs, result.intercept + result.slope * xs, color=ACCENT, lw=1.8,
            label=f"least squares: slope = {result.slope:.3f}")
    ax.set_xlabel(r"$z(\Delta\lambda_k)$")
    ax.set_ylabel(rf"$z(\Delta\ell^{{test}}_{{k+{result.lead}}})$")
    ax.set_title("Standardized scatter")
    ax.text(0.03, 0.97, f"r = {result.slope:.3f}\np = {result.p:.2g}\nn = {result.n}",
            transform=ax.transAxes, va="top", ha="left", fontsize="small")
    ax.legend(loc="lower right", fontsize="small")
    return fig


@_styled
def plot_ccf(lags: Any, r: Any, n: int | None = None, ax: Axes | None = None) -> Figure:
    """Fig. 1 right: r_tau as bars over the lags, the largest |r_tau| marked; dashed +-1.96/sqrt(n) if n given."""
    lags, r = np.asarray(lags), np.asarray(r, dtype=float)
    if lags.shape != r.shape or lags.ndim != 1:
        raise ValueError(f"lags {lags.shape} and r {r.shape} must be 1-D of the same length")
    if np.all(np.isnan(r)):
        raise ValueError("r is all NaN; there is no correlation to plot")
    fig, ax = _target(ax, width=4.6, height=3.6)
    peak = int(np.nanargmax(np.abs(r)))
    colors = [ACCENT if i == peak else PALETTE["base"] for i in range(r.size)]
    ax.bar(lags, np.nan_to_num(r), width=0.7, color=colors)
    ax.axhline(0, color="black", lw=0.8)
    if n is not None:  # approximate 95% band for white noise: a bar inside it is not remarkable
        for sign in (-1, 1):
            ax.axhline(sign * 1.96 / np.sqrt(n), color="grey", ls="--", lw=0.9)
    ax.plot([lags[peak]], [r[peak] + 0.06 * np.sign(r[peak])], marker="v" if r[peak] > 0 else "^",
            color=ACCENT, ms=7, ls="none")
    ax.annotate(rf"$\tau^*$ = {lags[peak]:+d}, r = {r[peak]:.2f}", xy=(lags[peak], r[peak]),
                xytext=(0.03, 0.95), textcoords="axes fraction", va="top", fontsize="small")
    ax.set_xlabel(r"lag $\tau$ (epochs; $\tau>0$: $\Delta\lambda$ leads)")
    ax.set_ylabel(r"$r_\tau$")
    ax.set_title("Cross-correlation")
    return fig


@_styled
def plot_reactivity(result: stats.Reactivity) -> Figure:
    """Fig. 1: the standardized scatter (left) and the CCF with its peak (right), side by side."""
    fig, (left, right) = _fig_axes(2, width=4.4, height=3.6)
    plot_reactivity_scatter(result, ax=left)
    n_diff = result.n + result.lead  # length of the differenced series (pairs + dropped lead)
    plot_ccf(result.lags, result.r, n=n_diff, ax=right)
    return fig


# ----------------------------------------------------------------------------- Fig. 2

@_styled
def plot_accuracy_kde(groups: Mapping[str, Any], sizes: Sequence[int] = (5, 20),
                      xlabel: str = "Final test accuracy") -> Figure:
    """Fig. 2: KDE (area 1 per curve) of final accuracy per regime, one panel per group size.

    `groups` maps a regime label (e.g. "Base", "VML") to its runs' accuracies in seed order; the
    panel for size k uses the first k runs (the paper's groups of 5 and 20 seeds). Runs are shown
    as a rug under the curves.
    """
    if not groups:
        raise ValueError("groups is empty; pass {label: accuracies}")
    arrays = {k: np.asarray(v, dtype=float) for k, v in groups.items()}
    for size in sizes:
        short = [k for k, a in arrays.items() if a.ndim != 1 or a.size < size or size < 2]
        if short:
            raise ValueError(f"size={size} needs at least {max(size, 2)} runs per regime; "
                             f"{short} have fewer")
    fig, axes = _fig_axes(len(sizes), width=4.0, height=3.2)
    for ax, size in zip(axes, sizes):
        for i, (label, a) in enumerate(arrays.items()):
            x = a[:size]
            c = color_for(label, i)
            sns.kdeplot(x=x, ax=ax, color=c, lw=1.8, common_norm=False,
                        label=f"{label} (SD {x.std(ddof=1):.3g})")
            sns.rugplot(x=x, ax=ax, color=c, height=0.05)
        ax.set_title(f"n = {size} seeds")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("Density")
        ax.legend(fontsize="small")
    top = max(ax.get_ylim()[1] for ax in axes)  # one density scale: panels compare by eye
    for ax in axes:
        ax.set_ylim(0, top)
    return fig


# ----------------------------------------------------------------------------- Fig. 3

@_styled
def plot_pareto(df: pd.DataFrame, knob: str = "knob", tag: str = "tag", sd: str = "sd",
                mean: str = "mean", defaults: Sequence[str] = (), label: str | None = None) -> Figure:
    """Fig. 3: per knob, mean accuracy vs across-seed SD, each point labelled (by `label`, e.g. the
    knob's value, else by `tag`), front joined, with 95% intervals where `df` has them: the SD's
    (`sd_low`, `sd_high`, chi-square) and the mean's (t interval from `n`), so that noise is seen as noise.

    Front points (`stats.pareto_front`: lower SD, higher mean) are filled in the accent colour and
    joined by a dashed line; tags in `defaults` (the chosen settings) get a star.
    """
    missing = [c for c in (knob, tag, sd, mean) if c not in df.columns]
    if missing:
        raise ValueError(f"columns {missing} are not in the DataFrame; it has {list(df.columns)}")
    knobs = list(dict.fromkeys(df[knob]))
    if not knobs:
        raise ValueError("df has no rows")
    fig, axes = _fig_axes(len(knobs), width=3.6, height=3.2, max_cols=3)
    for ax, k in zip(axes, knobs):
        g = df[df[knob] == k]
        if {"sd_low", "sd_high", "n"} <= set(g.columns):
            from scipy import stats as _st  # the mean's t interval half-width from SD and n

            n = g["n"].to_numpy(dtype=float)
            half = _st.t.ppf(0.975, np.maximum(n - 1, 1)) * g[sd].to_numpy() / np.sqrt(n)
            ax.errorbar(g[sd], g[mean], xerr=[g[sd] - g["sd_low"], g["sd_high"] - g[sd]], yerr=half,
                        fmt="none", ecolor="lightgrey", elinewidth=1, capsize=0, zorder=1,
                        label="95% intervals")
        on = stats.pareto_front(g[sd].to_numpy(), g[mean].to_numpy())
        ax.scatter(g[sd][~on], g[mean][~on], s=28, facecolor="white", edgecolor=PALETTE["base"],
                   label="dominated")
        ax.scatter(g[sd][on], g[mean][on], s=32, color=ACCENT, label="Pareto front", zorder=3)
        front = g[on].sort_values(sd)
        ax.plot(front[sd], front[mean], color=ACCENT, ls="--", lw=1)
        chosen = g[g[tag].isin(list(defaults))]
        if len(chosen):
            ax.scatter(chosen[sd], chosen[mean], marker="*", s=140, facecolor="none",
                       edgecolor="black", lw=0.9, label="default", zorder=4)
        for _, row in g.iterrows():
            ax.annotate(f"{row[label]:g}" if label else str(row[tag]), (row[sd], row[mean]), xytext=(3, 3),
                        textcoords="offset points", fontsize="x-small")
        ax.margins(0.15)  # room for the tags of the extreme points
        ax.set_title(str(k))
        ax.set_xlabel("Across-seed SD, pp (lower is better)")
        ax.set_ylabel("Mean accuracy, % (higher is better)")
    axes[0].legend(fontsize="x-small", loc="best")
    return fig


# ----------------------------------------------------------------------------- controller, curves

@_styled
def plot_controller(lam: Any, warmup_steps: int, lam_max: float | None = None,
                    ax: Axes | None = None) -> Figure:
    """The controller's lambda_t over iterations (mean and min-max band over seeds), warm-up latch marked."""
    a = _rows(lam, "lam")
    fig, ax = _target(ax, width=6.0, height=3.2)
    t = np.arange(a.shape[1])
    if a.shape[0] > 1:
        ax.fill_between(t, a.min(axis=0), a.max(axis=0), color=PALETTE["vml"], alpha=0.25, lw=0,
                        label=f"min-max over {a.shape[0]} seeds")
    ax.plot(t, a.mean(axis=0), color=PALETTE["vml"], lw=1.0,
            label=r"$\lambda_t$" + (" (mean over seeds)" if a.shape[0] > 1 else ""))
    ax.axvline(warmup_steps, color=ACCENT, ls="--", lw=1.2,
               label=rf"$\sigma_{{ref}}$ latched (t = W = {warmup_steps})")
    if lam_max is not None:
        ax.axhline(lam_max, color="grey", ls=":", lw=1, label=r"$\lambda_{max}$")
    ax.set_xlabel("Iteration t")
    ax.set_ylabel(r"$\lambda^{SL}_t$")
    ax.set_title("Stable-Loss controller")
    ax.legend(fontsize="small", loc="upper right")
    return fig


@_styled
def plot_learning_curves(curves: Mapping[str, Any], ylabel: str = "Test accuracy",
                         xlabel: str = "Epoch", ax: Axes | None = None) -> Figure:
    """Per label, the across-seed mean curve with a +-1 SD band (ddof=1; no band for a single seed).

    `curves` maps a label to an array (seeds, epochs) or (epochs,); epochs are numbered from 1.
    """
    if not curves:
        raise ValueError("curves is empty; pass {label: (seeds, epochs) array}")
    fig, ax = _target(ax, width=5.0, height=3.4)
    arrays = {k: _rows(v, f"curves[{k!r}]") for k, v in curves.items()}
    percent = "accuracy" in ylabel.lower() and all(np.nanmax(a) <= 1.0 for a in arrays.values())
    if percent:  # fractions, as the store keeps them: shown in percent, like every table
        arrays = {k: 100 * a for k, a in arrays.items()}
        ylabel = f"{ylabel} (%)"
    for i, (label, a) in enumerate(arrays.items()):
        x, m, c = np.arange(1, a.shape[1] + 1), a.mean(axis=0), color_for(label, i)
        ax.plot(x, m, color=c, lw=1.6, label=f"{label} (n = {a.shape[0]})")
        if a.shape[0] > 1:
            s = a.std(axis=0, ddof=1)
            ax.fill_between(x, m - s, m + s, color=c, alpha=0.2, lw=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    ax.legend(fontsize="small")
    return fig


# ----------------------------------------------------------------------------- extras for the book

@_styled
def plot_seed_groups(tables: Mapping[str, pd.DataFrame], ylabel: str = "Across-seed SD",
                     paper: Mapping[str, pd.Series] | None = None, floor: float | None = None) -> Figure:
    """Table 3 as a figure: average group SD per group size, bars spanning the central draws' range.

    `tables` maps a regime label to the DataFrame returned by `stats.seed_groups`; `paper` maps the same
    labels to the paper's SDs indexed by group size (drawn as hollow markers, joined); `floor` is the
    test-set noise floor (a dotted line: the SD that test-set sampling alone gives).
    """
    if not tables:
        raise ValueError("tables is empty; pass {label: stats.seed_groups(...)}")
    fig, ax = _target(None, width=4.6, height=3.4)
    offsets = np.linspace(-0.3, 0.3, len(tables)) if len(tables) > 1 else [0.0]
    for i, ((label, t), off) in enumerate(zip(tables.items(), offsets)):
        need = {"size", "sd", "sd_q_low", "sd_q_high"} - set(t.columns)
        if need:
            raise ValueError(f"tables[{label!r}] lacks columns {sorted(need)}; use stats.seed_groups")
        err = np.vstack([t["sd"] - t["sd_q_low"], t["sd_q_high"] - t["sd"]])
        ax.errorbar(t["size"] + off, t["sd"], yerr=err, fmt="o", capsize=3,
                    color=color_for(label, i), label=f"{label} (ours)")
        if paper is not None and label in paper:
            ps = paper[label]
            ax.plot(ps.index, ps.to_numpy(), marker="s", mfc="none", ls=":", lw=1,
                    color=color_for(label, i), label=f"{label} (paper, Table 3)")
    if floor is not None and np.isfinite(floor):
        ax.axhline(floor, color="grey", ls="--", lw=1, label=f"test-set floor ({floor:.2f})")
    ax.set_xticks(sorted({int(s) for t in tables.values() for s in t["size"]}))
    ax.set_xlabel("Seeds per group")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize="small")
    return fig


@_styled
def plot_power(ratios: Sequence[float] = (0.5, 0.67, 0.8), n_max: int = 80, alpha: float = 0.05,
               target: float = 0.8) -> Figure:
    """Power of the two-sided F-test vs seeds per arm, one curve per true SD ratio; `target` marked."""
    if n_max < 3:
        raise ValueError(f"n_max={n_max!r} is too small; it must be >= 3")
    fig, ax = _target(None, width=4.8, height=3.4)
    n = np.arange(2, n_max + 1)
    for i, r in enumerate(ratios):
        c = _CYCLE[i % len(_CYCLE)]
        ax.plot(n, [stats.f_test_power(int(k), r, alpha) for k in n], color=c, lw=1.6,
                label=f"SD ratio {r:g}")
    for i, r in enumerate(ratios):  # markers after the curves, so the curves are lines 0..k-1
        need = stats.seeds_for_power(r, target, alpha) if r != 1 else None
        if need is not None and need <= n_max:
            ax.plot([need], [stats.f_test_power(need, r, alpha)], "o", color=_CYCLE[i % len(_CYCLE)],
                    ms=5)
            ax.annotate(f"n = {need}", (need, target), xytext=(3, -12), textcoords="offset points",
                        fontsize="x-small")
    ax.axhline(target, color="grey", ls="--", lw=1)
    ax.axvline(5, color=ACCENT, ls=":", lw=1.2, label="5 seeds (paper)")
    ax.set_ylim(0, 1)
    ax.set_xlabel("Seeds per arm")
    ax.set_ylabel(f"Power (F-test, alpha = {alpha:g})")
    ax.legend(fontsize="small", loc="center right")
    return fig


@_styled
def plot_noise_floor(df: pd.DataFrame, label: str = "setting", observed: str = "observed_sd",
                     floor: str = "independent_sd") -> Figure:
    """Observed accuracy SD beside the test-set noise floor (`stats.test_set_variance`), per setting."""
    missing = [c for c in (label, observed, floor) if c not in df.columns]
    if missing:
        raise ValueError(f"columns {missing} are not in the DataFrame; it has {list(df.columns)}")
    fig, ax = _target(None, width=max(4.0, 0.9 * len(df) + 1.5), height=3.4)
    x = np.arange(len(df))
    ax.bar(x - 0.2, df[observed], width=0.4, color=PALETTE["base"], label="observed SD")
    ax.bar(x + 0.2, df[floor], width=0.4, color="lightgrey", edgecolor="grey",
           label="independent-error floor")
    ax.set_ylim(0, 1.3 * float(np.nanmax(np.r_[df[observed], df[floor]])))  # headroom for the legend
    ax.set_xticks(x, [str(v) for v in df[label]], rotation=30, ha="right")
    ax.set_xlabel(label.replace("_", " ").capitalize())
    ax.set_ylabel("Accuracy SD")
    ax.legend(fontsize="small")
    return fig


# ----------------------------------------------------------------------------- what the controller does

@_styled
def plot_controller_effect(runs: pd.DataFrame, title: str = "") -> Figure:
    """Two panels from `analysis.decisive.controller_runs`: the gradient factor 1 + w·λ·ψ(δ) per epoch (arm mean
    of each run's mean, with the arms' mean 5-95% range of steps), and σ_ref per seed."""
    fig, (ax_f, ax_s) = _fig_axes(2, width=4.6)
    epochs = sorted(int(c.rsplit("_e", 1)[1]) for c in runs.columns if c.startswith("factor_mean_e"))
    for i, (loss, g) in enumerate(runs.groupby("loss")):
        color, label = color_for(loss, i), "VML" if loss == "vml" else "Base (observer)"
        mean = [g[f"factor_mean_e{e}"].mean() for e in epochs]
        lo, hi = ([g[f"factor_{q}_e{e}"].mean() for e in epochs] for q in ("p5", "p95"))
        ax_f.plot(epochs, mean, marker="o", color=color, label=label)
        ax_f.fill_between(epochs, lo, hi, color=color, alpha=0.15)
        ax_s.scatter(g["seed"], g["sigma_ref"], color=color, label=label, s=18)
    ax_f.axhline(1.0, color="0.5", lw=0.8, ls="--")
    ax_f.set(xlabel="epoch", ylabel="gradient factor dL/dℓ", title="gradient factor (mean, 5-95% of steps)")
    ax_s.set(xlabel="seed", ylabel="σ_ref (latched at step W)", title="σ_ref across seeds")
    ax_s.xaxis.set_major_locator(MaxNLocator(integer=True))  # seeds are whole numbers
    ax_f.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


@_styled
def plot_dose_response(doses: pd.DataFrame, claimed: float | None = None, ax: Axes | None = None) -> Figure:
    """The second test's dose-response from `analysis.second.dose_table`: the across-seed SD of test
    accuracy per dose with its 95% χ² interval (complete arms only) on a log axis, Base at dose 0; the paper's
    claimed reduction from Base's SD as a dashed line when `claimed` (%) is given."""
    fig, ax = _target(ax)
    t = doses.dropna(subset=["sd"]) if "sd" in doses else doses.iloc[:0]
    x = t.index.to_numpy(dtype=float)
    ax.errorbar(x, t["sd"], yerr=[t["sd"] - t["sd_low"], t["sd_high"] - t["sd"]], fmt="o", capsize=3,
                color=color_for("vml"))
    if claimed is not None and 0 in t.index:
        ax.axhline(t.loc[0, "sd"] * (1 - claimed / 100), color="0.4", ls="--", lw=0.9,
                   label=f"Base SD − {claimed:.3g}% (the paper's claim)")
        ax.legend(fontsize="small")
    # log scale: the declared trend test is a line in log SD against the dose (`stats.sd_trend`), and a
    # dose that breaks training can widen the spread tenfold, which a linear axis would flatten the rest by
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "25" else ""))
    ax.set(xlabel="dose k (0 = Base, 1 = Table 5)", ylabel="across-seed SD, test acc. (pp, log)",
           title="spread against dose")
    ax.set_xlim(-0.05 * max(doses.index), 1.05 * max(doses.index))  # every declared dose, stored or not
    return fig


# ----------------------------------------------------------------------------- the answer

@_styled
def plot_gradient_factors(factors: Mapping[int, Any], ax: Axes | None = None) -> Figure:
    """What the controller did at each dose of the second test (`analysis.second.gradient_factors`): the
    distribution of the gradient factor dL/dℓ over every post-latch step of every run, one violin per dose
    (0 = Base, whose controller only watches; 1 = Table 5), with its 5th-95th percentile range as a bar,
    a line at 1 (plain cross-entropy) and one at 0 (below it the step is reversed). The axis spans the 1st
    to 99th percentile of every dose's steps (and 0)."""
    fig, ax = _target(ax)
    doses = sorted(factors)
    data = [np.asarray(factors[k], dtype=float) for k in doses]
    if data:
        parts = ax.violinplot(data, positions=range(len(doses)), showextrema=False, widths=0.8)
        for body in parts["bodies"]:
            body.set_facecolor(color_for("vml"))
            body.set_alpha(0.5)
        lo, hi = zip(*(np.percentile(d, [5, 95]) for d in data))
        ax.vlines(range(len(doses)), lo, hi, color="black", lw=2)
        # the axis spans the middle 98% of every dose's steps: a strong dose's rare extremes (up to
        # 1 ± w·λ_max) would flatten the rest
        bottom = min(0.0, min(np.percentile(d, 1) for d in data))
        top = max(np.percentile(d, 99) for d in data)
        pad = 0.05 * (top - bottom)
        ax.set_ylim(bottom - pad, top + pad)
    ax.axhline(1, color="0.4", ls="--", lw=0.9)
    ax.axhline(0, color="0.4", ls=":", lw=0.9)
    names = {0: "0 (Base)", 1: "1 (Table 5)"}
    ax.set_xticks(range(len(doses)), [names.get(k, str(k)) for k in doses])
    ax.set(xlabel="dose k", ylabel="dL/dℓ after the latch", title="the gradient factor per dose")
    return fig


@_styled
def plot_forest(df: pd.DataFrame, band: tuple[float, float], claimed: float | None = None,
                ax: Axes | None = None) -> Figure:
    """Every complete test's Var. Red. (%) with its 95% intervals, one row each (top to bottom in `df`'s
    order): the F interval (thick) and the bootstrap interval (thin, below it), and the paired interval
    where `df` has `paired_low`/`paired_high` (a hook for a paired design; drawn only when present). A zero
    line; the paper's claimed range `band` shaded; `claimed` (the value the tests look for) dashed; and
    where a test's `ceiling` (the largest reduction its noise floor allows) lies below `claimed`, a bar
    marks it.

    `df` needs columns `label`, `var_red`, `f_low`, `f_high`; `boot_low`, `boot_high`, `ceiling`,
    `paired_low`, `paired_high` are optional (NaN: not drawn)."""
    need = {"label", "var_red", "f_low", "f_high"} - set(df.columns)
    if need:
        raise ValueError(f"df lacks columns {sorted(need)}")
    fig, ax = _target(ax, width=8.0, height=1.3 + 0.5 * len(df))
    ax.axvspan(*band, color=ACCENT, alpha=0.12, lw=0, label=f"paper's claim ({band[0]:.0f}-{band[1]:.0f}%)")
    ax.axvline(0, color="black", lw=0.9)
    if claimed is not None:
        ax.axvline(claimed, color=ACCENT, lw=1, ls="--", label=f"claimed for ResNet-14 ({claimed:.1f}%)")
    y = np.arange(len(df))[::-1].astype(float)
    col = lambda name: df[name].to_numpy(dtype=float) if name in df else np.full(len(df), np.nan)  # noqa: E731
    ax.hlines(y, col("f_low"), col("f_high"), color=PALETTE["vml"], lw=3.2, label="95% F interval")
    ax.plot(col("var_red"), y, "o", color="black", ms=5, zorder=5, label="estimate")
    bl, bh = col("boot_low"), col("boot_high")
    ok = np.isfinite(bl) & np.isfinite(bh)
    if ok.any():
        ax.hlines(y[ok] - 0.22, bl[ok], bh[ok], color=PALETTE["base"], lw=1.4, label="95% bootstrap interval")
    pl, ph = col("paired_low"), col("paired_high")
    ok = np.isfinite(pl) & np.isfinite(ph)
    if ok.any():
        ax.hlines(y[ok] + 0.22, pl[ok], ph[ok], color=_CYCLE[2], lw=1.4, label="95% paired interval")
    cap = col("ceiling")
    ok = np.isfinite(cap) & (cap < (claimed if claimed is not None else np.inf))
    if ok.any():
        ax.plot(cap[ok], y[ok], marker="|", ms=16, mew=2.2, ls="none", color="dimgrey",
                label="ceiling: all seed variance removed")
    ax.set_yticks(y, list(df["label"]))
    ax.set_ylim(y.min() - 0.6, y.max() + 0.6)
    ax.grid(axis="y", visible=False)
    if "verdict" in df:  # each test's verdict word at the right edge
        side = mpl.transforms.blended_transform_factory(ax.transAxes, ax.transData)
        for yi, word in zip(y, df["verdict"]):
            ax.text(1.02, yi, str(word), transform=side, va="center", fontsize="small", style="italic")
    ax.set_xlabel("Var. Red. = 1 − SD(VML) / SD(Base), %  (right of 0: VML spreads less)")
    ax.legend(fontsize="x-small", loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=3)
    return fig
