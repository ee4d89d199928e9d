"""The gpu path without a GPU (issue 30): devices explicit, records that name the GPU, no host sync and no
op without a deterministic CUDA kernel inside an epoch, every gpu-profile network at full width through the
trainer, cross-device checkpoints refused; and, marked `gpu`, the same on a GPU (skipped without one)."""
from __future__ import annotations

import types

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from vml import data as vdata
from vml import device as devices
from vml import train as vtrain
from vml.cli import main
from vml.spec import ARCH_SETTINGS, ARCHITECTURES, profile_spec
from vml.train import ForeignCheckpoint, machine_info, train

from test_train import assert_same_record


# ------------------------------------------------------------------ what an epoch may not do on a GPU

# ops that make the host wait for the device: a value read on the host (`.item()`, `float()`, `bool()`,
# `int()` dispatch to _local_scalar_dense) and ops whose output size depends on the data
HOST_SYNCS = {"_local_scalar_dense", "nonzero", "masked_select", "unique", "_unique2", "bincount"}
# ops without a deterministic CUDA kernel: under torch.use_deterministic_algorithms(True) they raise on a
# GPU (torch.use_deterministic_algorithms' docs), so a run that reaches one crashes there, not here
NONDETERMINISTIC_ON_CUDA = {
    "avg_pool3d_backward", "_adaptive_avg_pool2d_backward", "_adaptive_avg_pool3d_backward",
    "adaptive_max_pool2d_backward", "adaptive_max_pool3d_backward", "fractional_max_pool2d_backward",
    "fractional_max_pool3d_backward", "max_unpool2d", "max_unpool3d",
    "reflection_pad1d_backward", "reflection_pad2d_backward", "reflection_pad3d_backward",
    "upsample_linear1d_backward", "upsample_bilinear2d_backward", "upsample_bicubic2d_backward",
    "upsample_trilinear3d_backward", "_upsample_bilinear2d_aa_backward", "_upsample_bicubic2d_aa_backward",
    "nll_loss2d_forward", "nll_loss2d_backward", "_ctc_loss_backward", "_embedding_bag_backward",
    "_embedding_bag_dense_backward", "put_", "put", "histc", "kthvalue", "median", "nanmedian",
    "grid_sampler_2d_backward", "grid_sampler_3d_backward", "index_reduce", "index_reduce_"}


class ForbiddenOp(AssertionError):
    pass


class GpuEpochWatch(TorchDispatchMode):
    """Fails on an op that syncs the host with a GPU (`HOST_SYNCS`, a copy to another device) or that has
    no deterministic CUDA kernel (`NONDETERMINISTIC_ON_CUDA`, scatter_reduce with prod, bincount with
    weights), as the training loop calls them on the CPU, where neither shows."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__
        if name in HOST_SYNCS or (name.startswith("index") and any(  # x[mask]: a nonzero inside
                isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8) for i in _indices(args))):
            raise ForbiddenOp(f"{func}: syncs the host with the device")
        if name in NONDETERMINISTIC_ON_CUDA or (name.startswith("scatter_reduce") and "prod" in map(str, args)):
            raise ForbiddenOp(f"{func}: no deterministic CUDA kernel")
        if name == "_to_copy" and kwargs.get("device") is not None and torch.device(kwargs["device"]) != args[0].device:
            raise ForbiddenOp(f"{func}: a copy to {kwargs['device']}")
        if name == "copy_" and isinstance(args[1], torch.Tensor) and args[0].device != args[1].device:
            raise ForbiddenOp(f"{func}: a copy from {args[1].device} to {args[0].device}")
        return func(*args, **kwargs)


def _indices(args):
    return args[1] if len(args) > 1 and isinstance(args[1], (list, tuple)) else ()


@pytest.fixture
def watched_epochs(monkeypatch):
    """Every epoch of `train` (its SGD steps, from the plan to the per-iteration log) under `GpuEpochWatch`,
    with the controller deferring its non-finite check to the end of the epoch, as it does on a GPU."""
    epoch, criterion, seen = vtrain._train_epoch, vtrain._criterion, []

    def watched(run, bar, trace):
        seen.append(run.spec)
        with GpuEpochWatch():
            return epoch(run, bar, trace)

    def deferring(spec, device):
        out = criterion(spec, device)
        out[2].defer_nonfinite = True
        return out

    monkeypatch.setattr(vtrain, "_train_epoch", watched)
    monkeypatch.setattr(vtrain, "_criterion", deferring)
    return seen


def test_the_watch_catches_host_syncs_copies_and_nondeterministic_ops():
    x = torch.arange(16.0, requires_grad=True)
    d = x.detach()
    for bad in (lambda: d.sum().item(), lambda: float(d.sum()), lambda: bool(d.sum() > 0), lambda: int(d[0]),
                lambda: d[d > 2], lambda: d.nonzero(), lambda: d.to("meta"), lambda: torch.histc(d, bins=3),
                lambda: torch.zeros(16).put_(torch.tensor([1]), torch.tensor([1.0])),
                lambda: torch.nn.functional.adaptive_avg_pool2d(x.view(1, 1, 4, 4), 2).sum().backward(),
                lambda: torch.nn.functional.nll_loss(x.view(1, 2, 2, 4), torch.zeros(1, 2, 4, dtype=torch.long)),
                lambda: torch.nn.functional.interpolate(x.view(1, 1, 16), scale_factor=2, mode="linear").sum()
                .backward()):
        with pytest.raises(ForbiddenOp), GpuEpochWatch():
            bad()
    with GpuEpochWatch():  # a mean is the deterministic stand-in for adaptive pooling (vml.models)
        x.view(1, 1, 4, 4).mean((2, 3)).sum().backward()
        d[torch.tensor([1, 2])]  # an integer index: no sync


@pytest.mark.slow  # trains (seconds)
@pytest.mark.parametrize("loss", ["base", "vml"])
def test_an_epoch_of_the_smoke_spec_never_waits_for_the_device(watched_epochs, loss):
    spec = profile_spec("smoke", loss=loss, epochs=2, vml={"warmup_steps": 2})
    rec = train(spec, data=SMOKE_DATA)
    assert len(watched_epochs) == 2 and len(rec.iters["loss"]) == 8  # both epochs' 4 steps ran under the watch


GPU_DATA = vdata.synthetic(n_train=8, n_test=8, num_classes=10, seed=3)
SMOKE_DATA = vdata.synthetic(n_train=256, n_test=64, seed=1)


@pytest.mark.slow  # trains (seconds)
@pytest.mark.parametrize("model", ARCHITECTURES)
def test_every_gpu_network_at_full_width_takes_its_steps_through_the_trainer(watched_epochs, model):
    # the gpu profile's own spec (full width, bf16, its optimiser) at batch 8, on the CPU: the same code
    # that runs on CUDA, one step under the watch, then the evaluation, EMA and TTA
    spec = profile_spec("gpu", **ARCH_SETTINGS["gpu"][model], model=model, loss="vml", batch_size=8, epochs=1,
                        device="cpu")
    assert spec.width == 1.0 and spec.precision == "bf16"
    rec = train(spec, data=GPU_DATA)
    assert watched_epochs == [spec] and rec.steps_per_epoch == 1
    assert np.isfinite(rec.iters["loss"]).all() and rec.n_params > 1e6


# ------------------------------------------------------------------ devices explicit

@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_gpu_profile_without_cuda_ends_in_one_line_naming_cuda(no_cuda, capsys):
    assert main(["train", "--profile", "gpu", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("python -m vml train: error: the gpu profile needs CUDA, and ")
    assert "--device cpu" in err[0]
    assert main(["train", "--profile", "smoke", "--device", "gpu0"]) == 2
    assert capsys.readouterr().err.strip() == ("python -m vml train: error: device 'gpu0' is not allowed; "
                                               "use cpu, cuda or cuda:N")


def test_a_run_never_trains_on_a_device_of_the_other_class(no_cuda):
    with pytest.raises(devices.NoCuda, match="needs CUDA"):
        train(profile_spec("smoke", device="cuda"), data=GPU_DATA)
    with pytest.raises(ValueError, match=r"device 'cuda:0' is not of the class .* trains on \(cpu;"):
        train(profile_spec("smoke"), device="cuda:0")  # a cpu run (the cpu store's key) is never run on CUDA
    with pytest.raises(ValueError, match=r"device 'cpu' is not of the class .* trains on \(cuda;"):
        train(profile_spec("smoke", device="cuda"), device="cpu")


def test_cuda_index_beyond_the_visible_gpus_is_named(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert devices.resolve("cuda", "cuda:1") == torch.device("cuda:1")
    with pytest.raises(ValueError, match=r"device 'cuda:2' is not here: torch sees 2 CUDA device\(s\), cuda:0 to "):
        devices.resolve("cuda", "cuda:2")


@pytest.mark.slow  # trains (seconds)
def test_a_checkpoint_from_another_device_type_is_refused_once_then_the_run_starts_afresh(tmp_path):
    spec = profile_spec("smoke", seed=2, epochs=2)
    assert train(spec, checkpoint_dir=tmp_path, stop_after=1) is None
    path = tmp_path / f"{spec.key()}.pt"
    state = torch.load(path, weights_only=False)
    state.pop("device", None)  # as written before checkpoints named their device, by a run on CUDA:
    state["gens"] = {s: torch.zeros(16, dtype=torch.uint8) for s in ("shuf", "aug")}  # 16-byte generator states
    torch.save(state, path)
    with pytest.raises(ForeignCheckpoint) as e:
        train(spec, checkpoint_dir=tmp_path)
    assert str(e.value) == (f"checkpoint {path.name} was written on cuda, and this run trains on cpu: its random "
                            f"streams cannot go on here; moved it to {path.name}.cuda, so the run starts afresh "
                            "when it is tried again")
    assert not path.exists() and (tmp_path / f"{path.name}.cuda").exists()
    assert_same_record(train(spec, checkpoint_dir=tmp_path), train(spec))  # tried again: from the start


@pytest.mark.slow  # trains (seconds)
def test_checkpoints_after_the_first_epoch_then_at_most_every_interval(tmp_path, monkeypatch):
    saved = []
    save = vtrain._save_checkpoint
    monkeypatch.setattr(vtrain, "_save_checkpoint", lambda run, path: (saved.append(run.epoch), save(run, path)))
    spec = profile_spec("smoke", seed=5, epochs=4)
    train(spec, checkpoint_dir=tmp_path)
    assert saved == [1]  # seconds per epoch here: the first epoch's checkpoint only
    monkeypatch.setattr(vtrain, "CHECKPOINT_EVERY_S", 0.0)
    saved.clear()
    train(spec, checkpoint_dir=tmp_path)
    assert saved == [1, 2, 3]  # an interval of 0: after every epoch but the last


# ------------------------------------------------------------------ records that name the GPU

def test_a_cuda_record_names_its_gpu_cuda_cudnn_driver_and_flags(monkeypatch):
    props = types.SimpleNamespace(name="NVIDIA H100 80GB HBM3", major=9, minor=0, total_memory=85_520_809_984)
    monkeypatch.setattr(devices, "_properties", lambda device: props)
    monkeypatch.setattr(devices, "_cudnn_version", lambda: 91002)
    monkeypatch.setattr(devices, "_driver_version", lambda: "570.124.06")
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    devices.fp32_everywhere()
    m = machine_info("cuda:0")
    assert m["bf16_kernels"] == "native" and m["cpu"] == machine_info()["cpu"]  # today's CPU fields beside
    assert m["cuda"] == {"gpu": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0", "gpu_memory_gib": 79.6,
                         "cuda": "12.8", "cudnn": 91002, "driver": "570.124.06",
                         "matmul_fp32_precision": "ieee", "cudnn_conv_fp32_precision": "ieee",
                         "cudnn_deterministic": torch.backends.cudnn.deterministic,
                         "cudnn_benchmark": torch.backends.cudnn.benchmark,
                         "deterministic_algorithms": torch.are_deterministic_algorithms_enabled()}
    assert "cuda" not in machine_info("cpu")  # a CPU record is as before


def test_training_turns_tf32_off_so_fp32_means_fp32():
    conv, matmul = torch.backends.cudnn.conv, torch.backends.cuda.matmul
    before = conv.fp32_precision, matmul.fp32_precision
    conv.fp32_precision = matmul.fp32_precision = "tf32"  # cuDNN's default; allowed in matmuls by users
    try:
        vtrain._setup_determinism(torch.device("cpu"))  # what `train` does first, on any device
        flags = devices.numeric_flags()
    finally:
        conv.fp32_precision, matmul.fp32_precision = before
    assert (flags["cudnn_conv_fp32_precision"], flags["matmul_fp32_precision"]) == ("ieee", "ieee")
    assert flags["cudnn_deterministic"] and not flags["cudnn_benchmark"] and flags["deterministic_algorithms"]


# ------------------------------------------------------------------ on a GPU (marked; skipped without one)

def _tiny_gpu_spec(**kw):
    return profile_spec("gpu", width=0.25, epochs=2, batch_size=64, **kw)


@pytest.mark.gpu
def test_on_a_gpu_a_run_repeats_bitwise_and_across_a_resume(tmp_path, monkeypatch):
    ds = vdata.synthetic(n_train=512, n_test=256, num_classes=10, seed=1)
    spec = _tiny_gpu_spec(loss="vml", vml={"warmup_steps": 5})
    a = train(spec, data=ds)
    assert_same_record(a, train(spec, data=ds))
    monkeypatch.setattr(vtrain, "CHECKPOINT_EVERY_S", 0.0)
    assert train(spec, data=ds, checkpoint_dir=tmp_path, stop_after=1) is None
    assert_same_record(a, train(spec, data=ds, checkpoint_dir=tmp_path))
    assert a.device.startswith("cuda (") and a.machine["cuda"]["cudnn_conv_fp32_precision"] == "ieee"
    assert a.machine["cuda"]["compute_capability"] == "{}.{}".format(*torch.cuda.get_device_capability())


@pytest.mark.gpu
def test_on_a_gpu_an_epoch_never_syncs_the_host(monkeypatch):
    ds = vdata.synthetic(n_train=512, n_test=256, num_classes=10, seed=1).to("cuda")
    epoch = vtrain._train_epoch

    def strict(run, bar, trace):
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            return epoch(run, bar, trace)
        finally:
            torch.cuda.set_sync_debug_mode("default")

    monkeypatch.setattr(vtrain, "_train_epoch", strict)
    train(_tiny_gpu_spec(loss="vml"), data=ds)


@pytest.mark.gpu
@pytest.mark.parametrize("model", ARCHITECTURES)
def test_on_a_gpu_every_network_trains_a_step_under_deterministic_algorithms(model):
    ds = vdata.synthetic(n_train=16, n_test=8, num_classes=10, seed=3)
    spec = profile_spec("gpu", model=model, batch_size=8, epochs=1)
    rec = train(spec, data=ds)
    assert np.isfinite(rec.iters["loss"]).all() and rec.machine["cuda"]["deterministic_algorithms"]
