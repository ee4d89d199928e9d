"""Loading and aggregation for the book's results chapters (4-10): store records in, tidy tables out.

Every function takes a `profile` (default: `vml.book.BOOK_PROFILE`) and an optional store `root`
and works on a *partial* store: settings with too few runs come back with NaN statistics and a
verdict that says so, never an error. Accuracies are fractions in the store; every table here
reports them in percent (SDs in percentage points), like the paper. Randomised steps (bootstrap,
seed-group draws, resampled ensembles) take an explicit `seed`.

The CI behind each verdict is the exact F interval for the SD ratio (normal theory): with 5 runs
per arm a percentile bootstrap of an SD ratio is too narrow (it cannot see beyond the 5 values it
resamples), so the bootstrap interval is reported beside it but does not decide the verdict.
"""
from __future__ import annotations

import contextlib
from collections import Counter
import math
import warnings
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import pandas as pd
from scipy import stats as _st

from . import paper, stats, store
from .spec import BOOK_PROFILE, PROFILES
from .studies import ABLATIONS, GridItem, REPLICATION_MODEL, VPL_WEIGHT, ablation_tag, get_study

__all__ = [
    "NO_RUNS", "TOO_FEW", "NEEDS_DATA", "BROKEN_PP", "profile_or_default", "stored_runs", "load", "arm_values",
    "compare_arms", "comparison_table", "display_table", "missing_runs", "sources_table",
    "architectures_table", "replication_table", "pool", "seed_groups_table", "kde_groups",
    "epoch_series", "reactivity_summary", "reactivity_per_seed_table", "iteration_ccf",
    "remedies_table", "ensemble_accuracies", "seed_effect_table", "wall_times", "ablation_table",
    "ablation_display", "broken_settings", "ablation_verdicts", "seed_table", "churn_table",
    "noise_floor_table", "power_table", "sd_ci_table",
]

NO_RUNS = "no runs yet"
TOO_FEW = "too few runs (need 2 per arm)"
NEEDS_DATA = "needs the official CIFAR-100 data"

MODEL_NAMES = {"resnet14": "ResNet-14", "vgg16": "VGG-16", "shufflenetv2": "ShuffleNet-V2",
               "mobilenetv2": "MobileNetV2"}
DATASET_NAMES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}
SOURCE_NAMES = {"all": "All", "init": "Init", "aug": "Aug", "shuf": "Shuf"}


@contextlib.contextmanager
def _quiet():
    """Silence numpy/scipy runtime warnings of degenerate inputs (empty CCF lags, 2-run Levene):
    the tables show those cases as NaN, and a warning would only clutter the book's pages."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def profile_or_default(profile: str | None) -> str:
    """`profile`, or the book's profile (`VML_BOOK_PROFILE`, default "cpu")."""
    return BOOK_PROFILE if profile is None else profile


def stored_runs(study: str, profile: str | None = None, root: Any = None, *, loss: str | None = None,
                arrays: bool = True) -> Iterator[tuple[GridItem, dict[str, Any]]]:
    """(grid item, record) of every stored run of `study`, in grid order (missing runs are skipped);
    only the `loss` arm when given; `arrays` decodes predictions and series (`store.read`)."""
    for item in get_study(study).grid(profile_or_default(profile)):
        if (loss is None or item.spec.loss == loss) and store.exists(item.spec, root):
            yield item, store.read(item.spec, root=root, arrays=arrays)


def load(study: str, profile: str | None = None, root: Any = None) -> pd.DataFrame:
    """A tidy frame of a study's stored runs: one row per run (its spec's fields, scalars and tags);
    empty, with the usual columns, when nothing is stored yet."""
    rows = [{**store.row(item.spec, rec), **item.tags}
            for item, rec in stored_runs(study, profile, root, arrays=False)]
    if not rows:
        return pd.DataFrame(columns=["key", "profile", "dataset", "model", "width", "loss", "vary",
                                     "seed", "epochs", *store.SCALARS])
    return pd.DataFrame(rows)


def arm_values(df: pd.DataFrame, value: str = "test_acc") -> dict[str, np.ndarray]:
    """{"base": values, "vml": values} in seed order, in percent for accuracies."""
    out = {}
    for loss in ("base", "vml"):
        g = df[df["loss"] == loss].sort_values("seed") if len(df) else df
        a = g[value].to_numpy(dtype=float) if len(g) else np.zeros(0)
        out[loss] = 100.0 * a if value.endswith("acc") else a
    return out


# ----------------------------------------------------------------------------- Base vs VML rows

def compare_arms(base: Any, vml: Any, claimed: float | None = None, n_boot: int = 2000,
                 seed: int = 0) -> dict[str, Any]:
    """One Base-vs-VML row (values in percent): n, means, SDs, Var. Red. with its F and bootstrap
    intervals, the mean difference with Welch's interval, test p-values and a verdict on `claimed`."""
    b, v = np.asarray(base, dtype=float), np.asarray(vml, dtype=float)
    row: dict[str, Any] = {"n_base": int(b.size), "n_vml": int(v.size),
                           "base_mean": b.mean() if b.size else np.nan,
                           "vml_mean": v.mean() if v.size else np.nan,
                           "base_sd": b.std(ddof=1) if b.size > 1 else np.nan,
                           "vml_sd": v.std(ddof=1) if v.size > 1 else np.nan}
    keys = ["var_red", "var_red_low", "var_red_high", "var_red_boot_low", "var_red_boot_high",
            "sd_ratio", "mean_diff", "mean_diff_low", "mean_diff_high", "f_p", "levene_p", "welch_p",
            "p_vml_better"]
    row.update({k: np.nan for k in keys})
    if b.size == 0 and v.size == 0:
        row["verdict"] = NO_RUNS
        return row
    if b.size < 2 or v.size < 2:
        row["verdict"] = TOO_FEW
        return row
    with _quiet():
        c = stats.compare(b, v, n_boot=n_boot, seed=seed)
        d = stats.mean_diff_ci(b, v)
    row.update(var_red=c.var_red_f.estimate, var_red_low=c.var_red_f.low, var_red_high=c.var_red_f.high,
               var_red_boot_low=c.var_red.low, var_red_boot_high=c.var_red.high,
               sd_ratio=c.sd_ratio_f.estimate, mean_diff=d.estimate, mean_diff_low=d.low, mean_diff_high=d.high,
               f_p=c.f_p, levene_p=c.levene_p, welch_p=c.welch_p,
               p_vml_better=c.prob_improvement.estimate)
    claim = claimed if claimed is not None and claimed > 0 else None
    row["verdict"] = stats.verdict(c.var_red_f.low, c.var_red_f.high, claim)
    return row


PAPER_COLUMNS = ("base_acc", "base_sd", "vml_acc", "vml_sd", "var_red")  # of `paper.table1`-`table3`


def comparison_table(df: pd.DataFrame, by: Sequence[str], settings: Sequence[tuple],
                     paper_rows: Sequence[pd.Series | None], n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per setting (a tuple of values of the `by` columns, in the given order): our Base-vs-VML row
    beside the paper's row for it (`paper_rows`, in the same order; None where the paper has none),
    with the verdict on the paper's Var. Red."""
    rows = []
    for setting, prow in zip(settings, paper_rows):
        sel = df
        for col, val in zip(by, setting):
            sel = sel[sel[col] == val] if len(sel) else sel
        arms = arm_values(sel)
        r = dict(zip(by, setting))
        r.update({f"paper_{k}": float(prow[k]) if prow is not None else np.nan for k in PAPER_COLUMNS})
        claimed = float(prow["var_red"]) if prow is not None else None
        r.update(compare_arms(arms["base"], arms["vml"], claimed, n_boot=n_boot, seed=seed))
        rows.append(r)
    return pd.DataFrame(rows)


def _pm(m: float, s: float, digits: int = 2, sd_digits: int = 3) -> str:
    if not np.isfinite(m):
        return "–"
    # no-break spaces: a cell never wraps inside "mean ± SD" on the page
    return f"{m:.{digits}f}\u00a0±\u00a0{s:.{sd_digits}f}" if np.isfinite(s) else f"{m:.{digits}f}"


def _ci(lo: float, hi: float, digits: int = 0) -> str:
    if not (np.isfinite(lo) or np.isfinite(hi)):
        return "–"
    f = (lambda x: "−∞" if x == -np.inf else ("+∞" if x == np.inf else f"{x:.{digits}f}"))
    return f"[{f(lo)},\u00a0{f(hi)}]"


PARTS = ("all", "accuracy", "verdict")


def _part(out: pd.DataFrame, part: str, accuracy: Sequence[str], shared: Sequence[str] = ()) -> pd.DataFrame:
    """Columns of a reader's table: all, the accuracy half (`accuracy`) or the verdict half (the rest);
    `shared` columns appear in both halves. Two halves fit a page where the whole does not."""
    if part not in PARTS:
        raise ValueError(f"part={part!r} is not allowed; use one of {PARTS}")
    if part == "all":
        return out
    keep = [c for c in out.columns if (c in accuracy) == (part == "accuracy") or c in shared]
    return out[keep]


def display_table(t: pd.DataFrame, labels: Sequence[str], part: str = "all") -> pd.DataFrame:
    """The reader's view of a `comparison_table`: paper vs ours as 'mean ± SD' strings, the Var. Red.
    with its 95% F interval, the mean difference and the verdict (label columns first); `part`
    'accuracy' or 'verdict' gives one half of the columns."""
    out = pd.DataFrame({c: t[c] for c in labels})
    out["n (B/V)"] = [f"{a}/{b}" for a, b in zip(t["n_base"], t["n_vml"])]
    out["paper Base"] = [_pm(m, s) for m, s in zip(t["paper_base_acc"], t["paper_base_sd"])]
    out["ours Base"] = [_pm(m, s) for m, s in zip(t["base_mean"], t["base_sd"])]
    out["paper VML"] = [_pm(m, s) for m, s in zip(t["paper_vml_acc"], t["paper_vml_sd"])]
    out["ours VML"] = [_pm(m, s) for m, s in zip(t["vml_mean"], t["vml_sd"])]
    out["paper Var.Red. %"] = [f"{x:.1f}" if np.isfinite(x) else "–" for x in t["paper_var_red"]]
    out["ours Var.Red. %"] = [f"{x:.1f}" if np.isfinite(x) else "–" for x in t["var_red"]]
    out["95% CI (F)"] = [_ci(a, b) for a, b in zip(t["var_red_low"], t["var_red_high"])]
    out["Δ mean pp [95% CI]"] = [
        f"{d:+.2f}\u00a0{_ci(a, b, 2)}" if np.isfinite(d) else "–"
        for d, a, b in zip(t["mean_diff"], t["mean_diff_low"], t["mean_diff_high"])]
    out["verdict"] = t["verdict"]
    out = out.set_index(list(labels))
    return _part(out, part, ["paper Base", "ours Base", "paper VML", "ours VML"], shared=["n (B/V)"])


def missing_runs(study: str, profile: str | None = None, root: Any = None,
                 by: Sequence[str] = ("loss",)) -> pd.DataFrame:
    """Per group (spec fields or tags named in `by`): runs in the grid, stored, and the missing seeds."""
    profile = profile_or_default(profile)
    rows = []
    for item in get_study(study).grid(profile):
        d = {**item.spec.to_dict(), **item.tags}
        rows.append({**{k: d.get(k) for k in by}, "seed": item.spec.seed,
                     "stored": store.exists(item.spec, root)})
    g = pd.DataFrame(rows)
    out = []
    for key, part in g.groupby(list(by), sort=False):
        key = key if isinstance(key, tuple) else (key,)
        miss = sorted(part.loc[~part["stored"], "seed"])
        out.append({**dict(zip(by, key)), "runs": len(part), "stored": int(part["stored"].sum()),
                    "missing seeds": _ranges(miss) if miss else "none"})
    return pd.DataFrame(out)


def _ranges(seeds: Iterable[int]) -> str:
    """[1, 2, 3, 7] -> '1-3, 7'."""
    s = sorted(seeds)
    parts, start = [], None
    for i, x in enumerate(s):
        if start is None:
            start = x
        if i + 1 == len(s) or s[i + 1] != x + 1:
            parts.append(f"{start}" if start == x else f"{start}-{x}")
            start = None
    return ", ".join(parts)


# ----------------------------------------------------------------------------- Tables 1 and 2

def sources_table(profile: str | None = None, root: Any = None, n_boot: int = 2000,
                  seed: int = 0) -> pd.DataFrame:
    """Table 1: one row per varied source (All, Init, Aug, Shuf), ours beside the paper's."""
    p = paper.table1().set_index("source")
    t = comparison_table(load("sources", profile, root), ["vary"], [(v,) for v in SOURCE_NAMES],
                         [p.loc[name] for name in SOURCE_NAMES.values()], n_boot=n_boot, seed=seed)
    t.insert(0, "source", [SOURCE_NAMES[v] for v in t["vary"]])
    return t.drop(columns="vary")


def architectures_table(profile: str | None = None, root: Any = None, n_boot: int = 2000,
                        seed: int = 0) -> pd.DataFrame:
    """Table 2: one row per (dataset, model) of the paper, ours beside it; CIFAR-100 rows without
    stored runs say that they need the official data (the pack shipped here is CIFAR-10 only)."""
    profile = profile_or_default(profile)
    df = load("architectures", profile, root)
    grid = get_study("architectures").grid(profile)
    settings = list(dict.fromkeys((i.spec.dataset, i.spec.model) for i in grid))
    p = paper.table2().set_index(["dataset", "model"])
    names = [(DATASET_NAMES.get(d, d), MODEL_NAMES.get(m, m)) for d, m in settings]
    t = comparison_table(df, ["dataset", "model"], settings, [p.loc[k] if k in p.index else None for k in names],
                         n_boot=n_boot, seed=seed)
    t.insert(0, "Dataset", [d for d, _ in names])
    t.insert(1, "Model", [m for _, m in names])
    for i, r in t.iterrows():  # from the store alone, not from this machine's data: outputs stay stable
        if r["n_base"] + r["n_vml"] == 0 and r["dataset"] == "cifar100":
            t.loc[i, "verdict"] = NEEDS_DATA
    return t.drop(columns=["dataset", "model"])


def replication_table(profile: str | None = None, root: Any = None, n_boot: int = 2000,
                      seed: int = 0) -> pd.DataFrame:
    """Table 2's CIFAR-10 cell for `studies.REPLICATION_MODEL` three ways: seeds 1-5 (the
    `architectures` runs), the new seeds 6-10 (the `replication` study, an independent test) and all
    ten; each a Base-vs-VML row with the paper's Var. Red. and a verdict on it."""
    profile = profile_or_default(profile)
    dataset = get_study("replication").grid(profile)[0].spec.dataset  # synthetic in `smoke`
    old = load("architectures", profile, root)
    if len(old):
        old = old[(old["model"] == REPLICATION_MODEL) & (old["dataset"] == dataset)]
    new = load("replication", profile, root)
    p = paper.table2().set_index(["dataset", "model"])
    key = (DATASET_NAMES.get(dataset, dataset), MODEL_NAMES.get(REPLICATION_MODEL, REPLICATION_MODEL))
    claimed = float(p.loc[key, "var_red"]) if key in p.index else np.nan
    first = [i.spec.seed for i in get_study("architectures").grid(profile) if i.spec.model == REPLICATION_MODEL]
    fresh = [i.spec.seed for i in get_study("replication").grid(profile)]
    a, b = f"{min(first)}-{max(first)}", f"{min(fresh)}-{max(fresh)}"
    rows = []
    for label, df in ((f"seeds {a} (Table 2)", old), (f"seeds {b} (new)", new),
                      (f"seeds {a} and {b}", pd.concat([old, new]))):
        arms = arm_values(df)
        row = compare_arms(arms["base"], arms["vml"], None if np.isnan(claimed) else claimed,
                           n_boot=n_boot, seed=seed)
        rows.append({"runs": label, "paper_var_red": claimed, **row})
    return pd.DataFrame(rows).set_index("runs")


# ----------------------------------------------------------------------------- the 20-seed pool

def pool(profile: str | None = None, root: Any = None) -> pd.DataFrame:
    """The seed-groups pool (Base and VML, seeds 1-20): one row per stored run."""
    return load("seed-groups", profile, root)


def seed_groups_table(profile: str | None = None, root: Any = None, sizes: Sequence[int] = (5, 10, 15, 20),
                      n_draws: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Table 3 two ways, per group size k that both arms can fill:

    - *first k seeds*: what one study with seeds 1..k reports, with the F interval of its
      Var. Red. and the verdict on the paper's number for that size;
    - *random groups*: the paper's procedure, the average SD over `n_draws` groups of k drawn
      without replacement from the stored pool, its Var. Red., and the central 95% range of the
      Var. Red. over paired draws (how far one study of size k can land from the average).
    Sizes that the stored pool cannot fill are listed with n and verdict "too few runs".
    """
    arms = arm_values(pool(profile, root))
    p = paper.table3().set_index("group_size")
    rows = []
    for k in sizes:
        r: dict[str, Any] = {"group_size": k}
        for c in ("base_acc", "base_sd", "vml_acc", "vml_sd", "var_red"):
            r[f"paper_{c}"] = float(p.loc[k, c]) if k in p.index else np.nan
        b, v = arms["base"], arms["vml"]
        if min(b.size, v.size) < k:
            r.update(compare_arms(b[:0], v[:0]))
            r.update(n_base=int(min(b.size, k)), n_vml=int(min(v.size, k)),
                     verdict=f"too few runs (need {k} per arm)" if b.size + v.size else NO_RUNS)
            r.update(avg_base_sd=np.nan, avg_vml_sd=np.nan, avg_var_red=np.nan,
                     draws_var_red_low=np.nan, draws_var_red_high=np.nan)
            rows.append(r)
            continue
        r.update(compare_arms(b[:k], v[:k], r["paper_var_red"], seed=seed))
        mb, sb = stats.seed_group_draws(b, k, n_draws, seed)
        mv, sv = stats.seed_group_draws(v, k, n_draws, seed)  # same positions: paired by seed order
        with np.errstate(divide="ignore"):
            red = stats.var_reduction(sb, sv)
        r.update(avg_base_sd=float(sb.mean()), avg_vml_sd=float(sv.mean()),
                 avg_var_red=stats.var_reduction(sb.mean(), sv.mean()),
                 draws_var_red_low=float(np.quantile(red, 0.025)),
                 draws_var_red_high=float(np.quantile(red, 0.975)))
        rows.append(r)
    return pd.DataFrame(rows)


def kde_groups(profile: str | None = None, root: Any = None) -> tuple[dict[str, np.ndarray], tuple[int, ...]]:
    """Fig. 2 inputs: {"Base": acc %, "VML": acc %} in seed order and the sizes that can be drawn
    (5 and the largest size both arms have; fewer when the pool is smaller)."""
    arms = arm_values(pool(profile, root))
    n = min(arms["base"].size, arms["vml"].size)
    sizes = tuple(sorted({s for s in (min(5, n), n) if s >= 3}))
    return {"Base": arms["base"][:n], "VML": arms["vml"][:n]}, sizes


# ----------------------------------------------------------------------------- Fig. 1 (reactivity)

def epoch_series(loss: str = "vml", profile: str | None = None, root: Any = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Epoch-level lambda_k (the epoch's mean lambda_t) and end-of-epoch test loss of the pool's
    `loss` runs: (seeds, lam (runs, epochs), test_loss (runs, epochs)), in seed order."""
    seeds, lam, tl = [], [], []
    for item, rec in stored_runs("seed-groups", profile, root, loss=loss, arrays=False):
        seeds.append(item.spec.seed)
        lam.append([e["lambda_mean"] for e in rec["epochs"]])
        tl.append([e["test_loss"] for e in rec["epochs"]])
    order = np.argsort(seeds)
    as2d = (lambda x: np.asarray(x, dtype=float)[order] if x else np.zeros((0, 0)))
    return np.asarray(seeds, dtype=int)[order], as2d(lam), as2d(tl)


def reactivity_summary(loss: str = "vml", profile: str | None = None, root: Any = None,
                       max_lag: int = 10) -> tuple[stats.Reactivity | None, str]:
    """Fig. 1 on the seed-averaged epoch series (the paper's analysis), or None and the reason."""
    seeds, lam, tl = epoch_series(loss, profile, root)
    if seeds.size == 0:
        return None, NO_RUNS
    try:
        with _quiet():
            res = stats.reactivity(lam, tl, max_lag=max_lag)
        return res, f"{seeds.size} runs x {lam.shape[1]} epochs"
    except ValueError as e:
        return None, str(e)


def reactivity_per_seed_table(loss: str = "vml", profile: str | None = None, root: Any = None,
                              max_lag: int = 10) -> pd.DataFrame:
    """Per seed: the CCF peak lag and r, r at lag +1, and the lead-1 scatter's slope, p and n."""
    seeds, lam, tl = epoch_series(loss, profile, root)
    rows = []
    for s, a, b in zip(seeds, lam, tl):
        try:
            with _quiet():
                res = stats.reactivity(a, b, max_lag=max_lag)
        except ValueError:
            continue
        r1 = float(res.r[list(res.lags).index(1)]) if 1 in res.lags else np.nan
        rows.append({"seed": int(s), "tau_star": res.tau_star, "r_tau_star": res.r_star, "r_lag1": r1,
                     "slope": res.slope, "p": res.p, "n_pairs": res.n,
                     "defined_lags": int(np.isfinite(res.r).sum())})
    return pd.DataFrame(rows, columns=["seed", "tau_star", "r_tau_star", "r_lag1", "slope", "p",
                                       "n_pairs", "defined_lags"])


def iteration_ccf(loss: str = "vml", profile: str | None = None, root: Any = None, max_lag: int = 10,
                  skip: int | None = None) -> pd.DataFrame:
    """Our extension of Fig. 1 to iterations: per run, r_tau = corr(dlambda_t, dloss_{t+tau}) of the
    per-iteration lambda_t and training (base) loss, tau in [-max_lag, max_lag] iterations, over the
    iterations after the warm-up (lambda_t is constant before sigma_ref latches; `skip` defaults to
    the run's warmup_steps). Returns per lag: runs, mean r over runs with a t interval, and the
    approximate white-noise band 1.96/sqrt(T) for one run's CCF."""
    per_run = []
    t_len = []
    for item, rec in stored_runs("seed-groups", profile, root, loss=loss):
        lam, lo = rec["iters"]["lambda"].astype(float), rec["iters"]["loss"].astype(float)
        w = item.spec.vml.warmup_steps if skip is None else skip
        d_lam, d_loss = np.diff(lam[w:]), np.diff(lo[w:])
        if d_lam.size < 3 or d_lam.std() == 0:
            continue
        with _quiet():
            lags, r = stats.ccf(d_lam, d_loss, max_lag)
        per_run.append(r)
        t_len.append(d_lam.size)
    lags = np.arange(-max_lag, max_lag + 1)
    if not per_run:
        return pd.DataFrame({"lag": lags, "runs": 0, "mean_r": np.nan, "low": np.nan, "high": np.nan,
                             "noise_band": np.nan})
    r = np.vstack(per_run)
    n = r.shape[0]
    m = r.mean(axis=0)
    with _quiet():  # one run: no interval (NaN)
        ci = _st.ttest_1samp(r, 0.0, axis=0).confidence_interval(0.95)
    return pd.DataFrame({"lag": lags, "runs": n, "mean_r": m, "low": np.maximum(ci.low, -1.0),
                         "high": np.minimum(ci.high, 1.0),
                         "noise_band": 1.96 / math.sqrt(float(np.mean(t_len)))})


# ----------------------------------------------------------------------------- Table 4 (remedies)

def _pool_arrays(loss: str, profile: str, root: Any) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Seeds, probabilities and argmax predictions of the pool's `loss` runs that kept probabilities."""
    seeds, probs, preds = [], [], []
    for item, rec in stored_runs("seed-groups", profile, root, loss=loss):
        if "probs" not in rec["arrays"]:
            continue
        seeds.append(item.spec.seed)
        probs.append(rec["arrays"]["probs"])
        preds.append(rec["arrays"]["preds"])
    order = np.argsort(seeds)
    return np.asarray(seeds)[order], [probs[i] for i in order], [preds[i] for i in order]


def ensemble_accuracies(probs: Sequence[np.ndarray], labels: np.ndarray, size: int,
                        method: str = "mean") -> np.ndarray:
    """Accuracy (fraction) of each *disjoint* ensemble of `size` consecutive runs (runs beyond the
    last full ensemble are left out). method="mean": argmax of the averaged probabilities;
    "vote": majority vote of the members' argmax, ties broken by the averaged probability."""
    n = len(probs) // size
    out = []
    for j in range(n):
        members = np.stack(probs[j * size:(j + 1) * size]).astype(np.float64)
        avg = members.mean(axis=0)
        if method == "mean":
            pred = avg.argmax(axis=1)
        elif method == "vote":
            k = avg.shape[1]
            votes = np.stack([np.bincount(row, minlength=k) for row in members.argmax(axis=2).T])
            pred = (votes + 0.5 * avg).argmax(axis=1)  # avg < 1: breaks ties only
        else:
            raise ValueError(f"method={method!r} is not allowed; use 'mean' or 'vote'")
        out.append(float((pred == labels).mean()))
    return np.asarray(out)


def _paired_boot_red(ref: np.ndarray, other: np.ndarray, n_boot: int, seed: int) -> tuple[float, float]:
    """Percentile bootstrap of Var. Red. of `other` against `ref`, the same runs resampled together."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, ref.size, (n_boot, ref.size))
    with np.errstate(divide="ignore", invalid="ignore"):
        red = 100 * (1 - other[idx].std(axis=1, ddof=1) / ref[idx].std(axis=1, ddof=1))
    red = red[np.isfinite(red)]
    if red.size == 0:  # every resample of the reference had SD 0
        return np.nan, np.nan
    return float(np.quantile(red, 0.025)), float(np.quantile(red, 0.975))


def wall_times(profile: str | None = None, root: Any = None) -> pd.DataFrame:
    """Median and quartiles of the wall time per run (seconds) of the pool's Base and VML runs, and
    the VML/Base ratio of the medians."""
    df = pool(profile, root)
    rows = []
    for loss in ("base", "vml"):
        w = df.loc[df["loss"] == loss, "wall_s"].to_numpy(dtype=float) if len(df) else np.zeros(0)
        rows.append({"loss": loss, "runs": int(w.size),
                     "median_s": float(np.median(w)) if w.size else np.nan,
                     "q25_s": float(np.quantile(w, 0.25)) if w.size else np.nan,
                     "q75_s": float(np.quantile(w, 0.75)) if w.size else np.nan})
    t = pd.DataFrame(rows)
    t["ratio_to_base"] = t["median_s"] / t.loc[0, "median_s"]
    return t


def remedies_table(profile: str | None = None, root: Any = None, ensemble_sizes: Sequence[int] = (2, 5, 10),
                   n_resample: int = 200, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Table 4 on the 20-seed pool: per remedy, its accuracy SD over independent units (runs or
    disjoint ensembles), the Var. Red. against the single-model Base SD with a 95% interval, the
    verdict on the paper's number, and the training and inference cost.

    - Ensemble (N, mean of probabilities / majority vote): the Base runs in seed order cut into
      disjoint ensembles of N; their SD has (#ensembles − 1) degrees of freedom, and its interval
      is the F interval against the single-model Base SD (the ensembles reuse the same runs, so
      this treats two dependent SDs as independent: approximate). The SD over `n_resample` random
      ensembles drawn without replacement is reported too (`resampled_sd`): smoother, but biased
      low once N is a sizeable part of the pool, since such ensembles share members.
    - EMA weights and TTA (K views): the Base runs' `ema_acc` / `tta_acc`, paired with their own
      `test_acc`; the interval is a paired percentile bootstrap over runs.
    - VML: the VML runs against the Base runs (independent arms, F interval).
    """
    profile = profile_or_default(profile)
    df = pool(profile, root)
    p4 = paper.table4().set_index("method")
    base = df[df["loss"] == "base"].sort_values("seed") if len(df) else df
    vml = df[df["loss"] == "vml"].sort_values("seed") if len(df) else df
    acc_b = 100 * base["test_acc"].to_numpy(dtype=float) if len(base) else np.zeros(0)
    nb = acc_b.size
    sd_b = acc_b.std(ddof=1) if nb > 1 else np.nan
    walls = wall_times(profile, root).set_index("loss")
    vml_cost = walls.loc["vml", "ratio_to_base"]
    tta_k = int(base["tta_views"].iloc[0]) if len(base) else int(_profile_tta(profile))
    rows = [{"method": "Base (single model)", "paper_method": None, "units": nb,
             "mean_acc": acc_b.mean() if nb else np.nan, "sd": sd_b, "resampled_sd": np.nan,
             "var_red": 0.0 if nb > 1 else np.nan, "low": np.nan, "high": np.nan,
             "training_cost": "1x", "inference_cost": "1x"}]

    labels = None
    seeds, probs, _ = _pool_arrays("base", profile, root) if nb else (np.zeros(0), [], [])
    if probs:
        labels = store.labels(profile, base["dataset"].iloc[0], root)
    for n_ens in ensemble_sizes:
        for method, name in (("mean", "Ensemble (N={n}, mean prob.)"), ("vote", "Ensemble (N={n}, vote)")):
            r = {"method": name.format(n=n_ens), "paper_method": "Ensemble (N=20)",
                 "training_cost": f"{n_ens}x", "inference_cost": f"{n_ens}x"}
            accs = 100 * ensemble_accuracies(probs, labels, n_ens, method) if probs else np.zeros(0)
            r.update(units=int(accs.size), mean_acc=accs.mean() if accs.size else np.nan,
                     sd=accs.std(ddof=1) if accs.size > 1 else np.nan)
            r["var_red"] = 100 * (1 - r["sd"] / sd_b) if accs.size > 1 and nb > 1 else np.nan
            r["low"], r["high"] = stats.var_red_interval(sd_b, nb, r["sd"], accs.size)
            r["resampled_sd"] = _resampled_ensemble_sd(probs, labels, n_ens, method, n_resample, seed) \
                if probs and len(probs) > n_ens else np.nan
            rows.append(r)
    for col, name, paper_name, cost in (
            ("ema_acc", "EMA weights", "Accelerated ensemble (EMA/snapshots)", ("1x", "1x")),
            ("tta_acc", f"TTA (K={tta_k} views)", "Test-time augmentation (K views)", ("1x", f"{tta_k}x"))):
        a = 100 * base[col].to_numpy(dtype=float) if len(base) else np.zeros(0)
        r = {"method": name, "paper_method": paper_name, "units": int(a.size),
             "mean_acc": a.mean() if a.size else np.nan, "sd": a.std(ddof=1) if a.size > 1 else np.nan,
             "resampled_sd": np.nan, "training_cost": cost[0], "inference_cost": cost[1]}
        r["var_red"] = 100 * (1 - r["sd"] / sd_b) if a.size > 1 else np.nan
        r["low"], r["high"] = _paired_boot_red(acc_b, a, n_boot, seed) if a.size > 2 else (np.nan, np.nan)
        rows.append(r)
    acc_v = 100 * vml["test_acc"].to_numpy(dtype=float) if len(vml) else np.zeros(0)
    r = {"method": "VML", "paper_method": "VML", "units": int(acc_v.size),
         "mean_acc": acc_v.mean() if acc_v.size else np.nan,
         "sd": acc_v.std(ddof=1) if acc_v.size > 1 else np.nan, "resampled_sd": np.nan,
         "training_cost": f"{vml_cost:.2f}x (measured)" if np.isfinite(vml_cost) else "1x",
         "inference_cost": "1x"}
    r["var_red"] = 100 * (1 - r["sd"] / sd_b) if acc_v.size > 1 and nb > 1 else np.nan
    r["low"], r["high"] = stats.var_red_interval(sd_b, nb, r["sd"], acc_v.size)
    rows.append(r)
    t = pd.DataFrame(rows)
    t["paper_var_red"] = [float(p4.loc[m, "var_red"]) if m in p4.index else np.nan for m in t["paper_method"]]
    verdicts = []
    for _, row in t.iterrows():
        if row["method"].startswith("Base"):
            verdicts.append("reference")
        elif not (np.isfinite(row["low"]) and np.isfinite(row["high"])):
            unit = "ensembles" if row["method"].startswith("Ensemble") else "runs"
            need = 2 if unit == "ensembles" or row["method"] == "VML" else 3
            verdicts.append(f"too few {unit} (need {need})" if row["units"] or nb else NO_RUNS)
        elif row["method"].startswith("Ensemble") and not row["method"].startswith("Ensemble (N=20"):
            # smaller than the paper's N = 20: only "is there any reduction" is tested
            verdicts.append(stats.verdict(row["low"], row["high"]) + " (any reduction; N < 20)")
        else:
            claim = row["paper_var_red"] if np.isfinite(row["paper_var_red"]) else None
            verdicts.append(stats.verdict(row["low"], row["high"], claim))
    t["verdict"] = verdicts
    return t.drop(columns="paper_method")


def _profile_tta(profile: str) -> int:
    return PROFILES[profile]["tta_views"]


def _resampled_ensemble_sd(probs: Sequence[np.ndarray], labels: np.ndarray, size: int, method: str,
                           n: int, seed: int) -> float:
    """SD (pp) of the accuracy of `n` ensembles of `size` runs drawn without replacement from the pool."""
    rng = np.random.default_rng(seed)
    accs = []
    for _ in range(n):
        idx = rng.choice(len(probs), size, replace=False)
        accs.append(ensemble_accuracies([probs[i] for i in idx], labels, size, method)[0])
    return float(100 * np.std(accs, ddof=1))


def seed_effect_table(profile: str | None = None, root: Any = None) -> pd.DataFrame:
    """Sec. 5.5: top-k minus bottom-k mean accuracy (pp), k = n // 2 (paper: 10 of 20), per arm."""
    arms = arm_values(pool(profile, root))
    rows = []
    for loss, label, claim in (("base", "Base", paper.SEED_EFFECT["prior work"]),
                               ("vml", "VML", paper.SEED_EFFECT["VML"])):
        a = arms[loss]
        rows.append({"arm": label, "runs": int(a.size), "k": int(a.size // 2),
                     "paper": claim, "ours_pp": stats.seed_effect_size(a) if a.size >= 2 else np.nan})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- Fig. 3 (ablations)

DEFAULT_TAGS = ("SLA005", "SLB020", "SLD020", "SLW200", "SW010")
# the setting each appendix-B.2 finding says is best (beta: "larger is better", the largest value)
PREFERRED = {"alpha": 0.05, "beta": 0.50, "delta": 0.20, "warmup_steps": 200, "lambda_base": 0.10}


def ablation_table(profile: str | None = None, root: Any = None) -> pd.DataFrame:
    """Per (knob, setting): n, mean and SD of accuracy (%) with the SD's chi-square interval, whether
    the point is on its knob's Pareto front, and the Var. Red. against the Base reference (the pool's
    Base seeds 1-5) with its F interval. Settings without runs are listed with n = 0."""
    profile = profile_or_default(profile)
    df = load("ablations", profile, root)
    ref = arm_values(pool(profile, root))["base"][:5]
    rows = []
    for prefix, (knob, values) in ABLATIONS.items():
        for value in values:
            tag = ablation_tag(prefix, value)
            a = 100 * df.loc[df["tag"] == tag].sort_values("seed")["test_acc"].to_numpy(dtype=float) \
                if len(df) and "tag" in df else np.zeros(0)
            r = {"knob": knob, "tag": tag, "value": value, "default": tag in DEFAULT_TAGS, "n": int(a.size),
                 "mean": a.mean() if a.size else np.nan, "sd": a.std(ddof=1) if a.size > 1 else np.nan,
                 "sd_low": np.nan, "sd_high": np.nan}
            if a.size > 1:
                r["sd_low"], r["sd_high"] = stats.sd_ci(a)
            sd_ref = ref.std(ddof=1) if ref.size > 1 else np.nan
            r["var_red"] = 100 * (1 - r["sd"] / sd_ref) if a.size > 1 and ref.size > 1 else np.nan
            r["var_red_low"], r["var_red_high"] = stats.var_red_interval(sd_ref, ref.size, r["sd"], a.size)
            rows.append(r)
    t = pd.DataFrame(rows)
    t["front"] = False
    for knob, g in t.groupby("knob", sort=False):
        ok = g[g["n"] > 1]
        if len(ok):
            t.loc[ok.index, "front"] = stats.pareto_front(ok["sd"].to_numpy(), ok["mean"].to_numpy())
    return t


def ablation_display(t: pd.DataFrame) -> pd.DataFrame:
    """The reader's view of an `ablation_table`: one row per (knob, setting), the SD and the Var. Red.
    each with its 95% interval in one cell, so the table fits a page."""
    out = pd.DataFrame({"knob": t["knob"], "tag": t["tag"]})
    out["default"] = np.where(t["default"], "★", "")
    out["n"] = t["n"]
    out["mean %"] = [f"{m:.2f}" if np.isfinite(m) else "–" for m in t["mean"]]
    out["SD pp [95% CI]"] = [f"{s:.3f}\u00a0{_ci(a, b, 2)}" if np.isfinite(s) else "–"
                             for s, a, b in zip(t["sd"], t["sd_low"], t["sd_high"])]
    out["Pareto front"] = np.where(t["front"], "yes", "")
    out["Var.Red. % [95% CI]"] = [f"{v:.0f}\u00a0{_ci(a, b)}" if np.isfinite(v) else "–"
                                  for v, a, b in zip(t["var_red"], t["var_red_low"], t["var_red_high"])]
    return out.set_index(["knob", "tag"])


BROKEN_PP = 2.0  # a setting whose mean is this far below its knob's default "breaks training"


def broken_settings(t: pd.DataFrame) -> pd.Series:
    """Per row of an `ablation_table`: True where the setting breaks training, i.e. its mean is more
    than `BROKEN_PP` below its knob's default setting (False where either mean is missing)."""
    default = t[t["default"]].drop_duplicates("knob").set_index("knob")["mean"]
    return pd.Series(t["mean"].to_numpy() < t["knob"].map(default).to_numpy() - BROKEN_PP, index=t.index)


def ablation_verdicts(t: pd.DataFrame) -> pd.DataFrame:
    """Per knob, the appendix-B.2 finding checked against `ablation_table`: Bartlett's test for equal
    variances across the knob's settings (with at least 2 settings of 2+ runs each); "inconclusive at
    this n" unless p < 0.05; then "supported" if the paper's preferred setting has the lowest SD,
    else "not supported". A sensitivity column repeats the test without the settings that break
    training (mean more than `BROKEN_PP` below the knob's default); the verdict does not use it."""
    findings = paper.ablation_findings().set_index("knob")
    is_broken = broken_settings(t)
    rows = []
    for knob, g in t.groupby("knob", sort=False):
        ok = g[g["n"] > 1]
        r = {"knob": knob, "tag": findings.loc[knob, "tag"], "finding": findings.loc[knob, "finding"],
             "settings with runs": f"{len(ok)}/{len(g)}", "lowest SD": "–", "bartlett_p": np.nan,
             "broken": "", "bartlett_p_working": np.nan}
        if len(ok) >= 2:
            r["lowest SD"] = ok.loc[ok["sd"].idxmin(), "tag"]
            r["bartlett_p"] = stats.bartlett_summary(ok["n"], ok["sd"])[1]
            if r["bartlett_p"] >= 0.05:
                r["verdict"] = stats.INCONCLUSIVE
            else:
                best = ok.loc[ok["sd"].idxmin(), "value"]
                r["verdict"] = stats.SUPPORTED if math.isclose(best, PREFERRED[knob]) else stats.NOT_SUPPORTED
            broken = is_broken.loc[ok.index]
            r["broken"] = ", ".join(ok.loc[broken, "tag"])
            working = ok[~broken]
            if len(working) >= 2:
                r["bartlett_p_working"] = stats.bartlett_summary(working["n"], working["sd"])[1]
        else:
            r["verdict"] = NO_RUNS if g["n"].sum() == 0 else "too few settings with 2+ runs (need 2)"
        rows.append(r)
    cols = ["knob", "tag", "finding", "settings with runs", "lowest SD", "bartlett_p", "verdict",
            "broken", "bartlett_p_working"]
    return pd.DataFrame(rows, columns=cols)


# ----------------------------------------------------------------------------- chapter 10 (seeds)

def sd_ci_table(sizes: Sequence[int] = (5, 10, 20, 25), level: float = 0.95) -> pd.DataFrame:
    """The chi-square interval of an SD as multiples of the observed SD, and of an SD ratio (F) as
    multiples of the observed ratio, for n runs per arm."""
    rows = []
    for n in sizes:
        sd_low, sd_high = stats.sd_interval(1.0, n, level)
        ratio_low, ratio_high = stats.sd_ratio_interval(1.0, n, n, level)
        rows.append({"n per arm": n, "SD low (x SD)": sd_low, "SD high (x SD)": sd_high,
                     "ratio low (x ratio)": ratio_low, "ratio high (x ratio)": ratio_high})
    return pd.DataFrame(rows)


def power_table(ratios: Sequence[float] = (0.26, 0.5, 0.67, 0.8, 0.97), alpha: float = 0.05) -> pd.DataFrame:
    """Power of the two-sided F-test at n = 5 and 20 per arm, and seeds per arm for 80% power."""
    rows = []
    for r in ratios:
        rows.append({"SD ratio": r, "Var.Red. %": 100 * (1 - r), "power n=5": stats.f_test_power(5, r, alpha),
                     "power n=20": stats.f_test_power(20, r, alpha),
                     "seeds for 80%": stats.seeds_for_power(r, 0.8, alpha)})
    return pd.DataFrame(rows)


def seed_table(profile: str | None = None, root: Any = None) -> pd.DataFrame:
    """Per arm of the pool, for seeds 1-5 (the paper's n) and for every stored seed: n, mean and SD
    (%) with the SD's chi-square interval and the interval's width relative to the SD."""
    arms = arm_values(pool(profile, root))
    rows = []
    for loss, label in (("base", "Base"), ("vml", "VML")):
        for seeds, a in (("1-5", arms[loss][:5]), ("all stored", arms[loss])):
            r = {"arm": label, "seeds": seeds, "n": int(a.size), "mean": a.mean() if a.size else np.nan,
                 "sd": a.std(ddof=1) if a.size > 1 else np.nan, "sd_low": np.nan, "sd_high": np.nan}
            if a.size > 1:
                r["sd_low"], r["sd_high"] = stats.sd_ci(a)
            r["high/low"] = r["sd_high"] / r["sd_low"]
            rows.append(r)
    return pd.DataFrame(rows)


def churn_table(profile: str | None = None, root: Any = None) -> pd.DataFrame:
    """Prediction churn per arm (mean pairwise disagreement, %), its SD over pairs and the number of
    runs, for the plain, EMA and TTA predictions."""
    profile = profile_or_default(profile)
    rows = []
    for loss, label in (("base", "Base"), ("vml", "VML")):
        preds = {"preds": [], "ema_preds": [], "tta_preds": []}
        for _, rec in stored_runs("seed-groups", profile, root, loss=loss):
            for k in preds:
                preds[k].append(rec["arrays"][k])
        r = {"arm": label, "runs": len(preds["preds"])}
        for k, name in (("preds", "churn %"), ("ema_preds", "churn EMA %"), ("tta_preds", "churn TTA %")):
            if len(preds[k]) >= 2:
                m = stats.pairwise_churn(np.stack(preds[k]))
                iu = np.triu_indices(m.shape[0], 1)
                r[name] = 100 * float(m[iu].mean())
                if k == "preds":
                    r["churn SD over pairs %"] = 100 * float(m[iu].std(ddof=1)) if iu[0].size > 1 else np.nan
            else:
                r[name] = np.nan
                if k == "preds":
                    r["churn SD over pairs %"] = np.nan
        rows.append(r)
    return pd.DataFrame(rows)


def noise_floor_table(profile: str | None = None, root: Any = None) -> pd.DataFrame:
    """Per arm: observed accuracy SD, the independent-error test-set noise floor and Jordan's
    distribution-wise SD (all in pp), with the distribution-wise variance's interval."""
    profile = profile_or_default(profile)
    rows = []
    for loss, label in (("base", "Base"), ("vml", "VML")):
        correct, ds = [], None
        for item, rec in stored_runs("seed-groups", profile, root, loss=loss):
            ds = item.spec.dataset
            correct.append(rec["arrays"]["preds"])
        r = {"setting": label, "runs": len(correct)}
        if len(correct) >= 2:
            y = store.labels(profile, ds, root)
            tv = stats.test_set_variance(np.stack(correct) == y[None, :])
            lo, hi = tv["distribution_var_low"], tv["distribution_var_high"]
            r.update(observed_sd=100 * tv["observed_sd"], independent_sd=100 * tv["independent_sd"],
                     distribution_sd=100 * tv["distribution_sd"],
                     distribution_sd_low=100 * math.sqrt(max(lo, 0.0)),
                     distribution_sd_high=100 * math.sqrt(max(hi, 0.0)))
        else:
            r.update(observed_sd=np.nan, independent_sd=np.nan, distribution_sd=np.nan,
                     distribution_sd_low=np.nan, distribution_sd_high=np.nan)
        rows.append(r)
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- reader's views

def _fmt(x: float, digits: int = 2) -> str:
    return f"{x:.{digits}f}" if np.isfinite(x) else "–"


def display_seed_groups(t: pd.DataFrame, part: str = "all") -> pd.DataFrame:
    """The reader's view of `seed_groups_table` (`part` as in `display_table`)."""
    out = display_table(t, ["group_size"]).rename(columns={
        "ours Base": "ours Base (seeds 1..k)", "ours VML": "ours VML (seeds 1..k)",
        "ours Var.Red. %": "ours Var.Red. % (seeds 1..k)"})
    out.index.name = "seeds k"
    out = out.drop(columns=["Δ mean pp [95% CI]"])
    out.insert(len(out.columns) - 1, "random groups: Var.Red. %", [_fmt(x, 1) for x in t["avg_var_red"]])
    out.insert(len(out.columns) - 1, "central 95% of draws",
               [_ci(a, b) for a, b in zip(t["draws_var_red_low"], t["draws_var_red_high"])])
    return _part(out, part, ["paper Base", "ours Base (seeds 1..k)", "paper VML", "ours VML (seeds 1..k)"],
                 shared=["n (B/V)"])


def display_remedies(t: pd.DataFrame, part: str = "all") -> pd.DataFrame:
    """The reader's view of `remedies_table` (`part` as in `display_table`)."""
    out = pd.DataFrame({
        "method": t["method"], "units": t["units"], "mean acc %": [_fmt(x) for x in t["mean_acc"]],
        "SD pp": [_fmt(x, 3) for x in t["sd"]], "SD resampled pp": [_fmt(x, 3) for x in t["resampled_sd"]],
        "training": t["training_cost"], "inference": t["inference_cost"],
        "paper Var.Red. %": [_fmt(x, 1) for x in t["paper_var_red"]],
        "ours Var.Red. %": [_fmt(x, 1) for x in t["var_red"]],
        "95% CI": [_ci(a, b) for a, b in zip(t["low"], t["high"])],
        "verdict": t["verdict"]}).set_index("method")
    return _part(out, part, ["mean acc %", "SD pp", "SD resampled pp", "training", "inference"], shared=["units"])


def _mean_r_ci(a: np.ndarray) -> tuple[float, float, float]:
    """Mean of the finite correlations with its t interval, clipped to [-1, 1]."""
    a = a[np.isfinite(a)]
    if a.size < 2:
        return (float(a.mean()) if a.size else np.nan), np.nan, np.nan
    lo, hi = stats.mean_ci(a)
    return float(a.mean()), max(-1.0, lo), min(1.0, hi)


def reactivity_table(res: stats.Reactivity | None, per_seed: pd.DataFrame,
                     iters: pd.DataFrame, note: str = NO_RUNS) -> pd.DataFrame:
    """Fig. 1's numbers, paper beside ours: the seed-averaged scatter r (Fisher interval) and CCF
    peak, the per-seed r at lag +1 (t interval over seeds), the share of seeds peaking at +1
    (Clopper-Pearson), and our per-iteration extension (mean r over runs at lags 0 and +1)."""
    P = paper.REACTIVITY
    rows = []

    def add(q: str, pap: Any, ours: float, lo: float, hi: float, claim: float | None, digits: int = 3,
            note: str = "") -> None:
        if claim is None:
            v = note or "–"
        elif np.isfinite(lo) and np.isfinite(hi):
            v = stats.verdict(lo, hi, claim)
        else:
            v = note or "inconclusive at this n (no interval: too few pairs)"
        rows.append({"quantity": q, "paper": pap if isinstance(pap, str) else f"{pap:g}",
                     "ours": _fmt(ours, digits), "95% CI": _ci(lo, hi, digits), "verdict": v})

    if res is None:
        add("r of the lead-1 scatter (seed-averaged)", P["r"], np.nan, np.nan, np.nan, P["r"],
            note=NO_RUNS if note == NO_RUNS else "cannot be computed: too few epochs")
    else:
        lo, hi = stats.fisher_ci(res.slope, res.n)
        add(f"r of the lead-1 scatter (seed-averaged; n = {res.n} pairs)", P["r"], res.slope, lo, hi, P["r"])
        add("two-sided p of that slope", P["p"], res.p, np.nan, np.nan, None, note="–")
        rows[-1]["ours"] = f"{res.p:.2g}"
        add(f"CCF peak lag τ* (seed-averaged; {int(np.isfinite(res.r).sum())} of 21 lags defined)",
            P["tau_star"], res.tau_star, np.nan, np.nan, None, digits=0,
            note="matches" if res.tau_star == P["tau_star"] else "differs")
        add("r at τ* (seed-averaged)", P["r_tau_star"], res.r_star, np.nan, np.nan, None, note="–")
    r1 = per_seed["r_lag1"].to_numpy(dtype=float) if len(per_seed) else np.zeros(0)
    m, lo, hi = _mean_r_ci(r1)
    add(f"mean per-seed r at τ = +1 ({int(np.isfinite(r1).sum())} seeds)", P["r_tau_star"], m, lo, hi,
        P["r_tau_star"], note="" if r1.size else (NO_RUNS if note == NO_RUNS else
                                                   "cannot be computed: too few epochs"))
    if len(per_seed):
        k, n = int((per_seed["tau_star"] == 1).sum()), len(per_seed)
        ci = _st.binomtest(k, n).proportion_ci(0.95, method="exact")
        chance = 1 / float(per_seed["defined_lags"].median())
        share_verdict = (stats.SUPPORTED if ci.low > chance else
                         stats.NOT_SUPPORTED if ci.high < chance else stats.INCONCLUSIVE)
        rows.append({"quantity": f"share of seeds whose CCF peaks at τ = +1 (chance {chance:.2f})",
                     "paper": "(all series peak at +1)", "ours": f"{k}/{n}",
                     "95% CI": _ci(ci.low, ci.high, 2), "verdict": share_verdict})
    for lag in (0, 1):
        row = iters[iters["lag"] == lag].iloc[0]
        rows.append({"quantity": f"per-iteration r at τ = {lag:+d} step (ours only; {int(row['runs'])} runs)",
                     "paper": "–", "ours": _fmt(row["mean_r"], 3), "95% CI": _ci(row["low"], row["high"], 3),
                     "verdict": "(extension: no claim)"})
    return pd.DataFrame(rows)


def epoch_table(profile: str | None = None, root: Any = None) -> pd.DataFrame:
    """Per arm and epoch: runs, mean and SD over seeds of lambda_k and of the test loss."""
    rows = []
    for loss, label in (("vml", "VML"), ("base", "Base (controller observes)")):
        seeds, lam, tl = epoch_series(loss, profile, root)
        for k in range(lam.shape[1] if seeds.size else 0):
            rows.append({"arm": label, "epoch": k + 1, "runs": int(seeds.size),
                         "lambda_k mean": lam[:, k].mean(),
                         "lambda_k SD": lam[:, k].std(ddof=1) if seeds.size > 1 else np.nan,
                         "test loss mean": tl[:, k].mean(),
                         "test loss SD": tl[:, k].std(ddof=1) if seeds.size > 1 else np.nan})
    return pd.DataFrame(rows, columns=["arm", "epoch", "runs", "lambda_k mean", "lambda_k SD",
                                       "test loss mean", "test loss SD"])


def reactivity_arms_table(profile: str | None = None, root: Any = None) -> pd.DataFrame:
    """Per arm (VML, and Base as the control whose controller only observes): runs with a defined
    per-seed CCF, mean r at lag +1 with its t interval over seeds, and the share peaking at +1."""
    rows = []
    for loss, label in (("vml", "VML"), ("base", "Base (control)")):
        t = reactivity_per_seed_table(loss, profile, root)
        m, lo, hi = _mean_r_ci(t["r_lag1"].to_numpy(dtype=float)) if len(t) else (np.nan, np.nan, np.nan)
        rows.append({"arm": label, "runs": len(t), "mean r at +1": m, "low": lo, "high": hi,
                     "peak at +1": f"{int((t['tau_star'] == 1).sum())}/{len(t)}"})
    return pd.DataFrame(rows)


def status_line(study: str, profile: str | None = None, root: Any = None) -> str:
    """One sentence on how complete `study` is in the store, per loss arm. Runs are counted once
    each, although a grid may list one run under several settings (the ablations' defaults)."""
    profile = profile_or_default(profile)
    specs = {i.spec.key(): i.spec for i in get_study(study).grid(profile)}
    have = {k: store.exists(s, root) for k, s in specs.items()}
    counts: dict[str, list[int]] = {}
    for k, spec in specs.items():
        c = counts.setdefault(spec.loss, [0, 0])
        c[0] += int(have[k])
        c[1] += 1
    done, runs = sum(c[0] for c in counts.values()), sum(c[1] for c in counts.values())
    arms = ", ".join(f"{'Base' if loss == 'base' else 'VML'} {c[0]}/{c[1]}" for loss, c in counts.items())
    # by dataset, from the store alone (never from what data this machine has), so the page is the same everywhere
    stored = {d: [have[k] for k, s in specs.items() if s.dataset == d]
              for d in sorted({s.dataset for s in specs.values()})}
    full = [d for d, v in stored.items() if all(v)]
    empty = [d for d, v in stored.items() if not any(v)]
    if done == runs:
        state = "complete"
    elif full and len(full) + len(empty) == len(stored):
        state = (f"complete for {' and '.join(full)}; none of the {runs - done} runs on "
                 f"{' and '.join(empty)} is stored")
    else:
        state = "partial: every number below uses the runs stored so far"
    return f"The store holds {done} of the {runs} runs of the `{study}` study ({arms});\n{state}."


# ----------------------------------------------------------------------------- the introduction's headline

MEAN_MARGIN_PP = 0.5  # "mean accuracy unchanged" is supported when the 95% CI of the change lies in ±0.5 pp
# measured once by `python benchmarks/loss_overhead.py` (median of 30 interleaved steps, no interval)
STEP_COST = "training step 1.006× CE; inference unchanged"


def _var_red_cell(r: pd.Series | dict) -> str:
    if not np.isfinite(r["var_red"]):
        return f"– (n = {r['n_base']}/{r['n_vml']})"
    return (f"{r['var_red']:.1f}%\u00a0{_ci(r['var_red_low'], r['var_red_high'])} "
            f"(n = {r['n_base']}/{r['n_vml']})")


def _count_verdicts(verdicts: Iterable[str]) -> str:
    return "; ".join(f"{n}× {v}" for v, n in Counter(verdicts).items())


def combine_verdicts(names: Sequence[str], verdicts: Sequence[str], complete: bool) -> str:
    """One verdict for a claim made for every network at once: not supported as soon as one network
    rules it out, supported only when all support it, else inconclusive (or 'so far' while runs are missing)."""
    against = [n for n, v in zip(names, verdicts) if v.startswith("not supported")]
    if against:
        return f"not supported on {', '.join(against)} ({_count_verdicts(verdicts)})"
    if not complete:
        return f"so far: {_count_verdicts(verdicts)}"
    if all(v.startswith("supported") for v in verdicts):
        return "supported on every network"
    return f"inconclusive at this n ({_count_verdicts(verdicts)})"


def _architectures_row(t: pd.DataFrame, dataset: str, paper_range: str) -> dict[str, str]:
    part = t[t["Dataset"] == dataset]
    done = part[np.isfinite(part["var_red"].to_numpy(dtype=float))]
    claim = f"across-seed SD reduction, 4 networks, {dataset}, 5 seeds (Table 2)"
    if done.empty:
        ours = NEEDS_DATA if len(part) and (part["verdict"] == NEEDS_DATA).all() else NO_RUNS
        return {"claim": claim, "paper": paper_range, "ours [95% CI]": "–", "verdict": ours}
    cells = "; ".join(f"{m} {x:.0f}%\u00a0{_ci(a, b)} (n = {nb}/{nv})" for m, x, a, b, nb, nv in
                      zip(done["Model"], done["var_red"], done["var_red_low"], done["var_red_high"],
                          done["n_base"], done["n_vml"]))
    return {"claim": claim, "paper": paper_range, "ours [95% CI]": f"{cells} ({len(done)} of {len(part)} networks)",
            "verdict": combine_verdicts(list(done["Model"]), list(done["verdict"]), len(done) == len(part))}


def _paper_mean_change(r: pd.Series) -> str:
    """A paper row's 'Base → VML% (Δ VML − Base pp)', e.g. '94.95 → 94.88% (Δ −0.07 pp)'."""
    d = f"{r['vml_acc'] - r['base_acc']:+.2f}".replace("-", "−")
    return f"{r['base_acc']:.2f} → {r['vml_acc']:.2f}% (Δ {d} pp)"


def _mean_row(r: pd.Series, claim: str, paper_value: str) -> dict[str, str]:
    """'Mean unchanged' from a comparison row: the Welch interval of VML − Base, judged by equivalence."""
    if np.isfinite(r["mean_diff"]):
        ours = (f"{r['base_mean']:.2f} → {r['vml_mean']:.2f}% "
                f"(Δ {r['mean_diff']:+.2f}\u00a0pp\u00a0{_ci(r['mean_diff_low'], r['mean_diff_high'], 2)})")
        v = stats.equivalence_verdict(r["mean_diff_low"], r["mean_diff_high"], MEAN_MARGIN_PP)
    else:
        ours, v = "–", r["verdict"]
    return {"claim": claim, "paper": paper_value, "ours [95% CI]": ours, "verdict": v}


def _reactivity_row(profile: str | None, root: Any) -> dict[str, str]:
    """Fig. 1's claim: the paper's seed-averaged CCF peak beside ours, judged on the per-seed r at
    lag +1 (a t interval over seeds; the seed-averaged series of a short run has too few epochs)."""
    P = paper.REACTIVITY
    res, note = reactivity_summary("vml", profile, root)
    arms = reactivity_arms_table(profile, root).set_index("arm")
    m, lo, hi, k = (arms.loc["VML", c] for c in ("mean r at +1", "low", "high", "runs"))
    parts = [f"seed-averaged τ* = {res.tau_star:+d} ({res.n} epoch pairs)"] if res is not None else []
    if np.isfinite(m):
        parts.append(f"per-seed r at +1 = {m:.2f}\u00a0{_ci(lo, hi, 2) if np.isfinite(lo) else '(no interval)'} "
                     f"over {k} seeds (Base control: {arms.loc['Base (control)', 'mean r at +1']:.2f})")
    if np.isfinite(lo) and np.isfinite(hi):
        epochs = epoch_series("vml", profile, root)[1].shape[1]
        # the paper's series are a long run's epochs; ours are a short run's: say which the verdict is on
        v = f"{stats.verdict(lo, hi, P['r_tau_star'])} (on {epochs}-epoch runs)"
    elif res is None:
        v = note if note == NO_RUNS else f"cannot be computed: {note}"
    else:
        v = stats.INCONCLUSIVE
    return {"claim": "the controller leads the test loss by one epoch: CCF peak lag, r at +1 (Fig. 1)",
            "paper": f"τ* = +{P['tau_star']}; r = {P['r_tau_star']}", "ours [95% CI]": "; ".join(parts) or "–",
            "verdict": v}


def headline_table(profile: str | None = None, root: Any = None, n_boot: int = 2000) -> pd.DataFrame:
    """The paper's main claims, each with its value, ours with a 95% CI (percent; F interval for a
    Var. Red., Welch for a mean change, Fisher for r) and the verdict, computed from the store."""
    t1, t3 = paper.table1().set_index("source").loc["All"], paper.table3().set_index("group_size").loc[20]
    t2, t4 = paper.table2(), paper.table4().set_index("method").loc["VML"]
    rows: list[dict[str, str]] = []
    src = sources_table(profile, root, n_boot=n_boot).set_index("source").loc["All"]
    rows.append({"claim": "across-seed SD reduction, CIFAR-10, 5 seeds, every source varied (Table 1)",
                 "paper": f"{t1['var_red']:.1f}%", "ours [95% CI]": _var_red_cell(src), "verdict": src["verdict"]})
    rows.append(_mean_row(src, f"mean accuracy unchanged, 5 seeds (Table 1; ours: Δ within ±{MEAN_MARGIN_PP} pp)",
                          _paper_mean_change(t1)))
    arch = architectures_table(profile, root, n_boot=n_boot)
    for dataset in ("CIFAR-10", "CIFAR-100"):
        red = t2.loc[t2["dataset"] == dataset, "var_red"]
        rows.append(_architectures_row(arch, dataset, f"{red.min():.1f}–{red.max():.1f}%"))
    sg = seed_groups_table(profile, root, sizes=(20,)).iloc[0]
    rows.append({"claim": "across-seed SD reduction, 20 seeds per arm (Table 3)", "paper": f"{t3['var_red']:.1f}%",
                 "ours [95% CI]": _var_red_cell(sg), "verdict": sg["verdict"]})
    # the abstract's smallest reduction (33%, Tables 1, 2 and 4), put to the largest sample we have
    lo, hi = sg["var_red_low"], sg["var_red_high"]
    rows.append({"claim": "a reduction of at least 33% (abstract; Table 4's VML row), tested on 20 seeds per arm",
                 "paper": f"{t4['var_red']:.1f}%", "ours [95% CI]": _var_red_cell(sg),
                 "verdict": stats.verdict(lo, hi, t4["var_red"]) if np.isfinite(lo) and np.isfinite(hi) else sg["verdict"]})
    rows.append(_mean_row(sg, "mean accuracy unchanged, 20 seeds per arm (Table 3)", _paper_mean_change(t3)))
    rows.append(_reactivity_row(profile, root))
    rows.append({"claim": "no extra training or inference cost (Table 4)",
                 "paper": f"{t4['training_cost']} / {t4['inference_cost']}".replace("x", "×"),
                 "ours [95% CI]": STEP_COST + " (one measurement, no interval)",
                 "verdict": "supported for the step time"})
    se = seed_effect_table(profile, root).set_index("arm")
    if np.isfinite(se["ours_pp"]).all():
        ours = (f"{se.loc['Base', 'ours_pp']:.2f} → {se.loc['VML', 'ours_pp']:.2f} pp "
                f"(top/bottom {se.loc['Base', 'k']} of {se.loc['Base', 'runs']} / "
                f"{se.loc['VML', 'k']} of {se.loc['VML', 'runs']})")
        v = "descriptive only (no interval)"
    else:
        ours, v = "–", NO_RUNS
    rows.append({"claim": "seed effect size, top-10 minus bottom-10 of 20 seeds, pp (Sec. 5.5)",
                 "paper": f"{paper.SEED_EFFECT['prior work']} → {paper.SEED_EFFECT['VML']}",
                 "ours [95% CI]": ours, "verdict": v})
    return pd.DataFrame(rows).set_index("claim")


def headline_summary(t: pd.DataFrame) -> str:
    """One sentence counting the verdicts of a `headline_table`."""
    groups = {"supported": 0, "not supported": 0, "inconclusive": 0, "without a verdict yet": 0}
    for v in t["verdict"]:
        if v.startswith("supported"):
            groups["supported"] += 1
        elif v.startswith("not supported"):
            groups["not supported"] += 1
        elif v.startswith("inconclusive"):
            groups["inconclusive"] += 1
        else:  # no runs, too few runs, needs data, descriptive or mixed rows
            groups["without a verdict yet"] += 1
    parts = ", ".join(f"{n} {k}" for k, n in groups.items())
    return f"Of the paper's {len(t)} headline claims, on our runs so far: {parts}."


# ----------------------------------------------------------------------------- VPL (appendix A, ours)

def vpl_table(profile: str | None = None, root: Any = None, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """The `vpl` study: VML without (weight 0) and with the reconstructed VPL term, as one
    comparison row ('base' = VPL off, 'vml' = VPL on); the paper reports no number, so no claim."""
    df = load("vpl", profile, root)
    w = df["vpl_weight"] if "vpl_weight" in df else pd.Series(dtype=float)
    off = df.loc[w == 0.0, "test_acc"].to_numpy(dtype=float) * 100 if len(df) else np.zeros(0)
    on = df.loc[w == VPL_WEIGHT, "test_acc"].to_numpy(dtype=float) * 100 if len(df) else np.zeros(0)
    row = compare_arms(off, on, None, n_boot=n_boot, seed=seed)
    out = pd.DataFrame([{"comparison": f"VML + VPL (weight {VPL_WEIGHT}) vs VML", **row}])
    return out
