"""bf16 autocast against fp32 on this CPU: time of a full training step of a book network, interleaved.

    python benchmarks/precision_step.py [--model resnet14:0.25] [--rounds 20] [--batch 512] [--out FILE]

The `cpu` profile trains in bf16 autocast. On CPUs with bf16 hardware (avx512_bf16, AMX) that is faster
than fp32; on CPUs without it, oneDNN emulates bf16 and it can be slower. Each round times one fp32 step
and one bf16 step of the same network (forward, backward, SGD) back to back, the order alternating, so
that drift and other load hit both alike; the figure is the median over rounds of the paired ratio
bf16/fp32 with a 95% bootstrap interval. Writes a JSON with the machine it ran on.
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from _paired import interleaved, paired_ratio, result as paired_result  # benchmarks/ is on the path when a script there runs

from vml import models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet14:0.25", help="network:width, as in vml.models.build")
    parser.add_argument("--rounds", type=int, default=20, help="timed rounds (one step at each precision)")
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--out", default=None, help="write the result as JSON here")
    args = parser.parse_args()
    name, width = args.model.split(":")
    torch.manual_seed(0)
    model = models.build(name, num_classes=10, width=float(width)).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(args.batch, 3, 32, 32).to(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (args.batch,))

    def step(precision: str) -> float:
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return time.perf_counter() - t0

    times = interleaved({p: (lambda p=p: step(p)) for p in ("fp32", "bf16")}, args.rounds)
    r = paired_ratio(times["bf16"], times["fp32"])
    result = paired_result({"model": args.model, "batch": args.batch, "rounds": args.rounds,
                            "fp32_median_s": r["den_median_s"], "bf16_median_s": r["num_median_s"]}, r, args.out)
    print(f"{result['machine']['cpu']} (flags {', '.join(result['machine']['cpu_flags'])}), "
          f"threads={torch.get_num_threads()}, {args.model}, batch {args.batch}, {args.rounds} rounds")
    print(f"  fp32: median step {result['fp32_median_s']:.3f} s; bf16: {result['bf16_median_s']:.3f} s")
    print(f"ratio bf16/fp32 = {result['ratio_median']:.2f} [{result['ratio_low']:.2f}, {result['ratio_high']:.2f}] "
          "(median of paired rounds, 95% bootstrap CI; < 1: bf16 is faster here)")


if __name__ == "__main__":
    main()
