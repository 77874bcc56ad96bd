"""Flatness of a minimum: top Hessian eigenvalues and loss along filter-normalized directions.

* :func:`hessian_top_eigenvalues` - the ``k`` largest eigenvalues of the Hessian of a loss with
  respect to all parameters, by Lanczos (``scipy.sparse.linalg.eigsh``) on Hessian-vector products
  (reverse-over-reverse through one retained gradient graph), never forming the Hessian.
* :func:`filter_normalized_direction` and :func:`loss_along` - Li et al.'s (2018) random
  direction, rescaled filter by filter to the norms of the trained weights, and the loss along it
  (the paper's Figure 7b, citing Huang et al. 2019b).

Call both with the network in eval mode so that BatchNorm uses its running statistics and the
loss is a fixed function of the weights. :func:`hessian_top_eigenvalues` and :func:`loss_along`
run in strict fp32 (:func:`harness.nn.precision.strict_fp32`): on CUDA, cuDNN would otherwise
run their fp32 convolutions as TF32 (~1e-3 relative), a noise floor under the eigenvalues and
the curves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from .precision import strict_fp32


@strict_fp32()
def hessian_top_eigenvalues(model: torch.nn.Module, loss_of_outputs: Callable[[torch.Tensor], torch.Tensor],
                            inputs: torch.Tensor, k: int = 10, tol: float = 1e-3,
                            seed: int = 0) -> np.ndarray:
    """The ``k`` largest (algebraic) Hessian eigenvalues of ``loss_of_outputs(model(inputs))``.

    Returns them in descending order. ``tol`` is eigsh's relative tolerance.
    """
    from scipy.sparse.linalg import LinearOperator, eigsh

    params = [p for p in model.parameters() if p.requires_grad]
    sizes = [p.numel() for p in params]
    dim = sum(sizes)
    if k >= dim:
        raise ValueError(f"k={k} eigenvalues need more than {dim} parameters")

    # Reverse-over-reverse: the gradient's graph is built once and kept for the whole call (the
    # forward activations and the backward pass's saved tensors, about what one forward-over-
    # reverse product held), and each product is one backward pass through it. Forward-over-
    # reverse (torch.func.jvp of grad, used until 2026-11) re-ran the forward and backward pass
    # for every product: a quick Hessian run's spectrum took 30-40% longer. The eigenvalues agree
    # to ~1e-7 relative (float32 rounding in another order), far inside eigsh's tolerance.
    # Components of the gradient that are constant in the weights (no graph) give zero rows.
    with torch.enable_grad():
        gradient = torch.autograd.grad(loss_of_outputs(model(inputs)), params, create_graph=True)
    varying = [i for i, g in enumerate(gradient) if g.requires_grad]

    def hvp(vector: np.ndarray) -> np.ndarray:
        tangent = torch.as_tensor(vector.ravel(), dtype=params[0].dtype, device=params[0].device)
        parts = [part.view_as(p) for part, p in zip(torch.split(tangent, sizes), params)]
        out = torch.autograd.grad([gradient[i] for i in varying], params,
                                  grad_outputs=[parts[i] for i in varying], retain_graph=True,
                                  allow_unused=True) if varying else [None] * len(params)
        return torch.cat([(o if o is not None else torch.zeros_like(p)).reshape(-1)
                          for o, p in zip(out, params)]).double().cpu().numpy()

    operator = LinearOperator((dim, dim), matvec=hvp, dtype=np.float64)
    start = np.random.default_rng(seed).standard_normal(dim)
    values = eigsh(operator, k=k, which="LA", tol=tol, v0=start, return_eigenvectors=False)
    return np.sort(values)[::-1]


def filter_normalized_direction(model: torch.nn.Module, generator: torch.Generator) -> dict:
    """A Gaussian direction with each filter rescaled to the norm of the same filter in ``model``.

    A filter is one output slice (dim 0) of a weight with two or more dimensions. Biases and
    BatchNorm parameters (1-d) get a zero direction, as in Li et al. (2018).
    """
    direction = {}
    for name, p in model.named_parameters():
        if p.dim() < 2:
            direction[name] = torch.zeros_like(p)
            continue
        d = torch.randn(p.shape, generator=generator, dtype=p.dtype).to(p.device)
        d_norm = d.flatten(1).norm(dim=1).clamp_min(1e-12)
        w_norm = p.detach().flatten(1).norm(dim=1)
        direction[name] = d * (w_norm / d_norm).view(-1, *([1] * (p.dim() - 1)))
    return direction


@torch.no_grad()
@strict_fp32()
def loss_along(model: torch.nn.Module, direction: dict, alphas: Sequence[float],
               loss_of_model: Callable[[torch.nn.Module], float]) -> list[float]:
    """Loss at ``w + alpha * direction`` for each alpha; the weights are restored afterwards."""
    original = {n: p.detach().clone() for n, p in model.named_parameters()}
    values = []
    try:
        for alpha in alphas:
            for n, p in model.named_parameters():
                p.copy_(original[n] + alpha * direction[n])
            values.append(float(loss_of_model(model)))
    finally:
        for n, p in model.named_parameters():
            p.copy_(original[n])
    return values
