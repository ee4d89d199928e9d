"""Small helpers shared by the book's notebooks: one setup call and the store's progress per study."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from . import plots, results, runner, store, studies
from .spec import BOOK_PROFILE

__all__ = ["setup", "BOOK_PROFILE", "progress", "fill", "glue", "stored_and_missing", "StoredAndMissing",
           "answer", "glue_answer"]


def setup(seed: int = 0) -> None:
    """Make a notebook deterministic and its output tidy: seeded torch and numpy, figures as PNG,
    pandas tables without index noise. Call once, in the first cell. (`vml.train` switches on torch's
    deterministic algorithms itself; doing it here imported torch._inductor, 2.7 s a page.)"""
    torch.manual_seed(seed)
    np.random.seed(seed)
    pd.set_option("display.precision", 4)
    pd.set_option("display.max_columns", 30)
    pd.set_option("display.max_colwidth", None)  # every cell in full: a table never cuts text with "..."
    pd.set_option("display.width", 120)
    matplotlib.rcParams["savefig.dpi"] = 110
    try:  # inside IPython: PNG figures, no 'Figure' text reprs
        from IPython import get_ipython  # optional: only inside a notebook kernel

        ip = get_ipython()
        if ip is not None:
            from matplotlib_inline.backend_inline import set_matplotlib_formats  # optional: IPython's backend

            set_matplotlib_formats("png")
    except ImportError:  # plain Python: nothing to configure
        pass


def glue(name: str, value: Any) -> None:
    """Make `value` available to the page's prose as {glue:text}`name:format` (not shown where glued).
    Numbers are glued as Python floats, so that any format spec applies to them."""
    from myst_nb import glue as _glue  # the book's builder: only notebooks call this

    _glue(name, float(value) if isinstance(value, (int, float, np.number)) else value, display=False)


def answer(profile: str | None = None, root: Any = None) -> tuple[str, Figure]:
    """The first screen's answer: Markdown with the decisive test's protocol in one line and its result in
    the book's verdict vocabulary, and the forest plot of every complete test (`plots.plot_forest`)."""
    from . import paper
    from .analysis import decisive, headline, second

    profile = profile or BOOK_PROFILE
    primary, spreads = decisive.primary_table(profile, root), decisive.spread_table(profile, root)
    paired = second.reanalysis_table(profile, root)
    md = (f"**Protocol.** {headline.protocol_line(primary, profile)}.\n\n"
          f"**Result.** {headline.answer_text(primary, spreads, paired)}")
    fig = plots.plot_forest(headline.forest_table(primary, spreads, profile, root),
                            (paper.ABSTRACT["var_red_low"], paper.ABSTRACT["var_red_high"]), decisive.CLAIMED)
    return md, fig


def doses_answer(profile: str | None = None, root: Any = None) -> str:
    """The answer box's last paragraphs, below its figure: what VML did at the second test's stronger doses
    (`analysis.second.dose_answer`), once both dose arms are complete, and the TTA lead's fate
    (`analysis.second.lead_answer`), once the TTA arm is complete; "" where neither is."""
    from .analysis import second

    profile = profile or BOOK_PROFILE
    primary = second.primary_table(profile, root)
    doses = second.dose_answer(primary, second.dose_table(profile, root))
    lead = second.lead_answer(primary, second.tta_declared_power(profile, root))
    return "\n\n".join(p for p in (f"**Stronger doses.** {doses}" if doses else "",
                                    f"**The TTA lead.** {lead}" if lead else "") if p)


def glue_answer(profile: str | None = None, root: Any = None) -> None:
    """Glue `answer`'s Markdown as `answer_md` ({glue:md}), its figure as `forest_fig` ({glue:figure}) and
    `doses_answer` as `doses_md` ({glue:md}, below the figure, so that the figure stays on the first screen)."""
    from IPython.display import Markdown  # optional: only inside a notebook kernel

    md, fig = answer(profile, root)
    glue("answer_md", Markdown(md))
    glue("forest_fig", fig)
    glue("doses_md", Markdown(doses_answer(profile, root)))


def progress(study: str, profile: str | None = None, root: Any = None) -> pd.DataFrame:
    """How many runs of `study` the store holds for `profile`, per loss arm (cheap: file checks only)."""
    profile = profile or BOOK_PROFILE
    rows: dict[str, dict[str, int]] = {}
    for item in studies.get_study(study).grid(profile):
        r = rows.setdefault(item.spec.loss, {"runs": 0, "stored": 0})
        r["runs"] += 1
        r["stored"] += int(store.exists(item.spec, root))
    df = pd.DataFrame([{"study": study, "profile": profile, "loss": k, **v} for k, v in rows.items()])
    return df


def fill(*names: str, profile: str | None = None, root: Any = None) -> int:
    """Train the missing runs of the studies `names` when $VML_BOOK_TRAIN is 1, else do nothing; returns the runs trained.

    Off by default: a build then only reads the committed store (minutes), where filling an empty
    store means hours of training (`VML_BOOK_TRAIN=1 make book`, resumable like `python -m vml run`).
    """
    flag = os.environ.get("VML_BOOK_TRAIN", "0")
    if flag not in ("0", "1"):
        raise ValueError(f"VML_BOOK_TRAIN={flag!r} is not allowed; use 1 (train missing runs) or 0 (read only)")
    if flag == "0":
        return 0
    return runner.run(list(names), profile or BOOK_PROFILE, root=root)


@dataclass
class StoredAndMissing:
    """A chapter's closing cell: per study, the runs the store holds and the missing seeds, then the
    command that trains the missing runs (shown as such in a notebook)."""

    tables: dict[str, pd.DataFrame]  # study -> `results.missing_runs`
    command: str  # `python -m vml run <studies> --profile <profile>`

    def parts(self) -> list[Any]:
        """What the cell shows, in order: per study a line and its table, then the command."""
        from IPython.display import Markdown  # optional: only inside a notebook kernel

        out: list[Any] = []
        for study, table in self.tables.items():
            out += [Markdown(f"Runs of the `{study}` study in the committed store, per setting (a run shared "
                             "with another study counts here too):"), table]
        return out + [Markdown("The missing runs can be trained with the command below; it resumes where it "
                               "stopped and never trains a stored run again. Afterwards, re-execute the notebooks "
                               "(`make notebooks`) so that the pages and their checked outputs show the new "
                               f"runs.\n\n```bash\n{self.command}\n```")]

    def _ipython_display_(self) -> None:
        from IPython.display import display  # optional: only inside a notebook kernel

        display(*self.parts())


def stored_and_missing(by_study: dict[str, tuple[str, ...]], profile: str | None = None,
                       root: Any = None) -> StoredAndMissing:
    """What is stored, what is missing: `results.missing_runs` of each study in `by_study`, grouped by
    the fields given for it, and the `python -m vml run` command of those studies in `profile`."""
    profile = profile or BOOK_PROFILE
    tables = {study: results.missing_runs(study, profile, root, by=by) for study, by in by_study.items()}
    return StoredAndMissing(tables, f"python -m vml run {' '.join(by_study)} --profile {profile}")


# ----------------------------------------------------------------------------- results chapters (4-10)

def epoch_figure(curves: dict[str, Any], losses: dict[str, Any]) -> Any:
    """Chapter "Reactivity: does the controller lead the test loss?": epoch-level lambda_k (left) and end-of-epoch test loss (right), mean ± SD over seeds."""
    fig = Figure(figsize=(9.6, 3.4), layout="constrained")
    left, right = fig.subplots(1, 2)
    plots.plot_learning_curves({k: v for k, v in curves.items() if len(v)}, ylabel=r"$\lambda_k$", ax=left)
    plots.plot_learning_curves({k: v for k, v in losses.items() if len(v)}, ylabel="Test loss", ax=right)
    left.set_title(r"Controller, epoch mean $\lambda_k$")
    right.set_title("Test loss at the end of each epoch")
    return fig


def iteration_ccf_figure(tables: dict[str, pd.DataFrame]) -> Any:
    """Chapter "Reactivity: does the controller lead the test loss?" (our extension): mean per-iteration CCF over runs with its 95% interval, per arm."""
    fig = Figure(figsize=(5.6, 3.4), layout="constrained")
    ax = fig.subplots()
    for i, (label, t) in enumerate(tables.items()):
        if not t["runs"].iloc[0]:
            continue
        off = (i - (len(tables) - 1) / 2) * 0.25
        c = plots.color_for(label, i)
        ax.errorbar(t["lag"] + off, t["mean_r"], yerr=[t["mean_r"] - t["low"], t["high"] - t["mean_r"]],
                    fmt="o", ms=4, capsize=2, color=c, label=f"{label} ({int(t['runs'].iloc[0])} runs)")
        ax.axhspan(-t["noise_band"].iloc[0], t["noise_band"].iloc[0], color="grey", alpha=0.12, lw=0)
    ax.axhline(0, color="black", lw=0.8)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(r"lag $\tau$ (iterations; $\tau>0$: $\Delta\lambda_t$ leads)")
    ax.set_ylabel(r"mean $r_\tau$ over runs")
    ax.set_title(r"Per-iteration CCF of $\Delta\lambda_t$ and $\Delta\ell^{train}_{t+\tau}$")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")
    return fig


def pareto_figure(table: pd.DataFrame, base_sd: float | None = None, base_mean: float | None = None) -> Any:
    """Chapter "Ablations": `plots.plot_pareto` per knob (settings with 2+ runs), the Base reference point
    (the pool's Base seeds 1-5) drawn as a grey cross in every panel. Settings that break training
    (`results.broken_settings`) would squash their panel into one corner: they are left out and named
    in the panel's title instead."""
    broken = results.broken_settings(table)
    ok = table[(table["n"] > 1) & ~broken]
    defaults = list(ok.loc[ok["default"], "tag"])
    fig = plots.plot_pareto(ok, knob="knob", tag="tag", sd="sd", mean="mean", defaults=defaults,
                            label="value" if "value" in ok else None)
    for ax, knob in zip(fig.axes, dict.fromkeys(ok["knob"])):  # plot_pareto's panel order
        off = table[broken & (table["knob"] == knob)]
        if len(off):
            names = ", ".join(f"{r.tag} ({r.mean:.1f}%, SD {r.sd:.2f})" for r in off.itertuples())
            ax.set_title(f"{knob}\nnot shown: {names}", fontsize="small")
    if base_sd is not None and base_mean is not None and pd.notna(base_sd):
        for ax in fig.axes:
            ax.scatter([base_sd], [base_mean], marker="X", s=60, color="grey", label="Base (seeds 1-5)",
                       zorder=4)
        fig.axes[0].legend(fontsize="x-small", loc="best")
    return fig
