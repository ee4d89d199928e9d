"""The Variance Minimizer Loss (Algorithm 1, eqs. 1-10, Table 5) as a drop-in PyTorch criterion.

`StableLossController` wraps any 0-d batch loss ℓ_t and returns ℓ_t + w_vml·SL_t, where
SL_t = λ_t · ρ_Δ(ℓ_t − ℓ̄_{t−1}) is a Huber penalty on the deviation of the loss from its EMA,
weighted by a coefficient that follows the current-to-reference volatility σ_t/σ_ref.
`VarianceMinimizerLoss` is the controller applied to a base criterion (cross-entropy by default).

Where the paper is silent we decided (and the book's implementation notes list):
- t starts at 0 on the first training call; ℓ̄ starts at the first loss, so δ_0 = 0 and σ_0 = 0;
- δ_t = ℓ_t − ℓ̄_{t−1} is taken before ℓ̄_t and σ_t update; all statistics are detached;
- σ_ref latches once, at t == warmup_steps, as max(σ_t, eps) after σ_t's update at that step;
- before the latch λ_t = clip(lambda_base, lambda_min, lambda_max) (gain reported as 1);
- Δ is clamped below at eps, so the "sigma" modes are defined while σ_t is still 0;
  "sigma_ref" mode uses σ_t until σ_ref is latched;
- in eval() mode the module returns the base loss and leaves its state alone.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

DELTA_MODES = ("abs", "sigma", "sigma_ref")
_STAT_DTYPE = torch.float64  # controller statistics: wider than any training dtype


@dataclass(frozen=True)
class VMLConfig:
    """Stable-Loss controller hyperparameters; names and defaults of the paper's Table 5."""

    lambda_base: float = 0.10
    alpha: float = 0.05
    beta: float = 0.20
    delta: float = 0.20
    warmup_steps: int = 200
    lambda_min: float = 0.0
    lambda_max: float = 2.0
    eps: float = 1e-8
    gamma: float = 1.0
    w_vml: float = 1.0
    delta_mode: str = "abs"
    vpl_weight: float = 0.0

    def __post_init__(self) -> None:
        def bad(name: str, allowed: str) -> ValueError:
            return ValueError(f"VMLConfig.{name}={getattr(self, name)!r} is not allowed; {name} must be {allowed}")

        for name in ("alpha", "beta"):
            if not _is_real(getattr(self, name)) or not 0.0 < getattr(self, name) < 1.0:
                raise bad(name, "in the open interval (0, 1)")
        if not _is_real(self.delta) or not self.delta > 0.0:
            raise bad("delta", "> 0")
        w = self.warmup_steps
        if isinstance(w, bool) or not isinstance(w, int) or w < 0:
            raise bad("warmup_steps", "an integer >= 0")
        if not _is_real(self.lambda_base) or self.lambda_base < 0.0:
            raise bad("lambda_base", ">= 0")
        if not _is_real(self.lambda_min) or self.lambda_min < 0.0:
            raise bad("lambda_min", ">= 0 (and <= lambda_max)")
        if not _is_real(self.lambda_max) or self.lambda_max < self.lambda_min:
            raise bad("lambda_max", f">= lambda_min={self.lambda_min!r}")
        if not _is_real(self.gamma) or not self.gamma >= 1.0:
            raise bad("gamma", ">= 1")
        if not _is_real(self.w_vml) or self.w_vml < 0.0:
            raise bad("w_vml", ">= 0")
        if not _is_real(self.eps) or not self.eps > 0.0:
            raise bad("eps", "> 0")
        if self.delta_mode not in DELTA_MODES:
            raise bad("delta_mode", f"one of {DELTA_MODES}")
        if not _is_real(self.vpl_weight) or self.vpl_weight < 0.0:
            raise bad("vpl_weight", ">= 0")

    def replace(self, **changes: Any) -> "VMLConfig":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


def _is_real(x: Any) -> bool:
    # NaN fails every comparison, so the range checks above reject it; bools are not numbers here.
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x == x


def _config(config: VMLConfig | None, overrides: dict[str, Any]) -> VMLConfig:
    if config is not None and not isinstance(config, VMLConfig):
        raise TypeError(f"config must be a VMLConfig or None, got {type(config).__name__}")
    return (config or VMLConfig()).replace(**overrides)


def huber(u: Tensor, threshold: Tensor | float) -> Tensor:
    """ρ_Δ(u) of eq. 7: ½u²/Δ for |u| ≤ Δ, |u| − ½Δ beyond (continuous, slope ±1 at |u| = Δ)."""
    a = u.abs()
    return torch.where(a <= threshold, 0.5 * u * u / threshold, a - 0.5 * threshold)


def huber_slope(u: Tensor, threshold: Tensor | float) -> Tensor:
    """ψ_Δ(u) = dρ_Δ/du: u/Δ inside the threshold, sign(u) outside (|ψ| ≤ 1)."""
    return torch.where(u.abs() <= threshold, u / threshold, torch.sign(u))


class NonFiniteLossError(FloatingPointError):
    """A non-finite base loss reached the controller; the message names the step."""


class StableLossController(nn.Module):
    """Eqs. 1-8: returns ℓ_t + w_vml·λ_t·ρ_Δ(ℓ_t − ℓ̄_{t−1}) and advances the EMA/volatility state.

    State lives in buffers (step, EMA, σ, σ_ref, latched flag, first bad step), so `state_dict()`
    resumes it exactly and `.to(device)` moves it. No step reads a tensor value on the host.

    Non-finite losses: the state update is masked on the device (`torch.where`), so a NaN/inf loss
    leaves every statistic and the step counter exactly as before the call. On the CPU, where
    reading a value costs no device synchronisation, the call then raises `NonFiniteLossError`
    (a `FloatingPointError`) at once. On an accelerator, raising at once would need a
    host-device sync every step, so the first bad step is recorded in a buffer instead and
    `check()` raises it; call `check()` at logging points (the trainer does, once per epoch).
    """

    step: Tensor
    ema: Tensor
    sigma: Tensor
    sigma_ref: Tensor
    latched: Tensor
    bad_step: Tensor

    def __init__(self, config: VMLConfig | None = None, *, defer_nonfinite: bool | None = None,
                 **overrides: Any) -> None:
        super().__init__()
        self.config = _config(config, overrides)
        # None: raise at once on the CPU, defer to check() on accelerators (see the class docstring)
        self.defer_nonfinite = defer_nonfinite
        for name, value in (("step", 0), ("bad_step", -1)):
            self.register_buffer(name, torch.tensor(value, dtype=torch.int64))
        for name in ("ema", "sigma", "sigma_ref"):
            self.register_buffer(name, torch.tensor(0.0, dtype=_STAT_DTYPE))
        self.register_buffer("latched", torch.tensor(False))
        self.last: dict[str, Tensor] = {}

    def forward(self, loss: Tensor) -> Tensor:
        """The total objective ℓ_t + w_vml·SL_t (0-d, differentiable in ℓ_t); eval mode: ℓ_t."""
        if loss.dim() != 0:
            raise ValueError(f"the base loss must be a 0-d tensor, got shape {tuple(loss.shape)}; "
                             "reduce it (e.g. reduction='mean') before the controller")
        if not self.training:
            return loss
        c = self.config
        ld = loss.detach().to(_STAT_DTYPE)
        finite = torch.isfinite(ld)
        defer = self.defer_nonfinite if self.defer_nonfinite is not None else ld.device.type != "cpu"
        if not defer and not bool(finite):
            raise NonFiniteLossError(f"non-finite base loss {ld.item()} at VML step {int(self.step)}; "
                                     "the controller state was left unchanged")
        first = self.step == 0
        ema_prev = torch.where(first, ld, self.ema)                        # ℓ̄_{-1} := ℓ_0
        dev = ld - ema_prev                                                # δ_t, eq. 3
        ema = (1.0 - c.alpha) * ema_prev + c.alpha * ld                    # eq. 2
        sigma = (1.0 - c.beta) * self.sigma + c.beta * dev.abs()           # eq. 4
        latch_now = (self.step == c.warmup_steps) & ~self.latched
        sigma_ref = torch.where(latch_now, sigma.clamp(min=c.eps), self.sigma_ref)
        latched = self.latched | latch_now
        if c.gamma > 1.0:                                                  # eq. 5, gated branch
            raw_gain = (sigma - c.gamma * sigma_ref).clamp(min=0.0) / (sigma_ref + c.eps)
        else:                                                              # eq. 5, proportional
            raw_gain = sigma / (sigma_ref + c.eps)
        gain = torch.where(latched, raw_gain, torch.ones_like(raw_gain))
        lam = (c.lambda_base * gain).clamp(c.lambda_min, c.lambda_max)     # eq. 6
        scale = {"abs": None, "sigma": sigma, "sigma_ref": torch.where(latched, sigma_ref, sigma)}[c.delta_mode]
        threshold = torch.full_like(ld, c.delta) if scale is None else (c.delta * scale).clamp(min=c.eps)
        # ℓ̄_{t-1}, λ_t and Δ are constants for autograd; ℓ_t is not: dL/dℓ_t = 1 + w·λ_t·ψ_Δ(δ_t).
        u = loss.to(_STAT_DTYPE) - ema_prev
        sl = lam * huber(u, threshold)                                     # eqs. 7-8
        total = loss + (c.w_vml * sl).to(loss.dtype)                       # eq. 1
        with torch.no_grad():
            keep = ~finite  # a non-finite loss leaves the state exactly as it was
            self.ema.copy_(torch.where(keep, self.ema, ema))
            self.sigma.copy_(torch.where(keep, self.sigma, sigma))
            self.sigma_ref.copy_(torch.where(keep, self.sigma_ref, sigma_ref))
            self.latched.copy_(torch.where(keep, self.latched, latched))
            self.bad_step.copy_(torch.where(keep & (self.bad_step < 0), self.step, self.bad_step))
            self.step.add_(finite.to(self.step.dtype))
        self.last = {"lambda": lam.detach(), "gain": gain.detach(), "delta": dev.detach(),
                     "sigma": sigma.detach(), "sigma_ref": sigma_ref.detach(), "ema": ema.detach(),
                     "sl": sl.detach(), "threshold": threshold.detach()}
        return total

    def check(self) -> None:
        """Raise `NonFiniteLossError` if a non-finite loss was seen (one host sync; call at logging points)."""
        bad = int(self.bad_step)
        if bad >= 0:
            raise NonFiniteLossError(f"non-finite base loss at VML step {bad}; the controller skipped "
                                     "that step and its state was left unchanged by it")

    def extra_repr(self) -> str:
        return ", ".join(f"{f.name}={getattr(self.config, f.name)!r}" for f in dataclasses.fields(self.config))


def within_class_logit_variance(logits: Tensor, target: Tensor) -> Tensor:
    """Our reconstruction of the paper's Variance Penalty Loss (appendix A.1; the paper gives only
    its notation): the mean over classes with m_c >= 2 samples in the batch of the unbiased sample
    variance of the true-class logit z_{i,c} within class c; 0 when no class is eligible."""
    num_classes = logits.shape[1]
    onehot = F.one_hot(target, num_classes).to(logits.dtype)               # (N, C)
    z = logits.gather(1, target[:, None]).squeeze(1)                       # z_{i, y_i}
    counts = onehot.sum(0)                                                 # m_c
    means = (onehot * z[:, None]).sum(0) / counts.clamp(min=1.0)
    dev = z - means[target]
    sumsq = (onehot * (dev * dev)[:, None]).sum(0)
    eligible = counts >= 2
    var = torch.where(eligible, sumsq / (counts - 1.0).clamp(min=1.0), torch.zeros_like(sumsq))
    return var.sum() / eligible.sum().clamp(min=1).to(var.dtype)


class VarianceMinimizerLoss(nn.Module):
    """criterion(logits, target) = controller(base(logits, target)) [+ vpl_weight · within-class
    logit variance]; the default base is mean cross-entropy. Any 0-d criterion works as `base`."""

    def __init__(self, config: VMLConfig | None = None, base: Callable[[Tensor, Tensor], Tensor] | None = None,
                 **overrides: Any) -> None:
        super().__init__()
        self.controller = StableLossController(_config(config, overrides))
        self.base = base if base is not None else nn.CrossEntropyLoss()

    @property
    def config(self) -> VMLConfig:
        """The controller's configuration."""
        return self.controller.config

    @property
    def last(self) -> dict[str, Tensor]:
        """The controller's statistics after the latest training call."""
        return self.controller.last

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        """The VML objective in train mode; the base loss in eval mode."""
        loss = self.base(logits, target)
        total = self.controller(loss)
        if self.training and self.config.vpl_weight > 0.0:
            total = total + self.config.vpl_weight * within_class_logit_variance(
                logits if logits.dtype == torch.float64 else logits.float(), target)
        return total
