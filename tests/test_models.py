"""vml.models: every network builds, runs, trains a step, and draws its weights from its generator only."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from vml import models

SMALL = {"resnet14": 0.25, "vgg16": 0.125, "mobilenetv2": 0.25, "shufflenetv2": 0.25, "fastnet": 0.25, "tiny": 1.0}


@pytest.mark.parametrize("name", models.MODELS)
@pytest.mark.parametrize("num_classes", [10, 100])
def test_forward_backward_shapes(name, num_classes):
    net = models.build(name, num_classes, SMALL[name], generator=torch.Generator().manual_seed(0))
    net = net.to(memory_format=torch.channels_last)
    x = torch.randn(4, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    out = net(x)
    assert out.shape == (4, num_classes)
    out.square().mean().backward()
    grads = [p.grad for p in net.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)


def test_documented_parameter_counts():
    # the counts stated in the module docstring and the book
    assert models.param_count(models.build("resnet14", 10, 1.0)) == 2_777_674
    assert models.param_count(models.build("resnet14", 10, 0.25)) == 175_258
    assert models.param_count(models.build("vgg16", 10, 1.0)) == 14_728_266
    assert models.param_count(models.build("mobilenetv2", 10, 1.0)) == 2_236_682
    assert models.param_count(models.build("shufflenetv2", 10, 1.0)) == 1_263_854


def test_resnet14_has_14_weight_layers():
    net = models.build("resnet14", 10, 0.25)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert len(convs) + len(linears) == 14


@pytest.mark.parametrize("name", ["resnet14", "mobilenetv2", "fastnet"])
def test_init_comes_from_the_generator_alone(name):
    def weights(seed, global_seed):
        torch.manual_seed(global_seed)
        net = models.build(name, 10, SMALL[name], generator=torch.Generator().manual_seed(seed))
        return torch.cat([p.detach().flatten() for p in net.parameters()])

    state = torch.random.get_rng_state()
    a = weights(1, 0)
    assert torch.equal(a, weights(1, 99))           # the global RNG does not matter
    assert not torch.equal(a, weights(2, 0))        # the generator does
    torch.random.set_rng_state(state)


def test_build_leaves_the_global_rng_alone():
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    models.build("resnet14", 10, 0.25, generator=torch.Generator().manual_seed(1))
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("name", models.MODELS)
def test_no_randomness_in_forward(name):
    net = models.build(name, 10, SMALL[name])
    net.train()
    x = torch.randn(8, 3, 32, 32)
    torch.manual_seed(0)
    a = net(x)
    torch.manual_seed(1)
    b = net(x)
    assert torch.equal(a, b)  # no dropout or other train-time randomness


def test_cifar_variants_keep_resolution_in_the_stem():
    x = torch.randn(1, 3, 32, 32)
    for name in ("resnet14", "mobilenetv2", "shufflenetv2"):
        net = models.build(name, 10, SMALL[name]).eval()
        first = next(m for m in net.modules() if isinstance(m, nn.Conv2d))
        assert first.kernel_size == (3, 3) and first.stride == (1, 1)
    mb = models.build("mobilenetv2", 10, 0.25).eval()
    assert mb.features(x).shape[-1] == 4  # 32 -> 4 overall, stride 1 in the stem


def test_fastnet_whitening_stem():
    net = models.build("fastnet", 10, 0.25)
    x = torch.randn(64, 3, 32, 32) * torch.tensor([1.0, 2.0, 0.5]).view(1, 3, 1, 1)
    net.init_from_data(x)
    assert not net.whiten.weight.requires_grad
    out = net.whiten(x)  # whitened patches: channel variances near 1 for the leading components
    var = out.var((0, 2, 3))
    assert torch.isfinite(var).all() and (var[:3] - 1).abs().max() < 0.2


def test_unknown_model():
    with pytest.raises(ValueError, match="unknown model 'resnet99'"):
        models.build("resnet99")
