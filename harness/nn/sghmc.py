"""Stochastic-gradient Hamiltonian Monte Carlo (Chen, Fox and Guestrin 2014).

The update is the paper's momentum form (its Eq. 15) with the gradient-noise estimate set to 0:

    v <- (1 - alpha) v - eta * grad U(theta) + N(0, 2 * alpha * eta * T)
    theta <- theta + v

with ``U(theta) = num_data * mean_batch_nll(theta) + prior_precision / 2 * ||theta||^2`` (a
Gaussian prior), ``eta`` the step size, ``alpha`` the friction and ``T`` the temperature (1: the
posterior). Call ``loss.backward()`` on the *mean* negative log-likelihood of a batch, then
``step()``; the optimizer scales by ``num_data`` and adds the prior itself. Predictions average
over parameter samples collected along the chain (:class:`SampleAverager`).
"""

from __future__ import annotations

import copy

import torch


class SGHMC(torch.optim.Optimizer):
    """SGHMC as a torch optimizer.

    Parameters
    ----------
    params : iterable of tensors
    lr : float
        Step size ``eta`` (per unit of U, so it is small: ~1e-4 / num_data scale for networks).
    friction : float
        ``alpha`` in (0, 1]: the fraction of momentum removed per step.
    num_data : int
        Training-set size; the batch-mean likelihood gradient is multiplied by it.
    prior_precision : float
        Precision of the isotropic Gaussian prior on every parameter.
    temperature : float
        1 samples the posterior; 0 turns the sampler into SGD with momentum.
    generator : torch.Generator, optional
        Draws the injected noise; it must be on the parameters' device (the noise is drawn there:
        for a ResNet-34, 21M normals a step, which a CPU generator would draw on the host and
        copy). None: the device's default generator. On the CPU, a generator seeded alike gives
        the same noise as before the draws moved to the device.
    """

    def __init__(self, params, lr: float, friction: float = 0.05, num_data: int = 1,
                 prior_precision: float = 1.0, temperature: float = 1.0, generator=None):
        if not 0 < friction <= 1:
            raise ValueError(f"friction must be in (0, 1]; got {friction}")
        if lr <= 0 or num_data < 1 or prior_precision < 0 or temperature < 0:
            raise ValueError("lr > 0, num_data >= 1, prior_precision >= 0, temperature >= 0 required")
        super().__init__(params, dict(lr=lr, friction=friction, num_data=num_data,
                                      prior_precision=prior_precision, temperature=temperature))
        self.generator = generator

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            lr, alpha = group["lr"], group["friction"]
            noise_std = (2 * alpha * lr * group["temperature"]) ** 0.5
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad_u = group["num_data"] * p.grad + group["prior_precision"] * p
                state = self.state[p]
                if "momentum" not in state:
                    state["momentum"] = torch.zeros_like(p)
                v = state["momentum"]
                noise = torch.randn(p.shape, generator=self.generator, dtype=p.dtype, device=p.device)
                v.mul_(1 - alpha).sub_(lr * grad_u).add_(noise_std * noise)
                p.add_(v)


class SampleAverager:
    """Keeps copies of a model taken along the chain and averages their predicted probabilities."""

    def __init__(self):
        self.samples: list[torch.nn.Module] = []

    def collect(self, model: torch.nn.Module) -> None:
        self.samples.append(copy.deepcopy(model).eval())

    @torch.no_grad()
    def predict_proba(self, inputs: torch.Tensor) -> torch.Tensor:
        if not self.samples:
            raise RuntimeError("no samples collected: call collect() during the chain")
        return torch.stack([m(inputs).softmax(-1) for m in self.samples]).mean(0)
