"""bf16 autocast against fp32 on this CPU, and bf16's two kernel paths: time of a full training step of
a book network, interleaved.

    python benchmarks/precision_step.py [--model resnet14:0.25] [--rounds 20] [--batch 512] [--out FILE]

The `cpu` profile trains in bf16 autocast. On CPUs with bf16 hardware (avx512_bf16, AMX) that is faster
than fp32; on CPUs without it, oneDNN emulates bf16 and it can be slower, which is why `vml.bf16` then
computes bf16 products with fp32 kernels. Each round times one step of the same network (forward,
backward, SGD) in fp32, in bf16 with oneDNN's bf16 kernels ("native") and in bf16 with fp32 kernels
(`vml.bf16`'s "fp32" path), back to back, the order alternating, so that drift and other load hit all
alike. The figures are medians over rounds of paired ratios with 95% bootstrap intervals: native
bf16/fp32 (`ratio_*`) and bf16 fp32-kernels/native (`kernels_ratio_*`). Writes a JSON with the machine
it ran on.
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from _paired import interleaved, paired_ratio, result as paired_result  # benchmarks/ is on the path when a script there runs

from vml import bf16, models


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

    def step(precision: str, products: str = "native") -> float:
        t0 = time.perf_counter()
        with bf16.computed_as(products):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
        opt.step()
        return time.perf_counter() - t0

    times = interleaved({"fp32": lambda: step("fp32"), "bf16": lambda: step("bf16"),
                         "bf16 fp32 kernels": lambda: step("bf16", "fp32")}, args.rounds)
    r = paired_ratio(times["bf16"], times["fp32"])
    k = paired_ratio(times["bf16 fp32 kernels"], times["bf16"])
    result = paired_result({"model": args.model, "batch": args.batch, "rounds": args.rounds,
                            "fp32_median_s": r["den_median_s"], "bf16_median_s": r["num_median_s"],
                            "bf16_fp32_kernels_median_s": k["num_median_s"],
                            **{f"kernels_{n}": k[n] for n in ("ratio_median", "ratio_low", "ratio_high")}},
                           r, args.out)
    print(f"{result['machine']['cpu']} (flags {', '.join(result['machine']['cpu_flags'])}), "
          f"threads={torch.get_num_threads()}, {args.model}, batch {args.batch}, {args.rounds} rounds")
    print(f"  fp32: median step {result['fp32_median_s']:.3f} s; bf16: {result['bf16_median_s']:.3f} s; "
          f"bf16 with fp32 kernels: {result['bf16_fp32_kernels_median_s']:.3f} s")
    print(f"ratio bf16/fp32 = {result['ratio_median']:.2f} [{result['ratio_low']:.2f}, {result['ratio_high']:.2f}] "
          "(median of paired rounds, 95% bootstrap CI; < 1: bf16 is faster here)")
    print(f"ratio bf16 fp32-kernels/native = {result['kernels_ratio_median']:.2f} [{result['kernels_ratio_low']:.2f}, "
          f"{result['kernels_ratio_high']:.2f}] (< 1: the fp32 kernels are faster here; `vml.bf16.kernels()` chose "
          f"{result['machine']['bf16_kernels']!r})")


if __name__ == "__main__":
    main()
