"""How many seeds: seed groups (Table 3), the seed effect and Pareto fronts, the F test's power, and per-example predictions (churn, test-set noise floor)."""
from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np
import pandas as pd
from scipy import integrate as _integrate
from scipy import stats as _st

from .base import _values, _real, _level, _count, _rng_seed, _interval

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


def normal_seed_effect(n: int) -> float:
    """The expected top-half minus bottom-half mean gap of n values (n even) drawn from a normal
    distribution with SD 1: twice the mean of the expected top n/2 normal order statistics, each
    E[X_(i)] = n·C(n-1, i-1)·∫ x φ(x) Φ(x)^(i-1) (1-Φ(x))^(n-i) dx (numerical quadrature)."""
    n = _count(n, "n", 2)
    if n % 2:
        raise ValueError(f"n={n} is not allowed; the top and bottom halves need an even n")

    def order_stat(i: int) -> float:
        def f(x: float) -> float:
            return x * _st.norm.pdf(x) * _st.norm.cdf(x) ** (i - 1) * _st.norm.sf(x) ** (n - i)
        return n * math.comb(n - 1, i - 1) * _integrate.quad(f, -np.inf, np.inf)[0]

    return float(2.0 * sum(order_stat(i) for i in range(n // 2 + 1, n + 1)) / (n // 2))


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
