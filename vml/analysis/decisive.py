"""The decisive test (chapter "The decisive test"): its pre-registered design, and its verdicts.

The design was fixed, and committed, before any of its runs was trained:

* three primary tests of "VML lowers the across-seed SD of test accuracy": the `powered` study's
  short arm (ResNet-14, the Table 2 cell, 50 seeds per arm) and long arm (30 seeds per arm, run
  length chosen by the pilot rule `studies.long_epochs`), and the `reactivity-long` study (the
  profile's network, FastNet on `cpu`, on a tenth of CIFAR-10 for 40 epochs, 20 seeds per arm);
* the same three tests at the `gpu` profile (its own network and lengths) form a second column,
  declared before any `gpu` run; its long arm's lengths (60 or 45 epochs, against the short arm's 30)
  were fixed before any `gpu` run too, where they had been the cpu ones (15 or 11), shorter than its
  short arm (`studies.POWERED_EPOCHS_LONG_BY_PROFILE`);
* each: the two-sided F test of equal variances on final-model test accuracy, with Holm's correction
  across the three; the exact F interval for Var. Red. beside a percentile-bootstrap interval;
* reading rule (`read_primary`), applied once an arm has all its runs, never before.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize
from statsmodels.stats.multitest import multipletests

from .. import paper, stats, store, studies
from ..studies import POWERED_N_LONG, POWERED_N_SHORT, get_study
from . import verdicts as vd
from .common import MODEL_NAMES, NOT_NAMED, runs_per_machine, stored_runs

ALPHA = 0.05   # family-wise, Holm across the three primary tests
POWER = 0.8
# the reduction the primary tests look for: the paper's Var. Red. for ResNet-14 on CIFAR-10 (Table 2)
CLAIMED = float(paper.table2().query("dataset == 'CIFAR-10' and model == 'ResNet-14'")["var_red"].iloc[0])
# the primary tests, each (study, arm tag): `primary_label` names each at a profile, and its runs per
# arm are those the profile's grid holds (cpu and gpu: POWERED_N_SHORT, POWERED_N_LONG, SMALL_N)
PRIMARY = (("powered", "short"), ("powered", "long"), ("reactivity-long", "small-data"))
CIFAR10_TRAIN = 50_000  # training images of CIFAR-10
SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = stats.SUPPORTED, stats.NOT_SUPPORTED, stats.INCONCLUSIVE


# ----------------------------------------------------------------------------- design (power)

def detectable_ratio(n: int, power: float = POWER, alpha: float = ALPHA) -> float:
    """The SD ratio (VML/Base, < 1) that the two-sided F test detects with `power` at n runs per arm."""
    return float(optimize.brentq(lambda r: stats.f_test_power(n, r, alpha) - power, 1e-3, 1 - 1e-9))


def observed_ratio(dist_ratio: float, dist_sd: float, floor_sd: float) -> float:
    """Observed-SD ratio when VML scales the distribution-level SD by `dist_ratio` and the test-set
    floor stays: sqrt(k² D² + f²) / sqrt(D² + f²)."""
    return math.sqrt(dist_ratio**2 * dist_sd**2 + floor_sd**2) / math.sqrt(dist_sd**2 + floor_sd**2)


def dist_ratio(obs_ratio: float, dist_sd: float, floor_sd: float) -> float:
    """Inverse of `observed_ratio`: the distribution-level ratio behind an observed ratio (nan if
    the observed ratio is below what the floor alone allows)."""
    k2 = (obs_ratio**2 * (dist_sd**2 + floor_sd**2) - floor_sd**2) / dist_sd**2
    return math.sqrt(k2) if k2 >= 0 else math.nan


def floor_and_spread(correct: Any) -> tuple[float, float, float]:
    """(observed SD, test-set floor, distribution-level SD) in pp from a (runs, examples) 0/1 matrix."""
    v = stats.test_set_variance(correct)
    return 100 * v["observed_sd"], 100 * v["independent_sd"], 100 * v["distribution_sd"]


def power_table(dist_sd: float, floor_sd: float, ns: tuple[int, ...] = (5, 20, POWERED_N_LONG, POWERED_N_SHORT),
                power: float = POWER, alpha: float = ALPHA) -> pd.DataFrame:
    """Per n: the smallest observed-SD reduction the F test detects with `power`, the distribution-level
    reduction it takes on a protocol with this spread and floor, and the power for the paper's claim."""
    rows = []
    for n in ns:
        r = detectable_ratio(n, power, alpha)
        claim = 1 - CLAIMED / 100
        rows.append({"n per arm": n, "detectable (observed, %)": stats.var_reduction(1, r),
                     "detectable (distribution, %)": stats.var_reduction(1, dist_ratio(r, dist_sd, floor_sd)),
                     f"power, {CLAIMED:g}%": stats.f_test_power(n, claim, alpha),
                     f"power, {CLAIMED:g}%, α/3": stats.f_test_power(n, claim, alpha / 3)})
    return pd.DataFrame(rows).set_index("n per arm")


# ----------------------------------------------------------------------------- the pilot

def pilot(profile: str = "cpu", root: Any = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The long arm's pilot (Base, `PILOT_SEEDS`, the pilot's length `studies.long_arm_lengths`): one row per stored run
    (seed, test accuracy in %, the median epoch's wall time in minutes, CPU; the median, because a run
    resumed across sessions counts the pause in the epoch it spans), and a summary: runs stored of all, and once all
    are stored their observed SD, test-set floor and distribution-level SD (pp), the length the declared
    rule `studies.long_epochs` gives, and the length committed in `studies.POWERED_EPOCHS_LONG_CHOSEN`
    (None until committed)."""
    items = [i for i in get_study("powered").grid(profile) if i.tags.get("pilot")]
    runs = [(i.spec, store.read(i.spec, root=root)) for i in items if store.exists(i.spec, root)]
    table = pd.DataFrame([{"seed": spec.seed, "test acc (%)": 100 * rec["test_acc"],
                           "epoch (min)": store.median_epoch_s(rec) / 60, "cpu": store.made_on(rec) or ""}
                          for spec, rec in runs],
                         columns=["seed", "test acc (%)", "epoch (min)", "cpu"]).set_index("seed")
    summary: dict[str, Any] = {"runs": len(runs), "of": len(items), "chosen": studies.POWERED_EPOCHS_LONG_CHOSEN.get(profile)}
    if runs and len(runs) == len(items):
        labels = store.labels(profile, items[0].spec.dataset, root)
        obs, floor, dist = floor_and_spread([rec["arrays"]["preds"] == labels for _, rec in runs])
        summary.update(observed_sd=obs, floor_sd=floor, distribution_sd=dist, ratio=obs / floor,
                       rule=studies.long_epochs(obs, floor, profile))
    return table, summary


def pilot_text(summary: dict[str, Any]) -> str:
    """One sentence on the pilot (`pilot`'s summary): what it showed, the rule's length, what is committed."""
    if "rule" not in summary:
        return (f"{summary['runs']} of the pilot's {summary['of']} runs are stored. Until all are, the long "
                f"arm's length is not chosen, and its other runs are held.")
    s = summary
    text = (f"The pilot's Base runs spread {s['observed_sd']:.2f} pp against a test-set floor of {s['floor_sd']:.2f} pp "
            f"({s['ratio']:.2f} times the floor; {s['distribution_sd']:.2f} pp at the distribution level), so the "
            f"declared rule gives {s['rule']} epochs")
    if s["chosen"] is None:
        return text + ". That length is not committed yet, so the long arm's other runs are still held."
    if s["chosen"] == s["rule"]:
        return text + ", the length committed for the long arm."
    return text + f", but {s['chosen']} epochs are committed: the study does not follow its declared rule."


# ----------------------------------------------------------------------------- reading rule

def read_primary(p_adjusted: float, sd_base: float, sd_vml: float, var_red_high: float,
                 claimed: float = CLAIMED, alpha: float = ALPHA) -> str:
    """The declared reading of one primary test.

    1. "supported" if the Holm-adjusted p < alpha and SD_VML < SD_Base;
    2. "not supported" if the Holm-adjusted p < alpha and SD_VML > SD_Base (VML widens the spread), or
       if the 95% interval's upper end for Var. Red. lies below the claimed reduction;
    3. "inconclusive at this n" otherwise.
    """
    if p_adjusted < alpha:
        return SUPPORTED if sd_vml < sd_base else NOT_SUPPORTED
    if var_red_high < claimed:
        return NOT_SUPPORTED
    return INCONCLUSIVE


def _arm_values(study: str, arm: str, profile: str, root: Any = None) -> dict[str, np.ndarray]:
    out: dict[str, list[float]] = {"base": [], "vml": []}
    for item, rec in stored_runs(study, profile, root, arrays=False):
        if item.tags.get("arm") == arm:
            out[item.spec.loss].append(100 * rec["test_acc"])
    return {k: np.asarray(v) for k, v in out.items()}


def _arm_items(study: str, arm: str, profile: str) -> list[Any]:
    return [i for i in get_study(study).grid(profile) if i.tags.get("arm") == arm]


def post_latch_share(spec: Any) -> float:
    """The share of a CIFAR-10 run's steps that come after σ_ref latches (step W), the last, partial
    batch of each epoch counted."""
    steps = -(-(spec.train_subset or CIFAR10_TRAIN) // spec.batch_size) * spec.epochs
    return 1 - spec.vml.warmup_steps / steps


def primary_label(study: str, arm: str, profile: str) -> str:
    """A primary test's name at `profile`, from its runs' specs: network, share of the training data,
    length (the long arm's, while the pilot has not chosen it: both candidates)."""
    items = _arm_items(study, arm, profile)
    s = items[0].spec
    data = f", {100 * s.train_subset / CIFAR10_TRAIN:.0f}% of the data" if s.train_subset else ""
    held = any(i.held for i in items)
    length = ("{} or {} epochs (the pilot chooses)".format(*studies.long_arm_lengths(profile))
              if held else f"{s.epochs} epochs")
    return f"{MODEL_NAMES.get(s.model, s.model)}{data}, {length}"


def primary_n(study: str, arm: str, profile: str) -> int:
    """A primary test's runs per arm at `profile`: the seeds its grid holds for the arm."""
    return len({i.spec.seed for i in _arm_items(study, arm, profile)})


def spread_table(profile: str = "cpu", root: Any = None) -> pd.DataFrame:
    """Per complete primary test and arm: observed SD of test accuracy, its test-set floor (the SD that
    independent errors on the test images alone give) and the distribution-level SD, in pp; a test
    still pending has no rows (no interim looks)."""
    rows = []
    for study, arm in PRIMARY:
        n = primary_n(study, arm, profile)
        if min(len(v) for v in _arm_values(study, arm, profile, root).values()) < n:
            continue  # counted from the records without their arrays: a pending test decodes nothing
        runs = [(i, r) for i, r in stored_runs(study, profile, root) if i.tags.get("arm") == arm]
        labels = store.labels(profile, runs[0][0].spec.dataset, root)
        by_loss = {loss: [r["arrays"]["preds"] == labels for i, r in runs if i.spec.loss == loss]
                   for loss in ("base", "vml")}
        for loss, correct in by_loss.items():
            obs, floor, dist = floor_and_spread(np.asarray(correct))
            rows.append({"test": primary_label(study, arm, profile), "arm": loss, "runs": len(correct),
                         "observed SD": obs, "floor": floor, "distribution-level SD": dist})
    return pd.DataFrame(rows, columns=["test", "arm", "runs", "observed SD", "floor", "distribution-level SD"])


def spread_text(spreads: pd.DataFrame, test: str, n: int) -> str:
    """One primary test's spread in words, from `spread_table`: each arm's observed SD, test-set floor
    and distribution-level SD, whether the Base spread clears the pilot rule's cut, and the
    distribution-level reduction its n per arm detects with the design's power on that spread. A test
    with no rows (pending) says so and gives no numbers."""
    if test not in set(spreads["test"]):
        return f"{test}: its spread is computed once all its runs are stored (no interim looks)."
    s = spreads[spreads["test"] == test].set_index("arm")
    b, v = s.loc["base"], s.loc["vml"]
    ratio = b["observed SD"] / b["floor"]
    side = "above" if ratio > studies.NOISE_CUT else "not above"
    text = (f"On {test} the Base runs spread {b['observed SD']:.2f} pp against a test-set floor of "
            f"{b['floor']:.2f} pp ({ratio:.3f} times the floor, {side} the pilot rule's cut of "
            f"{studies.NOISE_CUT:g}), a distribution-level SD of {b['distribution-level SD']:.2f} pp; the VML "
            f"runs spread {v['observed SD']:.2f} pp (floor {v['floor']:.2f} pp, distribution-level "
            f"{v['distribution-level SD']:.2f} pp). ")
    ceiling = stats.var_reduction(b["observed SD"], b["floor"])  # VML removing all seed variance: SD = floor
    if ceiling < CLAIMED:
        text += (f"A VML that removed all of the Base runs' seed variance would leave the floor, a Var. Red. of "
                 f"{ceiling:.1f}%. On these SDs (estimates: their own uncertainty is not in this ceiling) the "
                 f"paper's {CLAIMED:.1f}% lies beyond what this protocol leaves to remove, so its verdict says that "
                 "the protocol leaves little room for the claim, not only that VML did not reach it. ")
    if b["distribution-level SD"] == 0:
        return text + "The Base runs show no spread beyond the floor, so no reduction of it can be detected."
    det = power_table(b["distribution-level SD"], b["floor"], ns=(n,)).iloc[0]["detectable (distribution, %)"]
    if math.isnan(det):
        return text + (f"At {n} seeds per arm, even removing all of that spread would stay below what the test "
                       f"detects with {POWER:.0%} power.")
    return text + (f"With the spread and floor of all its Base runs, {n} seeds per arm detect a "
                   f"distribution-level reduction of {det:.0f}% with {POWER:.0%} power.")


def primary_table(profile: str = "cpu", root: Any = None, n_boot: int = 10_000) -> pd.DataFrame:
    """One row per primary test, from the store (see `analyse`)."""
    return analyse([(primary_label(study, arm, profile), primary_n(study, arm, profile),
                     _arm_values(study, arm, profile, root)) for study, arm in PRIMARY], n_boot=n_boot)


def analyse(arms: list[tuple[str, int, dict[str, np.ndarray]]], n_boot: int = 10_000) -> pd.DataFrame:
    """The primary tests' table from (label, runs per arm, {"base": acc, "vml": acc}) in pp.

    An arm is analysed only once it has all its runs (no interim looks); until then its row says how
    many are in. Holm's correction keeps the family at all the tests listed: a test not yet complete
    enters with p = 1, so a verdict reached early never loosens later."""
    rows = []
    for label, n, v in arms:
        row: dict[str, Any] = {"test": label, "n (B/V)": f"{len(v['base'])}/{len(v['vml'])} of {n}",
                               "runs": len(v["base"]) + len(v["vml"]), "of": 2 * n}
        if min(len(v["base"]), len(v["vml"])) < n:
            row["verdict"] = f"pending: {len(v['base']) + len(v['vml'])} of {2 * n} runs stored"
        else:
            ci = stats.sd_ratio_ci(v["base"], v["vml"])
            boot, _ = stats.bootstrap_sd_ratio(v["base"], v["vml"], n_boot=n_boot)
            row.update(base_mean=v["base"].mean(), base_sd=v["base"].std(ddof=1), vml_mean=v["vml"].mean(),
                       vml_sd=v["vml"].std(ddof=1), var_red=stats.var_reduction(1, ci.estimate),
                       f_low=stats.var_reduction(1, ci.high), f_high=stats.var_reduction(1, ci.low),
                       boot_low=stats.var_reduction(1, boot.high), boot_high=stats.var_reduction(1, boot.low),
                       f_p=stats.f_test(v["base"], v["vml"])[1],
                       bf_p=stats.brown_forsythe(v["base"], v["vml"])[1])
            diff = stats.mean_diff_ci(v["base"], v["vml"])  # secondary: VML - Base mean, Welch interval
            row.update(diff=diff.estimate, diff_low=diff.low, diff_high=diff.high)
        rows.append(row)
    t = pd.DataFrame(rows)
    if "f_p" not in t:
        return t
    for p, adj in (("f_p", "f_p_holm"), ("bf_p", "bf_p_holm")):
        t[adj] = multipletests(t[p].fillna(1.0), method="holm")[1]
        t.loc[t[p].isna(), adj] = np.nan
    done = t["f_p"].notna()
    t.loc[done, "verdict"] = [read_primary(r.f_p_holm, r.base_sd, r.vml_sd, r.f_high) for r in t[done].itertuples()]
    t.loc[done, "robust verdict"] = [read_primary(r.bf_p_holm, r.base_sd, r.vml_sd, r.boot_high)
                                     for r in t[done].itertuples()]
    return t




def budget_table(profile: str = "cpu", root: Any = None,
                 names: tuple[str, ...] = ("powered", "reactivity-long")) -> pd.DataFrame:
    """CPU-hours to train the missing runs of the studies `names`, one row per CPU that made stored runs: from
    that CPU's runs of the same network, width and precision, the median wall time per training image
    (a run's median epoch over its images per epoch: a pause in a resumed run does not count). NaN where
    that CPU made no run of a network the missing runs need. Records that name no machine are one row."""
    per_image: dict[str, dict[tuple, list[float]]] = {}
    for path in store.iter_records(profile, root):
        rec = store.read_json(path)
        s = rec["spec"]
        cpu = store.made_on(rec) or NOT_NAMED
        per_image.setdefault(cpu, {}).setdefault((s["model"], s["width"], s["precision"]), []).append(
            store.median_epoch_s(rec) / (s.get("train_subset") or CIFAR10_TRAIN))
    missing = list({i.spec.key(): i.spec for name in names for i in get_study(name).grid(profile)
                    if not store.exists(i.spec, root)}.values())
    rows = []
    for cpu, kinds in sorted(per_image.items()):
        seconds = sum(float(np.median(kinds[k])) * s.epochs * (s.train_subset or CIFAR10_TRAIN)
                      if (k := (s.model, s.width, s.precision)) in kinds else math.nan for s in missing)
        rows.append({"cpu": cpu, "runs timed": sum(map(len, kinds.values())), "runs missing": len(missing),
                     "CPU-hours": seconds / 3600})
    return pd.DataFrame(rows, columns=["cpu", "runs timed", "runs missing", "CPU-hours"]).set_index("cpu")


def machines_table(profile: str = "cpu", root: Any = None) -> pd.DataFrame:
    """The stored runs of each primary test (columns, `primary_label`) per machine kind that trained them
    (rows, `store.made_on`: the CPU model, marked where bf16 ran on fp32 kernels, `vml.bf16`)."""
    labels = [primary_label(study, arm, profile) for study, arm in PRIMARY]
    return runs_per_machine(((label, rec) for (study, arm), label in zip(PRIMARY, labels)
                             for item, rec in stored_runs(study, profile, root, arrays=False)
                             if item.tags.get("arm") == arm), labels)


# ----------------------------------------------------------------------------- what VML does

def _runs(study: str, profile: str, root: Any, arm: str | None = None) -> list[tuple[Any, dict[str, Any], dict]]:
    return [(i.spec, rec, i.tags) for i, rec in stored_runs(study, profile, root) if arm is None or i.tags.get("arm") == arm]


def gradient_factor(lam: np.ndarray, delta: np.ndarray, threshold: float, w_vml: float = 1.0) -> np.ndarray:
    """dL/dℓ_t = 1 + w·λ_t·ψ_Δ(δ_t) (eq. 10) per step, from the logged λ_t and δ_t (abs threshold Δ)."""
    psi = np.where(np.abs(delta) <= threshold, delta / threshold, np.sign(delta))
    return 1.0 + w_vml * lam * psi


def controller_runs(study: str, profile: str = "cpu", root: Any = None, arm: str | None = None) -> pd.DataFrame:
    """Per stored run (with its grid tags): σ_ref (σ at the latch step W), post-latch mean |δ| and σ,
    the share of steps whose gradient factor is negative (the step reversed), of post-latch steps with
    λ above λ_base, and the gradient factor's mean and 5-95% range per epoch (Base runs: what
    the observer controller would have applied)."""
    rows = []
    for spec, rec, tags in _runs(study, profile, root, arm):
        c, it = spec.vml, rec["iters"]
        steps = rec["steps_per_epoch"]
        g = gradient_factor(it["lambda"], it["delta"], c.delta, c.w_vml)
        post = slice(c.warmup_steps + 1, None)
        row = {**tags, "loss": spec.loss, "seed": spec.seed, "reversed_share": float((g < 0).mean()),
               "sigma_ref": float(it["sigma"][c.warmup_steps]),
               "post_abs_delta": float(np.abs(it["delta"][post]).mean()), "post_sigma": float(it["sigma"][post].mean()),
               "lambda_above_base": float((it["lambda"][post] > c.lambda_base + 1e-9).mean()),
               "lambda_max_share": float((it["lambda"][post] >= c.lambda_max - 1e-9).mean()),
               "post_latch_share": 1 - (c.warmup_steps + 1) / len(g)}
        for e in range(len(g) // steps):
            ge = g[e * steps:(e + 1) * steps]
            row[f"factor_mean_e{e + 1}"] = float(ge.mean())
            row[f"factor_p5_e{e + 1}"], row[f"factor_p95_e{e + 1}"] = map(float, np.percentile(ge, [5, 95]))
        rows.append(row)
    return pd.DataFrame(rows)


def controller_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Arm means (Base, VML) of `controller_runs`' columns, σ_ref's across-seed SD and coefficient of
    variation, and the VML/Base ratio of post-latch mean |δ|."""
    g = runs.select_dtypes("number").drop(columns="seed").groupby(runs["loss"])
    t = g.mean().T
    t.loc["sigma_ref_sd"] = g["sigma_ref"].std(ddof=1)
    t.loc["sigma_ref_cv"] = t.loc["sigma_ref_sd"] / t.loc["sigma_ref"]
    if {"base", "vml"} <= set(t.columns):
        t["vml / base"] = t["vml"] / t["base"]
    return t


def churn_pairs(study: str, profile: str = "cpu", root: Any = None, arm: str | None = None) -> pd.DataFrame:
    """Prediction churn (share of test images predicted differently) between the Base and VML runs of
    the same seed, against churn between different seeds within each arm."""
    preds = {(s.loss, s.seed): r["arrays"]["preds"] for s, r, _ in _runs(study, profile, root, arm)}
    seeds = sorted({seed for loss, seed in preds if (("base", seed) in preds and ("vml", seed) in preds)})
    if len(seeds) < 2:
        return pd.DataFrame(columns=["pairs", "n", "mean", "sd"])
    rows = [("same seed, Base vs VML", [float((preds["base", s] != preds["vml", s]).mean()) for s in seeds])]
    for loss in ("base", "vml"):
        m = stats.pairwise_churn(np.stack([preds[loss, s] for s in seeds]))
        rows.append((f"different seeds, {loss}", list(m[np.triu_indices(len(seeds), k=1)])))
    return pd.DataFrame([{"pairs": name, "n": len(v), "mean": 100 * np.mean(v), "sd": 100 * np.std(v, ddof=1)}
                         for name, v in rows]).set_index("pairs")


# ----------------------------------------------------------------------------- which interval

def interval_coverage(n: int, tails: str = "normal", n_sim: int = 1_500, n_boot: int = 1_000,
                      level: float = 0.95, seed: int = 0) -> dict[str, float]:
    """Share of `n_sim` simulated experiments (n runs per arm, equal true SDs) whose interval for
    SD_VML/SD_Base covers 1: the exact F interval and the percentile bootstrap. `tails`: "normal" or
    "t4" (Student t with 4 degrees of freedom: heavier tails, as a few outlying seeds give)."""
    if tails not in ("normal", "t4"):
        raise ValueError(f"tails={tails!r} is not allowed; use 'normal' or 't4'")
    rng = np.random.default_rng(seed)
    draw = (lambda size: rng.standard_normal(size)) if tails == "normal" else (lambda size: rng.standard_t(4, size))
    hits = {"F": 0, "bootstrap": 0}
    for i in range(n_sim):
        b, v = draw(n), draw(n)
        f = stats.sd_ratio_ci(b, v, level)
        boot, _ = stats.bootstrap_sd_ratio(b, v, n_boot=n_boot, seed=i, level=level)
        hits["F"] += f.low <= 1 <= f.high
        hits["bootstrap"] += boot.low <= 1 <= boot.high
    return {k: h / n_sim for k, h in hits.items()}


def _whole(x: float) -> str:
    """`x` rounded to a whole number, without the sign of a negative zero ("-0%" reads as a finding)."""
    return f"{round(float(x)):d}"  # an int: no negative zero


def ceilings(spreads: pd.DataFrame) -> dict[str, float]:
    """Per complete test of `spread_table`: the largest Var. Red. (%) its protocol allows, that of an SD at
    the Base runs' test-set floor (VML removing all seed variance)."""
    base = spreads[spreads["arm"] == "base"].set_index("test")
    return {test: float(stats.var_reduction(r["observed SD"], r["floor"])) for test, r in base.iterrows()}


def readings(t: pd.DataFrame, spreads: pd.DataFrame | None = None, claimed: float = CLAIMED) -> pd.DataFrame:
    """The book's display verdict (`vml.analysis.verdicts.judge`) of each complete test of `primary_table`,
    beside the declared rule's (`read_primary`, kept as it was computed): on the F pair (F interval,
    Holm-adjusted F test) and on the robust pair (bootstrap interval, Holm-adjusted Brown-Forsythe), with
    the ceiling the test's Base spread allows (from `spread_table`; none when not given)."""
    cap = ceilings(spreads) if spreads is not None and len(spreads) else {}
    rows = []
    for r in t.to_dict("records"):
        if pd.isna(r.get("f_p")):
            continue
        f = vd.judge(r["f_low"], r["f_high"], claimed, ceiling=cap.get(r["test"]), p=r["f_p_holm"],
                     declared=r["verdict"])
        b = vd.judge(r["boot_low"], r["boot_high"], claimed, ceiling=cap.get(r["test"]), p=r["bf_p_holm"],
                     declared=r["robust verdict"])
        rows.append({"test": r["test"], "reading": f.label, "why": f.reason, "declared rule": r["verdict"],
                     "robust reading": b.label, "declared rule (robust)": r["robust verdict"],
                     "ceiling": cap.get(r["test"], math.nan)})
    return pd.DataFrame(rows, columns=["test", "reading", "why", "declared rule", "robust reading",
                                       "declared rule (robust)", "ceiling"])


def answer_sentence(t: pd.DataFrame, spreads: pd.DataFrame, claimed: float = CLAIMED) -> str:
    """The decisive test's result in one quotable sentence per complete test, in the book's vocabulary:
    what each test rules out and what it leaves possible (from `primary_table` and `spread_table`)."""
    done = [r for r in t.to_dict("records") if pd.notna(r.get("f_p"))]
    if not done:
        return answer(t)
    read = readings(t, spreads, claimed).set_index("test")
    parts = []
    for r in done:
        g = read.loc[r["test"]]
        parts.append(f"{r['test']} ({r['of'] // 2} seeds per arm): SD {r['base_sd']:.2f} pp (Base) and "
                     f"{r['vml_sd']:.2f} pp (VML), a reduction of {_whole(r['var_red'])}% "
                     f"(95% CI {_whole(r['f_low'])}% to {_whole(r['f_high'])}%): *{g['reading']}*, "
                     f"{short_why(g)}")
    return "; ".join(parts) + "."


def short_why(g: pd.Series) -> str:
    """A reading's reason without the interval it repeats and without the declared rule (said elsewhere)."""
    why = g["why"].split(" (declared rule:")[0]
    return why.split(" (interval ")[0]


def answer(t: pd.DataFrame) -> str:
    """The decisive test's answer in two quotable sentences, from `primary_table`."""
    stored, total = int(t["runs"].sum()), int(t["of"].sum())
    done = [r for r in t.to_dict("records") if pd.notna(r.get("f_p"))]
    if not done:
        n = (t["of"] // 2).astype(int)
        return (f"The decisive test ({len(t)} pre-registered Base-vs-VML comparisons, {n.min()} to {n.max()} seeds "
                f"per arm) has {stored} of its {total} runs stored; it gives no verdict before each comparison "
                "is complete.")
    parts = []
    for r in done:
        robust = "" if r["robust verdict"] == r["verdict"] else f" (robust check: {r['robust verdict']})"
        parts.append(f"{r['test']}: SD {r['base_sd']:.2f} pp (Base) vs {r['vml_sd']:.2f} pp (VML), "
                     f"Var. Red. {_whole(r['var_red'])}% (95% CI {_whole(r['f_low'])}% to {_whole(r['f_high'])}%, "
                     f"Holm-adjusted p = {r['f_p_holm']:.2g}), {r['verdict']}{robust}")
    pending = [r["test"] for r in t.to_dict("records") if pd.isna(r.get("f_p"))]
    wait = f"Not yet complete, so no verdict: {'; '.join(pending)}. " if pending else ""
    return f"The decisive test: {'; '.join(parts)}. {wait}{stored} of its {total} runs are stored."


def _reading(p_holm: float, high: float, verdict: str, interval: str, test: str, claimed: float) -> str:
    """Why the reading rule gave `verdict` on one (interval, test) pair."""
    if p_holm < ALPHA:
        return f"{test} Holm-adjusted p = {p_holm:.2g} < {ALPHA:g}: {verdict}"
    if high < claimed:
        return (f"{test} Holm-adjusted p = {p_holm:.2g}, and the {interval} interval's upper end, "
                f"{high:.1f}%, falls short of the claimed {claimed:.1f}%: {verdict}")
    return (f"{test} Holm-adjusted p = {p_holm:.2g}, and the {interval} interval reaches the claimed "
            f"{claimed:.1f}% (upper end {high:.1f}%): {verdict}")


def result_text(t: pd.DataFrame, claimed: float = CLAIMED) -> str:
    """Each complete primary test of `primary_table` in words: the two SDs and means, Var. Red. with
    both intervals at one decimal (so a verdict that turns on the claim's boundary shows it), and why
    the reading rule gives each verdict. Pending tests are named with their counts."""
    out = []
    for r in t.to_dict("records"):
        if pd.isna(r.get("f_p")):
            out.append(f"{r['test']}: {r['verdict']}.")
            continue
        n = r["of"] // 2  # runs per arm
        robust = _reading(r["bf_p_holm"], r["boot_high"], r["robust verdict"], "bootstrap",
                          "Robust pair: Brown-Forsythe", claimed)
        same = "" if r["verdict"] == r["robust verdict"] else (
            " The two readings differ, so neither verdict stands alone: the table shows both.")
        out.append(
            f"{r['test']} ({n} seeds per arm): the Base runs spread {r['base_sd']:.2f} pp and the VML runs "
            f"{r['vml_sd']:.2f} pp, a Var. Red. of {r['var_red']:.1f}% (F interval {r['f_low']:.1f}% to "
            f"{r['f_high']:.1f}%, bootstrap {r['boot_low']:.1f}% to {r['boot_high']:.1f}%). "
            f"{_reading(r['f_p_holm'], r['f_high'], r['verdict'], 'F', 'F test:', claimed)}. "
            f"{robust}."
            f"{same} Mean accuracy {r['base_mean']:.2f}% (Base) and {r['vml_mean']:.2f}% (VML): VML − Base "
            f"{r['diff']:+.2f} pp, Welch 95% CI {r['diff_low']:+.2f} to {r['diff_high']:+.2f} pp.")
    return " ".join(out)


# ----------------------------------------------------------------------------- for readers

def _sig(x: Any, digits: int = 3) -> str:
    """`x` to `digits` significant figures, '–' for a missing value (no 'nan', no '1.0000e+00')."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{float(x):.{digits}g}"


def primary_display(t: pd.DataFrame) -> pd.DataFrame:
    """`primary_table` for readers: one column per test, rows with names in words, numbers to 2-3
    significant figures, intervals as '[low, high]'; a pending test shows its count and '–'."""
    rows = {}
    for r in t.to_dict("records"):
        done = pd.notna(r.get("f_p"))
        iv = lambda lo, hi: f"[{r[lo]:.1f}, {r[hi]:.1f}]" if done else "–"  # noqa: E731
        rows[r["test"]] = {
            "runs per arm (Base/VML)": r["n (B/V)"],
            "mean accuracy, Base / VML (%)": f"{r['base_mean']:.2f} / {r['vml_mean']:.2f}" if done else "–",
            "across-seed SD, Base / VML (pp)": f"{r['base_sd']:.3f} / {r['vml_sd']:.3f}" if done else "–",
            "Var. Red. (%)": f"{r['var_red']:.1f}" if done else "–",
            "95% F interval (%)": iv("f_low", "f_high"),
            "95% bootstrap interval (%)": iv("boot_low", "boot_high"),
            "F test p (Holm-adjusted)": f"{_sig(r.get('f_p'), 2)} ({_sig(r.get('f_p_holm'), 2)})" if done else "–",
            "Brown-Forsythe p (Holm-adjusted)": (f"{_sig(r.get('bf_p'), 2)} ({_sig(r.get('bf_p_holm'), 2)})"
                                                 if done else "–"),
            "VML − Base mean, pp [95% CI]": (f"{r['diff']:+.2f} [{r['diff_low']:+.2f}, {r['diff_high']:+.2f}]"
                                            if done else "–"),
            "declared rule: F pair / robust pair": (f"{r['verdict']} / {r['robust verdict']}" if done
                                                    else r["verdict"]),
        }
    return pd.DataFrame(rows)


_CONTROLLER_NAMES = {
    "reversed_share": "share of steps with the gradient reversed",
    "sigma_ref": "σ_ref (σ at the latch step W)",
    "post_abs_delta": "mean |δ| after the latch",
    "post_sigma": "mean σ after the latch",
    "lambda_above_base": "share of post-latch steps with λ > λ_base",
    "lambda_max_share": "share of post-latch steps at λ_max",
    "post_latch_share": "share of steps after the latch",
    "sigma_ref_sd": "σ_ref, across-seed SD",
    "sigma_ref_cv": "σ_ref, coefficient of variation",
}


def controller_display(summary: pd.DataFrame) -> pd.DataFrame:
    """`controller_summary` for readers: rows named in words (the per-epoch gradient factor as 'gradient
    factor, epoch k: mean / 5th / 95th percentile'), columns Base, VML, VML / Base, 3 significant figures."""
    def name(key: str) -> str:
        if key.startswith("factor_"):
            stat, epoch = key[len("factor_"):].rsplit("_e", 1)
            what = {"mean": "mean", "p5": "5th percentile", "p95": "95th percentile"}.get(stat, stat)
            return f"gradient factor, epoch {epoch}: {what}"
        return _CONTROLLER_NAMES.get(key, key)

    out = summary.rename(index=name, columns={"base": "Base", "vml": "VML", "vml / base": "VML / Base"})
    out.columns.name = None
    return out.map(lambda x: _sig(x, 3))
