"""Network architectures: ResNet-34 with the CIFAR stem, and a small CNN for CPU-sized runs."""

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


def build_network(arch: str, num_classes: int, width: int | None = None) -> nn.Module:
    if arch == "resnet34":
        return resnet34_cifar(num_classes)
    if arch == "small_cnn":
        return small_cnn(num_classes, width or 32)
    raise ValueError(f"unknown architecture {arch!r}; choose resnet34 or small_cnn")


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
