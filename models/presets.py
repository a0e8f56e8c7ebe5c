"""Small from-scratch CNN presets, registered by name.

Each factory takes (in_chans, num_classes, image_size) and adapts to all three, so the
same preset trains on 28x28 grayscale digits and on 224x224 photos.
"""

import torch
from torch import nn

from models.registry import register_preset


def _flat_size(features: nn.Module, in_chans: int, image_size: int) -> int:
    """Number of features `features` produces for one image, found by a dry forward."""
    with torch.no_grad():
        probe = torch.zeros(1, in_chans, image_size, image_size)
        return features(probe).numel()


def _conv_relu(in_chans: int, out_chans: int) -> list[nn.Module]:
    return [nn.Conv2d(in_chans, out_chans, kernel_size=3, padding=1), nn.ReLU(inplace=True)]


def _tiny_network(blocks: list[nn.Module], in_chans: int, num_classes: int,
                  image_size: int) -> nn.Module:
    """The two conv blocks of the tiny presets, then their shared dense-128 head."""
    layers = list(blocks)
    if image_size > 64:
        # Without this a 224 px input flattens to 56*56*64 features and the first dense
        # layer alone would hold 25M weights; 8x8 keeps it at 0.5M whatever the input size.
        layers.append(nn.AdaptiveAvgPool2d(8))
    layers.append(nn.Flatten())
    features = nn.Sequential(*layers)
    head = nn.Sequential(
        nn.Linear(_flat_size(features, in_chans, image_size), 128),
        nn.ReLU(inplace=True),
        nn.Linear(128, num_classes),
    )
    return nn.Sequential(*features, *head)


@register_preset("tiny-cnn")
def tiny_cnn(in_chans: int, num_classes: int, image_size: int) -> nn.Module:
    """Keras CIFAR-10 tutorial net: two 3x3 conv+pool blocks (32, 64), dense 128."""
    blocks = [*_conv_relu(in_chans, 32), nn.MaxPool2d(2), *_conv_relu(32, 64), nn.MaxPool2d(2)]
    return _tiny_network(blocks, in_chans, num_classes, image_size)


@register_preset("tiny-bn")
def tiny_bn(in_chans: int, num_classes: int, image_size: int) -> nn.Module:
    """tiny-cnn with BatchNorm after each conv: the same cost, trains at higher rates."""
    blocks: list[nn.Module] = []
    for cin, cout in [(in_chans, 32), (32, 64)]:
        blocks += [nn.Conv2d(cin, cout, kernel_size=3, padding=1, bias=False),
                   nn.BatchNorm2d(cout), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
    return _tiny_network(blocks, in_chans, num_classes, image_size)


@register_preset("tiny-bn-pooled")
def tiny_bn_pooled(in_chans: int, num_classes: int, image_size: int) -> nn.Module:
    """tiny-bn with each block pooled straight after its conv (conv, pool, BatchNorm, ReLU): the
    BatchNorm and ReLU then see a quarter of the pixels, as in the CIFAR speed-run networks."""
    blocks: list[nn.Module] = []
    for cin, cout in [(in_chans, 32), (32, 64)]:
        blocks += [nn.Conv2d(cin, cout, kernel_size=3, padding=1, bias=False),
                   nn.MaxPool2d(2), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
    return _tiny_network(blocks, in_chans, num_classes, image_size)


@register_preset("small-cnn")
def small_cnn(in_chans: int, num_classes: int, image_size: int) -> nn.Module:
    """Keras cats-vs-dogs net: four 3x3 conv+pool blocks (32-128), dropout, dense 512."""
    layers: list[nn.Module] = []
    for cin, cout in [(in_chans, 32), (32, 64), (64, 128), (128, 128)]:
        layers += [*_conv_relu(cin, cout), nn.MaxPool2d(2)]
    if image_size // 16 > 6:
        # Same reason as tiny-cnn: cap the flattened map at 6x6x128 so the dense 512
        # layer stays at ~2.4M weights instead of growing with the image area.
        layers.append(nn.AdaptiveAvgPool2d(6))
    layers.append(nn.Flatten())
    features = nn.Sequential(*layers)
    head = nn.Sequential(
        nn.Dropout(0.5),
        nn.Linear(_flat_size(features, in_chans, image_size), 512),
        nn.ReLU(inplace=True),
        nn.Linear(512, num_classes),
    )
    return nn.Sequential(*features, *head)


def _conv_bn(in_chans: int, out_chans: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_chans, out_chans, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_chans),
        nn.ReLU(inplace=True),
    )


class Residual(nn.Module):
    """x + block(x)."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


def _residual(chans: int) -> Residual:
    return Residual(nn.Sequential(_conv_bn(chans, chans), _conv_bn(chans, chans)))


class Scale(nn.Module):
    """Multiplies by a constant."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale

    def extra_repr(self) -> str:
        return f"scale={self.scale}"


class ResNet9(nn.Module):
    """The ResNet-9 of the CIFAR-10 speed-runs (Myrtle / DAWNBench), any input size."""

    def __init__(
        self, in_chans: int, num_classes: int, width: float = 1.0, out_scale: float = 0.125
    ) -> None:
        super().__init__()
        w1, w2, w3, w4 = (max(8, round(c * width)) for c in (64, 128, 256, 512))
        self.prep = _conv_bn(in_chans, w1)
        self.layer1 = nn.Sequential(_conv_bn(w1, w2), nn.MaxPool2d(2), _residual(w2))
        self.layer2 = nn.Sequential(_conv_bn(w2, w3), nn.MaxPool2d(2))
        self.layer3 = nn.Sequential(_conv_bn(w3, w4), nn.MaxPool2d(2), _residual(w4))
        # Adaptive, not MaxPool2d(4): 28 px inputs reach layer3 as 3x3, not 4x4.
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.fc = nn.Linear(w4, num_classes, bias=False)
        # The small output scale keeps initial logits near zero, which the speed-runs
        # found trains faster than rescaling the loss or the learning rate.
        self.out_scale = Scale(out_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(self.prep(x))))
        return self.out_scale(self.fc(torch.flatten(self.pool(x), 1)))


@register_preset("resnet9")
def resnet9(in_chans: int, num_classes: int, image_size: int) -> nn.Module:
    """ResNet-9 of the CIFAR speed-runs: BatchNorm, widths 64-512, two residual blocks."""
    return ResNet9(in_chans, num_classes, width=1.0)


@register_preset("resnet9-small")
def resnet9_small(in_chans: int, num_classes: int, image_size: int) -> nn.Module:
    """ResNet-9 at half width (32-256): about a quarter of the parameters and FLOPs."""
    return ResNet9(in_chans, num_classes, width=0.5)
