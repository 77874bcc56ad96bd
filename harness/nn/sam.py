"""Sharpness-aware minimization (Foret et al. 2020) with a per-sample ascent radius.

SAM takes an ascent step ``e = rho * g / ||g||`` (``g`` the batch gradient), computes the gradient
at ``w + e``, returns to ``w`` and lets the base optimizer step with that gradient.

Asymmetric SAM. The paper improves on SAM "by increasing the ascent step size in SAM's inner loop
for minority samples". We give each sample ``i`` a radius ``rho_i`` (in practice one per class,
larger for minority classes) and take the ascent step

    e = (1/B) sum_i rho_i * grad l_i(w) / ||g||,      g = (1/B) sum_i grad l_i(w),

so each sample's pull on the ascent direction is scaled by its own radius. Consequences, which
``tests/test_sam.py`` checks:

* equal radii ``rho_i = rho`` give exactly SAM's ``rho * g / ||g||``;
* all radii zero give ``e = 0``: the step is the base optimizer's;
* raising the minority radius lengthens the ascent step along the minority-loss gradient, i.e.
  the minimum found must be flat for minority samples over a larger neighbourhood.

Costs: SAM needs two backward passes per step; asymmetric SAM three (the plain and the
radius-weighted gradient at ``w``, then the gradient at ``w + e``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def ascent_vector(params: list[torch.Tensor], losses: torch.Tensor, radii: torch.Tensor,
                  eps: float = 1e-12) -> list[torch.Tensor]:
    """The (asymmetric) SAM perturbation for per-sample ``losses`` with per-sample ``radii``."""
    if radii.shape != losses.shape:
        raise ValueError(f"one radius per sample: radii {tuple(radii.shape)} vs losses {tuple(losses.shape)}")
    if (radii < 0).any():
        raise ValueError("SAM radii must be non-negative")
    grads = torch.autograd.grad(losses.mean(), params, retain_graph=True)
    norm = torch.sqrt(sum((g.detach() ** 2).sum() for g in grads)) + eps
    uniform = bool((radii == radii[0]).all())
    if uniform:  # plain SAM: one backward pass suffices
        weighted = [radii[0] * g for g in grads]
    else:
        weighted = torch.autograd.grad((radii * losses).mean(), params, retain_graph=True)
    return [w.detach() / norm for w in weighted]


def sam_step(params: list[torch.Tensor], per_sample_loss: Callable[[], torch.Tensor],
             radii: torch.Tensor, optimizer: torch.optim.Optimizer) -> torch.Tensor:
    """One SAM / asymmetric-SAM step; returns the mean loss at ``w`` (before the step).

    ``per_sample_loss()`` evaluates the model on the current batch and returns one loss per
    sample; it is called twice (at ``w`` and at ``w + e``).
    """
    losses = per_sample_loss()
    perturbation = ascent_vector(params, losses, radii)
    with torch.no_grad():
        for p, e in zip(params, perturbation):
            p.add_(e)
    optimizer.zero_grad(set_to_none=True)
    per_sample_loss().mean().backward()
    with torch.no_grad():
        for p, e in zip(params, perturbation):
            p.sub_(e)
    optimizer.step()
    return losses.detach().mean()


def class_radii(labels: torch.Tensor, radius_per_class: torch.Tensor) -> torch.Tensor:
    """Per-sample radii from a per-class table (e.g. ``[rho, rho * k]`` for majority, minority)."""
    return radius_per_class.to(labels.device)[labels]


def minority_half_radii(labels: torch.Tensor, num_classes: int, rho: float,
                        scale: float) -> torch.Tensor:
    """Per-sample radii: ``rho`` for the more frequent half of the classes in ``labels``,
    ``rho * scale`` for the rarer half (binary: the minority class; CIFAR-10: the 5 rarest)."""
    counts = torch.bincount(labels, minlength=num_classes)
    rarest = torch.argsort(counts, stable=True)[: num_classes // 2]
    per_class = torch.full((num_classes,), float(rho), device=labels.device)
    per_class[rarest] = rho * scale
    return per_class[labels]
