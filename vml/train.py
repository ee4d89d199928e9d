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
  (up to the wall times), whatever the process did before; the record's `machine` names all four.
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
- A checkpoint after each epoch (atomic) lets a killed run resume to a bitwise equal record.
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
import tempfile
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
from . import data as vdata
from . import models
from .loss import StableLossController, VarianceMinimizerLoss
from .spec import ARCH_SETTINGS, PROFILES, RunSpec, profile_spec

__all__ = ["RunSpec", "RunRecord", "train", "profile_spec", "PROFILES", "add_cli", "tta_views_list",
           "source_seed", "make_generators", "epoch_plan"]

EVAL_BATCH = 1000


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

    ARRAYS = ("preds", "ema_preds", "tta_preds", "labels", "probs")

    def to_json_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of everything but the arrays (`iters`, predictions, labels, probs)."""
        out = {}
        for f in dataclasses.fields(self):
            if f.name in self.ARRAYS or f.name == "iters":
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


def _resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _device_str(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    name = platform.processor() or "cpu"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"cpu ({name}, {torch.get_num_threads()} threads)"


def machine_info() -> dict[str, Any]:
    """What tells two CPU machines' numerics apart: CPU model, the ISA level ATen dispatches to, the
    oneDNN/ATen caps set in the environment, the thread count and the torch version."""
    flags: set[str] = set()
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    isa = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return {"cpu": model, "cpu_flags": isa, "aten_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "ATEN_CPU_CAPABILITY": os.environ.get("ATEN_CPU_CAPABILITY"),
            "ONEDNN_MAX_CPU_ISA": os.environ.get("ONEDNN_MAX_CPU_ISA"),
            "threads": torch.get_num_threads(), "torch": torch.__version__}


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


class _Recorder:
    """Wraps the base criterion and keeps the latest (detached) base loss ℓ_t for the log."""

    def __init__(self, fn: Callable[[Tensor, Tensor], Tensor]) -> None:
        self.fn = fn
        self.value: Tensor | None = None

    def __call__(self, logits: Tensor, target: Tensor) -> Tensor:
        loss = self.fn(logits, target)
        self.value = loss.detach()
        return loss


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


def _pred_dtype(num_classes: int) -> np.dtype:
    return np.dtype(np.uint8) if num_classes <= 256 else np.dtype(np.int16)


def _atomic_torch_save(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ------------------------------------------------------------------------------------ train
def train(spec: RunSpec, *, device: str | torch.device | None = None, quiet: bool = True,
          checkpoint_dir: str | Path | None = None, keep_probs: bool = False,
          data: vdata.Dataset | None = None, trace: Callable[..., None] | None = None,
          stop_after: int | None = None) -> RunRecord:
    """Train one run described by `spec` and return its record.

    device: default CUDA when available, else CPU. quiet: no progress bar. checkpoint_dir: save
    ``<spec.key()>.pt`` there after every epoch (atomically), resume from it when present, delete
    it at the end. keep_probs: keep the float16 softmax of the final model on the test set.
    data: use this dataset instead of loading `spec.dataset` (tests, benchmarks).
    trace: test hook, called as trace("init", model), trace("epoch", epoch, perm, dy, dx, flip)
    and trace("final", model, ema_model).
    stop_after: stop (returning None) after this many epochs, leaving the checkpoint, as a kill
    would (tests of resume).
    """
    dev = _resolve_device(device)
    _setup_determinism(dev)
    ds = vdata.train_subset((data if data is not None else vdata.load_dataset(spec.dataset)), spec.train_subset)
    ds = ds.to(dev)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    t_epoch0 = time.perf_counter()  # wall time: everything after the (one-time) dataset loading
    ctx = _Ctx(spec, ds, dev)
    gens = make_generators(spec, dev)

    model = models.build(spec.model, ds.num_classes, spec.width, generator=gens["init"])
    if hasattr(model, "init_from_data"):  # FastNet's whitening stem: from the first 5000 train images
        sub = ds.train_x[:5000].cpu()
        model.init_from_data(vdata.normalize(sub, *vdata.norm_tensors(ds, "cpu")))
    model = model.to(dev, memory_format=torch.channels_last)
    if trace is not None:
        trace("init", model)
    ema_model = copy.deepcopy(model)
    ema_model.requires_grad_(False)
    m_float = [t for t in list(model.parameters()) + list(model.buffers()) if t.is_floating_point()]
    e_float = [t for t in list(ema_model.parameters()) + list(ema_model.buffers()) if t.is_floating_point()]

    base_fn = _Recorder(lambda lo, y: F.cross_entropy(lo, y, label_smoothing=spec.label_smoothing))
    if spec.loss == "vml":
        criterion: Callable[[Tensor, Tensor], Tensor] = VarianceMinimizerLoss(spec.vml, base=base_fn).to(dev)
        controller = criterion.controller
    else:
        criterion = base_fn
        controller = StableLossController(spec.vml).to(dev)  # observer only
    controller.train()

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=spec.lr, momentum=spec.momentum, nesterov=spec.nesterov,
                          weight_decay=spec.weight_decay)
    n_train = len(ds.train_x)
    bs = spec.batch_size
    steps = math.ceil(n_train / bs)
    total = steps * spec.epochs
    warmup = round(spec.warmup_epochs * steps)

    epochs: list[dict[str, Any]] = []
    iter_logs: dict[str, list[np.ndarray]] = {k: [] for k in ("loss", "lambda", "delta", "sigma")}
    start_epoch, wall_before = 0, 0.0
    ckpt = Path(checkpoint_dir) / f"{spec.key()}.pt" if checkpoint_dir is not None else None
    if ckpt is not None and ckpt.exists():
        state = torch.load(ckpt, map_location=dev, weights_only=False)
        if state["key"] != spec.key():
            raise ValueError(f"checkpoint {ckpt} belongs to run {state['key']}, not {spec.key()}")
        model.load_state_dict(state["model"])
        ema_model.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"])
        controller.load_state_dict(state["controller"])
        for src in ("shuf", "aug"):
            gens[src].set_state(state["gens"][src].cpu())
        epochs, iter_logs = state["epochs"], state["iters"]
        start_epoch, wall_before, started = state["epoch"], state["wall_s"], state["started"]

    bar = None
    if not quiet:
        bar = tqdm(total=total, initial=start_epoch * steps, desc=f"{spec.model} {spec.loss} seed {spec.seed}",
                   unit="it", leave=False, file=sys.stderr, dynamic_ncols=True)
    last_logits = None
    for epoch in range(start_epoch, spec.epochs):
        model.train()
        perm, dy, dx, flip = epoch_plan(n_train, gens)
        if trace is not None:
            trace("epoch", epoch, perm, dy, dx, flip)
        log = torch.zeros(4, steps, dtype=torch.float32, device=dev)
        lr = spec.lr
        for i in range(steps):
            step = epoch * steps + i
            lr = lr_at(step, total, warmup, spec.lr)
            for g in opt.param_groups:
                g["lr"] = lr
            idx = perm[i * bs:(i + 1) * bs]
            xb = vdata.augment(ds.train_x[idx], dy[idx], dx[idx], flip[idx])
            yb = ds.train_y[idx]
            logits = ctx.forward(model, xb)
            loss = criterion(logits, yb)
            if spec.loss == "base":
                with torch.no_grad():
                    controller(base_fn.value)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            decay = min(spec.ema_decay, (1.0 + step) / (10.0 + step))
            with torch.no_grad():
                torch._foreach_lerp_(e_float, m_float, 1.0 - decay)
            last = controller.last
            log[:, i] = torch.stack([base_fn.value.float(), last["lambda"].float(), last["delta"].float(),
                                     last["sigma"].float()])
            if bar is not None:
                bar.update(1)
        # end of epoch: evaluate and move the logs (the one host sync of the epoch)
        if dev.type != "cpu":
            controller.check()
        last_logits = _evaluate(ctx, model, ds.test_x)
        test_loss = F.cross_entropy(last_logits, ds.test_y)
        test_acc = (last_logits.argmax(1) == ds.test_y).float().mean()
        log_np = log.cpu().numpy()
        for k, row in zip(("loss", "lambda", "delta", "sigma"), log_np):
            iter_logs[k].append(row.copy())
        wall = wall_before + time.perf_counter() - t_epoch0
        rec = {"epoch": epoch + 1, "lr": lr, "train_loss": float(log_np[0].mean()),
               "test_loss": float(test_loss), "test_acc": float(test_acc),
               "lambda_mean": float(log_np[1].mean()), "sigma_mean": float(log_np[3].mean()), "wall_s": wall}
        epochs.append(rec)
        if bar is not None:
            bar.set_postfix(epoch=epoch + 1, loss=f"{rec['train_loss']:.3f}", acc=f"{100 * rec['test_acc']:.1f}%",
                            lam=f"{rec['lambda_mean']:.3f}")
        if ckpt is not None and epoch + 1 < spec.epochs:
            _atomic_torch_save({"key": spec.key(), "spec": spec.to_dict(), "epoch": epoch + 1,
                                "model": model.state_dict(), "ema": ema_model.state_dict(),
                                "opt": opt.state_dict(), "controller": controller.state_dict(),
                                "gens": {s: gens[s].get_state() for s in ("shuf", "aug")},
                                "epochs": epochs, "iters": iter_logs, "wall_s": wall, "started": started}, ckpt)
        if stop_after is not None and epoch + 1 >= stop_after and epoch + 1 < spec.epochs:
            if bar is not None:
                bar.close()
            return None  # type: ignore[return-value]
    if bar is not None:
        bar.close()

    if trace is not None:
        trace("final", model, ema_model)
    # final evaluations: plain model (the last epoch's logits), EMA, TTA
    if last_logits is None:  # resumed from a checkpoint of the final epoch (not written) or epochs == 0
        last_logits = _evaluate(ctx, model, ds.test_x)
    ema_logits = _evaluate(ctx, ema_model, ds.test_x)
    views = tta_views_list(spec.tta_views)
    probs = last_logits.softmax(1)
    tta = probs.clone()
    for v in views[1:]:
        tta += _evaluate(ctx, model, ds.test_x, v).softmax(1)
    wall_s = wall_before + time.perf_counter() - t_epoch0
    pdt = _pred_dtype(ds.num_classes)
    y = ds.test_y
    record = RunRecord(
        spec=spec, key=spec.key(),
        test_acc=float((last_logits.argmax(1) == y).float().mean()),
        test_loss=float(F.cross_entropy(last_logits, y)),
        ema_acc=float((ema_logits.argmax(1) == y).float().mean()),
        tta_acc=float((tta.argmax(1) == y).float().mean()), tta_views=len(views),
        epochs=epochs, iters={k: np.concatenate(v).astype(np.float32) for k, v in iter_logs.items()},
        preds=last_logits.argmax(1).cpu().numpy().astype(pdt),
        ema_preds=ema_logits.argmax(1).cpu().numpy().astype(pdt),
        tta_preds=tta.argmax(1).cpu().numpy().astype(pdt),
        labels=y.cpu().numpy().astype(pdt),
        probs=probs.cpu().numpy().astype(np.float16) if keep_probs else None,
        wall_s=wall_s, device=_device_str(dev), versions=_versions(), started=started,
        n_params=models.param_count(model), steps_per_epoch=steps, data_source=ds.source,
        machine=machine_info())
    if ckpt is not None:
        ckpt.unlink(missing_ok=True)
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
    p.add_argument("--loss", default="base", choices=["base", "vml"], help="base (cross-entropy) or vml")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--vary", default="all", choices=["all", "init", "aug", "shuf"],
                   help="which randomness sources take --seed (the rest take the base seed)")
    p.add_argument("--dataset", default=None, choices=list(vdata.DATASETS))
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--label-smoothing", type=float, default=None)
    p.add_argument("--precision", default=None, choices=["fp32", "bf16"])
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    p.add_argument("--checkpoint-dir", default=None, help="checkpoint after each epoch here and resume")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the record as one JSON object on the last line")
    p.set_defaults(func=_cli_train)
    return p


def _cli_train(args: argparse.Namespace) -> int:
    overrides = {k: getattr(args, k) for k in ("model", "width", "dataset", "epochs", "batch_size", "lr",
                                                "label_smoothing", "precision") if getattr(args, k) is not None}
    if args.model is not None and args.width is None:  # the profile's width for this architecture
        overrides = {**ARCH_SETTINGS.get(args.profile, {}).get(args.model, {}), **overrides}
    spec = profile_spec(args.profile, loss=args.loss, seed=args.seed, vary=args.vary, **overrides)
    if args.device is not None:
        try:
            dev = torch.device(args.device)
        except RuntimeError:
            raise ValueError(f"--device {args.device!r} is not a device; use cpu, cuda or cuda:N") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"--device {args.device!r}: no CUDA device here; use cpu")
    record = train(spec, device=args.device, quiet=args.quiet, checkpoint_dir=args.checkpoint_dir)
    print(record.summary())
    if args.json:
        print(json.dumps(record.to_json_dict(), sort_keys=True))
    return 0
