"""Fig. 1: does λ lead the test loss? Epoch means, z-scores, the cross-correlation and the standardized regression."""
from __future__ import annotations

from typing import Any

import numpy as np

from .base import Reactivity, _values, _count

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


def implied_pairs(r: float, p: float, max_n: int = 100_000) -> int:
    """The number of pairs n at which Pearson's two-sided test of a correlation r gives the p-value closest
    to `p` (on the log scale): how many pairs a reported (r, p) implies. Raises where no n up to `max_n`
    comes within a factor of 2 of `p`."""
    from scipy import stats as st
    if not (-1 < r < 1) or r == 0:
        raise ValueError(f"r must lie in (-1, 1) and not be 0; got {r!r}")
    if not (0 < p < 1):
        raise ValueError(f"p must lie in (0, 1); got {p!r}")
    n = np.arange(4, max_n + 1)
    t = abs(r) * np.sqrt((n - 2) / (1 - r * r))
    logp = np.log(2) + st.t.logsf(t, n - 2)
    i = int(np.argmin(np.abs(logp - np.log(p))))
    if abs(logp[i] - np.log(p)) > np.log(2):
        raise ValueError(f"no n up to {max_n} gives p near {p!r} at r = {r!r}")
    return int(n[i])
