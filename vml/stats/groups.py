"""One and two groups of runs: intervals for a mean, an SD and their differences, variance tests, the verdicts."""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy import stats as _st

from .base import Estimate, Summary, Comparison, _values, _level, _count, _rng_seed, _interval

# ----------------------------------------------------------------------------- one group

def mean_ci(values: Any, level: float = 0.95) -> tuple[float, float]:
    """Student-t interval for the mean (scipy's one-sample t-test)."""
    a, level = _values(values), _level(level)
    ci = _st.ttest_1samp(a, 0.0).confidence_interval(level)
    return float(ci.low), float(ci.high)


def sd_interval(var: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Chi-square interval for the SD from a sample variance (ddof=1) of n values, exact for normal data."""
    df = n - 1
    ss = df * var
    return math.sqrt(ss / _st.chi2.ppf((1 + level) / 2, df)), math.sqrt(ss / _st.chi2.ppf((1 - level) / 2, df))


def sd_ci(values: Any, level: float = 0.95) -> tuple[float, float]:
    """Chi-square interval for the SD (ddof=1), exact for normal data."""
    a, level = _values(values), _level(level)
    return sd_interval(a.var(ddof=1), a.size, level)


def fisher_ci(r: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Fisher-z interval of a Pearson r from n pairs; NaN when it is undefined (n <= 3, |r| = 1)."""
    if not np.isfinite(r) or n <= 3 or abs(r) >= 1:
        return np.nan, np.nan
    z, half = math.atanh(r), _st.norm.ppf((1 + _level(level)) / 2) / math.sqrt(n - 3)
    return math.tanh(z - half), math.tanh(z + half)


def summary(values: Any, level: float = 0.95) -> Summary:
    """n, mean, SD (ddof=1) and their intervals for one group of runs."""
    a = _values(values)
    ml, mh = mean_ci(a, level)
    sl, sh = sd_ci(a, level)
    return Summary(int(a.size), float(a.mean()), float(a.std(ddof=1)), ml, mh, sl, sh, float(level))


def summarize(df: pd.DataFrame, by: str | Sequence[str], value: str = "test_acc",
              level: float = 0.95) -> pd.DataFrame:
    """Per-group n, mean, sd, sd_low, sd_high, mean_low, mean_high (groups of 1 run get NaN spreads)."""
    by = [by] if isinstance(by, str) else list(by)
    missing = [c for c in [*by, value] if c not in df.columns]
    if missing:
        raise ValueError(f"columns {missing} are not in the DataFrame; it has {list(df.columns)}")
    _level(level)
    rows = []
    for key, g in df.groupby(by, sort=True, dropna=False):
        a = _values(g[value].to_numpy(), f"{value} in group {key}", min_n=1)
        row = dict(zip(by, key if isinstance(key, tuple) else (key,)))
        if a.size >= 2:
            s = summary(a, level)
            row.update(n=s.n, mean=s.mean, sd=s.sd, sd_low=s.sd_low, sd_high=s.sd_high,
                       mean_low=s.mean_low, mean_high=s.mean_high)
        else:  # one run has a mean but no spread; NaN rather than an error keeps partial tables usable
            row.update(n=1, mean=float(a[0]), sd=np.nan, sd_low=np.nan, sd_high=np.nan,
                       mean_low=np.nan, mean_high=np.nan)
        rows.append(row)
    return pd.DataFrame(rows).set_index(by)


# ----------------------------------------------------------------------------- two groups

def var_reduction(sd_base: Any, sd_vml: Any) -> Any:
    """The paper's Var. Red. = 100 * (1 - SD_VML / SD_Base), in percent (works elementwise)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 100.0 * (1.0 - np.asarray(sd_vml, dtype=float) / np.asarray(sd_base, dtype=float))
    return float(out) if out.ndim == 0 else out


def _sd_rows(x: np.ndarray) -> np.ndarray:
    return x.std(axis=-1, ddof=1)


def bootstrap_sd_ratio(base: Any, vml: Any, n_boot: int = 10_000, seed: int = 0,
                       level: float = 0.95) -> tuple[Estimate, Estimate]:
    """Percentile-bootstrap intervals for SD_VML/SD_Base and Var. Red.; each arm resampled on its own."""
    b, v = _values(base, "base"), _values(vml, "vml")
    level, n_boot, rng = _level(level), _count(n_boot, "n_boot", 100), _rng_seed(seed)
    bs = _sd_rows(b[rng.integers(0, b.size, (n_boot, b.size))])
    vs = _sd_rows(v[rng.integers(0, v.size, (n_boot, v.size))])
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = vs / bs
    ratios = np.where(np.isnan(ratios), 1.0, ratios)  # 0/0: both resamples constant, no difference
    ratio = float(v.std(ddof=1) / b.std(ddof=1)) if b.std() > 0 else math.inf
    lo, hi = _interval(ratios, level)
    return (Estimate(ratio, lo, hi, level),
            Estimate(var_reduction(1.0, ratio), var_reduction(1.0, hi), var_reduction(1.0, lo), level))


def sd_ratio_interval(f_obs: float, n_vml: int, n_base: int, level: float = 0.95) -> tuple[float, float]:
    """The exact F interval (normal data) of SD_VML/SD_Base from the observed variance ratio
    F_obs = var_VML/var_Base and the two arms' sizes: sqrt(F_obs / F quantiles)."""
    d_v, d_b = n_vml - 1, n_base - 1
    return (math.sqrt(f_obs / _st.f.ppf((1 + level) / 2, d_v, d_b)),
            math.sqrt(f_obs / _st.f.ppf((1 - level) / 2, d_v, d_b)))


def sd_ratio_ci(base: Any, vml: Any, level: float = 0.95) -> Estimate:
    """SD_VML/SD_Base with the exact F interval (normal data): sqrt(F_obs / F quantiles)."""
    b, v, level = _values(base, "base"), _values(vml, "vml"), _level(level)
    f_obs = v.var(ddof=1) / b.var(ddof=1)
    return Estimate(math.sqrt(f_obs), *sd_ratio_interval(f_obs, v.size, b.size, level), level)


def var_red_interval(sd_base: float, n_base: int, sd: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Var. Red. (%) interval of an SD against a reference SD, from summaries: the F interval of
    sd/sd_base (independent samples, normal theory); NaN when either has fewer than 2 values."""
    if n < 2 or n_base < 2 or not (sd_base > 0):
        return np.nan, np.nan
    lo, hi = sd_ratio_interval((sd / sd_base) ** 2, n, n_base, level)
    return 100 * (1 - hi), 100 * (1 - lo)


def mean_diff_ci(base: Any, vml: Any, level: float = 0.95) -> Estimate:
    """VML − Base difference of means with Welch's t interval (scipy's `ttest_ind`, unequal
    variances); zero width when neither arm has any spread."""
    b, v, level = _values(base, "base"), _values(vml, "vml"), _level(level)
    d = float(v.mean() - b.mean())
    if b.var(ddof=1) + v.var(ddof=1) == 0:
        return Estimate(d, d, d, level)
    ci = _st.ttest_ind(v, b, equal_var=False).confidence_interval(level)
    return Estimate(d, float(ci.low), float(ci.high), level)


def f_test(base: Any, vml: Any) -> tuple[float, float]:
    """Two-sided F-test for equal variances; returns (F = var_VML / var_Base, p)."""
    b, v = _values(base, "base"), _values(vml, "vml")
    f = v.var(ddof=1) / b.var(ddof=1)
    d_v, d_b = v.size - 1, b.size - 1
    p = 2 * min(_st.f.cdf(f, d_v, d_b), _st.f.sf(f, d_v, d_b))
    return float(f), float(min(p, 1.0))


def levene(base: Any, vml: Any) -> tuple[float, float]:
    """Levene's test for equal variances (centre = mean); returns (W, p)."""
    r = _st.levene(_values(base, "base"), _values(vml, "vml"), center="mean")
    return float(r.statistic), float(r.pvalue)


def brown_forsythe(base: Any, vml: Any) -> tuple[float, float]:
    """Brown-Forsythe test for equal variances (Levene with centre = median); returns (W, p)."""
    r = _st.levene(_values(base, "base"), _values(vml, "vml"), center="median")
    return float(r.statistic), float(r.pvalue)


def bartlett_summary(n: Any, sd: Any) -> tuple[float, float]:
    """Bartlett's test for equal variances across k groups from their sizes and SDs (ddof = 1), exact
    for normal data; returns (statistic, p) as `scipy.stats.bartlett` would on the raw values."""
    n, s2 = np.asarray(n, dtype=float), np.asarray(sd, dtype=float) ** 2
    if n.shape != s2.shape or n.ndim != 1 or n.size < 2 or (n < 2).any():
        raise ValueError(f"need 2+ groups of 2+ runs each, with one SD per group; got n={n.tolist()}, "
                         f"sd={np.sqrt(s2).tolist()}")
    n_tot, k = n.sum(), n.size
    sp2 = ((n - 1) * s2).sum() / (n_tot - k)
    num = (n_tot - k) * math.log(sp2) - ((n - 1) * np.log(s2)).sum()
    den = 1 + (np.sum(1 / (n - 1)) - 1 / (n_tot - k)) / (3 * (k - 1))
    return float(num / den), float(_st.chi2.sf(num / den, k - 1))


def welch(base: Any, vml: Any) -> tuple[float, float]:
    """Welch's t-test for equal means (unequal variances); returns (t = VML - Base direction, p)."""
    r = _st.ttest_ind(_values(vml, "vml"), _values(base, "base"), equal_var=False)
    return float(r.statistic), float(r.pvalue)


def _p_improve(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P(X > Y) + P(X = Y)/2 over all pairs along the last axis, via midranks (Mann-Whitney U / nm)."""
    n, m = x.shape[-1], y.shape[-1]
    ranks = _st.rankdata(np.concatenate([x, y], axis=-1), axis=-1)  # ties get midranks = 1/2 credit
    u = ranks[..., :n].sum(axis=-1) - n * (n + 1) / 2
    return u / (n * m)


def prob_improvement(base: Any, vml: Any, n_boot: int = 2_000, seed: int = 0,
                     level: float = 0.95) -> Estimate:
    """P(VML > Base) as in rliable (Mann-Whitney U / nm, ties count 1/2), percentile bootstrap CI."""
    b, v = _values(base, "base", 1), _values(vml, "vml", 1)
    level, n_boot, rng = _level(level), _count(n_boot, "n_boot", 100), _rng_seed(seed)
    est = float(_p_improve(v, b))
    boots = _p_improve(v[rng.integers(0, v.size, (n_boot, v.size))],
                       b[rng.integers(0, b.size, (n_boot, b.size))])
    lo, hi = _interval(boots, level)
    return Estimate(est, lo, hi, level)


def compare(base_values: Any, vml_values: Any, n_boot: int = 10_000, seed: int = 0,
            level: float = 0.95) -> Comparison:
    """Everything the tables need for one Base-vs-VML setting (see `Comparison`)."""
    b, v = _values(base_values, "base_values"), _values(vml_values, "vml_values")
    ratio, red = bootstrap_sd_ratio(b, v, n_boot=n_boot, seed=seed, level=level)
    ratio_f = sd_ratio_ci(b, v, level)
    red_f = Estimate(var_reduction(1.0, ratio_f.estimate), var_reduction(1.0, ratio_f.high),
                     var_reduction(1.0, ratio_f.low), level)
    return Comparison(
        base=summary(b, level), vml=summary(v, level), sd_ratio=ratio, var_red=red,
        sd_ratio_f=ratio_f, var_red_f=red_f, f_p=f_test(b, v)[1], levene_p=levene(b, v)[1],
        brown_forsythe_p=brown_forsythe(b, v)[1], welch_p=welch(b, v)[1],
        prob_improvement=prob_improvement(b, v, n_boot=n_boot, seed=seed, level=level))


SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "supported", "not supported", "inconclusive at this n"


def verdict(ci_low: float, ci_high: float, claimed: float | None = None, null: float = 0.0) -> str:
    """Verdict on a claimed variance reduction from an interval for Var. Red. (percent).

    Rules, applied in order, to an interval [ci_low, ci_high] for Var. Red. (larger = less spread):
    1. "not supported" if ci_high <= null (the data rule out any reduction), or if a `claimed`
       size is given and ci_high < claimed (the data rule out a reduction as large as claimed,
       even if some smaller reduction remains possible or even certain);
    2. "supported" if ci_low > null (a reduction is established; by rule 1 the interval also
       still contains the claimed size when one is given);
    3. "inconclusive at this n" otherwise: the interval contains both no reduction and the claim.
    For an interval on SD_VML/SD_Base [a, b], pass var_reduction(1, b), var_reduction(1, a).
    """
    lo, hi = float(ci_low), float(ci_high)
    if math.isnan(lo) or math.isnan(hi) or lo > hi:
        raise ValueError(f"ci_low={ci_low!r}, ci_high={ci_high!r} is not an interval; need low <= high")
    if claimed is not None and not float(claimed) > null:
        raise ValueError(f"claimed={claimed!r} is not a reduction; it must be > null={null!r}")
    if hi <= null or (claimed is not None and hi < claimed):
        return NOT_SUPPORTED
    if lo > null:
        return SUPPORTED
    return INCONCLUSIVE


def equivalence_verdict(ci_low: float, ci_high: float, margin: float) -> str:
    """Verdict on a claim of *no change* (e.g. "mean accuracy unchanged") from an interval for the change.

    1. "not supported" if the interval excludes 0 (a change is established, however small);
    2. "supported" if the interval lies inside [-margin, margin] (any change is smaller than the margin);
    3. "inconclusive at this n" otherwise.
    """
    lo, hi, m = float(ci_low), float(ci_high), float(margin)
    if math.isnan(lo) or math.isnan(hi) or lo > hi:
        raise ValueError(f"ci_low={ci_low!r}, ci_high={ci_high!r} is not an interval; need low <= high")
    if not m > 0:
        raise ValueError(f"margin={margin!r} is not allowed; it must be > 0")
    if lo > 0 or hi < 0:
        return NOT_SUPPORTED
    if -m <= lo and hi <= m:
        return SUPPORTED
    return INCONCLUSIVE
