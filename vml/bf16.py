"""How bf16 autocast's convolutions and matrix products are computed on this machine.

Under `torch.autocast(dtype=torch.bfloat16)` a convolution or matrix product takes bf16 operands,
accumulates in fp32 and rounds its result to bf16. CPUs with bf16 hardware (AVX512-BF16, AMX) and GPUs
run that as bf16 kernels ("native"). A CPU without it has no bf16 multiplier: oneDNN then emulates one,
and its bf16 kernels run slower than fp32 ones (`benchmarks/precision_step.py` measures both). There
this module computes the same arithmetic with fp32 kernels ("fp32"): the bf16 operands are widened to
fp32 (exactly), multiplied in fp32 (exactly: the product of two 8-bit significands fits in fp32's 24
bits), accumulated in fp32, and the result is rounded to bf16. Only the order of the fp32 sums can
differ from oneDNN's bf16 kernels, as it differs between two CPUs that both have bf16 hardware. Every
other op (batch norm, activations, pooling) is left as autocast runs it.

`kernels(device)` picks the path (the environment variable VML_BF16_KERNELS overrides it) and records
name it (`train.machine_info`); `computed_as(path)` is the context a run trains in.
"""
from __future__ import annotations

import contextlib
import os
from typing import Any, Iterator

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from . import host

KERNELS = ("native", "fp32")
ENV = "VML_BF16_KERNELS"
_HARDWARE = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of an x86 CPU that multiplies bf16
_ISA_WITHOUT_BF16 = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX512_CORE", "AVX512_CORE_VNNI")  # oneDNN caps
_aten = torch.ops.aten
# the ops autocast runs in bf16 that multiply (forward and backward); all go to oneDNN or a GEMM on the CPU
_PRODUCTS = {_aten.convolution.default, _aten.convolution_backward.default, _aten.mm.default,
             _aten.addmm.default, _aten.bmm.default, _aten.baddbmm.default}


def kernels(device: str | torch.device = "cpu") -> str:
    """How bf16 products are computed on `device` here, "native" or "fp32": native on a GPU, and on a
    CPU whose flags name bf16 hardware while ONEDNN_MAX_CPU_ISA does not cap oneDNN below it; fp32
    elsewhere. VML_BF16_KERNELS=native|fp32 sets it (a benchmark, or a user who measured otherwise)."""
    env = os.environ.get(ENV)
    if env:
        if env not in KERNELS:
            raise ValueError(f"{ENV}={env!r} is not allowed; use one of {list(KERNELS)} (or leave it unset)")
        return env
    if torch.device(device).type != "cpu":
        return "native"
    capped = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper() in _ISA_WITHOUT_BF16
    has_hardware = any(f in host.cpu()[1] for f in _HARDWARE)
    return "native" if has_hardware and not capped else "fp32"


class _ProductsInFp32(TorchDispatchMode):
    """Every bf16 convolution or matrix product (and their backward) as fp32 kernels on the widened
    operands, each result rounded to bf16; anything else runs unchanged."""

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func not in _PRODUCTS or not any(_is_bf16(a) for a in args):
            return func(*args, **kwargs)
        out = func(*[a.float() if _is_bf16(a) else a for a in args],
                   **{k: v.float() if _is_bf16(v) else v for k, v in kwargs.items()})
        if isinstance(out, tuple):  # convolution_backward: (grad_input, grad_weight, grad_bias), some None
            return tuple(o.to(torch.bfloat16) if isinstance(o, torch.Tensor) else o for o in out)
        return out.to(torch.bfloat16)


def _is_bf16(a: Any) -> bool:
    return isinstance(a, torch.Tensor) and a.dtype == torch.bfloat16


@contextlib.contextmanager
def computed_as(path: str) -> Iterator[None]:
    """Within this context, bf16 products are computed by `path` ("native": untouched; "fp32": above)."""
    if path not in KERNELS:
        raise ValueError(f"bf16 kernels {path!r} are not known; use one of {list(KERNELS)}")
    if path == "native":
        yield
        return
    with _ProductsInFp32():
        yield
