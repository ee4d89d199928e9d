"""Containers (`Estimate`, `Summary`, `Comparison`, `Reactivity`) and argument checks shared by the statistics."""
from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

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
