"""The book's helpers: the paper's tables as typed in, and the controller traces of chapter 3."""
import re

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from vml import VMLConfig, book, paper, results, studies  # noqa: E402
from vml.plots_controller import (KNOBS, controller_trace, knob_summary, plot_controller_trace,  # noqa: E402
                                  plot_knobs, synthetic_losses)


@pytest.mark.parametrize("name", ["table1", "table2", "table3"])
def test_paper_var_red_matches_its_sds(name):
    """A typo in a typed-in SD or Var. Red. shows up as a mismatch (the paper rounds, so allow 1 pt)."""
    t = paper.ALL_TABLES[name]()
    recomputed = 100 * (1 - t["vml_sd"] / t["base_sd"])
    assert np.all(np.abs(recomputed - t["var_red"]) < 1.0), t.assign(recomputed=recomputed)


def test_paper_tables_have_the_papers_shape():
    assert len(paper.table1()) == 4 and len(paper.table2()) == 8 and len(paper.table3()) == 4
    assert list(paper.table4()["var_red"]) == [58.0, 27.0, 30.7, 33.3]
    t5 = paper.table5().set_index("arg")["value"]
    for arg, value in t5.items():  # Table 5 is our default configuration
        assert getattr(VMLConfig(), arg) == pytest.approx(value)
    for fn in paper.ALL_TABLES.values():
        assert not fn().isna().any().any()


@pytest.fixture(scope="module")
def sequence():
    return synthetic_losses(n_calm=120, n_burst=40, n_tail=60, seed=1)


def test_trace_follows_the_equations(sequence):
    losses, phases = sequence
    cfg = VMLConfig(warmup_steps=50)
    df = controller_trace(losses, cfg)
    assert len(df) == len(losses) and (losses > 0).all()
    assert np.allclose(df["grad_factor"], df["grad_factor_eq10"], atol=1e-12)  # eq. 10 by autograd
    assert df.loc[0, "delta"] == 0 and df.loc[0, "ema"] == losses[0]           # ℓ̄_{-1} := ℓ_0
    before = df[df["t"] < 50]
    assert (before["lambda"] == cfg.lambda_base).all() and not before["latched"].any()
    after = df[df["t"] >= 50]
    assert after["latched"].all() and after["sigma_ref"].nunique() == 1
    burst = df[(df["t"] >= phases.calm_end) & (df["t"] < phases.burst_end)]
    calm = df[(df["t"] > 50) & (df["t"] < phases.calm_end)]
    assert burst["lambda"].mean() > 1.3 * calm["lambda"].mean()                # the burst is seen


def test_gate_silences_the_calm_phase(sequence):
    losses, phases = sequence
    df = controller_trace(losses, warmup_steps=50, gamma=2.0)
    calm = df[(df["t"] > 60) & (df["t"] < phases.calm_end)]
    assert (calm["lambda"] == 0).mean() > 0.9
    assert df["lambda"].max() > 0


def test_knob_summary_and_figures(sequence):
    losses, phases = sequence
    knobs = {"alpha": (0.05, 0.2), "delta": (0.2, 1.0)}
    s = knob_summary(losses, phases, knobs, VMLConfig(warmup_steps=50))
    assert len(s) == 4 and s.index.names == ["knob", "value"]
    assert s.loc[("alpha", "0.05 (Table 5)"), "λ burst"] > 0
    # Δ leaves λ_t alone but weakens the rescaling
    d = s.loc["delta"]
    assert d["λ burst"].nunique() == 1 and d["|g−1| burst"].iloc[0] > d["|g−1| burst"].iloc[1]
    fig = plot_controller_trace(controller_trace(losses, warmup_steps=50), VMLConfig(warmup_steps=50), phases)
    assert len(fig.axes) == 4
    fig.canvas.draw()
    fig = plot_knobs(losses, phases, knobs, VMLConfig(warmup_steps=50))
    assert sum(ax.get_visible() for ax in fig.axes) == 2
    fig.canvas.draw()
    assert set(KNOBS) == {"alpha", "beta", "delta", "warmup_steps", "lambda_base", "gamma"}


def test_pareto_figure_leaves_out_broken_settings_and_names_them():
    t = pd.DataFrame({"knob": ["alpha"] * 3 + ["beta"] * 2, "tag": ["A1", "A2", "A3", "B1", "B2"],
                      "default": [False, True, False, True, False], "n": [5, 5, 5, 5, 5],
                      "mean": [82.0, 82.2, 70.0, 82.2, 80.3], "sd": [0.2, 0.25, 3.7, 0.25, 0.3]})
    # A3 is 12.2 pp below its default, B2 only 1.9 pp: within BROKEN_PP = 2
    assert list(results.broken_settings(t)) == [False, False, True, False, False]
    fig = book.pareto_figure(t, base_sd=0.22, base_mean=82.1)
    a, b = fig.axes
    assert a.get_title() == "alpha\nnot shown: A3 (70.0%, SD 3.70)" and b.get_title() == "beta"
    assert sorted(x.get_text() for x in a.texts) == ["A1", "A2"]
    xs = np.concatenate([c.get_offsets()[:, 0] for c in a.collections])
    assert 3.7 not in xs and 0.22 in xs  # the Base cross is drawn, the broken point is not


def test_tables_after_setup_show_every_cell_in_full():
    """The intro's headline table (long verdicts, per-network intervals) as the book renders it."""
    with pd.option_context("display.max_colwidth", 50):  # pandas' default, restored afterwards
        book.setup()
        long = "not supported on VGG-16 (3× inconclusive at this n, one more word at the end)"
        html = pd.DataFrame({"verdict": [long]}, index=["claim " * 12])._repr_html_()
    assert long in html and ("claim " * 12).strip() in html
    assert not re.search(r"\.\.\.</t[dh]>", html)


def test_stored_and_missing_shows_each_studys_runs_and_the_command_for_them(tmp_path):
    footer = book.stored_and_missing({"architectures": ("model", "loss"), "replication": ("loss",)}, "smoke",
                                     root=tmp_path)  # an empty store: every run is missing
    assert footer.command == "python -m vml run architectures replication --profile smoke"
    arch = footer.tables["architectures"]
    grid = studies.get_study("architectures").grid("smoke")
    assert arch["runs"].sum() == len(grid) and (arch["stored"] == 0).all()
    assert set(zip(arch["model"], arch["loss"])) == {(i.spec.model, i.spec.loss) for i in grid}
    parts = footer.parts()  # a line and the table per study, then the command
    assert [type(p).__name__ for p in parts] == ["Markdown", "DataFrame"] * 2 + ["Markdown"]
    assert "`replication` study" in parts[2].data and parts[3] is footer.tables["replication"]
    assert parts[-1].data.endswith(f"```bash\n{footer.command}\n```")
