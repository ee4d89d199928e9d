"""Spreads of paired runs: the same seed trained twice (Base and VML share initial weights, batch order
and augmentation), so the two accuracies of a seed are correlated and an unpaired F test wastes that.

* `pitman_morgan`: the Pitman-Morgan test of equal variances of paired samples (the correlation of
  sums and differences, a t test on n - 2 degrees of freedom) and its exact interval for SD_VML/SD_Base;
* `paired_bootstrap_sd_ratio`: the percentile bootstrap over seed pairs;
* `pitman_morgan_power`: its power (Fisher z) for a true SD ratio and pair correlation, with a Monte
  Carlo check;
* `sd_trend`: the slope of log SD across dose arms that share their seeds, bootstrapped over seeds;
* `pooled_log_sd_ratio`: fixed- and random-effects pooling of log SD ratios (statsmodels).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import scipy.stats as _st

from .base import Estimate, _count, _interval, _level, _real, _rng_seed, _values
from .groups import var_reduction


def _pairs(base: Any, vml: Any, min_n: int = 3) -> tuple[np.ndarray, np.ndarray]:
    b, v = _values(base, "base", min_n), _values(vml, "vml", min_n)
    if b.size != v.size:
        raise ValueError(f"base has {b.size} values and vml {v.size}; paired samples need one of each per seed")
    return b, v


def _pm_k(t: float, r: float, n: int) -> float:
    return 1.0 + 2.0 * t * t * (1.0 - r * r) / (n - 2)


def pitman_morgan(base: Any, vml: Any, level: float = 0.95) -> tuple[Estimate, float]:
    """(SD_VML/SD_Base with its exact Pitman-Morgan interval, two-sided p of equal variances) for
    paired samples (entry i of both arrays: the same seed). The test: t = r√(n-2)/√(1-r²) with r the
    correlation of sums and differences, t on n - 2 df. The interval (Pitman 1939): the variance ratio
    F = s²_VML/s²_Base times K ± √(K² - 1), K = 1 + 2(1 - ρ̂²)t²_crit/(n - 2), ρ̂ the pair correlation."""
    b, v = _pairs(base, vml)
    level, n = _level(level), b.size
    sb, sv = b.std(ddof=1), v.std(ddof=1)
    if sb == 0 or sv == 0:
        raise ValueError("an arm has no spread (all values equal); the variance ratio is undefined")
    rho = float(np.corrcoef(b, v)[0, 1])
    s, d = v + b, v - b
    r = float(np.corrcoef(s, d)[0, 1]) if s.std() > 0 and d.std() > 0 else 0.0
    t = r * math.sqrt(n - 2) / math.sqrt(max(1.0 - r * r, 1e-300))
    p = float(min(1.0, 2 * _st.t.sf(abs(t), n - 2)))
    f = sv * sv / (sb * sb)
    k = _pm_k(float(_st.t.ppf((1 + level) / 2, n - 2)), rho, n)
    root = math.sqrt(k * k - 1.0)
    return Estimate(math.sqrt(f), math.sqrt(f * (k - root)), math.sqrt(f * (k + root)), level), p


def paired_bootstrap_sd_ratio(base: Any, vml: Any, n_boot: int = 10_000, seed: int = 0,
                              level: float = 0.95) -> Estimate:
    """Percentile-bootstrap interval of SD_VML/SD_Base, resampling seeds (pairs stay together)."""
    b, v = _pairs(base, vml)
    level, n_boot, rng = _level(level), _count(n_boot, "n_boot", 100), _rng_seed(seed)
    idx = rng.integers(0, b.size, (n_boot, b.size))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = v[idx].std(axis=1, ddof=1) / b[idx].std(axis=1, ddof=1)
    ratios = np.where(np.isnan(ratios), 1.0, ratios)  # 0/0: both resamples constant, no difference
    return Estimate(float(v.std(ddof=1) / b.std(ddof=1)), *_interval(ratios, level), level)


def var_red_estimate(ratio: Estimate) -> Estimate:
    """Var. Red. (%) with its interval from an interval of SD_VML/SD_Base (the ends swap)."""
    return Estimate(var_reduction(1.0, ratio.estimate), var_reduction(1.0, ratio.high),
                    var_reduction(1.0, ratio.low), ratio.level)


def _pm_args(n: Any, ratio: Any, rho: Any, alpha: Any) -> tuple[int, float, float, float]:
    n = _count(n, "n", 4)
    if not (_real(ratio) and math.isfinite(ratio) and ratio > 0):
        raise ValueError(f"ratio={ratio!r} is not allowed; it must be a finite SD ratio > 0")
    if not (_real(rho) and -1 < rho < 1):
        raise ValueError(f"rho={rho!r} is not allowed; it must be a correlation strictly between -1 and 1")
    if not (_real(alpha) and 0 < alpha < 1):
        raise ValueError(f"alpha={alpha!r} is not allowed; it must be strictly between 0 and 1")
    return n, float(ratio), float(rho), float(alpha)


def sums_differences_correlation(ratio: float, rho: float) -> float:
    """The population correlation of (VML + Base) and (VML - Base) when SD_VML/SD_Base = `ratio` and
    the pair correlation is `rho`: (θ - 1)/√((θ + 1)² - 4ρ²θ), θ = ratio²."""
    th = ratio * ratio
    return (th - 1.0) / math.sqrt((th + 1.0) ** 2 - 4.0 * rho * rho * th)


def pitman_morgan_power(n: int, ratio: float, rho: float, alpha: float = 0.05) -> float:
    """Power of the two-sided Pitman-Morgan test at `alpha` for n seed pairs, true SD ratio `ratio` and
    pair correlation `rho` (Fisher's z of the sums-differences correlation, variance 1/(n - 3))."""
    n, ratio, rho, alpha = _pm_args(n, ratio, rho, alpha)
    z = abs(math.atanh(sums_differences_correlation(ratio, rho))) * math.sqrt(n - 3)
    c = _st.norm.isf(alpha / 2)
    return float(_st.norm.sf(c - z) + _st.norm.cdf(-c - z))


def correlation_power(n: int, rho: float, alpha: float = 0.05) -> float:
    """Power of the two-sided test of zero correlation at `alpha` for n pairs of true correlation `rho`
    (Fisher's z, variance 1/(n - 3))."""
    n, _, rho, alpha = _pm_args(n, 1.0, rho, alpha)
    z, c = abs(math.atanh(rho)) * math.sqrt(n - 3), _st.norm.isf(alpha / 2)
    return float(_st.norm.sf(c - z) + _st.norm.cdf(-c - z))


def pitman_morgan_power_simulated(n: int, ratio: float, rho: float, alpha: float = 0.05,
                                  n_sim: int = 10_000, seed: int = 0) -> float:
    """Monte Carlo check of `pitman_morgan_power`: the rejection rate of the exact t test on bivariate
    normal pairs with that SD ratio and correlation."""
    n, ratio, rho, alpha = _pm_args(n, ratio, rho, alpha)
    n_sim, rng = _count(n_sim, "n_sim", 1), _rng_seed(seed)
    z1, z2 = rng.standard_normal((2, n_sim, n))
    b = z1
    v = ratio * (rho * z1 + math.sqrt(1 - rho * rho) * z2)
    s, d = v + b, v - b
    s, d = s - s.mean(1, keepdims=True), d - d.mean(1, keepdims=True)
    r = (s * d).sum(1) / np.sqrt((s * s).sum(1) * (d * d).sum(1))
    t = r * math.sqrt(n - 2) / np.sqrt(1 - r * r)
    return float((np.abs(t) > _st.t.isf(alpha / 2, n - 2)).mean())


def sd_trend(arms: Sequence[Any], doses: Sequence[float], n_boot: int = 10_000, seed: int = 0,
             level: float = 0.95) -> tuple[Estimate, float]:
    """The dose-response of the spread: OLS slope of log SD on `doses` across arms whose entry i is
    the same seed in each arm, with a percentile-bootstrap interval over seeds (all arms resampled with
    the same seeds, so the pairing stays) and the two-sided bootstrap p (twice the smaller share of
    slopes on either side of 0). A negative slope: higher doses, smaller spread."""
    if len(arms) != len(doses) or len(arms) < 3:
        raise ValueError(f"{len(arms)} arms and {len(doses)} doses given; need one dose per arm and at least 3 arms")
    if len({np.size(x) for x in arms}) != 1:
        raise ValueError(f"arms have {[np.size(x) for x in arms]} values; paired arms need one value per seed in each")
    a = np.stack([_values(x, f"arm {i}", 3) for i, x in enumerate(arms)])
    x = np.asarray(doses, dtype=float)
    if not np.all(np.isfinite(x)) or np.ptp(x) == 0:
        raise ValueError(f"doses={list(doses)!r} are not allowed; they must be finite and not all equal")
    level, n_boot, rng = _level(level), _count(n_boot, "n_boot", 100), _rng_seed(seed)
    xc = (x - x.mean()) / ((x - x.mean()) ** 2).sum()

    def slopes(logsd: np.ndarray) -> np.ndarray:
        return logsd @ xc

    est = float(slopes(np.log(a.std(axis=1, ddof=1))))
    idx = rng.integers(0, a.shape[1], (n_boot, a.shape[1]))
    with np.errstate(divide="ignore"):
        draws = slopes(np.log(a[:, idx].std(axis=2, ddof=1)).T)
    draws = draws[np.isfinite(draws)]
    p = float(min(1.0, 2 * min((draws <= 0).mean(), (draws >= 0).mean())))
    return Estimate(est, *_interval(draws, level), level), p


def log_sd_ratio_se(n_base: int, n_vml: int, rho: float = 0.0) -> float:
    """Large-sample SE of log(SD_VML/SD_Base) for normal data: √(1/(2(n_b-1)) + 1/(2(n_v-1))) for
    independent arms; with n pairs of correlation ρ, √((1 - ρ²)/(n - 1))."""
    if rho:
        if n_base != n_vml:
            raise ValueError(f"paired arms need equal sizes; got n_base={n_base!r}, n_vml={n_vml!r}")
        return math.sqrt((1 - rho * rho) / (n_base - 1))
    return math.sqrt(1 / (2 * (n_base - 1)) + 1 / (2 * (n_vml - 1)))


def pooled_log_sd_ratio(log_ratios: Sequence[float], ses: Sequence[float], level: float = 0.95) -> dict[str, Any]:
    """Fixed-effect (inverse variance) and random-effects (DerSimonian-Laird) pooled SD_VML/SD_Base
    from per-test log ratios and their SEs, back on the ratio scale, with Cochran's Q, its p and τ².
    (statsmodels' `combine_effects(method_re="dl")` does not truncate a negative τ² here, hence these
    few lines.)"""
    y, se = np.asarray(log_ratios, dtype=float), np.asarray(ses, dtype=float)
    if y.size < 2 or y.size != se.size or not (np.all(np.isfinite(y)) and np.all(se > 0)):
        raise ValueError(f"{y.size} log ratios and {se.size} SEs given; need at least 2 finite ratios, one SE > 0 each")
    z = float(_st.norm.isf((1 - _level(level)) / 2))
    w = 1 / se**2
    fixed = float((w * y).sum() / w.sum())
    q = float((w * (y - fixed) ** 2).sum())
    tau2 = max(0.0, float((q - (y.size - 1)) / (w.sum() - (w**2).sum() / w.sum())))
    w_re = 1 / (se**2 + tau2)
    rand = float((w_re * y).sum() / w_re.sum())
    out: dict[str, Any] = {"q": q, "q_p": float(_st.chi2.sf(q, y.size - 1)), "tau2": tau2}
    for name, m, s_m in (("fixed", fixed, w.sum() ** -0.5), ("random", rand, w_re.sum() ** -0.5)):
        out[name] = Estimate(math.exp(m), math.exp(m - z * s_m), math.exp(m + z * s_m), level)
    return out
