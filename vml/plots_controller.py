"""The Stable-Loss controller on synthetic loss sequences: traces, summaries and figures (book ch. 3).

`synthetic_losses` makes a loss curve with a calm phase, a volatile burst and a calm tail;
`controller_trace` feeds it, one step at a time, to a `vml.StableLossController` and records every
controller statistic together with the gradient factor of eq. 10, measured by autograd as
dL_t/dℓ_t; `plot_controller_trace` and `plot_knobs` draw them and `knob_summary` puts them in
numbers. Nothing here trains a network or reads files; everything is deterministic.
"""
from __future__ import annotations

import functools
from typing import Any, Mapping, Sequence

import matplotlib as mpl
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from matplotlib.figure import Figure

from .loss import StableLossController, VMLConfig, huber_slope

__all__ = ["Phases", "synthetic_losses", "controller_trace", "knob_summary", "plot_controller_trace",
           "plot_knobs", "KNOBS"]

# the colours of vml.plots: Base blue, VML orange, accent red
_VML, _BASE, _ACCENT = "#DD8452", "#4C72B0", "#C44E52"
_RC: dict[str, Any] = {**sns.axes_style("whitegrid"), **sns.plotting_context("paper", font_scale=1.0),
                       "figure.dpi": 110, "axes.titleweight": "bold", "legend.frameon": False}

# the knobs of chapter "Inside the controller" and the values tried (Table 5's default included in each)
KNOBS: dict[str, tuple[float, ...]] = {
    "alpha": (0.01, 0.05, 0.20),
    "beta": (0.05, 0.20, 0.50),
    "delta": (0.05, 0.20, 1.00),
    "warmup_steps": (50, 200, 300),
    "lambda_base": (0.05, 0.10, 0.50),
    "gamma": (1.0, 1.5, 2.0),
}
_SYMBOL = {"alpha": r"$\alpha$", "beta": r"$\beta$", "delta": r"$\Delta$", "warmup_steps": "$W$",
           "lambda_base": r"$\lambda_{base}$", "gamma": r"$\gamma$"}


class Phases(tuple):
    """(calm_end, burst_end): the burst covers steps calm_end <= t < burst_end."""

    @property
    def calm_end(self) -> int:
        """First step of the burst."""
        return int(self[0])

    @property
    def burst_end(self) -> int:
        """First step after the burst."""
        return int(self[1])


def synthetic_losses(n_calm: int = 350, n_burst: int = 100, n_tail: int = 200, noise: float = 0.04,
                     burst_noise: float = 0.25, seed: int = 0) -> tuple[np.ndarray, Phases]:
    """A decaying training-loss curve with Gaussian batch noise: calm, then a volatile burst, then calm.

    The trend is 0.3 + 2.0·exp(-t/250); the noise SD is `noise` in the calm phases and
    `burst_noise` during the burst (plus an upward shift of 0.3, as after a learning-rate spike).
    Returns the losses (float64, all > 0) and the phase boundaries.
    """
    rng = np.random.default_rng(seed)
    n = n_calm + n_burst + n_tail
    t = np.arange(n)
    trend = 0.3 + 2.0 * np.exp(-t / 250.0)
    sd = np.full(n, noise)
    sd[n_calm:n_calm + n_burst] = burst_noise
    shift = np.zeros(n)
    shift[n_calm:n_calm + n_burst] = 0.3
    losses = np.abs(trend + shift + sd * rng.standard_normal(n)) + 1e-3
    return losses, Phases((n_calm, n_calm + n_burst))


def controller_trace(losses: Sequence[float] | np.ndarray, config: VMLConfig | None = None,
                     **overrides: Any) -> pd.DataFrame:
    """Feed `losses` to a fresh `StableLossController` and record one row per step.

    Columns: t, loss (ℓ_t), ema (ℓ̄_t), delta (δ_t), sigma (σ_t), sigma_ref (0 before the latch),
    latched, gain, lambda (λ_t), threshold (Δ), sl (SL_t), total (L_t), grad_factor (dL_t/dℓ_t by
    autograd) and grad_factor_eq10 (1 + w·λ_t·ψ_Δ(δ_t) from the recorded statistics).
    """
    ctrl = StableLossController(config, **overrides).train()
    w = ctrl.config.w_vml
    rows = []
    for t, value in enumerate(np.asarray(losses, dtype=np.float64)):
        loss = torch.tensor(float(value), dtype=torch.float64, requires_grad=True)
        total = ctrl(loss)
        total.backward()
        last = ctrl.last
        psi = huber_slope(last["delta"], last["threshold"])
        rows.append({"t": t, "loss": float(value), "ema": float(last["ema"]), "delta": float(last["delta"]),
                     "sigma": float(last["sigma"]), "sigma_ref": float(last["sigma_ref"]),
                     "latched": bool(ctrl.latched), "gain": float(last["gain"]), "lambda": float(last["lambda"]),
                     "threshold": float(last["threshold"]), "sl": float(last["sl"]), "total": float(total.detach()),
                     "grad_factor": float(loss.grad),
                     "grad_factor_eq10": float(1.0 + w * last["lambda"] * psi)})
    return pd.DataFrame(rows)


@functools.lru_cache(maxsize=32)
def _knob_trace(losses: bytes, config: VMLConfig) -> pd.DataFrame:
    """`controller_trace` for one knob setting, kept: the knob panels and the knob table share it."""
    return controller_trace(np.frombuffer(losses, dtype=np.float64), config)


def _phase_masks(df: pd.DataFrame, phases: Phases, warmup_steps: int) -> dict[str, np.ndarray]:
    t = df["t"].to_numpy()
    return {"calm": (t > warmup_steps) & (t < phases.calm_end),
            "burst": (t >= phases.calm_end) & (t < phases.burst_end),
            "tail": t >= phases.burst_end}


def knob_summary(losses: np.ndarray, phases: Phases, knobs: Mapping[str, Sequence[float]] | None = None,
                 config: VMLConfig | None = None) -> pd.DataFrame:
    """Per knob and value (others at `config`, default Table 5): mean λ_t in the calm phase after the
    latch, in the burst and in the tail, and the mean rescaling strength |g − 1| in the burst, where
    g = dL/dℓ is the gradient factor. Indexed by (knob, value); the Table 5 value is marked."""
    base = config or VMLConfig()
    rows = []
    for knob, values in (knobs or KNOBS).items():
        for value in values:
            cfg = base.replace(**{knob: type(getattr(base, knob))(value)})
            df = _knob_trace(np.asarray(losses, dtype=np.float64).tobytes(), cfg)
            m = _phase_masks(df, phases, cfg.warmup_steps)
            lam = df["lambda"].to_numpy()
            strength = (df["grad_factor"] - 1.0).abs().to_numpy()
            default = value == getattr(VMLConfig(), knob)
            rows.append({"knob": knob, "value": f"{value:g}" + (" (Table 5)" if default else ""),
                         "λ calm": lam[m["calm"]].mean() if m["calm"].any() else np.nan,
                         "λ burst": lam[m["burst"]].mean(), "λ tail": lam[m["tail"]].mean(),
                         "|g−1| burst": strength[m["burst"]].mean()})
    return pd.DataFrame(rows).set_index(["knob", "value"])


def _shade(ax: Any, phases: Phases | None) -> None:
    if phases is not None:
        ax.axvspan(phases.calm_end, phases.burst_end, color="grey", alpha=0.12, lw=0)


def plot_controller_trace(df: pd.DataFrame, config: VMLConfig | None = None,
                          phases: Phases | None = None) -> Figure:
    """Four stacked panels over the steps t: ℓ_t with ℓ̄_t; σ_t with σ_ref and the latch; λ_t with
    its bounds; the gradient factor 1 + w·λ_t·ψ_Δ(δ_t) of eq. 10. The burst is shaded."""
    cfg = config or VMLConfig()
    with mpl.rc_context(_RC):
        fig = Figure(figsize=(7.5, 7.2), layout="constrained")
        axes = fig.subplots(4, 1, sharex=True)
        t = df["t"].to_numpy()
        ax = axes[0]
        ax.plot(t, df["loss"], color=_BASE, lw=0.7, alpha=0.8, label=r"batch loss $\ell_t$")
        ax.plot(t, df["ema"], color=_VML, lw=1.8, label=r"EMA baseline $\bar\ell_t$")
        ax.set_ylabel("loss")
        ax = axes[1]
        ax.plot(t, df["sigma"], color=_BASE, lw=1.2, label=r"volatility $\sigma_t$")
        ref = df["sigma_ref"].where(df["latched"])
        ax.plot(t, ref, color=_VML, lw=1.8, label=r"reference $\sigma_{ref}$")
        if cfg.gamma > 1.0:
            ax.plot(t, cfg.gamma * ref, color=_VML, lw=1.0, ls=":", label=r"gate $\gamma\,\sigma_{ref}$")
        ax.set_ylabel("volatility")
        ax = axes[2]
        ax.plot(t, df["lambda"], color=_VML, lw=1.4, label=r"$\lambda_t$")
        ax.axhline(cfg.lambda_base, color="grey", ls=":", lw=1, label=r"$\lambda_{base}$")
        if df["lambda"].max() > 0.8 * cfg.lambda_max:
            ax.axhline(cfg.lambda_max, color=_ACCENT, ls=":", lw=1, label=r"$\lambda_{max}$")
        ax.set_ylabel(r"$\lambda_t$")
        ax = axes[3]
        ax.plot(t, df["grad_factor"], color=_BASE, lw=0.8, label=r"$1 + w\,\lambda_t\,\psi_\Delta(\delta_t)$")
        ax.axhline(1.0, color="grey", ls=":", lw=1)
        ax.set_ylabel("gradient factor")
        ax.set_xlabel("iteration t")
        for ax in axes:
            _shade(ax, phases)
            ax.axvline(cfg.warmup_steps, color=_ACCENT, ls="--", lw=1)
            ax.legend(fontsize="small", loc="upper right", ncol=3)
        axes[0].set_title(rf"Stable-Loss controller (latch at t = W = {cfg.warmup_steps}, burst shaded)")
    return fig


def plot_knobs(losses: np.ndarray, phases: Phases | None = None,
               knobs: Mapping[str, Sequence[float]] | None = None, config: VMLConfig | None = None) -> Figure:
    """One small panel per knob: λ_t for each value (the others at Table 5). For Δ, which leaves λ_t
    alone, the panel shows the rescaling strength |dL/dℓ − 1| (a 10-step running mean) instead."""
    base = config or VMLConfig()
    knobs = knobs or KNOBS
    with mpl.rc_context(_RC):
        ncols = 2
        nrows = -(-len(knobs) // ncols)
        fig = Figure(figsize=(8.0, 2.4 * nrows), layout="constrained")
        axes = fig.subplots(nrows, ncols, sharex=True, squeeze=False).ravel()
        palette = sns.color_palette("viridis", 3).as_hex()
        for ax, (knob, values) in zip(axes, knobs.items()):
            for i, value in enumerate(values):
                cfg = base.replace(**{knob: type(getattr(base, knob))(value)})
                df = _knob_trace(np.asarray(losses, dtype=np.float64).tobytes(), cfg)
                if knob == "delta":
                    y = (df["grad_factor"] - 1.0).abs().rolling(10, min_periods=1).mean()
                else:
                    y = df["lambda"]
                default = value == getattr(VMLConfig(), knob)
                ax.plot(df["t"], y, lw=1.6 if default else 1.0,
                        color=palette[i % len(palette)],
                        label=f"{value:g}" + (" (Table 5)" if default else ""))
            _shade(ax, phases)
            ax.set_title(_SYMBOL.get(knob, knob))
            ax.set_ylabel(r"$|dL/d\ell - 1|$" if knob == "delta" else r"$\lambda_t$")
            ax.legend(fontsize="x-small", loc="upper left")
        for ax in axes[len(knobs):]:
            ax.set_visible(False)
        for ax in axes[-ncols:]:
            ax.set_xlabel("iteration t")
    return fig
