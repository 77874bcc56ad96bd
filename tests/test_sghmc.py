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
