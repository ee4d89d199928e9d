"""Where a run trains, and what a record says about a GPU (imports nothing from vml but the bottom layer).

A run's device class (`RunSpec.device`: ``cpu`` or ``cuda``) is part of its key: a CUDA run draws its
shuffle and augmentation from generators on the GPU and computes with other kernels, so it is another
run than the CPU run of the same spec. `resolve` turns a spec's class and an optional request
(``cpu``, ``cuda``, ``cuda:N``) into the device, and refuses, in one line, a request of the other class
or a CUDA run where torch sees no CUDA device: nothing falls back to the CPU silently.

`cuda_info` is what a record of a CUDA run adds to its `machine` entry (GPU model, compute capability,
memory, CUDA, cuDNN and driver versions, the TF32 and cuDNN flags); `gpus_visible` lists the GPUs
worker processes are spread over (`vml.runner`). Each CUDA query is a small function of its own, so
that tests without a GPU can stand in for them.
"""
from __future__ import annotations

import os
import re
import subprocess
from typing import Any

import torch

CLASSES = ("cpu", "cuda")


class NoCuda(ValueError):
    """A CUDA run was asked for where torch sees no CUDA device."""


def why_no_cuda() -> str:
    built = torch.version.cuda
    if built is None:
        return f"this torch ({torch.__version__}) is built without CUDA"
    return f"torch {torch.__version__} (CUDA {built}) sees no CUDA device here"


def parse(request: str) -> torch.device:
    """`request` (``cpu``, ``cuda``, ``cuda:N``) as a torch device; anything else raises one line."""
    if not re.fullmatch(r"cpu|cuda(:\d+)?", request or ""):
        raise ValueError(f"device {request!r} is not allowed; use cpu, cuda or cuda:N")
    return torch.device(request)


def resolve(device_class: str, request: str | torch.device | None = None, what: str = "this run",
            hint: str = "") -> torch.device:
    """The device a run of `device_class` trains on: `request` when given (it must be of that class),
    else the class itself (``cuda``: the current CUDA device). A CUDA device where torch sees none raises
    `NoCuda`, naming why (and `hint`, what else the caller may do); a request of the other class raises
    ValueError."""
    if device_class not in CLASSES:
        raise ValueError(f"device class {device_class!r} is not allowed; use one of {list(CLASSES)}")
    dev = parse(str(request)) if request is not None else torch.device(device_class)
    if dev.type != device_class:
        raise ValueError(f"device {str(request)!r} is not of the class {what} trains on ({device_class}; the device "
                         "class is part of a run's key, so a CPU and a CUDA run are different runs)")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise NoCuda(f"{what} needs CUDA, and {why_no_cuda()}; ask the job for a GPU (e.g. --gpus 1){hint}")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {str(request)!r} is not here: torch sees {torch.cuda.device_count()} CUDA "
                             f"device(s), cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    return dev


# ---------------------------------------------------------------- numerics: TF32 off, flags recorded

def fp32_everywhere() -> None:
    """fp32 products computed in fp32 (IEEE), never in TF32: an `fp32` run on an Ampere-or-newer GPU
    would otherwise run its convolutions in TF32 (cuDNN's default) while its record says fp32. bf16
    autocast's products are bf16 either way. (The new API only: mixing it with `allow_tf32` raises.)"""
    torch.backends.cuda.matmul.fp32_precision = "ieee"
    torch.backends.cudnn.conv.fp32_precision = "ieee"
    torch.backends.cudnn.rnn.fp32_precision = "ieee"


def numeric_flags() -> dict[str, Any]:
    """The flags that decide how CUDA computes: fp32 precision of matmuls and cuDNN convolutions
    ("ieee": fp32; "tf32": TF32), cuDNN deterministic and benchmark, and deterministic algorithms."""
    return {"matmul_fp32_precision": torch.backends.cuda.matmul.fp32_precision,
            "cudnn_conv_fp32_precision": torch.backends.cudnn.conv.fp32_precision,
            "cudnn_deterministic": torch.backends.cudnn.deterministic,
            "cudnn_benchmark": torch.backends.cudnn.benchmark,
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled()}


# ---------------------------------------------------------------- what a record says about a GPU

def _properties(device: torch.device) -> Any:
    return torch.cuda.get_device_properties(device)


def _cudnn_version() -> int | None:
    return torch.backends.cudnn.version()


def _driver_version() -> str | None:
    """The NVIDIA driver's version (torch does not report it): /proc/driver/nvidia/version, else nvidia-smi."""
    try:
        with open("/proc/driver/nvidia/version") as f:
            m = re.search(r"Kernel Module\s+(?:for \S+\s+)?([\d.]+)", f.read())
            if m:
                return m.group(1)
    except OSError:
        pass
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
        return out.stdout.split("\n")[0].strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def cuda_info(device: torch.device) -> dict[str, Any]:
    """What tells two GPUs' numerics apart: model, compute capability, memory, CUDA (torch's build),
    cuDNN and driver versions, and the flags of `numeric_flags`."""
    p = _properties(device)
    return {"gpu": p.name, "compute_capability": f"{p.major}.{p.minor}",
            "gpu_memory_gib": round(p.total_memory / 2**30, 1), "cuda": torch.version.cuda,
            "cudnn": _cudnn_version(), "driver": _driver_version(), **numeric_flags()}


def gpus_visible() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES names them (indices or UUIDs); without that
    variable, 0 to torch.cuda.device_count() - 1. Empty where torch sees none."""
    if not torch.cuda.is_available():
        return []
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None and env.strip():
        return [g.strip() for g in env.split(",") if g.strip()][:torch.cuda.device_count()]
    return [str(i) for i in range(torch.cuda.device_count())]
