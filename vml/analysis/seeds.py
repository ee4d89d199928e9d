"""Chapter "How many seeds does a claim need?": how many seeds a verdict needs; churn and the test-set noise floor."""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .. import stats, store
from .common import arm_values, pool, profile_or_default, stored_runs


def sd_ci_table(sizes: Sequence[int] = (5, 10, 20, 25), level: float = 0.95) -> pd.DataFrame:
    """The chi-square interval of an SD as multiples of the observed SD, and of an SD ratio (F) as
    multiples of the observed ratio, for n runs per arm."""
    rows = []
    for n in sizes:
        sd_low, sd_high = stats.sd_interval(1.0, n, level)
        ratio_low, ratio_high = stats.sd_ratio_interval(1.0, n, n, level)
        rows.append({"n per arm": n, "SD low (x SD)": sd_low, "SD high (x SD)": sd_high,
                     "ratio low (x ratio)": ratio_low, "ratio high (x ratio)": ratio_high})
    return pd.DataFrame(rows)


def power_table(ratios: Sequence[float] = (0.26, 0.5, 0.67, 0.8, 0.97), alpha: float = 0.05) -> pd.DataFrame:
    """Power of the two-sided F-test at n = 5 and 20 per arm, and seeds per arm for 80% power."""
    rows = []
    for r in ratios:
        rows.append({"SD ratio": r, "Var.Red. %": 100 * (1 - r), "power n=5": stats.f_test_power(5, r, alpha),
                     "power n=20": stats.f_test_power(20, r, alpha),
                     "seeds for 80%": stats.seeds_for_power(r, 0.8, alpha)})
    return pd.DataFrame(rows)


def seed_table(profile: str | None = None, root: Any = None) -> pd.DataFrame:
    """Per arm of the pool, for seeds 1-5 (the paper's n) and for every stored seed: n, mean and SD
    (%) with the SD's chi-square interval and the interval's width relative to the SD."""
    arms = arm_values(pool(profile, root))
    rows = []
    for loss, label in (("base", "Base"), ("vml", "VML")):
        for seeds, a in (("1-5", arms[loss][:5]), ("all stored", arms[loss])):
            r = {"arm": label, "seeds": seeds, "n": int(a.size), "mean": a.mean() if a.size else np.nan,
                 "sd": a.std(ddof=1) if a.size > 1 else np.nan, "sd_low": np.nan, "sd_high": np.nan}
            if a.size > 1:
                r["sd_low"], r["sd_high"] = stats.sd_ci(a)
            r["high/low"] = r["sd_high"] / r["sd_low"]
            rows.append(r)
    return pd.DataFrame(rows)


def churn_table(profile: str | None = None, root: Any = None) -> pd.DataFrame:
    """Prediction churn per arm (mean pairwise disagreement, %), its SD over pairs and the number of
    runs, for the plain, EMA and TTA predictions."""
    profile = profile_or_default(profile)
    rows = []
    for loss, label in (("base", "Base"), ("vml", "VML")):
        preds = {"preds": [], "ema_preds": [], "tta_preds": []}
        for _, rec in stored_runs("seed-groups", profile, root, loss=loss):
            for k in preds:
                preds[k].append(rec["arrays"][k])
        r = {"arm": label, "runs": len(preds["preds"])}
        for k, name in (("preds", "churn %"), ("ema_preds", "churn EMA %"), ("tta_preds", "churn TTA %")):
            if len(preds[k]) >= 2:
                m = stats.pairwise_churn(np.stack(preds[k]))
                iu = np.triu_indices(m.shape[0], 1)
                r[name] = 100 * float(m[iu].mean())
                if k == "preds":
                    r["churn SD over pairs %"] = 100 * float(m[iu].std(ddof=1)) if iu[0].size > 1 else np.nan
            else:
                r[name] = np.nan
                if k == "preds":
                    r["churn SD over pairs %"] = np.nan
        rows.append(r)
    return pd.DataFrame(rows)


def noise_floor_table(profile: str | None = None, root: Any = None) -> pd.DataFrame:
    """Per arm: observed accuracy SD, the independent-error test-set noise floor and Jordan's
    distribution-wise SD (all in pp), with the distribution-wise variance's interval."""
    profile = profile_or_default(profile)
    rows = []
    for loss, label in (("base", "Base"), ("vml", "VML")):
        correct, ds = [], None
        for item, rec in stored_runs("seed-groups", profile, root, loss=loss):
            ds = item.spec.dataset
            correct.append(rec["arrays"]["preds"])
        r = {"setting": label, "runs": len(correct)}
        if len(correct) >= 2:
            y = store.labels(profile, ds, root)
            tv = stats.test_set_variance(np.stack(correct) == y[None, :])
            lo, hi = tv["distribution_var_low"], tv["distribution_var_high"]
            r.update(observed_sd=100 * tv["observed_sd"], independent_sd=100 * tv["independent_sd"],
                     distribution_sd=100 * tv["distribution_sd"],
                     distribution_sd_low=100 * math.sqrt(max(lo, 0.0)),
                     distribution_sd_high=100 * math.sqrt(max(hi, 0.0)))
        else:
            r.update(observed_sd=np.nan, independent_sd=np.nan, distribution_sd=np.nan,
                     distribution_sd_low=np.nan, distribution_sd_high=np.nan)
        rows.append(r)
    return pd.DataFrame(rows)
