"""The introduction's headline: the paper's main claims, each with ours and a verdict."""
from __future__ import annotations

from collections import Counter
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from statsmodels.stats.multitest import multipletests

from .. import paper, stats, store
from ..studies import REPLICATION_MODEL, get_study
from .common import MODEL_NAMES, NEEDS_DATA, NO_RUNS, STEP_COST_TARGET, profile_or_default, step_cost, stored_runs
from .display import _ci
from .tables import architectures_table, replication_table, sources_table
from .seed_groups import seed_groups_table
from .seeds import noise_floor_table
from . import verdicts as vd
from .reactivity import epoch_series, reactivity_arms_table, reactivity_summary
from .remedies import seed_effect_table


FIG1_MAX_LATCH_SHARE = 0.15  # Fig. 1 is testable when σ_ref latches within the first 15% of the run
MEAN_MARGIN_PP = 0.5  # "mean accuracy unchanged" is supported when the 95% CI of the change lies in ±0.5 pp
# "no extra cost" is supported when the 95% CI of a VML step's extra time lies within ±2% of a CE step:
# the margin the step-cost benchmark declared before it was measured (STEP_COST_TARGET); a margin chosen
# after seeing the interval would make the verdict say what the interval suggested
COST_MARGIN_PCT = round(100 * (STEP_COST_TARGET - 1), 9)
REPLICATION_NAME = MODEL_NAMES.get(REPLICATION_MODEL, REPLICATION_MODEL)  # VGG-16: retrained on new seeds
WITHOUT = "without a verdict"  # a row no interval can judge: no runs, needs data, descriptive only


def _row(claim: str, short: str, paper_value: str, ours: str, v: "vd.Verdict | str", p: float = np.nan) -> dict:
    """A headline row: the verdict's word and its reason (a plain string: no verdict, the string says why)."""
    if isinstance(v, vd.Verdict):
        return {"claim": claim, "short": short, "paper": paper_value, "ours [95% CI]": ours, "verdict": v.label,
                "why": v.reason, "p": p}
    return {"claim": claim, "short": short, "paper": paper_value, "ours [95% CI]": ours, "verdict": WITHOUT,
            "why": v, "p": p}


def _cost_row(t4: pd.Series, root: Any = None) -> dict[str, Any]:
    m = step_cost(root)
    paper_cost = f"{t4['training_cost']} / {t4['inference_cost']}".replace("x", "×")
    claim = "no extra training or inference cost (Table 4)"
    if m is None:
        return _row(claim, "no extra cost", paper_cost, "not measured", NO_RUNS)
    lo, hi = m["ratio_low"], m["ratio_high"]
    v = vd.judge(100 * (lo - 1), 100 * (hi - 1), margin=COST_MARGIN_PCT, digits=1)
    return _row(claim, "no extra cost", paper_cost,
                f"training step {m['ratio_median']:.3f}× CE\u00a0[{lo:.3f},\u00a0{hi:.3f}] "
                f"({m['machine']['cpu']}); inference unchanged",
                vd.Verdict(v.label, f"a VML step's extra time: {v.reason}"))


def _var_red_cell(r: pd.Series | dict) -> str:
    if not np.isfinite(r["var_red"]):
        return f"– (n = {r['n_base']}/{r['n_vml']})"
    return (f"{r['var_red']:.0f}%\u00a0{_ci(r['var_red_low'], r['var_red_high'])} "
            f"(n = {r['n_base']}/{r['n_vml']})")


def _var_red_verdict(r: pd.Series | dict, claimed: float, ceiling: float | None) -> "vd.Verdict | str":
    """The display verdict on a claimed Var. Red. from a comparison row (F interval, F test's p), or the
    row's own note (no runs, too few) when it has no interval."""
    lo, hi = r["var_red_low"], r["var_red_high"]
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return str(r["verdict"])
    v = vd.judge(lo, hi, claimed, ceiling=ceiling, p=r.get("f_p"), digits=0)
    if v.label == vd.UNTESTABLE:  # the ceiling is the protocol's, from the 20-seed pool: say so
        return vd.Verdict(v.label, v.reason.replace("the Base runs", "on this protocol the 20-seed pool's Base runs"))
    return v


def pool_ceiling(profile: str | None = None, root: Any = None) -> float | None:
    """The largest Var. Red. the `cpu` pool's protocol allows: that of an SD at the test-set floor against
    the 20-seed pool's Base SD (`noise_floor_table`); None while the pool has fewer than 2 Base runs."""
    base = noise_floor_table(profile, root).set_index("setting").loc["Base"]
    if not np.isfinite(base["observed_sd"]):
        return None
    return float(stats.var_reduction(base["observed_sd"], base["independent_sd"]))


def _count_verdicts(verdicts: Iterable[str]) -> str:
    return "; ".join(f"{n}× {v}" for v, n in Counter(verdicts).items())


def combine_verdicts(names: Sequence[str], verdicts: Sequence[str], complete: bool) -> "vd.Verdict | str":
    """One verdict for a claim made for every network at once, from each network's display word:
    *opposite* where a network's interval lies on the wrong side of zero, else *smaller than claimed* where
    one rules the claim out, *supported* only when every network supports it, else *inconclusive at this
    n*; a plain 'so far' string while networks are missing."""
    words = list(verdicts)
    tally = _count_verdicts(words)
    if not complete:
        return f"so far: {tally}"
    for label in (vd.OPPOSITE, vd.SMALLER):
        hit = [n for n, v in zip(names, words) if v == label]
        if hit:
            return vd.Verdict(label, f"on {', '.join(hit)} ({tally})")
    if all(v == vd.SUPPORTED for v in words):
        return vd.Verdict(vd.SUPPORTED, "on every network")
    return vd.Verdict(vd.INCONCLUSIVE, tally)


def _replication(rep: pd.DataFrame) -> tuple[str, "vd.Verdict | None"]:
    """The VGG-16 check on new seeds, for the Table 2 cell: its text, and its verdict where its interval
    is defined (the independent test of the first seeds' result)."""
    r = rep.iloc[1]  # the new seeds alone: the independent test
    if not np.isfinite(r["var_red"]):
        return "", None
    v = vd.judge(r["var_red_low"], r["var_red_high"], r["paper_var_red"], p=r.get("f_p"), digits=0)
    held = "replicated" if v.label == vd.OPPOSITE else "did not replicate"
    name = rep.index[1].replace(" (new)", "")
    return (f"; {REPLICATION_NAME} on {name}: {r['var_red']:.0f}%\u00a0{_ci(r['var_red_low'], r['var_red_high'])}, "
            f"its wider spread on the first seeds {held}"), vd.Verdict(
                v.label, f"{v.reason} on {name} (its wider spread on the first seeds {held})")


def _architectures_row(t: pd.DataFrame, dataset: str, paper_range: str, rep: pd.DataFrame | None = None
                       ) -> dict[str, Any]:
    part = t[t["Dataset"] == dataset]
    done = part[np.isfinite(part["var_red"].to_numpy(dtype=float))]
    claim = f"across-seed SD reduction, 4 networks, {dataset}, 5 seeds (Table 2)"
    if done.empty:
        ours = NEEDS_DATA if len(part) and (part["verdict"] == NEEDS_DATA).all() else NO_RUNS
        return _row(claim, f"Table 2 ({dataset})", paper_range, "–", ours)
    note, rep_v = _replication(rep) if rep is not None else ("", None)
    cells = "; ".join(f"{m} {x:.0f}%\u00a0{_ci(a, b)} (n = {nb}/{nv})" for m, x, a, b, nb, nv in
                      zip(done["Model"], done["var_red"], done["var_red_low"], done["var_red_high"],
                          done["n_base"], done["n_vml"]))
    words, reread = [], ""
    for r in done.to_dict("records"):
        v = _var_red_verdict(r, r["paper_var_red"], None) if np.isfinite(r["paper_var_red"]) else str(r["verdict"])
        if rep_v is not None and r["Model"] == REPLICATION_NAME:
            v = rep_v  # a result that did not replicate is read on the independent seeds
            reread = f"; {REPLICATION_NAME} read on its new seeds: {rep_v.reason}"
        words.append(v.label if isinstance(v, vd.Verdict) else v)
    v = combine_verdicts(list(done["Model"]), words, len(done) == len(part))
    ours = f"{cells} ({len(done)} of {len(part)} networks){note}"
    if isinstance(v, str):
        return _row(claim, f"Table 2 ({dataset})", paper_range, ours, v)
    # the rule declared before the replication: the seeds 1-5 verdicts stand (chapter "Architectures and datasets"); kept in the reason
    against = [m for m, w in zip(done["Model"], done["verdict"]) if w == stats.NOT_SUPPORTED]
    kept = (f"; the rule declared before the new seeds keeps the first seeds' verdict: not supported on "
            f"{', '.join(against)}" if reread and against else "")
    return _row(claim, f"Table 2 ({dataset})", paper_range, ours,
                vd.Verdict(v.label, f"{v.reason}{reread}{kept} (the rule combining networks was written after "
                                    "seeing these runs)"))


def _paper_mean_change(r: pd.Series) -> str:
    """A paper row's 'Base → VML% (Δ VML − Base pp)', e.g. '94.95 → 94.88% (Δ −0.07 pp)'."""
    d = f"{r['vml_acc'] - r['base_acc']:+.2f}".replace("-", "−")
    return f"{r['base_acc']:.2f} → {r['vml_acc']:.2f}% (Δ {d} pp)"


def _mean_row(r: pd.Series, claim: str, short: str, paper_value: str) -> dict[str, Any]:
    """'Mean unchanged' from a comparison row: the Welch interval of VML − Base, judged by equivalence."""
    if np.isfinite(r["mean_diff"]):
        ours = (f"{r['base_mean']:.1f} → {r['vml_mean']:.1f}% "
                f"(Δ {r['mean_diff']:+.2f}\u00a0pp\u00a0{_ci(r['mean_diff_low'], r['mean_diff_high'], 2)})")
        v = vd.judge(r["mean_diff_low"], r["mean_diff_high"], margin=MEAN_MARGIN_PP, unit=" pp", digits=2)
    else:
        ours, v = "–", str(r["verdict"])
    return _row(claim, short, paper_value, ours, v, r["welch_p"])


def _latch_share(study: str, profile: str | None, root: Any) -> float:
    """Where σ_ref latches, as a share of the run's steps, for the study's first stored run (nan if none)."""
    for item, rec in stored_runs(study, profile, root, arrays=False):
        steps = rec.get("steps_per_epoch") or 0  # records written before it was stored have none
        return item.spec.vml.warmup_steps / (steps * item.spec.epochs) if steps else float("nan")
    return float("nan")


def _reactivity_row(profile: str | None, root: Any) -> dict[str, Any]:
    """Fig. 1's claim: the paper's seed-averaged CCF peak beside ours, judged on the per-seed r at lag +1
    (a t interval over seeds) of the `reactivity-long` runs (40 epochs, σ_ref latched early: the protocol
    on which Fig. 1 can be tested); the short pool's runs are shown beside it, not judged."""
    P = paper.REACTIVITY
    claim, short = "the controller leads the test loss by one epoch: CCF peak lag, r at +1 (Fig. 1)", "Fig. 1"
    paper_value = f"τ* = +{P['tau_star']}; r = {P['r_tau_star']}"
    parts: list[str] = []
    long = reactivity_arms_table(profile, root, study="reactivity-long").set_index("arm")
    m, lo, hi, k = (long.loc["VML", c] for c in ("mean r at +1", "low", "high", "runs"))
    share = _latch_share("reactivity", profile, root)
    short_note = (f"5-epoch pool: not testable (σ_ref latches at {100 * share:.0f}% of the run)"
                  if np.isfinite(share) and share > FIG1_MAX_LATCH_SHARE else "")
    if np.isfinite(lo) and np.isfinite(hi):
        parts.append(f"40-epoch small-data runs: per-seed r at +1 = {m:.2f}\u00a0{_ci(lo, hi, 2)} over {k} seeds "
                     f"(Base control: {long.loc['Base (control)', 'mean r at +1']:.2f})")
        v = vd.judge(lo, hi, P["r_tau_star"], unit="", digits=2, effect="correlation")
        return _row(claim, short, paper_value, "; ".join(parts + [short_note] * bool(short_note)),
                    vd.Verdict(v.label, f"{v.reason} (40-epoch small-data runs)"))
    # no long runs: the short pool, judged only where its protocol can test Fig. 1
    res, note = reactivity_summary("vml", profile, root)
    arms = reactivity_arms_table(profile, root).set_index("arm")
    m, lo, hi, k = (arms.loc["VML", c] for c in ("mean r at +1", "low", "high", "runs"))
    if res is not None:
        parts.append(f"seed-averaged τ* = {res.tau_star:+d} ({res.n} epoch pairs)")
    if np.isfinite(m):
        parts.append(f"per-seed r at +1 = {m:.2f}\u00a0{_ci(lo, hi, 2) if np.isfinite(lo) else '(no interval)'} "
                     f"over {k} seeds (Base control: {arms.loc['Base (control)', 'mean r at +1']:.2f})")
    ours = "; ".join(parts) or "–"
    if short_note:
        return _row(claim, short, paper_value, ours,
                    vd.Verdict(vd.UNTESTABLE, f"σ_ref latches at {100 * share:.0f}% of the run, so λ's first "
                                              "epochs are fixed by the warm-up"))
    if np.isfinite(lo) and np.isfinite(hi):
        epochs = epoch_series("vml", profile, root)[1].shape[1]
        v = vd.judge(lo, hi, P["r_tau_star"], unit="", digits=2, effect="correlation")
        return _row(claim, short, paper_value, ours, vd.Verdict(v.label, f"{v.reason} (on {epochs}-epoch runs)"))
    return _row(claim, short, paper_value, ours, note if res is None and note == NO_RUNS
                else f"cannot be computed: {note}" if res is None else "no interval")


def headline_table(profile: str | None = None, root: Any = None, n_boot: int = 2000) -> pd.DataFrame:
    """The paper's main claims, each with its value, ours with a 95% CI (percent; F interval for a
    Var. Red., Welch for a mean change, a t interval over seeds for r), the verdict in the book's
    vocabulary (`vml.analysis.verdicts.judge`) and why, computed from the store. The claims' short
    names are in `attrs["short"]` (for `headline_summary`)."""
    t1, t3 = paper.table1().set_index("source").loc["All"], paper.table3().set_index("group_size").loc[20]
    t2, t4 = paper.table2(), paper.table4().set_index("method").loc["VML"]
    ceiling = pool_ceiling(profile, root)  # the FastNet protocol of Tables 1 and 3
    rows: list[dict[str, Any]] = []
    src = sources_table(profile, root, n_boot=n_boot).set_index("source").loc["All"]
    rows.append(_row("across-seed SD reduction, CIFAR-10, 5 seeds, every source varied (Table 1)", "Table 1",
                     f"{t1['var_red']:.1f}%", _var_red_cell(src), _var_red_verdict(src, t1["var_red"], ceiling),
                     src["f_p"]))
    rows.append(_mean_row(src, f"mean accuracy unchanged, 5 seeds (Table 1; ours: Δ within ±{MEAN_MARGIN_PP} pp)",
                          "mean unchanged (5 seeds)", _paper_mean_change(t1)))
    arch = architectures_table(profile, root, n_boot=n_boot)
    rep = replication_table(profile, root, n_boot=n_boot)
    for dataset in ("CIFAR-10", "CIFAR-100"):
        red = t2.loc[t2["dataset"] == dataset, "var_red"]
        rows.append(_architectures_row(arch, dataset, f"{red.min():.1f}–{red.max():.1f}%",
                                       rep if dataset == "CIFAR-10" else None))
    sg = seed_groups_table(profile, root, sizes=(20,)).iloc[0]
    rows.append(_row("across-seed SD reduction, 20 seeds per arm (Table 3)", "Table 3", f"{t3['var_red']:.1f}%",
                     _var_red_cell(sg), _var_red_verdict(sg, t3["var_red"], ceiling), sg["f_p"]))
    # the abstract's smallest reduction (33%, Tables 1, 2 and 4), put to the largest sample we have
    rows.append(_row("a reduction of at least 33% (abstract; Table 4's VML row), tested on 20 seeds per arm",
                     "33% (abstract)", f"{t4['var_red']:.1f}%", _var_red_cell(sg),
                     _var_red_verdict(sg, t4["var_red"], ceiling)))
    rows.append(_mean_row(sg, "mean accuracy unchanged, 20 seeds per arm (Table 3)", "mean unchanged (20 seeds)",
                          _paper_mean_change(t3)))
    rows.append(_reactivity_row(profile, root))
    rows.append(_cost_row(t4, root))
    se = seed_effect_table(profile, root).set_index("arm")
    if np.isfinite(se["ours_pp"]).all():
        ours = (f"{se.loc['Base', 'ours_pp']:.2f} → {se.loc['VML', 'ours_pp']:.2f} pp "
                f"(top/bottom {se.loc['Base', 'k']} of {se.loc['Base', 'runs']} / "
                f"{se.loc['VML', 'k']} of {se.loc['VML', 'runs']})")
        t3 = paper.table3().set_index("group_size").loc[20]
        factor = min(paper.SEED_EFFECT["prior work"] / stats.max_seed_effect(t3["base_sd"], 20),
                     paper.SEED_EFFECT["VML"] / stats.max_seed_effect(t3["vml_sd"], 20))
        v = (f"descriptive only (no interval); the paper's values are {factor:.1f}× or more the largest gap "
             "that 20 runs with its Table 3 SDs allow")
    else:
        ours, v = "–", NO_RUNS
    rows.append(_row("seed effect size, top-10 minus bottom-10 of 20 seeds, pp (Sec. 5.5)", "seed effect size",
                     f"{paper.SEED_EFFECT['prior work']} → {paper.SEED_EFFECT['VML']}", ours, v))
    t = pd.DataFrame(rows).set_index("claim")
    short = list(t.pop("short"))
    t = _with_holm(t)
    t.attrs["short"] = short
    return t


def _with_holm(t: pd.DataFrame) -> pd.DataFrame:
    """The rows' test p-values (F for a spread, Welch for a mean) as 'p [Holm-adjusted p]' across the
    headline's tests; '–' for rows without one test (several networks, a stated size, descriptive)."""
    p = t.pop("p").astype(float) if "p" in t else pd.Series(np.nan, index=t.index)
    have = p.notna().to_numpy()
    adj = np.full(len(p), np.nan)
    if have.any():
        adj[have] = multipletests(p[have], method="holm")[1]
    t["p [Holm]"] = [f"{a:.2g}\u00a0[{b:.2g}]" if np.isfinite(a) else "–" for a, b in zip(p, adj)]
    return t


def headline_summary(t: pd.DataFrame) -> str:
    """One sentence counting the verdicts of a `headline_table` and naming the claims behind each count."""
    short = t.attrs.get("short") or list(t.index)
    groups: dict[str, list[str]] = {k: [] for k in (*vd.LABELS, WITHOUT)}
    for name, v in zip(short, t["verdict"]):
        groups[v if v in groups else WITHOUT].append(name)
    parts = "; ".join(f"{len(names)} {k} ({', '.join(names)})" for k, names in groups.items() if names)
    return f"Of the paper's {len(t)} headline claims, on our runs: {parts}."


# ----------------------------------------------------------------------------- the answer, first screen

def forest_table(primary: pd.DataFrame, spreads: pd.DataFrame, profile: str | None = None, root: Any = None,
                 n_boot: int = 2000) -> pd.DataFrame:
    """Every complete test of a Var. Red., one row each, for `plots.plot_forest`: the decisive test's
    comparisons (from `decisive.primary_table` and `decisive.spread_table`) and the 20-seed FastNet pool
    (Table 3's protocol), each with its estimate, F and bootstrap intervals, the ceiling its test-set floor
    allows and its display verdict. A decisive comparison whose arms share their seeds also gets the
    Pitman-Morgan interval of its seed-by-seed re-analysis (`second.reanalysis_table`) as
    `paired_low`/`paired_high`."""
    from . import decisive, second  # the tests' modules: imported here, where the answer is put together

    cap = decisive.ceilings(spreads) if len(spreads) else {}
    read = decisive.readings(primary, spreads).set_index("test") if len(spreads) else pd.DataFrame()
    paired = second.reanalysis_table(profile_or_default(profile), root)
    rows = []
    for r in primary.to_dict("records"):
        if pd.isna(r.get("f_p")):
            continue
        pm = paired.loc[r["test"]] if r["test"] in paired.index else {}
        rows.append({"label": f"{r['test']}\n({r['of'] // 2} seeds per arm; decisive)", "var_red": r["var_red"],
                     "f_low": r["f_low"], "f_high": r["f_high"], "boot_low": r["boot_low"],
                     "boot_high": r["boot_high"], "paired_low": pm.get("pm_low", np.nan),
                     "paired_high": pm.get("pm_high", np.nan), "ceiling": cap.get(r["test"], np.nan),
                     "verdict": read.loc[r["test"], "reading"] if r["test"] in read.index else ""})
    sg = seed_groups_table(profile, root, sizes=(20,)).iloc[0]
    if np.isfinite(sg["var_red"]):
        ceiling = pool_ceiling(profile, root)
        v = vd.judge(sg["var_red_low"], sg["var_red_high"], decisive.CLAIMED, ceiling=ceiling, p=sg["f_p"])
        rows.append({"label": f"FastNet, 5 epochs\n({sg['n_base']} seeds per arm; Table 3's pool)",
                     "var_red": sg["var_red"], "f_low": sg["var_red_low"], "f_high": sg["var_red_high"],
                     "boot_low": sg["var_red_boot_low"], "boot_high": sg["var_red_boot_high"],
                     "ceiling": ceiling if ceiling is not None else np.nan, "verdict": v.label})
    return pd.DataFrame(rows, columns=["label", "var_red", "f_low", "f_high", "boot_low", "boot_high", "paired_low",
                                       "paired_high", "ceiling", "verdict"])


def protocol_line(primary: pd.DataFrame, profile: str | None = None) -> str:
    """The decisive test's protocol in one line, from its runs' specs and the Base runs' mean accuracy."""
    from . import decisive

    groups: dict[str, list[tuple[int, float]]] = {}  # one entry per network, width and data share
    acc = primary.set_index("test")["base_mean"] if "base_mean" in primary else pd.Series(dtype=float)
    for study, arm in decisive.PRIMARY:
        s = next(i.spec for i in get_study(study).grid(profile_or_default(profile)) if i.tags.get("arm") == arm)
        label = decisive.primary_label(study, arm, profile_or_default(profile))
        data = f" on {100 * s.train_subset / decisive.CIFAR10_TRAIN:.0f}% of the training images" if s.train_subset else ""
        groups.setdefault(f"{MODEL_NAMES.get(s.model, s.model)} at width {s.width:g}{data}", []).append(
            (s.epochs, float(acc.get(label, np.nan))))
    parts = []
    for what, runs in groups.items():
        epochs = " and ".join(str(e) for e, _ in runs)
        accs = [a for _, a in runs]
        shown = (f" ({' and '.join(f'{a:.0f}%' for a in accs)} test accuracy)" if all(np.isfinite(accs)) else "")
        parts.append(f"{what} for {epochs} epochs{shown}")
    s = next(i.spec for i in get_study(decisive.PRIMARY[0][0]).grid(profile_or_default(profile)))
    where = ", trained on CPUs (no GPU)" if profile_or_default(profile) == "cpu" else ""
    return f"{'; '.join(parts)}; {s.precision} autocast, CIFAR-10 from a lossy JPEG copy{where}"


def answer_text(primary: pd.DataFrame, spreads: pd.DataFrame, paired: pd.DataFrame | None = None) -> str:
    """The decisive test's answer as one quotable sentence (the first complete test: the one built to see
    the paper's effect), then the other tests in a second sentence, in the book's vocabulary. With
    `paired` (`second.reanalysis_table`), each test adds the upper end of its seed-by-seed
    (Pitman-Morgan) interval, what the pairing rules out."""
    from . import decisive

    read = decisive.readings(primary, spreads)
    if read.empty:
        return decisive.answer(primary)
    done = primary[primary["f_p"].notna()].set_index("test")
    found = [t for t, r in read.set_index("test").iterrows() if r["reading"] == vd.SUPPORTED]
    lead = ("VML made the spread smaller on " + ", ".join(found) if found else
            "No comparison of the decisive test found a smaller across-seed spread with VML")
    first, *rest = read.to_dict("records")
    r = done.loc[first["test"]]

    def paired_end(test: str) -> str:
        ok = paired is not None and test in paired.index and np.isfinite(paired.loc[test].get("pm_high", np.nan))
        return f"; paired by seed, the interval ends at {paired.loc[test, 'pm_high']:.1f}%" if ok else ""

    text = (f"{lead}: on {first['test']} ({int(r['of']) // 2} seeds per arm) the test "
            f"{decisive.short_why(pd.Series(first))} (Var. Red. {decisive._whole(r['var_red'])}%, 95% CI "
            f"{decisive._whole(r['f_low'])}% to {decisive._whole(r['f_high'])}%{paired_end(first['test'])}).")
    others = [f"{g['test']}: *{g['reading']}* ({decisive.short_why(pd.Series(g))}{paired_end(g['test'])})"
              for g in rest]
    return text + (" " + "; ".join(others) + "." if others else "")
