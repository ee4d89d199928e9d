"""Each figure renders from synthetic data and draws that data: the points, curves, bars and bands
are read back from the artists and compared with the inputs, and the labels with what they name."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import LineCollection, PathCollection, PolyCollection  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from scipy.stats import gaussian_kde  # noqa: E402

from vml import plots, stats  # noqa: E402


@pytest.fixture(autouse=True)
def no_global_state():
    """Figures stay out of pyplot's registry and the caller's rcParams are untouched."""
    before = dict(matplotlib.rcParams)
    yield
    assert plt.get_fignums() == []
    assert dict(matplotlib.rcParams) == before


def rendered(fig):
    assert isinstance(fig, Figure)
    fig.canvas.draw()  # layout and text must actually render, not just be scheduled
    return fig


def scatters(ax):
    return [c for c in ax.collections if isinstance(c, PathCollection)]


def bands(ax):
    return [c for c in ax.collections if isinstance(c, PolyCollection)]


def band_edges(band):
    """The x values of a fill_between band and its lower and upper edge there."""
    v = band.get_paths()[0].vertices
    xs = np.unique(v[:, 0])
    return xs, np.array([v[v[:, 0] == x, 1].min() for x in xs]), np.array([v[v[:, 0] == x, 1].max() for x in xs])


def bar_xy(bars):
    """Each bar's centre and height."""
    return (np.array([b.get_x() + b.get_width() / 2 for b in bars]), np.array([b.get_height() for b in bars]))


def reactivity_result(epochs=80):
    g = np.random.default_rng(0)
    common = g.standard_normal(epochs)
    lam = np.cumsum(common + 0.3 * g.standard_normal((3, epochs)), axis=1)
    loss = np.cumsum(np.roll(common, 1) + 0.8 * g.standard_normal((3, epochs)), axis=1)
    return stats.reactivity(lam, loss, max_lag=10)


def test_fig1_scatter_and_ccf_with_peak_marked():
    res = reactivity_result()
    fig = rendered(plots.plot_reactivity(res))
    left, right = fig.axes
    # left: one dot per paired epoch and the least-squares line with slope r
    (dots,) = scatters(left)
    assert np.array_equal(dots.get_offsets(), np.column_stack([res.x, res.y])) and len(res.x) == res.n
    assert "Delta\\lambda_k" in left.get_xlabel() and "k+1" in left.get_ylabel()
    (fit,) = left.get_lines()
    xd, yd = fit.get_xdata(), fit.get_ydata()
    assert (yd[1] - yd[0]) / (xd[1] - xd[0]) == pytest.approx(res.slope)
    assert any(f"r = {res.slope:.3f}" in t.get_text() for t in left.texts)
    # right: 21 bars (tau -10..10), the peak bar alone in the accent colour, at tau* = +1
    bars = right.patches
    centres, heights = bar_xy(bars)
    assert np.allclose(centres, res.lags) and np.allclose(heights, np.nan_to_num(res.r)) and res.tau_star == 1
    accent = [b for b in bars if to_hex(b.get_facecolor()) == plots.ACCENT.lower()]
    assert len(accent) == 1 and accent[0].get_x() + accent[0].get_width() / 2 == pytest.approx(1)
    assert "tau" in right.get_xlabel() and "r_\\tau" in right.get_ylabel()
    # zero line, the white-noise band at +-1.96/sqrt(n) of the differenced series, the peak marker above the bar
    zero, low, high, marker = right.get_lines()
    band = 1.96 / np.sqrt(res.n + res.lead)
    assert list(zero.get_ydata()) == [0, 0] and list(low.get_ydata()) == [-band, -band]
    assert list(high.get_ydata()) == [band, band]
    assert list(marker.get_xdata()) == [1] and marker.get_ydata()[0] == pytest.approx(res.r_star + 0.06)
    assert any("+1" in t.get_text() for t in right.texts)


def test_ccf_panel_alone_without_band_and_rejects_all_nan():
    fig = rendered(plots.plot_ccf(np.arange(-3, 4), [0.1, -0.2, 0.0, 0.3, -0.6, 0.2, 0.1]))
    (ax,) = fig.axes
    centres, heights = bar_xy(ax.patches)
    assert list(centres) == list(range(-3, 4)) and list(heights) == [0.1, -0.2, 0.0, 0.3, -0.6, 0.2, 0.1]
    accent = [b for b in ax.patches if to_hex(b.get_facecolor()) == plots.ACCENT.lower()]
    assert len(accent) == 1 and accent[0].get_height() == pytest.approx(-0.6)  # largest |r|
    zero, marker = ax.get_lines()  # no band without n
    assert list(zero.get_ydata()) == [0, 0]
    assert list(marker.get_xdata()) == [1] and marker.get_ydata()[0] == pytest.approx(-0.66)  # below a negative bar
    assert marker.get_marker() == "^"
    with pytest.raises(ValueError, match="all NaN"):
        plots.plot_ccf([0, 1], [np.nan, np.nan])


def test_fig2_kde_per_regime_and_group_size_integrates_to_one():
    g = np.random.default_rng(1)
    base = g.normal(94.9, 0.17, 20)
    groups = {"Base": base, "VML": 94.9 + 0.5 * (base - 94.9)}  # same shape at half the spread
    fig = rendered(plots.plot_accuracy_kde(groups, sizes=(5, 20)))
    assert len(fig.axes) == 2
    for ax, size in zip(fig.axes, (5, 20)):
        assert ax.get_title() == f"n = {size} seeds"
        assert ax.get_xlabel() == "Final test accuracy" and ax.get_ylabel() == "Density"
        curves = ax.get_lines()
        rugs = [c for c in ax.collections if isinstance(c, LineCollection)]
        assert len(curves) == len(rugs) == 2
        for line, rug, data in zip(curves, rugs, groups.values()):
            x, y = line.get_xdata(), line.get_ydata()
            assert np.allclose(y, gaussian_kde(data[:size])(x))  # the Scott-bandwidth KDE of the first `size` runs
            assert np.trapezoid(y, x) == pytest.approx(1.0, abs=0.02)  # area 1 per curve
            assert sorted(seg[0][0] for seg in rug.get_segments()) == sorted(data[:size])  # one tick per run
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert labels[0].startswith("Base (SD") and labels[1].startswith("VML (SD")
        assert f"{groups['VML'][:size].std(ddof=1):.3g}" in labels[1]
        assert [to_hex(c.get_color()) for c in curves] == [plots.PALETTE["base"].lower(),
                                                           plots.PALETTE["vml"].lower()]
    # a KDE (Scott bandwidth) of the data at half the spread peaks twice as high
    for ax in fig.axes:
        base_curve, vml_curve = ax.get_lines()
        assert vml_curve.get_ydata().max() == pytest.approx(2 * base_curve.get_ydata().max(), rel=0.02)
    with pytest.raises(ValueError, match="size=25"):
        plots.plot_accuracy_kde(groups, sizes=(25,))


def test_fig3_pareto_panels_tags_front_and_defaults():
    df = pd.DataFrame({
        "knob": ["SLA"] * 4 + ["SW"] * 3,
        "tag": ["SLA001", "SLA005", "SLA010", "SLA020", "SW005", "SW010", "SW020"],
        "sd": [0.20, 0.11, 0.15, 0.09, 0.14, 0.10, 0.18],
        "mean": [94.8, 94.95, 94.7, 94.6, 94.9, 94.92, 94.7],
    })
    fig = rendered(plots.plot_pareto(df, defaults=["SLA005", "SW010"]))
    assert [ax.get_title() for ax in fig.axes] == ["SLA", "SW"]
    for ax, knob in zip(fig.axes, ["SLA", "SW"]):
        g = df[df.knob == knob]
        on = stats.pareto_front(g.sd, g["mean"])
        # each tag written at its point
        assert sorted((t.get_text(), *t.xy) for t in ax.texts) == sorted(zip(g.tag, g.sd, g["mean"]))
        dominated, front, star = scatters(ax)
        assert np.array_equal(front.get_offsets(), g[on][["sd", "mean"]].to_numpy())
        assert np.array_equal(dominated.get_offsets(), g[~on][["sd", "mean"]].to_numpy())
        assert np.array_equal(star.get_offsets(), g[g.tag.isin(["SLA005", "SW010"])][["sd", "mean"]].to_numpy())
        (line,) = ax.get_lines()  # the front joined from low to high SD
        assert list(line.get_xdata()) == sorted(g.sd[on])
        assert list(line.get_ydata()) == list(g[on].sort_values("sd")["mean"])
        assert "SD" in ax.get_xlabel() and "Mean accuracy" in ax.get_ylabel()
    # SLA: SLA005 and SLA020 are the front, SLA001 and SLA010 are dominated
    assert sorted(scatters(fig.axes[0])[1].get_offsets()[:, 0]) == [0.09, 0.11]


def test_fig3_pareto_wraps_five_knobs_into_two_rows_of_three():
    knobs = ["alpha", "beta", "delta", "W", "lambda_base"]
    df = pd.DataFrame({"knob": np.repeat(knobs, 2), "tag": [f"T{i}" for i in range(10)],
                       "sd": np.linspace(0.1, 0.3, 10), "mean": np.linspace(82, 83, 10)})
    fig = rendered(plots.plot_pareto(df))
    assert [ax.get_title() for ax in fig.axes] == knobs  # no empty sixth panel
    cells = [(ax.get_subplotspec().rowspan.start, ax.get_subplotspec().colspan.start) for ax in fig.axes]
    assert cells == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]


def test_controller_lambda_with_warmup_latch():
    g = np.random.default_rng(2)
    lam = np.clip(0.1 * np.abs(g.standard_normal((4, 600))).cumsum(axis=1) / 300, 0, 2)
    fig = rendered(plots.plot_controller(lam, warmup_steps=200, lam_max=2.0))
    (ax,) = fig.axes
    assert ax.get_xlabel() == "Iteration t" and "lambda" in ax.get_ylabel()
    mean_line, latch, cap = ax.get_lines()
    assert np.allclose(mean_line.get_ydata(), lam.mean(axis=0))
    assert list(latch.get_xdata()) == [200, 200] and list(cap.get_ydata()) == [2.0, 2.0]
    (band,) = bands(ax)  # min-max over the seeds
    t, low, high = band_edges(band)
    assert np.array_equal(t, np.arange(600)) and np.allclose(low, lam.min(0)) and np.allclose(high, lam.max(0))
    assert any("W = 200" in t.get_text() for t in ax.get_legend().get_texts())
    single = rendered(plots.plot_controller(lam[0], warmup_steps=50))
    (ax,) = single.axes
    assert list(ax.collections) == []  # one seed: no band
    curve, latch = ax.get_lines()  # no cap line without lam_max
    assert np.array_equal(curve.get_ydata(), lam[0]) and list(latch.get_xdata()) == [50, 50]


def test_learning_curves_with_across_seed_bands():
    g = np.random.default_rng(3)
    curves = {"Base": 0.9 - np.exp(-np.arange(30) / 8) + 0.01 * g.standard_normal((5, 30)),
              "VML": 0.9 - np.exp(-np.arange(30) / 8) + 0.005 * g.standard_normal((5, 30))}
    fig = rendered(plots.plot_learning_curves(curves, ylabel="Test accuracy"))
    (ax,) = fig.axes
    # accuracies as fractions (as stored) are drawn in percent, on whole-epoch ticks
    assert ax.get_xlabel() == "Epoch" and ax.get_ylabel() == "Test accuracy (%)"
    assert all(float(t).is_integer() for t in ax.get_xticks())
    lines = ax.get_lines()
    assert len(lines) == len(bands(ax)) == 2
    for line, band, a in zip(lines, bands(ax), curves.values()):
        a = 100 * a
        assert list(line.get_xdata()) == list(range(1, 31)) and np.allclose(line.get_ydata(), a.mean(axis=0))
        epochs, low, high = band_edges(band)  # mean +- SD (ddof=1) at every epoch
        assert list(epochs) == list(range(1, 31))
        assert np.allclose(low, a.mean(0) - a.std(0, ddof=1)) and np.allclose(high, a.mean(0) + a.std(0, ddof=1))
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["Base (n = 5)", "VML (n = 5)"]
    # other quantities keep their units
    loss = rendered(plots.plot_learning_curves({"Base": curves["Base"]}, ylabel="Test loss")).axes[0]
    assert loss.get_ylabel() == "Test loss" and np.allclose(loss.get_lines()[0].get_ydata(), curves["Base"].mean(0))


def test_seed_groups_and_kde_figures_carry_the_papers_values_the_floor_and_one_density_scale():
    a = np.random.default_rng(0).normal(82, 0.25, 20)
    t = stats.seed_groups(a, sizes=[5, 10, 20], n_draws=50, seed=0)
    paper_sd = pd.Series([0.168, 0.140, 0.129], index=[5, 10, 20])
    ax = rendered(plots.plot_seed_groups({"Base": t}, paper={"Base": paper_sd}, floor=0.22)).axes[0]
    texts = [x.get_text() for x in ax.get_legend().get_texts()]
    assert texts == ["Base (paper, Table 3)", "test-set floor (0.22)", "Base (ours)"] or set(texts) == {
        "Base (ours)", "Base (paper, Table 3)", "test-set floor (0.22)"}
    assert any(np.allclose(line.get_ydata(), paper_sd.to_numpy()) for line in ax.get_lines())
    kde = rendered(plots.plot_accuracy_kde({"Base": a, "VML": a[::-1] * 1.001}, sizes=(5, 20)))
    assert len({ax.get_ylim() for ax in kde.axes}) == 1


def test_pareto_points_carry_95_percent_intervals_and_their_values():
    df = pd.DataFrame({"knob": ["alpha"] * 3, "tag": ["SLA001", "SLA005", "SLA010"], "value": [0.01, 0.05, 0.1],
                       "n": [5] * 3, "mean": [82.2, 82.0, 82.4], "sd": [0.24, 0.25, 0.17],
                       "sd_low": [0.15, 0.15, 0.10], "sd_high": [0.70, 0.72, 0.50]})
    ax = rendered(plots.plot_pareto(df, label="value")).axes[0]
    assert [a.get_text() for a in ax.texts] == ["0.01", "0.05", "0.1"]
    assert ax.containers, "no error bars"


def test_seed_groups_power_and_noise_floor_figures():
    g = np.random.default_rng(4)
    tables = {"Base": stats.seed_groups(g.normal(0, 0.17, 20), n_draws=200),
              "VML": stats.seed_groups(g.normal(0, 0.11, 20), n_draws=200)}
    fig = rendered(plots.plot_seed_groups(tables))
    (ax,) = fig.axes
    assert [int(t) for t in ax.get_xticks()] == [5, 10, 15, 20]
    assert ax.get_xlabel() == "Seeds per group"
    # one errorbar per regime, side by side (-0.3, +0.3) at each size: the mean group SD, bars over the central draws
    for bar, t, off in zip(ax.containers, tables.values(), (-0.3, 0.3)):
        dots, _, (stems,) = bar
        assert np.allclose(dots.get_xdata(), t["size"] + off) and np.allclose(dots.get_ydata(), t["sd"])
        ends = np.array([sorted(seg[:, 1]) for seg in stems.get_segments()])
        assert np.allclose(ends, t[["sd_q_low", "sd_q_high"]].to_numpy())

    fig = rendered(plots.plot_power(ratios=(0.5, 0.67), n_max=60))
    (ax,) = fig.axes
    curves = ax.get_lines()[:2]
    assert [c.get_label() for c in curves] == ["SD ratio 0.5", "SD ratio 0.67"]
    n51 = list(curves[1].get_xdata()).index(51)
    assert curves[1].get_ydata()[n51] == pytest.approx(stats.f_test_power(51, 0.67))
    assert ax.get_ylabel().startswith("Power")
    # each curve's 80%-power point is marked at stats.seeds_for_power
    marks = [ln for ln in ax.get_lines()[2:] if len(ln.get_xdata()) == 1]
    assert sorted(int(m.get_xdata()[0]) for m in marks) == sorted(
        [stats.seeds_for_power(0.5), stats.seeds_for_power(0.67)])
    target, paper = [ln for ln in ax.get_lines()[2:] if len(ln.get_xdata()) == 2]
    assert list(target.get_ydata()) == [0.8, 0.8] and list(paper.get_xdata()) == [5, 5]

    df = pd.DataFrame({"setting": ["All", "Init"], "observed_sd": [0.0017, 0.0019],
                       "independent_sd": [0.0021, 0.0021]})
    fig = rendered(plots.plot_noise_floor(df))
    (ax,) = fig.axes
    centres, heights = bar_xy(ax.patches)  # observed SD left of each tick, the floor right of it
    assert np.allclose(centres, [-0.2, 0.8, 0.2, 1.2]) and list(heights) == [0.0017, 0.0019, 0.0021, 0.0021]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["All", "Init"]
    assert ax.get_ylabel() == "Accuracy SD"


def test_controller_effect_draws_each_arms_factor_and_sigma_ref():
    runs = pd.DataFrame({"loss": ["base", "base", "vml", "vml"], "seed": [1, 2, 1, 2],
                         "sigma_ref": [0.30, 0.34, 0.29, 0.41],
                         "factor_mean_e1": [1.0, 1.2, 1.1, 1.5], "factor_mean_e2": [0.8, 1.0, 0.9, 1.3],
                         "factor_p5_e1": [0.5, 0.7, 0.2, 0.4], "factor_p5_e2": [0.4, 0.6, -0.2, 0.0],
                         "factor_p95_e1": [1.5, 1.7, 2.0, 2.4], "factor_p95_e2": [1.2, 1.4, 1.8, 2.2]})
    fig = rendered(plots.plot_controller_effect(runs, "a title"))
    ax_f, ax_s = fig.axes
    assert fig._suptitle.get_text() == "a title"
    base, vml, one = ax_f.get_lines()
    assert [base.get_label(), vml.get_label()] == ["Base (observer)", "VML"] and list(one.get_ydata()) == [1, 1]
    assert list(base.get_xdata()) == [1, 2] and np.allclose(base.get_ydata(), [1.1, 0.9])  # arm mean per epoch
    assert np.allclose(vml.get_ydata(), [1.3, 1.1])
    _, low, high = band_edges(bands(ax_f)[1])  # VML: the arm's mean 5% and 95% per epoch
    assert np.allclose(low, [0.3, -0.1]) and np.allclose(high, [2.2, 2.0])
    base_dots, vml_dots = scatters(ax_s)
    assert np.array_equal(base_dots.get_offsets(), [[1, 0.30], [2, 0.34]])
    assert np.array_equal(vml_dots.get_offsets(), [[1, 0.29], [2, 0.41]])


def test_forest_plot_draws_each_test_its_intervals_the_band_and_a_ceiling_only_below_the_claim():
    df = pd.DataFrame({"label": ["short", "long"], "var_red": [0.0, -13.0], "f_low": [-33.0, -64.0],
                       "f_high": [24.5, 21.9], "boot_low": [-31.0, -67.0], "boot_high": [23.0, 20.0],
                       "ceiling": [65.0, 19.9], "verdict": ["smaller than claimed", "not testable on this protocol"]})
    fig = rendered(plots.plot_forest(df, (33.0, 75.0), 33.3))
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["short", "long"]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "95% F interval" in legend and "95% bootstrap interval" in legend
    assert "95% paired interval" not in legend  # the hook draws only what the table has
    ceiling = [line for line in ax.get_lines() if line.get_marker() == "|"]
    assert len(ceiling) == 1 and list(ceiling[0].get_xdata()) == [19.9]  # 65% is above the claim: not drawn
    assert [t.get_text() for t in ax.texts] == list(df["verdict"])
    paired = rendered(plots.plot_forest(df.assign(paired_low=[-20.0, np.nan], paired_high=[15.0, np.nan]),
                                        (33.0, 75.0), 33.3))
    assert "95% paired interval" in [t.get_text() for t in paired.axes[0].get_legend().get_texts()]
