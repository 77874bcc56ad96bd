"""Hessian eigenvalues against an exact Hessian; filter-normalized directions; both in strict fp32."""

import numpy as np
import pytest
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


def test_top_eigenvalues_match_the_exact_hessian_of_a_small_classifier():
    """Cross-entropy of a ReLU MLP with biases and an eval-mode BatchNorm (as the CNNs are
    measured): the products' spectrum equals the dense Hessian's, including its negative part."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.BatchNorm1d(5), torch.nn.ReLU(),
                              torch.nn.Linear(5, 3)).double()
    net[1].running_mean.normal_()
    net[1].running_var.uniform_(0.5, 2.0)
    net.eval()
    x = torch.randn(40, 3, dtype=torch.float64)
    y = torch.randint(0, 3, (40,))
    loss = lambda out: torch.nn.functional.cross_entropy(out, y)  # noqa: E731
    got = flatness.hessian_top_eigenvalues(net, loss, x, k=5, tol=1e-10)

    names = [n for n, _ in net.named_parameters()]
    shapes = [p.shape for p in net.parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in net.parameters()])

    def loss_of_flat(w):
        params, start = {}, 0
        for name, shape in zip(names, shapes):
            params[name] = w[start:start + shape.numel()].view(shape)
            start += shape.numel()
        return loss(torch.func.functional_call(net, params, (x,)))

    dense = torch.autograd.functional.hessian(loss_of_flat, flat)
    exact = np.sort(np.linalg.eigvalsh(dense.numpy()))[::-1][:5]
    assert np.allclose(got, exact, rtol=1e-6, atol=1e-9)


def test_a_gradient_constant_in_the_weights_gives_zero_curvature():
    """A loss linear in the bias: that gradient component has no graph; its Hessian rows are 0."""
    model = torch.nn.Linear(4, 1).double()
    x = torch.randn(30, 4, dtype=torch.float64)
    got = flatness.hessian_top_eigenvalues(model, lambda out: out.mean() + (model.weight ** 2).sum(), x,
                                           k=2, tol=1e-10)
    assert np.allclose(got, [2.0, 2.0])


def test_hessian_products_and_loss_curves_run_without_tf32_and_restore_the_settings(monkeypatch):
    """On CUDA, cuDNN would run these "fp32" convolutions as TF32 (~1e-3 relative): the first
    gradient and every Hessian-vector product (each a torch.autograd.grad call), and every loss of
    the curve, see TF32 off; torch's settings are back afterwards, also after an error."""
    from tests.test_batches import STRICT, precision_now, tf32_allowed

    net = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.Flatten(), torch.nn.Linear(12, 2))
    x, y = torch.randn(6, 2, 4, 4), torch.arange(6) % 2
    loss = lambda out: torch.nn.functional.cross_entropy(out, y)  # noqa: E731
    seen = []
    grad = torch.autograd.grad

    def recording_grad(*args, **kwargs):
        seen.append(precision_now())
        return grad(*args, **kwargs)

    monkeypatch.setattr(torch.autograd, "grad", recording_grad)
    with tf32_allowed():
        flatness.hessian_top_eigenvalues(net, loss, x, k=2)
        assert len(seen) > 2 and set(seen) == {STRICT}  # the gradient, then the products
        assert precision_now() == (False, True, True)
        seen.clear()
        direction = flatness.filter_normalized_direction(net, torch.Generator().manual_seed(0))
        flatness.loss_along(net, direction, [0.0, 1.0], lambda m: seen.append(precision_now()) or 0.0)
        assert seen == [STRICT, STRICT] and precision_now() == (False, True, True)

        def fails(_):
            raise RuntimeError("boom")

        before = [p.clone() for p in net.parameters()]
        with pytest.raises(RuntimeError, match="boom"):
            flatness.hessian_top_eigenvalues(net, fails, x, k=2)
        with pytest.raises(RuntimeError, match="boom"):
            flatness.loss_along(net, direction, [1.0], fails)
        assert precision_now() == (False, True, True)
        assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))
