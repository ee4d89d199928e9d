"""CIFAR networks (32x32 inputs, 3x3 stem, no early downsampling), each with a width multiplier.

`build(name, num_classes, width)` makes one of:

- ``resnet14``: He et al.'s CIFAR ResNet layout (6n+2 with n=2): a 3x3 stem conv, three stages of
  two torchvision `BasicBlock`s (strides 1, 2, 2), global average pooling and a linear head: 13 convs
  + 1 linear = 14 weight layers. Shortcuts that change shape are a 1x1 conv + BN (He's option B).
  The paper does not define ResNet-14; we take stage widths 64/128/256 at width=1.0 (2.78M
  parameters for 10 classes), because the paper's 94.95% on CIFAR-10 needs a net of that size.
  width=0.25 gives the classic 16/32/64 CIFAR ResNet-14 (0.18M parameters).
- ``vgg16``: VGG-16 with BatchNorm (torchvision's `make_layers`, config "D": 13 3x3 convs, 5
  max-pools) and one linear layer on the 1x1x512 map, the usual CIFAR head (14.7M at width=1.0).
- ``mobilenetv2``: torchvision's `MobileNetV2` built from its `InvertedResidual` blocks, with the
  CIFAR changes: stride 1 in the stem (no early downsampling) and in the sixth stage, so the maps
  go 32 -> 16 -> 8 -> 4 and end at 4x4; no dropout (2.24M at width=1.0). (The other common CIFAR
  layout, stride 1 in the second stage instead, keeps 32x32 maps with 6x expanded channels
  through stage 2 and trains ~2x slower on a CPU.)
- ``shufflenetv2``: torchvision's `ShuffleNetV2` (1.0x: stage repeats 4/8/4, channels
  24/116/232/464/1024) with a stride-1 stem and no max-pool (1.26M at width=1.0).
- ``fastnet``: the small fast network of the ``cpu`` profile, after Keller Jordan's airbench94: a
  frozen 2x2 patch-whitening stem (24 channels, from the training images' PCA), then three groups of
  conv3x3 - maxpool2 - BN - GELU - conv3x3 - BN - GELU, global max-pool, a linear head scaled by
  1/9. Group widths 64/128/256 x width.
- ``tiny``: a two-conv net for the synthetic smoke profile.

No network uses dropout or any other randomness at train time, so the only randomness in a run
is the weight initialisation (drawn from the run's init generator), the shuffling and the
augmentation. Parameter counts are listed by `param_count`.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.mobilenetv2 import MobileNetV2
from torchvision.models.resnet import BasicBlock
from torchvision.models.shufflenetv2 import ShuffleNetV2
from torchvision.models.vgg import make_layers

MODELS = ("resnet14", "vgg16", "mobilenetv2", "shufflenetv2", "fastnet", "tiny")


def _ch(c: float, divisor: int = 4, minimum: int = 8) -> int:
    """A channel count scaled by a width multiplier, rounded to a multiple of `divisor`."""
    return max(minimum, int(round(c / divisor)) * divisor)


# --------------------------------------------------------------------------------------- ResNet-14
class ResNet14(nn.Module):
    """CIFAR ResNet-14: stem conv3x3 + 3 stages x 2 BasicBlocks + linear (14 weight layers)."""

    def __init__(self, num_classes: int = 10, width: float = 1.0) -> None:
        super().__init__()
        w = [_ch(64 * width), _ch(128 * width), _ch(256 * width)]
        self.stem = nn.Sequential(nn.Conv2d(3, w[0], 3, padding=1, bias=False), nn.BatchNorm2d(w[0]),
                                  nn.ReLU(inplace=True))
        layers, cin = [], w[0]
        for i, c in enumerate(w):
            stride = 1 if i == 0 else 2
            down = None
            if stride != 1 or cin != c:
                down = nn.Sequential(nn.Conv2d(cin, c, 1, stride=stride, bias=False), nn.BatchNorm2d(c))
            layers += [BasicBlock(cin, c, stride=stride, downsample=down), BasicBlock(c, c)]
            cin = c
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        x = self.layers(self.stem(x))
        return self.fc(x.mean((2, 3)))  # global average pool (mean: deterministic backward on CUDA)


# ------------------------------------------------------------------------------------------ VGG-16
_VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


class VGG16(nn.Module):
    """CIFAR VGG-16 with BatchNorm: torchvision's config-"D" feature stack, 1x1 map, one linear."""

    def __init__(self, num_classes: int = 10, width: float = 1.0) -> None:
        super().__init__()
        cfg = [v if v == "M" else _ch(v * width) for v in _VGG16]
        self.features = make_layers(cfg, batch_norm=True)
        self.fc = nn.Linear(cfg[-2], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(torch.flatten(self.features(x), 1))


# ------------------------------------------------------------------------------------ MobileNetV2
class _MobileNetV2(MobileNetV2):
    def _forward_impl(self, x: Tensor) -> Tensor:
        # torchvision's adaptive_avg_pool2d has no deterministic CUDA backward; a mean has
        return self.classifier(self.features(x).mean((2, 3)))


def mobilenetv2(num_classes: int = 10, width: float = 1.0) -> nn.Module:
    """torchvision MobileNetV2 with CIFAR strides (stem and stage 6 at stride 1) and no dropout."""
    setting = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2],
               [6, 96, 3, 1], [6, 160, 3, 1], [6, 320, 1, 1]]
    net = _MobileNetV2(num_classes=num_classes, width_mult=width, inverted_residual_setting=setting,
                      round_nearest=4, dropout=0.0)
    net.features[0][0].stride = (1, 1)
    return net


# ----------------------------------------------------------------------------------- ShuffleNetV2
def shufflenetv2(num_classes: int = 10, width: float = 1.0) -> nn.Module:
    """torchvision ShuffleNetV2 (1.0x layout scaled by `width`) with a stride-1 stem, no max-pool."""
    chans = [24, _ch(116 * width), _ch(232 * width), _ch(464 * width), _ch(1024 * max(width, 0.5))]
    net = ShuffleNetV2([4, 8, 4], chans, num_classes=num_classes)
    net.conv1[0].stride = (1, 1)
    net.maxpool = nn.Identity()
    return net


# ---------------------------------------------------------------------------------------- FastNet
class _BN(nn.BatchNorm2d):
    """BatchNorm with a fixed unit scale (only the shift is learned), as in airbench."""

    def __init__(self, c: int) -> None:
        super().__init__(c, momentum=0.4, eps=1e-12)
        self.weight.requires_grad_(False)


class _ConvGroup(nn.Sequential):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.MaxPool2d(2), _BN(cout), nn.GELU(),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), _BN(cout), nn.GELU())


class FastNet(nn.Module):
    """airbench94-style net: whitened 2x2 stem, 3 conv groups, max-pool, linear head x 1/9."""

    def __init__(self, num_classes: int = 10, width: float = 1.0) -> None:
        super().__init__()
        w = [_ch(64 * width), _ch(128 * width), _ch(256 * width)]
        self.whiten = nn.Conv2d(3, 24, 2, padding=0, bias=True)
        self.whiten.weight.requires_grad_(False)
        self.groups = nn.Sequential(_ConvGroup(24, w[0]), _ConvGroup(w[0], w[1]), _ConvGroup(w[1], w[2]))
        self.fc = nn.Linear(w[2], num_classes, bias=False)
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and m is not self.whiten:
                # identity-like start (airbench): the first cin filters pass their input through
                nn.init.dirac_(m.weight[:m.in_channels])
        nn.init.zeros_(self.whiten.bias)

    @torch.no_grad()
    def init_from_data(self, x: Tensor, eps: float = 5e-4) -> None:
        """Set the frozen stem to the PCA whitening of 2x2 patches of `x` (normalised images)."""
        patches = x.float().unfold(2, 2, 1).unfold(3, 2, 1).transpose(1, 3).reshape(-1, 3 * 2 * 2)
        patches = patches - patches.mean(0)
        cov = patches.T @ patches / len(patches)
        evals, evecs = torch.linalg.eigh(cov.double())
        evals, evecs = evals.flip(0).float(), evecs.T.flip(0).float()
        w = (evecs / torch.sqrt(evals + eps)[:, None]).reshape(12, 3, 2, 2)
        self.whiten.weight.copy_(torch.cat([w, -w]).to(self.whiten.weight))

    def forward(self, x: Tensor) -> Tensor:
        x = F.gelu(self.whiten(x))
        x = self.groups(x)
        x = torch.amax(x, dim=(2, 3))
        return self.fc(x) / 9.0


# ------------------------------------------------------------------------------------------- tiny
class Tiny(nn.Module):
    """Two convs and a linear head: learns the synthetic dataset in a few steps."""

    def __init__(self, num_classes: int = 10, width: float = 1.0) -> None:
        super().__init__()
        c = _ch(16 * width)
        self.body = nn.Sequential(nn.Conv2d(3, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
                                  nn.MaxPool2d(4), nn.Conv2d(c, 2 * c, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(2 * c), nn.ReLU())
        self.fc = nn.Linear(2 * c, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.body(x).mean((2, 3)))


_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "resnet14": ResNet14, "vgg16": VGG16, "mobilenetv2": mobilenetv2, "shufflenetv2": shufflenetv2,
    "fastnet": FastNet, "tiny": Tiny,
}


def build(name: str, num_classes: int = 10, width: float = 1.0, generator: torch.Generator | None = None) -> nn.Module:
    """Build network `name`; with `generator`, every random initial weight is drawn from it.

    The global RNG is forked and reseeded from `generator` for the construction, so the
    initialisation depends on the generator alone and leaves the global RNG untouched.
    """
    if name not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}; use one of {MODELS}")
    if generator is None:
        return _BUILDERS[name](num_classes=num_classes, width=width)
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _BUILDERS[name](num_classes=num_classes, width=width)


def param_count(model: nn.Module) -> int:
    """Number of parameters (trainable and frozen)."""
    return sum(p.numel() for p in model.parameters())
