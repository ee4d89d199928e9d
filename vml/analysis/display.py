"""The reader's views: tables of numbers turned into 'mean ± SD' and '[low, high]' strings."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd



def _pm(m: float, s: float, digits: int = 2, sd_digits: int = 3) -> str:
    if not np.isfinite(m):
        return "–"
    # no-break spaces: a cell never wraps inside "mean ± SD" on the page
    return f"{m:.{digits}f}\u00a0±\u00a0{s:.{sd_digits}f}" if np.isfinite(s) else f"{m:.{digits}f}"


def _ci(lo: float, hi: float, digits: int = 0) -> str:
    if not (np.isfinite(lo) or np.isfinite(hi)):
        return "–"
    f = (lambda x: "−∞" if x == -np.inf else ("+∞" if x == np.inf else f"{x:.{digits}f}"))
    return f"[{f(lo)},\u00a0{f(hi)}]"


PARTS = ("all", "accuracy", "spread", "verdict")


def _part(out: pd.DataFrame, part: str, accuracy: Sequence[str], shared: Sequence[str] = (),
          spread: Sequence[str] = ()) -> pd.DataFrame:
    """Columns of a reader's table: all, the accuracy part (`accuracy`), the spread part (`spread`) or
    the verdict part (the rest); `shared` columns appear in every part. Parts fit a page where the
    whole does not."""
    if part not in PARTS:
        raise ValueError(f"part={part!r} is not allowed; use one of {PARTS}")
    if part == "all":
        return out
    own = {"accuracy": accuracy, "spread": spread}.get(part)
    if own is None:  # verdict: what no other part shows
        return out[[c for c in out.columns if (c not in accuracy and c not in spread) or c in shared]]
    return out[[c for c in out.columns if c in own or c in shared]]


def display_table(t: pd.DataFrame, labels: Sequence[str], part: str = "all") -> pd.DataFrame:
    """The reader's view of a `comparison_table`: paper vs ours as 'mean ± SD' strings, the Var. Red.
    with its 95% F interval, the mean difference and the verdict (label columns first); with the
    arms' noise floors (Tables 1-2) the 'spread' part holds them and the bootstrap interval; `part`
    'accuracy', 'spread' or 'verdict' gives one part of the columns."""
    out = pd.DataFrame({c: t[c] for c in labels})
    out["n (B/V)"] = [f"{a}/{b}" for a, b in zip(t["n_base"], t["n_vml"])]
    out["paper Base"] = [_pm(m, s) for m, s in zip(t["paper_base_acc"], t["paper_base_sd"])]
    out["ours Base"] = [_pm(m, s) for m, s in zip(t["base_mean"], t["base_sd"])]
    out["paper VML"] = [_pm(m, s) for m, s in zip(t["paper_vml_acc"], t["paper_vml_sd"])]
    out["ours VML"] = [_pm(m, s) for m, s in zip(t["vml_mean"], t["vml_sd"])]
    if "base_floor" in t:  # chapter "How many seeds does a claim need?": the observed SD is the noise floor plus the seeds' own spread
        for arm, label in (("base", "Base"), ("vml", "VML")):
            out[f"{label} floor / dist. SD"] = [f"{a:.2f}\u00a0/\u00a0{b:.2f}" if np.isfinite(a) else "–"
                                                for a, b in zip(t[f"{arm}_floor"], t[f"{arm}_dist_sd"])]
    out["paper Var.Red. %"] = [f"{x:.1f}" if np.isfinite(x) else "–" for x in t["paper_var_red"]]
    out["ours Var.Red. %"] = [f"{x:.1f}" if np.isfinite(x) else "–" for x in t["var_red"]]
    out["95% CI (F)"] = [_ci(a, b) for a, b in zip(t["var_red_low"], t["var_red_high"])]
    if "var_red_boot_low" in t:
        out["95% CI (bootstrap)"] = [_ci(a, b) for a, b in zip(t["var_red_boot_low"], t["var_red_boot_high"])]
    out["Δ mean pp [95% CI]"] = [
        f"{d:+.2f}\u00a0{_ci(a, b, 2)}" if np.isfinite(d) else "–"
        for d, a, b in zip(t["mean_diff"], t["mean_diff_low"], t["mean_diff_high"])]
    robust = t["robust_verdict"] if "robust_verdict" in t else t["verdict"]
    out["verdict"] = [v if r == v or not isinstance(r, str) else f"{v} (bootstrap: {r})"
                      for v, r in zip(t["verdict"], robust)]
    out = out.set_index(list(labels))
    spread = ["Base floor / dist. SD", "VML floor / dist. SD", "95% CI (bootstrap)"]
    return _part(out, part, ["paper Base", "ours Base", "paper VML", "ours VML"], shared=["n (B/V)"],
                 spread=spread if "base_floor" in t else ())


def ablation_display(t: pd.DataFrame) -> pd.DataFrame:
    """The reader's view of an `ablation_table`: one row per (knob, setting), the SD and the Var. Red.
    each with its 95% interval in one cell, so the table fits a page."""
    out = pd.DataFrame({"knob": t["knob"], "tag": t["tag"]})
    out["default"] = np.where(t["default"], "★", "")
    out["n"] = t["n"]
    out["mean %"] = [f"{m:.2f}" if np.isfinite(m) else "–" for m in t["mean"]]
    out["SD pp [95% CI]"] = [f"{s:.3f}\u00a0{_ci(a, b, 2)}" if np.isfinite(s) else "–"
                             for s, a, b in zip(t["sd"], t["sd_low"], t["sd_high"])]
    out["Pareto front"] = np.where(t["front"], "yes", "")
    out["Var.Red. % [95% CI]"] = [f"{v:.0f}\u00a0{_ci(a, b)}" if np.isfinite(v) else "–"
                                  for v, a, b in zip(t["var_red"], t["var_red_low"], t["var_red_high"])]
    return out.set_index(["knob", "tag"])


def _fmt(x: float, digits: int = 2) -> str:
    return f"{x:.{digits}f}" if np.isfinite(x) else "–"


def display_seed_groups(t: pd.DataFrame, part: str = "all") -> pd.DataFrame:
    """The reader's view of `seed_groups_table` (`part` as in `display_table`)."""
    out = display_table(t, ["group_size"]).rename(columns={
        "ours Base": "ours Base (seeds 1..k)", "ours VML": "ours VML (seeds 1..k)",
        "ours Var.Red. %": "ours Var.Red. % (seeds 1..k)"})
    out.index.name = "seeds k"
    out = out.drop(columns=["Δ mean pp [95% CI]"])
    out.insert(len(out.columns) - 1, "random groups: Var.Red. %", [_fmt(x, 1) for x in t["avg_var_red"]])
    out.insert(len(out.columns) - 1, "central 95% of draws",
               [_ci(a, b) for a, b in zip(t["draws_var_red_low"], t["draws_var_red_high"])])
    return _part(out, part, ["paper Base", "ours Base (seeds 1..k)", "paper VML", "ours VML (seeds 1..k)"],
                 shared=["n (B/V)"])


def display_remedies(t: pd.DataFrame, part: str = "all") -> pd.DataFrame:
    """The reader's view of `remedies_table` (`part` as in `display_table`)."""
    out = pd.DataFrame({
        "method": t["method"], "units": t["units"], "mean acc %": [_fmt(x) for x in t["mean_acc"]],
        "SD pp": [_fmt(x, 3) for x in t["sd"]], "SD resampled pp": [_fmt(x, 3) for x in t["resampled_sd"]],
        "training": t["training_cost"], "inference": t["inference_cost"],
        "paper Var.Red. %": [_fmt(x, 1) for x in t["paper_var_red"]],
        "ours Var.Red. %": [_fmt(x, 1) for x in t["var_red"]],
        "95% CI": [_ci(a, b) for a, b in zip(t["low"], t["high"])],
        "verdict": t["verdict"]}).set_index("method")
    return _part(out, part, ["mean acc %", "SD pp", "SD resampled pp", "training", "inference"], shared=["units"])


# raw column names of the analysis tables, in words (any other snake_case name: underscores as spaces)
COLUMN_NAMES = {
    "n_base": "runs Base", "n_vml": "runs VML", "base_mean": "mean Base (%)", "vml_mean": "mean VML (%)",
    "base_sd": "SD Base (pp)", "vml_sd": "SD VML (pp)", "mean_diff": "mean VML − Base (pp)",
    "f_p": "F-test p", "levene_p": "Levene p", "welch_p": "Welch p", "sd_ratio": "SD ratio VML/Base",
    "p_vml_better": "P(VML > Base)", "var_red": "Var. Red. (%)", "median_s": "median (s)",
    "q25_s": "25th pct. (s)", "q75_s": "75th pct. (s)", "ratio_to_base": "× Base", "ours_pp": "ours (pp)",
    "bartlett_p": "Bartlett p", "bartlett_p_working": "Bartlett p (settings that train)",
    "observed_sd": "observed SD (pp)", "independent_sd": "test-set floor (pp)",
    "distribution_sd": "distribution-level SD (pp)", "distribution_sd_low": "distribution-level SD, low",
    "distribution_sd_high": "distribution-level SD, high", "sd_low": "SD, low", "sd_high": "SD, high",
    "grad_factor": "dL/dℓ", "sigma_ref": "σ_ref", "defined_lags": "defined lags", "lambda_k": "λ_k",
    "mean_r": "mean r", "n_pairs": "pairs", "r_lag1": "r at lag 1", "r_tau_star": "r at τ*", "tau_star": "τ*",
}


def _figures(x: object, digits: int) -> object:
    """A number to `digits` significant figures, positional (1620, not 1.62e+03); anything else as it is."""
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, float, np.integer, np.floating)):
        return x
    if not np.isfinite(x):
        return "–" if np.isnan(x) else x
    if float(x).is_integer():
        return f"{int(x):d}"
    return np.format_float_positional(float(x), precision=digits, unique=False, fractional=False, trim="-")


def for_readers(df: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """A table for the page: column (and index) names in words (`COLUMN_NAMES`), numbers to `digits`
    significant figures, NaN as a dash."""
    name = lambda c: COLUMN_NAMES.get(c, c.replace("_", " ") if isinstance(c, str) else c)  # noqa: E731
    out = df.rename(columns=name).map(lambda x: _figures(x, digits))
    out.index = out.index.set_names([name(n) if n is not None else None for n in out.index.names])
    return out
