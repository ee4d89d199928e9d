"""Loading the store for the chapters, and the Base-vs-VML comparison every chapter shares."""
from __future__ import annotations

import contextlib
import json
import warnings
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import pandas as pd

from .. import stats, store
from ..spec import BOOK_PROFILE, LOSSES
from ..studies import GridItem, get_study


NO_RUNS = "no runs yet"
TOO_FEW = "too few runs (need 2 per arm)"
NEEDS_DATA = "needs the official CIFAR-100 data"
MODEL_NAMES = {"resnet14": "ResNet-14", "vgg16": "VGG-16", "shufflenetv2": "ShuffleNet-V2",
               "mobilenetv2": "MobileNetV2", "fastnet": "FastNet"}
DATASET_NAMES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}
SOURCE_NAMES = {"all": "All", "init": "Init", "aug": "Aug", "shuf": "Shuf"}


@contextlib.contextmanager
def _quiet():
    """Silence numpy/scipy runtime warnings of degenerate inputs (empty CCF lags, 2-run Levene):
    the tables show those cases as NaN, and a warning would only clutter the book's pages."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


STEP_COST_TARGET = 1.02  # "no extra cost": a VML training step within 2% of a CE step
# written by `python benchmarks/loss_overhead.py --out data/results/benchmarks/loss_overhead.json`: the
# one measurement of the step cost, under the results root
STEP_COST_FILE = ("benchmarks", "loss_overhead.json")


def step_cost(root: Any = None) -> dict[str, Any] | None:
    """The committed step-cost measurement (ratio VML/CE with its 95% interval), or None."""
    path = store.results_root(root).joinpath(*STEP_COST_FILE)
    return json.loads(path.read_text()) if path.exists() else None



NOT_NAMED = "not named (the store's first runs)"  # records written before they named their machine


def runs_per_machine(labelled: Iterable[tuple[str, dict[str, Any]]], columns: Sequence[str] | None = None
                     ) -> pd.DataFrame:
    """Stored runs per machine kind (rows, `store.made_on`: the CPU model, marked where bf16 ran on fp32
    kernels) and label (columns: `columns`, else the labels in the order first seen), from (label, record)
    pairs."""
    counts: dict[str, dict[str, int]] = {}
    seen: list[str] = list(columns or [])
    for label, rec in labelled:
        seen += [] if label in seen else [label]
        row = counts.setdefault(store.made_on(rec) or NOT_NAMED, {})
        row[label] = row.get(label, 0) + 1
    return pd.DataFrame.from_dict(counts, orient="index", columns=seen).fillna(0).astype(int).sort_index()


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
    for loss in LOSSES:
        g = df[df["loss"] == loss].sort_values("seed") if len(df) else df
        a = g[value].to_numpy(dtype=float) if len(g) else np.zeros(0)
        out[loss] = 100.0 * a if value.endswith("acc") else a
    return out


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
    row["robust_verdict"] = stats.verdict(c.var_red.low, c.var_red.high, claim)  # the bootstrap interval's
    return row


def spread_parts(study: str, by: Sequence[str], profile: str | None = None, root: Any = None) -> dict[tuple, dict]:
    """Per setting (the values of the spec fields `by`, then the loss) with at least 2 stored runs: the
    test-set noise floor (independent errors) and the distribution-level SD, in pp (chapter "How many seeds does a claim need?")."""
    groups: dict[tuple, tuple[str, list[np.ndarray]]] = {}
    for item, rec in stored_runs(study, profile, root):
        key = tuple(getattr(item.spec, f) for f in by) + (item.spec.loss,)
        groups.setdefault(key, (item.spec.dataset, []))[1].append(rec["arrays"]["preds"])
    out = {}
    for key, (dataset, preds) in groups.items():
        if len(preds) >= 2:
            y = store.labels(profile_or_default(profile), dataset, root)
            tv = stats.test_set_variance(np.stack(preds) == y[None, :])
            out[key] = {"floor": 100 * tv["independent_sd"], "dist_sd": 100 * tv["distribution_sd"]}
    return out


def add_spread_parts(t: pd.DataFrame, parts: dict[tuple, dict], by: Sequence[str]) -> pd.DataFrame:
    """`t` (one row per setting, with the `by` columns) with each arm's floor and distribution-level SD."""
    for loss in LOSSES:
        for part in ("floor", "dist_sd"):
            t[f"{loss}_{part}"] = [parts.get((*(r[c] for c in by), loss), {}).get(part, np.nan)
                                   for _, r in t.iterrows()]
    return t


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


def pool(profile: str | None = None, root: Any = None) -> pd.DataFrame:
    """The seed-groups pool (Base and VML, seeds 1-20): one row per stored run."""
    return load("seed-groups", profile, root)


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
