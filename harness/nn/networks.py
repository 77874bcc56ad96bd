"""Network architectures: ResNet-34 with the CIFAR stem, and the CPU-sized candidates.

``ARCHITECTURES`` is the registry by name; :func:`build_network` builds from it. The CPU-sized
networks are the candidates of ``python -m harness frontier`` (:mod:`harness.experiments.frontier`):
the quick profile's small CNN, an airbench-style network (Keller Jordan's airbench94 block:
conv-pool-BN-GELU-conv-BN-GELU, global max-pool, a scaled linear head) at a fraction of its
width, and the CIFAR ResNet-20 of He et al. (2016).
"""

from __future__ import annotations

import torch
from torch import nn


def resnet34_cifar(num_classes: int) -> nn.Module:
    """torchvision's ResNet-34 with the CIFAR stem: a 3x3 stride-1 first convolution, no max-pool.

    The ImageNet stem (7x7 stride 2, then max-pool) shrinks a 32x32 image to 8x8 before the first
    residual stage; the CIFAR stem keeps 32x32, as in the CIFAR ResNets the paper builds on.
    """
    from torchvision.models import resnet34

    net = resnet34(num_classes=num_classes)
    net.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    return net


def small_cnn(num_classes: int, width: int = 32) -> nn.Module:
    """Three conv3x3-BN-ReLU-maxpool blocks (width, 2x, 4x channels), global pool, linear."""
    layers, channels = [], 3
    for out in (width, 2 * width, 4 * width):
        layers += [nn.Conv2d(channels, out, 3, padding=1, bias=False), nn.BatchNorm2d(out),
                   nn.ReLU(inplace=True), nn.MaxPool2d(2)]
        channels = out
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes))


class AirbenchBlock(nn.Sequential):
    """airbench's block: conv3x3, max-pool 2, BN, GELU, conv3x3, BN, GELU."""

    def __init__(self, channels_in: int, channels_out: int):
        super().__init__(nn.Conv2d(channels_in, channels_out, 3, padding=1, bias=False), nn.MaxPool2d(2),
                         nn.BatchNorm2d(channels_out), nn.GELU(),
                         nn.Conv2d(channels_out, channels_out, 3, padding=1, bias=False),
                         nn.BatchNorm2d(channels_out), nn.GELU())


class ScaledLinear(nn.Linear):
    """airbench's head: a bias-free linear layer whose logits are scaled down (x 1/9 there), so
    that the first steps' softmax is not saturated by max-pooled features."""

    SCALE = 1 / 9

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return super().forward(features) * self.SCALE


def airbench_cnn(num_classes: int, width: int = 32) -> nn.Module:
    """An airbench94-shaped network at ``width``: a 2x2 stem conv of ``3 x width / 8`` channels
    (airbench's whitening layer's shape, initialised at random here: the whitening init needs the
    training images, which a network's builder never sees), then three blocks of ``(1, 4, 4) x
    width`` channels, global max-pool, scaled linear head. Width 64 is airbench94's own (24, 64,
    256, 256). A flat ``nn.Sequential``, so that the feature extractor (:func:`split_classifier`)
    is everything before the head."""
    stem = max(8, 3 * width // 8)
    return nn.Sequential(nn.Conv2d(3, stem, 2, padding=0, bias=False), nn.BatchNorm2d(stem), nn.GELU(),
                         AirbenchBlock(stem, width), AirbenchBlock(width, 4 * width),
                         AirbenchBlock(4 * width, 4 * width), nn.AdaptiveMaxPool2d(1), nn.Flatten(),
                         ScaledLinear(4 * width, num_classes, bias=False))


class BasicBlock(nn.Module):
    """The CIFAR ResNet's block: two conv3x3-BN, identity shortcut (a strided 1x1 conv-BN where
    the shape changes: option B of He et al.)."""

    def __init__(self, channels_in: int, channels_out: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels_in, channels_out, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(channels_out), nn.ReLU(inplace=True),
            nn.Conv2d(channels_out, channels_out, 3, padding=1, bias=False), nn.BatchNorm2d(channels_out))
        self.shortcut = nn.Identity() if stride == 1 and channels_in == channels_out else nn.Sequential(
            nn.Conv2d(channels_in, channels_out, 1, stride=stride, bias=False), nn.BatchNorm2d(channels_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


def resnet20(num_classes: int, width: int = 16) -> nn.Module:
    """CIFAR ResNet-20 (He et al. 2016, section 4.2): a conv3x3 stem, three stages of three
    blocks at ``(1, 2, 4) x width`` channels (width 16: 0.27 M parameters), global average pool,
    linear. Flat ``nn.Sequential`` for :func:`split_classifier`."""
    layers, channels = [nn.Conv2d(3, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                        nn.ReLU(inplace=True)], width
    for stage, out in enumerate((width, 2 * width, 4 * width)):
        for block in range(3):
            layers.append(BasicBlock(channels, out, 2 if stage and not block else 1))
            channels = out
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes))


# name -> (builder(num_classes, width), its default width; None: it takes no width)
ARCHITECTURES = {
    "resnet34": (lambda num_classes, width: resnet34_cifar(num_classes), None),
    "small_cnn": (small_cnn, 32),
    "airbench_cnn": (airbench_cnn, 32),
    "resnet20": (resnet20, 16),
}


def build_network(arch: str, num_classes: int, width: int | None = None) -> nn.Module:
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {sorted(ARCHITECTURES)}")
    builder, default_width = ARCHITECTURES[arch]
    return builder(num_classes, width or default_width)


def split_classifier(net: nn.Module) -> tuple[nn.Module, str]:
    """The network's feature extractor (sharing its parameters) and the name of its final linear
    layer: everything up to the pooled features, for SimCLR, linear probes and Laplace."""
    if isinstance(net, nn.Sequential):  # small_cnn
        return net[:-1], str(len(net) - 1)
    children = [m for name, m in net.named_children() if name != "fc"]  # torchvision ResNet
    return nn.Sequential(*children, nn.Flatten()), "fc"


def replace_classifier(net: nn.Module, num_classes: int) -> None:
    """A freshly initialized final linear layer (for fine-tuning a pre-trained encoder)."""
    _, name = split_classifier(net)
    old = net.get_submodule(name)
    set_classifier(net, name, nn.Linear(old.in_features, num_classes).to(old.weight.device))


class CosineClassifier(nn.Module):
    """A cosine classifier: the logit of class c is the cosine between the features and the
    class's weight vector (both L2-normalized), so logits lie in [-1, 1] (Cao et al. 2019's
    ``NormedLinear``). A loss scales them (LDAM: by s = 30). No bias; ``weight`` is
    ``(classes, features)`` as in :class:`torch.nn.Linear`."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        # nn.Linear's initialization: only the directions of the rows matter here.
        self.weight = nn.Parameter(nn.Linear(in_features, out_features, bias=False).weight.detach().clone())

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        import torch.nn.functional as F

        # In fp32 even under bf16 autocast: LDAM scales these cosines by 30.
        with torch.autocast(features.device.type, enabled=False):
            return F.linear(F.normalize(features.float(), dim=1), F.normalize(self.weight.float(), dim=1))


def use_cosine_classifier(net: nn.Module) -> None:
    """Replace the network's final linear layer with a :class:`CosineClassifier` of the same
    shape, on the same device (initialized from the global torch generator: a run's seed)."""
    _, name = split_classifier(net)
    old = net.get_submodule(name)
    set_classifier(net, name, CosineClassifier(old.in_features, old.out_features).to(old.weight.device))


def set_classifier(net: nn.Module, name: str, layer: nn.Module) -> None:
    if isinstance(net, nn.Sequential):
        net[int(name)] = layer
    else:
        setattr(net, name, layer)


def parameters_digest(net: nn.Module) -> str:
    """A short sha256 of a network's parameters and buffers, in order: the fingerprint of its
    initialization (a run record's ``fingerprints``; another seed must give another digest)."""
    import hashlib

    h = hashlib.sha256()
    for tensor in net.state_dict().values():
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


__all__ = ["CosineClassifier", "build_network", "use_cosine_classifier", "count_parameters", "parameters_digest", "replace_classifier", "resnet34_cifar", "small_cnn",
           "split_classifier", "torch"]
