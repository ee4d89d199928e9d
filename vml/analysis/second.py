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

import collections
from typing import Any

import numpy as np
import pandas as pd
from statsmodels.stats.multitest import multipletests

from .. import stats, store, studies
from ..studies import SECOND_DOSES, get_study
from .common import NOT_NAMED, runs_per_machine, stored_runs
from .decisive import ALPHA, CLAIMED, POWER, gradient_factor

# the post-latch mean |gradient factor - 1| the two new doses aim at (the issue's ±10% and ±30%)
TARGET_EXCURSION = (0.10, 0.30)
# the equivalence margin: the smallest SD reduction that would matter to a user (20% lower SD: a mean
# over seeds as precise with 36% fewer seeds); declared before any run of this design
PREREGISTRATION = "7f7b17f"  # the commit that fixed this design, before the first of its new runs started
# the commit that declared the machine check (`machine_check`), after the dose arms' results were read and
# before any of its runs started
MACHINE_CHECK_DECLARED = "226780f"
# the commits that added rules to the check's analysis after its declaration, each before any of its runs started
MACHINE_CHECK_RULES = ("a063389", "a2f780b")
MARGIN = 20.0
P_FLOOR = 1e-6  # below this a normal-theory p of 50 pairs says more than its tails' normality can support
# every change to the design or its reading after PREREGISTRATION, in order: (commit, what changed, when, its effect)
DEVIATIONS = (
    ("2a0396d", "Holm's correction counts a test still pending as p = 1",
     "minutes after the pre-registration, before the first new run had finished",
     "none on the verdicts: all three tests were complete when read"),
    (MACHINE_CHECK_DECLARED, f"the machine check added (Base and dose {studies.MACHINE_CHECK_DOSE} trained again, each seed's two runs "
     "on one machine)",
     "after the dose arms' results were read, before any of its runs started",
     "it can explain the dose results, never change their verdicts"),
    ("a0c7289", "a failed run is one whose loss was non-finite at any step or epoch (declared: one that stops on a "
     "non-finite loss, which training never does)", "after most of the runs were stored",
     "none: no stored run failed by either definition"),
    *((c, "a rule of the machine check's analysis (which seeds leave which of its rows)",
       "before any of its runs started", "none on the verdicts") for c in MACHINE_CHECK_RULES),
    ("6530c97", "each arm's Shapiro-Wilk p, and the pair bootstrap checked against each reading",
     "after the dose arms' data were seen", "reporting only"),
    ("9ddc545", "the machine check's one-machine reading says that at least part of the loss of correlation came "
     "with the machine, not all of it", "before its last runs were stored, so before any of its statistics was "
     "computed", "wording only: the rule's decision is the same"),
    ("168da8c", "what a confirmatory study of the TTA lead would need", "after all three tests were read",
     "reporting only"),
    ("89bfd4e", f"\"if at all\" after an equivalence statement whose interval holds 0; the bootstrap checked "
     f"against the margin; p below {P_FLOOR:.0e} shown as \"< {P_FLOOR:.0e}\"", "after all three tests were read",
     "reporting only: no verdict changed"),
    ("15ad03c", "whether the dose-response line's SD lies inside each dose's observed 95% interval",
     "after all three tests were read", "reporting only: the declared trend reading is the same"),
    ("836b15f", "the machine check's text says when no replica trained on its original's machine kind, and gives the "
     "one-machine paired mean difference", "after all its runs were stored and read", "reporting only"),
)
N_BOOT = 10_000   # every bootstrap of this design, seed 0
PRIMARY = ("dose", "dose", "tta")  # the three primary tests: the two new doses, then the TTA arm
SUPPORTED, OPPOSITE = "supported", "opposite"
SMALLER, INCONCLUSIVE = "smaller than claimed", "inconclusive at this n"


# ----------------------------------------------------------------------------- the machine check

def machine_check(profile: str = "cpu", root: Any = None) -> pd.DataFrame:
    """The machine check (`studies.MACHINE_CHECK_*`, declared after the dose arms' results were read: it
    can explain their verdicts, never change them). Three paired comparisons of test accuracy over the
    check's seeds, each a `paired_row` (the first side in the Base columns) with the 95% Fisher interval
    of its pair correlation (`rho_low`, `rho_high`) and the machine kinds of each side (`machines`):

    1. dose k vs Base, both replicas: the dose, on the seeds whose two replicas trained on one machine kind;
    2. Base, stored original vs replica, and 3. dose k, stored original vs replica: the machine alone,
       on the seeds whose two runs were trained on different machine kinds (`pairs` counts those).

    A seed with a run resumed on another machine kind (`store.made_on`, `vml.train.RunRecord.trained_on`)
    leaves the rows that run is in, and so does, in rows 2 and 3, a seed whose original names no machine
    (whether it trained on the replica's kind is unknown); each row's `machines` says how many left. Rows 2
    and 3 also count the seeds whose replica trained on its original's machine kind (`same_kind`), of those
    the ones trained on the same machine by every condition of bitwise reproducibility (`same_machine`:
    `vml.train.machine_info` equal, no resume on another machine), and how many of those repeated the
    original's results exactly (`same_machine_equal`: test, EMA and TTA accuracy and test loss): all of
    them, if training is deterministic as it should be. A row with fewer than 4 pairs gives counts only, and
    every row does until every run of the check is stored."""
    from .. import store
    k = studies.MACHINE_CHECK_DOSE
    grid = get_study("machine-check").grid(profile)
    seeds = sorted({i.spec.seed for i in grid})
    rep = {(i.tags["dose"], i.spec.seed): i.spec for i in grid}
    orig = {(d, i.spec.seed): i.spec for d in (0, k) for i in dose_items(profile)[d] if i.spec.seed in seeds}
    stored = sum(store.exists(sp, root) for sp in rep.values())
    labels = (f"dose {k} vs Base, both replicas (one machine per seed)",
              "Base: stored original vs replica", f"dose {k}: stored original vs replica")
    if stored < len(grid):
        return pd.DataFrame([{"test": lab, "stored": stored, "runs": len(grid)} for lab in labels]).set_index("test")
    runs = {}
    for side, specs in (("rep", rep), ("orig", orig)):
        for key, sp in specs.items():
            runs[side, *key] = _check_run(store.read(sp, root=root, arrays=False))
    rows = []
    for lab, (a, b) in zip(labels, ((("rep", 0), ("rep", k)), (("orig", 0), ("rep", 0)), (("orig", k), ("rep", k)))):
        within = lab == labels[0]  # the replicas: seeds whose pair trained on one machine kind; else: on two
        # a seed is on neither side of the question where a run was resumed on another machine kind
        # (`store.made_on` joins its kinds) or, across machines, where the original names no machine
        why = {s: _left_out(runs[(*a, s)]["kind"], runs[(*b, s)]["kind"]) for s in seeds}
        use = [s for s in seeds if not why[s] and (runs[(*a, s)]["kind"] == runs[(*b, s)]["kind"]) == within]
        x = np.array([runs[(*a, s)]["acc"] for s in use])
        y = np.array([runs[(*b, s)]["acc"] for s in use])
        kinds = lambda side: ", ".join(sorted({runs[(*side, s)]["kind"] for s in use}))  # noqa: E731
        extra = {}
        if not within:
            same = [s for s in seeds if s not in use and not why[s]]
            machine = [s for s in same if runs[(*a, s)]["machine"] is not None
                       and runs[(*a, s)]["machine"] == runs[(*b, s)]["machine"]]
            extra = {"same_kind": len(same), "same_machine": len(machine),
                     "same_machine_equal": sum(runs[(*a, s)]["results"] == runs[(*b, s)]["results"] for s in machine)}
        left = collections.Counter(w for w in why.values() if w)
        left_out = "".join(f"; {n} left out: {w}" for w, n in sorted(left.items()))
        if len(use) < 4:
            where = "two machine kinds" if within else "one machine kind"
            rows.append({"test": lab, "pairs": len(use), "of": len(seeds), **extra,
                         "machines": f"{where} for {len(seeds) - len(use) - sum(left.values())} of {len(seeds)} seeds"
                                     + left_out})
            continue
        row = paired_row(lab, x, y, len(use))
        row["rho_low"], row["rho_high"] = stats.fisher_ci(row["rho"], len(use))
        row.update(machines=f"{kinds(a)} vs {kinds(b)}{left_out}", of=len(seeds), **extra)
        rows.append(row)
    return pd.DataFrame(rows).set_index("test")


RESUMED_ELSEWHERE = "a run resumed on another machine kind"
ORIGINAL_NOT_NAMED = "the original names no machine"


def _check_run(rec: dict[str, Any]) -> dict[str, Any]:
    """What `machine_check` needs of one record: test accuracy (%), machine kind, the machine itself (None
    where it is not one machine from start to end) and the results a bitwise repeat reproduces."""
    from .. import store
    return {"acc": 100 * rec["test_acc"], "kind": store.made_on(rec) or NOT_NAMED,
            "machine": None if rec.get("trained_on") else rec.get("machine"),
            "results": tuple(rec.get(f) for f in ("test_acc", "ema_acc", "tta_acc", "test_loss"))}


def _left_out(kind_a: str, kind_b: str) -> str:
    """Why a seed whose two runs trained on these machine kinds answers neither machine-check question ("" if
    it answers one): a run resumed on another machine kind, or a first side that names no machine (an
    original of the store's first runs: replicas always name theirs)."""
    from .. import store
    if store.MIXED in kind_a or store.MIXED in kind_b:
        return RESUMED_ELSEWHERE
    return ORIGINAL_NOT_NAMED if kind_a == NOT_NAMED else ""


def machine_check_text(t: pd.DataFrame) -> str:
    """`machine_check` read by its declared rule, in words (pending: counts only).

    * dose k vs Base on one machine (with its paired mean difference, a report added after the data): if the
      95% interval of the pair correlation lies above 0, the pairs
      stay correlated at that dose on one machine, so at least part of the dose arm's loss of correlation
      came with the change of machine; otherwise the dose may loosen the pairs by itself;
    * each replica against its original across machines: the pair correlation with its interval (what the
      machine alone leaves of the pairing), and the Var. Red. with its paired interval: a machine effect on
      the spread is read only when that interval excludes 0."""
    first = t.iloc[0]
    if pd.notna(first.get("stored", np.nan)):
        return f"The machine check is pending: {int(first['stored'])} of {int(first['runs'])} runs stored."
    out = []
    for label, r in t.iterrows():
        if pd.isna(r.get("base_sd")):
            out.append(f"{label}: not computable ({r['pairs']} pairs; {r['machines']}).")
            continue
        head = (f"{label} ({r['pairs']} seeds, {r['machines']}): pair correlation {r['rho']:.2f} "
                f"(95% CI {r['rho_low']:.2f} to {r['rho_high']:.2f}), Var. Red. {r['var_red']:.1f}% "
                f"(paired 95% CI {r['pm_low']:.1f}% to {r['pm_high']:.1f}%)")
        one_machine = label == t.index[0]
        mean = (f" On one machine, mean accuracy {r['diff']:+.2f} pp dose {studies.MACHINE_CHECK_DOSE} − Base (paired "
                f"95% CI {r['diff_low']:+.2f} to {r['diff_high']:+.2f})." if one_machine else "")
        out.append(f"{head}: {_machine_check_reading(r, one_machine)}.{mean}")
    return " ".join([*out, _repeats_text(t)]).strip()


def _repeats_text(t: pd.DataFrame) -> str:
    """How many of `machine_check`'s replicas trained on their original's machine kind, how many of those on
    the same machine by every condition of bitwise reproducibility, and how many of these repeated their
    original's results exactly; where none trained on its original's kind, that in one sentence ("" where the
    table does not count them)."""
    if "same_kind" not in t or t["same_kind"].isna().all():
        return ""
    same = int(t["same_kind"].fillna(0).sum())
    if not same:
        return ("No replica trained on the machine kind its original names, so none was expected to repeat its "
                "original bit for bit.")
    machine, equal = (int(t[c].fillna(0).sum()) for c in ("same_machine", "same_machine_equal"))
    head = f"Of the {same} replicas that trained on their original's machine kind"
    if not machine:
        return (f"{head}, none trained on the same machine by every condition of bitwise reproducibility (CPU flags, "
                "ISA caps, bf16 kernels, threads, torch version), so none was expected to repeat its original.")
    return (f"{head}, {machine} trained on the same machine by every condition of bitwise reproducibility (CPU "
            f"flags, ISA caps, bf16 kernels, threads, torch version), and {equal} of those repeated their original's "
            "test, EMA and TTA accuracy and test loss exactly.")


def _machine_check_reading(r: pd.Series, one_machine: bool) -> str:
    """The declared reading of one complete row of `machine_check` (see `machine_check_text`)."""
    if one_machine:
        return ("the pairs stay correlated at this dose on one machine, so at least part of the dose arm's loss of "
                "correlation came with the change of machine" if r["rho_low"] > 0 else
                "on one machine too the pairs are not detectably correlated, so the dose may loosen them by itself")
    return "the machine changed the spread" if _spread_moved(r) else "no effect of the machine on the spread was detected"


def _spread_moved(r: pd.Series) -> bool:
    """Whether a replica-against-original row's paired interval for Var. Red. excludes 0 (the declared reading)."""
    return r["pm_high"] < 0 or r["pm_low"] > 0


def machine_check_answer(t: pd.DataFrame) -> str:
    """`machine_check` in two sentences for the introduction, by the same declared reading as
    `machine_check_text`: the dose against Base on one machine, then each replica against its original
    across machines (pending: counts only)."""
    k = studies.MACHINE_CHECK_DOSE
    head = (f"A machine check, declared after these results were read (it can explain them, never change them), "
            f"trains Base and dose {k} again, each seed's two runs on one machine")
    first = t.iloc[0]
    if pd.notna(first.get("stored", np.nan)):
        return f"{head}: {int(first['stored'])} of {int(first['runs'])} runs stored so far."
    if pd.isna(first.get("base_sd")):
        out = [f"{head}; on one machine it could not compare them ({first['machines']})."]
    else:
        out = [f"{head}. On one machine ({first['pairs']} seeds) dose {k} and Base had a same-seed correlation of "
               f"{first['rho']:.2f} (95% CI {first['rho_low']:.2f} to {first['rho_high']:.2f}): "
               f"{_machine_check_reading(first, True)}."]
    across = [(name, t.iloc[i]) for i, name in ((1, "Base"), (2, f"dose {k}"))]
    done = [(name, r) for name, r in across if pd.notna(r.get("base_sd"))]
    if done:
        rhos = " and ".join(f"{r['rho']:.2f} ({name}, {r['pairs']} seeds)" for name, r in done)
        moved = [name for name, r in done if _spread_moved(r)]
        effect = (f"the machine changed the spread of {' and of '.join(moved)}" if moved else
                  "no effect of the machine on the spread was detected")
        out.append(f"Each replica trained on another machine kind than its original kept a correlation of {rhos} "
                   f"with it, and {effect}.")
    out += [f"The {name} replicas could not be compared with their originals across machines ({r['machines']})."
            for name, r in across if pd.isna(r.get("base_sd"))]
    return " ".join([*out, _repeats_text(t)]).strip()


def machine_check_readable(t: pd.DataFrame) -> pd.DataFrame:
    """`machine_check` for the page: pairs, machines, the pair correlation with its Fisher interval, the two
    SDs, Var. Red. of the second side against the first with its paired interval, and the mean difference."""
    from .display import _ci

    rows = []
    for label, r in t.iterrows():
        row = {"comparison": label}
        if pd.notna(r.get("stored", np.nan)):
            row["pairs"] = f"pending: {int(r['stored'])} of {int(r['runs'])} runs stored"
        elif pd.isna(r.get("base_sd")):
            row["pairs"] = f"{int(r['pairs'])} of {int(r['of'])}: {r['machines']}"
        else:
            row.update({"pairs": f"{int(r['pairs'])} of {int(r['of'])}", "machines": r["machines"],
                        "pair corr. [95% CI]": f"{r['rho']:.2f} {_ci(r['rho_low'], r['rho_high'], 2)}",
                        "SD (pp)": f"{r['base_sd']:.2f} / {r['vml_sd']:.2f}",
                        "Var. Red. (%) [paired CI]": f"{r['var_red']:.1f} {_ci(r['pm_low'], r['pm_high'], 1)}",
                        "mean diff. (pp)": f"{r['diff']:+.2f}"})
        rows.append(row)
    return pd.DataFrame(rows).set_index("comparison").fillna("")


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


def dose_label(k: int, epochs: int) -> str:
    """The primary test of dose k in `primary_table`: 'dose 5 vs Base (5 epochs, test accuracy)'."""
    return f"dose {k} vs Base ({epochs} epochs, test accuracy)"


def dose_row(primary: pd.DataFrame, k: int) -> pd.Series:
    """The row of dose k's primary test in `primary_table`."""
    return primary.loc[next(t for t in primary.index if t.startswith(f"dose {k} vs Base ("))]


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
    if not (var_red != 0 and var_red < 100):
        raise ValueError(f"var_red={var_red!r}: a Var. Red. in % must be non-zero and below 100 (no n detects 0)")
    r = 1 - var_red / 100
    n = 4
    while stats.pitman_morgan_power(n, r, rho, alpha) < power:
        n += 1
    return n


# ----------------------------------------------------------------------------- the analysis

def pairs(study: str, select: Any, profile: str = "cpu", root: Any = None, value: str = "test_acc",
          vml: Any = None) -> tuple[np.ndarray, np.ndarray, int]:
    """(Base values, VML values, pairs declared) in pp, seed by seed, over the seeds stored in both arms,
    for the grid items of `study` that `select(item)` keeps; `vml(item)` picks the VML arm among them
    (default: loss == "vml"). A seed with a failed run (`loss_went_nonfinite`) leaves both the pairs and
    the pairs declared, as the second test declares: a test uses its complete pairs."""
    is_vml = vml or (lambda i: i.spec.loss == "vml")
    by: dict[str, dict[int, float]] = {"base": {}, "vml": {}}
    declared: dict[str, set[int]] = {"base": set(), "vml": set()}
    failed: set[int] = set()
    items = [i for i in get_study(study).grid(profile) if select(i)]
    for i in items:
        declared["vml" if is_vml(i) else "base"].add(i.spec.seed)
    for item, rec in stored_runs(study, profile, root, arrays=False):
        if select(item):
            by["vml" if is_vml(item) else "base"][item.spec.seed] = 100 * rec[value]
            if loss_went_nonfinite(rec):
                failed.add(item.spec.seed)
    seeds = sorted((set(by["base"]) & set(by["vml"])) - failed)
    n = len((declared["base"] & declared["vml"]) - failed)
    return (np.array([by["base"][s] for s in seeds]), np.array([by["vml"][s] for s in seeds]), n)


def paired_row(label: str, base: np.ndarray, vml: np.ndarray, n: int, claimed: float = CLAIMED,
               n_boot: int = N_BOOT) -> dict[str, Any]:
    """One comparison of paired arms: counts, and once all n pairs are stored the SDs, pair correlation,
    Var. Red. with its Pitman-Morgan and pair-bootstrap intervals and p, the unpaired F interval and p,
    the paired mean difference, the equivalence statement at MARGIN (upper end of the paired interval),
    and each arm's Shapiro-Wilk p (`normal_p_base`, `normal_p_vml`; see `normality_text`)."""
    row: dict[str, Any] = {"test": label, "pairs": len(base), "of": n}
    if len(base) < n:
        return row
    pm, p = stats.pitman_morgan(base, vml)
    boot = stats.paired_bootstrap_sd_ratio(base, vml, n_boot=n_boot)
    f = stats.sd_ratio_ci(base, vml)
    red = {k: stats.var_red_estimate(e) for k, e in (("pm", pm), ("boot", boot), ("f", f))}
    d = vml - base
    half = float(stats.mean_ci(d)[1] - d.mean())
    row.update(base_sd=base.std(ddof=1), vml_sd=vml.std(ddof=1), rho=float(np.corrcoef(base, vml)[0, 1]),
               var_red=red["pm"].estimate, pm_low=red["pm"].low, pm_high=red["pm"].high, pm_p=p,
               boot_low=red["boot"].low, boot_high=red["boot"].high,
               f_low=red["f"].low, f_high=red["f"].high, f_p=stats.f_test(base, vml)[1],
               diff=float(d.mean()), diff_low=float(d.mean() - half), diff_high=float(d.mean() + half),
               claimed=claimed, below_margin=equivalent_below(red["pm"].high),
               normal_p_base=_shapiro_p(base), normal_p_vml=_shapiro_p(vml))
    return row


def _shapiro_p(x: np.ndarray) -> float:
    """The Shapiro-Wilk p of one arm's values (normality, which the Pitman-Morgan and F intervals assume)."""
    from scipy import stats as st
    return float(st.shapiro(x).pvalue)


def reanalysis_table(profile: str = "cpu", root: Any = None) -> pd.DataFrame:
    """The decisive test's three comparisons analysed by seed pairs (declared with this design, after
    their data were seen: a re-analysis, not a new test)."""
    from . import decisive
    rows = []
    for study, arm in decisive.PRIMARY:
        b, v, n = pairs(study, lambda i, a=arm: i.tags.get("arm") == a, profile, root)
        rows.append(paired_row(decisive.primary_label(study, arm, profile), b, v, n))
    return pd.DataFrame(rows).set_index("test")


def primary_table(profile: str = "cpu", root: Any = None) -> pd.DataFrame:
    """The second test's three primary tests (the doses, then the TTA arm): `paired_row` each, then,
    once all three are complete, Holm-adjusted Pitman-Morgan p and the declared reading. A test not yet
    complete enters Holm with p = 1 and gives no verdict."""
    rows = []
    epochs = dose_items(profile)[0][0].spec.epochs
    for k in SECOND_DOSES:
        b, v, n = pairs("second-test", lambda i: i.tags["arm"] == "dose" and i.tags["dose"] in (0, k), profile,
                        root, vml=lambda i, k=k: i.tags["dose"] == k)
        rows.append(paired_row(dose_label(k, epochs), b, v, n))
    lead = tta_lead(profile, root)["var_red"]
    b, v, n = pairs("second-test", lambda i: i.tags["arm"] == "tta", profile, root, value="tta_acc")
    rows.append(paired_row("Table 5 vs Base (15 epochs, TTA accuracy)", b, v, n, claimed=lead))
    t = pd.DataFrame(rows)
    done = t["pairs"] >= t["of"]
    t["pm_p_holm"] = np.nan
    if "pm_p" in t:
        t["pm_p_holm"] = multipletests(t["pm_p"].where(done, 1.0).fillna(1.0), method="holm")[1]
        t.loc[~done, "pm_p_holm"] = np.nan
    t["verdict"] = [read_second(r.pm_p_holm, r.base_sd, r.vml_sd, r.pm_high, r.claimed) if ok
                    else f"pending: {r.pairs} of {r.of} pairs stored" for r, ok in zip(t.itertuples(), done)]
    return t.set_index("test")


TTA_ENDPOINTS = (("tta_acc", "TTA accuracy (primary)"), ("test_acc", "final-model accuracy (secondary)"),
                 ("ema_acc", "EMA-weight accuracy (secondary)"))


def tta_table(profile: str = "cpu", root: Any = None) -> pd.DataFrame:
    """The TTA arm's declared endpoints side by side (`TTA_ENDPOINTS`): its primary, the SD of TTA accuracy,
    and the secondary final-model and EMA-weight accuracies, each a `paired_row` of the same seed pairs,
    measured against the lead's size; counts only until the arm is complete."""
    lead = tta_lead(profile, root)["var_red"]
    rows = []
    for value, label in TTA_ENDPOINTS:
        b, v, n = pairs("second-test", lambda i: i.tags["arm"] == "tta", profile, root, value=value)
        rows.append(paired_row(label, b, v, n, claimed=lead))
    return pd.DataFrame(rows).set_index("test")


def tta_text(t: pd.DataFrame) -> str:
    """`tta_table` in words: one pending line with the counts, or each endpoint as `paired_text` gives it."""
    if pd.isna(t.iloc[0].get("base_sd", np.nan)):
        r = t.iloc[0]
        return (f"The TTA arm is pending: {r['pairs']} of {r['of']} seed pairs stored; its three endpoints are "
                "computed once all are stored.")
    return paired_text(t)


def tta_declared_power(profile: str = "cpu", root: Any = None) -> float:
    """The TTA arm's power for the lead's size at α/3 (Holm's first step), as declared (`power_table`, from
    the stored pair correlations)."""
    lead = tta_lead(profile, root)
    pw = power_table(pair_correlation("powered", "short", "test_acc", profile, root), lead["rho"], lead["var_red"])
    return float(pw.loc["TTA arm", "power at α/3"])


def lead_answer(primary: pd.DataFrame, power_holm: float) -> str:
    """The TTA lead's fate in one sentence, once the TTA arm (the last primary test) is complete, else "":
    *confirmed* where the declared reading is supported; *dropped* where it is opposite, or smaller than
    claimed (the lead's size ruled out); otherwise neither, with the arm's declared power at α/3
    (`power_holm`, a fraction) beside it. Then its paired interval and, unless the interval lies above 0
    (where its two ends say it all), what it rules out. Neither confirmed nor dropped happens where the
    interval holds the lead's size and either holds 0 too or lies above 0 while the Holm-adjusted p
    (which counts three tests) is not below α: the sentence says which."""
    r = primary.iloc[-1]
    if pd.isna(r.get("base_sd")) or pd.isna(r.get("pm_p_holm")):
        return ""
    n, size = int(r["of"]), f"the lead's {r['claimed']:.1f}%"
    above = r["pm_low"] > 0
    held = (f"the paired interval lies above 0 ({r['pm_low']:.1f}% to {r['pm_high']:.1f}%) and holds {size}, but the "
            f"Holm-adjusted p, {r['pm_p_holm']:.2g}, is not below {ALPHA:g}" if above else
            f"the interval holds both no reduction and {size}")
    neither = r["verdict"] not in (SUPPORTED, OPPOSITE, SMALLER)
    head = {SUPPORTED: f"The TTA lead is confirmed: on {n} new seed pairs VML narrowed the spread of TTA accuracy",
            OPPOSITE: f"The TTA lead is dropped: on {n} new seed pairs VML widened the spread of TTA accuracy",
            SMALLER: f"The TTA lead is dropped at its size: {n} new seed pairs rule out {size}"}.get(
        r["verdict"], f"The TTA lead is neither confirmed nor dropped: on {n} new seed pairs {held}")
    said = f"*{r['verdict']}*; {size_text(r)}" + ("" if neither and above else
                                                   f", paired 95% interval {r['pm_low']:.1f}% to {r['pm_high']:.1f}%, "
                                                   f"Holm p {r['pm_p_holm']:.2g}")
    tails = ([] if above else [equivalence_text(r)]) + (
        [f"the arm was declared underpowered ({100 * power_holm:.0f}% power at α/3)"] if neither else [])
    return f"{head} ({said})" + "".join(f"; {t}" for t in tails) + "."


def follow_up_table(primary: pd.DataFrame, profile: str = "cpu", root: Any = None,
                    margin: float = MARGIN) -> pd.DataFrame:
    """What a new study of the TTA lead would take, once the TTA arm (the last primary test) is complete
    (else an empty frame). One declared Pitman-Morgan test at α (a study of its own: no Holm family), at
    the pair correlation the arm gave; per goal, the seed pairs at which it succeeds with probability
    POWER, the 15-epoch runs that is (two per pair), and their CPU-hours at the median time of the arm's
    stored runs (each run's median epoch times its epochs, so a pause in a resumed run does not count; one
    core per run, as they trained). Goals: detect the lead's size; detect a `margin` reduction, or rule
    one out (the paired interval's upper end below it) where VML changes nothing. These last two take the
    same n: ruling it out is the test of the SD ratio 1 − margin/100 rejecting towards 1, by scale
    invariance the test of equal SDs at a true ratio 1 / (1 − margin/100), and the test's power depends on
    the ratio through |log ratio| alone. The arm's pair correlation and pairs, median minutes per run and
    runs timed are in `attrs`."""
    r = primary.iloc[-1]
    if pd.isna(r.get("base_sd")):
        return pd.DataFrame()
    minutes = [store.median_epoch_s(rec) * item.spec.epochs / 60
               for item, rec in stored_runs("second-test", profile, root, arrays=False) if item.tags["arm"] == "tta"]
    per_run = float(np.median(minutes))
    goals = ((f"detect the lead's {r['claimed']:.1f}%", r["claimed"]),
             (f"detect a {margin:g}% reduction (the margin), or rule one out where VML changes nothing", margin))
    rows = []
    for goal, size in goals:
        n = pairs_for_power(size, r["rho"])
        rows.append({"goal": goal, "Var. Red. tested (%)": size, "pairs": n, "runs": 2 * n,
                     "CPU-hours": 2 * n * per_run / 60})
    t = pd.DataFrame(rows).set_index("goal")
    t.attrs.update(rho=float(r["rho"]), arm_pairs=int(r["pairs"]), run_minutes=per_run, runs_timed=len(minutes))
    return t


def follow_up_text(t: pd.DataFrame) -> str:
    """`follow_up_table` in words ("" while the TTA arm is incomplete)."""
    if t.empty:
        return ""
    a = t.attrs
    goals = [f"to {goal}, {row['pairs']:.0f} pairs ({row['runs']:.0f} runs, about {row['CPU-hours']:.0f} CPU-hours)"
             for goal, row in t.iterrows()]
    return (f"A new study of the lead, declared before its runs, with one Pitman-Morgan test at α = {ALPHA:g} "
            f"(no family to correct for), succeeds with {100 * POWER:.0f}% probability at the pair correlation this "
            f"arm gave ({a['rho']:.2f}) with these n: {goals[0]} (this arm had {a['arm_pairs']} "
            f"pairs, tested at α/3); {goals[1]}. The CPU-hours are at the median of this arm's "
            f"{a['runs_timed']} runs, {a['run_minutes']:.0f} min of one core each.")


def trend(profile: str = "cpu", root: Any = None) -> dict[str, Any]:
    """The declared dose-response: `stats.sd_trend` of test accuracy over doses 0, 1 and SECOND_DOSES on
    the seeds stored in every dose arm, once every dose arm is complete (else only the counts)."""
    arms = {k: {} for k in design_doses()}
    for item, rec in stored_runs("second-test", profile, root, arrays=False):
        if item.tags["arm"] == "dose":
            arms[item.tags["dose"]][item.spec.seed] = 100 * rec["test_acc"]
    n = studies.SECOND_N_DOSE if profile != "smoke" else studies.SMOKE_SEEDS
    out: dict[str, Any] = {"stored": {k: len(v) for k, v in arms.items()}, "of": n}
    if min(out["stored"].values()) < n:
        return out
    seeds = sorted(set.intersection(*(set(v) for v in arms.values())))
    est, p = stats.sd_trend([[arms[k][s] for s in seeds] for k in arms], list(arms), n_boot=N_BOOT)
    values = {k: [arms[k][s] for s in seeds] for k in arms}
    sd = {k: float(np.std(v, ddof=1)) for k, v in values.items()}
    intercept = np.mean([np.log(sd[k]) for k in arms]) - est.estimate * np.mean(list(arms))
    out.update(slope=est.estimate, low=est.low, high=est.high, p=p, n_boot=N_BOOT, sd=sd,
               sd_ci={k: stats.sd_ci(v) for k, v in values.items()},
               fitted={k: float(np.exp(intercept + est.estimate * k)) for k in arms})
    return out


def pooled_table(reanalysis: pd.DataFrame) -> pd.DataFrame:
    """Post hoc, not pre-registered: the complete tests' log SD ratios (paired SEs) pooled by fixed and
    random effects (`stats.pooled_log_sd_ratio`), as Var. Red. with 95% intervals."""
    done = reanalysis.dropna(subset=["base_sd"])
    if len(done) < 2:
        return pd.DataFrame()
    y = np.log(done["vml_sd"] / done["base_sd"]).to_numpy()
    se = [stats.log_sd_ratio_se(n, n, rho) for n, rho in zip(done["pairs"], done["rho"])]
    res = stats.pooled_log_sd_ratio(y, se)
    return pd.DataFrame([{"pooling": name, "Var. Red. (%)": stats.var_reduction(1, e.estimate),
                          "low": stats.var_reduction(1, e.high), "high": stats.var_reduction(1, e.low),
                          "tests": len(done), "Q p": res["q_p"], "tau²": res["tau2"]}
                         for name, e in (("fixed effect", res["fixed"]), ("random effects", res["random"]))]
                        ).set_index("pooling")


def equivalence_text(row: dict[str, Any], margin: float = MARGIN) -> str:
    """What one complete paired comparison rules out, in words: the upper end of its paired interval, and
    whether the equivalence statement at `margin` holds. Where the whole interval lies below 0 (VML widened
    the spread), it says that any reduction is ruled out instead; where it lies above 0 (VML narrowed the
    spread), it gives both ends and how they stand to `margin`."""
    if row["pm_high"] < 0:
        return f"the data rule out any reduction (the interval ends at {row['pm_high']:.1f}%): VML widened the spread"
    if row.get("pm_low", np.nan) > 0:
        size = (f" by more than {margin:g}%" if row["pm_low"] > margin else
                f", by less than {margin:g}%" if row["below_margin"] else "")
        return (f"the data place the Var. Red. between {row['pm_low']:.1f}% and {row['pm_high']:.1f}%: "
                f"VML narrowed the spread{size}")
    head = f"the data rule out a Var. Red. above {row['pm_high']:.1f}%"
    if row["below_margin"]:
        return f"{head}: VML reduces the spread by less than {margin:g}%, if at all"
    return f"{head}, so a reduction of {margin:g}% is not ruled out"


def size_text(row: dict[str, Any]) -> str:
    """A comparison's Var. Red. in words, with the SD ratio where VML's SD is at least twice Base's (there
    a Var. Red. of, say, -1000% reads more plainly as 'SD 11.0 times Base's')."""
    ratio = row["vml_sd"] / row["base_sd"]
    return f"Var. Red. {row['var_red']:.1f}%" + (f", SD {ratio:.1f} times Base's" if ratio >= 2 else "")


def mean_text(row: dict[str, Any]) -> str:
    """The paired mean difference of a complete comparison in words (VML - Base, pp, with its 95% CI)."""
    return (f"mean accuracy {row['diff']:+.2f} pp VML − Base (paired 95% CI {row['diff_low']:+.2f} to "
            f"{row['diff_high']:+.2f})")


def paired_text(t: pd.DataFrame) -> str:
    """Each complete comparison of a `paired_row` table in words: SDs, pair correlation, the paired
    Var. Red. with both paired intervals, the unpaired F interval beside them, and what is ruled out.
    Pending comparisons are named with their counts."""
    out = []
    for label, r in t.iterrows():
        if pd.isna(r.get("base_sd")):
            out.append(f"{label}: pending, {r['pairs']} of {r['of']} pairs stored.")
            continue
        out.append(
            f"{label} ({r['of']} pairs, same-seed correlation {r['rho']:.2f}): SD {r['base_sd']:.2f} pp (Base) "
            f"and {r['vml_sd']:.2f} pp (VML), a Var. Red. of {r['var_red']:.1f}%, paired 95% interval "
            f"{r['pm_low']:.1f}% to {r['pm_high']:.1f}% (Pitman-Morgan; pair bootstrap {r['boot_low']:.1f}% to "
            f"{r['boot_high']:.1f}%), against {r['f_low']:.1f}% to {r['f_high']:.1f}% unpaired; "
            f"{equivalence_text(r)}; {mean_text(r)}.")
    return " ".join(out)


def normality_text(t: pd.DataFrame) -> str:
    """A check made after the data were seen, not declared: the Pitman-Morgan test and interval assume that
    each arm's values are normal. Per complete primary test of `primary_table` (pending ones are left
    out): each arm's Shapiro-Wilk p, and whether the pair bootstrap's 95% interval, which assumes no
    normality, says what the declared reading rests on (for *supported* / *opposite*: it excludes 0 on that
    side; for *smaller than claimed*: it lies below the size claimed; for *inconclusive*: it holds that
    size); where the paired interval made the equivalence statement (it reaches 0 or above and ends below
    MARGIN), whether the bootstrap's upper end lies below MARGIN too. "" where no test is complete."""
    out = []
    for label, r in t.iterrows():
        if pd.isna(r.get("base_sd")):
            continue
        low, high, size = r["boot_low"], r["boot_high"], f"the claimed {r['claimed']:.1f}%"
        agrees, verb, where = {SUPPORTED: (low > 0, "lie", "above 0"), OPPOSITE: (high < 0, "lie", "below 0"),
                               SMALLER: (high < r["claimed"], "lie", f"below {size}"),
                               INCONCLUSIVE: (high >= r["claimed"] > low, "hold", size)}[r["verdict"]]
        reading = (f"also {verb}s {where}" if agrees else
                   f"does not {verb} {where}: on it alone the reading would not be \"{r['verdict']}\"")
        margin = ""
        if _rules_out_margin(r):
            margin = (f" Its upper end also lies below the {MARGIN:g}% margin." if high < MARGIN else
                      f" Its upper end does not lie below the {MARGIN:g}% margin: on it alone a {MARGIN:g}% reduction "
                      "would not be ruled out.")
        out.append(f"{label}: Shapiro-Wilk p {r['normal_p_base']:.2g} (Base) and {r['normal_p_vml']:.2g} (VML); the pair "
                   f"bootstrap, which does not assume normality, gives {low:.1f}% to {high:.1f}%, which {reading}.{margin}")
    return " ".join(out)


def achieved_power_text(primary: pd.DataFrame) -> str:
    """Each complete primary test's power at α/3 (Holm's first step) for the size it is read against (the
    paper's claim, or the lead's), at the pair correlation its runs gave rather than the one its power was
    declared at: the certainty the test had, not a statement about the effect (the observed effect never
    enters). "" where no test is complete."""
    out = []
    for label, r in primary.iterrows():
        if pd.isna(r.get("base_sd")):
            continue
        pw = stats.pitman_morgan_power(int(r["pairs"]), 1 - r["claimed"] / 100, r["rho"], ALPHA / 3)
        out.append(f"{label}: {100 * pw:.0f}% for {r['claimed']:.1f}% at the pair correlation of {r['rho']:.2f}")
    return "; ".join(out) + "." if out else ""


def p_text(p: float) -> str:
    """A p value for the page: 2 significant figures, or "< 1e-06" below P_FLOOR."""
    return f"< {P_FLOOR:.0e}" if p < P_FLOOR else f"{p:.2g}"


def deviations_table() -> pd.DataFrame:
    """`DEVIATIONS` for the page: one row per change after the pre-registration commit, in order."""
    return pd.DataFrame(DEVIATIONS, columns=["commit", "what changed", "when", "effect"]).set_index("commit")


def readable(t: pd.DataFrame) -> pd.DataFrame:
    """A `paired_row` table for the page, in a few columns named in words: pairs and their correlation,
    the two SDs, Var. Red. with its paired (Pitman-Morgan) 95% interval, and the Holm-adjusted p and
    verdict where the table has them (else the unpaired F interval)."""
    from .display import _ci

    rows = []
    for label, r in t.iterrows():
        row = {"test": label, "pairs": f"{r['pairs']} of {r['of']}"}
        if pd.notna(r.get("base_sd")):
            row.update({"pair corr.": f"{r['rho']:.2f}", "SD Base / VML (pp)": f"{r['base_sd']:.2f} / {r['vml_sd']:.2f}",
                        "Var. Red. (%)": f"{r['var_red']:.1f}", "paired 95% CI": _ci(r["pm_low"], r["pm_high"], 1)})
            if "verdict" not in t:  # the primary tests' unpaired intervals are in their text, for the page's width
                row["unpaired 95% CI"] = _ci(r["f_low"], r["f_high"], 1)
        if "verdict" in t:
            row.update({"Holm p": p_text(r["pm_p_holm"]) if pd.notna(r.get("pm_p_holm")) else "",
                        "verdict": r["verdict"]})
        rows.append(row)
    return pd.DataFrame(rows).set_index("test").fillna("")


def _post_latch(spec: Any, rec: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(dL/dℓ, λ_t) of one run at every step after σ_ref latched (step warmup_steps + 1 on)."""
    c, it = spec.vml, rec["iters"]
    post = slice(c.warmup_steps + 1, None)
    return gradient_factor(it["lambda"], it["delta"], c.delta, c.w_vml)[post], it["lambda"][post]


def gradient_factors(profile: str = "cpu", root: Any = None) -> dict[int, np.ndarray]:
    """dL/dℓ at every post-latch step of every run, per complete dose arm (doses with runs missing are left
    out): what the controller did at each dose, as `plots.plot_gradient_factors` draws it."""
    from .. import store
    out = {}
    for k, items in dose_items(profile).items():
        if all(store.exists(i.spec, root) for i in items):
            out[k] = np.concatenate([_post_latch(i.spec, store.read(i.spec, root=root))[0] for i in items])
    return out


def dose_table(profile: str = "cpu", root: Any = None) -> pd.DataFrame:
    """Per dose arm (0 = Base, 1 = Table 5, then SECOND_DOSES): runs stored of declared, and once the arm is
    complete its mean and SD of test accuracy (pp) with the χ² interval of the SD, and what its controller
    did after the latch: the mean excursion |dL/dℓ - 1|, the share of reversed steps (dL/dℓ < 0) and of
    steps with λ_t at λ_max, and the 5th and 95th percentiles of dL/dℓ over all its runs' post-latch steps
    (Base runs: the controller as an observer, at Table 5)."""
    from .. import store
    rows = []
    for k, items in dose_items(profile).items():
        have = [i for i in items if store.exists(i.spec, root)]
        row: dict[str, Any] = {"dose": k, "runs": len(have), "of": len(items), "epochs": items[0].spec.epochs}
        if len(have) == len(items):
            recs = [(i.spec, store.read(i.spec, root=root)) for i in have]
            acc = np.array([100 * r["test_acc"] for _, r in recs])
            s = stats.summary(acc)
            exc, rev, top, steps = [], [], [], []
            for spec, r in recs:
                g, lam = _post_latch(spec, r)
                exc.append(np.abs(g - 1).mean())
                rev.append((g < 0).mean())
                top.append((lam >= spec.vml.lambda_max * (1 - 1e-6)).mean())
                steps.append(g)
            p5, p95 = np.percentile(np.concatenate(steps), [5, 95])
            row.update(mean=s.mean, sd=s.sd, sd_low=s.sd_low, sd_high=s.sd_high,
                       excursion=100 * float(np.mean(exc)), reversed=100 * float(np.mean(rev)),
                       at_lambda_max=100 * float(np.mean(top)), factor_p5=float(p5), factor_p95=float(p95))
        rows.append(row)
    return pd.DataFrame(rows).set_index("dose")


def trend_text(out: dict[str, Any]) -> str:
    """The dose-response (`trend`) in words: pending with its counts, or the fitted change of the SD from
    dose 0 to the highest dose with its bootstrap interval, p (a bootstrap p of 0 as the bound its resamples
    allow, 2/n_boot), and the declared reading, with the direction of a trend that is read; then the SDs
    observed at each dose and their change, beside the line's; and whether the line's SD at each dose lies
    inside that dose's observed 95% interval (χ²), naming the doses where it does not."""
    doses = sorted(out["stored"])
    if "slope" not in out:
        counts = ", ".join(f"dose {k}: {out['stored'][k]}" for k in doses)
        return (f"The dose-response is computed once every dose arm has all {out['of']} runs "
                f"(stored now: {counts}).")
    top = max(doses)
    change = [100 * (np.exp(top * x) - 1) for x in (out["slope"], out["low"], out["high"])]
    p = f"p < {2 / out['n_boot']:g}" if out["p"] == 0 else f"p = {out['p']:.2g}"
    if out["p"] < ALPHA:
        read = f"a trend is read, and the SD {'grows' if out['slope'] > 0 else 'shrinks'} with the dose"
    else:
        read = "no trend is read"
    listed, observed = ", ".join(map(str, doses)), ", ".join(f"{out['sd'][k]:.2f}" for k in doses)
    observed_change = 100 * (out["sd"][top] / out["sd"][0] - 1)
    outside = [k for k in doses if not out["sd_ci"][k][0] <= out["fitted"][k] <= out["sd_ci"][k][1]]
    fitted = ", ".join(f"{out['fitted'][k]:.2f} pp" for k in outside)
    fit = (f"The line fits them poorly (a check after the data): its SD lies outside the observed SD's 95% interval "
           f"at dose{'s' if len(outside) > 1 else ''} {' and '.join(map(str, outside))} ({fitted})."
           if outside else "The line's SD lies inside the observed SD's 95% interval at every dose (a check after "
           "the data).")
    return (f"Fitted across doses {listed}, the SD changes by {change[0]:+.1f}% from dose 0 to "
            f"dose {top} (95% bootstrap interval {change[1]:+.1f}% to {change[2]:+.1f}%; {p}, declared cut "
            f"{ALPHA:g}): {read}. That change is the fitted line's (log SD linear in the dose); the SDs observed "
            f"at doses {listed} were {observed} pp, a change of {observed_change:+.1f}% from dose 0 to dose {top}. "
            f"{fit}")


def dose_text(doses: pd.DataFrame, primary: pd.DataFrame, rho_table5: float, machines: pd.DataFrame) -> str:
    """What each new dose did, in words, once its arm is complete (`dose_table`, `primary_table`): the
    gradient factor's mean excursion after the latch against the excursion the dose was chosen for, the
    range of its middle 90% of steps and how often it reversed; the arm's SD against Base's with the
    paired interval (and the equivalence statement where it reaches 0 or above), and the paired mean
    difference. Then the same-seed correlations with Base against
    Table 5's (`rho_table5`), and, where no machine trained both a dose arm and its controls
    (`machines_table`), that the machine may loosen the pairing by itself. Pending doses: counts."""
    target = dict(zip(SECOND_DOSES, TARGET_EXCURSION))
    out, rhos = [], []
    for k in SECOND_DOSES:
        d, r = doses.loc[k], dose_row(primary, k)
        if pd.isna(d.get("sd")) or pd.isna(r.get("base_sd")):
            out.append(f"Dose {k}: {int(d['runs'])} of {int(d['of'])} runs stored.")
            continue
        rev = ("never reversed the step" if d["reversed"] == 0 else
               "reversed the step on fewer than 0.05% of them" if d["reversed"] < 0.05 else
               f"reversed the step on {d['reversed']:.1f}% of them")
        out.append(
            f"At dose {k} the gradient factor moved by {d['excursion']:.1f}% on average after the latch (the dose "
            f"was chosen for {100 * target[k]:.0f}%); 90% of its steps lay between {d['factor_p5']:.2f} and "
            f"{d['factor_p95']:.2f}, and it {rev}. The {int(d['runs'])} runs' SD was {d['sd']:.2f} pp against "
            f"Base's {r['base_sd']:.2f} pp ({size_text(r)}, paired 95% interval {r['pm_low']:.1f}% to "
            f"{r['pm_high']:.1f}%{_margin_clause(r)}), and their mean accuracy {d['mean']:.2f}%, {r['diff']:+.2f} pp from Base "
            f"(paired 95% CI {r['diff_low']:+.2f} to {r['diff_high']:+.2f}).")
        rhos.append(f"{r['rho']:.2f} at dose {k}")
    if rhos:
        m_new, m_ctl = _dose_machines(machines)
        out.append(f"The same-seed correlation with Base was {rho_table5:.2f} for Table 5 VML and "
                   f"{' and '.join(rhos)}.")
        if m_new and not (set(m_new) & set(m_ctl)) - {NOT_NAMED}:
            unnamed = _unnamed_controls(machines)
            named = (f"than every control run that names its machine ({unnamed} control runs name none)" if unnamed
                     else "than their controls")
            out.append(f"The new doses' runs were trained on another machine kind {named}, so each dose arm's "
                       "difference from its controls (its SD, its mean, its pairing) holds any effect of the machine's "
                       "kernels as well as of the dose; this design cannot tell the two apart (the machine check "
                       f"measures the machine's part at dose {studies.MACHINE_CHECK_DOSE}).")
    return " ".join(out)


def dose_answer(primary: pd.DataFrame, doses: pd.DataFrame) -> str:
    """The new doses in one sentence for the book's answer box, once both dose arms are complete (else ""):
    whether any dose narrowed the spread by the declared reading, and per dose its mean gradient-factor
    excursion, verdict, size with paired interval, and paired mean difference."""
    rows = [(k, doses.loc[k], dose_row(primary, k)) for k in SECOND_DOSES]
    if any(pd.isna(d.get("sd")) or pd.isna(r.get("base_sd")) for _, d, r in rows):
        return ""
    won = [str(k) for k, _, r in rows if r["verdict"] == SUPPORTED]
    head = (f"VML at {' and '.join(str(k) for k, _, _ in rows)} times the Table 5 dose "
            f"({int(rows[0][2]['of'])} seed pairs each, {int(doses['epochs'].iloc[0])}-epoch protocol): the test "
            + (f"found a narrower spread at dose {' and '.join(won)}." if won else "found a narrower spread at no dose."))
    per = "; ".join(f"dose {k} (gradient factor moved {d['excursion']:.0f}% on average): *{r['verdict']}*, "
                    f"{size_text(r)}, paired 95% interval {r['pm_low']:.1f}% to {r['pm_high']:.1f}%"
                    f"{_margin_clause(r)}, mean accuracy {r['diff']:+.2f} pp" for k, d, r in rows)
    return f"{head} {per[0].upper()}{per[1:]}."


def _rules_out_margin(row: dict[str, Any]) -> bool:
    """Whether a paired comparison makes the equivalence statement: its interval reaches 0 or above (one wholly
    below 0 rules out any reduction instead) and ends below the margin (`below_margin`)."""
    below = row.get("below_margin")
    return bool(pd.notna(below) and below and row.get("pm_high", np.nan) >= 0)


def _margin_clause(row: dict[str, Any], margin: float = MARGIN) -> str:
    """The equivalence statement in a few words, for an interval that reaches 0 or above (one wholly below 0
    says more by its verdict): that VML reduces the spread by less than `margin` (", if at all" where the
    interval holds 0), or that such a reduction is not ruled out."""
    if row["pm_high"] < 0:
        return ""
    if not _rules_out_margin(row):
        return f", so a reduction of {margin:g}% is not ruled out"
    return f", so VML reduces the spread by less than {margin:g}%" + ("" if row.get("pm_low", np.nan) > 0 else ", if at all")


def loss_went_nonfinite(rec: dict[str, Any]) -> bool:
    """Whether a run's loss was non-finite in any epoch's train loss (the mean over the epoch's steps, so a
    non-finite step shows there too) or test loss, or at any step of the per-step series where the record
    is decoded: a failed run by the second test's declaration. Training does not stop on one, so the
    record of such a run is stored like any other."""
    series = [np.asarray([rec["test_loss"]], dtype=float),
              np.asarray([[e["train_loss"], e["test_loss"]] for e in rec["epochs"]], dtype=float)]
    if isinstance(rec["iters"].get("loss"), np.ndarray):  # decoded (`store.read(arrays=True)`)
        series.append(np.asarray(rec["iters"]["loss"], dtype=float))
    return not all(np.isfinite(v).all() for v in series)


def failures_table(profile: str = "cpu", root: Any = None) -> pd.DataFrame:
    """The declared failure count: per arm of the second test (`arm_label`), its stored runs and how many of
    them failed (`loss_went_nonfinite`)."""
    rows: dict[str, list[int]] = {}
    for item, rec in stored_runs("second-test", profile, root, arrays=False):
        row = rows.setdefault(arm_label(item), [0, 0])
        row[0] += 1
        row[1] += loss_went_nonfinite(rec)
    return pd.DataFrame.from_dict(rows, orient="index", columns=["stored", "failed"])


def failures_text(t: pd.DataFrame) -> str:
    """`failures_table` in one sentence: that no stored run failed, or the failed runs per arm."""
    if t.empty:
        return "No run of the second test is stored yet."
    if t["failed"].sum() == 0:
        return (f"No stored run failed: the loss stayed finite at every step of all {int(t['stored'].sum())} "
                "runs stored (" + "; ".join(f"{a}: {int(r.stored)}" for a, r in t.iterrows()) + ").")
    return ("Runs whose loss became non-finite (failed, as declared): "
            + "; ".join(f"{a}: {int(r.failed)} of {int(r.stored)} stored" for a, r in t.iterrows() if r.failed) + ".")


def machines_table(profile: str = "cpu", root: Any = None) -> pd.DataFrame:
    """The stored runs of each arm of the second test (columns, `arm_label`) per machine kind that trained
    them (rows, `store.made_on`: the CPU model, marked where bf16 ran on fp32 kernels)."""
    return runs_per_machine((arm_label(item), rec)
                            for item, rec in stored_runs("second-test", profile, root, arrays=False))


def _control_columns(t: pd.DataFrame) -> list[str]:
    """The columns of `machines_table` that hold the dose arms' controls (doses 0 and 1, `arm_label`)."""
    return [c for c in ("dose 0 (Base)", "dose 1 (Table 5)") if c in t]


def _dose_machines(t: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(machines that trained the new doses' runs, machines that trained their controls) of `machines_table`."""
    controls = _control_columns(t)
    new = [c for c in t if c.startswith("dose ") and c not in controls]
    made = lambda cols: [m for m in t.index if t.loc[m, cols].sum() > 0] if cols else []  # noqa: E731
    return made(new), made(controls)


def machine_text(t: pd.DataFrame) -> str:
    """What `machines_table` says of the pairing, in words: the machines that trained the dose arms' new runs
    and those that trained their controls (doses 0 and 1), and whether any machine trained both. Where
    none did, a dose arm's difference from its controls holds any effect of the machine as well as of
    the dose."""
    m_new, m_ctl = _dose_machines(t)
    if not m_new:
        return "No run of the dose arms is stored yet."
    shared = [m for m in m_new if m in m_ctl and m != NOT_NAMED]
    text = (f"The dose arms' runs stored came from {'; '.join(m_new)}; their controls from "
            f"{'; '.join(m_ctl)}. ")
    if shared:
        return text + f"Both were trained on {'; '.join(shared)}, so the machine can be compared within the pairs."
    unnamed = _unnamed_controls(t)
    known = (f"No machine named in the records trained both ({unnamed} control runs name no machine, so theirs is "
             "unknown)" if unnamed else "No machine trained both")
    return text + (f"{known}, so a dose arm's difference from its controls holds any effect of the machine (its "
                   "kernels and their rounding) as well as of the dose; this design cannot separate the two.")


def _unnamed_controls(t: pd.DataFrame) -> int:
    """How many control runs (doses 0 and 1) of `machines_table` name no machine."""
    controls = _control_columns(t)
    return int(t.loc[NOT_NAMED, controls].sum()) if NOT_NAMED in t.index and controls else 0


def answer(reanalysis: pd.DataFrame, primary: pd.DataFrame, margin: float = MARGIN) -> str:
    """The intro's sentences on the second design: what the decisive test's data rule out seed by seed (the
    upper ends of the paired intervals, and whether a reduction of `margin`% is ruled out), then each
    primary test of the second design: its verdict and paired interval, or pending with its counts."""
    done = reanalysis.dropna(subset=["base_sd"])
    highs = "; ".join(f"{label}: {r['pm_high']:.1f}%" for label, r in done.iterrows())
    below = int(done["below_margin"].sum())
    ruled = (f"a {margin:g}% reduction is ruled out on {below} of {len(done)}" if below
             else f"a {margin:g}% reduction is ruled out on none of them")
    text = (f"Seed by seed (paired), the decisive test's runs rule out a Var. Red. above these values: {highs}; "
            f"{ruled}. ")
    parts = []
    for label, r in primary.iterrows():
        if pd.isna(r.get("base_sd")):
            parts.append(f"{label}: {r['verdict']}")
        else:
            parts.append(f"{label}: {r['verdict']} ({size_text(r)}, paired 95% interval "
                         f"{r['pm_low']:.1f}% to {r['pm_high']:.1f}%)")
    return text + "The second test: " + "; ".join(parts) + "."


def dose_readable(t: pd.DataFrame) -> pd.DataFrame:
    """`dose_table` for the page: per dose, its runs, mean, SD with its interval and what the controller
    did (for Base, dose 0, the controller as an observer of its loss), in words and 2-3 figures; an arm not
    yet complete says so."""
    from .display import _ci

    rows = []
    for k, r in t.iterrows():
        row = {"dose k": {0: "0 (Base)", 1: "1 (Table 5)"}.get(k, k), "runs": f"{int(r['runs'])} of {int(r['of'])}"}
        if pd.notna(r.get("sd")):
            row.update({"mean (%)": f"{r['mean']:.2f}", "SD (pp) [95% CI]": f"{r['sd']:.2f} {_ci(r['sd_low'], r['sd_high'], 2)}",
                        "mean |dL/dℓ − 1| (%)": f"{r['excursion']:.1f}",
                        "dL/dℓ, 5-95% of steps": f"{r['factor_p5']:.2f} to {r['factor_p95']:.2f}",
                        "steps reversed (%)": _share(r["reversed"]), "steps at λ_max (%)": _share(r["at_lambda_max"])})
        else:
            row["mean (%)"] = "pending"
        rows.append(row)
    return pd.DataFrame(rows).set_index("dose k").fillna("")


def _share(pct: float) -> str:
    """A share of steps (%) to one decimal, "<0.1" where it is above 0 but rounds to 0.0, and "0" where none."""
    return "0" if pct == 0 else "<0.1" if pct < 0.05 else f"{pct:.1f}"


def pooled_readable(t: pd.DataFrame) -> pd.DataFrame:
    """`pooled_table` for the page: Var. Red. with its 95% interval, and the heterogeneity (Cochran's Q p, τ²)."""
    from .display import _ci

    return pd.DataFrame({"Var. Red. (%)": t["Var. Red. (%)"].map("{:.1f}".format),
                         "95% CI": [_ci(lo, hi, 1) for lo, hi in zip(t["low"], t["high"])],
                         "tests": t["tests"], "Cochran's Q p": t["Q p"].map("{:.2g}".format),
                         "τ²": t["tau²"].map("{:.2g}".format)}, index=t.index)
