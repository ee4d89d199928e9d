"""Cost of VML over plain cross-entropy: median time of a full training step, interleaved in one process.

    python benchmarks/loss_overhead.py [--steps 30] [--batch 512]

Prints the median step time of each and the ratio VML/CE (target <= 1.02: the paper's "no extra cost").
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from vml import VarianceMinimizerLoss


def small_cnn() -> nn.Module:
    """A small CIFAR-sized CNN: the step time is dominated by convolutions, as in real training."""
    def block(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                             nn.MaxPool2d(2))
    return nn.Sequential(block(3, 32), block(32, 64), block(64, 128), nn.AdaptiveMaxPool2d(1), nn.Flatten(),
                         nn.Linear(128, 10))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="timed steps per criterion")
    parser.add_argument("--batch", type=int, default=512)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = small_cnn().to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(args.batch, 3, 32, 32).to(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (args.batch,))
    criteria = {"ce": nn.CrossEntropyLoss(), "vml": VarianceMinimizerLoss(warmup_steps=5)}

    def step(crit: nn.Module) -> float:
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = crit(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return time.perf_counter() - t0

    for _ in range(3):  # warm-up both paths
        for crit in criteria.values():
            step(crit)
    times: dict[str, list[float]] = {name: [] for name in criteria}
    for i in range(args.steps):  # interleave, alternating order, so drift hits both alike
        order = list(criteria) if i % 2 == 0 else list(reversed(criteria))
        for name in order:
            times[name].append(step(criteria[name]))
    med = {name: statistics.median(ts) for name, ts in times.items()}
    print(f"threads={torch.get_num_threads()} batch={args.batch} steps={args.steps}")
    for name, m in med.items():
        print(f"{name:>4}: median step {1000 * m:.1f} ms")
    print(f"ratio VML/CE = {med['vml'] / med['ce']:.3f} (target <= 1.02)")


if __name__ == "__main__":
    main()
