"""Training throughput (images/s) of `vml.train` against the loop most users write, and the ceiling.

For each model, in one process and at one precision:

1. ``common``: torchvision `ImageFolder` over the pack's JPEG files (written to a temporary folder,
   as a user of the CIFAR-10-images mirror has them) + PIL transforms (RandomCrop(32, padding=4),
   RandomHorizontalFlip, ToTensor, Normalize) + `DataLoader(batch_size, shuffle=True, num_workers=2)`,
   the model in the default memory format, SGD step per batch.
   With ``--common-source torchvision`` the official `CIFAR10` dataset class is used instead
   (needs the download).
2. ``vml.train``: the real trainer (`train(spec, data=subset)`), the whole loop included (gather,
   augmentation, normalisation, forward/backward, SGD, EMA, controller, per-iteration logs and the
   end-of-epoch evaluation of a 512-image test split); the time of its second epoch.
3. ``ceiling``: the same model, channels_last, forward/backward/SGD on one pre-made batch.

Run from the repository root:  python benchmarks/trainer_throughput.py [--models resnet14:0.25 fastnet:0.5]
(needs the CIFAR-10 pack, found as `vml.data` finds it). The machine is shared and noisy: the three
loops are measured interleaved, `--repeats` times, and the median is reported.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vml import data as vdata
from vml import models
from vml.spec import profile_spec
from vml.train import train


def common_loop(model_name: str, width: float, precision: str, folder: Path, batch: int, steps: int,
                workers: int, source: str) -> float:
    import torchvision
    from torchvision import transforms as T

    ds_stats = vdata._STATS["cifar10"]
    tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(*ds_stats)])
    if source == "torchvision":
        dset = torchvision.datasets.CIFAR10(str(vdata.resolve_data_dir() / "torchvision"), train=True,
                                            download=True, transform=tf)
    else:
        dset = torchvision.datasets.ImageFolder(str(folder), transform=tf)
    loader = torch.utils.data.DataLoader(dset, batch_size=batch, shuffle=True, num_workers=workers,
                                         drop_last=True, persistent_workers=False)
    model = models.build(model_name, 10, width)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    model.train()
    n, t0 = 0, None
    for i, (x, y) in enumerate(loader):
        if i == 1:  # the first batch pays for worker start-up
            t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            out = model(x)
        loss = F.cross_entropy(out.float(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i >= 1:
            n += len(x)
        if i >= steps:
            break
    return n / (time.perf_counter() - t0)


def ceiling(model_name: str, width: float, precision: str, batch: int, steps: int,
            device: torch.device = torch.device("cpu")) -> float:
    """Images/s of forward, backward and SGD on one batch already on `device` (channels_last)."""
    model = models.build(model_name, 10, width).to(device, memory_format=torch.channels_last)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1, momentum=0.9,
                          weight_decay=5e-4)
    x = torch.randn(batch, 3, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,), device=device)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            out = model(x)
        loss = F.cross_entropy(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(2):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return batch * steps / (time.perf_counter() - t0)


def vml_loop(model_name: str, width: float, precision: str, ds: vdata.Dataset, batch: int, steps: int) -> float:
    n = batch * steps
    sub = vdata.Dataset("cifar10", ds.train_x[:n], ds.train_y[:n], ds.test_x[:512], ds.test_y[:512],
                        ds.classes, ds.mean, ds.std, source=ds.source)
    spec = profile_spec("cpu", model=model_name, width=width, precision=precision, epochs=2, batch_size=batch,
                        tta_views=1)
    rec = train(spec, data=sub, device="cpu")
    return n / (rec.epochs[1]["wall_s"] - rec.epochs[0]["wall_s"])


def write_image_folder(pack: Path, root: Path, n: int) -> None:
    z = np.load(pack, allow_pickle=False)
    raw, off, lab, classes = z["train_bytes"].tobytes(), z["train_offsets"], z["train_labels"], z["classes"]
    rng = np.random.default_rng(0)
    for i in rng.choice(len(lab), size=n, replace=False):
        d = root / str(classes[lab[i]])
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{i:05d}.jpg").write_bytes(raw[off[i]:off[i + 1]])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["resnet14:0.25", "fastnet:0.5"], help="name:width")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                    help="the same precision for all three loops (default fp32, as the issue's figures)")
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--steps", type=int, default=16, help="timed steps per measurement")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2, help="DataLoader workers of the common loop")
    ap.add_argument("--common-source", default="imagefolder", choices=["imagefolder", "torchvision"])
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    ap.add_argument("--loops", nargs="+", default=["common", "vml.train", "ceiling"],
                    choices=["common", "vml.train", "ceiling"], help="which loops to measure")
    args = ap.parse_args()
    if args.threads:
        import os
        os.environ["VML_THREADS"] = str(args.threads)  # vml.train sets its own thread count from this
        torch.set_num_threads(args.threads)
    ds = vdata.load_dataset("cifar10")
    pack = next((p for p in vdata.pack_candidates("cifar10", vdata.resolve_data_dir()) if p.exists()), None)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "train"
        if args.common_source == "imagefolder" and "common" in args.loops:
            if pack is None:
                raise SystemExit("the common loop needs the CIFAR-10 pack (or use --common-source torchvision)")
            write_image_folder(pack, folder, args.batch * (args.steps + 2) * 2)
        for spec in args.models:
            name, width = spec.split(":")
            width = float(width)
            runs = {"common": [], "vml.train": [], "ceiling": []}
            for _ in range(args.repeats):
                if "common" in args.loops:
                    runs["common"].append(common_loop(name, width, args.precision, folder, args.batch, args.steps,
                                                      args.workers, args.common_source))
                if "vml.train" in args.loops:
                    runs["vml.train"].append(vml_loop(name, width, args.precision, ds, args.batch, args.steps))
                if "ceiling" in args.loops:
                    runs["ceiling"].append(ceiling(name, width, args.precision, args.batch, args.steps))
            med = {k: statistics.median(v) if v else float("nan") for k, v in runs.items()}
            row = {"model": name, "width": width, "params": models.param_count(models.build(name, 10, width)),
                   "precision": args.precision, **{f"{k}_img_s": round(v, 1) for k, v in med.items()},
                   "vs_ceiling": round(med["vml.train"] / med["ceiling"], 3),
                   "vs_common": round(med["vml.train"] / med["common"], 3),
                   "all_runs": {k: [round(x, 1) for x in v] for k, v in runs.items()}}
            results.append(row)
            print(f"{name} (width {width:g}, {row['params']:,} params, {args.precision}): "
                  f"common {med['common']:.0f} img/s | vml.train {med['vml.train']:.0f} img/s | "
                  f"ceiling {med['ceiling']:.0f} img/s -> {100 * row['vs_ceiling']:.0f}% of ceiling, "
                  f"{row['vs_common']:.2f}x common", flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
