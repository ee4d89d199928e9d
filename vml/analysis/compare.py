"""`python -m vml compare BASE.csv METHOD.csv`: the book's verdict table on anyone's runs.

Each CSV holds one run per row: an accuracy column (`acc`, `accuracy` or `test_acc`, or the file's only
column) and optionally a `seed` column. Where both files name seeds and share at least 3, the seeds
pair and the paired analysis (Pitman-Morgan, pair bootstrap) stands beside the unpaired one. Optional
per-example predictions (`--predictions BASE.npy METHOD.npy --labels LABELS.npy`, runs x test
examples, rows in the CSVs' order) add the test-set floor and the distribution-level SD.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import stats
from .decisive import ALPHA, CLAIMED, POWER, floor_and_spread
from .second import MARGIN, N_BOOT, equivalent_below, pairs_for_power, read_second

ACC_COLUMNS = ("acc", "accuracy", "test_acc")
MIN_RUNS = 3


def read_runs(path: str | Path, name: str = "runs") -> pd.DataFrame:
    """A runs CSV as a frame with `acc` (float) and, when given, `seed` (int); ValueError naming the
    bad cell, the missing column, too few runs or a repeated seed."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{name} file {str(path)!r} does not exist")
    try:
        df = pd.read_csv(path, dtype=str, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise ValueError(f"{name} file {str(path)!r} is not a readable CSV ({str(e).splitlines()[0]})") from None
    cols = {c.strip().lower(): c for c in df.columns}
    acc = next((cols[c] for c in ACC_COLUMNS if c in cols), None)
    if acc is None:
        others = [c for c in df.columns if c.strip().lower() != "seed"]
        if len(others) != 1:
            raise ValueError(f"{name} file {str(path)!r} has columns {list(df.columns)}; name the accuracy column "
                             f"one of {list(ACC_COLUMNS)} (and the seed column 'seed')")
        acc = others[0]
    out = pd.DataFrame({"acc": _numbers(df[acc], path, acc, float)})
    if "seed" in cols:
        out["seed"] = _numbers(df[cols["seed"]], path, cols["seed"], int)
        dup = out["seed"][out["seed"].duplicated()]
        if len(dup):
            raise ValueError(f"{name} file {str(path)!r} repeats seed {int(dup.iloc[0])}; each seed may appear once")
    if len(out) < MIN_RUNS:
        raise ValueError(f"{name} file {str(path)!r} has {len(out)} run(s); at least {MIN_RUNS} are needed")
    return out


def _numbers(col: pd.Series, path: Path, name: str, kind: type) -> np.ndarray:
    values = []
    for row, cell in enumerate(col, start=2):  # line 1 is the header
        try:
            v = kind(str(cell).strip())
        except ValueError:
            raise ValueError(f"{str(path)!r} line {row}, column {name!r}: {cell!r} is not a "
                             f"{'number' if kind is float else 'whole number'}") from None
        if kind is float and not math.isfinite(v):
            raise ValueError(f"{str(path)!r} line {row}, column {name!r}: {cell!r} is not a finite number")
        values.append(v)
    return np.array(values, dtype=kind)


def _percent(acc: np.ndarray) -> tuple[np.ndarray, str]:
    """Accuracies in pp: values all within [0, 1] are read as fractions (and said so), others as percent."""
    if np.all((acc >= 0) & (acc <= 1)):
        return 100 * acc, "fractions, shown in pp"
    if np.all((acc >= 0) & (acc <= 100)):
        return acc, "percent"
    raise ValueError(f"accuracy {float(acc[(acc < 0) | (acc > 100)][0])!r} is outside [0, 100]; give accuracies "
                     "as fractions in [0, 1] or as percent")


def compare(base: pd.DataFrame, method: pd.DataFrame, correct: tuple[Any, Any] | None = None,
            margin: float = MARGIN, claimed: float = CLAIMED, n_boot: int = N_BOOT) -> dict[str, Any]:
    """The verdict table of `method` against `base` (frames from `read_runs`): each arm's n, mean and SD;
    Var. Red. with the F and bootstrap intervals and the F and Brown-Forsythe p; where the seeds pair,
    the Pitman-Morgan interval and p, the pair bootstrap and the pair correlation; the test-set floor and
    distribution-level SD where `correct` (two 0/1 matrices, runs x examples) is given; the verdict
    (`second.read_second` on the primary interval: paired where the seeds pair), the equivalence
    statement at `margin`, and the runs per arm the `claimed` reduction needs for 80% power."""
    b, unit_b = _percent(base["acc"].to_numpy())
    m, unit_m = _percent(method["acc"].to_numpy())
    if unit_b != unit_m:
        raise ValueError(f"base accuracies are {unit_b.split(',')[0]} and method accuracies {unit_m.split(',')[0]}; "
                         "give both files in the same unit")
    rows: dict[str, Any] = {"units": unit_b}
    for name, x in (("base", b), ("method", m)):
        s = stats.summary(x)
        rows.update({f"{name} runs": s.n, f"{name} mean": s.mean, f"{name} SD": s.sd})
    f = stats.var_red_estimate(stats.sd_ratio_ci(b, m))
    boot = stats.var_red_estimate(stats.bootstrap_sd_ratio(b, m, n_boot=n_boot)[0])
    rows.update({"Var. Red. (%)": f.estimate, "F low": f.low, "F high": f.high, "bootstrap low": boot.low,
                 "bootstrap high": boot.high, "F p": stats.f_test(b, m)[1],
                 "Brown-Forsythe p": stats.brown_forsythe(b, m)[1]})
    primary, p, paired = f, rows["F p"], None
    if "seed" in base and "seed" in method:
        common = sorted(set(base["seed"]) & set(method["seed"]))
        if len(common) >= MIN_RUNS:
            pb = pd.Series(b, index=base["seed"]).loc[common].to_numpy()
            pm_ = pd.Series(m, index=method["seed"]).loc[common].to_numpy()
            est, p = stats.pitman_morgan(pb, pm_)
            primary = stats.var_red_estimate(est)
            pair_boot = stats.var_red_estimate(stats.paired_bootstrap_sd_ratio(pb, pm_, n_boot=n_boot))
            paired = float(np.corrcoef(pb, pm_)[0, 1])
            rows.update({"pairs": len(common), "pair correlation": paired, "paired low": primary.low,
                         "paired high": primary.high, "Pitman-Morgan p": p, "pair bootstrap low": pair_boot.low,
                         "pair bootstrap high": pair_boot.high, "paired Var. Red. (%)": primary.estimate})
    if correct is not None:
        for name, c, n in (("base", correct[0], len(b)), ("method", correct[1], len(m))):
            c = np.asarray(c)
            if c.ndim != 2 or c.shape[0] != n:
                raise ValueError(f"{name} predictions have shape {c.shape}; need ({n}, test examples): one row per run "
                                 "of its CSV")
            obs, floor, dist = floor_and_spread(c)
            rows.update({f"{name} floor": floor, f"{name} distribution-level SD": dist})
    rows["verdict"] = read_second(p, rows["base SD"], rows["method SD"], primary.high, claimed)
    rows["reduces the spread by less than margin"] = equivalent_below(primary.high, margin)
    rows["runs per arm for the claim (F test)"] = stats.seeds_for_power(1 - claimed / 100, POWER, ALPHA)
    if paired is not None and abs(paired) < 1:
        rows["pairs for the claim (paired)"] = pairs_for_power(claimed, paired)
    return {"table": pd.Series(rows, name="value").to_frame(), "text": _text(rows, margin, claimed)}


def _text(r: dict[str, Any], margin: float, claimed: float) -> str:
    kind = "paired" if "pairs" in r else "F"
    high = r["paired high"] if "pairs" in r else r["F high"]
    low = r["paired low"] if "pairs" in r else r["F low"]
    # "smaller than claimed" rules the claim out; where the interval reaches 0 it establishes no reduction either
    found = (" (the claim is ruled out; no reduction is established)" if r["verdict"] == "smaller than claimed"
             and low <= 0 else "")
    rule = (f"Against a claimed reduction of {claimed:g}%: {r['verdict']}{found}. "
            f"Var. Red. {r.get('paired Var. Red. (%)', r['Var. Red. (%)']):.1f}% ({kind} 95% interval "
            f"{low:.1f}% to {high:.1f}%). ")
    if r["reduces the spread by less than margin"]:
        return rule + f"The method reduces the spread by less than {margin:g}%."
    return rule + f"A reduction of {margin:g}% is not ruled out."


def readable(table: pd.DataFrame) -> pd.DataFrame:
    """`compare`'s table for a page or a terminal: numbers to 3 significant figures."""
    return table.map(lambda v: f"{v:.3g}" if isinstance(v, (float, np.floating)) else v)


def add_cli(sub: Any) -> None:
    """Register `python -m vml compare`."""
    p = sub.add_parser("compare", help="the book's verdict table on your own runs (one accuracy per seed)")
    p.add_argument("base", help="CSV of the baseline's runs: an accuracy column and optionally 'seed'")
    p.add_argument("method", help="CSV of the method's runs, the same columns")
    p.add_argument("--predictions", nargs=2, metavar=("BASE.npy", "METHOD.npy"),
                   help="predicted labels per run and test example (runs x examples), rows in the CSVs' order")
    p.add_argument("--labels", metavar="LABELS.npy", help="the test labels (needed with --predictions)")
    p.add_argument("--margin", type=float, default=MARGIN, help=f"equivalence margin, %% (default {MARGIN:g})")
    p.add_argument("--claimed", type=float, default=CLAIMED, help=f"the claimed Var. Red., %% (default {CLAIMED:g})")
    p.set_defaults(func=_run)


def _load_npy(path: str, what: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ValueError(f"{what} {path!r} is not a readable .npy file ({e})") from None


def _run(args: argparse.Namespace) -> int:
    if not (args.margin > 0 and args.claimed > 0):
        raise ValueError(f"--margin={args.margin!r} and --claimed={args.claimed!r} must both be > 0 (percent)")
    base, method = read_runs(args.base, "base"), read_runs(args.method, "method")
    correct = None
    if args.predictions:
        if not args.labels:
            raise ValueError("--predictions needs --labels LABELS.npy, the test labels")
        labels = _load_npy(args.labels, "labels")
        preds = [_load_npy(x, "predictions") for x in args.predictions]
        for x, path in zip(preds, args.predictions):
            if x.ndim != 2 or x.shape[1:] != labels.shape:
                raise ValueError(f"predictions {path!r} have shape {x.shape}; need (runs, {labels.shape[0]}) to match "
                                 f"labels of shape {labels.shape}")
        correct = (preds[0] == labels, preds[1] == labels)
    out = compare(base, method, correct, args.margin, args.claimed)
    print(readable(out["table"]).to_string())
    print(out["text"])
    return 0
