"""The gpu profile's check on one lent GPU, within a lease (`--budget` seconds of run time, default 480):

1. one epoch of each of the four gpu networks at full width (ResNet-14, VGG-16, ShuffleNet-V2,
   MobileNetV2) through `vml.train`: that it runs under deterministic algorithms, which convolution
   kernels it reaches (cuDNN, not a slow fallback), seconds per epoch and peak GPU memory;
2. two identical short runs, compared bitwise (the record without its wall times, and every array);
3. one epoch under `torch.cuda.set_sync_debug_mode("error")`: the loop never waits for the host;
4. the `gpu`-marked tests (`pytest -m gpu tests/test_devices.py`);
5. the trainer's throughput (images/s of its second epoch) against the ceiling (forward, backward and
   SGD on one batch already on the GPU);
6. then, in the time left, runs of the `powered` study's short arm into a store of their own (`--root`),
   which `python -m vml merge <root>` adds to this clone's store (checked here with a dry run).

Results go to `--out` as JSON (default data/results/benchmarks/gpu_check.json). The CIFAR-10 pack must
travel with the tree in the ignored folder data/datasets/ (copy ../shared/data/cifar10-jpeg.npz there).

    python benchmarks/gpu_check.py --root <store>                  # on the GPU
    python benchmarks/gpu_check.py --device cpu --dry --root <tmp>  # the same steps, tiny, on a CPU

`--dry` shrinks everything (synthetic data, narrow networks, the smoke profile's powered short arm) so
that the script runs end to end in a minute or two on a CPU.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from trainer_throughput import ceiling  # noqa: E402  (this script's folder is on the path)

from vml import data as vdata  # noqa: E402
from vml import merge, models, runner, store  # noqa: E402
from vml import train as vtrain  # noqa: E402
from vml.spec import ARCH_SETTINGS, ARCHITECTURES, profile_spec  # noqa: E402
from vml.studies import get_study  # noqa: E402

FALLBACK_CONVS = ("slow_conv", "thnn_conv", "conv_depthwise2d")  # not cuDNN: slower, and not tuned for the GPU


class Clock:
    """The lease: seconds left of `budget` since the start."""

    def __init__(self, budget: float) -> None:
        self.t0, self.budget = time.perf_counter(), budget

    def left(self) -> float:
        return self.budget - (time.perf_counter() - self.t0)


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _peak_gib(dev: torch.device) -> float | None:
    return round(torch.cuda.max_memory_allocated(dev) / 2**30, 2) if dev.type == "cuda" else None


def _reset_peak(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)


def conv_ops(model: torch.nn.Module, dev: torch.device, precision: str, batch: int) -> dict[str, int]:
    """The convolution ops one training step of `model` dispatches to (profiler op names -> count)."""
    from torch.profiler import ProfilerActivity, profile
    x = torch.randn(batch, 3, 32, 32, device=dev).contiguous(memory_format=torch.channels_last)
    y = torch.zeros(batch, dtype=torch.long, device=dev)
    model.train()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            out = model(x)
        F.cross_entropy(out.float(), y).backward()
        _sync(dev)
    counts: dict[str, int] = {}
    for e in prof.events():
        if "conv" in e.name and e.name.startswith("aten::") and ("cudnn" in e.name or "mkldnn" in e.name or any(
                f in e.name for f in FALLBACK_CONVS)):
            counts[e.name] = counts.get(e.name, 0) + 1
    return counts


def same_record(a: vtrain.RunRecord, b: vtrain.RunRecord) -> list[str]:
    """The fields and arrays in which two records of one spec differ (wall times apart)."""
    ja, jb = a.to_json_dict(), b.to_json_dict()
    for d in (ja, jb):
        d.pop("wall_s"), d.pop("started")
        for e in d["epochs"]:
            e.pop("wall_s")
    out = [k for k in ja if ja[k] != jb[k]]
    return out + [k for k, v in a.arrays().items() if not np.array_equal(v, b.arrays()[k])]


def step_archs(dev: torch.device, ds: vdata.Dataset, dry: bool) -> list[dict[str, Any]]:
    rows = []
    for m in ARCHITECTURES:
        over = dict(ARCH_SETTINGS["gpu"][m], model=m, epochs=1, device=dev.type)
        if dry:
            over.update(width=0.125, batch_size=64)
        spec = profile_spec("gpu", **over)
        row: dict[str, Any] = {"model": m, "width": spec.width, "precision": spec.precision}
        try:
            model = models.build(m, 10, spec.width).to(dev, memory_format=torch.channels_last)
            row["conv_ops"] = conv_ops(model, dev, spec.precision, 64)
            row["conv_fallback"] = sorted(k for k in row["conv_ops"] if any(f in k for f in FALLBACK_CONVS))
            del model
            _reset_peak(dev)
            rec = vtrain.train(spec, device=dev, data=ds)
            row.update(ok=True, epoch_s=round(rec.epochs[0]["wall_s"], 2), peak_gib=_peak_gib(dev),
                       test_acc=rec.test_acc, params=rec.n_params)
        except Exception as e:  # a crash is a finding: name it and go on with the next network
            row.update(ok=False, error=f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        print(f"[1] {m}: {row}", flush=True)
        rows.append(row)
    return rows


def _short_spec(dev: torch.device, dry: bool) -> Any:
    if dry:
        return profile_spec("gpu", width=0.125, batch_size=64, epochs=2, loss="vml", device=dev.type)
    return profile_spec("gpu", epochs=2, loss="vml", train_subset=5000, device=dev.type)


def step_bitwise(dev: torch.device, ds: vdata.Dataset, dry: bool) -> dict[str, Any]:
    spec = _short_spec(dev, dry)
    a, b = vtrain.train(spec, device=dev, data=ds), vtrain.train(spec, device=dev, data=ds)
    diff = same_record(a, b)
    print(f"[2] two runs of {spec.key()}: " + ("bitwise equal" if not diff else "differ in " + ", ".join(diff)),
          flush=True)
    return {"key": spec.key(), "equal": not diff, "differ": diff, "test_acc": a.test_acc, "machine": a.machine}


def step_sync_debug(dev: torch.device, ds: vdata.Dataset, dry: bool) -> dict[str, Any]:
    if dev.type != "cuda":
        return {"skipped": "not a CUDA device (tests/test_devices.py checks the same loop with a dispatch mode)"}
    epoch = vtrain._train_epoch

    def strict(run: Any, bar: Any, trace: Callable[..., None]) -> Any:
        torch.cuda.synchronize(dev)
        torch.cuda.set_sync_debug_mode("error")
        try:
            return epoch(run, bar, trace)
        finally:
            torch.cuda.set_sync_debug_mode("default")

    vtrain._train_epoch = strict
    try:
        vtrain.train(_short_spec(dev, dry).replace(epochs=1), device=dev, data=ds)
        out: dict[str, Any] = {"ok": True}
    except RuntimeError as e:
        out = {"ok": False, "error": str(e).splitlines()[0]}
    finally:
        vtrain._train_epoch = epoch
    print(f"[3] an epoch under sync debug mode 'error': {out}", flush=True)
    return out


def step_tests(clock: Clock) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", "tests/test_devices.py"]
    try:
        p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=max(30, min(240, clock.left() - 60)))
        tail = (p.stdout.strip().splitlines() or [""])[-1]
        out = {"rc": p.returncode, "summary": tail}
    except subprocess.TimeoutExpired:
        out = {"rc": None, "summary": "timed out"}
    print(f"[4] gpu-marked tests: {out}", flush=True)
    return out


def step_throughput(dev: torch.device, ds: vdata.Dataset, dry: bool) -> dict[str, Any]:
    spec = profile_spec("gpu", epochs=2, tta_views=1, device=dev.type)
    steps = 4 if dry else 20
    if dry:
        spec = spec.replace(width=0.125, batch_size=64)
    n = spec.batch_size * steps
    sub = vdata.Dataset(ds.name, ds.train_x[:n], ds.train_y[:n], ds.test_x[:512], ds.test_y[:512], ds.classes,
                        ds.mean, ds.std, source=ds.source)
    rec = vtrain.train(spec, device=dev, data=sub)
    trainer = n / (rec.epochs[1]["wall_s"] - rec.epochs[0]["wall_s"])
    top = ceiling(spec.model, spec.width, spec.precision, spec.batch_size, steps, dev)
    out = {"model": spec.model, "width": spec.width, "precision": spec.precision, "batch": spec.batch_size,
           "trainer_img_s": round(trainer, 1), "ceiling_img_s": round(top, 1), "vs_ceiling": round(trainer / top, 3)}
    print(f"[5] throughput: {out}", flush=True)
    return out


def step_powered(dev: torch.device, root: str, clock: Clock, epoch_s: float | None, dry: bool) -> dict[str, Any]:
    """Runs of the powered short arm, one at a time while the estimate of the next fits the time left."""
    profile = "smoke" if dry else "gpu"
    items = [i for i in get_study("powered").grid(profile) if i.tags["arm"] == "short"]
    done, walls = [], []
    for item in items:
        if store.exists(item.spec, root):
            continue
        # the longest run so far; before any, the first step's epoch of the same network (not in a dry run,
        # whose smoke runs are another protocol), with room for the final evaluation; 30 s kept in reserve
        first = (epoch_s or 60.0) * item.spec.epochs * 1.3 if not dry else 120.0
        if clock.left() < (max(walls) if walls else first) + 30:
            break
        t0 = time.perf_counter()
        runner.run(["powered"], profile, root=root, keys=[item.spec.key()], device=str(dev))
        walls.append(time.perf_counter() - t0)
        done.append(item.spec.key())
        print(f"[6] powered short arm: {item.spec.loss} seed {item.spec.seed} stored in {walls[-1]:.0f} s "
              f"({clock.left():.0f} s left)", flush=True)
    report = merge.merge(root, None, profiles=[profile], dry_run=True)
    out = {"profile": profile, "root": os.path.basename(os.path.abspath(root)), "stored": done,
           "run_s": [round(w, 1) for w in walls], "of": len(items),
           "merge_dry_run": merge.summary(report, dry_run=True)}
    print(f"[6] {len(done)} of {len(items)} short-arm runs; `python -m vml merge {root}`: {out['merge_dry_run']}",
          flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", help="cuda, cuda:N or (with --dry) cpu")
    ap.add_argument("--dry", action="store_true", help="tiny sizes and synthetic data: the steps end to end on a CPU")
    ap.add_argument("--budget", type=float, default=None,
                    help="seconds of run time in all (default 480; with --dry 240)")
    ap.add_argument("--root", required=True, help="the store the powered runs go to (merge it into this clone)")
    ap.add_argument("--out", default=None, help="JSON results (default data/results/benchmarks/gpu_check.json; "
                                                "with --dry: none)")
    ap.add_argument("--skip", nargs="*", default=[], choices=["archs", "bitwise", "sync", "tests", "throughput",
                                                               "powered"])
    args = ap.parse_args()
    args.budget = args.budget or (240.0 if args.dry else 480.0)
    clock = Clock(args.budget)
    dev = torch.device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        print(f"error: --device {args.device}: torch {torch.__version__} sees no CUDA device here; use --device cpu "
              "--dry to try the steps on a CPU", file=sys.stderr)
        return 2
    if dev.type == "cpu" and not args.dry:
        print("error: --device cpu needs --dry (the full check trains the gpu profile at full width)", file=sys.stderr)
        return 2
    ds = (vdata.synthetic(n_train=256, n_test=128, num_classes=10, seed=1) if args.dry
          else vdata.load_dataset("cifar10"))
    result: dict[str, Any] = {"command": "python " + " ".join(sys.argv),
                              "measured": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                              "dry": args.dry, "device": str(dev), "machine": vtrain.machine_info(dev),
                              "data_source": ds.source}
    print(f"gpu check on {result['machine'].get('cuda', {}).get('gpu', 'cpu')}, {args.budget:.0f} s", flush=True)
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("archs", lambda: step_archs(dev, ds, args.dry)), ("bitwise", lambda: step_bitwise(dev, ds, args.dry)),
        ("sync", lambda: step_sync_debug(dev, ds, args.dry)), ("tests", lambda: step_tests(clock)),
        ("throughput", lambda: step_throughput(dev, ds, args.dry))]
    for name, step in steps:
        if name in args.skip:
            continue
        if clock.left() < 60:  # the lease first: a step that may not finish is left out, and says so
            result[name] = {"skipped": f"out of time ({clock.left():.0f} s of {args.budget:.0f} left)"}
            continue
        t0 = time.perf_counter()
        result[name] = step()
        result[f"{name}_s"] = round(time.perf_counter() - t0, 1)
    if "powered" not in args.skip:
        r14 = next((r for r in result.get("archs", []) if r["model"] == "resnet14" and r.get("ok")), {})
        result["powered"] = step_powered(dev, args.root, clock, r14.get("epoch_s"), args.dry)
    result["total_s"] = round(args.budget - clock.left(), 1)
    out = args.out or (None if args.dry else str(ROOT / "data" / "results" / "benchmarks" / "gpu_check.json"))
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(f"done in {result['total_s']:.0f} s" + (f"; results in {out}" if out else ""), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
