"""Tables 1 and 2 (chapters "Sources of randomness" and "Architectures and datasets"): sources of randomness, architectures, and the replication."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .. import paper
from ..spec import profile_spec
from ..studies import REPLICATION_MODEL, get_study
from .common import (DATASET_NAMES, MODEL_NAMES, NEEDS_DATA, SOURCE_NAMES, add_spread_parts, arm_values, compare_arms,
                     comparison_table, load, profile_or_default, spread_parts)


def sources_table(profile: str | None = None, root: Any = None, n_boot: int = 2000,
                  seed: int = 0) -> pd.DataFrame:
    """Table 1: one row per varied source (All, Init, Aug, Shuf), ours beside the paper's."""
    p = paper.table1().set_index("source")
    t = comparison_table(load("sources", profile, root), ["vary"], [(v,) for v in SOURCE_NAMES],
                         [p.loc[name] for name in SOURCE_NAMES.values()], n_boot=n_boot, seed=seed)
    t = add_spread_parts(t, spread_parts("sources", ["vary"], profile, root), ["vary"])
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
    t = add_spread_parts(t, spread_parts("architectures", ["dataset", "model"], profile, root), ["dataset", "model"])
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


def run_cost_table(profile: str | None = None, root: Any = None) -> pd.DataFrame:
    """What one run of each network costs at `profile`, from its stored runs: the profile's own network
    from the 20-seed pool (`seed-groups`), the Table 2 networks from their CIFAR-10 runs
    (`architectures`). Per network: runs, the median wall time per run of Base and of VML, the
    range over all its runs, and the range of test accuracy (%). Wall times are the records' own (data
    loading, per-epoch evaluation and the final EMA and TTA passes included), as measured: a run that
    shared the cores with other work counts too."""
    profile = profile_or_default(profile)
    precision = {(i.spec.model, i.spec.width): i.spec.precision
                 for study in ("seed-groups", "architectures") for i in get_study(study).grid(profile)}
    pool, arch = load("seed-groups", profile, root), load("architectures", profile, root)
    df = pd.concat([pool, arch[arch["dataset"] == profile_spec(profile).dataset]])  # the pool's dataset
    columns = ["network", "width", "precision", "runs", "wall Base (s)", "wall VML (s)", "wall min (s)",
               "wall max (s)", "acc min (%)", "acc max (%)"]
    rows = []
    for (model, width), g in df.groupby(["model", "width"], sort=False):
        wall, acc = g["wall_s"].astype(float), 100 * g["test_acc"].astype(float)
        rows.append(dict(zip(columns, [MODEL_NAMES.get(model, model), width, precision[model, width], len(g),
                                       wall[g["loss"] == "base"].median(), wall[g["loss"] == "vml"].median(),
                                       wall.min(), wall.max(), acc.min(), acc.max()])))
    return pd.DataFrame(rows, columns=columns).set_index("network")
