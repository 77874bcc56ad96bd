"""Hessian eigenvalues against an exact Hessian; filter-normalized directions."""

import numpy as np
import torch

from harness.nn import flatness


def test_top_eigenvalues_match_the_exact_hessian_of_least_squares():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, 12, generator=g, dtype=torch.float64)
    y = torch.randn(50, 1, generator=g, dtype=torch.float64)
    model = torch.nn.Linear(12, 1, bias=False).double()
    got = flatness.hessian_top_eigenvalues(model, lambda out: ((out - y) ** 2).mean(), x, k=4, tol=1e-8)
    exact = np.sort(np.linalg.eigvalsh((2 * x.T @ x / 50).numpy()))[::-1][:4]
    assert np.allclose(got, exact, rtol=1e-5)
    scaled = flatness.hessian_top_eigenvalues(model, lambda out: 3 * ((out - y) ** 2).mean(), x, k=4, tol=1e-8)
    assert np.allclose(scaled, 3 * exact, rtol=1e-5)  # scale of the loss carries through


def test_filter_normalized_direction_matches_filter_norms_and_skips_biases():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    d = flatness.filter_normalized_direction(net, torch.Generator().manual_seed(0))
    w = net[0].weight.detach()
    assert torch.allclose(d["0.weight"].flatten(1).norm(dim=1), w.flatten(1).norm(dim=1), rtol=1e-5)
    assert torch.count_nonzero(d["0.bias"]) == 0 and torch.count_nonzero(d["1.weight"]) == 0


def test_loss_along_starts_at_the_loss_and_restores_weights():
    net = torch.nn.Linear(3, 1)
    before = [p.clone() for p in net.parameters()]
    x = torch.randn(8, 3)
    loss = lambda m: float((m(x) ** 2).mean().detach())  # noqa: E731
    d = flatness.filter_normalized_direction(net, torch.Generator().manual_seed(1))
    values = flatness.loss_along(net, d, [0.0, 0.5, 1.0], loss)
    assert values[0] == loss(net)
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))
