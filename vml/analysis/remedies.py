"""Table 4 (chapter "Against other remedies"): ensembles, EMA weights, TTA and VML against the single-model SD."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from .. import paper, stats, store
from ..spec import LOSSES, PROFILES
from .common import NO_RUNS, arm_values, pool, profile_or_default, step_cost, stored_runs


def _pool_arrays(loss: str, profile: str, root: Any) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Seeds, probabilities and argmax predictions of the pool's `loss` runs that kept probabilities."""
    seeds, probs, preds = [], [], []
    for item, rec in stored_runs("seed-groups", profile, root, loss=loss):
        if "probs" not in rec["arrays"]:
            continue
        seeds.append(item.spec.seed)
        probs.append(rec["arrays"]["probs"])
        preds.append(rec["arrays"]["preds"])
    order = np.argsort(seeds)
    return np.asarray(seeds)[order], [probs[i] for i in order], [preds[i] for i in order]


def ensemble_accuracies(probs: Sequence[np.ndarray] | np.ndarray, labels: np.ndarray, size: int,
                        method: str = "mean") -> np.ndarray:
    """Accuracy (fraction) of each *disjoint* ensemble of `size` consecutive runs (runs beyond the
    last full ensemble are left out). method="mean": argmax of the averaged probabilities;
    "vote": majority vote of the members' argmax, ties broken by the averaged probability."""
    if method not in ("mean", "vote"):
        raise ValueError(f"method={method!r} is not allowed; use 'mean' or 'vote'")
    stacked = np.asarray(probs, dtype=np.float64)  # (runs, images, classes)
    n = len(stacked) // size
    return np.asarray([_ensemble_accuracy(stacked[j * size:(j + 1) * size], labels, method) for j in range(n)])


def _ensemble_accuracy(members: np.ndarray, labels: np.ndarray, method: str) -> float:
    avg = members.mean(axis=0)
    if method == "mean":
        pred = avg.argmax(axis=1)
    else:  # votes per class: how many members' argmax is that class
        votes = (members.argmax(axis=2)[..., None] == np.arange(avg.shape[1])).sum(axis=0)
        pred = (votes + 0.5 * avg).argmax(axis=1)  # avg < 1: breaks ties only
    return float((pred == labels).mean())


def _paired_boot_red(ref: np.ndarray, other: np.ndarray, n_boot: int, seed: int) -> tuple[float, float]:
    """Percentile bootstrap of Var. Red. of `other` against `ref`, the same runs resampled together."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, ref.size, (n_boot, ref.size))
    with np.errstate(divide="ignore", invalid="ignore"):
        red = 100 * (1 - other[idx].std(axis=1, ddof=1) / ref[idx].std(axis=1, ddof=1))
    red = red[np.isfinite(red)]
    if red.size == 0:  # every resample of the reference had SD 0
        return np.nan, np.nan
    return float(np.quantile(red, 0.025)), float(np.quantile(red, 0.975))


def wall_times(profile: str | None = None, root: Any = None) -> pd.DataFrame:
    """Median and quartiles of the wall time per run (seconds) of the pool's Base and VML runs, and
    the VML/Base ratio of the medians."""
    df = pool(profile, root)
    rows = []
    for loss in LOSSES:
        w = df.loc[df["loss"] == loss, "wall_s"].to_numpy(dtype=float) if len(df) else np.zeros(0)
        rows.append({"loss": loss, "runs": int(w.size),
                     "median_s": float(np.median(w)) if w.size else np.nan,
                     "q25_s": float(np.quantile(w, 0.25)) if w.size else np.nan,
                     "q75_s": float(np.quantile(w, 0.75)) if w.size else np.nan})
    t = pd.DataFrame(rows)
    t["ratio_to_base"] = t["median_s"] / t.loc[0, "median_s"]
    return t


def remedies_table(profile: str | None = None, root: Any = None, ensemble_sizes: Sequence[int] = (2, 5, 10),
                   n_resample: int = 200, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Table 4 on the 20-seed pool: per remedy, its accuracy SD over independent units (runs or
    disjoint ensembles), the Var. Red. against the single-model Base SD with a 95% interval, the
    verdict on the paper's number, and the training and inference cost.

    - Ensemble (N, mean of probabilities / majority vote): the Base runs in seed order cut into
      disjoint ensembles of N; their SD has (#ensembles − 1) degrees of freedom, and its interval
      is the F interval against the single-model Base SD (the ensembles reuse the same runs, so
      this treats two dependent SDs as independent: approximate). The SD over `n_resample` random
      ensembles drawn without replacement is reported too (`resampled_sd`): smoother, but biased
      low once N is a sizeable part of the pool, since such ensembles share members.
    - EMA weights and TTA (K views): the Base runs' `ema_acc` / `tta_acc`, paired with their own
      `test_acc`; the interval is a paired percentile bootstrap over runs.
    - VML: the VML runs against the Base runs (independent arms, F interval).
    """
    profile = profile_or_default(profile)
    df = pool(profile, root)
    p4 = paper.table4().set_index("method")
    base = df[df["loss"] == "base"].sort_values("seed") if len(df) else df
    vml = df[df["loss"] == "vml"].sort_values("seed") if len(df) else df
    acc_b = 100 * base["test_acc"].to_numpy(dtype=float) if len(base) else np.zeros(0)
    nb = acc_b.size
    sd_b = acc_b.std(ddof=1) if nb > 1 else np.nan
    step = step_cost(root)  # the one step-time measurement (benchmarks/loss_overhead.py)
    tta_k = int(base["tta_views"].iloc[0]) if len(base) else int(_profile_tta(profile))
    rows = [{"method": "Base (single model)", "paper_method": None, "units": nb,
             "mean_acc": acc_b.mean() if nb else np.nan, "sd": sd_b, "resampled_sd": np.nan,
             "var_red": 0.0 if nb > 1 else np.nan, "low": np.nan, "high": np.nan,
             "training_cost": "1x", "inference_cost": "1x"}]

    labels = None
    seeds, probs, _ = _pool_arrays("base", profile, root) if nb else (np.zeros(0), [], [])
    if probs:
        labels = store.labels(profile, base["dataset"].iloc[0], root)
        probs = np.asarray(probs, dtype=np.float64)  # (runs, images, classes): stacked once for all ensembles
    for n_ens in ensemble_sizes:
        for method, name in (("mean", "Ensemble (N={n}, mean prob.)"), ("vote", "Ensemble (N={n}, vote)")):
            r = {"method": name.format(n=n_ens), "paper_method": "Ensemble (N=20)",
                 "training_cost": f"{n_ens}x", "inference_cost": f"{n_ens}x"}
            accs = 100 * ensemble_accuracies(probs, labels, n_ens, method) if len(probs) else np.zeros(0)
            r.update(units=int(accs.size), mean_acc=accs.mean() if accs.size else np.nan,
                     sd=accs.std(ddof=1) if accs.size > 1 else np.nan)
            r["var_red"] = 100 * (1 - r["sd"] / sd_b) if accs.size > 1 and nb > 1 else np.nan
            r["low"], r["high"] = stats.var_red_interval(sd_b, nb, r["sd"], accs.size)
            r["resampled_sd"] = _resampled_ensemble_sd(probs, labels, n_ens, method, n_resample, seed) \
                if len(probs) > n_ens else np.nan
            rows.append(r)
    for col, name, paper_name, cost in (
            ("ema_acc", "EMA weights", "Accelerated ensemble (EMA/snapshots)", ("1x", "1x")),
            ("tta_acc", f"TTA (K={tta_k} views)", "Test-time augmentation (K views)", ("1x", f"{tta_k}x"))):
        a = 100 * base[col].to_numpy(dtype=float) if len(base) else np.zeros(0)
        r = {"method": name, "paper_method": paper_name, "units": int(a.size),
             "mean_acc": a.mean() if a.size else np.nan, "sd": a.std(ddof=1) if a.size > 1 else np.nan,
             "resampled_sd": np.nan, "training_cost": cost[0], "inference_cost": cost[1]}
        r["var_red"] = 100 * (1 - r["sd"] / sd_b) if a.size > 1 else np.nan
        r["low"], r["high"] = _paired_boot_red(acc_b, a, n_boot, seed) if a.size > 2 else (np.nan, np.nan)
        rows.append(r)
    acc_v = 100 * vml["test_acc"].to_numpy(dtype=float) if len(vml) else np.zeros(0)
    r = {"method": "VML", "paper_method": "VML", "units": int(acc_v.size),
         "mean_acc": acc_v.mean() if acc_v.size else np.nan,
         "sd": acc_v.std(ddof=1) if acc_v.size > 1 else np.nan, "resampled_sd": np.nan,
         "training_cost": f"{step['ratio_median']:.2f}x [{step['ratio_low']:.2f}, {step['ratio_high']:.2f}]"
                          if step else "1x (not measured)",
         "inference_cost": "1x"}
    r["var_red"] = 100 * (1 - r["sd"] / sd_b) if acc_v.size > 1 and nb > 1 else np.nan
    r["low"], r["high"] = stats.var_red_interval(sd_b, nb, r["sd"], acc_v.size)
    rows.append(r)
    t = pd.DataFrame(rows)
    t["paper_var_red"] = [float(p4.loc[m, "var_red"]) if m in p4.index else np.nan for m in t["paper_method"]]
    verdicts = []
    for _, row in t.iterrows():
        if row["method"].startswith("Base"):
            verdicts.append("reference")
        elif not (np.isfinite(row["low"]) and np.isfinite(row["high"])):
            unit = "ensembles" if row["method"].startswith("Ensemble") else "runs"
            need = 2 if unit == "ensembles" or row["method"] == "VML" else 3
            verdicts.append(f"too few {unit} (need {need})" if row["units"] or nb else NO_RUNS)
        elif row["method"].startswith("Ensemble") and not row["method"].startswith("Ensemble (N=20"):
            # smaller than the paper's N = 20: only "is there any reduction" is tested
            verdicts.append(stats.verdict(row["low"], row["high"]) + " (any reduction; N < 20)")
        else:
            claim = row["paper_var_red"] if np.isfinite(row["paper_var_red"]) else None
            verdicts.append(stats.verdict(row["low"], row["high"], claim))
    t["verdict"] = verdicts
    return t.drop(columns="paper_method")


def _profile_tta(profile: str) -> int:
    return PROFILES[profile]["tta_views"]


def _resampled_ensemble_sd(probs: Sequence[np.ndarray], labels: np.ndarray, size: int, method: str,
                           n: int, seed: int) -> float:
    """SD (pp) of the accuracy of `n` ensembles of `size` runs drawn without replacement from the pool."""
    rng = np.random.default_rng(seed)
    stacked = np.asarray(probs, dtype=np.float64)
    accs = [_ensemble_accuracy(stacked[rng.choice(len(stacked), size, replace=False)], labels, method)
            for _ in range(n)]
    return float(100 * np.std(accs, ddof=1))


def seed_effect_table(profile: str | None = None, root: Any = None) -> pd.DataFrame:
    """Sec. 5.5: top-k minus bottom-k mean accuracy (pp), k = n // 2 (paper: 10 of 20), per arm."""
    arms = arm_values(pool(profile, root))
    rows = []
    for loss, label, claim in (("base", "Base", paper.SEED_EFFECT["prior work"]),
                               ("vml", "VML", paper.SEED_EFFECT["VML"])):
        a = arms[loss]
        rows.append({"arm": label, "runs": int(a.size), "k": int(a.size // 2),
                     "paper": claim, "ours_pp": stats.seed_effect_size(a) if a.size >= 2 else np.nan})
    return pd.DataFrame(rows)
