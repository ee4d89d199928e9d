"""Table 3 and Fig. 2 (chapter "Seed groups"): seed groups drawn from the 20-seed pool."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from .. import paper, stats
from .common import NO_RUNS, arm_values, compare_arms, pool


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
