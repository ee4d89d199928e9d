"""The book's verdict vocabulary: one function, `judge`, turns an interval, the claimed size, the ceiling
that the test-set noise floor allows and a p-value into one of five words, with the reason.

* **supported**: the interval establishes the effect (excludes no effect) and still holds the claim; for a
  claim of *no change*, the interval lies inside the margin;
* **smaller than claimed**: the interval rules out the claimed size; what it still allows (up to its upper
  end, possibly no effect at all) is said in the reason;
* **opposite**: the interval lies entirely on the other side of no effect (VML widened the spread, lowered
  the correlation below zero); for a claim of no change, a change is established;
* **inconclusive at this n**: the interval holds both no effect and the claimed size;
* **not testable on this protocol**: even removing all seed variance (the SD falling to the test-set
  floor) would give less than the claim, so no result here could support it.

This is a *display* vocabulary. The statistics behind it are `vml.stats`' intervals and tests, and where a
rule was declared in advance (the decisive test, `vml.analysis.decisive.read_primary`) its result is kept
beside the display word (`Verdict.declared`) and in the reason, never replaced.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

SUPPORTED = "supported"
SMALLER = "smaller than claimed"
OPPOSITE = "opposite"
INCONCLUSIVE = "inconclusive at this n"
UNTESTABLE = "not testable on this protocol"
LABELS = (SUPPORTED, SMALLER, OPPOSITE, INCONCLUSIVE, UNTESTABLE)


@dataclass(frozen=True)
class Verdict:
    """A display verdict: `label` (one of `LABELS`), `reason` (one clause, numbers included) and, where a
    rule was declared in advance, that rule's own result (`declared`)."""

    label: str
    reason: str
    declared: str | None = None

    def __str__(self) -> str:
        return f"{self.label}: {self.reason}"


def _n(x: float, digits: int, unit: str) -> str:
    s = f"{x:.{digits}f}"
    if float(s) == 0:  # no "-0.0%": a negative zero reads as a finding
        s = s.lstrip("-")
    return s.replace("-", "\u2212") + unit


def judge(low: float, high: float, claimed: float | None = None, *, ceiling: float | None = None,
          p: float | None = None, alpha: float = 0.05, margin: float | None = None, null: float = 0.0,
          unit: str = "%", digits: int = 1, effect: str = "reduction", declared: str | None = None) -> Verdict:
    """The display verdict on one claim from a 95% interval [low, high] of the effect (larger = more of
    what is claimed, e.g. Var. Red. in %, or a correlation), in this order:

    1. a claim of **no change** (`margin` given; `claimed` is then ignored): *opposite* if the interval
       excludes `null` (a change is established), *supported* if it lies within ±`margin`, else
       *inconclusive at this n*;
    2. *opposite* if the interval lies below `null` (and `p`, when given, is below `alpha`);
    3. *not testable on this protocol* if the `ceiling` (the largest effect the protocol allows: the
       Var. Red. of an SD at the test-set floor) is below the claim;
    4. *supported* if the interval lies above `null` (and `p` < `alpha` when given) and reaches the claim;
       *smaller than claimed* if it lies above `null` but below the claim;
    5. *smaller than claimed* if its upper end is below the claim (no effect may remain possible);
    6. *inconclusive at this n* otherwise.

    `effect` names what is measured in the reason ("reduction": "reductions up to 24.5% remain
    possible"). `declared` is the result of a rule fixed in advance for the same numbers (kept, and named in the reason
    when it reads differently)."""
    lo, hi = float(low), float(high)
    if math.isnan(lo) or math.isnan(hi) or lo > hi:
        raise ValueError(f"low={low!r}, high={high!r} is not an interval; need low <= high")
    significant = p is None or float(p) < alpha
    f = lambda x: _n(x, digits, unit)  # noqa: E731
    span = f"{f(lo)} to {f(hi)}"
    if margin is not None:
        if not margin > 0:
            raise ValueError(f"margin={margin!r} is not allowed; it must be > 0")
        if lo > null or hi < null:
            out = Verdict(OPPOSITE, f"a change is established ({span})", declared)
        elif -margin <= lo and hi <= margin:
            out = Verdict(SUPPORTED, f"any change lies within {span}, inside ±{f(margin)}", declared)
        else:
            out = Verdict(INCONCLUSIVE, f"the interval ({span}) holds no change and changes beyond ±{f(margin)}",
                          declared)
        return _with_declared(out)
    if claimed is None:
        raise ValueError("judge needs `claimed` (the claimed effect) or `margin` (a claim of no change)")
    c = float(claimed)
    if hi < null and significant:
        return _with_declared(Verdict(OPPOSITE, f"the interval ({span}) lies below {f(null)}: the {effect} goes "
                                                "the other way", declared))
    if ceiling is not None and float(ceiling) < c:
        room = (f"the Base runs' observed SD is no more than the test-set floor, so on these SDs no reduction is "
                "left to find" if float(ceiling) <= 0 else
                f"on the observed SDs, removing all seed variance would give {f(float(ceiling))}")
        return _with_declared(Verdict(UNTESTABLE, f"{room}, against the claimed {f(c)} (interval {span})",
                                      declared))
    if lo > null and significant:
        if hi < c:
            return _with_declared(Verdict(SMALLER, f"a {effect} of {span} is established, short of the claimed "
                                                   f"{f(c)}", declared))
        return _with_declared(Verdict(SUPPORTED, f"the interval ({span}) excludes no {effect} and holds the "
                                                 f"claimed {f(c)}", declared))
    if hi < c:
        return _with_declared(Verdict(SMALLER, f"rules out the claimed {f(c)}; {effect}s up to {f(hi)} remain "
                                               "possible", declared))
    return _with_declared(Verdict(INCONCLUSIVE, f"the interval ({span}) holds both no {effect} and the claimed "
                                                f"{f(c)}", declared))


def _with_declared(v: Verdict) -> Verdict:
    if v.declared is None or v.declared == v.label:
        return v
    return Verdict(v.label, f"{v.reason} (declared rule: {v.declared})", v.declared)


def count(labels: list[str]) -> dict[str, int]:
    """How many of `labels` carry each word of the vocabulary (and 'without a verdict' for the rest)."""
    out = {k: 0 for k in LABELS}
    out["without a verdict"] = 0
    for lab in labels:
        out[lab if lab in LABELS else "without a verdict"] += 1
    return out
