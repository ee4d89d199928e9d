"""`vml.bf16`: bf16 products computed with fp32 kernels are a bf16 kernel's arithmetic (bf16 operands,
exact products, fp32 sums, one rounding to bf16), forward and backward; the path is chosen from the
CPU's flags, can be set, and is named in the record; a run on it repeats bitwise."""
import pytest
import torch
import torch.nn.functional as F

from vml import bf16, host
from vml.spec import profile_spec
from vml.train import train
from test_reproducibility import digest


def _rounded(t):
    return t.bfloat16().double()


def _agreement(got, ref_double):
    """Share of entries equal to the reference rounded to bf16, and the largest gap in bf16 ulps."""
    ref = ref_double.bfloat16()
    ulp = torch.finfo(torch.bfloat16).eps * ref.double().abs().clamp_min(2.0 ** -20)
    got = got.detach()
    return float((got == ref).double().mean()), float(((got.double() - ref.double()).abs() / ulp).max())


@pytest.fixture
def conv_case():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 16, 12, 12, generator=g).to(memory_format=torch.channels_last).requires_grad_()
    w = (0.1 * torch.randn(32, 16, 3, 3, generator=g)).requires_grad_()
    gout = torch.randn(8, 32, 12, 12, generator=g)
    return x, w, gout


def test_fp32_kernels_compute_a_convolution_as_a_bf16_kernel_does_forward_and_backward(conv_case):
    x, w, gout = conv_case
    with bf16.computed_as("fp32"):  # the backward inside the context too, as in a training step
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = F.conv2d(x, w, padding=1)
        (out.float() * gout).sum().backward()
    assert out.dtype == torch.bfloat16 and w.grad.dtype == torch.float32
    xb, wb, gb = _rounded(x.detach()), _rounded(w.detach()), _rounded(gout)
    refs = {"output": (out, F.conv2d(xb, wb, padding=1)),
            "input grad": (x.grad.bfloat16(), torch.nn.grad.conv2d_input(x.shape, wb, gb, padding=1)),
            "weight grad": (w.grad.bfloat16(), torch.nn.grad.conv2d_weight(xb, w.shape, gb, padding=1))}
    for name, (got, ref) in refs.items():
        same, worst = _agreement(got, ref)
        # fp32 sums of exact products differ from exact sums far below a bf16 ulp: a result rounded
        # once to bf16 equals the exact one rounded, but for a rare tie-breaking neighbour
        assert same > 0.999 and worst <= 1.0, (name, same, worst)
    # the check can fail: operands not rounded to bf16 first give another result on most entries
    assert _agreement(out, F.conv2d(x.detach().double(), w.detach().double(), padding=1))[0] < 0.9


def test_fp32_kernels_compute_a_linear_layer_as_a_bf16_kernel_does():
    g = torch.Generator().manual_seed(1)
    x, w, b = torch.randn(64, 96, generator=g), torch.randn(10, 96, generator=g), torch.randn(10, generator=g)
    with bf16.computed_as("fp32"), torch.autocast("cpu", dtype=torch.bfloat16):
        out = F.linear(x, w, b)
    assert out.dtype == torch.bfloat16
    same, worst = _agreement(out, _rounded(x) @ _rounded(w).T + _rounded(b))
    assert same > 0.99 and worst <= 1.0


def test_fp32_tensors_and_other_ops_are_left_as_they_are(conv_case):
    x, w, _ = conv_case
    with bf16.computed_as("fp32"):
        plain = F.conv2d(x, w, padding=1)
        relu = torch.relu(x.detach().bfloat16())
    assert plain.dtype == torch.float32 and torch.equal(plain, F.conv2d(x, w, padding=1))
    assert relu.dtype == torch.bfloat16


@pytest.mark.parametrize("flags, isa, expected", [
    ({"avx512f", "amx_bf16"}, None, "native"),
    ({"avx512f", "avx512_bf16"}, None, "native"),
    ({"avx512f"}, None, "fp32"),          # no bf16 multiplier: oneDNN would emulate one
    ({"avx512f", "amx_bf16"}, "SSE41", "fp32"),  # oneDNN capped below its bf16 kernels
    ({"avx512f", "amx_bf16"}, "AVX512_CORE_AMX", "native"),
])
def test_the_path_follows_the_cpus_bf16_hardware_and_onednns_cap(monkeypatch, flags, isa, expected):
    monkeypatch.delenv(bf16.ENV, raising=False)
    monkeypatch.setattr(host, "cpu", lambda: ("Some CPU", flags))
    if isa is None:
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    else:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", isa)
    assert bf16.kernels("cpu") == expected
    assert bf16.kernels("cuda") == "native"


def test_the_environment_sets_the_path_and_a_bad_value_is_named(monkeypatch):
    monkeypatch.setattr(host, "cpu", lambda: ("Some CPU", {"amx_bf16"}))
    monkeypatch.setenv(bf16.ENV, "fp32")
    assert bf16.kernels("cpu") == "fp32"
    monkeypatch.setenv(bf16.ENV, "fast")
    with pytest.raises(ValueError, match=r"VML_BF16_KERNELS='fast' is not allowed; use one of \['native', 'fp32'\]"):
        bf16.kernels("cpu")
    with pytest.raises(ValueError, match="'fast' are not known"):
        with bf16.computed_as("fast"):
            pass


def test_a_bf16_run_on_fp32_kernels_names_them_and_repeats_bitwise_across_a_resume(monkeypatch, tmp_path):
    monkeypatch.setenv(bf16.ENV, "fp32")
    spec = profile_spec("smoke", loss="vml", seed=1, epochs=2, precision="bf16", vml={"warmup_steps": 8})
    whole = train(spec, device="cpu")
    assert whole.machine["bf16_kernels"] == "fp32"
    assert train(spec, device="cpu", checkpoint_dir=tmp_path, stop_after=1) is None
    assert digest(train(spec, device="cpu", checkpoint_dir=tmp_path)) == digest(whole)
