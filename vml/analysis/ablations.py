"""Fig. 3 and appendix B.2 (chapter "Ablations"): the Stable-Loss knobs, one at a time; the VPL term."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from .. import paper, stats
from ..studies import ABLATIONS, VPL_WEIGHT, ablation_tag
from .common import NO_RUNS, arm_values, compare_arms, load, pool, profile_or_default


DEFAULT_TAGS = ("SLA005", "SLB020", "SLD020", "SLW200", "SW010")
# the setting each appendix-B.2 finding says is best (beta: "larger is better", the largest value)
PREFERRED = {"alpha": 0.05, "beta": 0.50, "delta": 0.20, "warmup_steps": 200, "lambda_base": 0.10}


def ablation_table(profile: str | None = None, root: Any = None) -> pd.DataFrame:
    """Per (knob, setting): n, mean and SD of accuracy (%) with the SD's chi-square interval, whether
    the point is on its knob's Pareto front, and the Var. Red. against the Base reference (the pool's
    Base seeds 1-5) with its F interval. Settings without runs are listed with n = 0."""
    profile = profile_or_default(profile)
    df = load("ablations", profile, root)
    ref = arm_values(pool(profile, root))["base"][:5]
    rows = []
    for prefix, (knob, values) in ABLATIONS.items():
        for value in values:
            tag = ablation_tag(prefix, value)
            a = 100 * df.loc[df["tag"] == tag].sort_values("seed")["test_acc"].to_numpy(dtype=float) \
                if len(df) and "tag" in df else np.zeros(0)
            r = {"knob": knob, "tag": tag, "value": value, "default": tag in DEFAULT_TAGS, "n": int(a.size),
                 "mean": a.mean() if a.size else np.nan, "sd": a.std(ddof=1) if a.size > 1 else np.nan,
                 "sd_low": np.nan, "sd_high": np.nan}
            if a.size > 1:
                r["sd_low"], r["sd_high"] = stats.sd_ci(a)
            sd_ref = ref.std(ddof=1) if ref.size > 1 else np.nan
            r["var_red"] = 100 * (1 - r["sd"] / sd_ref) if a.size > 1 and ref.size > 1 else np.nan
            r["var_red_low"], r["var_red_high"] = stats.var_red_interval(sd_ref, ref.size, r["sd"], a.size)
            rows.append(r)
    t = pd.DataFrame(rows)
    t["front"] = False
    for knob, g in t.groupby("knob", sort=False):
        ok = g[g["n"] > 1]
        if len(ok):
            t.loc[ok.index, "front"] = stats.pareto_front(ok["sd"].to_numpy(), ok["mean"].to_numpy())
    return t


BROKEN_PP = 2.0  # a setting whose mean is this far below its knob's default "breaks training"


def broken_settings(t: pd.DataFrame) -> pd.Series:
    """Per row of an `ablation_table`: True where the setting breaks training, i.e. its mean is more
    than `BROKEN_PP` below its knob's default setting (False where either mean is missing)."""
    default = t[t["default"]].drop_duplicates("knob").set_index("knob")["mean"]
    return pd.Series(t["mean"].to_numpy() < t["knob"].map(default).to_numpy() - BROKEN_PP, index=t.index)


def ablation_verdicts(t: pd.DataFrame) -> pd.DataFrame:
    """Per knob, the appendix-B.2 finding checked against `ablation_table`: Bartlett's test for equal
    variances across the knob's settings (with at least 2 settings of 2+ runs each); "inconclusive at
    this n" unless p < 0.05; then "supported" if the paper's preferred setting has the lowest SD,
    else "not supported". A sensitivity column repeats the test without the settings that break
    training (mean more than `BROKEN_PP` below the knob's default); the verdict does not use it."""
    findings = paper.ablation_findings().set_index("knob")
    is_broken = broken_settings(t)
    rows = []
    for knob, g in t.groupby("knob", sort=False):
        ok = g[g["n"] > 1]
        r = {"knob": knob, "tag": findings.loc[knob, "tag"], "finding": findings.loc[knob, "finding"],
             "settings with runs": f"{len(ok)}/{len(g)}", "lowest SD": "–", "bartlett_p": np.nan,
             "broken": "", "bartlett_p_working": np.nan}
        if len(ok) >= 2:
            r["lowest SD"] = ok.loc[ok["sd"].idxmin(), "tag"]
            r["bartlett_p"] = stats.bartlett_summary(ok["n"], ok["sd"])[1]
            if r["bartlett_p"] >= 0.05:
                r["verdict"] = stats.INCONCLUSIVE
            else:
                best = ok.loc[ok["sd"].idxmin(), "value"]
                r["verdict"] = stats.SUPPORTED if math.isclose(best, PREFERRED[knob]) else stats.NOT_SUPPORTED
            broken = is_broken.loc[ok.index]
            r["broken"] = ", ".join(ok.loc[broken, "tag"])
            working = ok[~broken]
            if len(working) >= 2:
                r["bartlett_p_working"] = stats.bartlett_summary(working["n"], working["sd"])[1]
        else:
            r["verdict"] = NO_RUNS if g["n"].sum() == 0 else "too few settings with 2+ runs (need 2)"
        rows.append(r)
    cols = ["knob", "tag", "finding", "settings with runs", "lowest SD", "bartlett_p", "verdict",
            "broken", "bartlett_p_working"]
    return pd.DataFrame(rows, columns=cols)


def vpl_table(profile: str | None = None, root: Any = None, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """The `vpl` study: VML without (weight 0) and with the reconstructed VPL term, as one
    comparison row ('base' = VPL off, 'vml' = VPL on); the paper reports no number, so no claim."""
    df = load("vpl", profile, root)
    w = df["vpl_weight"] if "vpl_weight" in df else pd.Series(dtype=float)
    off = df.loc[w == 0.0, "test_acc"].to_numpy(dtype=float) * 100 if len(df) else np.zeros(0)
    on = df.loc[w == VPL_WEIGHT, "test_acc"].to_numpy(dtype=float) * 100 if len(df) else np.zeros(0)
    row = compare_arms(off, on, None, n_boot=n_boot, seed=seed)
    out = pd.DataFrame([{"comparison": f"VML + VPL (weight {VPL_WEIGHT}) vs VML", **row}])
    return out
