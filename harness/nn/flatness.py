"""Flatness of a minimum: top Hessian eigenvalues and loss along filter-normalized directions.

* :func:`hessian_top_eigenvalues` - the ``k`` largest eigenvalues of the Hessian of a loss with
  respect to all parameters, by Lanczos (``scipy.sparse.linalg.eigsh``) on Hessian-vector products
  computed with ``torch.func`` (forward-over-reverse), never forming the Hessian.
* :func:`filter_normalized_direction` and :func:`loss_along` - Li et al.'s (2018) random
  direction, rescaled filter by filter to the norms of the trained weights, and the loss along it
  (the paper's Figure 7b, citing Huang et al. 2019b).

Call both with the network in eval mode so that BatchNorm uses its running statistics and the
loss is a fixed function of the weights.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.func import functional_call, grad, jvp


def hessian_top_eigenvalues(model: torch.nn.Module, loss_of_outputs: Callable[[torch.Tensor], torch.Tensor],
                            inputs: torch.Tensor, k: int = 10, tol: float = 1e-3,
                            seed: int = 0) -> np.ndarray:
    """The ``k`` largest (algebraic) Hessian eigenvalues of ``loss_of_outputs(model(inputs))``.

    Returns them in descending order. ``tol`` is eigsh's relative tolerance.
    """
    from scipy.sparse.linalg import LinearOperator, eigsh

    names = [n for n, p in model.named_parameters() if p.requires_grad]
    base = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    shapes = [base[n].shape for n in names]
    sizes = [base[n].numel() for n in names]
    dim = sum(sizes)
    if k >= dim:
        raise ValueError(f"k={k} eigenvalues need more than {dim} parameters")

    def loss(params):
        return loss_of_outputs(functional_call(model, params, (inputs,)))

    grad_fn = grad(loss)

    def unflatten(vector: torch.Tensor) -> dict:
        parts = torch.split(vector, sizes)
        return {n: part.view(shape) for n, part, shape in zip(names, parts, shapes)}

    def hvp(vector: np.ndarray) -> np.ndarray:
        tangent = unflatten(torch.as_tensor(vector.ravel(), dtype=base[names[0]].dtype,
                                            device=base[names[0]].device))
        _, out = jvp(grad_fn, (base,), (tangent,))
        return torch.cat([out[n].reshape(-1) for n in names]).double().cpu().numpy()

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
