"""Each figure renders from synthetic data, and shows what it should: labels, artists, the marked peak."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import PathCollection, PolyCollection  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

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
    assert dots.get_offsets().shape == (res.n, 2)
    assert "Delta\\lambda_k" in left.get_xlabel() and "k+1" in left.get_ylabel()
    (fit,) = left.get_lines()
    xd, yd = fit.get_xdata(), fit.get_ydata()
    assert (yd[1] - yd[0]) / (xd[1] - xd[0]) == pytest.approx(res.slope)
    assert any(f"r = {res.slope:.3f}" in t.get_text() for t in left.texts)
    # right: 21 bars (tau -10..10), the peak bar alone in the accent colour, at tau* = +1
    bars = right.patches
    assert len(bars) == 21 and res.tau_star == 1
    accent = [b for b in bars if to_hex(b.get_facecolor()) == plots.ACCENT.lower()]
    assert len(accent) == 1 and accent[0].get_x() + accent[0].get_width() / 2 == pytest.approx(1)
    assert "tau" in right.get_xlabel() and "r_\\tau" in right.get_ylabel()
    # zero line, two white-noise band lines, one peak marker
    assert len(right.get_lines()) == 4
    assert any("+1" in t.get_text() for t in right.texts)


def test_ccf_panel_alone_without_band_and_rejects_all_nan():
    fig = rendered(plots.plot_ccf(np.arange(-3, 4), [0.1, -0.2, 0.0, 0.3, -0.6, 0.2, 0.1]))
    (ax,) = fig.axes
    assert len(ax.patches) == 7 and len(ax.get_lines()) == 2  # zero line and marker only
    accent = [b for b in ax.patches if to_hex(b.get_facecolor()) == plots.ACCENT.lower()]
    assert len(accent) == 1 and accent[0].get_height() == pytest.approx(-0.6)  # largest |r|
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
        assert len(curves) == 2
        for line in curves:
            x, y = line.get_xdata(), line.get_ydata()
            assert np.trapezoid(y, x) == pytest.approx(1.0, abs=0.02)  # area 1 per curve
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
        assert sorted(t.get_text() for t in ax.texts) == sorted(g.tag)
        dominated, front, star = scatters(ax)
        assert len(front.get_offsets()) == on.sum() and len(dominated.get_offsets()) == (~on).sum()
        assert len(star.get_offsets()) == 1
        (line,) = ax.get_lines()
        assert list(line.get_xdata()) == sorted(g.sd[on])
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
    assert len([c for c in ax.collections if isinstance(c, PolyCollection)]) == 1  # seed band
    assert any("W = 200" in t.get_text() for t in ax.get_legend().get_texts())
    single = rendered(plots.plot_controller(lam[0], warmup_steps=50))
    assert len(single.axes[0].collections) == 0 and len(single.axes[0].get_lines()) == 2


def test_learning_curves_with_across_seed_bands():
    g = np.random.default_rng(3)
    curves = {"Base": 0.9 - np.exp(-np.arange(30) / 8) + 0.01 * g.standard_normal((5, 30)),
              "VML": 0.9 - np.exp(-np.arange(30) / 8) + 0.005 * g.standard_normal((5, 30))}
    fig = rendered(plots.plot_learning_curves(curves, ylabel="Test accuracy"))
    (ax,) = fig.axes
    assert ax.get_xlabel() == "Epoch" and ax.get_ylabel() == "Test accuracy"
    lines = ax.get_lines()
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(lines) == 2 and len(bands) == 2
    assert list(lines[0].get_xdata()) == list(range(1, 31))
    assert np.allclose(lines[1].get_ydata(), curves["VML"].mean(axis=0))
    # the band spans mean +- SD: its vertical extent at the widest epoch equals 2 SD there
    top = bands[0].get_paths()[0].vertices[:, 1].max()
    assert top == pytest.approx((curves["Base"].mean(0) + curves["Base"].std(0, ddof=1)).max())
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["Base (n = 5)", "VML (n = 5)"]


def test_seed_groups_power_and_noise_floor_figures():
    g = np.random.default_rng(4)
    tables = {"Base": stats.seed_groups(g.normal(0, 0.17, 20), n_draws=200),
              "VML": stats.seed_groups(g.normal(0, 0.11, 20), n_draws=200)}
    fig = rendered(plots.plot_seed_groups(tables))
    (ax,) = fig.axes
    assert [int(t) for t in ax.get_xticks()] == [5, 10, 15, 20]
    assert ax.get_xlabel() == "Seeds per group" and len(ax.containers) == 2  # one errorbar per regime

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

    df = pd.DataFrame({"setting": ["All", "Init"], "observed_sd": [0.0017, 0.0019],
                       "independent_sd": [0.0021, 0.0021]})
    fig = rendered(plots.plot_noise_floor(df))
    (ax,) = fig.axes
    assert len(ax.patches) == 4 and [t.get_text() for t in ax.get_xticklabels()] == ["All", "Init"]
    assert ax.get_ylabel() == "Accuracy SD"
