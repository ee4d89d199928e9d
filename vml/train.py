"""One deterministic training run: `train(spec) -> RunRecord`, and the `python -m vml train` command.

The loop, in short (the book's implementation notes list every choice made here):

- Three `torch.Generator`s, one per randomness source: ``init`` (weights; a CPU generator, so the
  initial weights do not depend on the device), ``shuf`` (one `randperm` per epoch) and ``aug``
  (per image and epoch: a crop offset and a flip flag, indexed by the image's position in the
  dataset, so varying the shuffle alone leaves every image's augmentation unchanged). Varied sources
  take the run's seed, fixed ones `spec.base_seed` (`RunSpec.seeds`); each generator is seeded with
  a hash of (source, seed), so the three streams are unrelated even when their seeds are equal.
- Deterministic algorithms on, cuDNN benchmark off, a fixed thread count: the same spec on the same
  machine (CPU model and ISA level), thread count and torch version gives a bitwise identical record
  (up to the wall times), whatever the process did before; the record's `machine` names all four,
  and how bf16 convolutions and matrix products were computed (`vml.bf16`: bf16 kernels where the
  CPU has bf16 hardware, else the same arithmetic on fp32 kernels, about twice as fast there).
- The whole dataset lives on the device as uint8; each batch is gathered, augmented (pad-4 random
  crop, flip), normalised and converted to channels_last on the fly. The last, partial batch of an
  epoch is kept (as a DataLoader with drop_last=False).
- SGD (momentum, optional Nesterov, weight decay on every trainable parameter), learning rate set
  per iteration: linear warmup over `warmup_epochs`, then cosine decay from `lr` to 0.
- Loss: cross-entropy (`label_smoothing` from the spec) for ``base``; for ``vml`` the
  `VarianceMinimizerLoss` around that same base. Base runs also run a `StableLossController` as a
  pure observer (under no_grad, on the detached loss), so λ_t, δ_t, σ_t are logged for both arms
  and can be compared; the observer never touches the gradient.
- Per-iteration base loss, λ_t, δ_t, σ_t stay in device tensors and are moved once per epoch,
  together with the end-of-epoch test evaluation (test loss is plain cross-entropy).
- An EMA of the weights and BN statistics (decay min(ema_decay, (1+t)/(10+t)), every iteration)
  is the "accelerated ensemble"; test-time augmentation averages the softmax of K views (identity,
  flip, then ±2-pixel shifts with and without flip) of the final model.
- The device is the spec's class (`RunSpec.device`, part of the key; `vml.device.resolve`): a CUDA run
  where torch sees no CUDA device stops with one line, never trains on the CPU instead. fp32 products
  on a GPU are fp32, not TF32 (`vml.device.fp32_everywhere`), and a CUDA run's record names its GPU,
  CUDA, cuDNN, driver and flags (`machine["cuda"]`).
- A checkpoint (atomic) after the first epoch of a session, then after an epoch that ends at least
  CHECKPOINT_EVERY_S seconds of training after the last one (every epoch on a CPU, where an epoch
  takes a minute; not every 2-second GPU epoch), lets a killed run resume to a bitwise equal record.
  A checkpoint written on another device type is refused, in one line, and set aside.
  A checkpoint resumed on another machine (`machine_info` differs) goes on; it says so in one line, and
  the record names each machine with the epoch it took over from (`RunRecord.trained_on`).
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import hashlib
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS; before CUDA starts

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn
from tqdm import tqdm  # not tqdm.auto: importing that in a kernel without ipywidgets warns on stderr

from . import __version__
from . import bf16
from . import data as vdata
from . import device as devices
from . import host
from . import models
from ._io import atomic_write, remove_leftovers
from .loss import StableLossController, VarianceMinimizerLoss
from .spec import ARCH_SETTINGS, LOSSES, PRECISIONS, PROFILES, VARY, RunSpec, profile_spec

__all__ = ["RunSpec", "RunRecord", "train", "profile_spec", "PROFILES", "add_cli", "tta_views_list",
           "source_seed", "make_generators", "epoch_plan"]

EVAL_BATCH = 1000
CHECKPOINT_EVERY_S = 60.0  # seconds of training between checkpoints, at most (the first epoch always writes one)


# ------------------------------------------------------------------------------------ the record
@dataclass
class RunRecord:
    """What one run leaves for the analysis. Accuracies are fractions in [0, 1]."""

    spec: RunSpec
    key: str
    test_acc: float
    test_loss: float
    ema_acc: float
    tta_acc: float
    tta_views: int
    epochs: list[dict[str, Any]]
    iters: dict[str, np.ndarray]
    preds: np.ndarray
    ema_preds: np.ndarray
    tta_preds: np.ndarray
    labels: np.ndarray
    probs: np.ndarray | None
    wall_s: float
    device: str
    versions: dict[str, str]
    started: str
    n_params: int = 0
    steps_per_epoch: int = 0
    data_source: str = ""
    machine: dict[str, Any] = field(default_factory=dict)
    # a run resumed on another machine (`machine_info` differs): every stretch of epochs with its machine,
    # [{"from_epoch": 1, "machine": {...}}, {"from_epoch": k, "machine": {...}}, ...] (`machine` is the last);
    # None when one machine trained every epoch
    trained_on: list[dict[str, Any]] | None = None

    ARRAYS = ("preds", "ema_preds", "tta_preds", "labels", "probs")

    def to_json_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of everything but the arrays (`iters`, predictions, labels, probs)."""
        out = {}
        for f in dataclasses.fields(self):
            if f.name in self.ARRAYS or f.name == "iters" or (f.name == "trained_on" and self.trained_on is None):
                continue
            v = getattr(self, f.name)
            out[f.name] = v.to_dict() if isinstance(v, RunSpec) else copy.deepcopy(v)
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        """The big arrays by name: iters as ``iter_<name>``, then preds, ema_preds, ... (probs if kept)."""
        out = {f"iter_{k}": v for k, v in self.iters.items()}
        for name in self.ARRAYS:
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out

    @classmethod
    def from_parts(cls, d: dict[str, Any], arrays: dict[str, np.ndarray]) -> "RunRecord":
        """Inverse of (`to_json_dict`, `arrays`)."""
        d = dict(d)
        d["spec"] = RunSpec.from_dict(d["spec"])
        d["iters"] = {k[5:]: v for k, v in arrays.items() if k.startswith("iter_")}
        for name in cls.ARRAYS:
            d[name] = arrays.get(name)
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def summary(self) -> str:
        s = self.spec
        lam = self.epochs[-1]["lambda_mean"] if self.epochs else float("nan")
        return (f"{s.profile}/{s.dataset}/{s.model}(w={s.width:g}) loss={s.loss} seed={s.seed} vary={s.vary} "
                f"[{self.key}]\n"
                f"  test acc {100 * self.test_acc:.2f}%  test loss {self.test_loss:.4f}  "
                f"EMA acc {100 * self.ema_acc:.2f}%  TTA({self.tta_views}) acc {100 * self.tta_acc:.2f}%\n"
                f"  {len(self.epochs)} epochs x {self.steps_per_epoch} steps, {self.n_params:,} params, "
                f"final-epoch mean lambda {lam:.4f}, {self.wall_s:.1f} s on {self.device}")


# ------------------------------------------------------------------------------ determinism
def source_seed(source: str, seed: int) -> int:
    """The generator seed of randomness source `source` for run seed `seed` (a 63-bit hash)."""
    return int.from_bytes(hashlib.sha256(f"vml/{source}/{seed}".encode()).digest()[:8], "little") >> 1


def make_generators(spec: RunSpec, device: torch.device) -> dict[str, torch.Generator]:
    """The three independent generators of a run: init (CPU), shuf and aug (on `device`)."""
    seeds = spec.seeds()
    gens = {"init": torch.Generator().manual_seed(source_seed("init", seeds["init"]))}
    for src in ("shuf", "aug"):
        gens[src] = torch.Generator(device=device).manual_seed(source_seed(src, seeds[src]))
    return gens


def epoch_plan(n: int, gens: dict[str, torch.Generator]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One epoch's draws: the permutation (shuf) and per-image crop offsets and flips (aug)."""
    dev = gens["shuf"].device
    perm = torch.randperm(n, generator=gens["shuf"], device=dev)
    dy, dx, flip = vdata.draw_augmentation(n, gens["aug"])
    return perm, dy, dx, flip


def _setup_determinism(device: torch.device) -> None:
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    devices.fp32_everywhere()  # no TF32: an fp32 run computes in fp32 on any GPU
    if device.type == "cpu":
        n = _cpu_threads()
        if torch.get_num_threads() != n:
            torch.set_num_threads(n)


def _cpu_threads() -> int:
    """Threads for CPU training: $VML_THREADS, else every core this process may use.

    Bitwise reproducibility holds for a fixed thread count; sweeps running several jobs at once
    should set VML_THREADS so that jobs x threads <= cores (oversubscribed OpenMP threads wait on
    each other's time slices and can run 10-30x slower)."""
    env = os.environ.get("VML_THREADS")
    if env:
        return max(1, int(env))
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _device_str(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({machine_info()['cpu']}, {torch.get_num_threads()} threads)"


def machine_info(device: str | torch.device = "cpu") -> dict[str, Any]:
    """What tells two CPU machines' numerics apart: CPU model, the ISA level ATen dispatches to, the
    oneDNN/ATen caps set in the environment, how bf16 products are computed (`bf16.kernels`), the
    thread count and the torch version; on a CUDA device also ``cuda``: what tells two GPUs apart
    (`vml.device.cuda_info`: model, compute capability, CUDA, cuDNN, driver, TF32 and cuDNN flags)."""
    model, flags = host.cpu()
    isa = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    info = {"cpu": model, "cpu_flags": isa, "aten_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "ATEN_CPU_CAPABILITY": os.environ.get("ATEN_CPU_CAPABILITY"),
            "ONEDNN_MAX_CPU_ISA": os.environ.get("ONEDNN_MAX_CPU_ISA"), "bf16_kernels": bf16.kernels(device),
            "threads": torch.get_num_threads(), "torch": torch.__version__}
    if torch.device(device).type == "cuda":
        info["cuda"] = devices.cuda_info(torch.device(device))
    return info


def _versions() -> dict[str, str]:
    return {"python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
            "numpy": np.__version__, "vml": __version__}


# ----------------------------------------------------------------------------------- pieces
def lr_at(step: int, total: int, warmup: int, peak: float) -> float:
    """Linear warmup over `warmup` steps to `peak`, then cosine decay to 0 at `total`."""
    if step < warmup:
        return peak * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return peak * 0.5 * (1.0 + math.cos(math.pi * t))


def tta_views_list(k: int, shift: int = 2) -> list[tuple[int, int, bool]]:
    """The first `k` test-time views as (dy, dx, flip): identity, flip, then shifts by `shift` pixels
    (-,-), (+,+), (-,+), (+,-), ... each without and with flip."""
    shifts = [(0, 0), (-shift, -shift), (shift, shift), (-shift, shift), (shift, -shift),
              (-shift, 0), (shift, 0), (0, -shift), (0, shift)]
    views = [(dy, dx, f) for dy, dx in shifts for f in (False, True)]
    if not 1 <= k <= len(views):
        raise ValueError(f"tta_views={k} is not supported; use 1..{len(views)}")
    return views[:k]


LOG_NAMES = ("loss", "lambda", "delta", "sigma")  # the per-iteration series of a record (`RunRecord.iters`)


class _BaseLoss:
    """Cross-entropy that keeps its latest (detached) value ℓ_t for the log. With an `observer`
    (the base arm's controller) it also feeds ℓ_t to it under no_grad, so λ_t, δ_t, σ_t are logged
    for both arms while the gradient stays plain cross-entropy."""

    def __init__(self, label_smoothing: float, observer: StableLossController | None = None) -> None:
        self.label_smoothing = label_smoothing
        self.observer = observer
        self.value: Tensor | None = None

    def __call__(self, logits: Tensor, target: Tensor) -> Tensor:
        loss = F.cross_entropy(logits, target, label_smoothing=self.label_smoothing)
        self.value = loss.detach()
        if self.observer is not None:
            with torch.no_grad():
                self.observer(self.value)
        return loss


def _criterion(spec: RunSpec, device: torch.device) -> tuple[Callable[[Tensor, Tensor], Tensor], _BaseLoss,
                                                              StableLossController]:
    """The training loss, the base loss it logs ℓ_t from, and the controller (VML's own, or an observer)."""
    if spec.loss == "vml":
        base = _BaseLoss(spec.label_smoothing)
        vml = VarianceMinimizerLoss(spec.vml, base=base).to(device)
        return vml, base, vml.controller
    base = _BaseLoss(spec.label_smoothing, observer=StableLossController(spec.vml).to(device))
    return base, base, base.observer


class _EMA:
    """The "accelerated ensemble": an EMA of the weights and BN statistics of `model`, updated every
    iteration with decay min(decay, (1+t)/(10+t)). (Not torch's `AveragedModel`: it copies the weights
    at its first update, where this averages them, and its state dict has other keys; stored records
    and checkpoints would change.)"""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.model = copy.deepcopy(model).requires_grad_(False)
        self.decay = decay
        self.source, self.target = _float_tensors(model), _float_tensors(self.model)

    @torch.no_grad()
    def update(self, step: int) -> None:
        torch._foreach_lerp_(self.target, self.source, 1.0 - min(self.decay, (1.0 + step) / (10.0 + step)))


def _float_tensors(model: nn.Module) -> list[Tensor]:
    return [t for t in list(model.parameters()) + list(model.buffers()) if t.is_floating_point()]


class _Ctx:
    """Per-run constants for the forward passes."""

    def __init__(self, spec: RunSpec, ds: vdata.Dataset, device: torch.device) -> None:
        self.device = device
        self.mean, self.std = vdata.norm_tensors(ds, device)
        self.autocast = spec.precision == "bf16"

    def forward(self, model: nn.Module, x_u8: Tensor) -> Tensor:
        x = vdata.normalize(x_u8, self.mean, self.std, channels_last=True)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            out = model(x)
        return out.float()


@torch.no_grad()
def _evaluate(ctx: _Ctx, model: nn.Module, x: Tensor, view: tuple[int, int, bool] = (0, 0, False)) -> Tensor:
    """Logits (float32, on the device) of `model` in eval mode for every image of `x` under `view`."""
    model.eval()
    dy, dx, flip = view
    outs = []
    for i in range(0, len(x), EVAL_BATCH):
        xb = x[i:i + EVAL_BATCH]
        if (dy, dx, flip) != (0, 0, False):
            n = len(xb)
            xb = vdata.augment(xb, torch.full((n,), vdata.PAD + dy, device=x.device),
                               torch.full((n,), vdata.PAD + dx, device=x.device),
                               torch.full((n,), flip, dtype=torch.bool, device=x.device))
        outs.append(ctx.forward(model, xb))
    return torch.cat(outs)


def _accuracy(logits: Tensor, y: Tensor) -> float:
    return float((logits.argmax(1) == y).float().mean())


def _tta_probs(ctx: _Ctx, model: nn.Module, x: Tensor, views: list[tuple[int, int, bool]], probs: Tensor) -> Tensor:
    """The summed softmax of `model` over `views`; `probs` is that of the first view (the identity)."""
    tta = probs.clone()
    for v in views[1:]:
        tta += _evaluate(ctx, model, x, v).softmax(1)
    return tta


def _pred_dtype(num_classes: int) -> np.dtype:
    return np.dtype(np.uint8) if num_classes <= 256 else np.dtype(np.int16)


# ------------------------------------------------------------------------------------ train
@dataclass
class _Run:
    """A run in training: its constants and the state a checkpoint holds."""

    spec: RunSpec
    ds: vdata.Dataset
    ctx: _Ctx
    gens: dict[str, torch.Generator]
    model: nn.Module
    ema: _EMA
    criterion: Callable[[Tensor, Tensor], Tensor]
    base_loss: _BaseLoss
    controller: StableLossController
    opt: torch.optim.Optimizer
    steps: int  # per epoch (the last batch may be partial)
    started: str  # the first start (a resumed run keeps it)
    t0: float  # perf_counter at this start: wall times count everything after the dataset loading
    wall_before: float = 0.0  # seconds spent before a resume
    epoch: int = 0  # epochs done
    epochs: list[dict[str, Any]] = field(default_factory=list)  # one row per epoch
    iters: dict[str, list[np.ndarray]] = field(default_factory=lambda: {k: [] for k in LOG_NAMES})
    machines: list[dict[str, Any]] = field(default_factory=list)  # [{"from_epoch", "machine"}]: who trained what

    @property
    def total(self) -> int:
        return self.steps * self.spec.epochs

    @property
    def warmup(self) -> int:
        return round(self.spec.warmup_epochs * self.steps)

    def wall(self) -> float:
        return self.wall_before + time.perf_counter() - self.t0


def _no_trace(*_: Any) -> None:
    pass


def _build_model(spec: RunSpec, ds: vdata.Dataset, device: torch.device, generator: torch.Generator) -> nn.Module:
    """The network with its initial weights (drawn on the CPU from the init generator)."""
    model = models.build(spec.model, ds.num_classes, spec.width, generator=generator)
    if hasattr(model, "init_from_data"):  # FastNet's whitening stem: from the first 5000 train images
        sub = ds.train_x[:5000].cpu()
        model.init_from_data(vdata.normalize(sub, *vdata.norm_tensors(ds, "cpu")))
    return model.to(device, memory_format=torch.channels_last)


def _start(spec: RunSpec, ds: vdata.Dataset, device: torch.device, trace: Callable[..., None]) -> _Run:
    """Everything a run needs before its first step: generators, model, EMA, loss, optimiser."""
    started, t0 = datetime.now(timezone.utc).isoformat(timespec="seconds"), time.perf_counter()
    ctx, gens = _Ctx(spec, ds, device), make_generators(spec, device)
    model = _build_model(spec, ds, device, gens["init"])
    trace("init", model)
    ema = _EMA(model, spec.ema_decay)
    criterion, base_loss, controller = _criterion(spec, device)
    controller.train()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=spec.lr, momentum=spec.momentum,
                          nesterov=spec.nesterov, weight_decay=spec.weight_decay)
    return _Run(spec, ds, ctx, gens, model, ema, criterion, base_loss, controller, opt,
                steps=math.ceil(len(ds.train_x) / spec.batch_size), started=started, t0=t0,
                machines=[{"from_epoch": 1, "machine": machine_info(device)}])


def _train_epoch(run: _Run, bar: tqdm, trace: Callable[..., None]) -> tuple[Tensor, float]:
    """Epoch `run.epoch` (0-based) of SGD steps. Returns the per-iteration log (rows ℓ_t, λ_t, δ_t,
    σ_t; on the device, so the loop never waits for the host) and the last learning rate."""
    spec, ds, bs, epoch = run.spec, run.ds, run.spec.batch_size, run.epoch
    run.model.train()
    perm, dy, dx, flip = epoch_plan(len(ds.train_x), run.gens)
    trace("epoch", epoch, perm, dy, dx, flip)
    log = torch.zeros(len(LOG_NAMES), run.steps, dtype=torch.float32, device=run.ctx.device)
    lr = spec.lr
    for i in range(run.steps):
        step = epoch * run.steps + i
        lr = _set_lr(run.opt, lr_at(step, run.total, run.warmup, spec.lr))
        idx = perm[i * bs:(i + 1) * bs]
        xb = vdata.augment(ds.train_x[idx], dy[idx], dx[idx], flip[idx])
        loss = run.criterion(run.ctx.forward(run.model, xb), ds.train_y[idx])
        run.opt.zero_grad(set_to_none=True)
        loss.backward()
        run.opt.step()
        run.ema.update(step)
        log[:, i] = _log_row(run)
        bar.update(1)
    return log, lr


def _set_lr(opt: torch.optim.Optimizer, lr: float) -> float:
    for g in opt.param_groups:
        g["lr"] = lr
    return lr


def _log_row(run: _Run) -> Tensor:
    last = run.controller.last
    return torch.stack([run.base_loss.value.float(), last["lambda"].float(), last["delta"].float(),
                        last["sigma"].float()])


def _end_epoch(run: _Run, log: Tensor, lr: float) -> Tensor:
    """Evaluate on the test set, move the epoch's log to the host (its one sync) and add the epoch's
    row. Returns the test logits."""
    if run.ctx.device.type != "cpu":
        run.controller.check()
    logits = _evaluate(run.ctx, run.model, run.ds.test_x)
    test_loss = F.cross_entropy(logits, run.ds.test_y)
    log_np = log.cpu().numpy()
    for k, row in zip(LOG_NAMES, log_np):
        run.iters[k].append(row.copy())
    run.epoch += 1
    run.epochs.append({"epoch": run.epoch, "lr": lr, "train_loss": float(log_np[0].mean()),
                       "test_loss": float(test_loss), "test_acc": _accuracy(logits, run.ds.test_y),
                       "lambda_mean": float(log_np[1].mean()), "sigma_mean": float(log_np[3].mean()),
                       "wall_s": run.wall()})
    return logits


def _save_checkpoint(run: _Run, path: Path) -> None:
    """The state after `run.epoch` epochs, written atomically (the format `_resume` reads)."""
    state = {"key": run.spec.key(), "spec": run.spec.to_dict(), "epoch": run.epoch, "device": run.ctx.device.type,
             "model": run.model.state_dict(), "ema": run.ema.model.state_dict(), "opt": run.opt.state_dict(),
             "controller": run.controller.state_dict(), "gens": {s: run.gens[s].get_state() for s in ("shuf", "aug")},
             "epochs": run.epochs, "iters": run.iters, "wall_s": run.epochs[-1]["wall_s"], "started": run.started,
             "machines": run.machines}
    atomic_write(path, lambda f: torch.save(state, f))


class ForeignCheckpoint(ValueError):
    """A checkpoint written on another device type: its random streams cannot go on here."""


def _checkpoint_device(state: dict[str, Any]) -> str:
    """The device type a checkpoint was written on (older ones do not say: a CUDA generator's state is
    16 bytes, a CPU one's 5,056)."""
    return state.get("device") or ("cuda" if state["gens"]["shuf"].numel() == 16 else "cpu")


def _resume(run: _Run, path: Path) -> None:
    """Continue `run` from the checkpoint at `path` (written by `_save_checkpoint`). One written on another
    device type is moved aside (``<name>.<type>``, kept) and refused: the run then starts afresh when it
    is tried again, and is never marked failed on every retry."""
    state = torch.load(path, map_location=run.ctx.device, weights_only=False)
    if state["key"] != run.spec.key():
        raise ValueError(f"checkpoint {path} belongs to run {state['key']}, not {run.spec.key()}")
    made_on = _checkpoint_device(state)
    if made_on != run.ctx.device.type:
        aside = path.with_name(f"{path.name}.{made_on}")
        os.replace(path, aside)
        raise ForeignCheckpoint(f"checkpoint {path.name} was written on {made_on}, and this run trains on "
                                f"{run.ctx.device.type}: its random streams cannot go on here; moved it to "
                                f"{aside.name}, so the run starts afresh when it is tried again")
    run.model.load_state_dict(state["model"])
    run.ema.model.load_state_dict(state["ema"])
    run.opt.load_state_dict(state["opt"])
    run.controller.load_state_dict(state["controller"])
    for src in ("shuf", "aug"):
        run.gens[src].set_state(state["gens"][src].cpu())
    run.epoch, run.epochs, run.iters = state["epoch"], state["epochs"], state["iters"]
    run.wall_before, run.started = state["wall_s"], state["started"]
    _resume_machines(run, state.get("machines") or [{"from_epoch": 1, "machine": None}])


def _resume_machines(run: _Run, before: list[dict[str, Any]]) -> None:
    """The machines that trained `run` before its checkpoint (None: a checkpoint written before they were
    named), and this one from the next epoch where it differs (another CPU model, ISA level, bf16 kernels,
    thread count or torch version: its numerics differ, so the record can repeat on neither machine). Says
    so in one line; the record then names every machine (`RunRecord.trained_on`, `store.made_on`)."""
    here = run.machines[-1]["machine"]
    if before[-1]["machine"] == here:
        run.machines = before
        return
    run.machines = [*before, {"from_epoch": run.epoch + 1, "machine": here}]
    print(f"run {run.spec.key()}: epochs 1-{run.epoch} trained on {_machine_str(before[-1]['machine'])}, the rest "
          f"trains on {_machine_str(here)}; its record names both (trained_on)", file=sys.stderr)


def _machine_str(m: dict[str, Any] | None) -> str:
    """One machine of `machine_info` in a few words, for messages."""
    if m is None:
        return "a machine its checkpoint does not name"
    if m.get("cuda"):
        return str(m["cuda"].get("gpu"))
    return (f"{m['cpu']} ({m['aten_cpu_capability']}, bf16 on {m['bf16_kernels']} kernels, {m['threads']} threads, "
            f"torch {m['torch']})")


def _record(run: _Run, logits: Tensor | None, keep_probs: bool) -> RunRecord:
    """The finished run's record: the final model (its last test logits), its EMA and its TTA."""
    spec, ds, ctx, y = run.spec, run.ds, run.ctx, run.ds.test_y
    if logits is None:  # resumed from a checkpoint of the final epoch (not written) or epochs == 0
        logits = _evaluate(ctx, run.model, ds.test_x)
    ema_logits = _evaluate(ctx, run.ema.model, ds.test_x)
    views = tta_views_list(spec.tta_views)
    probs = logits.softmax(1)
    tta = _tta_probs(ctx, run.model, ds.test_x, views, probs)
    wall_s, pdt = run.wall(), _pred_dtype(ds.num_classes)
    return RunRecord(
        spec=spec, key=spec.key(), test_acc=_accuracy(logits, y), test_loss=float(F.cross_entropy(logits, y)),
        ema_acc=_accuracy(ema_logits, y), tta_acc=_accuracy(tta, y), tta_views=len(views),
        epochs=run.epochs, iters={k: np.concatenate(v).astype(np.float32) for k, v in run.iters.items()},
        preds=logits.argmax(1).cpu().numpy().astype(pdt), ema_preds=ema_logits.argmax(1).cpu().numpy().astype(pdt),
        tta_preds=tta.argmax(1).cpu().numpy().astype(pdt), labels=y.cpu().numpy().astype(pdt),
        probs=probs.cpu().numpy().astype(np.float16) if keep_probs else None,
        wall_s=wall_s, device=_device_str(ctx.device), versions=_versions(), started=run.started,
        n_params=models.param_count(run.model), steps_per_epoch=run.steps, data_source=ds.source,
        machine=run.machines[-1]["machine"], trained_on=run.machines if len(run.machines) > 1 else None)


def train(spec: RunSpec, *, device: str | torch.device | None = None, quiet: bool = True,
          checkpoint_dir: str | Path | None = None, keep_probs: bool = False,
          data: vdata.Dataset | None = None, trace: Callable[..., None] | None = None,
          stop_after: int | None = None) -> RunRecord:
    """Train one run described by `spec` and return its record.

    device: cpu, cuda or cuda:N, of the spec's device class (default: that class; `vml.device.resolve`
    refuses another class, and CUDA where there is none). quiet: no progress bar. checkpoint_dir: save
    ``<spec.key()>.pt`` there (atomically; after the first epoch, then at most every CHECKPOINT_EVERY_S
    seconds of training), resume from it when present, delete it at the end. keep_probs: keep the
    float16 softmax of the final model on the test set.
    data: use this dataset instead of loading `spec.dataset` (tests, benchmarks).
    trace: test hook, called as trace("init", model), trace("epoch", epoch, perm, dy, dx, flip)
    and trace("final", model, ema_model).
    stop_after: stop (returning None) after this many epochs, leaving the checkpoint, as a kill
    would (tests of resume).
    """
    trace = trace or _no_trace
    dev = devices.resolve(spec.device, device, f"the {spec.profile} run {spec.key()}")
    kernels = bf16.kernels(dev)  # a bad VML_BF16_KERNELS fails here, before anything trains
    _setup_determinism(dev)
    ds = vdata.train_subset(data if data is not None else vdata.load_dataset(spec.dataset), spec.train_subset)
    with bf16.computed_as(kernels if spec.precision == "bf16" else "native"):
        return _train(spec, ds, dev, checkpoint_dir, keep_probs, quiet, trace, stop_after)


def _train(spec: RunSpec, ds: vdata.Dataset, dev: torch.device, checkpoint_dir: str | Path | None,
           keep_probs: bool, quiet: bool, trace: Callable[..., None], stop_after: int | None) -> RunRecord:
    run = _start(spec, ds.to(dev), dev, trace)
    ckpt = Path(checkpoint_dir) / f"{spec.key()}.pt" if checkpoint_dir is not None else None
    if ckpt is not None and ckpt.exists():
        _resume(run, ckpt)
    bar = tqdm(total=run.total, initial=run.epoch * run.steps, desc=f"{spec.model} {spec.loss} seed {spec.seed}",
               unit="it", leave=False, file=sys.stderr, dynamic_ncols=True, disable=quiet)
    logits, saved_at = None, None
    while run.epoch < spec.epochs:
        log, lr = _train_epoch(run, bar, trace)
        logits = _end_epoch(run, log, lr)
        row = run.epochs[-1]
        bar.set_postfix(epoch=run.epoch, loss=f"{row['train_loss']:.3f}", acc=f"{100 * row['test_acc']:.1f}%",
                        lam=f"{row['lambda_mean']:.3f}")
        if ckpt is not None and run.epoch < spec.epochs and (saved_at is None
                                                             or run.wall() - saved_at >= CHECKPOINT_EVERY_S):
            _save_checkpoint(run, ckpt)
            saved_at = run.wall()
        if stop_after is not None and stop_after <= run.epoch < spec.epochs:
            bar.close()
            return None  # type: ignore[return-value]
    bar.close()
    trace("final", run.model, run.ema.model)
    record = _record(run, logits, keep_probs)
    if ckpt is not None:
        ckpt.unlink(missing_ok=True)
        remove_leftovers(ckpt)  # of a checkpoint save killed mid-write
    return record


# -------------------------------------------------------------------------------------- CLI
def add_cli(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the `train` subcommand to the `python -m vml` parser."""
    p = sub.add_parser("train", help="train one run and print its summary",
                       description="Train one run of a profile (smoke, cpu, gpu, paper) and print a summary.")
    p.add_argument("--profile", default="cpu", choices=sorted(PROFILES), help="protocol (default: cpu)")
    p.add_argument("--model", default=None, choices=models.MODELS, help="network (default: the profile's)")
    p.add_argument("--width", type=float, default=None,
                   help="width multiplier (default: the profile's width for the model, vml.spec.ARCH_SETTINGS)")
    p.add_argument("--loss", default="base", choices=LOSSES, help="base (cross-entropy) or vml")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--vary", default="all", choices=VARY,
                   help="which randomness sources take --seed (the rest take the base seed)")
    p.add_argument("--dataset", default=None, choices=list(vdata.DATASETS))
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--label-smoothing", type=float, default=None)
    p.add_argument("--precision", default=None, choices=PRECISIONS)
    p.add_argument("--device", default=None,
                   help="cpu, cuda or cuda:N (default: the profile's: cuda for gpu and paper, which refuse to start "
                        "without it, cpu otherwise); the device class is part of the run's key")
    p.add_argument("--checkpoint-dir", default=None,
                   help=f"checkpoint here (after the first epoch, then at most every {CHECKPOINT_EVERY_S:.0f} s) "
                        "and resume")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the record as one JSON object on the last line")
    p.set_defaults(func=_cli_train)
    return p


def _cli_train(args: argparse.Namespace) -> int:
    overrides = {k: getattr(args, k) for k in ("model", "width", "dataset", "epochs", "batch_size", "lr",
                                                "label_smoothing", "precision") if getattr(args, k) is not None}
    if args.model is not None and args.width is None:  # the profile's width for this architecture
        overrides = {**ARCH_SETTINGS.get(args.profile, {}).get(args.model, {}), **overrides}
    if args.device is not None:  # the device class is the spec's (and its key's); the index only says which GPU
        overrides["device"] = devices.parse(args.device).type
    spec = profile_spec(args.profile, loss=args.loss, seed=args.seed, vary=args.vary, **overrides)
    devices.resolve(spec.device, args.device,  # before any data is loaded
                    f"--device {args.device}" if args.device else f"the {args.profile} profile",
                    ", or train the CPU run of the same settings with --device cpu (another run, with its own key)")
    record = train(spec, device=args.device, quiet=args.quiet, checkpoint_dir=args.checkpoint_dir)
    print(record.summary())
    if args.json:
        print(json.dumps(record.to_json_dict(), sort_keys=True))
    return 0
