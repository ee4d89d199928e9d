"""Fig. 1 (chapter "Reactivity: does the controller lead the test loss?"): does the controller lead the test loss? Epoch and per-iteration CCFs."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as _st

from .. import paper, stats
from .common import NO_RUNS, _quiet, stored_runs
from .display import _ci, _fmt


def epoch_series(loss: str = "vml", profile: str | None = None, root: Any = None, study: str = "seed-groups"
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Epoch-level lambda_k (the epoch's mean lambda_t) and end-of-epoch test loss of the `loss` runs
    of `study` (the 20-seed pool by default; `reactivity-long` for the long protocol):
    (seeds, lam (runs, epochs), test_loss (runs, epochs)), in seed order."""
    seeds, lam, tl = [], [], []
    for item, rec in stored_runs(study, profile, root, loss=loss, arrays=False):
        seeds.append(item.spec.seed)
        lam.append([e["lambda_mean"] for e in rec["epochs"]])
        tl.append([e["test_loss"] for e in rec["epochs"]])
    order = np.argsort(seeds)
    as2d = (lambda x: np.asarray(x, dtype=float)[order] if x else np.zeros((0, 0)))
    return np.asarray(seeds, dtype=int)[order], as2d(lam), as2d(tl)


def reactivity_summary(loss: str = "vml", profile: str | None = None, root: Any = None,
                       max_lag: int = 10, study: str = "seed-groups") -> tuple[stats.Reactivity | None, str]:
    """Fig. 1 on the seed-averaged epoch series (the paper's analysis), or None and the reason."""
    seeds, lam, tl = epoch_series(loss, profile, root, study)
    if seeds.size == 0:
        return None, NO_RUNS
    try:
        with _quiet():
            res = stats.reactivity(lam, tl, max_lag=max_lag)
        return res, f"{seeds.size} runs x {lam.shape[1]} epochs"
    except ValueError as e:
        return None, str(e)


def reactivity_per_seed_table(loss: str = "vml", profile: str | None = None, root: Any = None,
                              max_lag: int = 10, study: str = "seed-groups") -> pd.DataFrame:
    """Per seed: the CCF peak lag and r, r at lag +1, and the lead-1 scatter's slope, p and n."""
    seeds, lam, tl = epoch_series(loss, profile, root, study)
    rows = []
    for s, a, b in zip(seeds, lam, tl):
        try:
            with _quiet():
                res = stats.reactivity(a, b, max_lag=max_lag)
        except ValueError:
            continue
        r1 = float(res.r[list(res.lags).index(1)]) if 1 in res.lags else np.nan
        rows.append({"seed": int(s), "tau_star": res.tau_star, "r_tau_star": res.r_star, "r_lag1": r1,
                     "slope": res.slope, "p": res.p, "n_pairs": res.n,
                     "defined_lags": int(np.isfinite(res.r).sum())})
    return pd.DataFrame(rows, columns=["seed", "tau_star", "r_tau_star", "r_lag1", "slope", "p",
                                       "n_pairs", "defined_lags"])


def iteration_ccf(loss: str = "vml", profile: str | None = None, root: Any = None, max_lag: int = 10,
                  skip: int | None = None, study: str = "seed-groups") -> pd.DataFrame:
    """Our extension of Fig. 1 to iterations: per run, r_tau = corr(dlambda_t, dloss_{t+tau}) of the
    per-iteration lambda_t and training (base) loss, tau in [-max_lag, max_lag] iterations, over the
    iterations after the warm-up (lambda_t is constant before sigma_ref latches; `skip` defaults to
    the run's warmup_steps). Returns per lag: runs, mean r over runs with a t interval, and the
    approximate white-noise band 1.96/sqrt(T) for one run's CCF."""
    per_run = []
    t_len = []
    for item, rec in stored_runs(study, profile, root, loss=loss):
        lam, lo = rec["iters"]["lambda"].astype(float), rec["iters"]["loss"].astype(float)
        w = item.spec.vml.warmup_steps if skip is None else skip
        d_lam, d_loss = np.diff(lam[w:]), np.diff(lo[w:])
        if d_lam.size < 3 or d_lam.std() == 0:
            continue
        with _quiet():
            lags, r = stats.ccf(d_lam, d_loss, max_lag)
        per_run.append(r)
        t_len.append(d_lam.size)
    lags = np.arange(-max_lag, max_lag + 1)
    if not per_run:
        return pd.DataFrame({"lag": lags, "runs": 0, "mean_r": np.nan, "low": np.nan, "high": np.nan,
                             "noise_band": np.nan})
    r = np.vstack(per_run)
    n = r.shape[0]
    m = r.mean(axis=0)
    with _quiet():  # one run: no interval (NaN)
        ci = _st.ttest_1samp(r, 0.0, axis=0).confidence_interval(0.95)
    return pd.DataFrame({"lag": lags, "runs": n, "mean_r": m, "low": np.maximum(ci.low, -1.0),
                         "high": np.minimum(ci.high, 1.0),
                         "noise_band": 1.96 / math.sqrt(float(np.mean(t_len)))})


def _mean_r_ci(a: np.ndarray) -> tuple[float, float, float]:
    """Mean of the finite correlations with its t interval, clipped to [-1, 1]."""
    a = a[np.isfinite(a)]
    if a.size < 2:
        return (float(a.mean()) if a.size else np.nan), np.nan, np.nan
    lo, hi = stats.mean_ci(a)
    return float(a.mean()), max(-1.0, lo), min(1.0, hi)


def reactivity_table(res: stats.Reactivity | None, per_seed: pd.DataFrame,
                     iters: pd.DataFrame, note: str = NO_RUNS) -> pd.DataFrame:
    """Fig. 1's numbers, paper beside ours: the seed-averaged scatter r (Fisher interval) and CCF
    peak, the per-seed r at lag +1 (t interval over seeds), the share of seeds peaking at +1
    (Clopper-Pearson), and our per-iteration extension (mean r over runs at lags 0 and +1)."""
    P = paper.REACTIVITY
    rows = []

    def add(q: str, pap: Any, ours: float, lo: float, hi: float, claim: float | None, digits: int = 3,
            note: str = "") -> None:
        if claim is None:
            v = note or "–"
        elif np.isfinite(lo) and np.isfinite(hi):
            v = stats.verdict(lo, hi, claim)
        else:
            v = note or "inconclusive at this n (no interval: too few pairs)"
        rows.append({"quantity": q, "paper": pap if isinstance(pap, str) else f"{pap:g}",
                     "ours": _fmt(ours, digits), "95% CI": _ci(lo, hi, digits), "verdict": v})

    if res is None:
        add("r of the lead-1 scatter (seed-averaged)", P["r"], np.nan, np.nan, np.nan, P["r"],
            note=NO_RUNS if note == NO_RUNS else "cannot be computed: too few epochs")
    else:
        lo, hi = stats.fisher_ci(res.slope, res.n)
        add(f"r of the lead-1 scatter (seed-averaged; n = {res.n} pairs)", P["r"], res.slope, lo, hi, P["r"])
        add("two-sided p of that slope", P["p"], res.p, np.nan, np.nan, None, note="–")
        rows[-1]["ours"] = f"{res.p:.2g}"
        add(f"CCF peak lag τ* (seed-averaged; {int(np.isfinite(res.r).sum())} of 21 lags defined)",
            P["tau_star"], res.tau_star, np.nan, np.nan, None, digits=0,
            note="matches" if res.tau_star == P["tau_star"] else "differs")
        add("r at τ* (seed-averaged)", P["r_tau_star"], res.r_star, np.nan, np.nan, None, note="–")
    r1 = per_seed["r_lag1"].to_numpy(dtype=float) if len(per_seed) else np.zeros(0)
    m, lo, hi = _mean_r_ci(r1)
    add(f"mean per-seed r at τ = +1 ({int(np.isfinite(r1).sum())} seeds)", P["r_tau_star"], m, lo, hi,
        P["r_tau_star"], note="" if r1.size else (NO_RUNS if note == NO_RUNS else
                                                   "cannot be computed: too few epochs"))
    if len(per_seed):
        k, n = int((per_seed["tau_star"] == 1).sum()), len(per_seed)
        ci = _st.binomtest(k, n).proportion_ci(0.95, method="exact")
        chance = 1 / float(per_seed["defined_lags"].median())
        share_verdict = (stats.SUPPORTED if ci.low > chance else
                         stats.NOT_SUPPORTED if ci.high < chance else stats.INCONCLUSIVE)
        rows.append({"quantity": f"share of seeds whose CCF peaks at τ = +1 (chance {chance:.2f})",
                     "paper": "(per seed: unchanged)", "ours": f"{k}/{n}",
                     "95% CI": _ci(ci.low, ci.high, 2), "verdict": share_verdict})
    for lag in (0, 1):
        row = iters[iters["lag"] == lag].iloc[0]
        rows.append({"quantity": f"per-iteration r at τ = {lag:+d} step (ours only; {int(row['runs'])} runs)",
                     "paper": "–", "ours": _fmt(row["mean_r"], 3), "95% CI": _ci(row["low"], row["high"], 3),
                     "verdict": "(extension: no claim)"})
    return pd.DataFrame(rows)


def epoch_table(profile: str | None = None, root: Any = None) -> pd.DataFrame:
    """Per arm and epoch: runs, mean and SD over seeds of lambda_k and of the test loss."""
    rows = []
    for loss, label in (("vml", "VML"), ("base", "Base (controller observes)")):
        seeds, lam, tl = epoch_series(loss, profile, root)
        for k in range(lam.shape[1] if seeds.size else 0):
            rows.append({"arm": label, "epoch": k + 1, "runs": int(seeds.size),
                         "lambda_k mean": lam[:, k].mean(),
                         "lambda_k SD": lam[:, k].std(ddof=1) if seeds.size > 1 else np.nan,
                         "test loss mean": tl[:, k].mean(),
                         "test loss SD": tl[:, k].std(ddof=1) if seeds.size > 1 else np.nan})
    return pd.DataFrame(rows, columns=["arm", "epoch", "runs", "lambda_k mean", "lambda_k SD",
                                       "test loss mean", "test loss SD"])


def reactivity_arms_table(profile: str | None = None, root: Any = None, study: str = "seed-groups") -> pd.DataFrame:
    """Per arm (VML, and Base as the control whose controller only observes): runs with a defined
    per-seed CCF, mean r at lag +1 with its t interval over seeds, and the share peaking at +1."""
    rows = []
    for loss, label in (("vml", "VML"), ("base", "Base (control)")):
        t = reactivity_per_seed_table(loss, profile, root, study=study)
        m, lo, hi = _mean_r_ci(t["r_lag1"].to_numpy(dtype=float)) if len(t) else (np.nan, np.nan, np.nan)
        rows.append({"arm": label, "runs": len(t), "mean r at +1": m, "low": lo, "high": hi,
                     "peak at +1": f"{int((t['tau_star'] == 1).sum())}/{len(t)}"})
    return pd.DataFrame(rows)
