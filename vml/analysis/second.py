"""The second test (chapter "The second test"): its pre-registered design, and its verdicts.

The design was fixed, and committed, before any of its runs was trained (`studies.SECOND_*`):

* dose arms: VML on the decisive test's 5-epoch ResNet-14 protocol with λ_base and λ_max times a dose k,
  the doses chosen from the controller series of the stored Table 5 runs alone (`dose_for`), each paired
  by seed with the stored Base runs (dose 0) and Table 5 VML runs (dose 1) of seeds 1-50;
* the TTA arm: Base and VML (Table 5) on the 15-epoch protocol, new seeds 31-80, TTA accuracy's SD the
  endpoint (the lead found after the fact on the decisive test's seeds 1-30);
* three primary tests, each the two-sided Pitman-Morgan test of equal variances of same-seed pairs,
  with Holm's correction across the three; the exact Pitman-Morgan interval for Var. Red. beside a
  bootstrap over seed pairs; the unpaired F test and bootstrap as secondary;
* the dose-response: the slope of log SD against k over doses 0, 1 and the new doses (`stats.sd_trend`);
* reading rule (`read_second`) and equivalence statement (`equivalent_below`), applied once an arm has
  all its runs, never before.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .. import stats, studies
from ..studies import SECOND_DOSES, get_study
from .common import stored_runs
from .decisive import ALPHA, CLAIMED, POWER, gradient_factor

# the post-latch mean |gradient factor - 1| the two new doses aim at (the issue's ±10% and ±30%)
TARGET_EXCURSION = (0.10, 0.30)
# the equivalence margin: the smallest SD reduction that would matter to a user (20% lower SD: a mean
# over seeds as precise with 36% fewer seeds); declared before any run of this design
MARGIN = 20.0
N_BOOT = 10_000   # every bootstrap of this design, seed 0
PRIMARY = ("dose", "dose", "tta")  # the three primary tests: the two new doses, then the TTA arm
SUPPORTED, OPPOSITE = "supported", "opposite"
SMALLER, INCONCLUSIVE = "smaller than claimed", "inconclusive at this n"


# ----------------------------------------------------------------------------- choosing the doses

def _short_runs(profile: str, loss: str, root: Any = None, arrays: bool = True):
    return [(i.spec, r) for i, r in stored_runs("powered", profile, root, loss=loss, arrays=arrays)
            if i.tags.get("arm") == "short"]


def post_latch_excursion(spec: Any, rec: dict[str, Any]) -> float:
    """A run's post-latch mean |dL/dℓ - 1| = mean |w·λ_t·ψ_Δ(δ_t)| over the steps after σ_ref latches,
    from its logged λ_t and δ_t."""
    c, it = spec.vml, rec["iters"]
    g = gradient_factor(it["lambda"], it["delta"], c.delta, c.w_vml)
    return float(np.abs(g[c.warmup_steps + 1:] - 1.0).mean())


def dose_choice(profile: str = "cpu", root: Any = None) -> dict[str, Any]:
    """The declared dose rule, from the controller series of the powered short arm's Table 5 VML runs (no
    accuracy read): their mean post-latch excursion m, and for each target excursion e the dose e/m
    and the whole multiple nearest to it. At dose k (λ_base and λ_max times k, λ_min = 0) λ_t is k times
    Table 5's on the same loss sequence, so the excursion is k·m on it (`tests/test_second.py` replays
    one). Also the Base runs' excursion (the controller as an observer) as a check."""
    vml = [post_latch_excursion(s, r) for s, r in _short_runs(profile, "vml", root)]
    base = [post_latch_excursion(s, r) for s, r in _short_runs(profile, "base", root)]
    m = float(np.mean(vml))
    return {"runs": len(vml), "excursion": m, "excursion_sd": float(np.std(vml, ddof=1)),
            "excursion_base": float(np.mean(base)),
            "exact": tuple(e / m for e in TARGET_EXCURSION),
            "doses": tuple(int(round(e / m)) for e in TARGET_EXCURSION)}


# ----------------------------------------------------------------------------- power

def pair_correlation(study: str, arm: str, value: str = "test_acc", profile: str = "cpu", root: Any = None) -> float:
    """Same-seed correlation of `value` between the Base and VML runs of a stored arm."""
    by = {}
    for item, rec in stored_runs(study, profile, root, arrays=False):
        if item.tags.get("arm") == arm:
            by.setdefault(item.spec.seed, {})[item.spec.loss] = rec[value]
    pairs = np.array([[d["base"], d["vml"]] for d in by.values() if len(d) == 2])
    return float(np.corrcoef(pairs.T)[0, 1])


def tta_lead(profile: str = "cpu", root: Any = None) -> dict[str, float]:
    """The lead this design confirms or drops: on the decisive test's long arm (seeds 1-30), the Var. Red.
    of TTA accuracy with its F interval and p, and the same-seed correlation of TTA accuracy."""
    vals: dict[str, list[float]] = {"base": [], "vml": []}
    for item, rec in stored_runs("powered", profile, root, arrays=False):
        if item.tags.get("arm") == "long":
            vals[item.spec.loss].append(100 * rec["tta_acc"])
    b, v = np.asarray(vals["base"]), np.asarray(vals["vml"])
    ratio = stats.sd_ratio_ci(b, v)
    return {"var_red": stats.var_reduction(1, ratio.estimate), "low": stats.var_reduction(1, ratio.high),
            "high": stats.var_reduction(1, ratio.low), "f_p": stats.f_test(b, v)[1],
            "rho": pair_correlation("powered", "long", "tta_acc", profile, root)}


def power_table(rho_dose: float, rho_tta: float, lead: float, n_dose: int = studies.SECOND_N_DOSE,
                n_tta: int = len(studies.SECOND_TTA_SEEDS)) -> pd.DataFrame:
    """Per primary test: pairs, the pair correlation assumed, the effect it is powered for (the paper's
    claim for the doses, the lead's size for the TTA arm), its power at α and at α/3 (Holm's first
    step), and the same at no correlation (what a dose that decorrelates the pairs leaves)."""
    rows = []
    for name, n, rho, effect in (("dose arms (each)", n_dose, rho_dose, CLAIMED), ("TTA arm", n_tta, rho_tta, lead)):
        r = 1 - effect / 100
        rows.append({"test": name, "pairs": n, "pair correlation": rho, "effect (Var. Red., %)": effect,
                     "power at α": stats.pitman_morgan_power(n, r, rho, ALPHA),
                     "power at α/3": stats.pitman_morgan_power(n, r, rho, ALPHA / 3),
                     "power at α/3, ρ = 0": stats.pitman_morgan_power(n, r, 0.0, ALPHA / 3)})
    return pd.DataFrame(rows).set_index("test")


def detectable_reduction(n: int, rho: float, power: float = POWER, alpha: float = ALPHA) -> float:
    """The Var. Red. (%) the Pitman-Morgan test detects with `power` at n pairs of correlation rho."""
    from scipy import optimize
    r = optimize.brentq(lambda x: stats.pitman_morgan_power(n, x, rho, alpha) - power, 1e-3, 1 - 1e-9)
    return stats.var_reduction(1, r)


# ----------------------------------------------------------------------------- reading rule

def read_second(p_holm: float, sd_base: float, sd_vml: float, var_red_high: float, claimed: float) -> str:
    """The declared reading of one primary test of the second design.

    1. "supported" if the Holm-adjusted p < α and SD_VML < SD_Base;
    2. "opposite" if the Holm-adjusted p < α and SD_VML > SD_Base (VML widens the spread);
    3. "smaller than claimed" if the paired 95% interval's upper end for Var. Red. lies below `claimed`
       (the paper's 33.3% for the dose arms, the lead's size for the TTA arm);
    4. "inconclusive at this n" otherwise.
    """
    if p_holm < ALPHA:
        return SUPPORTED if sd_vml < sd_base else OPPOSITE
    return SMALLER if var_red_high < claimed else INCONCLUSIVE


def equivalent_below(var_red_high: float, margin: float = MARGIN) -> bool:
    """The equivalence statement: "VML reduces the spread by less than `margin`%" holds when the upper
    end of the 95% interval for Var. Red. lies below the margin."""
    return bool(var_red_high < margin)


def dose_items(profile: str = "cpu") -> dict[int, list[Any]]:
    """The second test's dose arms: dose -> its grid items, seed order (0 = Base, 1 = Table 5)."""
    out: dict[int, list[Any]] = {}
    for i in get_study("second-test").grid(profile):
        if i.tags["arm"] == "dose":
            out.setdefault(i.tags["dose"], []).append(i)
    return out


def design_doses() -> tuple[int, ...]:
    """The doses of the dose arms, Base and Table 5 first: (0, 1, *SECOND_DOSES)."""
    return (0, 1, *SECOND_DOSES)


def arm_label(item: Any) -> str:
    """An arm of the second test in words: 'dose 5' (0: Base, 1: Table 5) or 'TTA, Base' / 'TTA, VML'."""
    if item.tags["arm"] == "dose":
        return {0: "dose 0 (Base)", 1: "dose 1 (Table 5)"}.get(item.tags["dose"], f"dose {item.tags['dose']}")
    return f"15 epochs, {'Base' if item.spec.loss == 'base' else 'VML'}"


def progress(profile: str = "cpu", root: Any = None) -> pd.DataFrame:
    """Runs stored per arm of the second test, of the runs declared (counts only: no values)."""
    from .. import store
    rows: dict[str, list[int]] = {}
    for i in get_study("second-test").grid(profile):
        r = rows.setdefault(arm_label(i), [0, 0])
        r[0] += int(store.exists(i.spec, root))
        r[1] += 1
    return pd.DataFrame([{"arm": k, "stored": a, "of": b} for k, (a, b) in rows.items()]).set_index("arm")


def pairs_for_power(var_red: float, rho: float, power: float = POWER, alpha: float = ALPHA) -> int:
    """The fewest seed pairs at which the Pitman-Morgan test has `power` for a Var. Red. of `var_red`%
    at pair correlation rho."""
    r = 1 - var_red / 100
    n = 4
    while stats.pitman_morgan_power(n, r, rho, alpha) < power:
        n += 1
    return n
