"""The network registry: every architecture builds, trains a step, splits into features and
head, and takes its width (tiny inputs)."""

import pytest
import torch

from harness.nn import networks

CPU_SIZED = sorted(set(networks.ARCHITECTURES) - {"resnet34"})


@pytest.mark.parametrize("arch", CPU_SIZED)
def test_every_cpu_sized_network_builds_steps_and_splits(arch):
    torch.manual_seed(0)
    net = networks.build_network(arch, 10, 8).to(memory_format=torch.channels_last)
    x = torch.randn(4, 3, 16, 16).contiguous(memory_format=torch.channels_last)
    logits = net(x)
    assert logits.shape == (4, 10)
    torch.nn.functional.cross_entropy(logits, torch.arange(4)).backward()
    assert all(p.grad is not None for p in net.parameters())
    features, head = networks.split_classifier(net)
    assert features(x).shape == (4, net.get_submodule(head).in_features)
    networks.replace_classifier(net, 2)
    assert net(x).shape == (4, 2)


@pytest.mark.parametrize("arch", CPU_SIZED)
def test_width_scales_the_network(arch):
    small, wide = (networks.count_parameters(networks.build_network(arch, 10, w)) for w in (8, 16))
    assert wide > 2 * small


def test_unknown_architecture_names_the_known_ones():
    with pytest.raises(ValueError, match="airbench_cnn"):
        networks.build_network("resnet50", 10)
