"""Paired, interleaved step timing shared by the benchmarks that compare two ways of taking a step."""
from __future__ import annotations

import json
import statistics
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
from scipy import stats as st

from vml.train import machine_info


def interleaved(steps: dict[str, Callable[[], float]], rounds: int, warmup: int = 1) -> dict[str, list[float]]:
    """Each round runs every step once (each returns its own time), the order reversed every other
    round, so that drift and other load hit all alike; `warmup` untimed rounds first."""
    names = list(steps)
    for _ in range(warmup):
        for name in names:
            steps[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(rounds):
        for name in (names if i % 2 == 0 else names[::-1]):
            times[name].append(steps[name]())
    return times


def paired_ratio(num: list[float], den: list[float]) -> dict[str, float]:
    """The median over rounds of num/den with a 95% bootstrap interval (scipy.stats.bootstrap)."""
    ratio = np.asarray(num) / np.asarray(den)
    ci = st.bootstrap((ratio,), np.median, confidence_level=0.95, n_resamples=10_000,
                      random_state=np.random.default_rng(0)).confidence_interval
    return {"ratio_median": float(np.median(ratio)), "ratio_low": float(ci.low), "ratio_high": float(ci.high),
            "num_median_s": statistics.median(num), "den_median_s": statistics.median(den)}


def result(fields: dict[str, Any], ratio: dict[str, float], out: str | None) -> dict[str, Any]:
    """The benchmark's record: its command, time and machine, `fields` and the ratio with its interval;
    written as JSON to `out` when given."""
    rec = {"command": "python " + " ".join(sys.argv), "measured": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "machine": machine_info(), **fields, **{k: ratio[k] for k in ("ratio_median", "ratio_low", "ratio_high")}}
    if out:
        Path(out).write_text(json.dumps(rec, indent=1) + "\n")
    return rec
