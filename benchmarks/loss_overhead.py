"""Cost of VML over plain cross-entropy: time of a full training step, interleaved in one process.

    python benchmarks/loss_overhead.py [--steps 200] [--batch 512] [--out data/results/benchmarks/loss_overhead.json]

Each round times one CE step and one VML step back to back (the order alternating), so that drift and
other load hit both alike; the figure is the median over rounds of the paired ratio VML/CE, with a
95% bootstrap interval (scipy.stats.bootstrap over rounds). The book quotes this one figure for the
paper's "no extra cost" claim (target <= 1.02). Writes a JSON with the machine it ran on.
"""
from __future__ import annotations

import argparse
import time

import torch
from _paired import interleaved, paired_ratio, result as paired_result  # benchmarks/ is on the path when a script there runs
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
    parser.add_argument("--steps", type=int, default=200, help="timed rounds (one step of each criterion)")
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--out", default=None, help="write the result as JSON here")
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

    times = interleaved({name: (lambda c=crit: step(c)) for name, crit in criteria.items()}, args.steps, warmup=3)
    r = paired_ratio(times["vml"], times["ce"])
    result = paired_result({"batch": args.batch, "rounds": args.steps, "ce_median_ms": 1000 * r["den_median_s"],
                            "vml_median_ms": 1000 * r["num_median_s"]}, r, args.out)
    print(f"threads={torch.get_num_threads()} batch={args.batch} rounds={args.steps}")
    print(f"  ce: median step {result['ce_median_ms']:.1f} ms; vml: {result['vml_median_ms']:.1f} ms")
    print(f"ratio VML/CE = {result['ratio_median']:.3f} [{result['ratio_low']:.3f}, {result['ratio_high']:.3f}] "
          "(median of paired rounds, 95% bootstrap CI; target <= 1.02)")

if __name__ == "__main__":
    main()
