"""Across-seed statistics: what the paper reports, computed the same way, plus what a careful reader needs.

Every function takes numpy arrays (or a pandas DataFrame) and returns numbers; nothing here reads
files or draws. Interval estimates come back as `Estimate(estimate, low, high, level)`. Randomised
procedures (bootstrap, resampling, simulation) take an explicit `seed` and are reproducible.
Accuracy units (fractions or percent) do not matter anywhere except in `test_set_variance`.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import stats as _st

__all__ = [
    "Estimate", "Summary", "Comparison", "Reactivity",
    "summary", "summarize", "mean_ci", "sd_interval", "sd_ci", "fisher_ci", "sd_ratio_interval", "sd_ratio_ci",
    "var_red_interval", "mean_diff_ci", "var_reduction",
    "bootstrap_sd_ratio", "prob_improvement", "compare", "verdict", "equivalence_verdict",
    "f_test", "levene", "brown_forsythe", "bartlett_summary", "welch",
    "seed_group_draws", "seed_groups",
    "epoch_mean", "zscore", "ccf", "reactivity", "reactivity_per_seed",
    "seed_effect_size", "pareto_front",
    "f_test_power", "f_test_power_simulated", "seeds_for_power",
    "churn", "pairwise_churn", "test_set_variance",
]


# ----------------------------------------------------------------------------- containers

@dataclass(frozen=True)
class Estimate:
    """A point estimate with a two-sided interval [low, high] at confidence `level`."""

    estimate: float
    low: float
    high: float
    level: float = 0.95

    def as_dict(self) -> dict[str, float]:
        """The four fields as a plain dict."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Summary:
    """n, mean and SD (ddof=1) of one group of runs, with t (mean) and chi-square (SD) intervals."""

    n: int
    mean: float
    sd: float
    mean_low: float
    mean_high: float
    sd_low: float
    sd_high: float
    level: float = 0.95

    def as_dict(self) -> dict[str, float]:
        """The fields as a plain dict."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Comparison:
    """Base vs VML on one setting: spreads, their ratio and Var. Red. with intervals, and the tests."""

    base: Summary
    vml: Summary
    sd_ratio: Estimate        # SD_VML / SD_Base, percentile bootstrap over runs
    var_red: Estimate         # 100 * (1 - SD_VML / SD_Base), same bootstrap draws
    sd_ratio_f: Estimate      # same ratio, exact F interval under normality
    var_red_f: Estimate       # Var. Red. from the F interval
    f_p: float                # two-sided F-test for equal variances
    levene_p: float           # Levene (centre = mean)
    brown_forsythe_p: float   # Levene with centre = median
    welch_p: float            # Welch t-test for equal means
    prob_improvement: Estimate  # P(VML > Base), rliable's definition, bootstrap interval

    def as_dict(self) -> dict[str, Any]:
        """A flat dict (nested estimates become `name`, `name_low`, `name_high`) for one table row."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, Summary):
                out.update({f"{f.name}_{k}": x for k, x in v.as_dict().items() if k != "level"})
            elif isinstance(v, Estimate):
                out.update({f.name: v.estimate, f"{f.name}_low": v.low, f"{f.name}_high": v.high})
            else:
                out[f.name] = v
        return out


@dataclass(frozen=True)
class Reactivity:
    """Fig. 1 numbers: CCF of (dlambda_k, dloss_{k+tau}), its peak, and the standardized lead scatter."""

    lags: np.ndarray
    r: np.ndarray
    tau_star: int             # lag of the largest |r_tau|
    r_star: float             # r at tau_star (signed)
    x: np.ndarray             # z(dlambda_k) over the paired epochs
    y: np.ndarray             # z(dloss_{k+lead}) over the same epochs
    lead: int
    slope: float              # OLS slope of y on x (= Pearson r, both standardized)
    intercept: float
    p: float                  # two-sided OLS p-value of the slope
    n: int                    # number of (x, y) pairs

    def summary(self) -> dict[str, float]:
        """The scalar results (no arrays), e.g. one row of a per-seed table."""
        return {"tau_star": self.tau_star, "r_star": self.r_star, "slope": self.slope,
                "p": self.p, "n": self.n, "lead": self.lead}


# ----------------------------------------------------------------------------- validation

def _values(x: Any, name: str = "values", min_n: int = 2) -> np.ndarray:
    """1-D finite float array with at least `min_n` entries, or ValueError saying what is wrong."""
    a = np.asarray(x, dtype=float)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D; got shape {a.shape}")
    if a.size < min_n:
        raise ValueError(f"{name} has {a.size} value(s); at least {min_n} are needed")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or inf; only finite values are allowed")
    return a


def _real(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _level(level: float) -> float:
    if not (_real(level) and 0.0 < float(level) < 1.0):
        raise ValueError(f"level={level!r} is not allowed; it must be strictly between 0 and 1")
    return float(level)


def _count(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}={value!r} is not allowed; it must be an integer >= {minimum}")
    return int(value)


def _rng_seed(seed: Any) -> np.random.Generator:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed={seed!r} is not allowed; it must be an integer >= 0")
    return np.random.default_rng(int(seed))


def _interval(samples: np.ndarray, level: float) -> tuple[float, float]:
    """Percentile interval; infinite draws (a resampled SD of 0) give an unbounded end, not NaN."""
    probs = [(1 - level) / 2, (1 + level) / 2]
    with np.errstate(invalid="ignore"):
        q = np.quantile(samples, probs)
    if np.any(np.isnan(q)):  # linear interpolation between two infs is NaN; the nearest draw is not
        q = np.where(np.isnan(q), np.quantile(samples, probs, method="nearest"), q)
    return float(q[0]), float(q[1])


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


# ----------------------------------------------------------------------------- seed groups (Table 3)

def seed_group_draws(values: Any, size: int, n_draws: int = 1_000,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Means and SDs (ddof=1) of `n_draws` groups of `size` runs drawn without replacement from the pool.

    Groups are drawn independently of each other (two draws may coincide); a group as large as the
    pool is the pool itself, so a single draw is returned, as in the paper.
    """
    a = _values(values, "values")
    size = _count(size, "size", 2)
    if size > a.size:
        raise ValueError(f"size={size} is larger than the pool of {a.size} runs")
    n_draws, rng = _count(n_draws, "n_draws", 1), _rng_seed(seed)
    if size == a.size:
        return np.array([a.mean()]), np.array([a.std(ddof=1)])
    # argsort of uniform keys gives each row an independent random permutation (without replacement)
    idx = np.argsort(rng.random((n_draws, a.size)), axis=1)[:, :size]
    groups = a[idx]
    return groups.mean(axis=1), groups.std(axis=1, ddof=1)


def seed_groups(values: Any, sizes: Iterable[int] = (5, 10, 15, 20), n_draws: int = 1_000,
                seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """Table 3: per group size, the average group mean and SD and the central `level` range of each.

    Columns: size, n_draws, mean, mean_q_low, mean_q_high, sd, sd_median, sd_q_low, sd_q_high.
    `sd` is the average of the group SDs (the paper's cell); the q columns show how far a single
    study of that size could land from it. The same `seed` on two pools of equal size draws the
    same positions, so Base and VML groups are paired when both pools are ordered by seed.
    """
    level = _level(level)
    rows = []
    for size in sizes:
        means, sds = seed_group_draws(values, size, n_draws, seed)
        m_lo, m_hi = _interval(means, level)
        s_lo, s_hi = _interval(sds, level)
        rows.append(dict(size=int(size), n_draws=int(means.size), mean=float(means.mean()),
                         mean_q_low=m_lo, mean_q_high=m_hi, sd=float(sds.mean()),
                         sd_median=float(np.median(sds)), sd_q_low=s_lo, sd_q_high=s_hi))
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- reactivity (Fig. 1)

def epoch_mean(values: Any, epoch: Any) -> np.ndarray:
    """Average per-iteration values within each epoch (the paper's lambda_k), epochs in sorted order.

    `values` is (iterations,) or (seeds, iterations); `epoch` gives each iteration's epoch index.
    """
    v = np.asarray(values, dtype=float)
    e = np.asarray(epoch)
    if v.ndim not in (1, 2) or e.ndim != 1 or v.shape[-1] != e.size:
        raise ValueError(f"values shape {v.shape} and epoch shape {e.shape} do not match; "
                         "need (iterations,) or (seeds, iterations) and (iterations,)")
    keys, inverse = np.unique(e, return_inverse=True)
    counts = np.bincount(inverse, minlength=keys.size)
    flat = v.reshape(-1, e.size)
    sums = np.stack([np.bincount(inverse, weights=row, minlength=keys.size) for row in flat])
    out = sums / counts
    return out[0] if v.ndim == 1 else out


def zscore(x: Any) -> np.ndarray:
    """(x - mean) / SD with ddof=1; a constant series raises (it has no scale to standardize by)."""
    a = _values(x, "x")
    s = a.std(ddof=1)
    if s == 0:
        raise ValueError("x is constant; a z-score needs a non-zero SD")
    return (a - a.mean()) / s


_MIN_PAIRS = 3  # a Pearson r from fewer than 3 pairs is +-1 or undefined: reported as NaN


def ccf(x: Any, y: Any, max_lag: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Pearson cross-correlation r[i] = corr(x_k, y_{k+lags[i]}) over the overlapping k.

    lags run from -max_lag to +max_lag; a positive lag means x leads y (the paper's tau > 0:
    dlambda leads). Lags with fewer than 3 overlapping pairs, or a constant overlap, give NaN.
    """
    a, b = _values(x, "x"), _values(y, "y")
    if a.size != b.size:
        raise ValueError(f"x and y must have the same length; got {a.size} and {b.size}")
    max_lag = _count(max_lag, "max_lag", 0)
    lags = np.arange(-max_lag, max_lag + 1)
    r = np.full(lags.size, np.nan)
    n = a.size
    for i, lag in enumerate(lags):
        xs, ys = (a[: n - lag], b[lag:]) if lag >= 0 else (a[-lag:], b[: n + lag])
        if xs.size >= _MIN_PAIRS and xs.std() > 0 and ys.std() > 0:
            r[i] = np.corrcoef(xs, ys)[0, 1]
    return lags, r


def _ols(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    import statsmodels.api as sm  # imported here: statsmodels is slow to import and only this needs it

    fit = sm.OLS(y, sm.add_constant(x)).fit()
    return float(fit.params[1]), float(fit.params[0]), float(fit.pvalues[1])


def _reactivity_1d(lam: np.ndarray, loss: np.ndarray, max_lag: int, lead: int) -> Reactivity:
    if lam.size < lead + 4:
        raise ValueError(f"series have {lam.size} epochs; the lead-{lead} scatter needs at least "
                         f"{lead + 4} (3 pairs of first differences)")
    d_lam, d_loss = np.diff(lam), np.diff(loss)
    lags, r = ccf(d_lam, d_loss, max_lag)
    if np.all(np.isnan(r)):
        raise ValueError("no lag has a defined correlation (constant or too short series)")
    i = int(np.nanargmax(np.abs(r)))
    xs, ys = d_lam[: d_lam.size - lead], d_loss[lead:]
    # Standardize over the paired epochs themselves, so the OLS slope equals Pearson r exactly.
    x, y = zscore(xs), zscore(ys)
    slope, intercept, p = _ols(x, y)
    return Reactivity(lags, r, int(lags[i]), float(r[i]), x, y, lead, slope, intercept, p, int(x.size))


def _series_pair(lam_epochs: Any, test_loss_epochs: Any) -> tuple[np.ndarray, np.ndarray]:
    lam, loss = np.asarray(lam_epochs, dtype=float), np.asarray(test_loss_epochs, dtype=float)
    if lam.shape != loss.shape or lam.ndim not in (1, 2):
        raise ValueError(f"lam_epochs {lam.shape} and test_loss_epochs {loss.shape} must have the same "
                         "shape, (epochs,) or (seeds, epochs)")
    if not (np.all(np.isfinite(lam)) and np.all(np.isfinite(loss))):
        raise ValueError("lam_epochs / test_loss_epochs contain NaN or inf (a Base run has no lambda)")
    return np.atleast_2d(lam), np.atleast_2d(loss)


def reactivity(lam_epochs: Any, test_loss_epochs: Any, max_lag: int = 10, lead: int = 1) -> Reactivity:
    """Fig. 1 on the seed-averaged series: CCF of first differences and the lead-`lead` z-scatter.

    Inputs are epoch-level lambda_k and test loss, shape (epochs,) or (seeds, epochs); as in the
    paper the series are averaged across seeds before differencing.
    """
    lam, loss = _series_pair(lam_epochs, test_loss_epochs)
    return _reactivity_1d(lam.mean(axis=0), loss.mean(axis=0), max_lag, _count(lead, "lead", 1))


def reactivity_per_seed(lam_epochs: Any, test_loss_epochs: Any, max_lag: int = 10,
                        lead: int = 1) -> list[Reactivity]:
    """`reactivity` computed on each seed's own series (rows of the (seeds, epochs) inputs)."""
    lam, loss = _series_pair(lam_epochs, test_loss_epochs)
    lead = _count(lead, "lead", 1)
    return [_reactivity_1d(a, b, max_lag, lead) for a, b in zip(lam, loss)]


# ----------------------------------------------------------------------------- seed effect, Pareto

def seed_effect_size(values: Any, k: int | None = None) -> float:
    """Mean of the top-k minus mean of the bottom-k runs (paper: k = 10 of 20; default n // 2)."""
    a = np.sort(_values(values, "values"))
    k = a.size // 2 if k is None else _count(k, "k", 1)
    if 2 * k > a.size:  # overlapping top and bottom sets would no longer contrast good vs bad seeds
        raise ValueError(f"k={k} is too large for {a.size} runs; need 2k <= n")
    return float(a[-k:].mean() - a[:k].mean())


def max_seed_effect(sd: float, n: int) -> float:
    """The largest top-half minus bottom-half mean gap that n values (n even) with sample SD `sd`
    (ddof=1) can have: 2·sd·sqrt((n-1)/n), reached when half the values sit at each of two points."""
    n = _count(n, "n", 2)
    if n % 2:
        raise ValueError(f"n={n} is not allowed; the top and bottom halves need an even n")
    return float(2.0 * sd * math.sqrt((n - 1) / n))


def pareto_front(sd: Any, mean: Any) -> np.ndarray:
    """Boolean mask of the points not dominated when minimising SD and maximising mean accuracy.

    A point is dominated if another has SD <= and mean >= with at least one strict; exact
    duplicates therefore both stay on the front.
    """
    s, m = _values(sd, "sd", 1), _values(mean, "mean", 1)
    if s.size != m.size:
        raise ValueError(f"sd and mean must have the same length; got {s.size} and {m.size}")
    le, ge = s[None, :] <= s[:, None], m[None, :] >= m[:, None]
    strict = (s[None, :] < s[:, None]) | (m[None, :] > m[:, None])
    dominated = (le & ge & strict).any(axis=1)  # row i: does any column j dominate i?
    return ~dominated


# ----------------------------------------------------------------------------- power

def _f_power(n: np.ndarray, ratio: float, alpha: float) -> np.ndarray:
    d = n - 1
    lo, hi = _st.f.ppf(alpha / 2, d, d), _st.f.isf(alpha / 2, d, d)
    r2 = ratio ** 2  # s_v^2 / s_b^2 ~ r^2 F(d, d): the rejection region rescaled by 1/r^2
    return _st.f.cdf(lo / r2, d, d) + _st.f.sf(hi / r2, d, d)


def _power_args(ratio: float, alpha: float) -> tuple[float, float]:
    if not (_real(ratio) and math.isfinite(ratio) and ratio > 0):
        raise ValueError(f"ratio={ratio!r} is not allowed; it must be a finite SD ratio > 0")
    if not (_real(alpha) and 0 < alpha < 1):
        raise ValueError(f"alpha={alpha!r} is not allowed; it must be strictly between 0 and 1")
    return float(ratio), float(alpha)


def f_test_power(n: int, ratio: float, alpha: float = 0.05) -> float:
    """Power of the two-sided F-test for equal variances, n runs per arm, true SD ratio `ratio`."""
    n = _count(n, "n", 2)
    ratio, alpha = _power_args(ratio, alpha)
    return float(_f_power(np.array(n), ratio, alpha))


def f_test_power_simulated(n: int, ratio: float, alpha: float = 0.05, n_sim: int = 10_000,
                           seed: int = 0) -> float:
    """Monte Carlo check of `f_test_power`: the rejection rate on normal samples with that SD ratio."""
    n, n_sim = _count(n, "n", 2), _count(n_sim, "n_sim", 1)
    ratio, alpha = _power_args(ratio, alpha)
    rng = _rng_seed(seed)
    base = rng.standard_normal((n_sim, n))
    vml = ratio * rng.standard_normal((n_sim, n))
    f = vml.var(axis=1, ddof=1) / base.var(axis=1, ddof=1)
    d = n - 1
    reject = (f < _st.f.ppf(alpha / 2, d, d)) | (f > _st.f.isf(alpha / 2, d, d))
    return float(reject.mean())


def seeds_for_power(ratio: float = 0.67, power: float = 0.8, alpha: float = 0.05,
                    max_n: int = 100_000) -> int:
    """Smallest n per arm at which the two-sided F-test reaches `power` for true SD ratio `ratio`."""
    ratio, alpha = _power_args(ratio, alpha)
    if not (_real(power) and alpha < power < 1):
        raise ValueError(f"power={power!r} is not allowed; it must be in (alpha, 1)")
    if ratio == 1:
        raise ValueError("ratio=1 means no difference: power stays at alpha for every n")
    n = np.arange(2, _count(max_n, "max_n", 2) + 1)
    hit = np.flatnonzero(_f_power(n, ratio, alpha) >= power)
    if hit.size == 0:
        raise ValueError(f"power {power} is not reached for ratio={ratio} with n <= max_n={max_n}")
    return int(n[hit[0]])


# ----------------------------------------------------------------------------- per-example predictions

def _matrix(x: Any, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 2 or a.shape[0] < 2 or a.shape[1] < 1:
        raise ValueError(f"{name} must be (runs, examples) with at least 2 runs; got shape {a.shape}")
    return a


def pairwise_churn(preds: Any) -> np.ndarray:
    """(runs, runs) matrix of the fraction of examples on which two runs predict different labels."""
    p = _matrix(preds, "preds")
    out = np.zeros((p.shape[0], p.shape[0]))
    for i in range(p.shape[0] - 1):
        out[i, i + 1:] = (p[i] != p[i + 1:]).mean(axis=1)
    return out + out.T


def churn(preds: Any) -> float:
    """Prediction churn: disagreement fraction between two runs, averaged over all pairs of runs."""
    m = pairwise_churn(preds)
    iu = np.triu_indices(m.shape[0], k=1)
    return float(m[iu].mean())


def test_set_variance(correct: Any, level: float = 0.95) -> dict[str, float]:
    """Observed accuracy SD beside its test-set noise floor and Jordan's distribution-wise variance.

    `correct` is (runs, examples), True where a run classifies an example correctly; results are
    in accuracy units (0-1). With R runs, n examples and eps_i the error rate of example i:
      observed_sd      SD of the per-run accuracy (ddof=1),
      independent_sd   sqrt(sum_i eps_i (1 - eps_i)) / n, the SD if errors were independent
                       across examples; eps_i(1-eps_i) is estimated by the across-run variance of
                       example i with ddof=1 (= R/(R-1) * plug-in), matching observed_sd's ddof,
                       so that under independent errors both estimate the same quantity;
      distribution_var n/(n-1) * (observed_sd^2 - independent_sd^2) (Jordan, ICLR 2024);
      distribution_sd  sqrt(max(distribution_var, 0)).
    distribution_var_low/high: chi-square interval (R-1 df) for the observed variance, with the
    noise floor (averaged over n*R outcomes, far less noisy) held fixed.
    """
    c = _matrix(correct, "correct")
    if c.dtype != bool and not np.isin(c, (0, 1)).all():
        raise ValueError("correct must be boolean (or 0/1): True where a run got an example right")
    level = _level(level)
    c = c.astype(float)
    runs, n = c.shape
    acc = c.mean(axis=1)
    obs_var = acc.var(ddof=1)
    floor_var = c.var(axis=0, ddof=1).sum() / n**2
    scale = n / (n - 1) if n > 1 else math.nan
    df = runs - 1
    v_lo = df * obs_var / _st.chi2.ppf((1 + level) / 2, df)
    v_hi = df * obs_var / _st.chi2.ppf((1 - level) / 2, df)
    dist_var = scale * (obs_var - floor_var)
    return {
        "n_runs": runs,
        "n_examples": n,
        "mean_acc": float(acc.mean()),
        "observed_sd": float(math.sqrt(obs_var)),
        "independent_sd": float(math.sqrt(floor_var)),
        "distribution_var": float(dist_var),
        "distribution_sd": float(math.sqrt(dist_var)) if dist_var > 0 else 0.0,
        "distribution_var_low": float(scale * (v_lo - floor_var)),
        "distribution_var_high": float(scale * (v_hi - floor_var)),
    }
