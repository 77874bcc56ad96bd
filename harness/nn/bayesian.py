"""Bayesian inference for the CIFAR networks (Section 6, Figure 8): diagonal Laplace and SGHMC.

Diagonal Laplace (laplace-torch, Daxberger et al. 2021). After standard training, a Gaussian with
diagonal covariance is fitted around the trained weights: precision = diagonal of the generalized
Gauss-Newton of the training loss (un-augmented training images, BatchNorm in eval mode) plus a
scalar prior precision chosen by maximizing the marginal likelihood. Predictions are the
posterior predictive under the linearized network (GLM) with the probit approximation, Laplace
Redux's recommended predictive (``TorchClassifier.probabilities``). The Laplace method's ``subset``
says which weights are Bayesian:
``"last_layer"`` (default; Laplace Redux's default, and the only choice whose GLM predictive is
affordable on a CPU: the all-weights predictive needs a Jacobian per test image) or ``"all"``.

SGHMC (Chen et al. 2014; :mod:`harness.nn.sghmc`) replaces SGD for the whole training budget, with
the same data, epochs and augmentation, run as cyclical SGHMC (Zhang et al. 2020): the step size
follows SGHMC's ``cycles`` cosine cycles and a sample is collected at the end of the last
``samples_per_cycle`` epochs of each cycle, where the step size is small. Predictions
average the samples' softmax outputs. The sampler's constants map onto the SGD recipe so that at
temperature 0 and a constant step size it *is* that recipe: step size ``lr / N``, friction ``1 - momentum``, and a
Gaussian prior of precision ``weight_decay * N`` (``N`` training images). (With a step-size
schedule the two still differ slightly: SGHMC scales each new gradient by the current step size,
torch's SGD the whole momentum buffer. A recipe with Nesterov momentum (the laptop network's) has no
SGHMC counterpart: SGHMC keeps plain momentum, and takes the recipe's learning rate.)
"""

from __future__ import annotations

import math
import warnings

import torch

from ..nn.optim import cosine
from ..nn.precision import strict_fp32
from ..nn.sghmc import SGHMC


@strict_fp32()
def fit_diagonal_laplace(net, inputs: torch.Tensor, labels: torch.Tensor, subset: str,
                         batch_size: int = 256):
    """Fit laplace-torch's diagonal Laplace around ``net`` and tune the prior by marginal likelihood.

    ``inputs`` are network-ready (normalized, NCHW) un-augmented training images. The fit runs in
    strict fp32 (:func:`~harness.nn.precision.strict_fp32`): on CUDA, cuDNN would otherwise run
    its convolutions as TF32 (~1e-3 relative), in the curvature and the marginal likelihood.
    """
    if subset not in ("last_layer", "all"):
        raise ValueError(f"the Laplace subset must be 'last_layer' or 'all'; got {subset!r}")
    # laplace-torch flattens parameters with view(), which channels_last conv weights refuse.
    net.to(memory_format=torch.contiguous_format).eval()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(inputs, labels),
                                         batch_size=batch_size)
    with warnings.catch_warnings():
        # asdl decorates its preconditioners with torch.jit.script when it is *imported* (a
        # FutureWarning since torch 2.x; we call none of them), so the imports are inside; and
        # laplace-torch warns about backward hooks and the default link approximation on every
        # fit, neither of which applies to what we call.
        warnings.simplefilter("ignore", FutureWarning)
        warnings.filterwarnings("ignore", message=".*link_approx.*")
        from laplace import Laplace
        from laplace.curvature import AsdlGGN  # BackPACK rejects in-place ReLU; asdl handles it

        la = Laplace(net, "classification", subset_of_weights=subset, hessian_structure="diag",
                     backend=AsdlGGN)
        la.fit(loader)
        la.optimize_prior_precision(method="marglik", pred_type="glm", link_approx="probit")
    return la


def sghmc_optimizer(num_data: int, temperature: float, generator: torch.Generator):
    """An engine ``make_optimizer`` building SGHMC with the constants that match SGD's recipe."""

    def make(params, lr: float, hp: dict):
        return SGHMC(params, lr=lr / num_data, friction=1 - hp["momentum"], num_data=num_data,
                     prior_precision=hp["weight_decay"] * num_data, temperature=temperature,
                     generator=generator)

    return make


def cyclical_cosine(cycles: int):
    """An engine ``schedule``: ``cycles`` cosine decays from 1 to (nearly) 0."""

    def schedule(step: int, total_steps: int) -> float:
        cycle_len = max(1, math.ceil(total_steps / cycles))
        return cosine(step % cycle_len, cycle_len)

    return schedule


def sample_epochs(epochs: int, cycles: int, per_cycle: int) -> set[int]:
    """0-based epochs after which SGHMC collects a sample: the last ``per_cycle`` of each cycle."""
    if cycles < 1 or per_cycle < 1 or epochs < cycles:
        raise ValueError(f"SGHMC needs epochs >= cycles >= 1 and samples per cycle >= 1; "
                         f"got epochs={epochs}, cycles={cycles}, per_cycle={per_cycle}")
    bounds = [round(epochs * (c + 1) / cycles) for c in range(cycles)]
    return {e - 1 - k for e in bounds for k in range(per_cycle) if e - 1 - k >= 0}
