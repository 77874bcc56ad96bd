"""SGHMC against the exact posterior of a small Bayesian linear regression."""

import numpy as np
import pytest
import torch

from harness.nn.sghmc import SGHMC, SampleAverager


def test_sghmc_samples_the_bayesian_linear_regression_posterior():
    g = torch.Generator().manual_seed(0)
    n, sigma, prior = 40, 1.0, 1.0
    x = torch.randn(n, 2, generator=g, dtype=torch.float64)
    y = x @ torch.tensor([1.0, -2.0], dtype=torch.float64) + sigma * torch.randn(n, generator=g, dtype=torch.float64)
    precision = x.T @ x / sigma**2 + prior * torch.eye(2, dtype=torch.float64)
    cov = torch.linalg.inv(precision)
    mean = cov @ x.T @ y / sigma**2

    w = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    opt = SGHMC([w], lr=2e-3, friction=0.2, num_data=n, prior_precision=prior,
                generator=torch.Generator().manual_seed(1))
    samples = []
    for step in range(30_000):
        opt.zero_grad()
        (((x @ w - y) ** 2).mean() / (2 * sigma**2)).backward()  # batch-mean NLL
        opt.step()
        if step >= 3_000 and step % 5 == 0:
            samples.append(w.detach().clone())
    samples = torch.stack(samples)
    sd = cov.diagonal().sqrt()
    assert torch.all((samples.mean(0) - mean).abs() < 0.25 * sd)
    ratio = samples.var(0) / cov.diagonal()
    assert torch.all((ratio > 0.7) & (ratio < 1.4)), ratio


def test_zero_temperature_is_deterministic_descent():
    w = torch.tensor([3.0], requires_grad=True)
    opt = SGHMC([w], lr=0.05, friction=0.5, num_data=1, prior_precision=0.0, temperature=0.0)
    for _ in range(300):
        opt.zero_grad()
        (w**2).sum().backward()
        opt.step()
    assert abs(float(w.detach())) < 1e-3


def test_sample_averager_averages_probabilities():
    avg = SampleAverager()
    with pytest.raises(RuntimeError, match="no samples"):
        avg.predict_proba(torch.zeros(1, 2))
    model = torch.nn.Linear(2, 3)
    avg.collect(model)
    with torch.no_grad():
        model.weight.add_(1.0)
    avg.collect(model)
    probs = avg.predict_proba(torch.ones(4, 2))
    assert torch.allclose(probs.sum(-1), torch.ones(4))
    assert np.isclose(len(avg.samples), 2)


def reference_step(params, momenta, lr, friction, num_data, prior, temperature, generator):
    """SGHMC's step as it was before the noise moved to the parameters' device: drawn by a CPU
    generator on the host, then copied."""
    noise_std = (2 * friction * lr * temperature) ** 0.5
    with torch.no_grad():
        for p, v in zip(params, momenta):
            grad_u = num_data * p.grad + prior * p
            noise = torch.randn(p.shape, generator=generator, dtype=p.dtype).to(p.device)
            v.mul_(1 - friction).sub_(lr * grad_u).add_(noise_std * noise)
            p.add_(v)


def test_noise_on_the_cpu_is_what_it_was():
    """Same seed, same numbers: the quick suite's SGHMC records do not move."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20, 3, generator=g)
    start = [torch.randn(3, generator=g), torch.randn((), generator=g, dtype=torch.float64)]
    runs = {}
    for name in ("optimizer", "reference"):
        w, b = (t.clone().requires_grad_() for t in start)
        noise = torch.Generator().manual_seed(5)
        opt = SGHMC([w, b], lr=1e-3, friction=0.1, num_data=20, prior_precision=0.5, generator=noise)
        momenta = [torch.zeros_like(w), torch.zeros_like(b)]
        for _ in range(10):
            w.grad = b.grad = None
            ((x @ w + b - 1) ** 2).mean().backward()
            if name == "optimizer":
                opt.step()
            else:
                reference_step([w, b], momenta, 1e-3, 0.1, 20, 0.5, 1.0, noise)
        runs[name] = (w.detach(), b.detach())
    assert all(torch.equal(a, c) for a, c in zip(runs["optimizer"], runs["reference"]))


def test_noise_is_drawn_on_the_parameters_device(monkeypatch):
    """Drawing on the host and copying moved ~21M normals a step for a ResNet-34 on CUDA: every
    draw asks for the parameter's own device, with the optimizer's generator."""
    calls = []
    randn = torch.randn

    def recording_randn(*args, **kwargs):
        calls.append(kwargs)
        return randn(*args, **kwargs)

    w = torch.zeros(4, requires_grad=True)
    generator = torch.Generator().manual_seed(0)
    opt = SGHMC([w], lr=1e-3, num_data=4, generator=generator)
    (w ** 2).sum().backward()
    monkeypatch.setattr(torch, "randn", recording_randn)
    opt.step()
    assert calls and all(c.get("device") == w.device and c["generator"] is generator for c in calls)
